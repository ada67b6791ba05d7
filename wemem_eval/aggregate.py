"""Mean ± std across the reports of runs with different seeds.

`aggregate` reads each run's report.json (see wemem_eval/report.py), keeps the
configurations present in every run, and summarizes per configuration:
test accuracy, the best attack's balanced accuracy (the victim-side maximum
over attacks, chosen per seed; how often each attack was the best is listed),
the attacker-side best attack's balanced accuracy, defense time, and every
attack's balanced accuracy, AUC and TPR at 0.1% FPR (null where not
estimable). Standard deviations are sample standard deviations (ddof = 1)
over seeds.

Paired comparisons: for each configuration against "base" and against
"unpruned" (when present), "paired_differences"[reference][metric] holds the
per-seed differences configuration − reference of `PAIRED_METRICS`, their
mean and a `CONFIDENCE` t-interval over seeds,
  mean ± t_{(1 + CONFIDENCE) / 2, n − 1} · s / √n
(n seeds with both values, s their sample standard deviation); with fewer
than two seeds the interval is null with a "reason". Fractions in [0, 1].
"""

import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy import stats as sp_stats

from wemem_tf import io_utils

ATTACK_METRICS = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr")
ORDER = ("unpruned", "one_shot", "base", "rsw", "rmr", "swmr", "random", "ppb",
         "advreg", "dp", "relaxloss", "hamp")
CONFIDENCE = 0.95
REFERENCES = ("base", "unpruned")
ATTACKER_SIDE = "best_attack_attacker_side"


def _victim_side_best(entry: Dict[str, Any]) -> Optional[float]:
  return entry["best_attack"]["balanced_accuracy"]


def _attacker_side_best(entry: Dict[str, Any]) -> Optional[float]:
  # None for reports written before issue 21, or without calibration values.
  return (entry.get(ATTACKER_SIDE) or {}).get("balanced_accuracy")


def _bound(entry: Dict[str, Any]) -> Optional[float]:
  # None for reports written before the label-only bound.
  return (entry.get("label_only_bound") or {}).get("balanced_accuracy")


def _excess(side: str) -> Callable[[Dict[str, Any]], Optional[float]]:
  return lambda entry: (entry.get("excess_leakage") or {}).get(side)


# aggregate.json key → the value of one seed's report entry.
PAIRED_METRICS = {
    "best_attack_balanced_accuracy": _victim_side_best,
    "best_attack_attacker_side_balanced_accuracy": _attacker_side_best,
    "test_accuracy": lambda entry: entry["test_accuracy"],
    "excess_leakage_attacker_side": _excess("attacker_side"),
}


def _stats(values: Sequence[float]) -> Dict[str, Any]:
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.size == 0:
    return {"mean": None, "std": None, "n": 0, "values": []}
  return {"mean": float(v.mean()),
          "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
          "n": int(v.size), "values": [float(x) for x in v]}


def paired_difference(values: Sequence[Optional[float]],
                      reference: Sequence[Optional[float]],
                      seeds: Sequence[int]) -> Dict[str, Any]:
  """Mean of values − reference over seeds, with a t-interval.

  Args:
    values, reference: one value per seed (None where missing), paired by
      position.
    seeds: the seeds, in the same order.

  Returns:
    {"mean", "interval": [low, high] | None, "n", "seeds", "differences"},
    plus "reason" when the interval is None.
  """
  pairs = [(s, v - r) for s, v, r in zip(seeds, values, reference)
           if v is not None and r is not None]
  d = np.asarray([p[1] for p in pairs], np.float64)
  out = {"mean": float(d.mean()) if d.size else None, "interval": None,
         "n": int(d.size), "seeds": [p[0] for p in pairs],
         "differences": [float(x) for x in d]}
  if d.size < 2:
    out["reason"] = (f"{d.size} seed(s) with both values: a t-interval "
                     "needs at least 2")
    return out
  half = (sp_stats.t.ppf((1 + CONFIDENCE) / 2, d.size - 1)
          * d.std(ddof=1) / np.sqrt(d.size))
  out["interval"] = [float(d.mean() - half), float(d.mean() + half)]
  return out


