"""Tests of the shadow and random-halves protocols."""

import dataclasses


import numpy as np
import pytest

from attacks import model_store
from attacks import shadows
import wemem_tf
from wemem_tf.defenses import base as defenses_base
from wemem_tf.models import zoo
from wemem_tf.pruning import pipeline

TINY_PRUNING = wemem_tf.PruningConfig(0.5, 2, epochs_per_iteration=1,
                                      patience=1)
TINY_TRAINING = wemem_tf.TrainConfig(max_epochs=2, patience=1)


@pytest.fixture(scope="module")
def digits():
  dataset = wemem_tf.data.load_dataset("digits")
  return dataset, wemem_tf.data.splits_for(dataset, seed=0, num_shadows=2)


def test_target_records_and_attacker_holdout(digits):
  _, splits = digits
  targets = shadows.target_records(splits)
  np.testing.assert_array_equal(
      targets, np.sort(np.concatenate([splits.victim.train,
                                       splits.victim.test])))
  holdout = shadows.attacker_heldout(splits)
  victim = np.concatenate([splits.victim.train, splits.victim.dev,
                           splits.victim.test])
  assert holdout.size and not np.intersect1d(holdout, victim).size
  assert np.isin(holdout, splits.heldout).all()


@pytest.mark.parametrize("num_models", [2, 4, 5])
def test_random_halves(digits, num_models):
  _, splits = digits
  plan = shadows.plan_for(splits, num_models, seed=3)
  targets = shadows.target_records(splits)
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
  again = shadows.plan_for(splits, num_models, seed=3)
  np.testing.assert_array_equal(again.in_mask, plan.in_mask)
  other = shadows.plan_for(splits, num_models, seed=4)
  assert not np.array_equal(other.in_mask, plan.in_mask)


def test_random_halves_rejects_too_few_models(digits):
  _, splits = digits
  with pytest.raises(ValueError, match=">= 2 reference models"):
    shadows.plan_for(splits, 1, seed=0)


@pytest.mark.parametrize("num_models,inclusion", [(10, 0.8), (6, 0.3)])
def test_fixed_share_subsets(digits, num_models, inclusion):
  _, splits = digits
  plan = shadows.plan_for(splits, num_models, seed=3, inclusion=inclusion)
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
      shadows.plan_for(splits, num_models, seed=3, inclusion=inclusion)
      .in_mask, plan.in_mask)
  assert not np.intersect1d(plan.dev, plan.pool).size


def test_fixed_share_subsets_reject_designs_without_out_models(digits):
  _, splits = digits
  with pytest.raises(ValueError, match="no OUT model"):
    shadows.plan_for(splits, 4, seed=0, inclusion=0.9)
  with pytest.raises(ValueError, match="no IN model"):
    shadows.plan_for(splits, 4, seed=0, inclusion=0.1)
  with pytest.raises(ValueError, match=r"inclusion must lie in \(0, 1\)"):
    shadows.plan_for(splits, 4, seed=0, inclusion=1.0)


def test_matched_inclusion():
  # Location's rehearsal: 1,804 target records from a pool of 2,170.
  inclusion, count = shadows.matched_inclusion(1804, 2170)
  assert (inclusion, count) == (0.8, 10)
  # Location's real protocol: a pool of 4,271 (halves would be 18% larger).
  assert shadows.matched_inclusion(1804, 4271) == (5 / 12, 12)
  for target, pool, min_out in [(1804, 2170, 3), (500, 510, 2), (10, 300, 2)]:
    inclusion, count = shadows.matched_inclusion(target, pool, min_out=min_out)
    k = round(inclusion * count)
    assert k >= 2 and count - k >= min_out and count % 2 == 0
    assert abs(inclusion * pool - target) <= 0.05 * target
  with pytest.raises(ValueError, match="target_train_size"):
    shadows.matched_inclusion(3000, 2000)


def test_matched_design(digits):
  _, splits = digits
  inclusion, count = shadows.matched_design(splits)
  plan = shadows.plan_for(splits, count, seed=0, inclusion=inclusion)
  sizes = plan.in_mask.sum(1)
  assert abs(np.median(sizes) - splits.victim.train.size) <= (
      0.1 * splits.victim.train.size)


