"""Known-answer models and synthetic splits for testing attacks.

* `lookup_model`: memorizes its members: its logits are a shared random
  linear map plus a large boost of the stored label when the input is (near)
  one of its training records. Every attack should detect its members.
* `independent_model`: a random linear map that never sees data, so its
  outputs are independent of membership. Every attack should score AUC 0.5.
* `synthetic_setup`: a Gaussian dataset with hand-made balanced splits for a
  victim, shadows and the random-halves reference models, and the matching
  `AttackerData` / `TargetData` built through `attacks.querying`.
"""

import dataclasses
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from attacks import base
from attacks import inputs as inputs_lib
from attacks import querying
from attacks import reference_design
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib


class _LookupLogits(keras.layers.Layer):
  """logits = x W + b + boost · Σ_m exp(−|x − x_m|² / h) onehot(y_m)."""

  def __init__(self, weights, bias, member_x=None, member_y=None,
               num_classes=2, boost=12.0, bandwidth=1.0, **kwargs):
    super().__init__(**kwargs)
    self.w = tf.constant(weights, tf.float32)
    self.b = tf.constant(bias, tf.float32)
    self.has_members = member_x is not None and len(member_x) > 0
    if self.has_members:
      self.mx = tf.constant(member_x, tf.float32)
      self.my = tf.constant(np.eye(num_classes)[member_y], tf.float32)
    self.boost = boost
    self.bandwidth = bandwidth

  def call(self, x):
    logits = tf.matmul(x, self.w) + self.b
    if not self.has_members:
      return logits
    d2 = (tf.reduce_sum(x * x, 1, keepdims=True)
          - 2.0 * tf.matmul(x, self.mx, transpose_b=True)
          + tf.reduce_sum(self.mx * self.mx, 1)[tf.newaxis])
    kernel = tf.exp(-tf.nn.relu(d2) / self.bandwidth)
    return logits + self.boost * tf.matmul(kernel, self.my)


def _linear_weights(dim: int, num_classes: int, model_seed: int,
                    jitter: float) -> Tuple[np.ndarray, np.ndarray]:
  shared = np.random.default_rng(12345)
  w = shared.normal(0, 0.4, (dim, num_classes))
  b = shared.normal(0, 0.2, num_classes)
  own = np.random.default_rng(model_seed)
  return (w + jitter * own.normal(0, 0.4, (dim, num_classes)),
          b + jitter * own.normal(0, 0.2, num_classes))


def lookup_model(dataset: datasets.Dataset, member_ids: np.ndarray,
                 model_seed: int, boost: float = 12.0,
                 jitter: float = 0.3) -> keras.Model:
  """A model that memorizes `member_ids` (see module docstring)."""
  w, b = _linear_weights(dataset.input_shape[0], dataset.num_classes,
                         model_seed, jitter)
  inputs = keras.Input(dataset.input_shape)
  outputs = _LookupLogits(w, b, dataset.x[member_ids], dataset.y[member_ids],
                          dataset.num_classes, boost)(inputs)
  return keras.Model(inputs, outputs, name="lookup")


def independent_model(dataset: datasets.Dataset, member_ids: np.ndarray,
                      model_seed: int, jitter: float = 0.3) -> keras.Model:
  """A model whose outputs do not depend on `member_ids` at all."""
  del member_ids
  w, b = _linear_weights(dataset.input_shape[0], dataset.num_classes,
                         model_seed, jitter)
  inputs = keras.Input(dataset.input_shape)
  return keras.Model(inputs, _LookupLogits(w, b)(inputs), name="independent")


def gaussian_dataset(num_records: int, dim: int = 16, num_classes: int = 10,
                     seed: int = 0) -> datasets.Dataset:
  """Standard-normal features and uniformly random labels."""
  rng = np.random.default_rng(seed)
  return datasets.Dataset(
      "synthetic", rng.normal(size=(num_records, dim)).astype(np.float32),
      rng.integers(0, num_classes, num_records).astype(np.int64), num_classes)


def balanced_splits(dataset: datasets.Dataset, members: int, non_members: int,
                    shadow_pool: int, num_shadows: int, holdout: int,
                    seed: int = 0) -> splits_lib.Splits:
  """Hand-made `Splits`: victim `members` / `non_members`; each shadow
  trains on a random half of `shadow_pool` and tests on the other half;
  `holdout` attacker records outside every pool."""
  rng = np.random.default_rng(seed)
  ids = rng.permutation(len(dataset)).astype(np.int64)
  sizes = np.cumsum([members, non_members, 10, shadow_pool, holdout])
  if sizes[-1] > len(dataset):
    raise ValueError("dataset too small for these splits.")
  v_train, v_test, v_dev, s_pool, a_hold = np.split(ids[:sizes[-1]], sizes[:-1])
  shadows = []
  for _ in range(num_shadows):
    half = rng.permutation(s_pool)
    cut = len(half) // 2
    shadows.append(splits_lib.ModelSplit(np.sort(half[:cut]), np.sort(a_hold),
                                         np.sort(half[cut:])))
  sort = np.sort
  return splits_lib.Splits(
      dataset.fingerprint, seed, sort(np.concatenate([v_train, s_pool])),
      sort(np.concatenate([v_test, v_dev, a_hold])), sort(v_train),
      sort(s_pool), splits_lib.ModelSplit(sort(v_train), sort(v_dev),
                                          sort(v_test)), tuple(shadows))


ModelFactory = Callable[[datasets.Dataset, np.ndarray, int], keras.Model]


@dataclasses.dataclass
class SyntheticSetup:
  dataset: datasets.Dataset
  splits: splits_lib.Splits
  plan: reference_design.ReferencePlan
  attacker: base.AttackerData
  target: base.TargetData


@dataclasses.dataclass
class _SyntheticModel:
  """A `querying.QueriedModel`: a known-answer model and its records."""
  split: splits_lib.ModelSplit
  query: inputs_lib.ModelQuery


def _trained(dataset, split, model_factory, model_seed):
  model = model_factory(dataset, split.train, model_seed)
  return _SyntheticModel(split, inputs_lib.ModelQuery(model))


def synthetic_setup(model_factory: ModelFactory, num_records: int = 1600,
                    members: int = 300, non_members: int = 300,
                    shadow_pool: int = 600, num_shadows: int = 2,
                    holdout: int = 200, num_reference: int = 4,
                    seed: int = 0, with_sensitivity: bool = True,
                    dataset: Optional[datasets.Dataset] = None
                    ) -> SyntheticSetup:
  """Victim, shadows and reference models from `model_factory`, queried
  through `attacks.querying` exactly as real trained models are."""
  dataset = dataset or gaussian_dataset(num_records, seed=seed)
  splits = balanced_splits(dataset, members, non_members, shadow_pool,
                           num_shadows, holdout, seed)
  plan = reference_design.plan_for(splits, num_reference, seed)
  victim = _trained(dataset, splits.victim, model_factory, 1000)
  shadow_models = [_trained(dataset, s, model_factory, 2000 + i)
                   for i, s in enumerate(splits.shadows)]
  reference = [_trained(dataset, plan.split(r), model_factory, 3000 + r)
               for r in range(plan.num_models)]
  attacker = querying.attacker_data(dataset, shadow_models, (reference, plan),
                                    with_sensitivity, seed)
  target = querying.target_data(dataset, victim, plan.population,
                                with_sensitivity, seed)
  return SyntheticSetup(dataset, splits, plan, attacker, target)
