"""Output modification: labels kept, confidences that say nothing about
the query (a known-answer case), and the random inputs' domain."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from wemem_tf._keras import keras  # first: Keras 2 behind tf.keras
import tensorflow as tf  # pylint: disable=g-bad-import-order

from wemem_tf.defenses import output_modification as om


def test_rearrange_keeps_ranking_and_template_values():
  rng = np.random.default_rng(2)
  scores = rng.normal(size=(6, 5)).astype(np.float32)
  template = rng.normal(size=(6, 5)).astype(np.float32)
  out = om.rearrange_like(tf.constant(scores), tf.constant(template)).numpy()
  np.testing.assert_array_equal(np.argsort(out, -1), np.argsort(scores, -1))
  np.testing.assert_allclose(np.sort(out, -1), np.sort(template, -1))


def test_domain_is_bits_for_binary_features_else_each_features_range():
  binary = np.array([[0, 1, 1], [1, 0, 1]], np.float32)
  domain = om.RandomInputDomain.of(binary)
  assert domain.bits
  np.testing.assert_array_equal(domain.high, np.ones(3))
  real = np.array([[0.5, -2.0], [1.5, 3.0], [1.0, 0.0]], np.float32)
  domain = om.RandomInputDomain.of(real)
  assert not domain.bits
  np.testing.assert_array_equal(domain.low, [0.5, -2.0])
  np.testing.assert_array_equal(domain.high, [1.5, 3.0])
  assert not om.RandomInputDomain.of(binary, "uniform").bits
  with pytest.raises(ValueError, match="random_inputs must be one of"):
    om.RandomInputDomain.of(binary, "gaussian")
  with pytest.raises(ValueError, match="needs training records"):
    om.RandomInputDomain.of(np.zeros((0, 3), np.float32))


def _confidence(logits: np.ndarray) -> np.ndarray:
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return (p / p.sum(-1, keepdims=True)).max(-1)


def test_a_perfect_confidence_signal_falls_to_chance_and_labels_stay():
  """Members get logit 5 on class 0, non-members logit 1: the plain
  confidence separates them perfectly (AUC 1). Served behind output
  modification, both groups get the confidence of a random input, so the
  AUC is 0.5 up to noise (its standard error here is about 0.018), while
  every predicted label stays class 0."""
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
  model.set_weights([np.array([[1, 0, 0], [0, 0, 0]], np.float32),
                     np.zeros(3, np.float32)])
  rng = np.random.default_rng(0)
  members = np.c_[np.full(500, 5.0), rng.uniform(size=500)].astype(np.float32)
  others = np.c_[np.full(500, 1.0), rng.uniform(size=500)].astype(np.float32)
  x = np.r_[members, others]
  is_member = np.r_[np.ones(500), np.zeros(500)]
  plain = model(x).numpy()
  assert roc_auc_score(is_member, _confidence(plain)) == 1.0
  served = om.serve(model, om.RandomInputDomain.of(x), seed=0, prefix="t")
  answers = served(x).numpy()
  np.testing.assert_array_equal(np.argmax(answers, -1), np.argmax(plain, -1))
  assert abs(roc_auc_score(is_member, _confidence(answers)) - 0.5) < 0.06
  assert served.name == f"{model.name}_t"
