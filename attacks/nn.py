"""NN, NN-top3 and NN-cls: an MLP attack model trained on shadow outputs.

The attack model (docs/method.md §7) is Dense 512-256-128 (ReLU, dropout 0.2) →
Dense(2) logits, trained with cross-entropy by wemem_tf's compiled
`TrainingLoop` and `fit_with_early_stopping` (no training loop of its own).
Its inputs: the full posterior (nn), its three largest values sorted (nn_top3)
or the posterior and the one-hot label (nn_cls).

Training data: the pooled shadow records, balanced per shadow model (the
larger of its members / non-members is randomly subsampled to the size of the
other), then split into train and a stratified dev part. Early stopping uses
accuracy on the balanced dev part (= balanced accuracy) and the decision
threshold on the member-vs-non-member logit difference is chosen on it too.
The membership score is logit_member − logit_non_member.
"""

from typing import Callable, Optional, Tuple

import numpy as np

from attacks import base
from attacks import compiled
from attacks import inputs as inputs_lib
from wemem_tf._keras import keras
from wemem_tf.training import loop as loop_lib

Features = Callable[[inputs_lib.ModelOutputs], np.ndarray]
ModelBuilder = Callable[[Tuple[int, ...]], keras.Model]

MLP_WIDTHS = (512, 256, 128)
MLP_DROPOUT = 0.2


def posterior_features(outputs: inputs_lib.ModelOutputs) -> np.ndarray:
  """The posterior, float32 (n, c)."""
  return outputs.probs.astype(np.float32)


def top3_features(outputs: inputs_lib.ModelOutputs) -> np.ndarray:
  """The three largest probabilities, descending, float32 (n, 3) (zero
  padded when there are fewer than 3 classes)."""
  top = -np.sort(-outputs.probs, axis=1)[:, :3]
  if top.shape[1] < 3:
    top = np.pad(top, ((0, 0), (0, 3 - top.shape[1])))
  return top.astype(np.float32)


def posterior_label_features(outputs: inputs_lib.ModelOutputs) -> np.ndarray:
  """The posterior and the one-hot label, float32 (n, 2c)."""
  onehot = np.eye(outputs.num_classes, dtype=np.float32)[outputs.labels]
  return np.concatenate([outputs.probs.astype(np.float32), onehot], axis=1)


def attack_mlp(input_shape: Tuple[int, ...]) -> keras.Model:
  """Dense 512-256-128 (ReLU, dropout 0.2) → 2 logits."""
  inputs = keras.Input(input_shape)
  h = inputs
  for i, width in enumerate(MLP_WIDTHS):
    h = keras.layers.Dense(width, activation="relu", name=f"attack_fc{i + 1}")(h)
    h = compiled.GeneratorDropout(MLP_DROPOUT)(h)
  outputs = keras.layers.Dense(2, name="attack_logits")(h)
  return keras.Model(inputs, outputs, name="attack_mlp")


