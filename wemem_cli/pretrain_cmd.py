"""`wemem pretrain`: pre-train the victim's dense model, as `wemem prune` does.

  wemem pretrain --dataset=location --data_dir=DIR --seed=0 --output_dir=PRE
  wemem prune --dataset=location --data_dir=DIR --seed=0 \
      --pretrained=PRE/pretrained.h5 --defense=rsw --output_dir=OUT

The model is the pipeline's pre-training stage (`wemem_tf.pretrain_and_prune`
without `pretrained`): the same victim split of --seed, the same seeding,
architecture and early stopping, so pruning it with `wemem prune
--pretrained` gives the same pruned model as a plain `wemem prune` with the
same flags. Pre-train once, then prune with several defenses.

Writes to --output_dir: `pretrained.h5` (the dense model at its best dev
checkpoint, logit outputs), `splits.npz`, `summary.json` (dataset, seed,
architecture, epochs_run, best_epoch, best_dev_accuracy, train/dev/test
accuracy in [0, 1], seconds, training settings) and `manifest.json`.
"""

import dataclasses
import os
import time

from absl import logging
import numpy as np

import wemem_tf
from wemem_cli import common_flags as cf
from wemem_cli import flag_utils

_EVAL_BATCH = 4096


def accuracy(model: wemem_tf.keras.Model, x: np.ndarray,
             y: np.ndarray) -> float:
  """Share of records x (n, ...) whose arg-max logit is their label y (n,)."""
  if len(y) == 0:
    return float("nan")
  logits = np.concatenate([
      model(x[i:i + _EVAL_BATCH], training=False).numpy()
      for i in range(0, len(x), _EVAL_BATCH)])
  return float(np.mean(np.argmax(logits, -1) == y))


def pretrain_victim(dataset: wemem_tf.data.Dataset,
                    split: wemem_tf.data.ModelSplit, seed: int,
                    architecture: str, train_config: wemem_tf.TrainConfig):
  """The pre-training stage of `pretrain_and_prune` for one model.

  Returns:
    (dense model at its best dev checkpoint, `FitResult`).
  """
  train, dev = dataset.take(split.train), dataset.take(split.dev)
  # Same order of seeding and building as `pretrain_and_prune`.
  wemem_tf.keras.utils.set_random_seed(seed)
  model = wemem_tf.models.build_model(architecture, dataset.input_shape,
                                      dataset.num_classes)
  fit = wemem_tf.pretrain(model, train, dev, seed, train_config)
  return model, fit


def main(argv) -> None:
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {argv[1:]}")
  dataset = flag_utils.load_dataset()
  out = flag_utils.output_dir()
  seed = cf.SEED.value
  architecture = flag_utils.architecture(dataset.name)
  train_config = flag_utils.train_config()
  wemem_tf.run_manifest.write_manifest(
      out, seed, flag_utils.flag_values(), dataset.fingerprint,
      flag_utils.command_line())
  splits = wemem_tf.data.splits_for(dataset, seed, num_shadows=0)
  splits.save(os.path.join(out, "splits.npz"))
  split = splits.victim
  start = time.perf_counter()
  model, fit = pretrain_victim(dataset, split, seed, architecture,
                               train_config)
  seconds = time.perf_counter() - start
  path = os.path.join(out, "pretrained.h5")
  wemem_tf.io_utils.atomic_save_model(model, path)
  summary = {
      "dataset": dataset.name,
      "seed": seed,
      "architecture": architecture,
      "epochs_run": fit.epochs_run,
      "best_epoch": fit.best_epoch,
      "best_dev_accuracy": fit.best_dev_accuracy,
      "train_accuracy": accuracy(model, *dataset.take(split.train)),
      "dev_accuracy": accuracy(model, *dataset.take(split.dev)),
      "test_accuracy": accuracy(model, *dataset.take(split.test)),
      "seconds": seconds,
      "training": dataclasses.asdict(train_config),
      "records": {"train": int(len(split.train)), "dev": int(len(split.dev)),
                  "test": int(len(split.test))},
  }
  wemem_tf.io_utils.atomic_write_json(os.path.join(out, "summary.json"),
                                      summary)
  logging.info("pre-trained %s on %s: %s", architecture, dataset.name, summary)
  print(f"pre-trained {architecture} on {dataset.name} (seed {seed}): "
        f"{fit.epochs_run} epochs, best epoch {fit.best_epoch}, dev accuracy "
        f"{summary['dev_accuracy']:.4f}, test accuracy "
        f"{summary['test_accuracy']:.4f}, {seconds:.1f} s; wrote {path}")
