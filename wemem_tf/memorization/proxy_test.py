"""Tests of the learning-speed proxy and rank correlations."""

import numpy as np
import pytest
from sklearn import metrics

from wemem_tf import data as data_lib
from wemem_tf import memorization
from wemem_tf.memorization import proxy
from wemem_tf.memorization import scores as scores_lib


def test_learning_speed_proxy_ranks_flipped_labels_high():
  ds = data_lib.load_dataset("digits")
  x, y = ds.x[:400], ds.y[:400].copy()
  rng = np.random.default_rng(0)
  flipped = rng.choice(400, 40, replace=False)
  y[flipped] = (y[flipped] + rng.integers(1, 10, 40)) % 10
  s = proxy.learning_speed_proxy("column_fc", x, y, num_models=2, epochs=10,
                                 batch_size=32, seed=0, num_classes=10,
                                 record_index=np.arange(400) + 7,
                                 fingerprint=ds.fingerprint)
  assert s.method == "proxy:learning_speed" and len(s) == 400
  assert s.score.min() >= 0 and s.score.max() <= 1
  np.testing.assert_array_equal(s.included, 2)
  np.testing.assert_array_equal(s.excluded, 0)
  np.testing.assert_array_equal(s.index, np.arange(400) + 7)
  label = np.zeros(400, bool)
  label[flipped] = True
  assert metrics.roc_auc_score(label, s.score) > 0.9


def test_proxy_rejects_bad_arguments():
  x = np.zeros((10, 3), np.float32)
  y = np.zeros(10, np.int64)
  with pytest.raises(ValueError, match="num_models"):
    proxy.learning_speed_proxy("column_fc", x, y, num_models=0)
  with pytest.raises(ValueError, match="same number of records"):
    proxy.learning_speed_proxy("column_fc", x, y[:5], num_models=1)


def _s(score, index, fingerprint="a" * 64):
  n = len(score)
  return scores_lib.MemScores(np.asarray(score, float), np.asarray(index),
                              fingerprint, np.ones(n, int), np.ones(n, int))


def test_spearman_aligns_by_record_and_ignores_nan():
  a = _s([0.1, 0.2, 0.3, 0.4, np.nan], [1, 2, 3, 4, 5])
  b = _s([0.9, 0.4, 0.3, 0.2, 0.1, 0.0], [6, 4, 3, 2, 1, 5])
  assert proxy.spearman(a, b) == pytest.approx(1.0)
  assert proxy.pearson(a, b) > 0.9
  with pytest.raises(ValueError, match="different datasets"):
    proxy.spearman(a, _s([0.1, 0.2, 0.3], [1, 2, 3], "b" * 64))
  with pytest.raises(ValueError, match="at least 3"):
    proxy.spearman(a, _s([0.1, 0.2], [1, 2]))


def test_package_exports():
  assert memorization.learning_speed_proxy is proxy.learning_speed_proxy
  assert memorization.MemScores is scores_lib.MemScores
