"""A pooled audit of Location: TPR at 0.1% FPR with its interval.

  python benchmarks/pooled_location.py [--data_dir=../shared/data]
      [--num_targets=16] [--defenses=none,swmr] [--seed=0]
      [--work=/tmp/wemem_pooled_location]

For each defense, `wemem attack --flagfile=configs/location_base.cfg
--num_targets=N` (docs/method.md §7, "Pooled targets"): N victims trained by
the same pipeline on different draws of the victim pool, every attack
fitted once on the attacker's models and scored on all N, the scores
pooled. One victim has 463 non-members, so its "TPR at 0.1% FPR" is not
estimable (resolution 0.22%); N = 16 pools 7,408. Writes
benchmarks/results/pooled_location.json and .md (per attack: AUC, TPR at
0.1% and 1% FPR, each with its 95% bootstrap interval, and the wall time).
Resumable: a finished attack directory is not redone.
"""

import argparse
import json
import os
import subprocess
import sys
import time

OUT = "benchmarks/results/pooled_location"


def _attack(defense: str, args) -> dict:
  out = os.path.join(args.work, defense)
  path = os.path.join(out, "attacks.json")
  seconds = None
  if not os.path.isfile(path):
    cmd = [os.path.join(os.path.dirname(sys.executable), "wemem"), "attack",
           "--flagfile=configs/location_base.cfg",
           f"--data_dir={args.data_dir}", f"--defense={defense}",
           f"--seed={args.seed}", f"--num_targets={args.num_targets}",
           f"--model_store_dir={os.path.join(args.work, 'store')}",
           f"--output_dir={out}"]
    start = time.perf_counter()
    with open(out + ".log", "w") as log:
      subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True,
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                              TF_USE_LEGACY_KERAS="1"))
    seconds = time.perf_counter() - start
  with open(path) as f:
    doc = json.load(f)
  return {"wall_seconds": seconds, "pooled_targets": doc["pooled_targets"],
          "attacks": doc["attacks"]}


def _cell(row: dict, key: str) -> str:
  value = row[key]
  if value is None:
    return "n/a"
  low, high = row["intervals"][key]
  return f"{100 * value:.2f} [{100 * low:.2f}, {100 * high:.2f}]"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--num_targets", type=int, default=16)
  parser.add_argument("--defenses", default="none,swmr")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--work", default="/tmp/wemem_pooled_location")
  args = parser.parse_args()
  os.makedirs(args.work, exist_ok=True)
  results = {d: _attack(d, args) for d in args.defenses.split(",")}
  with open(OUT + ".json", "w") as f:
    json.dump({"command": "python " + " ".join(sys.argv), "results": results},
              f, indent=2)
  lines = [f"# Pooled audit of Location: {args.num_targets} targets, "
           f"seed {args.seed}", "",
           f"`python {' '.join(sys.argv)}`: `wemem attack "
           "--flagfile=configs/location_base.cfg "
           f"--num_targets={args.num_targets}` per defense (adaptive "
           "attacker, 5 shadows, 6 reference models shared by all targets). "
           "Percent, with 95% stratified-bootstrap intervals over the pooled "
           "records.", ""]
  for defense, r in results.items():
    pooled = r["pooled_targets"]
    first = r["attacks"][0]
    wall = ("" if r["wall_seconds"] is None
            else f", wall time {r['wall_seconds']:.0f} s")
    lines += [f"## {defense}", "",
              f"{pooled['num_targets']} targets, test accuracy "
              f"{100 * pooled['mean_test_accuracy']:.1f}% on average "
              f"({100 * min(pooled['test_accuracies']):.1f}–"
              f"{100 * max(pooled['test_accuracies']):.1f}); "
              f"{first['num_members']} member and {first['num_non_members']} "
              f"non-member observations (FPR resolution "
              f"{100 * first['fpr_resolution']:.3f}%){wall}.", "",
              "| attack | AUC | TPR at 0.1% FPR | TPR at 1% FPR | "
              "TPR at 0 FP |", "|---|---|---|---|---|"]
    for row in r["attacks"]:
      lines.append(f"| {row['attack']} | {_cell(row, 'auc')} | "
                   f"{_cell(row, 'tpr_at_0.1pct_fpr')} | "
                   f"{_cell(row, 'tpr_at_1pct_fpr')} | "
                   f"{100 * row['tpr_at_zero_fpr']:.2f} |")
    lines.append("")
  with open(OUT + ".md", "w") as f:
    f.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
