"""Tests of cohort training: members equal models trained alone."""

import numpy as np
import pytest
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.defenses import catalog
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.memorization import ensemble
from wemem_tf.memorization import native
from wemem_tf.models import zoo
from wemem_tf.pruning import cohort
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib

TRAIN = loop_lib.TrainConfig(max_epochs=6, patience=2)
PRUNING = iterative.PruningConfig(0.6, 3, epochs_per_iteration=4, patience=2)


def no_dropout(shape, num_classes):
  return zoo.column_fc(shape, num_classes, dropout=0.0)


@pytest.fixture(scope="module")
def digits():
  dataset = datasets.load_dataset("digits")
  splits = splits_lib.splits_for(dataset, seed=0, num_shadows=2)
  members = [cohort.Member(splits.victim, 11),
             cohort.Member(splits.shadows[0], 12),
             cohort.Member(splits.shadows[1], 13)]
  return dataset, members


def bound_runs(dataset, members, defense):
  runs = []
  for m in members:
    x, y = dataset.take(m.split.train)
    dev_x, dev_y = dataset.take(m.split.dev)
    runs.append(catalog.resolve(defense).bind(
        defense_lib.TrainingRecords(x, y, m.split.train, dataset.num_classes,
                                    dev_x, dev_y),
        TRAIN, PRUNING.num_iterations, PRUNING.epochs_per_iteration, m.seed))
  return runs


def cohort_pipeline(dataset, members, defense=None):
  pretrained, fits, _ = cohort.pretrain(dataset, members, no_dropout, TRAIN)
  model, _ = cohort.initial_weights(no_dropout, dataset, 0)
  final, histories = cohort.prune(dataset, members, model, pretrained,
                                  bound_runs(dataset, members, defense),
                                  PRUNING, TRAIN)
  return pretrained, fits, final, histories


@pytest.mark.parametrize("defense", [None, "random"])
def test_members_equal_models_trained_alone(digits, defense):
  dataset, members = digits
  pretrained, fits, final, histories = cohort_pipeline(dataset, members,
                                                       defense)
  epochs = set()
  for k, member in enumerate(members):
    alone = pipeline.pretrain_and_prune(
        dataset, member.split, member.seed, architecture=no_dropout,
        pruning_config=PRUNING, train_config=TRAIN, defense=defense)
    assert (fits[k].epochs_run, fits[k].best_epoch) == (
        alone.pretrain_fit.epochs_run, alone.pretrain_fit.best_epoch)
    assert fits[k].best_dev_accuracy == alone.pretrain_fit.best_dev_accuracy
    for a, b in zip(alone.pretrained.get_weights(), pretrained[k]):
      np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(alone.history, histories[k]):
      assert (b.epochs_run, b.best_epoch, b.layer_sparsity) == (
          a.epochs_run, a.best_epoch, a.layer_sparsity)
      assert (b.train_accuracy, b.dev_accuracy, b.test_accuracy) == (
          a.train_accuracy, a.dev_accuracy, a.test_accuracy)
      np.testing.assert_allclose(b.epoch_train_loss, a.epoch_train_loss,
                                 rtol=1e-4)
      epochs.add(b.epochs_run)
    for a, b in zip(alone.pruned.get_weights(), final[k]):
      np.testing.assert_allclose(a, b, atol=1e-5)
      np.testing.assert_array_equal(a == 0, b == 0)
  # Members stopped at different epochs (frozen members were exercised).
  assert len(epochs) > 1


def test_masks_follow_tfmot_rule_per_member(digits):
  dataset, members = digits
  model, _ = cohort.initial_weights(no_dropout, dataset, 0)
  weights = [cohort.initial_weights(no_dropout, dataset, m.seed)[1]
             for m in members]
  group = cohort.MLPCohort(model, weights, [m.seed for m in members])
  schedule = PRUNING.schedule()
  group.prune(2, schedule)
  for k, w in enumerate(weights):
    wrapped = prune_lib.prune_low_memorization(
        keras.models.clone_model(model), schedule)
    wrapped.set_weights(_wrapped_weights(wrapped, w))
    rounds = iterative.PruningRounds(wrapped)
    rounds.start(2)
    expected = prune_lib.strip_pruning(wrapped, serve=False).get_weights()
    for a, b in zip(expected, group.get_weights(k)):
      np.testing.assert_array_equal(a, b)


def _wrapped_weights(wrapped, plain_weights):
  """`plain_weights` placed into a wrapped model's weight list (masks 1)."""
  values = {}
  plain = iter(plain_weights)
  for layer in wrapped.layers:
    inner = getattr(layer, "layer", layer)
    for v in inner.weights:
      values[v.ref()] = next(plain)
  return [values.get(v.ref(), v.numpy()) for v in wrapped.weights]


