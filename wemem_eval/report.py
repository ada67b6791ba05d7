"""The run report: report.json, report.md and plots from a run directory.

report.json schema (documented in README):
  {"dataset", "seed", "run_dir",
   "defenses": {label: {
       "kind": "baseline" | "defense",
       "test_accuracy": float in [0, 1] (victim, its test split),
       "train_accuracy": float,
       "defense_seconds": float | null (wall time of iterative fine-tuning
           with the defense; null for the unpruned model),
       "defense_report": {...} (e.g. risky share, ε),
       # the maximum over attacks of the victim balanced accuracy: chosen on
       # the victim's labels, so biased upward (the optimistic worst case)
       "best_attack": {"attack": name, "kind": VICTIM_SIDE,
                       "balanced_accuracy": float, "auc": float,
                       "calibration_balanced_accuracy": float | null,
                       "intervals": {"balanced_accuracy": [lo, hi],
                                     "auc": [lo, hi]} | null},
       # the attack the attacker would pick from its own data: highest
       # calibration_balanced_accuracy (ties: first in the attack order),
       # reported on the victim; all null with a "reason" when no attack has
       # a calibration value
       "best_attack_attacker_side": {same keys as "best_attack", "kind":
                                     ATTACKER_SIDE},
       # the gap attack's reach from labels alone (docs/method.md §7)
       "label_only_bound": {"balanced_accuracy": float, "source":
                            "gap attack" | "victim train and test
                            accuracies"},
       # best attack − bound; null where that best attack is null
       "excess_leakage": {"victim_side": float, "attacker_side": float|null},
       "iterations": [{"iteration", "target_sparsity", "test_accuracy"}],
       "attacks": {attack: {"balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                            "tpr_at_1pct_fpr", "advantage", "seconds",
                            and, when attacks.json has them,
                            "calibration_balanced_accuracy" (null when the
                            attack had no calibration data),
                            "tpr_at_zero_fpr", "num_members",
                            "num_non_members", "fpr_resolution",
                            "not_estimable", "intervals", "confidence",
                            "bootstrap_resamples"
                            (attacks.metrics.AttackResult.to_json)}},
       # only when experiments/<label>/iterations.json exists
       # (wemem_eval.iterations): the attacks on the models after each
       # pruning iteration
       "attack_per_iteration": [{"iteration", "target_sparsity",
                                 "test_accuracy", "best_attack",
                                 "best_attack_attacker_side"}]}}}

A TPR at an FPR below the FPR resolution 1 / num_non_members is null, with
its reason under "not_estimable" (`attacks.metrics.not_estimable_reason`),
also when an older attacks.json still holds a number there.

Plots (plots/): privacy_utility.png, iterations.png, roc_best.png,
attack_per_iteration.png (when some configuration has iterations.json) and
tensorflow-privacy's privacy report (`attacks.privacy_report`, results
rebuilt from attacks.json / attack_scores.npz and iterations.json /
iteration_scores.npz, model_variant_label = the configuration's label):
privacy_vs_accuracy.png (`plot_privacy_vs_accuracy`: AUC, attacker
advantage and PPV of every attack against the victim's train accuracy; per
configuration its final models, or, when it has per-iteration results, its
models after each pruning iteration, the last being the final ones) and
privacy_report.png (`plot_by_epochs`, epoch = pruning iteration; only when
per-iteration results exist).
"""

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from matplotlib import figure as mpl_figure
import numpy as np

from attacks import gap as gap_lib
from attacks import metrics as metrics_lib
from attacks import plotting
from attacks import privacy_report
from wemem_tf import io_utils

METRICS = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr",
           "advantage", "seconds")
# Row keys that attacks.json files written before issue 21 lack.
OPTIONAL_METRICS = ("calibration_balanced_accuracy", "tpr_at_zero_fpr",
                    "num_members", "num_non_members", "fpr_resolution",
                    "not_estimable", "intervals", "confidence",
                    "bootstrap_resamples")
