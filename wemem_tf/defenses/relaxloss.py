"""RelaxLoss (Chen, Yu & Fritz, ICLR 2022), applied while fine-tuning.

RelaxLoss stops the training loss from falling below a target level α, so
member losses stay close to non-member losses. This module follows the
authors' two official trainers in the DingfanChen/RelaxLoss repository:
`source/nonimage/defense/relaxloss.py` (Purchase, Texas) and
`source/cifar/defense/relaxloss.py` (CIFAR-10/100), both `Trainer.train`.

Notation, for a batch of B records with logits z_i, labels y_i and C
classes: q_i = softmax(z_i); CE_i = −log q_{i,y_i}; L = (1/B) Σ_i CE_i.

Per batch, in both variants (epochs counted from 0):

* even epochs: minimize |L − α| (descent while L > α, ascent once L < α);
* odd epochs, L > α: minimize L (ordinary descent);
* odd epochs, L ≤ α: minimize the variant's posterior-flattening loss F.

The flattening soft label of record i keeps the model's current true-class
probability, clipped at `upper`, and spreads the rest evenly:

    t_{i,y_i} = min(q_{i,y_i}, upper),
    t_{i,k}   = (1 − t_{i,y_i}) / (C − 1)   for k ≠ y_i,

and S_i = −Σ_k t_{i,k} log q_{i,k} is the cross-entropy to it. As in both
official trainers, t is built from the live softmax, so the gradient of F
flows through q_{i,y_i} as well as through log q (where the clip is active,
q_{i,y_i} > upper, that path carries no gradient, as a clamp does).

* `tabular` (the non-image trainer):   F = (1/B) Σ_i S_i.
* `image` (the CIFAR trainer):   F = (1/B) Σ_i [(1 − c_i) · S_i − CE_i],
  where c_i = 1 when the record is predicted correctly (argmax_k z_{i,k} =
  y_i) and 0 otherwise, a constant (no gradient). Correctly classified
  records thus get gradient ascent on their cross-entropy; misclassified
  ones get S_i − CE_i.

The variant is a setting (`--relaxloss_variant`): `tabular`, `image`, or
`auto` (default), which, as the authors choose by dataset, picks `image`
when the fine-tuning records are images, i.e. `records.x.ndim >= 3` (each
record an (H, W) or (H, W, C) array, as the image models of the zoo take),
and `tabular` for flat feature vectors (`records.x.ndim == 2`; the flat 8×8
digits count as tabular). A bound run resolves it and reports it as
`variant_used`.

The epoch parity is carried to the compiled step as the batch kind of each
epoch plan (`BatchKind.EVEN_EPOCH` / `ODD_EPOCH`, epochs counted from 0
within each pruning iteration), so the training function is traced once.
The L2 `weight_decay · w` is added to the gradients in every case; Adam as
elsewhere (the official trainers use SGD with momentum).

Default α = 1.0 (docs/method.md §6). `upper` defaults to the authors'
value for the variant in use (`upper_used` in the report): 1.0 (no
clipping) for `image`, their setting for CIFAR; 0.3 for `tabular`, their
Purchase setting (Texas: 0.1). Unclipped, the tabular loss's gradient
through q_{i,y_i} raises the true-class confidence (∂S_i/∂t_{i,y_i} < 0
whenever q_{i,y_i} exceeds the geometric mean of the other classes'
probabilities), and the training loss drifts below α.
"""

import dataclasses
from typing import Any, ClassVar, Dict, Optional

import numpy as np
import tensorflow as tf

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib

ASCENT = loop_lib.BatchKind.EVEN_EPOCH   # even epochs: |L − α|
FLATTEN = loop_lib.BatchKind.ODD_EPOCH   # odd epochs: descent above α,
                                         # flattening below

AUTO = "auto"
TABULAR = "tabular"
IMAGE = "image"
VARIANTS = (AUTO, TABULAR, IMAGE)
# The authors' `upper` per trainer (configs: CIFAR 1; Purchase 0.3).
DEFAULT_UPPER = {TABULAR: 0.3, IMAGE: 1.0}


def resolve_variant(variant: str, x) -> str:
  """`variant` with `auto` resolved from the training features `x`:
  `image` when x.ndim >= 3 (records are (H, W) or (H, W, C) arrays),
  `tabular` otherwise."""
  if variant not in VARIANTS:
    raise ValueError(f"RelaxLoss variant must be one of {list(VARIANTS)}, "
                     f"got {variant!r}.")
  if variant != AUTO:
    return variant
  return IMAGE if np.ndim(x) >= 3 else TABULAR


def flattened_targets(logits: tf.Tensor, labels: tf.Tensor,
                      upper: float) -> tf.Tensor:
  """Soft labels (batch, C): p_y clipped at `upper` on the label,
  (1 − p_y) / (C − 1) on every other class, with p_y the softmax's
  true-class probability. Differentiable through p_y (as the official
  trainers): the clip passes no gradient where p_y > upper."""
  num_classes = tf.shape(logits)[-1]
  probs = tf.nn.softmax(logits, axis=-1)
  onehot = tf.one_hot(labels, num_classes, dtype=probs.dtype)
  p_true = tf.minimum(tf.reduce_sum(probs * onehot, axis=-1, keepdims=True),
                      upper)
  p_else = (1.0 - p_true) / tf.cast(num_classes - 1, probs.dtype)
  return onehot * p_true + (1.0 - onehot) * p_else


