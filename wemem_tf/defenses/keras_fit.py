"""Defenses in a user's own `model.fit`: a data pipeline, a callback, a loss.

`DefenseFeed` serves a defense's epoch plans to `model.fit`:

* `dataset()`: a `tf.data.Dataset` whose pass e yields epoch e's batches
  (the sliding window's records, risky batches first for P3);
* `callback()`: advances the epoch and, before each batch, sets the batch's
  L2 coefficient (λ_mem on risky batches, the ordinary decay otherwise);
* `add_weight_decay_loss(model)`: adds 0.5 · coefficient · Σ‖w‖² to the
  model's losses, whose gradient is the L2 term the library's loop adds.

With `model.fit` one optimizer serves every batch (the `shared_optimizer`
variant of P3). Defenses that replace the batch update (`train_step`) need
the library's `IterativePruner` or `TrainingLoop`.

Example:
  feed = DefenseFeed(RSW(scores=scores), x_train, y_train, index=train_index)
  feed.add_weight_decay_loss(model)
  model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(True))
  model.fit(feed.dataset(), epochs=21, callbacks=[feed.callback()])
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.defenses import base
from wemem_tf.defenses import registry
from wemem_tf.training import loop as loop_lib


class DefenseFeed:
  """Feeds a defense's per-epoch plans to `model.fit`.

  Args:
    defense: a Defense, a name, or None.
    x: float32 (n, ...) training features.
    y: int (n,) labels.
    index: int (n,) dataset record indices (aligns scores); default 0..n-1.
    num_classes: default max(y) + 1.
    train_config: batch size and ordinary weight decay.
    iteration: the pruning iteration whose windows to serve (random-order
      windows change per iteration).
    epochs: epochs planned (for window statistics).
    seed: seeds the epoch order.
  """

  def __init__(self, defense, x: np.ndarray, y: np.ndarray,
               index: Optional[np.ndarray] = None,
               num_classes: Optional[int] = None,
               train_config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
               iteration: int = 0, epochs: int = 21, seed: int = 0):
    self.defense = registry.resolve(defense)
    self.x = np.asarray(x, np.float32)
    self.y = np.asarray(y, np.int64)
    index = np.arange(len(self.y)) if index is None else np.asarray(index)
    num_classes = int(self.y.max()) + 1 if num_classes is None else num_classes
    self.defense.bind(base.TrainingRecords(self.x, self.y, index, num_classes),
                      train_config, iteration + 1, epochs, seed)
    self.iteration = iteration
    self.epoch = 0
    self._rng = np.random.default_rng(seed)
    self._plan = None
    self.weight_decay = tf.Variable(train_config.weight_decay, trainable=False,
                                    dtype=tf.float32, name="batch_weight_decay")

  def plan(self) -> loop_lib.EpochPlan:
    """The current epoch's plan (drawn once per epoch)."""
    if self._plan is None:
      self._plan = self.defense.epoch_plan(self.iteration, self.epoch,
                                           self._rng)
    return self._plan

  def _batches(self):
    plan = self.plan()
    for b in range(plan.num_batches):
      idx = plan.order[plan.batch_bounds[b]:plan.batch_bounds[b + 1]]
      yield self.x[idx], self.y[idx]

  def dataset(self) -> tf.data.Dataset:
    """Batches of the current epoch; re-iterated by fit every epoch."""
    return tf.data.Dataset.from_generator(
        self._batches, output_signature=(
            tf.TensorSpec([None, *self.x.shape[1:]], tf.float32),
            tf.TensorSpec([None], tf.int64)))

  def callback(self) -> keras.callbacks.Callback:
    feed = self

    class _FeedCallback(keras.callbacks.Callback):

      def on_train_batch_begin(self, batch, logs=None):
        decays = feed.plan().batch_weight_decay
        if batch < len(decays):
          feed.weight_decay.assign(float(decays[batch]))

      def on_epoch_end(self, epoch, logs=None):
        feed.epoch += 1
        feed._plan = None  # pylint: disable=protected-access

    return _FeedCallback()

  def add_weight_decay_loss(self, model: keras.Model) -> None:
    """Adds 0.5 · (current batch's coefficient) · Σ‖w‖² to model.losses."""
    def l2():
      return 0.5 * self.weight_decay * tf.add_n(
          [tf.reduce_sum(tf.square(v)) for v in model.trainable_variables])
    model.add_loss(l2)
