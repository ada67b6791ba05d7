"""RelaxLoss (Chen, Yu & Fritz, ICLR 2022), applied while fine-tuning.

RelaxLoss stops the training loss from falling below a target level α, so
member losses stay close to non-member losses. Per batch, with L the batch's
mean cross-entropy:

* L > α: ordinary gradient descent on L.
* L ≤ α, on even epochs: gradient *ascent* on L (the step minimizes |L − α|,
  i.e. descends above α and ascends below it).
* L ≤ α, on odd epochs: posterior flattening. Each record's soft label keeps
  the model's current probability of the correct class, p_y (clipped at
  `upper`, no gradient through it), and spreads 1 − p_y evenly over the other
  classes; the step descends on the cross-entropy to these soft labels. This
  leaves the correct-class confidence where it is and flattens the rest of
  the posterior.

This is Algorithm 1 of the paper in the form of the authors' non-image
(Purchase/Texas) trainer, which alternates by epoch parity; their CIFAR
trainer uses a different flattening loss, not implemented here. The epoch
parity is carried to the compiled step as the batch group of each epoch
plan (group = epoch mod 2, epochs counted from 0 within each pruning
iteration), so the training function is traced once. The L2 `weight_decay ·
w` is added to the gradients in every case; Adam as elsewhere.

Default α = 1.0 (METHOD.md §6); `upper` = 1.0 (no clipping, the authors'
default).
"""

import dataclasses
import math
import numbers
from typing import Any, Dict

import numpy as np
import tensorflow as tf

from wemem_tf.defenses import base
from wemem_tf.training import loop as loop_lib

ASCENT_GROUP = 0    # even epochs: |L − α|
FLATTEN_GROUP = 1   # odd epochs: descent above α, flattening below


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def flattened_targets(logits: tf.Tensor, labels: tf.Tensor,
                      upper: float) -> tf.Tensor:
  """Soft labels (batch, C): p_y (clipped at `upper`, constant) on the label,
  (1 − p_y) / (C − 1) on every other class."""
  num_classes = tf.shape(logits)[-1]
  probs = tf.stop_gradient(tf.nn.softmax(logits, axis=-1))
  onehot = tf.one_hot(labels, num_classes, dtype=probs.dtype)
  p_true = tf.minimum(tf.reduce_sum(probs * onehot, axis=-1, keepdims=True),
                      upper)
  p_else = (1.0 - p_true) / tf.cast(num_classes - 1, probs.dtype)
  return onehot * p_true + (1.0 - onehot) * p_else


class RelaxLossStep(loop_lib.TrainStep):
  """One RelaxLoss update; `group` is the epoch parity (0 even, 1 odd).

  Returns the batch's mean cross-entropy L (what RelaxLoss keeps near α).
  """

  def __init__(self, alpha: float, upper: float):
    super().__init__()
    self.alpha = float(alpha)
    self.upper = float(upper)

  def __call__(self, model, xb, yb, weight_decay, group):

    def objective():
      logits = model(xb, training=True)
      ce = tf.reduce_mean(self.loss_fn(yb, logits))
      soft = flattened_targets(logits, yb, self.upper)
      flatten = tf.reduce_mean(tf.reduce_sum(
          -soft * tf.nn.log_softmax(logits, axis=-1), axis=-1))
      odd_epoch = tf.where(ce > self.alpha, ce, flatten)
      loss = tf.where(tf.equal(group, ASCENT_GROUP),
                      tf.abs(ce - self.alpha), odd_epoch)
      return loss, ce

    return self.descend(model, objective, weight_decay)


@dataclasses.dataclass
class RelaxLoss(base.Defense):
  """RelaxLoss (Chen et al. 2022): keep the training loss near α.

  Attributes:
    alpha: target loss level α > 0 (default 1.0).
    upper: clip of the correct-class confidence kept in the flattened soft
      labels, in (0, 1] (default 1.0: no clip).
  """
  alpha: float = 1.0
  upper: float = 1.0

  name = "relaxloss"

  def __post_init__(self):
    base.Defense.__init__(self)
    if not (_is_real(self.alpha) and math.isfinite(self.alpha)
            and self.alpha > 0):
      raise ValueError(f"RelaxLoss alpha (the target loss) must be a finite "
                       f"number > 0, got {self.alpha!r}.")
    if not (_is_real(self.upper) and 0 < self.upper <= 1):
      raise ValueError(f"RelaxLoss upper must lie in (0, 1], got "
                       f"{self.upper!r}.")
    self.alpha, self.upper = float(self.alpha), float(self.upper)

  def bind(self, records, train_config, num_iterations, epochs_per_iteration,
           seed):
    super().bind(records, train_config, num_iterations, epochs_per_iteration,
                 seed)
    if records.num_classes < 2:
      raise ValueError("RelaxLoss flattens the posterior over the other "
                       f"classes; it needs >= 2 classes, got "
                       f"{records.num_classes}.")

  def epoch_plan(self, iteration: int, epoch: int,
                 rng: np.random.Generator) -> loop_lib.EpochPlan:
    del iteration
    return loop_lib.batched_plan(rng.permutation(len(self.records.y)),
                                 self.train_config.batch_size,
                                 self.train_config.weight_decay,
                                 group=epoch % 2)

  def train_step(self) -> loop_lib.TrainStep:
    return RelaxLossStep(self.alpha, self.upper)

  def report(self) -> Dict[str, Any]:
    return {"defense": self.name, **self.config()}
