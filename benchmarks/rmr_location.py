"""Which members do LiRA and RMIA still catch under RMR? (issue 19)

Reads finished `wemem run` directories (one per seed) and, for the base,
RMR and SWMR victims, splits the victim's members by the defender's own
memorization score (the training-pool estimate the defense used) into
*risky* members (score ≥ τ, the records RMR regularizes) and *ordinary*
members. For each attack it reports, per group, the AUC of the members
against all non-members and the TPR at 10% FPR (threshold at the
non-members' 90th percentile), so one sees whether RMR protects the records
it targets and which records keep the attack high.

  python benchmarks/rmr_location.py --runs=runs/loc22/seed_0,... \\
      --output=benchmarks/results/rmr_location

Writes OUTPUT.json and OUTPUT.md. Only reads artifacts; trains nothing.
"""

import glob
import json
import os
from typing import Any, Dict, List

from absl import app
from absl import flags
import numpy as np

from attacks import metrics as metrics_lib

RUNS = flags.DEFINE_list("runs", None, "Finished `wemem run` directories.")
OUTPUT = flags.DEFINE_string("output", None, "Output path without suffix.")
CONFIGS = flags.DEFINE_list("configs", ["base", "rmr", "swmr"],
                            "Configurations to analyse.")
ATTACKS = flags.DEFINE_list("attacks", ["rmia", "lira_online", "conf"],
                            "Attacks to analyse.")
FPR = 0.10


def _pool_scores(run_dir: str) -> Dict[int, float]:
  """{dataset index: score} of the defender's estimate (the one over the
  training pool, i.e. the file with fewer records)."""
  files = glob.glob(os.path.join(run_dir, "memscores", "memscores-*.npz"))
  if not files:
    raise ValueError(f"{run_dir} holds no memorization scores.")
  arrays = [np.load(f) for f in files]
  pool = min(arrays, key=lambda a: len(a["index"]))
  return dict(zip(pool["index"].tolist(), pool["score"].tolist()))


def _group_metrics(members: np.ndarray, non_members: np.ndarray
                   ) -> Dict[str, Any]:
  if len(members) == 0:
    return {"count": 0, "auc": None, "tpr_at_10pct_fpr": None}
  cut = np.quantile(non_members, 1.0 - FPR)
  return {"count": int(len(members)),
          "auc": float(metrics_lib.roc_curve(members, non_members).get_auc()),
          "tpr_at_10pct_fpr": float(np.mean(members > cut))}


def analyse(run_dir: str, label: str, attack: str,
            scores: Dict[int, float]) -> Dict[str, Any]:
  folder = os.path.join(run_dir, "experiments", label)
  with open(os.path.join(folder, "attacks.json")) as f:
    doc = json.load(f)
  tau = (doc.get("defense") or {}).get("tau") or 0.6
  raw = np.load(os.path.join(folder, "attack_scores.npz"))
  member = raw[f"{attack}_member_scores"]
  non_member = raw[f"{attack}_non_member_scores"]
  ids = raw[f"{attack}_member_ids"]
  member_scores = np.array([scores.get(int(i), np.nan) for i in ids])
  risky = member_scores >= tau
  return {"tau": tau, "risky_share": float(np.mean(risky)),
          "all": _group_metrics(member, non_member),
          "risky": _group_metrics(member[risky], non_member),
          "ordinary": _group_metrics(member[~risky], non_member)}


def _cell(group: Dict[str, Any]) -> str:
  if group["auc"] is None:
    return "—"
  return f"{100 * group['auc']:.1f} / {100 * group['tpr_at_10pct_fpr']:.1f}"


def main(argv: List[str]) -> None:
  del argv
  if not RUNS.value or not OUTPUT.value:
    raise app.UsageError("--runs and --output are required.")
  rows = []
  for run_dir in RUNS.value:
    with open(os.path.join(run_dir, "manifest.json")) as f:
      seed = json.load(f)["seed"]
    scores = _pool_scores(run_dir)
    for label in CONFIGS.value:
      for attack in ATTACKS.value:
        rows.append({"seed": seed, "configuration": label, "attack": attack,
                     **analyse(run_dir, label, attack, scores)})
  os.makedirs(os.path.dirname(os.path.abspath(OUTPUT.value)), exist_ok=True)
  with open(OUTPUT.value + ".json", "w") as f:
    json.dump({"runs": RUNS.value, "fpr": FPR, "rows": rows}, f, indent=1)
  lines = ["| seed | configuration | attack | risky share of members | "
           "all members AUC / TPR@10% | risky | ordinary |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['seed']} | {r['configuration']} | {r['attack']} | "
                 f"{100 * r['risky_share']:.1f} | {_cell(r['all'])} | "
                 f"{_cell(r['risky'])} | {_cell(r['ordinary'])} |")
  with open(OUTPUT.value + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
