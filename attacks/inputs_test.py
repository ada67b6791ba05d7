"""Tests of attack inputs: validation, derived signals, model queries."""

import numpy as np
import pytest

from attacks import inputs
from wemem_tf._keras import keras


def _outputs(n=6, c=4, seed=0, **kwargs):
  rng = np.random.default_rng(seed)
  return inputs.ModelOutputs.from_logits(rng.normal(size=(n, c)),
                                         rng.integers(0, c, n), **kwargs)


class TestValidation:

  def test_mismatched_lengths(self):
    with pytest.raises(ValueError, match="labels must have shape"):
      inputs.ModelOutputs.from_probs(np.full((3, 2), 0.5), [0, 1])
    with pytest.raises(ValueError, match="sensitivity has 2 records"):
      inputs.ModelOutputs.from_probs(np.full((3, 2), 0.5), [0, 1, 0],
                                     sensitivity=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="record_ids must be integers of "
                       r"shape \(3,\)"):
      inputs.ModelOutputs.from_probs(np.full((3, 2), 0.5), [0, 1, 0],
                                     record_ids=[1, 2])

  def test_probabilities_must_sum_to_one(self):
    probs = np.full((3, 2), 0.5)
    probs[1] = [0.5, 0.3]
    with pytest.raises(ValueError, match="must sum to 1.*record 1 sums to 0.8"):
      inputs.ModelOutputs.from_probs(probs, [0, 1, 0])
    with pytest.raises(ValueError, match="lie in"):
      inputs.ModelOutputs.from_probs([[1.5, -0.5]], [0])

  def test_nan_rejected(self):
    probs = np.full((3, 2), 0.5)
    probs[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN.*record 2"):
      inputs.ModelOutputs.from_probs(probs, [0, 1, 0])
    with pytest.raises(ValueError, match="logits contains NaN"):
      inputs.ModelOutputs.from_logits([[0.0, np.nan]], [0])
    with pytest.raises(ValueError, match="sensitivity contains NaN"):
      inputs.ModelOutputs.from_logits([[0.0, 1.0]], [0],
                                      sensitivity=[[np.nan, 0.0]])

  def test_labels_checked(self):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
      inputs.ModelOutputs.from_probs(np.full((2, 2), 0.5), [0, 2])
    with pytest.raises(ValueError, match="integers"):
      inputs.ModelOutputs.from_probs(np.full((2, 2), 0.5), [0.0, 1.0])

  def test_logits_and_probs_must_agree(self):
    with pytest.raises(ValueError, match="not softmax"):
      inputs.ModelOutputs(np.full((1, 2), 0.5), np.array([0]),
                          logits=np.array([[0.0, 3.0]]))

  def test_empty_and_single_class(self):
    with pytest.raises(ValueError, match="at least one record"):
      inputs.ModelOutputs.from_probs(np.zeros((0, 2)), np.zeros(0, int))
    with pytest.raises(ValueError, match=">= 2 classes"):
      inputs.ModelOutputs.from_probs(np.ones((2, 1)), [0, 0])

  def test_membership_outputs_reject_overlap(self):
    a = _outputs(record_ids=np.arange(6))
    b = _outputs(record_ids=np.arange(5, 11))
    with pytest.raises(ValueError, match="both members and non-members"):
      inputs.MembershipOutputs(a, b)

  def test_reference_outputs_checked(self):
    out = _outputs(record_ids=np.arange(6))
    with pytest.raises(ValueError, match="in_mask has shape"):
      inputs.ReferenceOutputs(np.arange(6), np.zeros((3, 6), bool), (out, out))
    with pytest.raises(ValueError, match="not in record_ids order"):
      inputs.ReferenceOutputs(np.arange(1, 7), np.zeros((1, 6), bool), (out,))


class TestSignals:

  def test_against_hand_formulas(self):
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 1])
    out = inputs.ModelOutputs.from_probs(p, y)
    np.testing.assert_allclose(out.true_class_confidence(), [0.7, 0.1])
    np.testing.assert_allclose(out.loss(), -np.log([0.7, 0.1]))
    np.testing.assert_allclose(out.per_class_loss(), -np.log(p))
    np.testing.assert_allclose(out.entropy(), -np.sum(p * np.log(p), 1))
    mentr0 = -(0.3 * np.log(0.7) + 0.2 * np.log(0.8) + 0.1 * np.log(0.9))
    mentr1 = -(0.9 * np.log(0.1) + 0.1 * np.log(0.9) + 0.8 * np.log(0.2))
    np.testing.assert_allclose(out.modified_entropy(), [mentr0, mentr1])
    np.testing.assert_allclose(out.logit_scaled_confidence(),
                               np.log([0.7 / 0.3, 0.1 / 0.9]))
    np.testing.assert_array_equal(out.correct(), [True, False])

  def test_logit_scaling_is_stable_from_logits(self):
    out = inputs.ModelOutputs.from_logits([[60.0, 0.0, 0.0]], [0])
    # p_y rounds to 1 in float64; the logit form stays exact.
    np.testing.assert_allclose(out.logit_scaled_confidence(),
                               [60.0 - np.log(2.0)])
    probs_only = inputs.ModelOutputs.from_probs(out.probs, [0])
    assert np.isfinite(probs_only.logit_scaled_confidence()).all()

  def test_take_concatenate_positions(self):
    out = _outputs(record_ids=np.array([10, 11, 12, 13, 14, 15]))
    part = out.take([4, 1])
    np.testing.assert_array_equal(part.record_ids, [14, 11])
    both = inputs.ModelOutputs.concatenate([part, out.take([0])])
    np.testing.assert_array_equal(both.record_ids, [14, 11, 10])
    np.testing.assert_array_equal(out.positions_of([15, 10]), [5, 0])
    with pytest.raises(ValueError, match="not among"):
      out.positions_of([99])


