"""Tests of training the victim, shadow and reference models."""

import dataclasses

import numpy as np
import pytest

import wemem_tf
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_tf._keras import keras
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.models import evaluate
from wemem_tf.models import zoo
from wemem_tf.pruning import pipeline

TINY_PRUNING = wemem_tf.PruningConfig(0.5, 2, epochs_per_iteration=1,
                                      patience=1)
TINY_TRAINING = wemem_tf.TrainConfig(max_epochs=2, patience=1)


@pytest.fixture(scope="module")
def digits():
  dataset = wemem_tf.data.load_dataset("digits")
  return dataset, wemem_tf.data.splits_for(dataset, seed=0, num_shadows=2)


def test_recipe_defense_passes_through_only_when_adaptive():
  recipe = model_training.ModelRecipe(defense="some_defense")
  assert recipe.for_attacker(adaptive=True).defense == "some_defense"
  assert recipe.for_attacker(adaptive=False).defense is None
  own = model_training.ModelRecipe(defense="some_defense",
                                   attacker_defense="its_own_copy")
  assert own.for_attacker(adaptive=True).defense == "its_own_copy"
  assert own.for_attacker(adaptive=True).attacker_defense is None
  assert own.for_attacker(adaptive=False).defense is None
  with pytest.raises(ValueError, match="target must be one of"):
    model_training.ModelRecipe(target="dense")


def test_shadows_use_victim_pipeline_with_defense(digits, monkeypatch):
  dataset, splits = digits
  calls = []

  def fake_pipeline(dataset_, split, seed, **kwargs):
    calls.append((split, seed, kwargs))
    model = zoo.build_model("column_fc", dataset_.input_shape,
                            dataset_.num_classes)
    return pipeline.PipelineResult(model, model, None, [], 0.0, 0.0)

  monkeypatch.setattr(model_training.pipeline, "pretrain_and_prune", fake_pipeline)
  recipe = model_training.ModelRecipe(pruning_config=TINY_PRUNING, defense="random")
  models = model_training.train_shadow_models(dataset, splits, recipe, adaptive=True,
                                       seed=0)
  assert len(models) == 2
  assert [c[0] for c in calls] == list(splits.shadows)
  assert all(c[2]["defense"] == "random" for c in calls)
  assert all(c[2]["pruning_config"] == TINY_PRUNING for c in calls)
  assert len({c[1] for c in calls}) == 2  # distinct seeds
  calls.clear()
  model_training.train_shadow_models(dataset, splits, recipe, adaptive=False, seed=0)
  assert all(c[2]["defense"] is None for c in calls)
  with pytest.raises(ValueError, match="num_shadows"):
    model_training.train_shadow_models(dataset, splits, recipe, True, 0, 3)
  # A Defense instance is frozen settings: every model gets the same object
  # (each binds its own run), never a copy.
  calls.clear()
  instance = defense_lib.Defense()
  model_training.train_shadow_models(
      dataset, splits, model_training.ModelRecipe(defense=instance), adaptive=True,
      seed=0)
  passed = [c[2]["defense"] for c in calls]
  assert all(d is instance for d in passed)


