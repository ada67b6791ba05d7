"""Tests of the split protocol (docs/method.md §2)."""

import hashlib

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
  s = splits_lib.make_splits(100, "ab" * 32, seed=0, heldout_mask=mask,
                             labels=np.arange(100) % 4)
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
  r = splits_lib.rehearsal_splits(s, labels=digits.y)
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
  again = splits_lib.rehearsal_splits(s, labels=digits.y)
  assert again.victim.train.tolist() == \
      target.train.tolist()


def test_rehearsal_needs_shadows(digits):
  with pytest.raises(ValueError, match="at least one shadow"):
    splits_lib.rehearsal_splits(splits_lib.splits_for(digits, 0, 0),
                                labels=digits.y)


def test_rehearsal_streams_draw_other_targets(digits):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=2)
  a = splits_lib.rehearsal_splits(s, labels=digits.y)
  b = splits_lib.rehearsal_splits(s, labels=digits.y, stream=1)
  assert not np.array_equal(a.victim.train, b.victim.train)
  assert np.array_equal(a.heldout, b.heldout) and a.shadows == b.shadows
  with pytest.raises(ValueError, match="stream"):
    splits_lib.rehearsal_splits(s, labels=digits.y, stream=-1)


def test_scaled_rehearsal_is_the_protocol_at_half_scale(digits):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=3)
  r = splits_lib.scaled_rehearsal_splits(s, labels=digits.y)
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
  again = splits_lib.scaled_rehearsal_splits(s, labels=digits.y)
  np.testing.assert_array_equal(again.victim.train, r.victim.train)
  other = splits_lib.scaled_rehearsal_splits(s, labels=digits.y, stream=1)
  assert not np.array_equal(other.victim.train, r.victim.train)
  with pytest.raises(ValueError, match="stream"):
    splits_lib.scaled_rehearsal_splits(s, labels=digits.y, stream=-1)


def _digest(*parts) -> str:
  h = hashlib.sha256()
  for part in parts:
    for name in ("train", "dev", "test"):
      h.update(np.asarray(getattr(part, name), np.int64).tobytes())
  return h.hexdigest()[:16]


@pytest.mark.parametrize("seed,want", [(0, "50fc42c87ed7dc7f"),
                                       (3, "cef4b453318c23b0")])
def test_unstratified_splits_are_the_earlier_random_cuts(digits, seed, want):
  """--split=unstratified keeps every index of the splits made before
  stratification (digests recorded from that code, commit 148c15e)."""
  config = splits_lib.SplitConfig(stratified=False)
  s = splits_lib.splits_for(digits, seed, num_shadows=2, config=config)
  r = splits_lib.scaled_rehearsal_splits(s, config, stream=1)
  assert not s.stratified and not r.stratified
  assert _digest(s.victim, *s.shadows, r.victim, *r.shadows) == want


def test_every_cut_keeps_each_class_share(digits):
  s = splits_lib.splits_for(digits, seed=1, num_shadows=3)
  assert s.stratified
  y = digits.y
  counts = np.bincount(y)
  # A record per class and cut at most is lost to rounding (4 nested cuts).
  train_share = 0.8 * 0.5 * 0.9
  for part in (s.victim, *s.shadows):
    np.testing.assert_allclose(np.bincount(y[part.train], minlength=10),
                               train_share * counts, atol=3)
    assert len(part.train) == len(s.victim.train)
  # Members' class shares now equal the non-members' (up to rounding) for
  # the victim and the shadows alike, so their differences carry no sign.
  for part in (s.victim, *s.shadows):
    member = np.bincount(y[part.train], minlength=10) / len(part.train)
    non = np.bincount(y[part.test], minlength=10) / len(part.test)
    assert np.abs(member - non).max() < 0.02
  # The random cuts they replace differ by several points per class.
  u = splits_lib.splits_for(digits, seed=1, num_shadows=3,
                            config=splits_lib.SplitConfig(stratified=False))
  member = np.bincount(y[u.victim.train], minlength=10) / len(u.victim.train)
  non = np.bincount(y[u.victim.test], minlength=10) / len(u.victim.test)
  assert np.abs(member - non).max() > 0.02


def test_stratified_head_takes_largest_remainders():
  rng = np.random.default_rng(0)
  for _ in range(50):
    classes = rng.integers(0, rng.integers(1, 8), rng.integers(1, 60))
    k = int(rng.integers(0, len(classes) + 1))
    head = splits_lib._stratified_head(classes, k)
    assert head.sum() == k
    for c in np.unique(classes):
      exact = k * np.mean(classes == c)
      assert np.floor(exact) <= head[classes == c].sum() <= np.ceil(exact)
      # Within a class, the head is a prefix of the random order.
      taken = head[classes == c]
      assert not np.any(taken[1:] & ~taken[:-1])


def test_stratification_is_recorded_and_needs_labels(digits, tmp_path):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=1)
  path = str(tmp_path / "s.npz")
  s.save(path)
  assert splits_lib.Splits.load(path).stratified
  with pytest.raises(ValueError, match="need the records' labels"):
    splits_lib.make_splits(len(digits), digits.fingerprint, 0)
  with pytest.raises(ValueError, match=r"labels must have shape \(1797,\)"):
    splits_lib.make_splits(len(digits), digits.fingerprint, 0,
                           labels=digits.y[:10])
  with pytest.raises(ValueError, match="pass the records' labels"):
    splits_lib.rehearsal_splits(s)
  r = splits_lib.rehearsal_splits(s, labels=digits.y)
  assert r.stratified


def test_target_splits_draw_other_victims_from_the_victim_side(digits):
  s = splits_lib.splits_for(digits, seed=2, num_shadows=2)
  targets = splits_lib.target_splits(s, 4, labels=digits.y)
  assert targets[0] is s.victim and len(targets) == 4
  attacker = np.union1d(s.shadow_pool, splits_lib.shadow_heldout(s))
  victim_side = np.setdiff1d(np.arange(len(digits)), attacker)
  members = np.zeros(len(digits), int)
  non_members = np.zeros(len(digits), int)
  for t in targets:
    assert len(t.train) == len(s.victim.train)
    assert len(t.test) == len(s.victim.test) and len(t.dev) == len(s.victim.dev)
    used = np.concatenate([t.train, t.dev, t.test])
    assert len(np.unique(used)) == len(used)
    assert np.isin(used, victim_side).all()
    assert np.isin(t.train, s.victim_pool).all()
    members[t.train] += 1
    non_members[t.test] += 1
  # Targets differ, and some records are members of some targets and
  # non-members of others.
  assert not np.array_equal(targets[1].train, targets[2].train)
  assert np.sum((members > 0) & (non_members > 0)) > 20
  again = splits_lib.target_splits(s, 4, labels=digits.y)
  assert all(np.array_equal(a.train, b.train) for a, b in zip(targets, again))
  with pytest.raises(ValueError, match="num_targets must be >= 1"):
    splits_lib.target_splits(s, 0, labels=digits.y)