VICTIM_SIDE = "max over attacks on the victim (optimistic)"
ATTACKER_SIDE = ("highest balanced accuracy on the attacker's calibration "
                 "data, reported on the victim")


def _finite_or_none(value: Optional[float]) -> Optional[float]:
  return value if value is not None and math.isfinite(value) else None


def attack_row(source: Dict[str, Any]) -> Dict[str, Any]:
  """An attacks.json row's report entry, with the estimability rule; a
  NaN calibration balanced accuracy (no calibration data) becomes None."""
  out = {m: source[m] for m in METRICS}
  out.update({m: source[m] for m in OPTIONAL_METRICS if m in source})
  if "calibration_balanced_accuracy" in out:
    out["calibration_balanced_accuracy"] = _finite_or_none(
        out["calibration_balanced_accuracy"])
  if "num_non_members" not in source:
    return out
  for f in metrics_lib.LOW_FPRS:
    key = metrics_lib.tpr_key(f)
    reason = metrics_lib.not_estimable_reason(f, source["num_non_members"])
    if reason:
      out[key] = None
      out["not_estimable"] = {**out.get("not_estimable", {}), key: reason}
  return out


def _summary(rows: Dict[str, Dict[str, Any]], attack: str,
             kind: str) -> Dict[str, Any]:
  """One attack's headline numbers on the victim, with their intervals."""
  row = rows[attack]
  intervals = row.get("intervals")
  return {"attack": attack, "kind": kind,
          "balanced_accuracy": row["balanced_accuracy"], "auc": row["auc"],
          "calibration_balanced_accuracy": row.get(
              "calibration_balanced_accuracy"),
          "intervals": None if intervals is None else {
              m: intervals[m] for m in ("balanced_accuracy", "auc")}}


