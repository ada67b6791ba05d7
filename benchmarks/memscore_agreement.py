"""Benchmark: how stable are memorization scores from K models? (issue 18)

Compares two independent memorization estimates of the same records, e.g.
the defender's (its training pool) and the adaptive attacker's (every
record) that one `wemem run` writes to `<run>/memscores/`: their models
train on independently drawn subsets, so their agreement on the records both
score is the test-retest reliability of a K-model estimate. Prints, on those
records:
  * Pearson and Spearman correlation of the two score vectors;
  * overlap of the top 10% / 25% (the records a high->low window visits first);
  * Jaccard overlap of the risky sets (score >= tau) at each tau given;
  * the Spearman–Brown projection of how many models the estimate needs
    for a target reliability R: K_R = K * R (1 - r) / (r (1 - R)), where r is
    the measured Pearson correlation of two K-model estimates.

  python benchmarks/memscore_agreement.py /work/runs/cifar_cnn_seed0 \
      --taus=0.5 --json=benchmarks/results/memscore_agreement_cifar10.json
"""

import argparse
import glob
import json
import os

import numpy as np
from scipy import stats

from wemem_tf.memorization import scores as scores_lib


def _estimates(paths):
  """Two `MemScores` from two .npz files or one run dir's memscores/."""
  if len(paths) == 1 and os.path.isdir(paths[0]):
    paths = sorted(glob.glob(os.path.join(paths[0], "memscores", "*.npz")))
  if len(paths) != 2:
    raise SystemExit(f"need exactly two score files, found {len(paths)}: "
                     f"{paths}")
  return [scores_lib.MemScores.load(p) for p in paths], paths


def _top_overlap(a, b, share):
  k = max(1, int(round(share * len(a))))
  top_a = set(np.argsort(-a, kind="stable")[:k])
  top_b = set(np.argsort(-b, kind="stable")[:k])
  return len(top_a & top_b) / k


def _jaccard(a, b):
  union = np.sum(a | b)
  return float(np.sum(a & b) / union) if union else float("nan")


def models_for_reliability(k: int, r: float, target: float) -> float:
  """Spearman–Brown: models for reliability `target`, given r at k models."""
  if not 0 < r < 1:
    return float("nan")
  return k * target * (1 - r) / (r * (1 - target))


def agreement(first: scores_lib.MemScores, second: scores_lib.MemScores,
              taus=()) -> dict:
  """Agreement of two estimates on the records both score (finite)."""
  common, ia, ib = np.intersect1d(first.index, second.index,
                                  return_indices=True)
  a, b = first.score[ia], second.score[ib]
  ok = np.isfinite(a) & np.isfinite(b)
  a, b = a[ok], b[ok]
  r = float(stats.pearsonr(a, b)[0])
  out = dict(records=int(ok.sum()), common=int(len(common)),
             models=[first.num_models, second.num_models],
             epochs=[first.epochs, second.epochs],
             pearson=r, spearman=float(stats.spearmanr(a, b)[0]),
             top10_overlap=_top_overlap(a, b, 0.10),
             top25_overlap=_top_overlap(a, b, 0.25),
             mean=[float(a.mean()), float(b.mean())])
  k = min(first.num_models, second.num_models)
  out["models_for_reliability"] = {
      str(t): models_for_reliability(k, r, t) for t in (0.8, 0.9)}
  out["risky"] = {str(t): dict(share=[float(np.mean(a >= t)),
                                      float(np.mean(b >= t))],
                               jaccard=_jaccard(a >= t, b >= t))
                  for t in taus}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("paths", nargs="+",
                      help="two scores .npz files, or one run directory")
  parser.add_argument("--taus", default="0.5",
                      help="comma-separated risky thresholds")
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  (first, second), paths = _estimates(args.paths)
  taus = [float(t) for t in args.taus.split(",") if t]
  out = agreement(first, second, taus)
  out["files"] = [os.path.basename(p) for p in paths]
  print(json.dumps(out, indent=1))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
