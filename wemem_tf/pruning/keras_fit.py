"""`model.fit` of a pruned model: the schedule and the defense inside it.

`prune_low_memorization` installs `defended_fit` as the returned model's
`fit` and `defended_train_step` as its `train_step` (on the instance: the
model stays a plain Sequential/functional tf_keras model, so saving,
cloning, `strip_pruning` and TFLite export are TFMOT's). A TFMOT user's
workflow then applies the iterative schedule and the defense:

  pruned = wemem_tf.prune_low_memorization(
      model, wemem_tf.IterativeSparsity(0.6, 5, epochs_per_iteration=21),
      defense=wemem_tf.defenses.SWMR(scores=scores))
  pruned.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(
                     from_logits=True))
  pruned.fit(x, y, batch_size=128, validation_data=(x_dev, y_dev),
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
             record_index=train_index)
  served = wemem_tf.strip_pruning(pruned)   # HAMP: output-modified

What `fit` does beyond Keras' own:

* binds the defense to (x, y) (`record_index` aligns memorization scores;
  `validation_data` is the defender's reference non-members for AdvReg) and
  feeds each epoch's plan (`DefenseFeed`): the window's records, risky
  batches first with λ_mem, RelaxLoss's epoch parity;
* trains every batch with the defense's `TrainStep` and the compiled
  optimizer (P3's second optimizer is a copy of it; DP-SGD swaps Adam for
  tensorflow-privacy's DP Adam at the same learning rate), with the
  PyTorch-style L2 term `weight_decay · w` added to the gradients;
* runs the rounds with an `IterativePruning` callback (added with the
  defaults when `callbacks` has none): masks per round, early stopping per
  round on the dev accuracy, the best checkpoint at the end.

`fit` refuses what would silently change the defense: a `tf.data`
pipeline or generator instead of arrays, `sample_weight`, `class_weight`,
`validation_split`, `shuffle=False`, `steps_per_epoch`, a loss other than
sparse cross-entropy on logits, too few `epochs` for the schedule.
Training-batch metrics are not computed (the step reports its loss);
`validation_data` metrics are (when the model was compiled with a loss),
and `dev_accuracy` and `pruning_iteration` are added to each epoch's logs.
`model.wemem_fit` (a `DefendedFit`) holds the bound defense (its
`report()`: risky share, ε, ...) and one `IterationRecord` per round.
"""

import dataclasses
import types
from typing import List, Optional

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import feed as feed_lib
from wemem_tf.pruning import callbacks as callbacks_lib
from wemem_tf.pruning import iterative
from wemem_tf.training import loop as loop_lib

@dataclasses.dataclass
class DefendedFit:
  """What the last `fit` of a pruned model did (`model.wemem_fit`).

  Attributes:
    run: the defense bound to the fit's records (`run.report()`).
    feed: the epoch plans served (`feed.visited`: positions per epoch).
    history: one `IterationRecord` per pruning round.
  """
  run: defense_lib.DefenseRun
  feed: feed_lib.DefenseFeed
  history: List[iterative.IterationRecord]
  step: loop_lib.TrainStep
  loss: keras.metrics.Mean


_REFUSED = {
    "sample_weight": "the defense decides each batch's records and weights",
    "class_weight": "the defense decides each batch's records and weights",
    "validation_split": "pass validation_data=(x_dev, y_dev) instead",
    "steps_per_epoch": "the defense's plan decides each epoch's batches",
    "validation_freq": "each round's early stopping needs the dev accuracy "
                       "every epoch",
}


def install(model: keras.Model) -> None:
  """Makes `model.fit` / `model.train_step` the defended ones."""
  model.fit = types.MethodType(defended_fit, model)
  model.train_step = types.MethodType(defended_train_step, model)


def defended_train_step(self, data):
  """One batch of the defense's plan through the defense's `TrainStep`;
  padding elements train nothing. Reports the epoch's mean batch loss."""
  x, y, (weight_decay, kind) = data
  fit = self.wemem_fit

  def train():
    loss = fit.step(self, x, y, weight_decay, kind)
    fit.loss.update_state(loss)
    return loss

  tf.cond(tf.equal(kind, int(loop_lib.BatchKind.PADDING)),
          lambda: tf.constant(0.0), train)
  return {"loss": fit.loss.result()}


def _check_loss(model: keras.Model) -> None:
  loss = getattr(model, "loss", None)
  if loss is None:
    return
  if (isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
      and loss.get_config().get("from_logits")):
    return
  raise ValueError(
      f"a pruned model trained with a defense learns from sparse "
      f"cross-entropy on logits (the defenses' losses build on it); it was "
      f"compiled with loss={loss!r}. Compile with loss=keras.losses."
      "SparseCategoricalCrossentropy(from_logits=True) (or no loss).")


