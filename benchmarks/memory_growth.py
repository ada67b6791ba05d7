"""Memory kept per trained model: resident set size while one process trains
many pruned models, as a tuning search or an experiment does.

Trains --models pruned models (digits, the tests' tiny recipe: 2 pruning
iterations of 2 epochs; the pre-trained model is loaded from a store after
the first one) through `wemem_eval.model_training.train_model`, dropping
each one and clearing the Keras session, and reads VmRSS after each. Prints
the RSS series, the growth over the run and the median growth per model
after the first two (warm-up: the first traces, the store). Writes JSON and
Markdown to --output (without extension) when given.

  python benchmarks/memory_growth.py --models=16 \\
    --output=benchmarks/results/memory_growth
"""

import gc
import json
import platform
import sys
import tempfile

from absl import app
from absl import flags

import wemem_tf  # first: Keras 2
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_tf import io_utils
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.pruning import iterative
from wemem_tf.training import loop as loop_lib
import numpy as np

MODELS = flags.DEFINE_integer("models", 16, "Pruned models to train.")
# Small enough that tracing and bookkeeping, not weights, dominate.
RECIPE = model_training.ModelRecipe(
    architecture="column_fc",
    pruning_config=iterative.PruningConfig(0.5, 2, epochs_per_iteration=2,
                                           patience=2),
    train_config=loop_lib.TrainConfig(max_epochs=2, patience=2))
OUTPUT = flags.DEFINE_string("output", None, "Results path without extension "
                             "(.json and .md are written).")


def rss_mb() -> float:
  """This process's resident set size in MB (Linux /proc)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024.0
  raise RuntimeError("no VmRSS in /proc/self/status (Linux only).")


def measure(num_models: int) -> dict:
  """RSS (MB) after each of `num_models` pruned models."""
  dataset = datasets.load_dataset("digits")
  splits = wemem_tf.data.splits_for(dataset, 0, 1)
  series = []
  with tempfile.TemporaryDirectory() as store_dir:
    store = model_store.ModelStore(store_dir, kinds=("pretrained",))
    for _ in range(num_models):
      model = model_training.train_model(dataset, splits.victim, 3,
                                         RECIPE, store)
      del model
      keras.backend.clear_session()
      gc.collect()
      series.append(rss_mb())
  steps = np.diff(series[1:])  # model 3 onwards, minus its predecessor
  return {"models": num_models, "rss_mb": [round(v, 1) for v in series],
          "growth_mb": round(series[-1] - series[0], 1),
          "median_growth_per_model_mb": round(float(np.median(steps)), 2),
          "commit": wemem_tf.run_manifest.git_commit() or "unknown",
          "python": platform.python_version(),
          "command": " ".join(sys.argv)}


def main(argv):
  del argv
  if MODELS.value < 3:
    raise app.UsageError("--models must be >= 3.")
  result = measure(MODELS.value)
  print(json.dumps(result, indent=1))
  if OUTPUT.value:
    io_utils.atomic_write_json(OUTPUT.value + ".json", result)
    md = ["# Memory kept per trained model", "",
          f"Command: `{result['command']}` (commit {result['commit']}).", "",
          f"{result['models']} pruned models (digits, tiny recipe): RSS "
          f"{result['rss_mb'][0]:.0f} → {result['rss_mb'][-1]:.0f} MB, "
          f"median growth per model "
          f"{result['median_growth_per_model_mb']:.2f} MB.", ""]
    io_utils.atomic_write_bytes(OUTPUT.value + ".md", "\n".join(md).encode())


if __name__ == "__main__":
  app.run(main)
