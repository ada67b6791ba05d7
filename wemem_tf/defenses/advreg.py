"""AdvReg: adversarial regularization (Nasr, Shokri & Houmansadr, CCS 2018).

"Machine Learning with Membership Privacy using Adversarial Regularization."
Training is a min-max game between the classifier f and an inference network
h(f(x), y) ∈ (0, 1) that tells members from the defender's reference
non-members. Inside each compiled fine-tuning step (batch B of members):

1. k = `attack_steps` (7) inner steps train h: each draws a fresh batch B'
   of |B| reference records (with replacement from `reference_x/y`, the
   defender's dev split) and takes one Adam step on h's binary cross-entropy
   (members of B labelled 1, records of B' labelled 0), with f fixed and
   evaluated in inference mode.
2. One step trains f on B: mean CE + λ · (mean h(f(x), y) − 0.5) — the
   classifier lowers the membership probability the inference network gives
   its own training records — with the L2 `weight_decay · w` added to the
   gradients, Adam. The paper's Algorithm 1 writes the gain with log h; we
   use h itself, as the authors' released code (and its common
   reimplementations) do: log h is unbounded below, and with it the
   classifier can win the game by wrecking its own accuracy (on digits,
   λ = 4 cost more than half the test accuracy in four epochs).

The inference network follows Nasr et al.: the posterior f(x) goes through
Dense layers `attack_hidden` (default 1024-512-64, ReLU), the one-hot label
through `attack_hidden[1:]` (512-64), their concatenation through
(4·last, last) = 256-64 and a final unit (a logit). It and its Adam
optimizer are built once with the step; they persist across the pruning
iterations, as the game continues through fine-tuning.

λ ∈ {1, 2, 4, 8} in WeMem (docs/method.md §6); default λ = 4 (our choice in that
grid).
"""

import dataclasses
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib


def inference_network(num_classes: int, hidden: Sequence[int],
                      name: str = "advreg_inference") -> keras.Model:
  """Nasr et al.'s inference network: (posterior, one-hot label) -> logit."""
  layers = keras.layers
  posterior = keras.Input((num_classes,), name="posterior")
  label = keras.Input((num_classes,), name="label")
  h = posterior
  for units in hidden:
    h = layers.Dense(units, activation="relu")(h)
  g = label
  for units in hidden[1:] or hidden:
    g = layers.Dense(units, activation="relu")(g)
  z = layers.Concatenate()([h, g])
  z = layers.Dense(4 * hidden[-1], activation="relu")(z)
  z = layers.Dense(hidden[-1], activation="relu")(z)
  out = layers.Dense(1)(z)
  return keras.Model([posterior, label], out, name=name)


class AdvRegStep(loop_lib.TrainStep):
  """k inference-network steps, then one classifier step (see module doc).

  Reference records are held in variables: `load_reference` fills them
  (before or after `build`). Returns the batch's mean cross-entropy.
  """

  def __init__(self, weight: float, attack_steps: int,
               attack_hidden: Tuple[int, ...], attack_learning_rate: float):
    super().__init__()
    self.weight = float(weight)
    self.attack_steps = int(attack_steps)
    self.attack_hidden = tuple(attack_hidden)
    self.attack_learning_rate = float(attack_learning_rate)
    self.attack = None
    self.attack_optimizer = None
    self.num_classes = None
    self._ref_x = self._ref_y = self._ref_n = None
    self._pending: Optional[Tuple[np.ndarray, np.ndarray]] = None
    self.last_attack_loss: Optional[tf.Variable] = None

  def build(self, model, config, optimizer=None):
    super().build(model, config, optimizer)
    self.num_classes = int(model.output_shape[-1])
    self.attack = inference_network(self.num_classes, self.attack_hidden)
    self.attack_optimizer = keras.optimizers.Adam(self.attack_learning_rate)
    self.attack_optimizer.build(self.attack.trainable_variables)
    feature_shape = list(model.input_shape[1:])
    self._ref_x = tf.Variable(np.zeros([1] + feature_shape, np.float32),
                              shape=tf.TensorShape([None] + feature_shape),
                              trainable=False, name="advreg_reference_x")
    self._ref_y = tf.Variable(np.zeros([1], np.int64),
                              shape=tf.TensorShape([None]), trainable=False,
                              name="advreg_reference_y")
    self._ref_n = tf.Variable(0, dtype=tf.int32, trainable=False,
                              name="advreg_reference_count")
    self.last_attack_loss = tf.Variable(float("nan"), trainable=False,
                                        name="advreg_attack_loss")
    if self._pending is not None:
      self.load_reference(*self._pending)

  def load_reference(self, x: np.ndarray, y: np.ndarray) -> None:
    """Sets the reference non-members the inference network trains on."""
    if self._ref_x is None:
      self._pending = (x, y)
      return
    self._ref_x.assign(np.asarray(x, np.float32))
    self._ref_y.assign(np.asarray(y, np.int64))
    self._ref_n.assign(len(y))
    self._pending = None

  def _attack_logits(self, probs, labels):
    onehot = tf.one_hot(labels, self.num_classes)
    return tf.squeeze(self.attack([probs, onehot], training=True), -1)

  def __call__(self, model, xb, yb, weight_decay, kind):
    del kind
    tf.debugging.assert_positive(
        self._ref_n, message="AdvReg has no reference records: bind the "
        "defense (the pruner does) before training.")
    batch = tf.shape(xb)[0]
    member_probs = tf.stop_gradient(tf.nn.softmax(model(xb, training=False)))
    attack_vars = self.attack.trainable_variables
    attack_loss = tf.constant(0.0)
    for _ in tf.range(self.attack_steps):  # a graph loop: traced once
      idx = tf.random.uniform([batch], 0, self._ref_n, dtype=tf.int32)
      ref_y = tf.gather(self._ref_y, idx)
      ref_probs = tf.stop_gradient(tf.nn.softmax(
          model(tf.gather(self._ref_x, idx), training=False)))
      with tf.GradientTape() as tape:
        member_logit = self._attack_logits(member_probs, yb)
        ref_logit = self._attack_logits(ref_probs, ref_y)
        # BCE: members labelled 1, reference records labelled 0.
        attack_loss = 0.5 * (tf.reduce_mean(tf.nn.softplus(-member_logit)) +
                             tf.reduce_mean(tf.nn.softplus(ref_logit)))
      grads = tape.gradient(attack_loss, attack_vars)
      loop_lib.apply_gradients(self.attack_optimizer,
                               zip(grads, attack_vars))
    self.last_attack_loss.assign(attack_loss)


    def objective():
      logits = model(xb, training=True)
      ce = tf.reduce_mean(self.loss_fn(yb, logits))
      member_logit = tf.squeeze(self.attack(
          [tf.nn.softmax(logits), tf.one_hot(yb, self.num_classes)],
          training=False), -1)
      membership = tf.reduce_mean(tf.sigmoid(member_logit))
      return ce + self.weight * (membership - 0.5), ce

    return self.descend(model, objective, weight_decay)