def flattening_loss(logits: tf.Tensor, labels: tf.Tensor, upper: float,
                    variant: str) -> tf.Tensor:
  """The posterior-flattening loss F of `variant` (`tabular` or `image`,
  resolved) over the batch, a scalar; see the module docstring."""
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  soft = flattened_targets(logits, labels, upper)
  soft_ce = tf.reduce_sum(-soft * log_probs, axis=-1)
  if variant == TABULAR:
    return tf.reduce_mean(soft_ce)
  if variant != IMAGE:
    raise ValueError(f"RelaxLoss flattening needs a resolved variant "
                     f"({TABULAR!r} or {IMAGE!r}), got {variant!r}.")
  labels = tf.cast(labels, tf.int64)
  correct = tf.stop_gradient(tf.cast(
      tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int64), labels),
      log_probs.dtype))
  ce = -tf.gather(log_probs, labels, axis=-1, batch_dims=1)
  return tf.reduce_mean((1.0 - correct) * soft_ce - ce)


class RelaxLossStep(loop_lib.TrainStep):
  """One RelaxLoss update; `kind` is the epoch parity (EVEN/ODD_EPOCH).

  Returns the batch's mean cross-entropy L (what RelaxLoss keeps near α).
  """

  def __init__(self, alpha: float, upper: float, variant: str = TABULAR):
    super().__init__()
    if variant not in (TABULAR, IMAGE):
      raise ValueError(f"RelaxLossStep needs a resolved variant ({TABULAR!r} "
                       f"or {IMAGE!r}), got {variant!r}.")
    self.alpha = float(alpha)
    self.upper = float(upper)
    self.variant = variant

  def batch_objective(self, logits: tf.Tensor, labels: tf.Tensor,
                      kind: tf.Tensor):
    """(loss to minimize, batch mean cross-entropy L) from the logits."""
    ce = tf.reduce_mean(self.loss_fn(labels, logits))
    flatten = flattening_loss(logits, labels, self.upper, self.variant)
    odd_epoch = tf.where(ce > self.alpha, ce, flatten)
    loss = tf.where(tf.equal(kind, int(ASCENT)),
                    tf.abs(ce - self.alpha), odd_epoch)
    return loss, ce

  def __call__(self, model, xb, yb, weight_decay, kind):

    def objective():
      return self.batch_objective(model(xb, training=True), yb, kind)

    return self.descend(model, objective, weight_decay)


class RelaxLossRun(defense_lib.DefenseRun):
  """RelaxLoss on one model's records; resolves the `auto` variant."""

  def __init__(self, defense: "RelaxLoss", records, tuning):
    super().__init__(defense, records, tuning)
    self.variant = resolve_variant(defense.variant, records.x)
    self.upper = (DEFAULT_UPPER[self.variant] if defense.upper is None
                  else defense.upper)

  def epoch_plan(self, iteration: int, epoch: int,
                 rng: np.random.Generator) -> loop_lib.EpochPlan:
    del iteration
    return loop_lib.batched_plan(rng.permutation(len(self.records.y)),
                                 self.train_config.batch_size,
                                 self.train_config.weight_decay,
                                 FLATTEN if epoch % 2 else ASCENT)

  def train_step(self) -> loop_lib.TrainStep:
    return RelaxLossStep(self.defense.alpha, self.upper, self.variant)

  def report(self) -> Dict[str, Any]:
    out = super().report()
    out["variant_used"] = self.variant
    out["upper_used"] = self.upper
    return out


@dataclasses.dataclass(frozen=True)
class RelaxLoss(defense_lib.Defense):
  """RelaxLoss (Chen et al. 2022): keep the training loss near α.

  Attributes:
    alpha: target loss level α > 0 (default 1.0).
    upper: clip of the correct-class confidence kept in the flattened soft
      labels, in (0, 1]; None (default): the authors' value for the
      variant (tabular 0.3, image 1.0).
    variant: the flattening loss: "tabular" (the authors' non-image
      trainer), "image" (their CIFAR trainer) or "auto" (default: "image"
      when the records' x has >= 3 dimensions, else "tabular").
  """
  alpha: float = settings_lib.setting(
      1.0, "relaxloss_alpha", "RelaxLoss target loss α.", low=0,
      low_open=True, tune=settings_lib.Tune("relaxloss_alpha", 0.5, 2.0))
  upper: Optional[float] = settings_lib.setting(
      None, "relaxloss_upper", "RelaxLoss flattening upper bound in (0, 1] "
      "(default: tabular 0.3, image 1.0, the authors' values).", low=0,
      high=1, low_open=True, optional=True)
  variant: str = settings_lib.setting(
      AUTO, "relaxloss_variant", "RelaxLoss flattening loss: auto (image "
      "for image records, else tabular), tabular or image.", kind="choice",
      choices=VARIANTS)

  name: ClassVar[str] = "relaxloss"
  display_name: ClassVar[str] = "RelaxLoss"
  RUN: ClassVar[type] = RelaxLossRun
  # The WeMem authors compare against the CIFAR trainer's loss everywhere.
  PAPER_SETTINGS: ClassVar[Dict[str, Any]] = dict(variant="image")

  def check_records(self, records, train_config):
    if records.num_classes < 2:
      raise ValueError("RelaxLoss flattens the posterior over the other "
                       f"classes; it needs >= 2 classes, got "
                       f"{records.num_classes}.")
