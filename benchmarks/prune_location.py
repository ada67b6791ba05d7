"""Benchmark: pre-train and iteratively prune one ColumnFC on Location.

Prints, for the library's compiled loop and for the same work done with one
plain `model.fit(epochs=1)` + `model.evaluate` per epoch:
  * total wall time of a fixed-length run (pre-training E_pre epochs, then 5
    pruning iterations of E_it epochs, dev accuracy after every epoch),
  * median seconds per epoch after warm-up (first epoch of each model dropped),
and their ratio; then the wall time of the real pipeline
(`pretrain_and_prune`, early stopping) at docs/method.md §3 settings.
Each figure is the median of --repeats runs in this process.

  python benchmarks/prune_location.py --data_dir=../shared/data
"""

import argparse
import os
import statistics
import time

import numpy as np

import wemem_tf  # first: Keras 2
import tensorflow as tf  # pylint: disable=g-bad-import-order
from wemem_tf import keras
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib


def _epochs_ours(loop, train, dev, epochs, rng):
  x = tf.convert_to_tensor(train[0])
  y = tf.convert_to_tensor(train[1].astype(np.int64))
  times = []
  for _ in range(epochs):
    start = time.perf_counter()
    loop.train_epoch(x, y, loop_lib.shuffled_plan(len(train[1]), loop.config, rng))
    loop.accuracy(*dev)
    times.append(time.perf_counter() - start)
  return times


def _epochs_fit(model, train, dev, epochs, after_epoch=None):
  times = []
  for _ in range(epochs):
    start = time.perf_counter()
    # Keras' own fit, one epoch at a time (a pruned model's `fit` would run
    # the whole schedule; the baseline is plain Keras).
    keras.Model.fit(model, train[0], train[1], batch_size=128, epochs=1,
                    shuffle=True, verbose=0)
    if after_epoch:
      after_epoch()
    model.evaluate(dev[0], dev[1], batch_size=4096, verbose=0)
    times.append(time.perf_counter() - start)
  return times


def _compile(model, config):
  # The baseline leaves out the L2 term the library adds to every gradient,
  # which only makes the baseline cheaper.
  model.compile(keras.optimizers.Adam(config.learning_rate),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])


def one_run(ds, split, pre_epochs, it_epochs, seed):
  train, dev = ds.take(split.train), ds.take(split.dev)
  config = loop_lib.TrainConfig()
  pconfig = iterative.PruningConfig(0.6, 5, epochs_per_iteration=it_epochs)
  out = {}
  for mode in ("ours", "fit"):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    dense = wemem_tf.models.column_fc(ds.input_shape, ds.num_classes)
    steady = []
    if mode == "ours":
      times = _epochs_ours(loop_lib.TrainingLoop(dense, config), train, dev,
                           pre_epochs, rng)
    else:
      _compile(dense, config)
      times = _epochs_fit(dense, train, dev, pre_epochs)
    steady += times[1:]
    wrapped = prune_lib.prune_low_memorization(dense, pconfig.schedule())
    rounds = iterative.PruningRounds(wrapped)
    loop = loop_lib.TrainingLoop(wrapped, config,
                                 after_epoch=rounds.apply_masks)
    if mode == "fit":
      _compile(wrapped, config)
    for k in range(pconfig.num_iterations):
      rounds.start(k)
      if mode == "ours":
        times = _epochs_ours(loop, train, dev, it_epochs, rng)
      else:
        times = _epochs_fit(wrapped, train, dev, it_epochs, rounds.apply_masks)
      steady += times[1:] if k == 0 else times
    out[mode] = {"total_seconds": time.perf_counter() - start,
                 "median_epoch_seconds": statistics.median(steady),
                 "epochs": pre_epochs + pconfig.num_iterations * it_epochs}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(
      os.path.dirname(__file__), "..", "..", "shared", "data"))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--pretrain_epochs", type=int, default=30)
  parser.add_argument("--epochs_per_iteration", type=int, default=21)
  parser.add_argument("--output", default=None, help="optional JSON path")
  args = parser.parse_args()
  ds = wemem_tf.data.load_dataset("location", args.data_dir)
  split = wemem_tf.data.splits_for(ds, seed=0, num_shadows=0).victim
  runs = [one_run(ds, split, args.pretrain_epochs, args.epochs_per_iteration,
                  seed) for seed in range(args.repeats)]
  pipeline_seconds = []
  for seed in range(args.repeats):
    start = time.perf_counter()
    wemem_tf.pretrain_and_prune(ds, split, seed)
    pipeline_seconds.append(time.perf_counter() - start)

  def med(mode, key):
    return statistics.median(r[mode][key] for r in runs)

  result = {
      "records_train": int(len(split.train)),
      "epochs_per_run": runs[0]["ours"]["epochs"],
      "repeats": args.repeats,
      "ours_total_seconds": med("ours", "total_seconds"),
      "fit_total_seconds": med("fit", "total_seconds"),
      "ours_median_epoch_seconds": med("ours", "median_epoch_seconds"),
      "fit_median_epoch_seconds": med("fit", "median_epoch_seconds"),
      "pipeline_seconds_median": statistics.median(pipeline_seconds),
      "cpu_count": os.cpu_count(),
  }
  result["total_speedup"] = result["fit_total_seconds"] / result["ours_total_seconds"]
  result["epoch_speedup"] = (result["fit_median_epoch_seconds"]
                             / result["ours_median_epoch_seconds"])
  print(f"Location ColumnFC, {result['records_train']} training records, "
        f"{result['epochs_per_run']} epochs per run, median of {args.repeats}")
  print(f"  total wall time   ours {result['ours_total_seconds']:.2f} s   "
        f"fit-per-epoch {result['fit_total_seconds']:.2f} s   "
        f"ratio {result['total_speedup']:.1f}x")
  print(f"  median s/epoch    ours {result['ours_median_epoch_seconds'] * 1e3:.1f} ms"
        f"   fit-per-epoch {result['fit_median_epoch_seconds'] * 1e3:.1f} ms   "
        f"ratio {result['epoch_speedup']:.1f}x")
  print(f"  full pipeline (pretrain_and_prune, early stopping, docs/method.md §3): "
        f"{result['pipeline_seconds_median']:.2f} s")
  if args.output:
    wemem_tf.io_utils.atomic_write_json(args.output, result)


if __name__ == "__main__":
  main()
