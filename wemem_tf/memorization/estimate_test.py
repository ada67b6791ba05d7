"""Tests of memorization.estimate: inputs, NaN handling, known answers, and
the vectorized ensemble against separately trained Keras models."""

import importlib
import os
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

import wemem_tf
from wemem_tf import data as data_lib
from wemem_tf import keras
from wemem_tf import memorization

estimate_lib = importlib.import_module("wemem_tf.memorization.estimate")

DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                        "data")
if not os.path.isdir(DATA_DIR):
  DATA_DIR = "/work/shared/data"
HAS_LOCATION = os.path.isfile(os.path.join(DATA_DIR, "location.npz"))


def _toy(n=40, d=6, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n, d)).astype(np.float32),
          rng.integers(0, classes, n).astype(np.int64))


def _tiny_cnn(input_shape, num_classes):
  inputs = keras.Input(input_shape)
  h = keras.layers.Conv2D(4, 2, activation="relu")(inputs)
  h = keras.layers.Flatten()(h)
  return keras.Model(inputs, keras.layers.Dense(num_classes)(h))


@pytest.mark.parametrize("kwargs,message", [
    ({"num_models": 1}, "num_models must be an integer >= 2"),
    ({"num_models": 0}, "num_models must be an integer >= 2"),
    ({"subset_fraction": 0.0}, "strictly between 0 and 1"),
    ({"subset_fraction": 1.0}, "strictly between 0 and 1"),
    ({"subset_fraction": 1.2}, "strictly between 0 and 1"),
    ({"subset_fraction": 0.001}, "at least one record in and one out"),
    ({"epochs": 0}, "epochs must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"method": "magic"}, "method must be one of"),
    ({"num_classes": 2}, "labels must lie in \\[0, 2\\)"),
    ({"record_index": np.arange(5)}, "record_index has 5 entries for 40"),
    ({"record_index": np.zeros(40, np.int64)}, "duplicate"),
    ({"design": "latin"}, "design must be one of random, balanced"),
    ({"design": "balanced", "num_models": 3, "subset_fraction": 0.1},
     "it must be between 1 and 2: use more models"),
    ({"design": "balanced", "method": "vectorized"},
     "cannot train; use method='sequential'"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
  x, y = _toy()
  with pytest.raises(ValueError, match=message):
    memorization.estimate("column_fc", x, y, **{"num_models": 2, **kwargs})


def test_bad_data_raise_value_error():
  x, y = _toy()
  with pytest.raises(ValueError, match="same number of records"):
    memorization.estimate("column_fc", x, y[:-1], num_models=2)
  with pytest.raises(ValueError, match="labels must lie in"):
    memorization.estimate("column_fc", x, y - 1, num_models=2)
  with pytest.raises(ValueError, match="integers"):
    memorization.estimate("column_fc", x, y.astype(float), num_models=2)
  with pytest.raises(ValueError, match="unknown architecture"):
    memorization.estimate("no_such_net", x, y, num_models=2)
  with pytest.raises(ValueError, match="vectorized.*plain MLP"):
    memorization.estimate(_tiny_cnn, x.reshape(40, 2, 3, 1), y,
                          num_models=2, method="vectorized")


def test_sample_membership_has_fixed_size_rows():
  m = memorization.sample_membership(50, 7, 0.7, seed=3)
  assert m.shape == (7, 50) and m.dtype == bool
  np.testing.assert_array_equal(m.sum(1), 35)
  np.testing.assert_array_equal(m, memorization.sample_membership(50, 7, 0.7,
                                                                  seed=3))
  assert not np.array_equal(m, memorization.sample_membership(50, 7, 0.7, 4))


def test_balanced_membership_puts_every_record_in_and_out():
  """16 models on 70% subsets: the random design leaves ~0.7^16 of the
  records never out; the balanced one puts each in exactly 11 models."""
  n, k = 3000, 16
  random = memorization.sample_membership(n, k, 0.7, seed=0)
  assert (random.sum(0) == k).sum() > 0  # some records are never left out
  m = memorization.sample_membership(n, k, 0.7, seed=0, design="balanced")
  assert m.shape == (k, n) and m.dtype == bool
  np.testing.assert_array_equal(m.sum(0), 11)
  # Each model trains on about p n records (hypergeometric around 11/16 n).
  assert np.all(np.abs(m.sum(1) - n * 11 / k) < 5 * np.sqrt(n * 0.25))
  # Per record, every model is equally likely to include it.
  assert np.all(np.abs(m.mean(1) - 11 / k) < 0.05)
  np.testing.assert_array_equal(m, memorization.sample_membership(
      n, k, 0.7, seed=0, design="balanced"))
  assert not np.array_equal(m, memorization.sample_membership(
      n, k, 0.7, seed=1, design="balanced"))


def test_balanced_design_scores_every_record_with_few_models():
  x, y = _toy(n=30)
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)  # no "never left out"
    s = memorization.estimate("column_fc", x, y, num_models=4,
                              subset_fraction=0.5, epochs=1, seed=0,
                              design="balanced")
  assert np.all(np.isfinite(s.score))
  np.testing.assert_array_equal(s.included, 2)
  np.testing.assert_array_equal(s.excluded, 2)
  # Unequal training sets: the models train one at a time.
  assert s.method == "sequential" and s.details["design"] == "balanced"


def test_scores_from_predictions_known_answer():
  membership = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1],
                         [1, 0, 0, 1]], bool)
  correct = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [0, 1, 1, 1],
                      [0, 1, 1, 0]], bool)
  with pytest.warns(RuntimeWarning, match="1 records were never left out"):
    score, inc, exc = memorization.scores_from_predictions(correct,
                                                           membership)
  np.testing.assert_array_equal(inc, [3, 2, 2, 4])
  np.testing.assert_array_equal(exc, [1, 2, 2, 0])
  np.testing.assert_allclose(score[:3], [2 / 3 - 0, 1.0 - 0.5, 1.0 - 0.5])
  assert np.isnan(score[3])