def _linear_model(w, b):
  inputs_ = keras.Input((w.shape[0],))
  dense = keras.layers.Dense(w.shape[1])
  model = keras.Model(inputs_, dense(inputs_))
  dense.set_weights([w, b])
  return model


class TestModelQuery:

  def test_logits_match_model_and_no_retrace(self):
    rng = np.random.default_rng(0)
    model = _linear_model(rng.normal(size=(5, 3)).astype(np.float32),
                          np.zeros(3, np.float32))
    query = inputs.ModelQuery(model, batch_size=7)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    np.testing.assert_allclose(query.logits(x), model(x).numpy(), rtol=1e-5,
                               atol=1e-6)
    query.logits(x[:3])
    query.sensitivity(x)
    query.sensitivity(x[:5], seed=3)
    assert query.trace_count == 2  # one trace per query kind, any batch size
    out = query.outputs(x, rng.integers(0, 3, 20), np.arange(20),
                        with_sensitivity=True)
    assert out.sensitivity.shape == (20, 3)
    assert query.trace_count == 2

  def test_sensitivity_matches_analytic_value(self):
    # For softmax(x W), E|Δp_c| / ε -> sqrt(2/π) · ||∇_x p_c|| as ε -> 0.
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    model = _linear_model(w, np.zeros(3, np.float32))
    x = rng.normal(size=(6, 4)).astype(np.float32)
    query = inputs.ModelQuery(model, num_perturbations=4000, epsilon=1e-2)
    sens = query.sensitivity(x)
    p = np.exp(inputs.log_softmax(x @ w))
    for i in range(len(x)):
      jac = np.diag(p[i]) - np.outer(p[i], p[i])  # dp/dz
      grad = jac @ w.T  # (c, d): dp_c/dx
      expected = np.sqrt(2 / np.pi) * np.linalg.norm(grad, axis=1)
      np.testing.assert_allclose(sens[i], expected, rtol=0.06, atol=1e-4)

  def test_sensitivity_zero_for_constant_model_and_deterministic(self):
    model = _linear_model(np.zeros((3, 2), np.float32),
                          np.array([0.0, 1.0], np.float32))
    query = inputs.ModelQuery(model)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(query.sensitivity(x), 0.0)
    model2 = _linear_model(np.ones((3, 2), np.float32),
                           np.zeros(2, np.float32))
    q2 = inputs.ModelQuery(model2)
    np.testing.assert_array_equal(q2.sensitivity(x, seed=5),
                                  q2.sensitivity(x, seed=5))

  def test_bad_queries(self):
    model = _linear_model(np.zeros((3, 2), np.float32), np.zeros(2,
                                                                 np.float32))
    with pytest.raises(ValueError, match="x has 2 records but labels has 3"):
      inputs.query_model(model, np.zeros((2, 3)), [0, 1, 0])
    with pytest.raises(ValueError, match="NaN"):
      inputs.query_model(model, np.full((1, 3), np.nan), [0])
    with pytest.raises(ValueError, match="epsilon"):
      inputs.ModelQuery(model, epsilon=0.0)


def test_served_query_equals_model_query_with_the_same_noise():
  # A served model (here: the same Keras model through ServedModel, and its
  # probability-output twin) gets ModelQuery's outputs and SAMIA
  # sensitivities, perturbation for perturbation.
  from wemem_tf.models import served  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
  x = np.random.default_rng(1).normal(size=(11, 5)).astype(np.float32)
  y = np.arange(11) % 4
  want = inputs.ModelQuery(model, batch_size=4).outputs(
      x, y, with_sensitivity=True, seed=3)
  got = inputs.ServedQuery(served.from_keras(model), batch_size=4).outputs(
      x, y, with_sensitivity=True, seed=3)
  np.testing.assert_allclose(got.logits, want.logits, atol=1e-6)
  np.testing.assert_allclose(got.sensitivity, want.sensitivity, rtol=1e-3,
                             atol=1e-3)
  softmax = keras.Model(model.inputs,
                        keras.layers.Softmax()(model.outputs[0]))
  probs = inputs.ServedQuery(served.from_keras(softmax), batch_size=4)
  out = probs.outputs(x, y, with_sensitivity=True, seed=3)
  assert probs.output_kind is served.OutputKind.PROBABILITIES
  assert out.logits is None
  np.testing.assert_allclose(out.probs, want.probs, atol=1e-6)
  np.testing.assert_allclose(out.sensitivity, want.sensitivity, rtol=1e-3,
                             atol=1e-3)