def test_unpruned_target_is_the_pipelines_pretrained_model(digits):
  dataset, splits = digits
  recipe = model_training.ModelRecipe(pruning_config=TINY_PRUNING,
                               train_config=TINY_TRAINING)
  pruned = model_training.train_model(dataset, splits.victim, 5, recipe)
  dense = model_training.train_model(
      dataset, splits.victim, 5,
      model_training.ModelRecipe(train_config=TINY_TRAINING, target="unpruned"))
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
  recipe = model_training.ModelRecipe(pruning_config=TINY_PRUNING,
                               train_config=TINY_TRAINING)
  store = model_store.ModelStore(str(tmp_path))
  first = model_training.train_model(dataset, splits.victim, 3, recipe, store)
  assert (store.hits, store.misses) == (0, 2)
  again = model_training.train_model(dataset, splits.victim, 3, recipe, store)
  assert (store.hits, store.misses) == (2, 2)
  unpruned = model_training.train_model(
      dataset, splits.victim, 3,
      dataclasses.replace(recipe, target="unpruned"), store)
  assert store.hits == 3  # the pre-trained model is shared
  for a, b in zip(first.model.get_weights(), again.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert first.facts == again.facts
  assert unpruned.facts["pretrain"] == first.facts["pretrain"]
  uncached = model_training.train_model(dataset, splits.victim, 3, recipe)
  for a, b in zip(first.model.get_weights(), uncached.model.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("restore_best", [True, False])
def test_hook_copies_each_checkpoint_and_changes_nothing(digits, restore_best):
  dataset, splits = digits
  split = splits.victim
  recipe = model_training.ModelRecipe(
      pruning_config=wemem_tf.PruningConfig(
          target_sparsity=0.5, num_iterations=2, epochs_per_iteration=3,
          patience=1, restore_best_weights=restore_best),
      train_config=wemem_tf.TrainConfig(max_epochs=1, patience=1))
  # pylint: disable=protected-access
  pretrained, _ = model_training._pretrain(dataset, split, 0, recipe)
  plain = wemem_tf.pretrain_and_prune(
      dataset, split, 0, pruning_config=recipe.pruning_config,
      train_config=recipe.train_config, pretrained=pretrained)
  staged = model_training._prune(dataset, split, 0, recipe, pretrained,
                                 every_iteration=True)
  # pylint: enable=protected-access
  assert len(staged) == 2
  for a, b in zip(plain.pruned.get_weights(), staged[-1][0].get_weights()):
    np.testing.assert_array_equal(a, b)
  no_seconds = lambda h: {k: v for k, v in h.items() if k != "seconds"}
  assert [no_seconds(h.to_json()) for h in plain.history] == [
      no_seconds(h) for h in staged[-1][1]["history"]]
  x, y = dataset.take(split.test)
  for k, (model, facts) in enumerate(staged):
    record = facts["history"][-1]
    assert record["iteration"] == k
    # The copy is the checkpoint the iteration was evaluated at.
    assert wemem_tf.pruning.layer_sparsity(model) == record["layer_sparsity"]
    assert evaluate.accuracy(model, x, y) == pytest.approx(
        record["test_accuracy"], abs=1e-9)


def _no_dropout(shape, num_classes):
  return wemem_tf.models.zoo.column_fc(shape, num_classes, dropout=0.0)


@pytest.mark.parametrize("every_iteration,defense", [
    (False, "none"), (True, "none"),
    (False, "relaxloss")])  # pre-trained as a cohort, pruned alone
def test_cohort_recipe_trains_like_one_at_a_time(digits, every_iteration,
                                                 defense):
  dataset, splits = digits
  recipe = model_training.ModelRecipe(
      architecture=_no_dropout, pruning_config=TINY_PRUNING,
      train_config=TINY_TRAINING, defense=defense)
  cohort = dataclasses.replace(recipe, cohort=True)
  jobs = model_training.shadow_jobs(splits, recipe, False, seed=1)
  store = model_store.MemoryStore()
  grouped = model_training.train_models(
      dataset, [model_training.ModelJob(j.split, j.seed, cohort)
                for j in jobs], store, every_iteration=every_iteration)
  kinds = {kind for kind, _ in store.new_entries()}
  assert kinds == ({"pretrained", "pruned", "pruned-it0"} if every_iteration
                   else {"pretrained", "pruned"})
  assert all(facts["cohort"] == len(jobs)
             for (kind, _), (_, facts) in store.new_entries().items()
             if defense == "none" or kind == "pretrained")
  alone = model_training.train_models(dataset, jobs,
                                      every_iteration=every_iteration)
  for cohort_stages, alone_stages in zip(grouped, alone):
    assert len(cohort_stages) == len(alone_stages)
    for a, b in zip(alone_stages, cohort_stages):
      for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-5)
      assert b.test_accuracy == a.test_accuracy
      assert ([h["epochs_run"] for h in b.facts["prune"]["history"]] ==
              [h["epochs_run"] for h in a.facts["prune"]["history"]])
  # Cohort models are stored under their own keys.
  loop_store = model_store.MemoryStore()
  model_training.train_models(dataset, jobs[:1], loop_store)
  assert not set(loop_store.new_entries()) & set(store.new_entries())


def test_cohort_leaves_unsupported_defenses_to_one_at_a_time(digits,
                                                             tmp_path):
  dataset, splits = digits
  recipe = model_training.ModelRecipe(
      pruning_config=TINY_PRUNING, train_config=TINY_TRAINING,
      defense="relaxloss", cohort=True)
  jobs = model_training.shadow_jobs(splits, recipe, True, seed=2)
  store = model_store.ModelStore(str(tmp_path))
  trained = model_training.train_models(dataset, jobs, store)
  for (model,), job in zip(trained, jobs):
    assert model.facts["pretrain"]["cohort"] == len(jobs)  # pre-trained together
    assert "cohort" not in model.facts["prune"]  # pruned one at a time
    assert model.facts["prune"]["defense_report"]["defense"] == "relaxloss"
  hits = store.hits
  again = model_training.train_models(dataset, jobs, store)
  assert store.misses == len(jobs)  # only the pruned models were built
  assert store.hits > hits
  for (a,), (b,) in zip(trained, again):
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
      np.testing.assert_array_equal(wa, wb)


def _not_plain_mlp(shape, num_classes):
  """An MLP with a kernel regularizer: not a plain MLP for a cohort."""
  inputs = keras.Input(shape)
  h = keras.layers.Dense(
      32, activation="relu", name="fc1",
      kernel_regularizer=keras.regularizers.l2(1e-4))(inputs)
  h = keras.layers.Dense(16, activation="relu", name="fc2")(h)
  outputs = keras.layers.Dense(num_classes, name="classifier")(h)
  return keras.Model(inputs, outputs)


def test_cohort_leaves_other_architectures_to_one_at_a_time(digits):
  dataset, splits = digits
  recipe = model_training.ModelRecipe(
      architecture=_not_plain_mlp, pruning_config=TINY_PRUNING,
      train_config=TINY_TRAINING, cohort=True)
  job = model_training.shadow_jobs(splits, recipe, False, seed=4)[0]
  (model,), = model_training.train_models(dataset, [job])
  assert "cohort" not in model.facts["pretrain"]
  assert "cohort" not in model.facts["prune"]
  assert 0.0 <= model.test_accuracy <= 1.0