def _paired(reports: Sequence[Dict[str, Any]], label: str,
            labels: Sequence[str]) -> Dict[str, Any]:
  """{reference: {metric: paired_difference}} of one configuration."""
  seeds = [r["seed"] for r in reports]
  out = {}
  for ref in REFERENCES:
    if ref == label or ref not in labels:
      continue
    out[ref] = {key: paired_difference(
        [value(r["defenses"][label]) for r in reports],
        [value(r["defenses"][ref]) for r in reports], seeds)
                for key, value in PAIRED_METRICS.items()}
  return out


def load_reports(run_dirs: Sequence[str]) -> List[Dict[str, Any]]:
  """report.json of each run directory (a clear error when one is missing)."""
  reports = []
  for run_dir in run_dirs:
    path = os.path.join(run_dir, "report.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} does not exist: finish `wemem run "
                              f"--output_dir={run_dir}` first.")
    with open(path) as f:
      reports.append(json.load(f))
  datasets = {r["dataset"] for r in reports}
  if len(datasets) != 1:
    raise ValueError(f"the runs are on different datasets: {sorted(datasets)}.")
  seeds = [r["seed"] for r in reports]
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"two runs share a seed ({seeds}): aggregate runs with "
                     "different seeds.")
  return reports


def aggregate(reports: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Mean ± std per configuration over the runs' reports."""
  labels = sorted((l for l in reports[0]["defenses"]
                   if all(l in r["defenses"] for r in reports)),
                  key=lambda l: (ORDER.index(l) if l in ORDER else len(ORDER),
                                 l))
  out = {}
  for label in labels:
    entries = [r["defenses"][label] for r in reports]
    attacks = [a for a in entries[0]["attacks"]
               if all(a in e["attacks"] for e in entries)]
    best_names = [e["best_attack"]["attack"] for e in entries]
    out[label] = {
        "kind": entries[0].get("kind"),
        "test_accuracy": _stats([e["test_accuracy"] for e in entries]),
        "best_attack_balanced_accuracy": _stats(
            [e["best_attack"]["balanced_accuracy"] for e in entries]),
        "best_attack_counts": {a: best_names.count(a)
                               for a in sorted(set(best_names))},
        "best_attack_attacker_side_balanced_accuracy": _stats(
            [_attacker_side_best(e) for e in entries]),
        "label_only_bound": _stats([_bound(e) for e in entries]),
        "excess_leakage_victim_side": _stats(
            [_excess("victim_side")(e) for e in entries]),
        "excess_leakage_attacker_side": _stats(
            [_excess("attacker_side")(e) for e in entries]),
        "defense_seconds": _stats([e.get("defense_seconds")
                                   for e in entries]),
        "attacks": {a: {m: _stats([e["attacks"][a][m] for e in entries])
                        for m in ATTACK_METRICS} for a in attacks},
        "paired_differences": _paired(reports, label, labels),
    }
  return {"dataset": reports[0]["dataset"],
          "seeds": [r["seed"] for r in reports], "confidence": CONFIDENCE,
          "defenses": out}


def _pm(stats: Dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
  if stats["mean"] is None:
    return "—"
  return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"


def format_difference(diff: Dict[str, Any]) -> str:
  """A mean difference and its interval in percentage points."""
  if diff["mean"] is None:
    return "—"
  if diff["interval"] is None:
    return f"{100 * diff['mean']:+.1f} (no interval)"
  low, high = diff["interval"]
  return f"{100 * diff['mean']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def _paired_tables(summary: Dict[str, Any]) -> List[str]:
  """One table per reference configuration of the paired differences."""
  lines = []
  confidence = f"{100 * summary['confidence']:g}%"
  for ref in REFERENCES:
    rows = {label: e["paired_differences"][ref]
            for label, e in summary["defenses"].items()
            if ref in e["paired_differences"]}
    if not rows:
      continue
    lines += ["", f"Paired differences vs {ref} (percentage points, "
              f"configuration − {ref} per seed; mean [{confidence} "
              "t-interval over seeds]):", "",
              "| configuration | best attack bal. acc. (victim-side max) | "
              "best attack bal. acc. (attacker-side) | test accuracy | "
              "excess over the label-only bound (attacker-side) |",
              "|---|---|---|---|---|"]
    for label, diffs in rows.items():
      lines.append(f"| {label} | " + " | ".join(
          format_difference(diffs[key]) for key in PAIRED_METRICS) + " |")
  return lines


def _auc_tpr(metrics: Dict[str, Any]) -> str:
  tpr = metrics["tpr_at_0.1pct_fpr"]["mean"]
  return (f"{100 * metrics['auc']['mean']:.1f} / "
          f"{'n/a' if tpr is None else f'{100 * tpr:.1f}'}")


def to_markdown(summary: Dict[str, Any]) -> str:
  """The headline per configuration, the paired differences, then every
  attack."""
  seeds = ", ".join(str(s) for s in summary["seeds"])
  lines = [f"# {summary['dataset']}: mean ± std over seeds {seeds}", "",
           "Best attack: the victim-side maximum over attacks (optimistic) "
           "and the attack chosen on the attacker's own calibration data. "
           "Bound: the label-only bound the gap attack reaches; excess: the "
           "attacker-side best attack minus it.",
           "", "| configuration | test accuracy | best attack bal. acc. | "
           "best attack (seeds) | attacker-side best attack bal. acc. | "
           "label-only bound | excess (attacker-side) | defense time (s) |",
           "|---|---|---|---|---|---|---|---|"]
  for label, e in summary["defenses"].items():
    counts = ", ".join(f"{a} ×{n}" for a, n in e["best_attack_counts"].items())
    missing = {"mean": None}
    lines.append(f"| {label} | {_pm(e['test_accuracy'])} | "
                 f"{_pm(e['best_attack_balanced_accuracy'])} | {counts} | "
                 f"{_pm(e['best_attack_attacker_side_balanced_accuracy'])} | "
                 f"{_pm(e.get('label_only_bound', missing))} | "
                 f"{_pm(e.get('excess_leakage_attacker_side', missing))} | "
                 f"{_pm(e['defense_seconds'], 1.0)} |")
  lines += _paired_tables(summary)
  attacks = list(next(iter(summary["defenses"].values()))["attacks"]) \
      if summary["defenses"] else []
  lines += ["", "Balanced accuracy (%) of each attack:", "",
            "| configuration | " + " | ".join(attacks) + " |",
            "|---|" + "---|" * len(attacks)]
  for label, e in summary["defenses"].items():
    lines.append(f"| {label} | " + " | ".join(
        _pm(e["attacks"][a]["balanced_accuracy"]) if a in e["attacks"]
        else "—" for a in attacks) + " |")
  lines += ["", "AUC (%) / TPR at 0.1% FPR (%) of each attack (n/a: below "
            "the FPR resolution):", "",
            "| configuration | " + " | ".join(attacks) + " |",
            "|---|" + "---|" * len(attacks)]
  for label, e in summary["defenses"].items():
    cells = [_auc_tpr(e["attacks"][a]) if a in e["attacks"] else "—"
             for a in attacks]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_aggregate(run_dirs: Sequence[str], output_dir: str) -> Dict[str, str]:
  """Writes aggregate.json and aggregate.md into `output_dir`."""
  summary = aggregate(load_reports(run_dirs))
  summary["runs"] = [os.path.abspath(d) for d in run_dirs]
  os.makedirs(output_dir, exist_ok=True)
  paths = {"json": os.path.join(output_dir, "aggregate.json"),
           "md": os.path.join(output_dir, "aggregate.md")}
  io_utils.atomic_write_json(paths["json"], summary)
  io_utils.atomic_write_bytes(paths["md"], to_markdown(summary).encode())
  return paths
