"""Tests of the vectorized MLP ensemble and its native kernels."""

import os
import io

import numpy as np
import pytest
import tensorflow as tf

import wemem_tf
from wemem_tf import keras
from wemem_tf import progress
from wemem_tf.memorization import ensemble
from wemem_tf.memorization import native
from wemem_tf.training import loop as loop_lib

NATIVE = native.load()
needs_native = pytest.mark.skipif(
    NATIVE is None, reason=f"native kernels unavailable: "
    f"{native.unavailable_reason()}")


def _binary_data(n=60, d=20, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  x = (rng.random((n, d)) < 0.2).astype(np.float32)
  y = rng.integers(0, classes, n).astype(np.int64)
  return x, y


def test_mlp_spec_of_column_fc_and_others():
  spec = ensemble.mlp_spec(wemem_tf.models.column_fc((446,), 30))
  assert spec == ensemble.MLPSpec(446, (256, 128), (0.1, 0.1), 30)
  seq = keras.Sequential([keras.Input((4, 4)), keras.layers.Flatten(),
                          keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3)])
  assert ensemble.mlp_spec(seq) == ensemble.MLPSpec(16, (8,), (0.0,), 3)
  assert ensemble.mlp_spec(wemem_tf.models.small_cnn((28, 28, 1), 10)) is None
  tanh = keras.Sequential([keras.Input((4,)),
                           keras.layers.Dense(8, activation="tanh"),
                           keras.layers.Dense(3)])
  assert ensemble.mlp_spec(tanh) is None
  softmax_out = keras.Sequential([keras.Input((4,)),
                                  keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
  assert ensemble.mlp_spec(softmax_out) is None


def test_binary_csr():
  x = np.array([[0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], np.float32)
  cols, splits = ensemble.binary_csr(x)
  np.testing.assert_array_equal(cols, [1, 3, 0])
  np.testing.assert_array_equal(splits, [0, 2, 2, 3])
  assert ensemble.binary_csr(x * 0.5) is None  # Not binary.
  assert ensemble.binary_csr(np.ones((3, 4), np.float32)) is None  # Dense.


def test_epoch_schedule_covers_each_subset_once():
  membership = np.zeros((3, 10), bool)
  membership[0, [0, 2, 4, 6]] = True
  membership[1, [1, 3, 5, 7]] = True
  membership[2, [0, 1, 8, 9]] = True
  order, weight = ensemble.epoch_schedule(membership, 3,
                                          np.random.default_rng(0))
  assert order.shape == weight.shape == (3, 6)
  for c in range(3):
    real = order[c][weight[c] == 1]
    assert sorted(real) == list(np.nonzero(membership[c])[0])
  np.testing.assert_array_equal(weight[:, 4:], 0)


def test_chunk_sizes():
  assert ensemble.chunk_sizes(256, 64) == [64] * 4
  assert ensemble.chunk_sizes(101, 64) == [51, 50]
  assert ensemble.chunk_sizes(5, 64) == [5]


@needs_native
def test_native_row_sum_and_gradient_match_dense():
  x, _ = _binary_data()
  cols, splits = ensemble.binary_csr(x)
  rng = np.random.default_rng(1)
  w = tf.constant(rng.normal(size=(3, 20, 70)).astype(np.float32))
  idx = tf.constant(rng.integers(0, 60, (3, 9)).astype(np.int32))
  xb = tf.gather(x, idx)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(w)
    out = native.row_sum(NATIVE, w, cols, splits, idx, tf.constant(0.25))
    ref = tf.matmul(xb, w)
    dy = tf.constant(rng.normal(size=(3, 9, 70)).astype(np.float32))
    loss, ref_loss = tf.reduce_sum(out * dy), tf.reduce_sum(ref * dy)
  np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(tape.gradient(loss, w).numpy(),
                             (tape.gradient(ref_loss, w) + 0.25 * w).numpy(),
                             rtol=1e-5, atol=1e-5)
  bad = tf.constant(np.full((3, 9), 60, np.int32))
  with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
    NATIVE.wemem_row_sum(w, cols, splits, bad)


@needs_native
def test_native_dropout_mask():
  like = tf.zeros([200_000])
  a = NATIVE.wemem_dropout_mask(like, tf.constant(5, tf.int64),
                                rate=0.1).numpy()
  b = NATIVE.wemem_dropout_mask(like, tf.constant(5, tf.int64),
                                rate=0.1).numpy()
  c = NATIVE.wemem_dropout_mask(like, tf.constant(6, tf.int64),
                                rate=0.1).numpy()
  np.testing.assert_array_equal(a, b)  # Deterministic in the seed.
  assert set(np.unique(a)) == {0.0, np.float32(1 / 0.9)}
  assert abs((a == 0).mean() - 0.1) < 0.005
  assert abs(np.corrcoef(a == 0, c == 0)[0, 1]) < 0.02
  assert abs(np.corrcoef(a[:-1] == 0, a[1:] == 0)[0, 1]) < 0.02


def _keras_mlp(spec):
  layers = [keras.Input((spec.input_dim,))]
  for units in spec.hidden_units:
    layers.append(keras.layers.Dense(units, activation="relu"))
  layers.append(keras.layers.Dense(spec.num_classes))
  return keras.Sequential(layers)


@pytest.mark.parametrize("first_layer,native_kernels", [
    ("native", True), ("dense", True), ("dense", False), ("sparse", False)])
def test_training_matches_keras_training_loop(first_layer, native_kernels):
  """Without dropout, member c follows exactly what TrainingLoop does."""
  if native_kernels and NATIVE is None:
    pytest.skip("native kernels unavailable")
  x, y = _binary_data()
  spec = ensemble.MLPSpec(20, (16, 8), (0.0, 0.0), 3)
  config = loop_lib.TrainConfig(batch_size=8, weight_decay=0.01)
  ens = ensemble.MLPEnsemble(spec, 2, config, seed=0, first_layer=first_layer,
                             native_kernels=native_kernels)
  ens.set_data(x, y)
  assert ens.mode == first_layer
  model = _keras_mlp(spec)
  member = 1
  model.set_weights([v.numpy()[member].reshape(model.weights[i].shape)
                     for i, v in enumerate(ens.variables)])
  loop = loop_lib.TrainingLoop(model, config)
  rng = np.random.default_rng(3)
  membership = np.zeros((2, 60), bool)
  membership[0, :45] = True
  membership[1, 10:55] = True
  for _ in range(3):
    order, weight = ensemble.epoch_schedule(membership, 8, rng)
    ens.train_epoch(order, weight)
    real = order[member][weight[member] == 1]
    loop.train_epoch(tf.constant(x), tf.constant(y),
                     loop_lib.batched_plan(real, 8, config.weight_decay))
  for var, ref in zip(ens.variables, model.get_weights()):
    np.testing.assert_allclose(var.numpy()[member].reshape(ref.shape), ref,
                               rtol=2e-4, atol=2e-5)
  np.testing.assert_allclose(ens.logits(x)[member], loop.logits(x),
                             rtol=1e-3, atol=1e-4)
  assert ens.trace_count == 1


def test_dropout_is_active_in_training_only():
  x, y = _binary_data()
  spec = ensemble.MLPSpec(20, (16,), (0.5,), 3)
  ens = ensemble.MLPEnsemble(spec, 2, loop_lib.TrainConfig(batch_size=8))
  ens.set_data(x, y)
  np.testing.assert_array_equal(ens.logits(x), ens.logits(x))
  pre = ens._rest_of_forward(tf.ones([2, 4, 16]), training=True).numpy()  # pylint: disable=protected-access
  pre2 = ens._rest_of_forward(tf.ones([2, 4, 16]), training=True).numpy()  # pylint: disable=protected-access
  assert not np.allclose(pre, pre2)


def test_train_vectorized_traces_once_across_chunks_and_epochs():
  x, y = _binary_data(n=80)
  spec = ensemble.MLPSpec(20, (16,), (0.1,), 3)
  membership = np.zeros((6, 80), bool)
  for c in range(6):
    membership[c, np.random.default_rng(c).permutation(80)[:50]] = True
  with progress.drawn_to(io.StringIO()) as stream:
    out = ensemble.train_vectorized(
        spec, x, y, membership, epochs=3,
        config=loop_lib.TrainConfig(batch_size=16), seed=0, chunk_size=2)
  assert out.correct.shape == (6, 80) and out.trace_count == 1
  # One bar over the chunks' epochs: 3 chunks x 3 epochs.
  assert "memorization (6 models)" in stream.getvalue()
  assert "9/9" in stream.getvalue()
  assert out.true_prob.min() >= 0 and out.true_prob.max() <= 1
  with pytest.raises(ValueError, match="same number"):
    bad = membership.copy()
    bad[0, np.nonzero(~bad[0])[0][0]] = True
    ensemble.train_vectorized(spec, x, y, bad, 1, loop_lib.TrainConfig(), 0)


@needs_native
def test_fused_native_layer_matches_dense_path_with_dropout():
  """The fused first layer (row sum + bias + relu + dropout, and its fused
  Adam step) draws the same masks and makes the same updates as the
  unfused dense path."""
  x, y = _binary_data(n=70)
  spec = ensemble.MLPSpec(20, (16, 8), (0.3, 0.2), 3)
  config = loop_lib.TrainConfig(batch_size=8, weight_decay=0.01)
  membership = np.zeros((3, 70), bool)
  for c in range(3):
    membership[c, np.random.default_rng(c).permutation(70)[:40]] = True
  weights = []
  for mode in ("native", "dense"):
    ens = ensemble.MLPEnsemble(spec, 3, config, seed=4, first_layer=mode)
    ens.set_data(x, y)
    rng = np.random.default_rng(9)
    for _ in range(2):
      ens.train_epoch(*ensemble.epoch_schedule(membership, 8, rng))
    weights.append([v.numpy() for v in ens.variables])
  for a, b in zip(*weights):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@needs_native
@pytest.mark.parametrize("spec,batch_size", [
    (ensemble.MLPSpec(20, (16, 8), (0.3, 0.2), 3), 8),
    (ensemble.MLPSpec(20, (16,), (0.0,), 3), 8),
    (ensemble.MLPSpec(20, (70, 33, 9), (0.1, 0.0, 0.5), 5), 16)])
def test_fused_epoch_matches_per_step_graph(spec, batch_size):
  """One native op per epoch makes the per-step graph's updates (same
  dropout masks, Adam step counts and L2 terms) and returns its losses."""
  x, y = _binary_data(n=90, d=20, classes=spec.num_classes)
  config = loop_lib.TrainConfig(batch_size=batch_size, weight_decay=0.01)
  membership = np.zeros((3, 90), bool)
  for c in range(3):
    membership[c, np.random.default_rng(c).permutation(90)[:50]] = True
  results = []
  for fused in (True, False):
    ens = ensemble.MLPEnsemble(spec, 3, config, seed=4, first_layer="native",
                               fused_epoch=fused)
    ens.set_data(x, y)
    rng = np.random.default_rng(9)
    losses = [ens.train_epoch(*ensemble.epoch_schedule(membership,
                                                       batch_size, rng))
              for _ in range(3)]
    state = [v.numpy() for v in ens.variables + ens._m + ens._v]  # pylint: disable=protected-access
    counters = [ens._step.numpy(), ens._dropout_seed.numpy()]  # pylint: disable=protected-access
    results.append((state, np.array(losses), counters))
    assert ens.trace_count == 1
  (state_a, loss_a, count_a), (state_b, loss_b, count_b) = results
  for a, b in zip(state_a, state_b):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
  np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
  assert count_a == count_b


@needs_native
def test_fused_epoch_rejects_bad_records_and_leaves_weights():
  x, y = _binary_data()
  spec = ensemble.MLPSpec(20, (16,), (0.1,), 3)
  ens = ensemble.MLPEnsemble(spec, 2, loop_lib.TrainConfig(batch_size=4))
  ens.set_data(x, y)
  before = [v.numpy() for v in ens.variables]
  order = np.zeros((2, 8), np.int32)
  order[1, 5] = 60  # The pool has 60 records.
  with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
    ens.train_epoch(order, np.ones((2, 8), np.float32))
  for a, b in zip(before, ens.variables):
    np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("first_layer", ["auto", "dense"])
def test_pool_logits_match_logits(first_layer):
  x, y = _binary_data(n=50)
  spec = ensemble.MLPSpec(20, (16, 8), (0.1, 0.1), 3)
  ens = ensemble.MLPEnsemble(spec, 3, loop_lib.TrainConfig(batch_size=8),
                             first_layer=first_layer)
  ens.set_data(x, y)
  membership = np.ones((3, 50), bool)
  ens.train_epoch(*ensemble.epoch_schedule(membership, 8,
                                           np.random.default_rng(0)))
  np.testing.assert_allclose(ens.pool_logits(batch_size=16), ens.logits(x),
                             rtol=1e-5, atol=1e-5)


@needs_native
@pytest.mark.parametrize("seed", [5, 2**40 + 17])
def test_fallback_dropout_mask_is_the_native_mask(seed):
  for rate, shape in ((0.1, [3, 7, 50]), (0.5, [1000])):
    native_mask = NATIVE.wemem_dropout_mask(
        tf.zeros(shape), tf.constant(seed, tf.int64), rate=rate).numpy()
    fallback = ensemble.hash_dropout_mask(
        tf.constant(shape), tf.constant(seed, tf.int64), rate).numpy()
    np.testing.assert_array_equal(fallback, native_mask)


@needs_native
@pytest.mark.parametrize("fused", [False, True])
def test_fallback_path_trains_the_native_members(fused):
  """With dropout, the plain-TensorFlow path (no native kernels, what runs
  where none can be built) trains the same members as the native one: the
  same masks, so weights and predictions agree up to float rounding."""
  x, y = _binary_data(n=120, d=30)
  spec = ensemble.MLPSpec(30, (32, 16), (0.2, 0.2), 3)
  membership = np.zeros((4, 120), bool)
  rng = np.random.default_rng(0)
  for row in membership:
    row[rng.permutation(120)[:84]] = True
  config = loop_lib.TrainConfig(batch_size=16)
  logits = {}
  for native_kernels in (True, False):
    ens = ensemble.MLPEnsemble(
        spec, 4, config, seed=3, first_layer="native" if native_kernels
        else "sparse", native_kernels=native_kernels, fused_epoch=fused)
    ens.set_data(x, y)
    rng = np.random.default_rng(7)
    for _ in range(4):
      ens.train_epoch(*ensemble.epoch_schedule(membership, 16, rng))
    logits[native_kernels] = ens.pool_logits()
  np.testing.assert_allclose(logits[False], logits[True], rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_array_equal(logits[False].argmax(-1),
                                logits[True].argmax(-1))
