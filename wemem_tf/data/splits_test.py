"""Tests of the split protocol (docs/method.md §2)."""

import numpy as np
import pytest

from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib


@pytest.fixture(scope="module")
def digits():
  return datasets.load_dataset("digits")


def _all_parts(s):
  return [s.victim] + list(s.shadows)


def test_protocol_sizes_and_disjointness(digits):
  s = splits_lib.splits_for(digits, seed=3, num_shadows=5)
  n = len(digits)
  assert len(s.pool) + len(s.heldout) == n
  assert abs(len(s.heldout) - 0.2 * n) <= 1
  assert not set(s.pool) & set(s.heldout)
  assert not set(s.victim_pool) & set(s.shadow_pool)
  assert set(s.victim_pool) | set(s.shadow_pool) == set(s.pool)
  assert abs(len(s.victim.train) - 0.9 * len(s.victim_pool)) <= 1
  for part in _all_parts(s):
    assert not set(part.train) & set(part.dev)
    assert not set(part.train) & set(part.test)
    assert not set(part.dev) & set(part.test)
  victim_records = set(s.victim.train) | set(s.victim.dev) | set(s.victim.test)
  for shadow in s.shadows:
    shadow_records = set(shadow.train) | set(shadow.dev) | set(shadow.test)
    assert not victim_records & shadow_records
    assert set(shadow.train) <= set(s.shadow_pool)
  # Shadows draw different training sets from the same pool.
  assert not np.array_equal(s.shadows[0].train, s.shadows[1].train)
  dev_share = len(s.victim.dev) / (len(s.victim.dev) + len(s.victim.test))
  assert abs(dev_share - 0.34) < 0.01


def test_same_seed_same_splits_other_seed_differs(digits):
  a = splits_lib.splits_for(digits, seed=1)
  b = splits_lib.splits_for(digits, seed=1)
  c = splits_lib.splits_for(digits, seed=2)
  for x, y in zip(_all_parts(a), _all_parts(b)):
    np.testing.assert_array_equal(x.train, y.train)
    np.testing.assert_array_equal(x.test, y.test)
  assert not np.array_equal(a.victim.train, c.victim.train)


def test_predefined_heldout_is_respected():
  mask = np.zeros(100, bool)
  mask[80:] = True
  s = splits_lib.make_splits(100, "ab" * 32, seed=0, heldout_mask=mask)
  np.testing.assert_array_equal(s.heldout, np.arange(80, 100))


def test_save_load_round_trip_and_fingerprint_check(digits, tmp_path):
  s = splits_lib.splits_for(digits, seed=4, num_shadows=2)
  path = str(tmp_path / "splits.npz")
  s.save(path)
  t = splits_lib.Splits.load(path, digits.fingerprint)
  np.testing.assert_array_equal(s.shadows[1].dev, t.shadows[1].dev)
  assert t.seed == 4 and len(t.shadows) == 2
  with pytest.raises(ValueError, match="fingerprint"):
    splits_lib.Splits.load(path, "0" * 64)


def test_bad_arguments():
  with pytest.raises(ValueError, match="at least 20"):
    splits_lib.make_splits(5, "ab" * 32, 0)
  with pytest.raises(ValueError, match="heldout_fraction"):
    splits_lib.SplitConfig(heldout_fraction=1.5)


def test_rehearsal_splits_never_touch_victim_records(digits):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=3)
  r = splits_lib.rehearsal_splits(s)
  victim = set(s.victim.train) | set(s.victim.dev) | set(s.victim.test)
  target = r.victim
  used = set(target.train) | set(target.dev) | set(target.test) | set(r.heldout)
  assert not used & victim
  assert r.shadows == s.shadows
  # The held-out shadow trains on as many records as the real victim.
  assert abs(len(target.train) - len(s.victim.train)) <= 1
  assert set(target.train) <= set(s.shadow_pool)
  for a, b in [(target.train, target.dev), (target.train, target.test),
               (target.dev, target.test)]:
    assert not set(a) & set(b)
  # Half of the shadows' held-out records stay outside the target: the
  # attacker's dev / population records.
  outside = set(splits_lib.shadow_heldout(r)) - set(target.test)
  assert len(outside) >= len(r.heldout) // 2 - 1
  assert splits_lib.rehearsal_splits(s).victim.train.tolist() == \
      target.train.tolist()


def test_rehearsal_needs_shadows(digits):
  with pytest.raises(ValueError, match="at least one shadow"):
    splits_lib.rehearsal_splits(splits_lib.splits_for(digits, 0, 0))


def test_rehearsal_streams_draw_other_targets(digits):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=2)
  a, b = splits_lib.rehearsal_splits(s), splits_lib.rehearsal_splits(
      s, stream=1)
  assert not np.array_equal(a.victim.train, b.victim.train)
  assert np.array_equal(a.heldout, b.heldout) and a.shadows == b.shadows
  with pytest.raises(ValueError, match="stream"):
    splits_lib.rehearsal_splits(s, stream=-1)


def test_scaled_rehearsal_is_the_protocol_at_half_scale(digits):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=3)
  r = splits_lib.scaled_rehearsal_splits(s)
  victim = np.concatenate([s.victim.train, s.victim.dev, s.victim.test])
  parts = [r.victim] + list(r.shadows)
  used = np.concatenate([np.concatenate([p.train, p.dev, p.test])
                         for p in parts])
  assert not np.intersect1d(used, victim).size
  # The shadows' side plays the whole dataset.
  np.testing.assert_array_equal(r.pool, s.shadow_pool)
  np.testing.assert_array_equal(r.heldout, splits_lib.shadow_heldout(s))
  assert len(r.shadows) == len(s.shadows)
  # Same protocol: victim and shadows disjoint, same fractions at half size.
  assert not np.intersect1d(r.victim.train, r.shadow_pool).size
  for p in parts:
    assert abs(len(p.train) - len(s.victim.train) / 2) <= 2
  # LiRA's pool over the target's training set: the real protocol's ratio.
  def ratio(splits):
    targets = np.union1d(splits.victim.train, splits.victim.test)
    return np.union1d(targets, splits.shadow_pool).size / len(
        splits.victim.train)
  assert abs(ratio(r) - ratio(s)) < 0.1
  again = splits_lib.scaled_rehearsal_splits(s)
  np.testing.assert_array_equal(again.victim.train, r.victim.train)
  other = splits_lib.scaled_rehearsal_splits(s, stream=1)
  assert not np.array_equal(other.victim.train, r.victim.train)
  with pytest.raises(ValueError, match="stream"):
    splits_lib.scaled_rehearsal_splits(s, stream=-1)
