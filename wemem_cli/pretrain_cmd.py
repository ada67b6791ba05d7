"""`wemem pretrain`: pre-train the victim's dense model, as `wemem prune` does.

  wemem pretrain --dataset=location --data_dir=DIR --seed=0 --output_dir=PRE
  wemem prune --dataset=location --data_dir=DIR --seed=0 \
      --pretrained=PRE/pretrained.h5 --defense=rsw --output_dir=OUT

The model is the pipeline's pre-training stage
(`wemem_tf.pruning.pipeline.pretrain_model`, which `pretrain_and_prune` runs
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

from absl import logging

import wemem_tf
from wemem_cli import flag_utils
from wemem_tf.models import evaluate
from wemem_tf.pruning import pipeline


def main(argv) -> None:
  del argv  # extra arguments are refused by the dispatcher
  dataset, out, seed, architecture = flag_utils.victim_inputs()
  flag_utils.check_architecture(architecture, dataset)
  train_config = flag_utils.train_config()
  with flag_utils.victim_run(dataset, out, seed) as (stage, splits):
    split = splits.victim
    model, fit, seconds = pipeline.pretrain_model(
        dataset, split, flag_utils.victim_seed(seed), architecture,
        train_config)
    flag_utils.check_finite(model, "the pre-trained model")
    wemem_tf.io_utils.atomic_save_model(
        model, os.path.join(stage, "pretrained.h5"),
        flag_utils.model_metadata(dataset, seed, splits))
    summary = {
        "dataset": dataset.name,
        "seed": seed,
        "model_seed": flag_utils.victim_seed(seed),
        "architecture": architecture.name,
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "best_dev_accuracy": fit.best_dev_accuracy,
        "train_accuracy": evaluate.accuracy(model, *dataset.take(split.train)),
        "dev_accuracy": evaluate.accuracy(model, *dataset.take(split.dev)),
        "test_accuracy": evaluate.accuracy(model, *dataset.take(split.test)),
        "seconds": seconds,
        "training": dataclasses.asdict(train_config),
        "records": {"train": int(len(split.train)),
                    "dev": int(len(split.dev)),
                    "test": int(len(split.test))},
    }
    wemem_tf.io_utils.atomic_write_json(os.path.join(stage, "summary.json"),
                                        summary)
  path = os.path.join(out, "pretrained.h5")
  logging.info("pre-trained %s on %s: %s", architecture, dataset.name, summary)
  print(f"pre-trained {architecture} on {dataset.name} (seed {seed}): "
        f"{fit.epochs_run} epochs, best epoch {fit.best_epoch}, dev accuracy "
        f"{summary['dev_accuracy']:.4f}, test accuracy "
        f"{summary['test_accuracy']:.4f}, {seconds:.1f} s; wrote {path}")