def _arrays(x, y, num_classes: int, what: str):
  """(float32 x, int64 y), checked (ValueError naming `what`)."""
  if x is None or y is None or not hasattr(x, "__len__") or hasattr(
      x, "element_spec") or isinstance(x, (keras.utils.Sequence, dict)):
    raise ValueError(
        f"fit of a pruned model takes {what} as arrays x and y (the defense "
        "chooses each epoch's records and batches from them); got "
        f"{type(x).__name__}. Pass numpy arrays.")
  x, y = np.asarray(x, np.float32), np.asarray(y)
  datasets.validate_examples(x, y, num_classes, what)
  return x, y.astype(np.int64)


def defended_fit(self, x=None, y=None, batch_size: Optional[int] = None,
                 epochs: Optional[int] = None, verbose="auto", callbacks=None,
                 validation_data=None, shuffle: bool = True,
                 initial_epoch: int = 0, *, record_index=None,
                 weight_decay: float = loop_lib.TrainConfig().weight_decay,
                 seed: int = 0, **kwargs):
  """`keras.Model.fit` with the iterative schedule and the defense.

  Args:
    x, y: float (n, ...) training features and int (n,) labels.
    batch_size: records per batch (Keras' default, 32, when None).
    epochs: at most this many epochs (default: the schedule's
      `max_epochs`; fewer than that is an error, since rounds would be cut).
    verbose, callbacks, initial_epoch: as in Keras.
    validation_data: (x_dev, y_dev): early stopping per round, AdvReg's
      reference records, and Keras' val_* metrics.
    shuffle: must stay True (the defense's plan orders each epoch).
    record_index: int (n,) dataset indices of the records (aligns
      memorization scores); default 0..n-1.
    weight_decay: L2 coefficient added to ordinary batches' gradients.
    seed: seeds the defense's epoch plans (as the library's loop).
    **kwargs: other `keras.Model.fit` arguments; those that would change
      what the defense controls are refused.

  Returns:
    Keras' `History`.
  """
  for name, why in _REFUSED.items():
    if kwargs.get(name) is not None:
      raise ValueError(f"fit of a pruned model does not take {name}: {why}.")
  if not shuffle:
    raise ValueError("fit of a pruned model shuffles as the defense's plan "
                     "says; shuffle=False is not supported.")
  if self.optimizer is None:
    raise ValueError("compile the pruned model before fit.")
  _check_loss(self)
  num_classes = self.output_shape[-1]
  x, y = _arrays(x, y, num_classes, "training data")
  dev = None
  if validation_data is not None:
    if len(validation_data) != 2:
      raise ValueError("validation_data must be (x_dev, y_dev).")
    dev = _arrays(*validation_data, num_classes, "validation_data")
  rounds = iterative.PruningRounds(self)
  max_epochs = rounds.schedule.max_epochs
  if epochs is None:
    epochs = max_epochs
  elif epochs < max_epochs:
    raise ValueError(
        f"epochs={epochs} cannot hold the schedule's {rounds.num_iterations} "
        f"rounds of up to {rounds.schedule.epochs_per_iteration} epochs; "
        f"pass epochs={max_epochs} (training stops when the last round "
        "does) or a smaller IterativeSparsity(epochs_per_iteration=...).")
  index = (np.arange(len(y), dtype=np.int64) if record_index is None
           else np.asarray(record_index, np.int64))
  train_config = loop_lib.TrainConfig(
      learning_rate=float(keras.backend.get_value(
          self.optimizer.learning_rate)),
      weight_decay=weight_decay,
      batch_size=32 if batch_size is None else int(batch_size))
  defense = getattr(self, "wemem_defense", None) or defense_lib.Defense()
  run = defense.bind(
      defense_lib.TrainingRecords(
          x, y, index, num_classes,
          None if dev is None else dev[0], None if dev is None else dev[1]),
      train_config, rounds.num_iterations,
      rounds.schedule.epochs_per_iteration, seed)
  step = run.train_step()
  step.build(self, train_config, self.optimizer)
  feed = feed_lib.DefenseFeed(run, x, y)
  callbacks = list(callbacks or [])
  pruning = [c for c in callbacks
             if isinstance(c, callbacks_lib.IterativePruning)]
  if len(pruning) > 1:
    raise ValueError("pass at most one IterativePruning callback.")
  if not pruning:
    pruning = [callbacks_lib.IterativePruning()]
    callbacks.insert(0, pruning[0])
  pruning[0].attach(feed, (x, y), dev)
  self.wemem_fit = DefendedFit(run, feed, pruning[0].history, step,
                               keras.metrics.Mean("loss"))
  self.train_function = None  # retrace with this fit's step
  return keras.Model.fit(
      self, feed.dataset(), epochs=epochs, verbose=verbose,
      callbacks=callbacks,
      # Keras' val_* metrics need a compiled loss; the rounds' early
      # stopping measures the dev accuracy itself.
      validation_data=validation_data if self.loss is not None else None,
      initial_epoch=initial_epoch, **kwargs)