def victim_side_best(rows: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
  """The attack of highest balanced accuracy on the victim (chosen on the
  victim's labels: an optimistic worst case)."""
  best = max(rows, key=lambda a: rows[a]["balanced_accuracy"])
  return _summary(rows, best, VICTIM_SIDE)


def attacker_side_best(rows: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
  """The attack the attacker would pick from its own data.

  The highest calibration_balanced_accuracy (balanced accuracy on the
  attacker's shadow / reference models, never the victim's labels) wins;
  ties go to the first attack in `rows`' order, attacks without a finite
  calibration value are skipped. Reported with its victim numbers; all null
  with a "reason" when no attack has a calibration value.
  """
  candidates = [a for a in rows if _finite_or_none(
      rows[a].get("calibration_balanced_accuracy")) is not None]
  if not candidates:
    return {"attack": None, "kind": ATTACKER_SIDE, "balanced_accuracy": None,
            "auc": None, "calibration_balanced_accuracy": None,
            "intervals": None,
            "reason": "no attack has a calibration balanced accuracy (on "
                      "the attacker's own models)"}
  best = max(candidates,
             key=lambda a: rows[a]["calibration_balanced_accuracy"])
  return _summary(rows, best, ATTACKER_SIDE)


def label_only_bound(rows: Dict[str, Dict[str, Any]], train_accuracy: float,
                     test_accuracy: float) -> Dict[str, Any]:
  """The configuration's label-only bound (docs/method.md §7): the gap
  attack's balanced accuracy on the victim when it ran (its value on the
  audited, possibly pooled, records), else `gap.label_only_bound` of the
  victim's train and test accuracies."""
  if "gap" in rows:
    return {"balanced_accuracy": rows["gap"]["balanced_accuracy"],
            "source": "gap attack"}
  return {"balanced_accuracy": gap_lib.label_only_bound(train_accuracy,
                                                        test_accuracy),
          "source": "victim train and test accuracies"}


def excess_leakage(entry: Dict[str, Any]) -> Dict[str, Optional[float]]:
  """Each best attack's balanced accuracy minus the label-only bound."""
  bound = entry["label_only_bound"]["balanced_accuracy"]
  out = {}
  for side, key in (("victim_side", "best_attack"),
                    ("attacker_side", "best_attack_attacker_side")):
    value = (entry.get(key) or {}).get("balanced_accuracy")
    out[side] = None if value is None else value - bound
  return out


def leakage_summary(rows: Dict[str, Dict[str, Any]], train_accuracy: float,
                    test_accuracy: float) -> Dict[str, Any]:
  """A configuration's "best_attack", "best_attack_attacker_side",
  "label_only_bound" and "excess_leakage" entries from its attack rows
  (no attack: empty best attacks and no excess)."""
  out = {"best_attack": {}, "best_attack_attacker_side": {},
         "label_only_bound": label_only_bound(rows, train_accuracy,
                                              test_accuracy)}
  if rows:
    out.update(best_attack=victim_side_best(rows),
               best_attack_attacker_side=attacker_side_best(rows))
    out["excess_leakage"] = excess_leakage(out)
  return out


def _entry(attacks_json: Dict[str, Any], step: Dict[str, Any]) -> Dict[str, Any]:
  victim = attacks_json["models"]["victim"]
  rows = {r["attack"]: attack_row(r) for r in attacks_json["attacks"]}
  return {
      "kind": step.get("kind"),
      "test_accuracy": attacks_json["victim_test_accuracy"],
      "train_accuracy": attacks_json["victim_train_accuracy"],
      "defense_seconds": victim.get("defense_seconds"),
      "defense_report": victim.get("defense_report", {}),
      **leakage_summary(rows, attacks_json["victim_train_accuracy"],
                        attacks_json["victim_test_accuracy"]),
      "iterations": victim.get("iterations", []),
      "attacks": rows,
  }


def _load_iterations(run_dir: str, label: str) -> Optional[Dict[str, Any]]:
  """experiments/<label>/iterations.json, or None when there is none."""
  path = os.path.join(run_dir, "experiments", label, "iterations.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def collect(run_dir: str, labels: Sequence[str]) -> Dict[str, Any]:
  """The report dict from the finished steps of `run_dir`."""
  with open(os.path.join(run_dir, "manifest.json")) as f:
    manifest = json.load(f)
  entries = {}
  for label in labels:
    folder = os.path.join(run_dir, "experiments", label)
    step_path = os.path.join(folder, "step.json")
    if not os.path.isfile(step_path):
      continue
    with open(step_path) as f:
      step = json.load(f)
    with open(os.path.join(folder, "attacks.json")) as f:
      entries[label] = _entry(json.load(f), step)
    per_iteration = _load_iterations(run_dir, label)
    if per_iteration is not None:
      entries[label]["attack_per_iteration"] = [
          {"iteration": it["iteration"],
           "target_sparsity": it["target_sparsity"],
           "test_accuracy": it["victim_test_accuracy"],
           "best_attack": it["best_attack"],
           "best_attack_attacker_side": it.get("best_attack_attacker_side")}
          for it in per_iteration["iterations"]]
  return {"dataset": manifest["settings"]["dataset"],
          "seed": manifest["seed"], "data_fingerprint":
          manifest["data_fingerprint"], "defenses": entries}


def without_timings(report: Any) -> Any:
  """The report (or any nested dict/list, e.g. training facts) with every
  wall-time field ("seconds", "*_seconds") and run_dir removed (for
  comparisons)."""
  if isinstance(report, dict):
    return {k: without_timings(v) for k, v in report.items()
            if k != "seconds" and not k.endswith("_seconds")
            and k != "run_dir"}
  if isinstance(report, list):
    return [without_timings(v) for v in report]
  return report


def _pct(value) -> str:
  return "—" if value is None else f"{100 * value:.1f}"


def _with_interval(value, interval) -> str:
  """A percentage with its interval, e.g. 71.7 [69.9, 73.4]."""
  if value is None or interval is None:
    return _pct(value)
  return f"{_pct(value)} [{_pct(interval[0])}, {_pct(interval[1])}]"


def _cell(row: Optional[Dict[str, Any]], metric: str) -> str:
  """A per-attack table cell: "—" for a missing attack, "n/a" for a TPR
  that is not estimable."""
  if row is None:
    return "—"
  if metric in row.get("not_estimable", {}):
    return "n/a"
  return _with_interval(row.get(metric),
                        (row.get("intervals") or {}).get(metric))


def _best_cells(best: Dict[str, Any]) -> str:
  """The attack, balanced accuracy and AUC cells of a best attack."""
  intervals = best.get("intervals") or {}
  cells = [_with_interval(best.get(m), intervals.get(m))
           for m in ("balanced_accuracy", "auc")]
  return " | ".join([best["attack"] or "—"] + cells)


def _headline(entries: Dict[str, Any]) -> List[str]:
  lines = ["Victim test accuracy, the best adaptive attack (balanced accuracy "
           "on the victim at the threshold chosen on the attacker's models, "
           "and ROC AUC, with 95% bootstrap intervals over the victim's "
           "records) and the defense time (iterative fine-tuning with the "
           "defense). Percent. *Victim-side max*: the maximum over attacks "
           "of the victim balanced accuracy; picked on the victim's labels, "
           "so biased upward (the optimistic worst case). *Attacker-side*: "
           "the attack with the highest balanced accuracy on the attacker's "
           "own calibration data, as the attacker would pick it. *Bound*: "
           "the label-only bound (1 + member acc − non-member acc) / 2 that "
           "the gap attack reaches from labels alone; *excess*: each best "
           "attack minus the bound (victim-side / attacker-side), the "
           "leakage a defense could still remove.", "",
           "| configuration | test acc | victim-side max | bal. acc | AUC | "
           "attacker-side | bal. acc | AUC | bound | excess | "
           "defense time (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for label, e in entries.items():
    seconds = e["defense_seconds"]
    bound = (e.get("label_only_bound") or {}).get("balanced_accuracy")
    excess = e.get("excess_leakage") or {}
    lines.append(
        f"| {label} | {_pct(e['test_accuracy'])} | "
        f"{_best_cells(e['best_attack'])} | "
        f"{_best_cells(e['best_attack_attacker_side'])} | {_pct(bound)} | "
        f"{_pct(excess.get('victim_side'))} / "
        f"{_pct(excess.get('attacker_side'))} | "
        f"{'—' if seconds is None else f'{seconds:.1f}'} |")
  return lines


def _records(entries: Dict[str, Any]) -> List[str]:
  """Victim record counts and FPR resolution per configuration."""
  lines = ["", "## Victim records", "",
           "A TPR at an FPR below the FPR resolution (1 / non-members) is "
           "the TPR at zero false positives and is shown as n/a.", "",
           "| configuration | members | non-members | FPR resolution (%) |",
           "|---|---|---|---|"]
  for label, e in entries.items():
    row = next(iter(e["attacks"].values()), {})
    resolution = row.get("fpr_resolution")
    lines.append(f"| {label} | {row.get('num_members', '—')} | "
                 f"{row.get('num_non_members', '—')} | "
                 f"{'—' if resolution is None else f'{100 * resolution:.3g}'}"
                 " |")
  return lines


def markdown(report: Dict[str, Any],
             plots: Optional[Sequence[str]] = None) -> str:
  """The report as Markdown tables; `plots`: the plot file names to list
  (default: the ones `write_report` always draws, and
  attack_per_iteration.png when some configuration has per-iteration
  results)."""
  entries = report["defenses"]
  attacks = sorted({a for e in entries.values() for a in e["attacks"]})
  lines = [f"# wemem report: {report['dataset']}, seed {report['seed']}", ""]
  lines += _headline(entries) + _records(entries)
  for metric, title in (("balanced_accuracy", "Balanced accuracy"),
                        ("auc", "ROC AUC"),
                        ("tpr_at_0.1pct_fpr", "TPR at 0.1% FPR"),
                        ("tpr_at_1pct_fpr", "TPR at 1% FPR"),
                        ("tpr_at_zero_fpr", "TPR at zero false positives")):
    lines += ["", f"## {title} (%)", "",
              "| configuration | " + " | ".join(attacks) + " |",
              "|---|" + "---|" * len(attacks)]
    for label, e in entries.items():
      cells = [_cell(e["attacks"].get(a), metric) for a in attacks]
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
  per_iteration = {label: e["attack_per_iteration"]
                   for label, e in entries.items()
                   if e.get("attack_per_iteration")}
  if per_iteration:
    count = max(len(its) for its in per_iteration.values())
    lines += ["", "## Best attack per pruning iteration (%)", "",
              "Best attack balanced accuracy / victim test accuracy on the "
              "models after each iteration (victim, shadows and reference "
              "models all at that iteration).", "",
              "| configuration | " + " | ".join(
                  f"it {k}" for k in range(count)) + " |",
              "|---|" + "---|" * count]
    for label, its in per_iteration.items():
      cells = [f"{_pct(it['best_attack']['balanced_accuracy'])} / "
               f"{_pct(it['test_accuracy'])}" for it in its]
      cells += [""] * (count - len(cells))
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
  if plots is None:
    plots = ["privacy_utility.png", "roc_best.png", "iterations.png"] + (
        ["attack_per_iteration.png"] if per_iteration else [])
  lines += ["", "Plots: " + ", ".join(f"plots/{p}" for p in plots) + "."]
  return "\n".join(lines) + "\n"


def _plot_privacy_utility(report, path):
  fig = mpl_figure.Figure(figsize=(5.5, 4.2))
  ax = fig.subplots()
  for label, e in report["defenses"].items():
    x = 100 * e["best_attack"]["balanced_accuracy"]
    y = 100 * e["test_accuracy"]
    points = ax.scatter([x], [y], s=40)
    bound = (e.get("label_only_bound") or {}).get("balanced_accuracy")
    if bound is not None:  # hollow: how far a defense could still go
      color = points.get_facecolor()[0]
      ax.plot([100 * bound, x], [y, y], color=color, lw=0.8, alpha=0.6)
      ax.scatter([100 * bound], [y], s=40, facecolors="none",
                 edgecolors=[color])
    ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4),
                fontsize=8)
  ax.set_xlabel("strongest adaptive attack, balanced accuracy (%)\n"
                "(hollow: the label-only bound)")
  ax.set_ylabel("victim test accuracy (%)")
  ax.set_title(f"privacy–utility, {report['dataset']}")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  plotting.save_png(fig, path)


def _plot_iterations(report, path):
  fig = mpl_figure.Figure(figsize=(5.5, 4.2))
  ax = fig.subplots()
  for label, e in report["defenses"].items():
    its = e["iterations"]
    if its:
      ax.plot([i["target_sparsity"] for i in its],
              [100 * i["test_accuracy"] for i in its], marker="o", label=label)
  ax.set_xlabel("sparsity of the pruning iteration")
  ax.set_ylabel("victim test accuracy (%)")
  ax.set_title("test accuracy per pruning iteration")
  ax.grid(alpha=0.3)
  if ax.lines:
    ax.legend(fontsize=8)
  fig.tight_layout()
  plotting.save_png(fig, path)


def _plot_best_roc(run_dir, report, path):
  fig = mpl_figure.Figure(figsize=(5.5, 4.5))
  ax = fig.subplots()
  for label, e in report["defenses"].items():
    scores_path = os.path.join(run_dir, "experiments", label,
                               "attack_scores.npz")
    if not os.path.isfile(scores_path):
      continue
    best = e["best_attack"]["attack"]
    arrays = io_utils.load_npz(scores_path)
    roc = metrics_lib.roc_curve(arrays[f"{best}_member_scores"],
                                arrays[f"{best}_non_member_scores"])
    ax.plot(np.maximum(roc.fpr, 1e-4), np.maximum(roc.tpr, 1e-4),
            label=f"{label} ({best})")
  ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=0.8)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.set_title("ROC of each configuration's strongest attack")
  if len(ax.lines) > 1:  # the diagonal has no label
    ax.legend(fontsize=7)
  fig.tight_layout()
  plotting.save_png(fig, path)


def privacy_report_results(run_dir: str, labels: Sequence[str]
                           ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """({label: final `AttackResults`}, {label: [`AttackResults` per pruning
  iteration]}) of the configurations of `run_dir` whose scores are saved
  (attack_scores.npz; iteration_scores.npz beside iterations.json), with
  model_variant_label = the label (`attacks.privacy_report`)."""
  final, per_iteration = {}, {}
  for label in labels:
    folder = os.path.join(run_dir, "experiments", label)
    if os.path.isfile(os.path.join(folder, privacy_report.ATTACK_SCORES)):
      final[label] = privacy_report.load_attack_results(folder, label)
    if privacy_report.has_iteration_results(folder):
      per_iteration[label] = privacy_report.load_iteration_results(
          folder, label)
  return final, per_iteration


def plot_privacy_report(run_dir: str, labels: Sequence[str],
                        plots: str) -> List[str]:
  """Draws tensorflow-privacy's privacy report into `plots`:
  privacy_vs_accuracy.png across configurations (each one's per-iteration
  results when it has them, else its final one) and privacy_report.png
  (by pruning iteration) when some configuration has per-iteration results.
  Returns the file names drawn."""
  final, per_iteration = privacy_report_results(run_dir, labels)
  results = []
  for label in labels:
    results += per_iteration.get(label) or (
        [final[label]] if label in final else [])
  drawn = []
  if results:
    privacy_report.plot_privacy_vs_accuracy(
        results, os.path.join(plots, "privacy_vs_accuracy.png"))
    drawn.append("privacy_vs_accuracy.png")
  epochs = [r for label in labels for r in per_iteration.get(label, [])]
  if epochs:
    privacy_report.plot_by_epochs(
        epochs, os.path.join(plots, "privacy_report.png"))
    drawn.append("privacy_report.png")
  return drawn


def write_report(run_dir: str, labels: List[str]) -> Dict[str, Any]:
  """Writes report.json, report.md and plots/; returns the report dict.

  plots/attack_per_iteration.png is drawn when some configuration has an
  experiments/<label>/iterations.json (`wemem_eval.iterations`);
  tensorflow-privacy's plots/privacy_vs_accuracy.png and
  plots/privacy_report.png as `plot_privacy_report` says.
  """
  report = collect(run_dir, labels)
  plots = os.path.join(run_dir, "plots")
  os.makedirs(plots, exist_ok=True)
  drawn = ["privacy_utility.png", "roc_best.png", "iterations.png"]
  _plot_privacy_utility(report, os.path.join(plots, "privacy_utility.png"))
  _plot_iterations(report, os.path.join(plots, "iterations.png"))
  _plot_best_roc(run_dir, report, os.path.join(plots, "roc_best.png"))
  per_iteration = {label: _load_iterations(run_dir, label)
                   for label in report["defenses"]}
  per_iteration = {label: doc for label, doc in per_iteration.items()
                   if doc is not None and doc["iterations"]}
  if per_iteration:
    plotting.plot_attack_per_iteration(
        per_iteration, os.path.join(plots, "attack_per_iteration.png"),
        title=f"best adaptive attack per pruning iteration, "
        f"{report['dataset']}")
    drawn.append("attack_per_iteration.png")
  drawn += plot_privacy_report(run_dir, list(report["defenses"]), plots)
  io_utils.atomic_write_json(os.path.join(run_dir, "report.json"), report)
  io_utils.atomic_write_bytes(os.path.join(run_dir, "report.md"),
                              markdown(report, drawn).encode())
  return report
