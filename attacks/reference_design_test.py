"""Tests of the random-halves reference-model design."""

import numpy as np
import pytest

import wemem_tf
from attacks import reference_design


@pytest.fixture(scope="module")
def digits():
  dataset = wemem_tf.data.load_dataset("digits")
  return dataset, wemem_tf.data.splits_for(dataset, seed=0, num_shadows=2)


def test_target_records_and_attacker_holdout(digits):
  _, splits = digits
  targets = reference_design.target_records(splits)
  np.testing.assert_array_equal(
      targets, np.sort(np.concatenate([splits.victim.train,
                                       splits.victim.test])))
  holdout = reference_design.attacker_heldout(splits)
  victim = np.concatenate([splits.victim.train, splits.victim.dev,
                           splits.victim.test])
  assert holdout.size and not np.intersect1d(holdout, victim).size
  assert np.isin(holdout, splits.heldout).all()


@pytest.mark.parametrize("num_models", [2, 4, 5])
def test_random_halves(digits, num_models):
  _, splits = digits
  plan = reference_design.plan_for(splits, num_models, seed=3)
  targets = reference_design.target_records(splits)
  np.testing.assert_array_equal(plan.pool,
                                np.union1d(targets, splits.shadow_pool))
  assert plan.in_mask.shape == (num_models, plan.pool.size)
  for k in range(0, num_models - 1, 2):  # complementary pairs
    np.testing.assert_array_equal(plan.in_mask[k], ~plan.in_mask[k + 1])
  assert abs(plan.in_mask[0].sum() - plan.pool.size / 2) <= 1
  if num_models % 2 == 0:
    np.testing.assert_array_equal(plan.in_mask.sum(0), num_models // 2)
  # dev and population: outside the pool, disjoint, none of the victim's.
  assert not np.intersect1d(plan.dev, plan.pool).size
  assert not np.intersect1d(plan.population, plan.pool).size
  assert not np.intersect1d(plan.dev, plan.population).size
  assert not np.intersect1d(plan.dev, splits.victim.dev).size
  split = plan.split(1)
  np.testing.assert_array_equal(split.train, plan.pool[plan.in_mask[1]])
  # Deterministic in the seed; different seeds give different halves.
  again = reference_design.plan_for(splits, num_models, seed=3)
  np.testing.assert_array_equal(again.in_mask, plan.in_mask)
  other = reference_design.plan_for(splits, num_models, seed=4)
  assert not np.array_equal(other.in_mask, plan.in_mask)


def test_random_halves_rejects_too_few_models(digits):
  _, splits = digits
  with pytest.raises(ValueError, match=">= 2 reference models"):
    reference_design.plan_for(splits, 1, seed=0)


@pytest.mark.parametrize("num_models,inclusion", [(10, 0.8), (6, 0.3)])
def test_fixed_share_subsets(digits, num_models, inclusion):
  _, splits = digits
  plan = reference_design.plan_for(splits, num_models, seed=3, inclusion=inclusion)
  k = int(round(inclusion * num_models))
  # Every record is IN exactly k models, OUT in the others.
  np.testing.assert_array_equal(plan.in_mask.sum(0), k)
  # Each model trains on about k / R of the pool (binomial spread).
  sizes = plan.in_mask.sum(1)
  n = plan.pool.size
  spread = 4 * np.sqrt(n * inclusion * (1 - inclusion))
  assert np.all(np.abs(sizes - n * k / num_models) <= spread)
  # Not one fixed subset repeated: models differ, and so do OUT sets.
  assert len({row.tobytes() for row in plan.in_mask}) == num_models
  np.testing.assert_array_equal(
      reference_design.plan_for(splits, num_models, seed=3, inclusion=inclusion)
      .in_mask, plan.in_mask)
  assert not np.intersect1d(plan.dev, plan.pool).size


def test_fixed_share_subsets_reject_designs_without_out_models(digits):
  _, splits = digits
  with pytest.raises(ValueError, match="no OUT model"):
    reference_design.plan_for(splits, 4, seed=0, inclusion=0.9)
  with pytest.raises(ValueError, match="no IN model"):
    reference_design.plan_for(splits, 4, seed=0, inclusion=0.1)
  with pytest.raises(ValueError, match=r"inclusion must lie in \(0, 1\)"):
    reference_design.plan_for(splits, 4, seed=0, inclusion=1.0)


def test_matched_inclusion():
  # Location's rehearsal: 1,804 target records from a pool of 2,170.
  inclusion, count = reference_design.matched_inclusion(1804, 2170)
  assert (inclusion, count) == (0.8, 10)
  # Location's real protocol: a pool of 4,271 (halves would be 18% larger).
  assert reference_design.matched_inclusion(1804, 4271) == (5 / 12, 12)
  for target, pool, min_out in [(1804, 2170, 3), (500, 510, 2), (10, 300, 2)]:
    inclusion, count = reference_design.matched_inclusion(target, pool, min_out=min_out)
    k = round(inclusion * count)
    assert k >= 2 and count - k >= min_out and count % 2 == 0
    assert abs(inclusion * pool - target) <= 0.05 * target
  with pytest.raises(ValueError, match="target_train_size"):
    reference_design.matched_inclusion(3000, 2000)


def test_matched_design(digits):
  _, splits = digits
  inclusion, count = reference_design.matched_design(splits)
  plan = reference_design.plan_for(splits, count, seed=0, inclusion=inclusion)
  sizes = plan.in_mask.sum(1)
  assert abs(np.median(sizes) - splits.victim.train.size) <= (
      0.1 * splits.victim.train.size)