def test_a_members_dropout_does_not_depend_on_its_cohort(digits):
  dataset, members = digits
  model, _ = cohort.initial_weights(zoo.column_fc, dataset, 0)
  alone_weights = None
  for group_members in (members[:1], members):
    weights = [cohort.initial_weights(zoo.column_fc, dataset, m.seed)[1]
               for m in group_members]
    group = cohort.MLPCohort(model, weights, [m.seed for m in group_members],
                             TRAIN)
    group.set_data(dataset.x, dataset.y)
    group.fit([m.split.train for m in group_members],
              [m.split.dev for m in group_members],
              [lambda e, r, n=len(m.split.train): loop_lib.shuffled_plan(
                  n, TRAIN, r) for m in group_members],
              [m.seed for m in group_members], 3, 5, stream=0)
    if alone_weights is None:
      alone_weights = group.get_weights(0)
    else:
      for a, b in zip(alone_weights, group.get_weights(0)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_member_dropout_masks_are_each_members_own():
  masks = ensemble.member_dropout_masks([4, 8], tf.constant([3, 9], tf.int64),
                                        0.25).numpy()
  assert masks.shape == (2, 4, 8)
  for k, seed in enumerate((3, 9)):
    np.testing.assert_array_equal(
        masks[k], ensemble.hash_dropout_mask([4, 8], seed, 0.25).numpy())
  assert not np.array_equal(masks[0], masks[1])


def test_unsupported_models_and_defenses_say_why(digits):
  dataset, members = digits
  mlp, _ = cohort.initial_weights(zoo.column_fc, dataset, 0)
  assert cohort.unsupported_reason(mlp) is None
  cnn = zoo.small_cnn((8, 8), 10)
  assert "not a plain MLP" in cohort.unsupported_reason(cnn)
  run = bound_runs(dataset, members[:1], "relaxloss")[0]
  assert "changes the batch update" in cohort.unsupported_reason(
      mlp, run, PRUNING)
  authors = iterative.PruningConfig(0.6, 3, restore_best_weights=False)
  assert "restore_best_weights" in cohort.unsupported_reason(
      mlp, None, authors)
  with pytest.raises(ValueError, match="changes the batch update"):
    cohort.prune(dataset, members[:1], mlp, [mlp.get_weights()], [run],
                 PRUNING, TRAIN)


@pytest.fixture(scope="module")
def sparse_binary():
  """A small dataset of sparse binary records (as Location's): the native
  kernels' case."""
  rng = np.random.default_rng(0)
  x = (rng.random((900, 60)) < 0.15).astype(np.float32)
  y = np.argmax(x @ rng.normal(size=(60, 4)), axis=1).astype(np.int64)
  dataset = datasets.Dataset("sparse_binary", x, y, 4)
  splits = splits_lib.splits_for(dataset, seed=0, num_shadows=2)
  return dataset, [cohort.Member(splits.victim, 21),
                   cohort.Member(splits.shadows[0], 22),
                   cohort.Member(splits.shadows[1], 23)]


def test_native_epochs_train_as_the_tensorflow_path(sparse_binary):
  if native.load() is None:
    pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
  dataset, members = sparse_binary
  model, _ = cohort.initial_weights(zoo.column_fc, dataset, 0)  # dropout 0.1
  results = {}
  for native_kernels in (False, True):
    weights = [cohort.initial_weights(zoo.column_fc, dataset, m.seed)[1]
               for m in members]
    group = cohort.MLPCohort(model, weights, [m.seed for m in members],
                             TRAIN, native_kernels=native_kernels)
    group.set_data(dataset.x, dataset.y)
    assert group.mode == ("native" if native_kernels else "tensorflow")
    group.prune(2, PRUNING.schedule())  # masks at 60% sparsity
    fits = group.fit([m.split.train for m in members],
                     [m.split.dev for m in members],
                     [lambda e, r, n=len(m.split.train): loop_lib.shuffled_plan(
                         n, TRAIN, r) for m in members],
                     [m.seed for m in members], 3, 100, stream=0)
    results[native_kernels] = fits, [group.get_weights(k)
                                     for k in range(len(members))]
  (tf_fits, tf_weights), (native_fits, native_weights) = (results[False],
                                                          results[True])
  for a, b in zip(tf_fits, native_fits):
    # The same batches, dropout masks and Adam steps: the same losses up to
    # float rounding (which Adam amplifies for weights with ~0 gradients).
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=2e-3)
    np.testing.assert_allclose(a.dev_accuracy, b.dev_accuracy, atol=0.02)
  for wa, wb in zip(tf_weights, native_weights):
    for a, b in zip(wa, wb):
      np.testing.assert_array_equal(a == 0, b == 0)  # same masks
      assert np.mean(np.abs(a - b) < 1e-4) > 0.98
