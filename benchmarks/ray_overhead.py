"""Ray executor overhead and one Location configuration, local vs Ray.

  python benchmarks/ray_overhead.py [--data_dir=../shared/data] [--out=FILE]

Measures, in one process, back to back on this machine:
* starting a local Ray (2 workers) and its first task (worker start-up,
  which imports TensorFlow);
* the round trip of an empty task (median of 30, warm workers);
* moving a model's weights through Ray (put + get of a column_fc-sized and
  a 10x larger float32 payload, medians of 10);
* one Location configuration of `wemem attack` (configs/location_base.cfg:
  no defense, 5 shadows, 6 reference models, all 12 attacks): its model
  training and total wall time with the local executor and with Ray (2
  workers, 1 CPU each), and that both give the same AUCs.
Writes a JSON record (default benchmarks/results/ray_overhead.json) and
prints a markdown summary.
"""

import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top

import wemem_tf  # pylint: disable=g-import-not-at-top
from wemem_eval import executor as executor_lib  # pylint: disable=g-import-not-at-top
from wemem_eval import experiment  # pylint: disable=g-import-not-at-top
from wemem_eval import model_training  # pylint: disable=g-import-not-at-top


def _noop(shared, i):
  del shared
  return i


def _payload(shared, n):
  del shared
  return np.zeros(n, np.float32)


def _median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def _location_config():
  recipe = model_training.ModelRecipe(
      pruning_config=wemem_tf.PruningConfig(0.6, 5, epochs_per_iteration=21,
                                            patience=5),
      train_config=wemem_tf.TrainConfig(max_epochs=100, patience=5))
  return experiment.ExperimentConfig(recipe=recipe, num_shadows=5, seed=0)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--out", default="benchmarks/results/ray_overhead.json")
  args = parser.parse_args()
  record = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}

  ray_executor = executor_lib.RayExecutor(num_workers=2)
  t = time.perf_counter()
  ray_executor.map(_noop, [(0,), (1,)])
  record["ray_start_and_first_tasks_s"] = time.perf_counter() - t
  record["empty_task_round_trip_s"] = _median_seconds(
      lambda: ray_executor.map(_noop, [(0,)]), 30)
  column_fc_params = 446 * 256 + 256 + 256 * 128 + 128 + 128 * 30 + 30
  for name, n in (("column_fc_weights", column_fc_params),
                  ("10x_column_fc_weights", 10 * column_fc_params)):
    record[f"{name}_round_trip_s"] = _median_seconds(
        lambda n=n: ray_executor.map(_payload, [(n,)]), 10)
    record[f"{name}_bytes"] = 4 * n

  dataset = wemem_tf.data.load_dataset("location", args.data_dir)
  config = _location_config()
  results = {}
  for name, executor in (("local", executor_lib.LocalExecutor()),
                         ("ray", ray_executor)):
    t = time.perf_counter()
    result = experiment.run_experiment(dataset, config, executor=executor)
    wall = time.perf_counter() - t
    results[name] = {r["attack"]: r["auc"] for r in result.suite.rows()}
    record[name] = {"wall_s": wall, "timing": result.timing,
                    "driver_peak_rss_mb": resource.getrusage(
                        resource.RUSAGE_SELF).ru_maxrss / 1024}
  ray_executor.shutdown()
  record["same_aucs"] = results["local"] == results["ray"]
  record["aucs"] = results["local"]
  record["load_after"] = os.getloadavg()
  with open(args.out, "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  print(json.dumps(record, indent=2, sort_keys=True))


if __name__ == "__main__":
  main()
