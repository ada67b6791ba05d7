"""Benchmark: one training epoch of the image CNNs on this CPU (issue 18).

For each dataset (the CIFAR-10 subset, MNIST) and architecture, on the
victim's training set of seed 0 (docs/method.md §2), prints the median
seconds per epoch (train + dev accuracy, the first epoch dropped as warm-up)
of:
  * `loop`      the library's compiled loop (`TrainingLoop`: one traced
                function per epoch), at several batch sizes;
  * `loop_xla`  the same loop with the batch update compiled by XLA
                (`TrainStep` under `tf.function(jit_compile=True)`);
  * `fit`       plain `model.fit(epochs=1)` + `model.evaluate`;
and, against `loop` at the same batch size, whether the variant trains
identically: the largest absolute weight difference after two epochs from the
same initial weights and the same batch order.

  python benchmarks/image_speed.py --data_dir=../shared/data \
      --json=benchmarks/results/image_speed.json
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import wemem_tf  # first: Keras 2
import tensorflow as tf  # pylint: disable=g-bad-import-order
from wemem_tf import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import zoo
from wemem_tf.training import loop as loop_lib


class _XlaStep(loop_lib.TrainStep):
  """`TrainStep` whose batch update XLA compiles (same math)."""

  def build(self, model, config):
    super().build(model, config)
    self._compiled = tf.function(super().__call__, jit_compile=True,
                                 reduce_retracing=True)

  def __call__(self, model, xb, yb, weight_decay, kind):
    return self._compiled(model, xb, yb, weight_decay, kind)


def _victim_data(name, data_dir):
  ds = datasets.load_dataset(name, data_dir)
  splits = splits_lib.splits_for(ds, seed=0)
  return ds, ds.take(splits.victim.train), ds.take(splits.victim.dev)


def _model(arch, ds, seed=0):
  keras.utils.set_random_seed(seed)
  return zoo.build_model(arch, ds.input_shape, ds.num_classes)


def _plans(n, config, epochs, seed=0):
  rng = np.random.default_rng(seed)
  return [loop_lib.shuffled_plan(n, config, rng) for _ in range(epochs)]


def _time_loop(loop, train, dev, plans):
  x = tf.convert_to_tensor(train[0], tf.float32)
  y = tf.convert_to_tensor(train[1], tf.int64)
  times = []
  for plan in plans:
    start = time.perf_counter()
    loop.train_epoch(x, y, plan)
    loop.accuracy(*dev)
    times.append(time.perf_counter() - start)
  return times


def _time_fit(model, config, train, dev, epochs):
  model.compile(keras.optimizers.Adam(config.learning_rate),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  times = []
  for _ in range(epochs):
    start = time.perf_counter()
    model.fit(train[0], train[1], batch_size=config.batch_size, epochs=1,
              shuffle=True, verbose=0)
    model.evaluate(dev[0], dev[1], batch_size=config.eval_batch_size, verbose=0)
    times.append(time.perf_counter() - start)
  return times


def _max_weight_diff(arch, ds, config, train, step_cls, epochs=2):
  """Largest |w_loop - w_variant| after `epochs` identical epochs."""
  weights = []
  for cls in (loop_lib.TrainStep, step_cls):
    model = _model(arch, ds)
    loop = loop_lib.TrainingLoop(model, config, train_step=cls())
    x = tf.convert_to_tensor(train[0], tf.float32)
    y = tf.convert_to_tensor(train[1], tf.int64)
    for plan in _plans(len(train[1]), config, epochs):
      loop.train_epoch(x, y, plan)
    weights.append(model.get_weights())
  return max(float(np.max(np.abs(a - b))) for a, b in zip(*weights))


def _measure(arch, ds, train, dev, variant, batch_size, epochs):
  config = loop_lib.TrainConfig(batch_size=batch_size)
  model = _model(arch, ds)
  if variant == "fit":
    return _time_fit(model, config, train, dev, epochs)
  step = _XlaStep() if variant == "loop_xla" else loop_lib.TrainStep()
  loop = loop_lib.TrainingLoop(model, config, train_step=step)
  return _time_loop(loop, train, dev, _plans(len(train[1]), config, epochs))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--datasets", default="cifar10,mnist")
  parser.add_argument("--architectures", default="small_cnn")
  parser.add_argument("--batch_sizes", default="64,128,256")
  parser.add_argument("--epochs", type=int, default=4,
                      help="Epochs timed per variant (the first is warm-up).")
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  rows = []
  for name in args.datasets.split(","):
    ds, train, dev = _victim_data(name, args.data_dir)
    for arch in args.architectures.split(","):
      variants = [("loop", int(b)) for b in args.batch_sizes.split(",")]
      variants += [("loop_xla", 128), ("fit", 128)]
      for variant, batch in variants:
        times = _measure(arch, ds, train, dev, variant, batch, args.epochs)
        diff = None
        if variant == "loop_xla":
          diff = _max_weight_diff(arch, ds, loop_lib.TrainConfig(
              batch_size=batch), train, _XlaStep)
        row = dict(dataset=name, architecture=arch, variant=variant,
                   batch_size=batch, train_records=len(train[1]),
                   first_epoch_s=round(times[0], 3),
                   median_epoch_s=round(statistics.median(times[1:]), 3),
                   epochs_s=[round(t, 3) for t in times],
                   max_weight_diff_vs_loop=diff)
        rows.append(row)
        print(f"{name:8s} {arch:10s} {variant:9s} batch {batch:4d}: "
              f"{row['median_epoch_s']:.2f} s/epoch (first "
              f"{row['first_epoch_s']:.2f} s)"
              + ("" if diff is None else f", max |dw| vs loop {diff:.2e}"),
              flush=True)
  if args.json:
    out = dict(rows=rows, load_average=os.getloadavg(), cpus=os.cpu_count(),
               tensorflow=tf.__version__, python=platform.python_version())
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
