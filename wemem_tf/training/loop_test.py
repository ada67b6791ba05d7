"""TrainingLoop: compiled epochs, and traced functions that do not outlive
their model."""

import gc
import weakref

import wemem_tf  # noqa: F401  (sets up tf_keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import ops  # the gradient registry

from wemem_tf._keras import keras
from wemem_tf.training import loop as loop_lib


def _data(n=96, features=12, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, features)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
  return tf.constant(x), tf.constant(y), classes


def _model(features, classes):
  return keras.Sequential([keras.layers.Input((features,)),
                           keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(classes)])


def test_compiled_epochs_learn():
  x, y, classes = _data()
  keras.utils.set_random_seed(0)
  loop = loop_lib.TrainingLoop(_model(x.shape[1], classes),
                               loop_lib.TrainConfig(learning_rate=1e-2))
  plan = loop_lib.batched_plan(np.arange(len(y)), 32, 0.0)
  losses = [loop.train_epoch(x, y, plan) for _ in range(30)]
  assert losses[-1] < 0.5 * losses[0]
  assert loop.trace_count == 1  # one trace serves every epoch


def test_apply_gradients_matches_keras_default_path():
  """Skipping the one-replica aggregation changes no number."""
  keras.utils.set_random_seed(1)
  variables = [tf.Variable(np.ones((3, 2), np.float32)),
               tf.Variable(np.zeros(2, np.float32))]
  twins = [tf.Variable(v) for v in variables]
  grads = [tf.constant(np.arange(6, dtype=np.float32).reshape(3, 2)),
           tf.constant([0.5, -1.0])]
  ours, default = keras.optimizers.Adam(0.1), keras.optimizers.Adam(0.1)

  @tf.function
  def step():
    loop_lib.apply_gradients(ours, zip(grads, variables))
    default.apply_gradients(zip(grads, twins))

  for _ in range(3):
    step()
  for a, b in zip(variables, twins):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_legacy_and_dp_optimizers_skip_aggregation_too():
  import tensorflow_privacy  # pylint: disable=g-import-not-at-top
  dp = tensorflow_privacy.DPKerasAdamOptimizer(
      l2_norm_clip=1.0, noise_multiplier=0.5, num_microbatches=1)
  for optimizer in (dp, keras.optimizers.legacy.Adam()):
    assert loop_lib._no_aggregation_argument(optimizer) == {  # pylint: disable=protected-access
        "experimental_aggregate_gradients": False}
  assert loop_lib._no_aggregation_argument(keras.optimizers.Adam()) == {  # pylint: disable=protected-access
      "skip_gradients_aggregation": True}


def test_traced_training_functions_are_freed_with_their_model():
  """Keras' aggregation, traced, registers a custom gradient in TF's global
  registry that keeps the traced graph alive; a search that prunes
  thousands of models grew by ~10 MB per model until it was skipped."""
  x, y, classes = _data()
  plan = loop_lib.batched_plan(np.arange(len(y)), 32, 5e-4)
  registry = ops._gradient_registry._registry  # pylint: disable=protected-access
  before = len(registry)
  graphs = []
  for seed in range(3):
    keras.utils.set_random_seed(seed)
    loop = loop_lib.TrainingLoop(_model(x.shape[1], classes))
    loop.train_epoch(x, y, plan)
    graphs.append(weakref.ref(
        loop._train_epoch.get_concrete_function().graph))  # pylint: disable=protected-access
    del loop
  keras.backend.clear_session()
  gc.collect()
  assert len(registry) == before
  # Nothing accumulates: every trace but the latest (which TensorFlow's
  # tracing caches may still hold, a bounded amount) is gone.
  assert [g() is None for g in graphs[:-1]] == [True, True]


def test_batch_kinds_reach_the_train_step():
  """Each batch's `BatchKind` travels with the plan into the compiled step."""
  kind = loop_lib.BatchKind
  assert [int(k) for k in kind] == [0, 1, 2, 3, 4]
  assert (kind.ORDINARY, kind.RISKY, kind.EVEN_EPOCH, kind.ODD_EPOCH,
          kind.PADDING) == (0, 1, 2, 3, 4)
  plain = loop_lib.batched_plan(np.arange(10), 4, 5e-4)
  np.testing.assert_array_equal(plain.batch_kind, [kind.ORDINARY] * 3)
  assert plain.batch_kind.dtype == np.int32
  risky = loop_lib.batched_plan(np.arange(10, 15), 4, 0.1, kind.RISKY)
  plan = loop_lib.concat_plans(risky, plain)
  np.testing.assert_array_equal(plan.batch_kind, [1, 1, 0, 0, 0])
  np.testing.assert_allclose(plan.batch_weight_decay,
                             [0.1, 0.1, 5e-4, 5e-4, 5e-4])
  np.testing.assert_array_equal(plan.batch_bounds, [0, 4, 5, 9, 13, 15])
  with pytest.raises(ValueError, match="3 kinds"):
    loop_lib.EpochPlan(plain.order, plain.batch_bounds,
                       plain.batch_weight_decay, np.zeros(2, np.int32))

  class Recording(loop_lib.TrainStep):
    """The default step, also summing kind · 10^batch (the order seen)."""

    def build(self, model, config, optimizer=None):
      super().build(model, config, optimizer)
      self.seen = tf.Variable(0, dtype=tf.int64)
      self.calls = tf.Variable(0, dtype=tf.int64)

    def __call__(self, model, xb, yb, weight_decay, kind):
      self.seen.assign_add(tf.cast(kind, tf.int64) * 10 ** self.calls)
      self.calls.assign_add(1)
      return super().__call__(model, xb, yb, weight_decay, kind)

  x, y, classes = _data(n=15)
  step = Recording()
  loop = loop_lib.TrainingLoop(_model(x.shape[1], classes), train_step=step)
  loop.train_epoch(x, y, plan)
  assert int(step.seen.numpy()) == 11  # kinds 1, 1, 0, 0, 0
  odd = loop_lib.batched_plan(np.arange(15), 8, 5e-4, kind.ODD_EPOCH)
  loop.train_epoch(x, y, odd)
  assert int(step.seen.numpy()) == 11 + 3 * 10 ** 5 + 3 * 10 ** 6
  assert loop.trace_count == 1
