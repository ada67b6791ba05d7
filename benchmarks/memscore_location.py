"""Benchmark: K ColumnFC models for memorization scores on Location's pool.

Estimates Feldman & Zhang scores with `wemem_tf.memorization.estimate` (K
models of `--epochs` epochs on random 70% subsets of the 4,008-record pool of
`splits_for(location, seed)`) and prints:
  * wall time, models per second, peak memory (process max RSS, and the
    Python heap's tracemalloc peak, which does not see TensorFlow's buffers);
  * the achieved useful FLOP/s (first layer: only the active inputs; forward,
    input gradient where needed, and weight gradient of every layer), the
    same work counted as dense FLOPs, and an fp32 matmul peak this script
    measures itself (the best of several large `tf.matmul`s);
  * the ratio to training the same models one by one with `model.fit` and
    with the library's own compiled loop: a few models are timed, the time
    for K is extrapolated (linear in K), and the output says so;
  * the score distribution (quantiles, share >= 0.6);
  * the process CPU time of the estimate and the machine's load average
    before and after: on a shared machine the wall time depends on what
    else runs; CPU time / cores is the wall time with all cores free.

  python benchmarks/memscore_location.py --data_dir=../shared/data \
      --output=benchmarks/results/memscore_location

WEMEM_TF_FUSED_EPOCH=0 in the environment times the per-step graph instead
of the native epoch op (`ensemble.train_vectorized`), for comparison.
"""

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

import wemem_tf  # first: Keras 2
import tensorflow as tf  # pylint: disable=g-bad-import-order
from wemem_tf import data as data_lib
from wemem_tf import io_utils
from wemem_tf import keras
from wemem_tf import memorization
from wemem_tf.memorization import ensemble
from wemem_tf.memorization import native
from wemem_tf.training import loop as loop_lib


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def matmul_peak(size: int = 4096, repeats: int = 5) -> float:
  """Best fp32 GFLOP/s of a (size x size) @ (size x size) tf.matmul."""
  a = tf.random.normal([size, size])
  b = tf.random.normal([size, size])
  matmul = tf.function(lambda: tf.matmul(a, b))
  matmul().numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul().numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9


def useful_flops(spec: ensemble.MLPSpec, x: np.ndarray,
                 membership: np.ndarray, epochs: int) -> dict:
  """FLOPs of training: per record-step `spec.flops_per_record`."""
  density = float(np.mean(x != 0))
  record_steps = float(membership.sum()) * epochs  # Each record once per epoch.
  sparse = spec.flops_per_record(density) * record_steps
  dense = spec.flops_per_record(1.0) * record_steps
  return {"input_density": density, "record_steps": record_steps,
          "useful_flops": sparse, "dense_equivalent_flops": dense}


def _compile(model):
  # The fit baseline leaves out the L2 term the library adds to every
  # gradient, which only makes the baseline cheaper.
  model.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def time_fit_one_by_one(x, y, membership, epochs, count, seed):
  """Seconds per model for `count` models trained one by one with fit."""
  times = []
  for c in range(count):
    keras.utils.set_random_seed(seed + c)
    start = time.perf_counter()
    model = _compile(wemem_tf.models.column_fc(x.shape[1:], 30))
    subset = np.nonzero(membership[c])[0]
    model.fit(x[subset], y[subset], batch_size=128, epochs=epochs,
              shuffle=True, verbose=0)
    model.predict(x, batch_size=4096, verbose=0)
    times.append(time.perf_counter() - start)
  return times