def test_records_never_left_out_get_nan_and_a_warning():
  x, y = _toy(n=30)
  with pytest.warns(RuntimeWarning, match="never left out"):
    s = memorization.estimate("column_fc", x, y, num_models=2,
                              subset_fraction=0.5, epochs=1, seed=0)
  bad = (s.included == 0) | (s.excluded == 0)
  assert bad.any()
  np.testing.assert_array_equal(np.isnan(s.score), bad)
  np.testing.assert_array_equal(s.included + s.excluded, 2)


def test_estimate_result_carries_index_fingerprint_and_metadata(tmp_path):
  x, y = _toy(n=30)
  index = np.arange(100, 130, dtype=np.int64)
  s = memorization.estimate("column_fc", x, y, num_models=6, epochs=1,
                            seed=1, record_index=index, fingerprint="f" * 64)
  np.testing.assert_array_equal(s.index, index)
  assert s.fingerprint == "f" * 64 and s.num_models == 6 and s.epochs == 1
  assert s.method == "vectorized" and s.details["trace_count"] == 1
  assert s.details["path"] == "vectorized"
  assert s.details["seconds_per_model"] > 0
  np.testing.assert_array_equal(s.included, s.num_models - s.excluded)
  path = str(tmp_path / "s.npz")
  s.save(path)
  t = memorization.MemScores.load(path, fingerprint="f" * 64, index=index)
  np.testing.assert_array_equal(t.score, s.score)
  default_fp = memorization.estimate("column_fc", x, y, num_models=2,
                                     epochs=1).fingerprint
  assert default_fp == data_lib.fingerprint_arrays("memorization-arrays", x,
                                                   y)


def test_non_mlp_models_train_one_by_one_with_one_trace():
  x, y = _toy(n=24, d=16)
  s = memorization.estimate(_tiny_cnn, x.reshape(24, 4, 4, 1), y,
                            num_models=3, epochs=2, seed=0)
  assert s.method == "sequential" and s.details["trace_count"] == 1
  assert s.details["architecture"] == "_tiny_cnn"
  assert s.details["path"] == "per_model"
  assert s.details["seconds_per_model"] > 0


def test_a_users_mlp_takes_the_vectorized_path():
  def users_mlp(input_shape, num_classes):
    return keras.Sequential([keras.Input(input_shape),
                             keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(num_classes)])
  x, y = _toy(n=24)
  s = memorization.estimate(users_mlp, x, y, num_models=2, epochs=1)
  assert s.details["path"] == "vectorized"
  assert s.details["architecture"] == "users_mlp"
  with pytest.raises(ValueError, match="remove the final softmax"):
    memorization.estimate(
        lambda shape, k: keras.Sequential([
            keras.Input(shape), keras.layers.Dense(k, activation="softmax")]),
        x, y, num_models=2, epochs=1)


