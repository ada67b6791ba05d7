"""Mean ± std across the reports of runs with different seeds.

`aggregate` reads each run's report.json (see wemem_eval/report.py), keeps the
configurations present in every run, and summarizes per configuration:
test accuracy, the best attack's balanced accuracy (the best attack is
chosen per seed; how often each attack was the best is listed), defense
time, and every attack's balanced accuracy, AUC and TPR at 0.1% FPR.
Standard deviations are sample standard deviations (ddof = 1) over seeds.
"""

import json
import os
from typing import Any, Dict, List, Sequence

import numpy as np

from wemem_tf import io_utils

ATTACK_METRICS = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr")
ORDER = ("unpruned", "one_shot", "base", "rsw", "rmr", "swmr", "random", "ppb",
         "advreg", "dp", "relaxloss", "hamp")


def _stats(values: Sequence[float]) -> Dict[str, Any]:
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.size == 0:
    return {"mean": None, "std": None, "n": 0, "values": []}
  return {"mean": float(v.mean()),
          "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
          "n": int(v.size), "values": [float(x) for x in v]}


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
        "defense_seconds": _stats([e.get("defense_seconds")
                                   for e in entries]),
        "attacks": {a: {m: _stats([e["attacks"][a][m] for e in entries])
                        for m in ATTACK_METRICS} for a in attacks},
    }
  return {"dataset": reports[0]["dataset"],
          "seeds": [r["seed"] for r in reports], "defenses": out}


def _pm(stats: Dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
  if stats["mean"] is None:
    return "—"
  return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"


def to_markdown(summary: Dict[str, Any]) -> str:
  """Two tables: the headline per configuration, then every attack."""
  seeds = ", ".join(str(s) for s in summary["seeds"])
  lines = [f"# {summary['dataset']}: mean ± std over seeds {seeds}", "",
           "| configuration | test accuracy | best attack bal. acc. | best "
           "attack (seeds) | defense time (s) |", "|---|---|---|---|---|"]
  for label, e in summary["defenses"].items():
    counts = ", ".join(f"{a} ×{n}" for a, n in e["best_attack_counts"].items())
    lines.append(f"| {label} | {_pm(e['test_accuracy'])} | "
                 f"{_pm(e['best_attack_balanced_accuracy'])} | {counts} | "
                 f"{_pm(e['defense_seconds'], 1.0)} |")
  attacks = list(next(iter(summary["defenses"].values()))["attacks"]) \
      if summary["defenses"] else []
  lines += ["", "Balanced accuracy (%) of each attack:", "",
            "| configuration | " + " | ".join(attacks) + " |",
            "|---|" + "---|" * len(attacks)]
  for label, e in summary["defenses"].items():
    lines.append(f"| {label} | " + " | ".join(
        _pm(e["attacks"][a]["balanced_accuracy"]) if a in e["attacks"]
        else "—" for a in attacks) + " |")
  lines += ["", "AUC (%) / TPR at 0.1% FPR (%) of each attack:", "",
            "| configuration | " + " | ".join(attacks) + " |",
            "|---|" + "---|" * len(attacks)]
  for label, e in summary["defenses"].items():
    cells = []
    for a in attacks:
      if a not in e["attacks"]:
        cells.append("—")
        continue
      m = e["attacks"][a]
      cells.append(f"{100 * m['auc']['mean']:.1f} / "
                   f"{100 * m['tpr_at_0.1pct_fpr']['mean']:.1f}")
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