def time_library_loop(x, y, membership, epochs, count, seed):
  """Seconds per model with the library's sequential path (one loop)."""
  start = time.perf_counter()
  ensemble.train_sequential(wemem_tf.models.column_fc, x.shape[1:], 30, x, y,
                            membership[:count], epochs,
                            loop_lib.TrainConfig(), seed)
  return (time.perf_counter() - start) / count


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--num_models", type=int, default=256)
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--chunk_size", type=int, default=64)
  parser.add_argument("--baseline_models", type=int, default=3,
                      help="models timed one by one for the extrapolation")
  parser.add_argument("--output", default=None,
                      help="write OUTPUT.json and OUTPUT.md")
  args = parser.parse_args(argv)

  load_before = os.getloadavg()
  dataset = data_lib.load_dataset("location", args.data_dir)
  pool = data_lib.splits_for(dataset, args.seed).pool
  x, y = dataset.take(pool)
  peak = matmul_peak()
  kernels = native.load()

  tracemalloc.start()
  cpu_start = _cpu_seconds()
  start = time.perf_counter()
  scores = memorization.estimate_dataset(
      dataset, pool, "column_fc", num_models=args.num_models,
      epochs=args.epochs, seed=args.seed, chunk_size=args.chunk_size)
  wall = time.perf_counter() - start
  cpu_seconds = _cpu_seconds() - cpu_start
  _, py_peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  load_mid = os.getloadavg()

  membership = memorization.sample_membership(len(pool), args.num_models, 0.7,
                                              args.seed)
  spec = ensemble.mlp_spec(wemem_tf.models.column_fc(x.shape[1:], 30))
  flops = useful_flops(spec, x, membership, args.epochs)
  train_seconds = scores.details["train_seconds"]

  fit_times = time_fit_one_by_one(x, y, membership, args.epochs,
                                  args.baseline_models, args.seed)
  fit_per_model = float(np.median(fit_times))
  loop_per_model = time_library_loop(x, y, membership, args.epochs,
                                     args.baseline_models, args.seed)
  load_after = os.getloadavg()

  result = {
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "num_models": args.num_models, "epochs": args.epochs,
      "pool_records": int(len(pool)), "subset_fraction": 0.7,
      "chunk_size": args.chunk_size,
      "first_layer": scores.details["first_layer"],
      "fused_epoch": scores.details.get("fused_epoch", False),
      "native_kernels": kernels is not None,
      "wall_seconds": wall, "train_seconds": train_seconds,
      "cpu_seconds": cpu_seconds,
      "models_per_second": args.num_models / wall,
      "max_rss_mib": max_rss_mib,
      "tracemalloc_peak_mib": py_peak / 2**20,
      "matmul_peak_gflops": peak,
      "useful_gflops_per_second": flops["useful_flops"] / train_seconds / 1e9,
      "dense_equivalent_gflops_per_second":
          flops["dense_equivalent_flops"] / train_seconds / 1e9,
      **flops,
      "fit_seconds_per_model_measured": fit_times,
      "fit_extrapolated_seconds": fit_per_model * args.num_models,
      "speedup_vs_fit": fit_per_model * args.num_models / wall,
      "library_loop_seconds_per_model": loop_per_model,
      "library_loop_extrapolated_seconds": loop_per_model * args.num_models,
      "speedup_vs_library_loop": loop_per_model * args.num_models / wall,
      "baseline_models_timed": args.baseline_models,
      "trace_count": scores.details["trace_count"],
      "scores": scores.summary(),
      "load_average_before": load_before, "load_average_after_estimate":
          load_mid, "load_average_after": load_after,
      "cpu_count": os.cpu_count(),
  }
  lines = [
      f"K = {args.num_models} ColumnFC models x {args.epochs} epochs on "
      f"Location's {len(pool)}-record pool (70% subsets), first layer "
      f"{result['first_layer']}"
      f"{' (one native op per epoch)' if result['fused_epoch'] else ''}, "
      f"chunks of {args.chunk_size}:",
      f"  wall time {wall:.1f} s (training {train_seconds:.1f} s), "
      f"{result['models_per_second']:.2f} models/s, {result['trace_count']} "
      "graph trace(s)",
      f"  CPU time {cpu_seconds:.1f} s ({cpu_seconds / wall:.2f} cores busy "
      f"on average; with all {os.cpu_count()} cores free the wall time would "
      f"be about {cpu_seconds / os.cpu_count():.0f} s)",
      f"  peak memory: max RSS {max_rss_mib:.0f} MiB, Python heap "
      f"(tracemalloc) {result['tracemalloc_peak_mib']:.1f} MiB",
      f"  achieved {result['useful_gflops_per_second']:.1f} GFLOP/s useful "
      f"(input density {flops['input_density']:.3f}; "
      f"{result['dense_equivalent_gflops_per_second']:.1f} GFLOP/s counted "
      f"as dense) vs fp32 matmul peak {peak:.1f} GFLOP/s measured here",
      f"  one by one with model.fit: {fit_per_model:.2f} s/model (median of "
      f"{args.baseline_models} measured) -> {result['fit_extrapolated_seconds']:.0f} s "
      f"for {args.num_models} (extrapolated): {result['speedup_vs_fit']:.1f}x slower",
      f"  one by one with the library's loop: {loop_per_model:.2f} s/model "
      f"({args.baseline_models} measured) -> "
      f"{result['library_loop_extrapolated_seconds']:.0f} s (extrapolated): "
      f"{result['speedup_vs_library_loop']:.1f}x slower",
      f"  scores: {json.dumps(result['scores'])}",
      f"  load average before {load_before[0]:.2f}, after the estimate "
      f"{load_mid[0]:.2f}, at the end {load_after[0]:.2f} "
      f"({os.cpu_count()} CPUs)",
  ]
  print("\n".join(lines))
  if args.output:
    io_utils.atomic_write_json(args.output + ".json", result)
    md = ["# Memorization scores on Location: benchmark", "",
          f"Command: `{result['command']}`", "", "```", *lines, "```", ""]
    io_utils.atomic_write_bytes(args.output + ".md", "\n".join(md).encode())


if __name__ == "__main__":
  main()