def test_recipe_defense_passes_through_only_when_adaptive():
  recipe = shadows.ModelRecipe(defense="some_defense")
  assert recipe.for_attacker(adaptive=True).defense == "some_defense"
  assert recipe.for_attacker(adaptive=False).defense is None
  with pytest.raises(ValueError, match="target must be one of"):
    shadows.ModelRecipe(target="dense")


def test_shadows_use_victim_pipeline_with_defense(digits, monkeypatch):
  dataset, splits = digits
  calls = []

  def fake_pipeline(dataset_, split, seed, **kwargs):
    calls.append((split, seed, kwargs))
    model = zoo.build_model("column_fc", dataset_.input_shape,
                            dataset_.num_classes)
    return pipeline.PipelineResult(model, model, None, [], 0.0, 0.0)

  monkeypatch.setattr(shadows.pipeline, "pretrain_and_prune", fake_pipeline)
  recipe = shadows.ModelRecipe(pruning_config=TINY_PRUNING, defense="random")
  models = shadows.train_shadow_models(dataset, splits, recipe, adaptive=True,
                                       seed=0)
  assert len(models) == 2
  assert [c[0] for c in calls] == list(splits.shadows)
  assert all(c[2]["defense"] == "random" for c in calls)
  assert all(c[2]["pruning_config"] == TINY_PRUNING for c in calls)
  assert len({c[1] for c in calls}) == 2  # distinct seeds
  calls.clear()
  shadows.train_shadow_models(dataset, splits, recipe, adaptive=False, seed=0)
  assert all(c[2]["defense"] is None for c in calls)
  with pytest.raises(ValueError, match="num_shadows"):
    shadows.train_shadow_models(dataset, splits, recipe, True, 0, 3)
  # A Defense instance: each model gets its own copy (defenses keep state).
  calls.clear()
  instance = defenses_base.Defense()
  shadows.train_shadow_models(
      dataset, splits, shadows.ModelRecipe(defense=instance), adaptive=True,
      seed=0)
  passed = [c[2]["defense"] for c in calls]
  assert all(isinstance(d, defenses_base.Defense) for d in passed)
  assert passed[0] is not instance and passed[0] is not passed[1]


def test_unpruned_target_is_the_pipelines_pretrained_model(digits):
  dataset, splits = digits
  recipe = shadows.ModelRecipe(pruning_config=TINY_PRUNING,
                               train_config=TINY_TRAINING)
  pruned = shadows.train_model(dataset, splits.victim, 5, recipe)
  dense = shadows.train_model(
      dataset, splits.victim, 5,
      shadows.ModelRecipe(train_config=TINY_TRAINING, target="unpruned"))
  assert "prune" not in dense.facts and "prune" in pruned.facts
  # The library's own pipeline pre-trains to the same weights.
  reference = pipeline.pretrain_and_prune(
      dataset, splits.victim, 5, pruning_config=TINY_PRUNING,
      train_config=TINY_TRAINING)
  for a, b in zip(reference.pretrained.get_weights(), dense.model.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-5)
  for a, b in zip(reference.pruned.get_weights(), pruned.model.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert 0 < dense.test_accuracy <= 1 and 0 < pruned.test_accuracy <= 1
  info = pruned.summary()
  assert info["prune_epochs"] and info["pretrain_epochs"] >= 1


def test_model_store_reuses_models_and_gives_the_same_results(digits, tmp_path):
  dataset, splits = digits
  recipe = shadows.ModelRecipe(pruning_config=TINY_PRUNING,
                               train_config=TINY_TRAINING)
  store = model_store.ModelStore(str(tmp_path))
  first = shadows.train_model(dataset, splits.victim, 3, recipe, store)
  assert (store.hits, store.misses) == (0, 2)
  again = shadows.train_model(dataset, splits.victim, 3, recipe, store)
  assert (store.hits, store.misses) == (2, 2)
  unpruned = shadows.train_model(
      dataset, splits.victim, 3,
      dataclasses.replace(recipe, target="unpruned"), store)
  assert store.hits == 3  # the pre-trained model is shared
  for a, b in zip(first.model.get_weights(), again.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert first.facts == again.facts
  assert unpruned.facts["pretrain"] == first.facts["pretrain"]
  uncached = shadows.train_model(dataset, splits.victim, 3, recipe)
  for a, b in zip(first.model.get_weights(), uncached.model.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-6)