class AdvRegRun(defense_lib.DefenseRun):
  """AdvReg on one model's records: its steps load the reference records."""

  def __init__(self, defense: "AdvReg", records, tuning):
    super().__init__(defense, records, tuning)
    self._steps: List[AdvRegStep] = []

  def train_step(self) -> loop_lib.TrainStep:
    d = self.defense
    step = AdvRegStep(d.weight, d.attack_steps, d.attack_hidden,
                      d.attack_learning_rate)
    step.load_reference(self.records.reference_x, self.records.reference_y)
    self._steps.append(step)
    return step

  def report(self) -> Dict[str, Any]:
    out = super().report()
    out["reference_records"] = int(len(self.records.reference_y))
    if self._steps and self._steps[-1].last_attack_loss is not None:
      out["final_attack_loss"] = float(
          self._steps[-1].last_attack_loss.numpy())
    return out


@dataclasses.dataclass(frozen=True)
class AdvReg(defense_lib.Defense):
  """Adversarial regularization (Nasr et al. 2018) against reference records.

  Attributes:
    weight: λ >= 0, weight of the inference network's mean membership
      probability in the classifier's loss (grid 1, 2, 4, 8; default 4).
    attack_steps: k >= 1 inference-network steps per classifier step (7).
    attack_hidden: widths of the posterior branch (default Nasr et al.'s
      1024, 512, 64); see the module docstring.
    attack_learning_rate: Adam learning rate of the inference network.
  """
  weight: float = settings_lib.setting(
      4.0, "advreg_weight", "AdvReg's adversarial weight λ.", low=0,
      tune=settings_lib.Tune("advreg_weight", 1.0, 8.0, "log"))
  attack_steps: int = settings_lib.setting(
      7, "advreg_attack_steps", "AdvReg inner attack steps per model step.",
      kind="int", low=1)
  attack_hidden: Tuple[int, ...] = settings_lib.setting(
      (1024, 512, 64), "advreg_attack_hidden",
      "Widths of AdvReg's inference network (posterior branch).",
      kind="ints")
  attack_learning_rate: float = settings_lib.setting(
      1e-3, "advreg_attack_learning_rate",
      "Adam learning rate of AdvReg's inference network.", low=0,
      low_open=True)

  name: ClassVar[str] = "advreg"
  display_name: ClassVar[str] = "AdvReg"
  RUN: ClassVar[type] = AdvRegRun
  EXPOSED: ClassVar = ("weight", "attack_steps")

  def check_records(self, records, train_config):
    rx, ry = records.reference_x, records.reference_y
    if rx is None or ry is None or len(ry) == 0:
      raise ValueError("AdvReg needs reference non-member records "
                       "(TrainingRecords.reference_x/reference_y; the pruner "
                       "passes the dev split, model.fit its validation_data):"
                       " none were given.")
    rx, ry = np.asarray(rx), np.asarray(ry)
    if len(rx) != len(ry):
      raise ValueError(f"AdvReg reference_x has {len(rx)} records but "
                       f"reference_y has {len(ry)}.")
    if rx.shape[1:] != np.asarray(records.x).shape[1:]:
      raise ValueError(f"AdvReg reference records have feature shape "
                       f"{rx.shape[1:]}, training records "
                       f"{np.asarray(records.x).shape[1:]}.")
    if ry.min() < 0 or ry.max() >= records.num_classes:
      raise ValueError(f"AdvReg reference labels must lie in [0, "
                       f"{records.num_classes}), got [{ry.min()}, "
                       f"{ry.max()}].")
