"""Fine-tuning time of each defense on Location, relative to no defense.

One Location victim (seed 0's split) is pre-trained once; then the five
pruning iterations of docs/method.md §3 run with each defense from that same
pre-trained model, `--repeats` times, and the script prints per defense the
median wall time of the defended fine-tuning (`prune_seconds`: every
iteration, its epochs, dev evaluations and checkpoints), the epochs run, the
time per epoch, and both as a ratio to the base configuration measured in
the same process. The WeMem defenses use a 128-model memorization estimate
over the training pool (computed once, cached in --cache_dir).

Runs against whatever `wemem_tf` is importable, so the same script measures
an older checkout (PYTHONPATH=<worktree>) back to back with this one.

Usage:
  python benchmarks/defense_cost_location.py --repeats 3 \
      --output benchmarks/results/defense_cost_location.json
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top

import wemem_tf  # pylint: disable=g-import-not-at-top
from wemem_tf import defenses
from wemem_tf import memorization
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline
from wemem_tf.training import loop as loop_lib

DEFENSES = ("none", "rsw", "rmr", "swmr", "random", "ppb", "advreg", "dp",
            "relaxloss", "hamp")


def _code_version() -> str:
  root = os.path.dirname(os.path.dirname(os.path.abspath(wemem_tf.__file__)))
  try:
    return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _scores(dataset, pool, cache_dir):
  path = os.path.join(cache_dir, "memscores_location_pool_seed0.npz")
  if os.path.isfile(path):
    return memorization.MemScores.load(path, fingerprint=dataset.fingerprint)
  scores = memorization.estimate_dataset(dataset, pool, "column_fc",
                                         num_models=128, epochs=30, seed=0)
  os.makedirs(cache_dir, exist_ok=True)
  scores.save(path)
  return scores


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--defenses", default=",".join(DEFENSES))
  parser.add_argument("--cache_dir", default="/tmp/wemem_defense_cost")
  parser.add_argument("--output", default=None)
  args = parser.parse_args()

  dataset = datasets.load_dataset("location", data_dir=args.data_dir)
  splits = splits_lib.splits_for(dataset, 0, num_shadows=0)
  split = splits.victim
  # The same settings before and after (patience 6: the current default).
  train_config = loop_lib.TrainConfig(patience=6)
  pruning_config = iterative.PruningConfig(
      target_sparsity=0.6, num_iterations=5, epochs_per_iteration=21,
      patience=6)
  load_before = os.getloadavg()
  pretrained, fit, pretrain_seconds = pipeline.pretrain_model(
      dataset, split, 0, "column_fc", train_config)
  scores = _scores(dataset, splits.pool, args.cache_dir)
  rows = {}
  for name in args.defenses.split(","):
    times, epochs, accuracy = [], [], []
    for repeat in range(args.repeats):
      defense = (None if name == "none"
                 else defenses.build(name, "location", lambda: scores))
      result = pipeline.pretrain_and_prune(
          dataset, split, 0, pruning_config=pruning_config,
          train_config=train_config, pretrained=pretrained, defense=defense)
      times.append(result.prune_seconds)
      epochs.append(sum(r.epochs_run for r in result.history))
      accuracy.append(result.history[-1].test_accuracy)
      print(f"{name:<10} repeat {repeat}: {result.prune_seconds:7.1f} s, "
            f"{epochs[-1]} epochs, test accuracy {accuracy[-1]:.3f}",
            flush=True)
    rows[name] = {"seconds": times, "epochs": epochs,
                  "median_seconds": statistics.median(times),
                  "median_seconds_per_epoch": statistics.median(
                      t / e for t, e in zip(times, epochs)),
                  "test_accuracy": accuracy}
  base = rows.get("none")
  print(f"\n{'defense':<10} {'fine-tune s':>11} {'epochs':>7} {'s/epoch':>8}"
        f" {'x base':>7} {'x base/epoch':>13}")
  for name, row in rows.items():
    ratio = row["median_seconds"] / base["median_seconds"] if base else None
    per_epoch = (row["median_seconds_per_epoch"] /
                 base["median_seconds_per_epoch"] if base else None)
    row["ratio_to_base"] = ratio
    row["per_epoch_ratio_to_base"] = per_epoch
    print(f"{name:<10} {row['median_seconds']:11.1f} "
          f"{statistics.median(row['epochs']):7.0f} "
          f"{row['median_seconds_per_epoch']:8.3f} "
          f"{ratio if ratio is not None else float('nan'):7.2f} "
          f"{per_epoch if per_epoch is not None else float('nan'):13.2f}")
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  out = {"code_version": _code_version(), "repeats": args.repeats,
         "pretrain_seconds": pretrain_seconds,
         "peak_rss_mb": peak, "load_average_before": load_before,
         "load_average_after": os.getloadavg(),
         "machine": f"{platform.machine()}, {os.cpu_count()} cores",
         "defenses": rows}
  print(f"peak RSS {peak:.0f} MB; load average before {load_before}, after "
        f"{out['load_average_after']}")
  if args.output:
    with open(args.output, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
