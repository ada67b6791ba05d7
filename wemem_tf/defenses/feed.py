"""A defense run in Keras' `model.fit`: its epoch plans as a tf.data feed.

`DefenseFeed` turns a `DefenseRun`'s epoch plans into the data `model.fit`
iterates: each element is one batch of the plan, `(x, y, (weight_decay,
kind))`, with the batch's L2 coefficient (λ_mem on risky batches) and its
`BatchKind`. Keras fixes the number of steps of every epoch after the first
one, while a defense's epochs differ in size (a window shrinks at the end
of a class's order; the risky records of a window vary), so every epoch is
padded with `BatchKind.PADDING` elements (no records, trained on by nobody)
to `batches_per_epoch` = ceil(n / batch size) + 1, a bound on any plan's
batch count. A model whose `train_step` hands every batch to the run's
`TrainStep` (`wemem_tf.pruning.prune_low_memorization` installs one) then
trains exactly the batches, coefficients and updates of the library's loop:
the windows and their order, risky batches with their own optimizer, the
PPB / RelaxLoss / HAMP losses, DP-SGD's optimizer and AdvReg's inner attack
steps.

The plan of each epoch is drawn by `next_plan` before the epoch starts (the
`IterativePruning` callback does it in `on_epoch_end`, when Keras has not yet
created the next epoch's iterator), from the same random streams as the
library's loop: `numpy.random.default_rng(seed * 1000 + iteration)` per
pruning iteration.
"""

from typing import Optional

import math

import numpy as np
import tensorflow as tf

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.training import loop as loop_lib


class DefenseFeed:
  """Serves a `DefenseRun`'s per-epoch plans over arrays (x, y).

  Args:
    run: the bound defense (`Defense.bind(...)`).
    x: float32 (n, ...) training features (the run's records).
    y: int (n,) labels.

  Attributes:
    plan: the current epoch's `EpochPlan` (None before `next_plan`).
    visited: one int array per epoch served: the training-record positions
      of its batches, in order.
  """

  def __init__(self, run: defense_lib.DefenseRun, x: np.ndarray,
               y: np.ndarray):
    self.run = run
    self.x = np.asarray(x, np.float32)
    self.y = np.asarray(y, np.int64)
    if len(self.x) != len(run.records.y) or len(self.y) != len(self.x):
      raise ValueError(f"DefenseFeed: {len(self.x)} features and "
                       f"{len(self.y)} labels for a run on "
                       f"{len(run.records.y)} records.")
    self.plan: Optional[loop_lib.EpochPlan] = None
    self.batches_per_epoch = math.ceil(
        len(self.y) / run.train_config.batch_size) + 1
    self.visited = []
    self._rng = None
    self._iteration = 0

  def start_iteration(self, iteration: int) -> None:
    """Resets the plan stream for pruning iteration `iteration`."""
    self._iteration = iteration
    self._rng = np.random.default_rng(self.run.seed * 1000 + iteration)

  def next_plan(self, epoch: int) -> loop_lib.EpochPlan:
    """Draws epoch `epoch`'s plan of the current iteration (may be empty)."""
    if self._rng is None:
      self.start_iteration(0)
    self.plan = self.run.epoch_plan(self._iteration, epoch, self._rng)
    return self.plan

  def _batches(self):
    plan = self.plan
    if plan.num_batches > self.batches_per_epoch:
      raise ValueError(f"an epoch plan of {plan.num_batches} batches exceeds "
                       f"the feed's bound of {self.batches_per_epoch}.")
    self.visited.append(plan.order.copy())
    for b in range(plan.num_batches):
      idx = plan.order[plan.batch_bounds[b]:plan.batch_bounds[b + 1]]
      yield (self.x[idx], self.y[idx],
             (np.float32(plan.batch_weight_decay[b]),
              np.int32(plan.batch_kind[b])))
    padding = (self.x[:0], self.y[:0],
               (np.float32(0.0), np.int32(loop_lib.BatchKind.PADDING)))
    for _ in range(self.batches_per_epoch - plan.num_batches):
      yield padding

  def dataset(self) -> tf.data.Dataset:
    """The current plan's batches; Keras re-iterates it every epoch."""
    return tf.data.Dataset.from_generator(
        self._batches, output_signature=(
            tf.TensorSpec([None, *self.x.shape[1:]], tf.float32),
            tf.TensorSpec([None], tf.int64),
            (tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32))))
