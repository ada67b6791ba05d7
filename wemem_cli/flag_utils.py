"""Helpers that turn parsed absl flags into library configs."""

import contextlib
import os
import sys
from typing import Any, Dict, Iterator, Optional, Tuple

from absl import flags
from absl import logging
import numpy as np

import wemem_tf
from wemem_cli import common_flags as cf
from wemem_cli import model_files
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
  """The dataset of --dataset (a built-in name, npz:PATH or csv:PATH),
  --data_dir and --label_column."""
  return wemem_tf.data.load_dataset(cf.DATASET.value, cf.DATA_DIR.value,
                                    label_column=cf.LABEL_COLUMN.value)


def architecture(dataset) -> wemem_tf.models.Architecture:
  """--architecture resolved (default: the dataset's zoo architecture).

  Args:
    dataset: a dataset name, or the loaded `Dataset`: then an architecture
      from code or a file is also built once for its records
      (`check_architecture`), so a bad one fails before anything is written.

  Raises:
    ValueError / FileNotFoundError: a spec that does not resolve (one line;
      a model file holding code needs --trust_model_code).
  """
  name = dataset if isinstance(dataset, str) else dataset.name
  arch = wemem_tf.models.resolve_architecture(
      cf.ARCHITECTURE.value or wemem_tf.models.DEFAULT_ARCHITECTURE.get(
          name, "column_fc"),
      trust_code=model_files.TRUST_MODEL_CODE.value)
  if not isinstance(dataset, str):
    check_architecture(arch, dataset)
  return arch


def check_architecture(arch: wemem_tf.models.Architecture,
                       dataset: wemem_tf.data.Dataset) -> None:
  """Builds a non-zoo `arch` once for `dataset` (ValueError if unusable:
  `wemem_tf.models.check_model`); zoo architectures are not built, so no
  random state is used for them."""
  if not arch.is_zoo:
    wemem_tf.models.build_checked(arch, dataset.input_shape,
                                  dataset.num_classes)


def output_dir(dataset_name: Optional[str] = None) -> str:
  """--output_dir, else runs/<dataset name> (not created: commands create
  it when they write, after every check).

  Args:
    dataset_name: the loaded dataset's `name`; by default the name that
      --dataset gives (a data file's stem for npz:PATH / csv:PATH, never the
      path itself).
  """
  name = dataset_name or wemem_tf.data.dataset_name(cf.DATASET.value)
  return cf.OUTPUT_DIR.value or os.path.join("runs", name)


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



def split_config() -> wemem_tf.data.SplitConfig:
  """The split protocol --split names."""
  return wemem_tf.data.SplitConfig(stratified=cf.SPLIT.value == "stratified")


def victim_splits(dataset: wemem_tf.data.Dataset, seed: int
                  ) -> wemem_tf.data.Splits:
  """The protocol's splits without shadows (a victim's), as --split cuts."""
  return wemem_tf.data.splits_for(dataset, seed, num_shadows=0,
                                  config=split_config())


def model_metadata(dataset: wemem_tf.data.Dataset, seed: int,
                   splits: wemem_tf.data.Splits) -> Dict[str, Any]:
  """What a victim model file records about its training (checked by
  `check_pretrained`)."""
  return {"dataset": dataset.name, "data_fingerprint": dataset.fingerprint,
          "seed": int(seed), "model_seed": victim_seed(seed),
          "train_digest": wemem_tf.data.fingerprint_arrays(
              "train", splits.victim.train)}


def check_pretrained(path: str, dataset: wemem_tf.data.Dataset, seed: int
                     ) -> None:
  """Refuses a --pretrained file whose recorded seed or data differ from
  this command's (it would have trained on other records than this split's
  training set); warns when the file records nothing."""
  meta = wemem_tf.io_utils.read_model_metadata(path)
  if meta is None:
    logging.warning("--pretrained %s records no seed or data; wemem cannot "
                    "check that it trained on this split's training records "
                    "only.", path)
    return
  splits = victim_splits(dataset, seed)
  want = model_metadata(dataset, seed, splits)
  for key, what in (("data_fingerprint", "data"), ("seed", "--seed"),
                    ("train_digest", "training records")):
    if meta.get(key) != want[key]:
      raise ValueError(
          f"--pretrained {path!r} was trained with another {what} "
          f"({key} {str(meta.get(key))[:12]}, this command "
          f"{str(want[key])[:12]}): its training set overlaps this split's "
          "test records. Pre-train with the same --dataset and --seed.")


@contextlib.contextmanager
def transaction(dataset: wemem_tf.data.Dataset, out: str, seed: int,
                manifest: str = "manifest.json") -> Iterator[str]:
  """Claims `out` for a command: refuses another seed's or dataset's run
  there (its `manifest` file; unless --overwrite), locks it and stages
  every write; yields the staging folder, with `manifest` written. `out`'s
  files change only if the block succeeds."""
  wemem_tf.run_manifest.check_reuse(out, seed, dataset.fingerprint,
                                    cf.OVERWRITE.value, name=manifest)
  with wemem_tf.run_manifest.RunLock(out):
    with wemem_tf.run_manifest.staged(out) as stage:
      wemem_tf.run_manifest.write_manifest(
          stage, seed, flag_values(), dataset.fingerprint, command_line(),
          name=manifest)
      yield stage


@contextlib.contextmanager
def victim_run(dataset: wemem_tf.data.Dataset, out: str, seed: int
               ) -> Iterator[Tuple[str, wemem_tf.data.Splits]]:
  """A `transaction` for a command that trains the victim; yields
  (staging folder, splits), with manifest.json and splits.npz (no shadows:
  the victim's split protocol) written."""
  with transaction(dataset, out, seed) as stage:
    splits = victim_splits(dataset, seed)
    splits.save(os.path.join(stage, "splits.npz"))
    yield stage, splits


def published(paths: Dict[str, str], stage: str, out: str) -> Dict[str, str]:
  """`paths` of files written in a `transaction`'s staging folder `stage`,
  as they are in `out` once published."""
  return {k: os.path.join(out, os.path.relpath(v, stage))
          for k, v in paths.items()}


def check_finite(model, what: str) -> None:
  """Raises ValueError if `model`'s weights hold NaN or infinity."""
  if not all(np.all(np.isfinite(w)) for w in model.get_weights()):
    raise ValueError(f"{what} has NaN or infinite weights (training "
                     "diverged; try a lower --learning_rate); nothing was "
                     "written.")


def victim_inputs() -> Tuple[wemem_tf.data.Dataset, str, int,
                             wemem_tf.models.Architecture]:
  """(dataset, output directory, run seed, architecture) of a command that
  trains the victim (`pretrain`, `prune`), from the flags. The model itself
  trains with `victim_seed(run seed)`."""
  dataset = load_dataset()
  return (dataset, output_dir(dataset.name), cf.SEED.value,
          architecture(dataset.name))


def victim_seed(seed: int) -> int:
  """The victim's training seed for run seed `seed`, as `wemem attack` and
  `wemem run` train it: `wemem prune --seed=S` writes the model that
  `wemem attack --seed=S` attacks (and `wemem audit` can audit)."""
  return model_training.victim_seed(seed)