def _flip_labels(y, share, classes, seed):
  rng = np.random.default_rng(seed)
  flipped = rng.choice(len(y), int(round(share * len(y))), replace=False)
  y = y.copy()
  y[flipped] = (y[flipped] + rng.integers(1, classes, len(flipped))) % classes
  mask = np.zeros(len(y), bool)
  mask[flipped] = True
  return y, mask


@pytest.mark.skipif(not HAS_LOCATION, reason="location.npz not available")
def test_known_answer_flipped_labels_score_high_on_location():
  ds = data_lib.load_dataset("location", DATA_DIR)
  pool = data_lib.splits_for(ds, 0).pool
  x, y = ds.take(pool[:2000])  # Half the pool keeps the test ~15 s.
  y, flipped = _flip_labels(y, 0.05, ds.num_classes, seed=0)
  s = memorization.estimate("column_fc", x, y, num_models=48, epochs=30,
                            seed=1, num_classes=ds.num_classes,
                            record_index=pool[:2000],
                            fingerprint=ds.fingerprint)
  auc = metrics.roc_auc_score(flipped[s.valid], s.score[s.valid])
  assert auc >= 0.9, auc


def test_vectorized_matches_separately_trained_keras_models():
  """On the same subsets, the vectorized ensemble and K separately trained
  Keras models (one TrainingLoop) give the same score distribution, and
  agree per record as well as two vectorized runs with other seeds do."""
  ds = data_lib.load_dataset("digits")
  x, y = ds.x[:400], ds.y[:400]
  y, _ = _flip_labels(y, 0.1, 10, seed=0)  # Some records to memorize.
  membership = memorization.sample_membership(400, 16, 0.7, seed=0)
  config = wemem_tf.TrainConfig(batch_size=32)
  results = {}
  for name, method, seed in (("vec_a", "vectorized", 1),
                             ("vec_b", "vectorized", 2),
                             ("seq", "sequential", 1)):
    out = estimate_lib.train_members("column_fc", x, y, membership, 10, 15,
                                     config, seed, method=method)
    assert out.method == method
    with np.errstate(all="ignore"), warnings.catch_warnings():
      warnings.simplefilter("ignore")
      score = memorization.scores_from_predictions(out.correct,
                                                   membership)[0]
    results[name] = (score, out.correct[~membership].mean())
  known = np.isfinite(results["seq"][0])
  vec_a, vec_b, seq = (results[k][0][known] for k in ("vec_a", "vec_b",
                                                      "seq"))
  diff = vec_a - seq
  assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff)) + 0.01
  assert stats.ks_2samp(vec_a, seq).pvalue > 0.001
  r_seq, r_vec = np.corrcoef(vec_a, seq)[0, 1], np.corrcoef(vec_a, vec_b)[0, 1]
  assert r_seq > 0.3 and r_seq > r_vec - 0.1, (r_seq, r_vec)
  assert abs(results["vec_a"][1] - results["seq"][1]) < 0.03


def test_cached_estimate_scores_the_given_records_only(tmp_path):
  """`wemem run` scores the training pool: held-out records never enter the
  estimate, and the cache tells pools apart."""
  ds = wemem_tf.data.load_dataset("digits")
  pool = np.arange(0, len(ds), 3, dtype=np.int64)
  s = memorization.cached_estimate(ds, str(tmp_path), 0, "column_fc",
                                   num_models=4, epochs=1, indices=pool)
  np.testing.assert_array_equal(s.index, pool)
  again = memorization.cached_estimate(ds, str(tmp_path), 0, "column_fc",
                                       num_models=4, epochs=1, indices=pool)
  np.testing.assert_array_equal(again.score, s.score)  # from the cache
  assert len(list(tmp_path.iterdir())) == 1
  other = memorization.cached_estimate(ds, str(tmp_path), 0, "column_fc",
                                       num_models=4, epochs=1,
                                       indices=pool[:-1])
  assert len(other) == len(pool) - 1 and len(list(tmp_path.iterdir())) == 2
  balanced = memorization.cached_estimate(ds, str(tmp_path), 0, "column_fc",
                                          num_models=4, epochs=1, indices=pool,
                                          design="balanced")
  assert balanced.details["design"] == "balanced"
  assert len(list(tmp_path.iterdir())) == 3  # a design is its own entry
