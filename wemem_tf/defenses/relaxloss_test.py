"""Tests of RelaxLoss's two official flattening losses and its variant setting.

The reference gradients are derived by hand, in float64 numpy, from the
math of the authors' trainers (DingfanChen/RelaxLoss,
`source/nonimage/defense/relaxloss.py` and
`source/cifar/defense/relaxloss.py`): soft labels built from the live
softmax (no detach), the true-class probability clamped at `upper`, and

  tabular: F = mean_i S_i
  image:   F = mean_i [(1 − c_i) S_i − CE_i],  c_i = [argmax z_i == y_i],

with S_i the cross-entropy to the soft label. They are checked against
finite differences first, so they do not lean on the module's code.
"""

import json

import numpy as np
import pytest

from wemem_tf._keras import keras  # first: Keras 2 behind tf.keras
import tensorflow as tf  # pylint: disable=g-bad-import-order

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import relaxloss

# 4 records, 4 classes: records 0 and 3 are classified correctly, 1 and 2
# are not; the true-class probabilities are about 0.69, 0.09, 0.22, 0.41.
LOGITS = np.array([[2.0, 0.5, -1.0, 0.3],
                   [1.5, -0.5, 0.2, -1.0],
                   [0.1, 1.2, -0.3, 0.4],
                   [0.3, -0.2, 0.0, 0.8]])
LABELS = np.array([0, 1, 3, 3])


def _reference_loss(z, y, upper, variant):
  """F from the official trainers' formulas (float64 numpy)."""
  b, c = z.shape
  rows = np.arange(b)
  log_q = z - z.max(1, keepdims=True)
  log_q -= np.log(np.exp(log_q).sum(1, keepdims=True))
  q = np.exp(log_q)
  t_true = np.clip(q[rows, y], 0.0, upper)
  t = np.repeat(((1.0 - t_true) / (c - 1))[:, None], c, axis=1)
  t[rows, y] = t_true
  soft_ce = -(t * log_q).sum(1)
  if variant == "tabular":
    return soft_ce.mean()
  ce = -log_q[rows, y]
  correct = (z.argmax(1) == y).astype(np.float64)
  return ((1.0 - correct) * soft_ce - ce).mean()


def _reference_grad(z, y, upper, variant):
  """∂F/∂z by hand. With p = q_y, t_y = min(p, upper), m the mean of
  log q over the other classes: S = −t_y log q_y − (1 − t_y) m, so
  ∂S/∂z = (q − t) + (m − log q_y) · ∂t_y/∂z, ∂t_y/∂z = [p ≤ upper] p (e_y − q),
  and ∂CE/∂z = q − e_y."""
  b, c = z.shape
  rows = np.arange(b)
  log_q = z - z.max(1, keepdims=True)
  log_q -= np.log(np.exp(log_q).sum(1, keepdims=True))
  q = np.exp(log_q)
  onehot = np.eye(c)[y]
  p = q[rows, y]
  t_true = np.minimum(p, upper)
  t = np.repeat(((1.0 - t_true) / (c - 1))[:, None], c, axis=1)
  t[rows, y] = t_true
  m = (log_q.sum(1) - log_q[rows, y]) / (c - 1)
  through_p = (m - log_q[rows, y]) * (p <= upper) * p
  d_soft = q - t + through_p[:, None] * (onehot - q)
  if variant == "tabular":
    return d_soft / b
  correct = (z.argmax(1) == y).astype(np.float64)
  return ((1.0 - correct)[:, None] * d_soft - (q - onehot)) / b


def _finite_difference(z, y, upper, variant, eps=1e-6):
  grad = np.zeros_like(z)
  for i in range(z.shape[0]):
    for k in range(z.shape[1]):
      up, down = z.copy(), z.copy()
      up[i, k] += eps
      down[i, k] -= eps
      grad[i, k] = (_reference_loss(up, y, upper, variant) -
                    _reference_loss(down, y, upper, variant)) / (2 * eps)
  return grad


def _module_grad(z, y, upper, variant):
  logits = tf.constant(z)
  with tf.GradientTape() as tape:
    tape.watch(logits)
    loss = relaxloss.flattening_loss(logits, tf.constant(y), upper, variant)
  return float(loss), tape.gradient(loss, logits).numpy()


