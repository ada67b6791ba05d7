"""Compares a multi-seed run's aggregate with a reference aggregate.

  python benchmarks/cohort_distribution_location.py \
      --new=runs/location_cohorts3 \
      --reference=results/location_3seeds_stratified \
      --output=benchmarks/results/cohort_distribution_location

Both directories hold the `aggregate.json` of `wemem run --seeds=...` (or
`wemem report --runs=...`); `--new` also holds `seed_<S>/` with each
configuration's `experiments/<name>/attacks.json`, whose timings give the
per-configuration breakdown. For every configuration the reference has,
prints (and writes as .md / .json) test accuracy, the victim-side best attack
and the attacker-side best attack as mean ± sample std over seeds for both,
the difference of means, whether it lies within one reference std (the
issue's rule) and Welch's t-test p-value; then, per attack, how many of its
mean AUCs moved by more than one reference std.

With 3 seeds a side, "within one std" fails by chance alone: for two samples
of 3 from the same normal distribution, |difference of means| exceeds the
reference's sample std with probability about 0.35 (`chance_rate`), so about
a third of the rows are expected to say "no" when nothing changed.
"""

import argparse
import glob
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
from scipy import stats

HEADLINE = (("test_accuracy", "test accuracy"),
            ("best_attack_balanced_accuracy", "best attack, victim-side"),
            ("best_attack_attacker_side_balanced_accuracy",
             "attacker-side best"))


def _stat(entry: Optional[Dict[str, Any]]):
  if not entry or entry.get("mean") is None:
    return None
  return 100 * entry["mean"], 100 * (entry.get("std") or 0.0)


def chance_rate(n_new: int, n_ref: int, draws: int = 200_000) -> float:
  """P(|mean of n_new − mean of n_ref| > sample std of the n_ref) for
  samples of one normal distribution (Monte Carlo, fixed seed)."""
  rng = np.random.default_rng(0)
  a = rng.normal(size=(draws, n_new))
  b = rng.normal(size=(draws, n_ref))
  return float(np.mean(np.abs(a.mean(1) - b.mean(1)) > b.std(1, ddof=1)))


def welch_p(ref: Dict[str, Any], new: Dict[str, Any]) -> Optional[float]:
  a, b = ref.get("values") or [], new.get("values") or []
  if len(a) < 2 or len(b) < 2:
    return None
  return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def compare(reference: Dict[str, Any], new: Dict[str, Any]
            ) -> List[Dict[str, Any]]:
  """One row per (configuration, headline metric) the reference has."""
  rows = []
  for config, ref in reference["defenses"].items():
    cur = new["defenses"].get(config)
    if cur is None:
      continue
    for key, label in HEADLINE:
      r, n = _stat(ref.get(key)), _stat(cur.get(key))
      if r is None or n is None:
        continue
      delta = n[0] - r[0]
      rows.append({"configuration": config, "metric": label,
                   "reference": r, "new": n, "delta": delta,
                   "within_one_std": abs(delta) <= r[1],
                   "welch_p": welch_p(ref[key], cur[key])})
  return rows


def attack_moves(reference: Dict[str, Any], new: Dict[str, Any]
                 ) -> Dict[str, Dict[str, int]]:
  """Per attack: configurations compared, and those whose mean AUC moved by
  more than one reference std."""
  moves: Dict[str, Dict[str, int]] = {}
  for config, ref in reference["defenses"].items():
    cur = new["defenses"].get(config, {}).get("attacks", {})
    for attack, metrics in ref.get("attacks", {}).items():
      r, n = _stat(metrics.get("auc")), _stat(cur.get(attack, {}).get("auc"))
      if r is None or n is None:
        continue
      m = moves.setdefault(attack, {"compared": 0, "beyond_one_std": 0})
      m["compared"] += 1
      m["beyond_one_std"] += int(abs(n[0] - r[0]) > r[1])
  return moves


def timings(run_dir: str) -> Dict[str, Dict[str, float]]:
  """{configuration: mean over seeds of each timing_seconds entry}."""
  sums: Dict[str, Dict[str, List[float]]] = {}
  pattern = os.path.join(run_dir, "seed_*", "experiments", "*",
                         "attacks.json")
  for path in sorted(glob.glob(pattern)):
    config = os.path.basename(os.path.dirname(path))
    with open(path) as f:
      timing = json.load(f).get("timing_seconds", {})
    for key, value in timing.items():
      sums.setdefault(config, {}).setdefault(key, []).append(float(value))
  return {c: {k: sum(v) / len(v) for k, v in t.items()}
          for c, t in sums.items()}


def _cell(stat) -> str:
  return f"{stat[0]:.1f} ± {stat[1]:.1f}"


def markdown(rows, moves, times) -> str:
  lines = ["| configuration | metric | reference | new | Δ | within 1 std "
           "| Welch p |", "|---|---|---:|---:|---:|---|---:|"]
  for r in rows:
    p = "n/a" if r["welch_p"] is None else f"{r['welch_p']:.2f}"
    lines.append(f"| {r['configuration']} | {r['metric']} | "
                 f"{_cell(r['reference'])} | {_cell(r['new'])} | "
                 f"{r['delta']:+.1f} | "
                 f"{'yes' if r['within_one_std'] else '**no**'} | {p} |")
  outside = sum(not r["within_one_std"] for r in rows)
  pvalues = [r["welch_p"] for r in rows if r["welch_p"] is not None]
  lines += ["", f"Outside one reference std: {outside} of {len(rows)} rows "
            f"(expected by chance with 3 seeds a side: "
            f"{chance_rate(3, 3) * len(rows):.1f}); Welch p < 0.05: "
            f"{sum(p < 0.05 for p in pvalues)} of {len(pvalues)} "
            f"(expected {0.05 * len(pvalues):.1f})."]
  lines += ["", "| attack | configurations | mean AUC moved > 1 reference std |",
            "|---|---:|---:|"]
  for attack, m in sorted(moves.items()):
    lines.append(f"| {attack} | {m['compared']} | {m['beyond_one_std']} |")
  if times:
    keys = ["victim_training", "shadow_training", "reference_training",
            "querying", "attacks", "total"]
    lines += ["", "Mean seconds per configuration over seeds (new run):", "",
              "| configuration | " + " | ".join(keys) + " |",
              "|---|" + "---:|" * len(keys)]
    for config, t in sorted(times.items()):
      lines.append(f"| {config} | " + " | ".join(
          f"{t.get(k, float('nan')):.0f}" for k in keys) + " |")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--new", required=True)
  parser.add_argument("--reference", required=True)
  parser.add_argument("--output", required=True,
                      help="path without extension: writes .md and .json")
  args = parser.parse_args()
  with open(os.path.join(args.reference, "aggregate.json")) as f:
    reference = json.load(f)
  with open(os.path.join(args.new, "aggregate.json")) as f:
    new = json.load(f)
  rows, moves = compare(reference, new), attack_moves(reference, new)
  times = timings(args.new)
  text = markdown(rows, moves, times)
  print(text)
  with open(args.output + ".md", "w") as f:
    f.write(text)
  with open(args.output + ".json", "w") as f:
    json.dump({"rows": rows, "attack_moves": moves, "timings": times}, f,
              indent=1)


if __name__ == "__main__":
  main()
