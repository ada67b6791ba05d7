"""`wemem prune`: pre-train (or load) a victim and prune it iteratively.

`--trainer=keras_fit` fine-tunes through the pruned model's own `compile` and
`fit` (the TFMOT workflow) instead of the library's compiled loop.

With `--pretrained=PRE/pretrained.h5` from `wemem pretrain` (same --dataset,
--seed and --architecture), pruning starts from that model and gives the same
pruned model as pre-training here would. The victim trains with
`flag_utils.victim_seed(--seed)`, as in `wemem attack`: `model.h5` and
`model.tflite` are the model `wemem attack` with the same flags attacks, so
`wemem audit` on them reproduces its numbers.

Writes to --output_dir: `history.json` (one entry per pruning iteration),
`summary.json` (pre-training, TFLite export, wall times), `pretrained.h5`,
`model.h5` (the stripped pruned model, HDF5), `model.tflite`, `splits.npz` and
`manifest.json`. With --tensorboard_dir: TensorBoard summaries of the
pre-training epochs and of each pruning iteration and epoch
(`wemem_tf.pruning.summaries`), written as each iteration ends with the
default trainer.
"""

import os

from absl import flags
from absl import logging

import wemem_tf
from wemem_cli import common_flags as cf
from wemem_cli import defense_flags
from wemem_cli import flag_utils
from wemem_cli import model_files

TRAINER = flags.DEFINE_enum(
    "trainer", "loop", list(wemem_tf.pruning.TRAINERS),
    "How pruning fine-tunes: loop = the library's compiled loop; keras_fit "
    "= the pruned model's own compile + fit (the TFMOT workflow), with the "
    "same schedule, defense and early stopping.")
PRETRAINED = flags.DEFINE_string(
    "pretrained", None, "Path of a pre-trained dense model (.h5, e.g. from "
    "`wemem pretrain` with the same --dataset/--seed/--architecture) to prune "
    "instead of pre-training one; its architecture, input shape and classes "
    "must match the dataset's.")


def main(argv) -> None:
  del argv  # extra arguments are refused by the dispatcher
  dataset, out, seed, architecture = flag_utils.victim_inputs()
  flag_utils.check_architecture(architecture, dataset)
  pretrained = None
  if PRETRAINED.value:  # checked before anything is written
    pretrained = model_files.load_model(PRETRAINED.value, "--pretrained")
    model_files.check_matches(pretrained, dataset, architecture,
                              "--pretrained")
    flag_utils.check_pretrained(PRETRAINED.value, dataset, seed)
  with flag_utils.victim_run(dataset, out, seed) as (stage, splits):
    defense = defense_flags.defense_from_flags(dataset, seed, architecture,
                                               out)
    summaries = (wemem_tf.pruning.IterationSummaries(cf.TENSORBOARD_DIR.value)
                 if cf.TENSORBOARD_DIR.value else None)
    # The library's loop writes each iteration as it ends; keras_fit's
    # rounds are written once pruning is done.
    live = summaries is not None and TRAINER.value == "loop"
    try:
      result = wemem_tf.pretrain_and_prune(
          dataset, splits.victim, flag_utils.victim_seed(seed),
          architecture=architecture,
          pruning_config=flag_utils.pruning_config(),
          train_config=flag_utils.train_config(), pretrained=pretrained,
          defense=defense, trainer=TRAINER.value,
          on_iteration=summaries if live else None)
      if summaries is not None:
        _write_summaries(summaries, result, live)
    finally:
      if summaries is not None:
        summaries.close()
    flag_utils.check_finite(result.pruned, "the pruned model")
    _write(dataset, seed, splits, result, stage, out)
  last = result.history[-1]
  logging.info("pruned %s to %s; test accuracy %.4f; wrote %s",
               dataset.name, last.layer_sparsity, last.test_accuracy, out)
  print(f"test accuracy {last.test_accuracy:.4f} at sparsity "
        f"{last.target_sparsity:.2f}; artifacts in {out}")


def _write_summaries(summaries, result, live: bool) -> None:
  """The pre-training curves and, unless written live, the iterations."""
  summaries.write_pretraining(result.pretrain_fit)
  if not live:
    summaries.write_history(
        result.history, result.defense_report,
        wemem_tf.pruning.default_layers_to_prune(result.pretrained))


def _write(dataset, seed, splits, result, stage: str, out: str) -> None:
  """Writes the artifacts into the staging folder `stage` (published to
  `out` by the caller once everything is written)."""
  io = wemem_tf.io_utils
  meta = flag_utils.model_metadata(dataset, seed, splits)
  io.atomic_save_model(result.pretrained,
                       os.path.join(stage, "pretrained.h5"), meta)
  io.atomic_save_model(result.pruned, os.path.join(stage, "model.h5"), meta)
  x_test, _ = dataset.take(splits.victim.test)
  # The TFLite file holds the pruned network; output modification at
  # inference (HAMP) is a serving-time step and is not part of it.
  export = wemem_tf.export_tflite(result.pruned,
                                  os.path.join(stage, "model.tflite"), x_test)
  io.atomic_write_json(os.path.join(stage, "history.json"),
                       [r.to_json() for r in result.history])
  fit = result.pretrain_fit
  io.atomic_write_json(os.path.join(stage, "summary.json"), {
      "dataset": dataset.name,
      "seed": seed,
      "model_seed": flag_utils.victim_seed(seed),
      "pretrain": None if fit is None else {
          "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
          "best_dev_accuracy": fit.best_dev_accuracy},
      "trainer": TRAINER.value,
      "pretrain_seconds": result.pretrain_seconds,
      "prune_seconds": result.prune_seconds,
      "defense": result.defense_report,
      "final_test_accuracy": result.history[-1].test_accuracy,
      "final_layer_sparsity": wemem_tf.pruning.layer_sparsity(result.pruned),
      "tflite": {"path": os.path.join(out, "model.tflite"),
                 "size_bytes": export.size_bytes,
                 "max_abs_deviation": export.max_abs_deviation},
  })
