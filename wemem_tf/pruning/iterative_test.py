"""Tests of pre-training and the iterative pruner on real data."""

import os

import numpy as np
import pytest

from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.pruning import schedule as schedule_lib
from wemem_tf.training import loop as loop_lib

SHARED = os.environ.get("WEMEM_SHARED_DATA", os.path.normpath(os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data")))


@pytest.fixture(scope="module")
def location_run():
  if not os.path.isfile(os.path.join(SHARED, "location.npz")):
    pytest.skip("../shared/data not present")
  ds = datasets.load_dataset("location", SHARED)
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  config = iterative.PruningConfig(target_sparsity=0.6, num_iterations=5,
                                   epochs_per_iteration=6, patience=3)
  result = pipeline.pretrain_and_prune(
      ds, split, seed=0, pruning_config=config,
      train_config=loop_lib.TrainConfig(max_epochs=15, patience=3))
  return ds, split, result


def test_full_schedule_on_location_reaches_target(location_run):
  _, _, result = location_run
  sparsity = prune_lib.layer_sparsity(result.pruned)
  assert sparsity["fc1"] == pytest.approx(0.60, abs=0.01)
  assert sparsity["fc2"] == pytest.approx(0.60, abs=0.01)
  assert sparsity["classifier"] == 0.0
  assert not prune_lib.pruned_wrappers(result.pruned)


def test_each_iteration_follows_the_formula(location_run):
  _, _, result = location_run
  assert [r.iteration for r in result.history] == [0, 1, 2, 3, 4]
  for record in result.history:
    expected = 1 - 0.4 ** (record.iteration / 4)
    assert record.target_sparsity == pytest.approx(expected)
    for name in ("fc1", "fc2"):
      assert record.layer_sparsity[name] == pytest.approx(expected, abs=0.01)
    assert record.layer_sparsity["classifier"] == 0.0
    assert record.seconds > 0 and 1 <= record.epochs_run <= 6


def test_pruned_model_stays_useful(location_run):
  ds, split, result = location_run
  assert result.history[-1].test_accuracy > 0.45  # 30 classes: chance 0.05
  # The pretrained model is a separate, still dense object.
  assert prune_lib.layer_sparsity(result.pretrained)["fc1"] < 0.01


def test_training_function_is_traced_once():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  train, dev = ds.take(split.train), ds.take(split.dev)
  from wemem_tf.models import zoo  # pylint: disable=g-import-not-at-top
  model = prune_lib.prune_low_memorization(
      zoo.column_fc(ds.input_shape, 10), schedule_lib.IterativeSparsity(0.5, 3))
  pruner = iterative.IterativePruner(
      model, iterative.PruningConfig(0.5, 3, epochs_per_iteration=4,
                                     patience=10))
  assert isinstance(pruner.rounds, iterative.PruningRounds)
  assert pruner.rounds.num_iterations == 3
  assert pruner.loop is None  # built by run, with the defense's step
  history = pruner.run(train, dev, seed=1)
  assert sum(r.epochs_run for r in history) == 12
  assert pruner.loop.trace_count == 1
  assert pruner.defense.name == "none"
  assert pruner.defense_run.defense is pruner.defense
  assert pruner.defense_run.report() == {"defense": "none"}


def test_restore_last_weights_mode_runs():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  config = iterative.PruningConfig(0.5, 3, epochs_per_iteration=3,
                                   restore_best_weights=False)
  result = pipeline.pretrain_and_prune(
      ds, split, seed=0, pruning_config=config,
      train_config=loop_lib.TrainConfig(max_epochs=3))
  assert prune_lib.layer_sparsity(result.pruned)["fc1"] == pytest.approx(0.5, abs=0.01)


def test_mismatched_schedule_and_config_is_refused():
  from wemem_tf.models import zoo  # pylint: disable=g-import-not-at-top
  model = prune_lib.prune_low_memorization(
      zoo.column_fc((4,), 2), schedule_lib.IterativeSparsity(0.5, 3))
  with pytest.raises(ValueError, match="differs from PruningConfig"):
    iterative.IterativePruner(model, iterative.PruningConfig(0.6, 5))


def test_empty_or_bad_training_data_is_refused():
  from wemem_tf.models import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.column_fc((4,), 3)
  good = (np.zeros((5, 4), np.float32), np.array([0, 1, 2, 0, 1]))
  with pytest.raises(ValueError, match="empty"):
    iterative.pretrain(model, (np.zeros((0, 4), np.float32),
                               np.zeros(0, np.int64)), good, 0)
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
    iterative.pretrain(model, (good[0], np.array([0, 1, 2, 3, 1])), good, 0)