# upper 1.0: no clip; 0.3: clips records 0 and 3 (p ≈ 0.69, 0.41), not 1, 2.
@pytest.mark.parametrize("variant", ["tabular", "image"])
@pytest.mark.parametrize("upper", [1.0, 0.3])
def test_flattening_gradient_matches_the_official_formula(variant, upper):
  expected = _reference_grad(LOGITS, LABELS, upper, variant)
  np.testing.assert_allclose(
      _finite_difference(LOGITS, LABELS, upper, variant), expected,
      atol=1e-8)  # the hand derivation holds
  loss, grad = _module_grad(LOGITS, LABELS, upper, variant)
  assert loss == pytest.approx(
      _reference_loss(LOGITS, LABELS, upper, variant), rel=1e-12)
  np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)
  # The true-class logits included, explicitly.
  rows = np.arange(len(LABELS))
  np.testing.assert_allclose(grad[rows, LABELS], expected[rows, LABELS],
                             rtol=1e-10, atol=1e-12)


def test_the_gradient_flows_through_the_true_class_probability():
  """A detached soft label would give (q − t)/B; the official one differs
  on the unclipped records and agrees on the clipped ones."""
  b, rows = len(LABELS), np.arange(len(LABELS))
  _, grad = _module_grad(LOGITS, LABELS, 0.3, "tabular")
  q = tf.nn.softmax(LOGITS).numpy()
  t = relaxloss.flattened_targets(tf.constant(LOGITS), tf.constant(LABELS),
                                  0.3).numpy()
  detached = (q - t) / b
  clipped = q[rows, LABELS] > 0.3
  assert clipped.tolist() == [True, False, False, True]
  np.testing.assert_allclose(grad[clipped], detached[clipped], rtol=1e-10)
  assert np.all(np.abs(grad[~clipped] - detached[~clipped]).max(1) > 1e-3)


def test_the_image_variant_ascends_on_correct_records():
  """Correctly classified records get −CE's gradient only: q_y rises."""
  _, grad = _module_grad(LOGITS, LABELS, 1.0, "image")
  q = tf.nn.softmax(LOGITS).numpy()
  for i in (0, 3):
    np.testing.assert_allclose(grad[i], -(q[i] - np.eye(4)[LABELS[i]]) / 4,
                               rtol=1e-10)