def balanced_indices(is_member: np.ndarray, group: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
  """Positions with as many members as non-members within every group.

  Args:
    is_member: bool (n,).
    group: int (n,), e.g. the shadow model of each record.
    rng: subsampling generator.

  Returns:
    Sorted int64 positions.
  """
  keep = []
  for g in np.unique(group):
    pos = np.flatnonzero((group == g) & is_member)
    neg = np.flatnonzero((group == g) & ~is_member)
    k = min(pos.size, neg.size)
    keep += [rng.choice(pos, k, replace=False), rng.choice(neg, k,
                                                           replace=False)]
  return np.sort(np.concatenate(keep)).astype(np.int64)


def stratified_split(is_member: np.ndarray, positions: np.ndarray,
                     dev_fraction: float, rng: np.random.Generator
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """(train, dev) positions, each with members and non-members."""
  train, dev = [], []
  for side in (True, False):
    cand = rng.permutation(positions[is_member[positions] == side])
    k = int(round(dev_fraction * cand.size))
    if cand.size < 2 or k < 1 or k >= cand.size:
      raise ValueError(
          f"too few shadow {'members' if side else 'non-members'} "
          f"({cand.size}) to train an attack model with a dev split; use "
          "more or larger shadow models.")
    dev.append(cand[:k])
    train.append(cand[k:])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(dev))


class TrainedAttackModel(base.Attack):
  """Base of attacks that train a binary classifier on shadow features.

  Subclasses give `features(outputs) -> float32 (n, ...)` and
  `build_model(input_shape) -> keras.Model` (2 logits; dropout as
  `compiled.GeneratorDropout`). The model and its compiled loop come from
  `compiled.TRAINERS`: built and traced once per process for each
  (attack, input shape, options), reset to their freshly built state for
  each fit.
  """
  trained = True

  def __init__(self, options: base.AttackOptions = base.AttackOptions()):
    super().__init__(options)
    self._lease = None
    self.fit_result = None

  @property
  def loop(self) -> Optional[loop_lib.TrainingLoop]:
    """The compiled loop holding this attack's fitted model (None before
    `fit`)."""
    return None if self._lease is None else self._lease.activate()

  def features(self, outputs: inputs_lib.ModelOutputs) -> np.ndarray:
    raise NotImplementedError

  def build_model(self, input_shape: Tuple[int, ...]) -> keras.Model:
    raise NotImplementedError

  def fit(self, data: base.AttackerData) -> base.Calibration:
    self.check(data)
    opts = self.options
    outputs, is_member, shadow = data.pooled_shadows()
    rng = np.random.default_rng(opts.seed)
    balanced = balanced_indices(is_member, shadow, rng)
    train, dev = stratified_split(is_member, balanced, opts.dev_fraction, rng)
    x = self.features(outputs)
    y = is_member.astype(np.int64)
    config = loop_lib.TrainConfig(
        learning_rate=opts.learning_rate, weight_decay=opts.weight_decay,
        batch_size=opts.batch_size, max_epochs=opts.max_epochs,
        patience=opts.patience)
    shape = tuple(x.shape[1:])
    self._lease = None
    lease = compiled.TRAINERS.lease(
        (type(self), self.name, shape, opts),
        lambda: self.build_model(shape), config, opts.seed)
    self.fit_result = loop_lib.fit_with_early_stopping(
        lease.loop, (x[train], y[train]), (x[dev], y[dev]), seed=opts.seed,
        progress_desc=f"{self.name} attack model")
    lease.keep()
    self._lease = lease
    dev_scores = self._scores(x[dev])
    return base.Calibration(dev_scores[is_member[dev]],
                            dev_scores[~is_member[dev]])

  def _scores(self, x: np.ndarray) -> np.ndarray:
    logits = self.loop.logits(x).astype(np.float64)
    return logits[:, 1] - logits[:, 0]

  def score(self, query: base.TargetQuery) -> np.ndarray:
    if self._lease is None:
      raise ValueError(f"attack {self.name!r} must be fitted before scoring.")
    return self._scores(self.features(query.records))


class NNAttack(TrainedAttackModel):
  """The MLP attack on `features`."""

  def __init__(self, name: str, features: Features,
               options: base.AttackOptions = base.AttackOptions()):
    super().__init__(options)
    self.name = name
    self._features = features

  def features(self, outputs: inputs_lib.ModelOutputs) -> np.ndarray:
    return self._features(outputs)

  def build_model(self, input_shape: Tuple[int, ...]) -> keras.Model:
    return attack_mlp(input_shape)


def nn(options: base.AttackOptions = base.AttackOptions()) -> NNAttack:
  return NNAttack("nn", posterior_features, options)


def nn_top3(options: base.AttackOptions = base.AttackOptions()) -> NNAttack:
  return NNAttack("nn_top3", top3_features, options)


def nn_cls(options: base.AttackOptions = base.AttackOptions()) -> NNAttack:
  return NNAttack("nn_cls", posterior_label_features, options)
