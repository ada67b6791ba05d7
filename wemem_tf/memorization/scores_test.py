"""Tests of MemScores: files, alignment, CSV import and helpers."""

import os

import numpy as np
import pytest

import wemem_tf  # pylint: disable=unused-import
from wemem_tf.memorization import scores as scores_lib

MemScores = scores_lib.MemScores
FP = "ab" * 32
OTHER_FP = "cd" * 32


def _scores(n=10, fingerprint=FP, start=100):
  rng = np.random.default_rng(0)
  return MemScores(score=rng.uniform(-0.2, 1.0, n),
                   index=np.arange(start, start + n, dtype=np.int64),
                   fingerprint=fingerprint,
                   included=rng.integers(1, 20, n),
                   excluded=rng.integers(1, 20, n), num_models=20,
                   subset_fraction=0.7, epochs=5, seed=3, method="vectorized",
                   details={"architecture": "column_fc"})


def test_save_load_round_trip(tmp_path):
  s = _scores()
  path = str(tmp_path / "m.npz")
  s.save(path)
  with np.load(path, allow_pickle=False) as npz:
    assert {"index", "score", "included", "excluded", "fingerprint"} <= set(
        npz.files)
  t = MemScores.load(path, fingerprint=FP, index=s.index)
  np.testing.assert_array_equal(t.score, s.score)
  np.testing.assert_array_equal(t.index, s.index)
  np.testing.assert_array_equal(t.included, s.included)
  np.testing.assert_array_equal(t.excluded, s.excluded)
  assert (t.fingerprint, t.num_models, t.subset_fraction, t.epochs, t.seed,
          t.method) == (FP, 20, 0.7, 5, 3, "vectorized")
  assert t.details == {"architecture": "column_fc"}


def test_load_reorders_to_the_requested_index(tmp_path):
  s = _scores()
  path = str(tmp_path / "m.npz")
  s.save(path)
  order = s.index[::-1].copy()
  t = MemScores.load(path, index=order)
  np.testing.assert_array_equal(t.index, order)
  np.testing.assert_array_equal(t.score, s.score[::-1])


def test_load_against_another_dataset_fails(tmp_path):
  path = str(tmp_path / "m.npz")
  _scores().save(path)
  with pytest.raises(ValueError, match="fingerprint .*not to this dataset"):
    MemScores.load(path, fingerprint=OTHER_FP)


def test_load_against_another_record_set_fails(tmp_path):
  s = _scores()
  path = str(tmp_path / "m.npz")
  s.save(path)
  other = np.concatenate([s.index[1:], [5]])
  with pytest.raises(ValueError, match="another record set.*1 expected "
                     "records have no score \\(5\\)"):
    MemScores.load(path, index=other)
  with pytest.raises(ValueError, match="another record set"):
    MemScores.load(path, index=s.index[:5])  # A subset is not the same set.


def test_load_rejects_other_npz(tmp_path):
  path = str(tmp_path / "x.npz")
  np.savez(path, a=np.zeros(3))
  with pytest.raises(ValueError, match="not a memorization-score file"):
    MemScores.load(path)


def test_align_subset_and_missing():
  s = _scores()
  sub = s.align(np.array([105, 101]))
  np.testing.assert_array_equal(sub.score, s.score[[5, 1]])
  with pytest.raises(ValueError, match="no memorization score.*7"):
    s.align(np.array([101, 7]))


def test_constructor_validation():
  with pytest.raises(ValueError, match="\\[-1, 1\\]"):
    MemScores(np.array([0.5, 1.5]), np.array([0, 1]), FP, np.ones(2, int),
              np.ones(2, int))
  with pytest.raises(ValueError, match="duplicate"):
    MemScores(np.array([0.5, 0.5]), np.array([1, 1]), FP, np.ones(2, int),
              np.ones(2, int))
  with pytest.raises(ValueError, match="shape"):
    MemScores(np.array([0.5]), np.array([0, 1]), FP, np.ones(2, int),
              np.ones(2, int))


def test_quantile_share_and_risky_mask():
  s = MemScores(np.array([0.0, 0.1, 0.2, 0.9, np.nan]), np.arange(5), FP,
                np.ones(5, int), np.ones(5, int))
  np.testing.assert_array_equal(s.valid, [1, 1, 1, 1, 0])
  assert s.quantile(0.5) == pytest.approx(0.15)
  np.testing.assert_array_equal(s.risky_mask(tau=0.2), [0, 0, 1, 1, 0])
  np.testing.assert_array_equal(s.risky_mask(share=0.25), [0, 0, 0, 1, 0])
  with pytest.raises(ValueError, match="exactly one"):
    s.risky_mask()
  with pytest.raises(ValueError, match="share"):
    s.risky_mask(share=0.0)
  summary = s.summary()
  assert summary["nan"] == 1 and summary["share_ge_0.6"] == 0.25


def _write(tmp_path, text, name="s.csv"):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_csv_import_good(tmp_path):
  path = _write(tmp_path, "index,score\n12,0.5\n10,-0.25\n11,1\n")
  s = MemScores.from_csv(path, index=np.array([10, 11, 12]), fingerprint=FP)
  np.testing.assert_array_equal(s.index, [10, 11, 12])
  np.testing.assert_allclose(s.score, [-0.25, 1.0, 0.5])
  assert s.method == "csv" and np.all(s.included == -1)


@pytest.mark.parametrize("text,message", [
    ("10,0.5\n11,0.2\n", "2 score rows but 3 records"),
    ("10,0.5\n11,0.2\n11,0.3\n", "more than once: 11"),
    ("10,0.5\n11,nan\n12,0.3\n", "NaN"),
    ("10,0.5\n11,1.5\n12,0.3\n", "outside \\[-1, 1\\]"),
    ("10,0.5\n11,abc\n12,0.3\n", "cannot read"),
    ("10,0.5,1\n", "2 columns"),
    ("10,0.5\n11,0.2\n13,0.3\n", "another record set.*12"),
])
def test_csv_import_errors(tmp_path, text, message):
  path = _write(tmp_path, text)
  with pytest.raises(ValueError, match=message):
    MemScores.from_csv(path, index=np.array([10, 11, 12]), fingerprint=FP)


def test_save_is_atomic_and_overwrites(tmp_path):
  path = str(tmp_path / "m.npz")
  _scores(n=3).save(path)
  _scores(n=4).save(path)
  assert len(MemScores.load(path)) == 4
  assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []
