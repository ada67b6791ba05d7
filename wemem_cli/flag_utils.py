"""Helpers that turn parsed absl flags into library configs."""

import os
import sys
from typing import Any, Dict, Tuple

from absl import flags

import wemem_tf
from wemem_cli import common_flags as cf
from wemem_eval import model_training

FLAGS = flags.FLAGS


def flag_values() -> Dict[str, Any]:
  """Every flag set by a wemem module, as a plain dict (for manifests)."""
  values = {}
  for module, module_flags in FLAGS.flags_by_module_dict().items():
    if "wemem_cli" in module:
      for flag in module_flags:
        values[flag.name] = flag.value
  return values


def load_dataset() -> wemem_tf.data.Dataset:
  return wemem_tf.data.load_dataset(cf.DATASET.value, cf.DATA_DIR.value)


def architecture(dataset_name: str) -> str:
  return cf.ARCHITECTURE.value or wemem_tf.models.DEFAULT_ARCHITECTURE.get(
      dataset_name, "column_fc")


def output_dir() -> str:
  path = cf.OUTPUT_DIR.value or os.path.join("runs", cf.DATASET.value)
  os.makedirs(path, exist_ok=True)
  return path


def pruning_config() -> wemem_tf.PruningConfig:
  return wemem_tf.PruningConfig(
      target_sparsity=cf.TARGET_SPARSITY.value,
      num_iterations=cf.PRUNE_ITERATIONS.value,
      epochs_per_iteration=cf.EPOCHS_PER_ITERATION.value,
      patience=cf.PATIENCE.value,
      restore_best_weights=cf.RESTORE_BEST.value)


def train_config() -> wemem_tf.TrainConfig:
  return wemem_tf.TrainConfig(
      learning_rate=cf.LEARNING_RATE.value, weight_decay=cf.WEIGHT_DECAY.value,
      batch_size=cf.BATCH_SIZE.value, max_epochs=cf.PRETRAIN_EPOCHS.value,
      patience=cf.PATIENCE.value)


def command_line() -> str:
  return " ".join(sys.argv)


def write_victim_run(dataset: wemem_tf.data.Dataset, out: str,
                     seed: int) -> wemem_tf.data.Splits:
  """Writes a victim command's manifest.json and splits.npz into `out`;
  returns the splits (no shadows: the victim's split protocol)."""
  wemem_tf.run_manifest.write_manifest(out, seed, flag_values(),
                                       dataset.fingerprint, command_line())
  splits = wemem_tf.data.splits_for(dataset, seed, num_shadows=0)
  splits.save(os.path.join(out, "splits.npz"))
  return splits


def victim_inputs() -> Tuple[wemem_tf.data.Dataset, str, int, str]:
  """(dataset, output directory, run seed, architecture) of a command that
  trains the victim (`pretrain`, `prune`), from the flags. The model itself
  trains with `victim_seed(run seed)`."""
  dataset = load_dataset()
  return dataset, output_dir(), cf.SEED.value, architecture(dataset.name)


def victim_seed(seed: int) -> int:
  """The victim's training seed for run seed `seed`, as `wemem attack` and
  `wemem run` train it: `wemem prune --seed=S` writes the model that
  `wemem attack --seed=S` attacks (and `wemem audit` can audit)."""
  return model_training.victim_seed(seed)