def test_the_step_descends_on_the_variants_flattening_loss_below_alpha():
  """A tiny Dense model: ∂/∂bias and ∂/∂kernel of the step's objective in
  an odd epoch with L ≤ α are the flattening gradient backpropagated."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 3)).astype(np.float32)
  y = LABELS
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
  model.set_weights([rng.normal(size=(3, 4)).astype(np.float32),
                     rng.normal(size=4).astype(np.float32)])
  z = model(x).numpy().astype(np.float64)
  for variant in ("tabular", "image"):
    step = relaxloss.RelaxLossStep(alpha=100.0, upper=1.0, variant=variant)
    _, (d_kernel, d_bias) = step.objective_gradients(
        model, lambda s=step: s.batch_objective(
            model(x), tf.constant(y), tf.constant(int(relaxloss.FLATTEN))),
        tf.constant(0.0))
    g = _reference_grad(z, y, 1.0, variant)
    np.testing.assert_allclose(d_bias.numpy(), g.sum(0), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(d_kernel.numpy(), x.T.astype(np.float64) @ g,
                               rtol=1e-4, atol=1e-6)
  # Above α (odd epoch): plain descent on L, whatever the variant.
  step = relaxloss.RelaxLossStep(alpha=1e-3, upper=1.0, variant="image")
  _, (_, d_bias) = step.objective_gradients(
      model, lambda: step.batch_objective(
          model(x), tf.constant(y), tf.constant(int(relaxloss.FLATTEN))),
      tf.constant(0.0))
  q = np.exp(z) / np.exp(z).sum(1, keepdims=True)
  np.testing.assert_allclose(d_bias.numpy(), (q - np.eye(4)[y]).mean(0),
                             rtol=1e-4, atol=1e-6)


def test_a_step_needs_a_resolved_variant():
  with pytest.raises(ValueError, match="resolved variant"):
    relaxloss.RelaxLossStep(1.0, 1.0, "auto")
  with pytest.raises(ValueError, match="resolved variant"):
    relaxloss.flattening_loss(tf.constant(LOGITS), tf.constant(LABELS), 1.0,
                              "auto")


# ------------------------------------------------------------- the variant


def _records(shape, n=12, num_classes=3):
  rng = np.random.default_rng(0)
  return defense_lib.TrainingRecords(
      rng.random((n,) + shape).astype(np.float32),
      np.arange(n, dtype=np.int64) % num_classes, np.arange(n, dtype=np.int64),
      num_classes)


@pytest.mark.parametrize("shape,variant,used", [
    ((4, 4, 3), "auto", "image"),   # x 4-D: (n, H, W, C)
    ((28, 28), "auto", "image"),    # x 3-D: (n, H, W)
    ((10,), "auto", "tabular"),     # x 2-D: feature vectors
    ((4, 4, 3), "tabular", "tabular"),
    ((10,), "image", "image"),
])
def test_auto_resolves_by_the_records_rank(shape, variant, used):
  defense = relaxloss.RelaxLoss(variant=variant)
  run = defense.bind(_records(shape))
  assert run.variant == used
  assert run.train_step().variant == used
  report = run.report()
  assert report["variant_used"] == used and report["variant"] == variant
  assert defense.variant == variant  # the frozen setting is untouched
  json.dumps(report)


def test_the_variant_setting_is_validated():
  with pytest.raises(ValueError, match=(
      r"^RelaxLoss variant \(--relaxloss_variant\) must be one of "
      r"\['auto', 'tabular', 'image'\], got 'cifar'\.$")):
    relaxloss.RelaxLoss(variant="cifar")
  with pytest.raises(ValueError, match="RelaxLoss variant must be one of"):
    relaxloss.RelaxLoss(variant=None)
  assert relaxloss.RelaxLoss().variant == "auto"


def test_config_round_trip_keeps_the_variant():
  defense = relaxloss.RelaxLoss(alpha=0.5, upper=0.9, variant="image")
  config = defense.get_config()
  assert config == {"alpha": 0.5, "upper": 0.9, "variant": "image"}
  rebuilt = relaxloss.RelaxLoss.from_config(json.loads(json.dumps(config)))
  assert rebuilt == defense and rebuilt.variant == "image"
  assert relaxloss.RelaxLoss().get_config()["variant"] == "auto"


def _objective_gradient(step, z, y):
  """(eager ∂objective/∂z as a function of the epoch kind, the same in a
  tf.function, the list that gets one entry per trace)."""
  traces = []

  def eager(kind):
    with tf.GradientTape() as tape:
      tape.watch(z)
      loss, _ = step.batch_objective(z, y, kind)
    return tape.gradient(loss, z)

  def traced(kind):
    traces.append(1)
    return eager(kind)

  return eager, tf.function(traced, input_signature=[
      tf.TensorSpec([], tf.int32)]), traces


def test_the_objective_traces_once_for_both_epoch_kinds():
  """In a tf.function (as in the compiled loop), one trace serves both epoch
  kinds and both sides of α, and matches the eager gradients."""
  z, y = tf.constant(LOGITS), tf.constant(LABELS)
  for variant in ("tabular", "image"):
    for alpha in (0.1, 5.0):
      step = relaxloss.RelaxLossStep(alpha, 0.3, variant)
      eager, graph, traces = _objective_gradient(step, z, y)
      for kind in (relaxloss.ASCENT, relaxloss.FLATTEN):
        np.testing.assert_allclose(graph(tf.constant(int(kind))).numpy(),
                                   eager(tf.constant(int(kind))).numpy(),
                                   rtol=1e-10, atol=1e-12)
      assert len(traces) == 1
  # Below α in an odd epoch it is the flattening gradient.
  step = relaxloss.RelaxLossStep(5.0, 0.3, "image")
  with tf.GradientTape() as tape:
    tape.watch(z)
    loss, ce = step.batch_objective(z, y, tf.constant(int(relaxloss.FLATTEN)))
  np.testing.assert_allclose(tape.gradient(loss, z).numpy(),
                             _reference_grad(LOGITS, LABELS, 0.3, "image"),
                             rtol=1e-10, atol=1e-12)
  assert float(ce) < 5.0
