"""AdvReg: adversarial regularization (Nasr, Shokri & Houmansadr, CCS 2018).

"Machine Learning with Membership Privacy using Adversarial Regularization."
Training is a min-max game between the classifier f and an inference network
h(f(x), y) ∈ (0, 1) that tells members from the defender's reference
non-members. Inside each compiled fine-tuning step (batch B of members):

1. k = `attack_steps` (7) inner steps train h: each draws a fresh batch of
   `batch_size` members (from the model's training records) and a fresh batch
   of as many reference records (from `reference_x/y`, the defender's dev
   split), each without replacement, and takes one Adam step on h's binary
   cross-entropy (members labelled 1, reference records 0), with f fixed and
   evaluated in inference mode. Nasr et al.'s code walks through fresh
   member and reference batches for its inner steps the same way. The k
   batches' posteriors come from one forward pass of f.
2. One step trains f on B: mean CE + λ · gain, with the L2
   `weight_decay · w` added to the gradients, Adam. The gain is the
   inference network's mean membership probability on B minus 0.5
   (`gain="probability"`: Nasr et al.'s released code) or its mean log
   (`gain="log"`: Algorithm 1 of the paper, which the WeMem authors' scripts
   use). log h is unbounded below: with it the classifier can win the game
   by wrecking its own accuracy at large λ.

The inference network follows Nasr et al.: the posterior f(x) goes through
Dense layers `attack_hidden` (default 1024-512-64, ReLU), the one-hot label
through `attack_hidden[1:]` (512-64), their concatenation through
(4·last, last) = 256-64 and a final unit (a logit). It and its Adam
optimizer are built once with the step; they persist across the pruning
iterations, as the game continues through fine-tuning. Batches are drawn
from the step's own generator, seeded with the run's seed.

`classifier_steps_per_epoch` limits f's steps per epoch (None: every batch
of the epoch; the WeMem authors' scripts take one).

λ ∈ {1, 2, 4, 8} in WeMem (docs/method.md §6); default λ = 4 with the
probability gain (our setting); the authors' scripts: λ = 2, log gain
(`--baseline_settings=paper`, docs/fidelity.md).
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


GAINS = ("probability", "log")


class _Records:
  """Records held in variables, filled before or after `build`."""

  def __init__(self, name: str):
    self.name = name
    self.x = self.y = self.n = None
    self._pending: Optional[Tuple[np.ndarray, np.ndarray]] = None

  def build(self, feature_shape) -> None:
    self.x = tf.Variable(np.zeros([1] + feature_shape, np.float32),
                         shape=tf.TensorShape([None] + feature_shape),
                         trainable=False, name=f"advreg_{self.name}_x")
    self.y = tf.Variable(np.zeros([1], np.int64),
                         shape=tf.TensorShape([None]), trainable=False,
                         name=f"advreg_{self.name}_y")
    self.n = tf.Variable(0, dtype=tf.int32, trainable=False,
                         name=f"advreg_{self.name}_count")
    if self._pending is not None:
      self.load(*self._pending)

  def load(self, x: np.ndarray, y: np.ndarray) -> None:
    if self.x is None:
      self._pending = (x, y)
      return
    self.x.assign(np.asarray(x, np.float32))
    self.y.assign(np.asarray(y, np.int64))
    self.n.assign(len(y))
    self._pending = None

  def draw(self, generator: tf.random.Generator, batches: int, size: int):
    """Indices (batches, size): each row without replacement (with
    replacement when there are fewer than `size` records)."""
    keys = generator.uniform([batches, self.n])
    without = tf.argsort(keys, axis=1)[:, :size]
    with_ = generator.uniform([batches, size], 0, self.n, dtype=tf.int32)
    return tf.cond(self.n >= size, lambda: without, lambda: with_)


class AdvRegStep(loop_lib.TrainStep):
  """k inference-network steps, then one classifier step (see module doc).

  Member and reference records are held in variables: `load_members` and
  `load_reference` fill them (before or after `build`). Returns the batch's
  mean cross-entropy.
  """

  def __init__(self, weight: float, attack_steps: int,
               attack_hidden: Tuple[int, ...], attack_learning_rate: float,
               gain: str = "probability", seed: int = 0):
    super().__init__()
    self.weight = float(weight)
    self.attack_steps = int(attack_steps)
    self.attack_hidden = tuple(attack_hidden)
    self.attack_learning_rate = float(attack_learning_rate)
    self.gain = gain
    self.seed = int(seed)
    self.attack = None
    self.attack_optimizer = None
    self.num_classes = None
    self.batch_size = None
    self.members = _Records("member")
    self.reference = _Records("reference")
    self.generator: Optional[tf.random.Generator] = None
    self.last_attack_loss: Optional[tf.Variable] = None
    # The member rows each inner step drew (k, batch), for inspection.
    self.last_member_draws: Optional[tf.Variable] = None

  def build(self, model, config, optimizer=None):
    super().build(model, config, optimizer)
    self.num_classes = int(model.output_shape[-1])
    self.batch_size = int(config.batch_size)
    self.attack = inference_network(self.num_classes, self.attack_hidden)
    self.attack_optimizer = keras.optimizers.Adam(self.attack_learning_rate)
    self.attack_optimizer.build(self.attack.trainable_variables)
    feature_shape = list(model.input_shape[1:])
    self.members.build(feature_shape)
    self.reference.build(feature_shape)
    self.generator = tf.random.Generator.from_seed(self.seed)
    self.last_attack_loss = tf.Variable(float("nan"), trainable=False,
                                        name="advreg_attack_loss")
    self.last_member_draws = tf.Variable(
        np.zeros([1, 1], np.int32), shape=tf.TensorShape([None, None]),
        trainable=False, name="advreg_member_draws")

  def load_members(self, x: np.ndarray, y: np.ndarray) -> None:
    """Sets the members the inner steps draw from (the training records)."""
    self.members.load(x, y)

  def load_reference(self, x: np.ndarray, y: np.ndarray) -> None:
    """Sets the reference non-members the inference network trains on."""
    self.reference.load(x, y)

  def _posteriors(self, model, records: _Records, idx):
    """Softmax of f in inference mode, (k, batch, classes), and labels."""
    flat = tf.reshape(idx, [-1])
    probs = tf.nn.softmax(model(tf.gather(records.x, flat), training=False))
    shape = tf.shape(idx)
    return (tf.stop_gradient(tf.reshape(probs, [shape[0], shape[1], -1])),
            tf.reshape(tf.gather(records.y, flat), shape))

  def _train_inference_network(self, model):
    k = self.attack_steps
    size = tf.minimum(self.batch_size, self.members.n)
    member_idx = self.members.draw(self.generator, k, size)
    ref_idx = self.reference.draw(self.generator, k, size)
    self.last_member_draws.assign(member_idx)
    member_probs, member_y = self._posteriors(model, self.members, member_idx)
    ref_probs, ref_y = self._posteriors(model, self.reference, ref_idx)
    is_member = tf.concat([tf.ones([size]), tf.zeros([size])], 0)
    attack_vars = self.attack.trainable_variables
    attack_loss = tf.constant(0.0)
    for i in tf.range(k):  # a graph loop: traced once
      probs = tf.concat([member_probs[i], ref_probs[i]], 0)
      labels = tf.concat([member_y[i], ref_y[i]], 0)
      with tf.GradientTape() as tape:
        logits = tf.squeeze(self.attack(
            [probs, tf.one_hot(labels, self.num_classes)], training=True), -1)
        # BCE: members labelled 1, reference records labelled 0.
        attack_loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(is_member, logits))
      grads = tape.gradient(attack_loss, attack_vars)
      loop_lib.apply_gradients(self.attack_optimizer,
                               zip(grads, attack_vars))
    self.last_attack_loss.assign(attack_loss)

  def _gain(self, member_logit):
    if self.gain == "log":
      return -tf.reduce_mean(tf.nn.softplus(-member_logit))  # mean log h
    return tf.reduce_mean(tf.sigmoid(member_logit)) - 0.5

  def __call__(self, model, xb, yb, weight_decay, kind):
    del kind
    tf.debugging.assert_positive(
        self.reference.n, message="AdvReg has no reference records: bind "
        "the defense (the pruner does) before training.")
    tf.debugging.assert_positive(
        self.members.n, message="AdvReg has no member records: bind the "
        "defense (the pruner does) before training.")
    self._train_inference_network(model)

    def objective():
      logits = model(xb, training=True)
      ce = tf.reduce_mean(self.loss_fn(yb, logits))
      member_logit = tf.squeeze(self.attack(
          [tf.nn.softmax(logits), tf.one_hot(yb, self.num_classes)],
          training=False), -1)
      return ce + self.weight * self._gain(member_logit), ce

    return self.descend(model, objective, weight_decay)


class AdvRegRun(defense_lib.DefenseRun):
  """AdvReg on one model's records: its steps load the member and reference
  records; `classifier_steps_per_epoch` trims each epoch's plan."""

  def __init__(self, defense: "AdvReg", records, tuning):
    super().__init__(defense, records, tuning)
    self._steps: List[AdvRegStep] = []

  def epoch_plan(self, iteration: int, epoch: int,
                 rng: np.random.Generator) -> loop_lib.EpochPlan:
    plan = super().epoch_plan(iteration, epoch, rng)
    keep = self.defense.classifier_steps_per_epoch
    if keep is None or keep >= plan.num_batches:
      return plan
    end = plan.batch_bounds[keep]
    return loop_lib.EpochPlan(plan.order[:end], plan.batch_bounds[:keep + 1],
                              plan.batch_weight_decay[:keep],
                              plan.batch_kind[:keep])

  def train_step(self) -> loop_lib.TrainStep:
    d = self.defense
    step = AdvRegStep(d.weight, d.attack_steps, d.attack_hidden,
                      d.attack_learning_rate, d.gain, seed=self.seed)
    step.load_members(self.records.x, self.records.y)
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
    gain: "probability" (mean h − 0.5, default) or "log" (mean log h).
    classifier_steps_per_epoch: classifier steps per epoch at most (None:
      every batch).
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
  gain: str = settings_lib.setting(
      "probability", "advreg_gain", "AdvReg's classifier gain: mean "
      "membership probability - 0.5, or its mean log.", kind="choice",
      choices=GAINS)
  classifier_steps_per_epoch: Optional[int] = settings_lib.setting(
      None, "advreg_classifier_steps_per_epoch", "AdvReg classifier steps "
      "per epoch (default: every batch).", kind="int", low=1, optional=True)

  name: ClassVar[str] = "advreg"
  display_name: ClassVar[str] = "AdvReg"
  RUN: ClassVar[type] = AdvRegRun
  PAPER_SETTINGS: ClassVar[Dict[str, Any]] = dict(
      weight=2.0, gain="log", classifier_steps_per_epoch=1)
  EXPOSED: ClassVar = ("weight", "attack_steps", "gain",
                       "classifier_steps_per_epoch")

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
