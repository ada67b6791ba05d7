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
       "best_attack": {"attack": name, "balanced_accuracy": float},
       "iterations": [{"iteration", "target_sparsity", "test_accuracy"}],
       "attacks": {attack: {"balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                            "tpr_at_1pct_fpr", "advantage", "seconds"}},
       # only when experiments/<label>/iterations.json exists
       # (wemem_eval.iterations): the attacks on the models after each
       # pruning iteration
       "attack_per_iteration": [{"iteration", "target_sparsity",
                                 "test_accuracy", "best_attack"}]}}}
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from matplotlib import figure as mpl_figure
import numpy as np

from attacks import metrics as metrics_lib
from attacks import plotting
from wemem_tf import io_utils

METRICS = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr",
           "advantage", "seconds")
TIMING_KEYS = ("seconds", "defense_seconds")


def _entry(attacks_json: Dict[str, Any], step: Dict[str, Any]) -> Dict[str, Any]:
  victim = attacks_json["models"]["victim"]
  rows = {r["attack"]: {m: r[m] for m in METRICS} for r in attacks_json["attacks"]}
  best = max(rows, key=lambda a: rows[a]["balanced_accuracy"])
  return {
      "kind": step.get("kind"),
      "test_accuracy": attacks_json["victim_test_accuracy"],
      "train_accuracy": attacks_json["victim_train_accuracy"],
      "defense_seconds": victim.get("defense_seconds"),
      "defense_report": victim.get("defense_report", {}),
      "best_attack": {"attack": best,
                      "balanced_accuracy": rows[best]["balanced_accuracy"]},
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
           "best_attack": it["best_attack"]}
          for it in per_iteration["iterations"]]
  return {"dataset": manifest["settings"]["dataset"],
          "seed": manifest["seed"], "data_fingerprint":
          manifest["data_fingerprint"], "defenses": entries}


def without_timings(report: Any) -> Any:
  """The report with every wall-time field removed (for comparisons)."""
  if isinstance(report, dict):
    return {k: without_timings(v) for k, v in report.items()
            if k not in TIMING_KEYS and k != "run_dir"}
  if isinstance(report, list):
    return [without_timings(v) for v in report]
  return report


def _pct(value) -> str:
  return "—" if value is None else f"{100 * value:.1f}"


def markdown(report: Dict[str, Any]) -> str:
  """The report as Markdown tables."""
  entries = report["defenses"]
  attacks = sorted({a for e in entries.values() for a in e["attacks"]})
  lines = [f"# wemem report: {report['dataset']}, seed {report['seed']}", "",
           "Victim test accuracy, the strongest adaptive attack (balanced "
           "accuracy on the victim at the threshold chosen on the attacker's "
           "models) and the defense time (iterative fine-tuning with the "
           "defense). Percent.", "",
           "| configuration | test acc | best attack | best attack bal. acc | "
           "defense time (s) |", "|---|---|---|---|---|"]
  for label, e in entries.items():
    seconds = e["defense_seconds"]
    lines.append(f"| {label} | {_pct(e['test_accuracy'])} | "
                 f"{e['best_attack']['attack']} | "
                 f"{_pct(e['best_attack']['balanced_accuracy'])} | "
                 f"{'—' if seconds is None else f'{seconds:.1f}'} |")
  for metric, title in (("balanced_accuracy", "Balanced accuracy"),
                        ("auc", "ROC AUC"),
                        ("tpr_at_0.1pct_fpr", "TPR at 0.1% FPR")):
    lines += ["", f"## {title} (%)", "",
              "| configuration | " + " | ".join(attacks) + " |",
              "|---|" + "---|" * len(attacks)]
    for label, e in entries.items():
      cells = [_pct(e["attacks"].get(a, {}).get(metric)) for a in attacks]
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
  lines += ["", "Plots: plots/privacy_utility.png, plots/roc_best.png, "
            "plots/iterations.png" + (", plots/attack_per_iteration.png"
                                      if per_iteration else "") + "."]
  return "\n".join(lines) + "\n"


def _plot_privacy_utility(report, path):
  fig = mpl_figure.Figure(figsize=(5.5, 4.2))
  ax = fig.subplots()
  for label, e in report["defenses"].items():
    x = 100 * e["best_attack"]["balanced_accuracy"]
    y = 100 * e["test_accuracy"]
    ax.scatter([x], [y], s=40)
    ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4),
                fontsize=8)
  ax.set_xlabel("strongest adaptive attack, balanced accuracy (%)")
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
  ax.legend(fontsize=7)
  fig.tight_layout()
  plotting.save_png(fig, path)


def write_report(run_dir: str, labels: List[str]) -> Dict[str, Any]:
  """Writes report.json, report.md and plots/; returns the report dict.

  plots/attack_per_iteration.png is drawn when some configuration has an
  experiments/<label>/iterations.json (`wemem_eval.iterations`).
  """
  report = collect(run_dir, labels)
  plots = os.path.join(run_dir, "plots")
  os.makedirs(plots, exist_ok=True)
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
  io_utils.atomic_write_json(os.path.join(run_dir, "report.json"), report)
  io_utils.atomic_write_bytes(os.path.join(run_dir, "report.md"),
                              markdown(report).encode())
  return report
