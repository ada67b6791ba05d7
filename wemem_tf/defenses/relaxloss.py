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
parity is carried to the compiled step as the batch kind of each epoch
plan (`BatchKind.EVEN_EPOCH` / `ODD_EPOCH`, epochs counted from 0 within
each pruning iteration), so the training function is traced once. The L2 `weight_decay ·
w` is added to the gradients in every case; Adam as elsewhere.

Default α = 1.0 (docs/method.md §6); `upper` = 1.0 (no clipping, the authors'
default).
"""

import dataclasses
from typing import ClassVar

import numpy as np
import tensorflow as tf

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib

ASCENT = loop_lib.BatchKind.EVEN_EPOCH   # even epochs: |L − α|
FLATTEN = loop_lib.BatchKind.ODD_EPOCH   # odd epochs: descent above α,
                                         # flattening below


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
  """One RelaxLoss update; `kind` is the epoch parity (EVEN/ODD_EPOCH).

  Returns the batch's mean cross-entropy L (what RelaxLoss keeps near α).
  """

  def __init__(self, alpha: float, upper: float):
    super().__init__()
    self.alpha = float(alpha)
    self.upper = float(upper)

  def __call__(self, model, xb, yb, weight_decay, kind):

    def objective():
      logits = model(xb, training=True)
      ce = tf.reduce_mean(self.loss_fn(yb, logits))
      soft = flattened_targets(logits, yb, self.upper)
      flatten = tf.reduce_mean(tf.reduce_sum(
          -soft * tf.nn.log_softmax(logits, axis=-1), axis=-1))
      odd_epoch = tf.where(ce > self.alpha, ce, flatten)
      loss = tf.where(tf.equal(kind, int(ASCENT)),
                      tf.abs(ce - self.alpha), odd_epoch)
      return loss, ce

    return self.descend(model, objective, weight_decay)


class RelaxLossRun(defense_lib.DefenseRun):

  def epoch_plan(self, iteration: int, epoch: int,
                 rng: np.random.Generator) -> loop_lib.EpochPlan:
    del iteration
    return loop_lib.batched_plan(rng.permutation(len(self.records.y)),
                                 self.train_config.batch_size,
                                 self.train_config.weight_decay,
                                 FLATTEN if epoch % 2 else ASCENT)

  def train_step(self) -> loop_lib.TrainStep:
    return RelaxLossStep(self.defense.alpha, self.defense.upper)


@dataclasses.dataclass(frozen=True)
class RelaxLoss(defense_lib.Defense):
  """RelaxLoss (Chen et al. 2022): keep the training loss near α.

  Attributes:
    alpha: target loss level α > 0 (default 1.0).
    upper: clip of the correct-class confidence kept in the flattened soft
      labels, in (0, 1] (default 1.0: no clip).
  """
  alpha: float = settings_lib.setting(
      1.0, "relaxloss_alpha", "RelaxLoss target loss α.", low=0,
      low_open=True, tune=settings_lib.Tune("relaxloss_alpha", 0.5, 2.0))
  upper: float = settings_lib.setting(
      1.0, "relaxloss_upper", "RelaxLoss flattening upper bound in (0, 1].",
      low=0, high=1, low_open=True)

  name: ClassVar[str] = "relaxloss"
  display_name: ClassVar[str] = "RelaxLoss"
  RUN: ClassVar[type] = RelaxLossRun

  def check_records(self, records, train_config):
    if records.num_classes < 2:
      raise ValueError("RelaxLoss flattens the posterior over the other "
                       f"classes; it needs >= 2 classes, got "
                       f"{records.num_classes}.")
