"""`IterativePruning`: the rounds of iterative pruning inside `model.fit`.

`model.fit` of a model wrapped by `prune_low_memorization` trains with this
callback (one with the defaults is added when the caller passes none). It
runs the `IterativeSparsity` schedule by epochs, as `IterativePruner` does
in the library's loop:

* round k starts by recomputing the masks once (`PruningRounds.start`);
* each epoch of the round trains the defense's plan for that epoch (the
  `DefenseFeed`), then the dev accuracy (on `validation_data`) is measured;
* the round ends after `epochs_per_iteration` epochs, when the dev accuracy
  has not improved for `patience` epochs, or when the defense's plan for
  the next epoch is empty (a sliding window past every class's records);
* at its end the model goes back to the round's best checkpoint
  (`restore_best_weights`), and training stops after the last round, at
  that round's best checkpoint.

Compatible with TFMOT's `UpdatePruningStep` and `PruningSummaries` in the
same `callbacks` list: the masks only change at round starts.
`wemem_tf.pruning.IterationSummaries` in the list writes each round's
record (and each epoch's loss and dev accuracy) to TensorBoard.
"""

import time
from typing import List, Optional, Tuple

import numpy as np

from wemem_tf._keras import keras
from wemem_tf.models import evaluate
from wemem_tf.pruning import iterative
from wemem_tf.training import loop as loop_lib

Arrays = Tuple[np.ndarray, np.ndarray]


class IterativePruning(keras.callbacks.Callback):
  """Runs the pruning rounds of `IterativeSparsity` in `model.fit`.

  Args:
    patience: end a round after this many epochs without a better dev
      accuracy (needs `validation_data`); None: every round runs
      `epochs_per_iteration` epochs.
    restore_best_weights: end each round at its best dev checkpoint (the
      library's default); False: continue from the last epoch (the
      authors' code), the final model still being the last round's best.
    test_data: optional (x, y) whose accuracy each round's record reports.

  Attributes:
    history: one `IterationRecord` per finished round.
  """

  def __init__(self, patience: Optional[int] = 6,
               restore_best_weights: bool = True,
               test_data: Optional[Arrays] = None):
    super().__init__()
    if patience is not None and (not isinstance(patience, int)
                                 or patience < 1):
      raise ValueError(f"patience must be an integer >= 1 or None, got "
                       f"{patience!r}.")
    self.patience = patience
    self.restore_best_weights = bool(restore_best_weights)
    self.test_data = test_data
    self.history: List[iterative.IterationRecord] = []
    self.feed = None
    self.rounds = None
    self.train = self.dev = None

  def attach(self, feed, train: Arrays, dev: Optional[Arrays]) -> None:
    """Gives the callback the fit's data (called by the defended fit)."""
    if self.patience is not None and dev is None:
      raise ValueError("early stopping per pruning round needs dev data: "
                       "pass validation_data=(x_dev, y_dev) to fit, or "
                       "IterativePruning(patience=None) in its callbacks.")
    self.feed, self.train, self.dev = feed, train, dev

  # ---- Keras hooks ---------------------------------------------------------

  def on_train_begin(self, logs=None):
    if self.feed is None:
      raise ValueError("IterativePruning runs inside fit of a model wrapped "
                       "by wemem_tf.prune_low_memorization.")
    self.rounds = iterative.PruningRounds(self.model)
    del self.history[:]  # the list `model.wemem_fit.history` shares
    self._begin_round(0)

  def on_epoch_begin(self, epoch, logs=None):
    fitted = getattr(self.model, "wemem_fit", None)
    if fitted is not None:
      fitted.loss.reset_state()

  def on_epoch_end(self, epoch, logs=None):
    self.rounds.apply_masks()
    acc = (self._accuracy(self.dev) if self.dev is not None
           else float("nan"))
    if logs is not None:
      logs["pruning_iteration"] = self._iteration
      logs["dev_accuracy"] = acc
    self._curves[0].append(float((logs or {}).get("loss", float("nan"))))
    self._curves[1].append(acc)
    stop = self._best.update(self._epoch, acc, self.model)
    if self.patience is None:
      stop = False
    self._epoch += 1
    if (stop or self._epoch >= self.rounds.schedule.epochs_per_iteration
        or self.feed.next_plan(self._epoch).num_batches == 0):
      self._end_round()

  # ---- rounds --------------------------------------------------------------

  def _begin_round(self, iteration: int) -> None:
    """Starts round `iteration`; rounds whose first plan is empty end at
    once (as in the library's loop); the last one stops training."""
    while True:
      self._iteration, self._epoch = iteration, 0
      self._start_time = time.perf_counter()
      self._curves = ([], [])  # per epoch: (train loss, dev accuracy)
      self.rounds.start(iteration)
      self.feed.start_iteration(iteration)
      self._best = loop_lib.BestCheckpoint(self.model,
                                           self.patience or 1)
      if self.feed.next_plan(0).num_batches:
        return
      if not self._finish_round():
        return
      iteration += 1

  def _end_round(self) -> None:
    if self._finish_round():
      self._begin_round(self._iteration + 1)

  def _finish_round(self) -> bool:
    """Records the round; True when another round follows."""
    best = self._best
    last = None
    if self.restore_best_weights:
      self.model.set_weights(best.weights)
    else:
      last = self.model.get_weights()
      self.model.set_weights(best.weights)
    accuracies = (self._accuracy(self.train), self._accuracy(self.dev),
                  self._accuracy(self.test_data))
    self.history.append(iterative.iteration_record(
        self.model, self.rounds.schedule, self._iteration, accuracies,
        self._epoch, best.epoch, time.perf_counter() - self._start_time,
        *self._curves))
    if self._iteration + 1 >= self.rounds.num_iterations:
      self.model.stop_training = True  # at the last round's best checkpoint
      return False
    if last is not None:
      self.model.set_weights(last)
    return True

  def _accuracy(self, data: Optional[Arrays]) -> float:
    if data is None:
      return float("nan")
    return evaluate.accuracy(self.model, *data)
