"""Clipped gradient sums: the Dense-layer path equals the Jacobian path and
tensorflow-privacy's own DP optimizer (no noise), per record and per
microbatch, on plain and pruned models."""

import wemem_tf  # noqa: F401  (sets up tf_keras before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune
from wemem_tf.training import clipping
from wemem_tf.training import loop as loop_lib


def _batch(n=24, features=10, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  x = tf.constant(rng.normal(size=(n, features)).astype(np.float32) * 3)
  y = tf.constant(rng.integers(0, classes, n), tf.int64)
  return x, y


def _model(features=10, classes=4, pruned=False):
  keras.utils.set_random_seed(1)
  model = zoo.column_fc((features,), classes, dropout=0.0)
  if not pruned:
    return model
  wrapped = prune.prune_low_memorization(model)
  iterative.PruningRounds(wrapped).start(2)  # half the hidden weights pruned
  return wrapped


def _tf_privacy_mean(model, x, y, clip, num_microbatches):
  """tensorflow-privacy's clipped, averaged gradient with zero noise."""
  import tensorflow_privacy  # pylint: disable=g-import-not-at-top
  opt = tensorflow_privacy.DPKerasSGDOptimizer(
      l2_norm_clip=clip, noise_multiplier=0.0,
      num_microbatches=num_microbatches, learning_rate=0.1)
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    loss = loop_lib.sparse_ce_from_logits(y, model(x, training=True))
  return [g.numpy() for g, _ in opt._compute_gradients(  # pylint: disable=protected-access
      loss, variables, tape=tape)]


@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("microbatch_size", [1, 4])
@pytest.mark.parametrize("clip", [0.05, 1e3])  # clipping bites / never does
def test_dense_path_equals_tensorflow_privacy(pruned, microbatch_size, clip):
  x, y = _batch()
  model = _model(pruned=pruned)
  assert clipping.fast_clipping_unsupported(model) is None
  expected = _tf_privacy_mean(model, x, y, clip, 24 // microbatch_size)
  for method in ("fast", "jacobian"):
    out = clipping.clipped_gradient_sum(
        model, x, y, loop_lib.sparse_ce_from_logits, clip, microbatch_size,
        method=method)
    assert int(out.num_microbatches) == 24 // microbatch_size
    for got, want in zip(out.grads, expected):
      np.testing.assert_allclose(got.numpy() / (24 // microbatch_size), want,
                                 rtol=2e-4, atol=1e-6, err_msg=method)


def test_clipping_bites_per_record():
  """With a small C every record's clipped gradient has norm C, so the sum's
  norm is at most b·C; without clipping the sum is the plain gradient."""
  x, y = _batch()
  model = _model()
  out = clipping.clipped_gradient_sum(model, x, y,
                                      loop_lib.sparse_ce_from_logits, 1e-3)
  norm = np.sqrt(sum(np.sum(g.numpy()**2) for g in out.grads))
  assert 0 < norm <= 24 * 1e-3 + 1e-7
  free = clipping.clipped_gradient_sum(model, x, y,
                                       loop_lib.sparse_ce_from_logits, 1e9)
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(loop_lib.sparse_ce_from_logits(y, model(x)))
  for got, want in zip(free.grads,
                       tape.gradient(total, model.trainable_variables)):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-6)


def test_last_microbatch_may_be_smaller():
  x, y = _batch(n=10)
  model = _model()
  fast = clipping.clipped_gradient_sum(model, x, y,
                                       loop_lib.sparse_ce_from_logits, 0.1, 4)
  jac = clipping.clipped_gradient_sum(model, x, y,
                                      loop_lib.sparse_ce_from_logits, 0.1, 4,
                                      method="jacobian")
  assert int(fast.num_microbatches) == 3
  for a, b in zip(fast.grads, jac.grads):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=1e-6)


def test_traced_with_dropout():
  """Inside tf.function, in training mode (dropout on), both paths run."""
  x, y = _batch()
  keras.utils.set_random_seed(3)
  model = zoo.column_fc((10,), 4, dropout=0.5)

  @tf.function
  def step(x, y):
    return clipping.clipped_gradient_sum(
        model, x, y, loop_lib.sparse_ce_from_logits, 1.0).grads

  a = step(x, y)
  b = step(x, y)
  # Dropout draws differ between calls: the model ran in training mode.
  assert any(not np.allclose(u.numpy(), v.numpy()) for u, v in zip(a, b))


def test_which_models_the_dense_path_takes():
  assert clipping.fast_clipping_unsupported(_model(pruned=True)) is None
  conv = zoo.small_cnn((8, 8, 1), 3)
  assert "Conv2D" in clipping.fast_clipping_unsupported(conv)

  class Sub(keras.Model):

    def call(self, x):
      return x

  assert "not a functional" in clipping.fast_clipping_unsupported(Sub())


def test_bad_arguments():
  x, y = _batch()
  model = _model()
  with pytest.raises(ValueError, match="microbatch_size"):
    clipping.clipped_gradient_sum(model, x, y,
                                  loop_lib.sparse_ce_from_logits, 1.0, 0)
  with pytest.raises(ValueError, match="l2_norm_clip"):
    clipping.clipped_gradient_sum(model, x, y,
                                  loop_lib.sparse_ce_from_logits, 0.0)
  with pytest.raises(ValueError, match="method"):
    clipping.clipped_gradient_sum(model, x, y,
                                  loop_lib.sparse_ce_from_logits, 1.0,
                                  method="ghost")
