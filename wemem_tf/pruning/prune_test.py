"""Tests of prune_low_memorization and strip_pruning."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import wemem_tf
from wemem_tf._keras import keras
from wemem_tf.models import zoo
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.pruning import schedule as schedule_lib


def _wrapped_names(model):
  return [w.layer.name for w in prune_lib.pruned_wrappers(model)]


def test_default_prunes_every_dense_but_the_classifier():
  model = zoo.column_fc((10,), 3)
  pruned = prune_lib.prune_low_memorization(model)
  assert _wrapped_names(pruned) == ["fc1", "fc2"]
  assert pruned.wemem_defense.name == "none"
  # Weights are shared with the original model, as in prune_low_magnitude.
  assert pruned.get_layer("classifier") is model.get_layer("classifier")


def test_default_on_a_cnn_prunes_convs_and_hidden_dense():
  pruned = prune_lib.prune_low_memorization(zoo.small_cnn((28, 28, 1), 10))
  assert _wrapped_names(pruned) == ["conv1", "conv2", "fc1"]


def test_sequential_model_and_explicit_layers():
  model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="h"),
                            keras.layers.Dense(2, name="out")])
  pruned = prune_lib.prune_low_memorization(model, layers_to_prune=["h", "out"])
  assert _wrapped_names(pruned) == ["h", "out"]
  pruned = prune_lib.prune_low_memorization(
      model, layers_to_prune=lambda l: l.name == "out")
  assert _wrapped_names(pruned) == ["out"]


def test_strip_pruning_removes_wrappers():
  pruned = prune_lib.prune_low_memorization(zoo.column_fc((10,), 3))
  stripped = prune_lib.strip_pruning(pruned)
  assert not prune_lib.pruned_wrappers(stripped)
  assert [l.name for l in stripped.layers if isinstance(
      l, keras.layers.Dense)] == ["fc1", "fc2", "classifier"]


class _Subclassed(keras.Model):

  def __init__(self):
    super().__init__()
    self.dense = keras.layers.Dense(2)

  def call(self, x):
    return self.dense(x)


def test_subclassed_model_is_refused():
  model = _Subclassed()
  model(np.zeros((1, 3), np.float32))
  with pytest.raises(ValueError, match="subclassed model"):
    prune_lib.prune_low_memorization(model)


def test_bad_arguments_are_refused():
  model = zoo.column_fc((10,), 3)
  with pytest.raises(ValueError, match="unknown defense"):
    prune_lib.prune_low_memorization(model, defense="magic")
  with pytest.raises(ValueError, match="not layers of"):
    prune_lib.prune_low_memorization(model, layers_to_prune=["nope"])
  with pytest.raises(ValueError, match="cannot be pruned"):
    prune_lib.prune_low_memorization(
        model, layers_to_prune=[model.layers[2].name])  # a Dropout layer
  with pytest.raises(ValueError, match="PruningSchedule"):
    prune_lib.prune_low_memorization(model, pruning_schedule=0.5)
  with pytest.raises(ValueError, match="already pruned"):
    prune_lib.prune_low_memorization(prune_lib.prune_low_memorization(model))
  with pytest.raises(ValueError, match="tf_keras Model"):
    prune_lib.prune_low_memorization("model")


def test_accepts_tfmot_schedules():
  pruned = prune_lib.prune_low_memorization(
      zoo.column_fc((10,), 3), tfmot.sparsity.keras.ConstantSparsity(0.5, 0))
  assert len(prune_lib.pruned_wrappers(pruned)) == 2


def test_plain_fit_with_update_pruning_step_follows_the_schedule():
  """A plain `fit` (TFMOT's workflow) runs the schedule's rounds by epochs:
  one epoch per round here, ending at the target sparsity."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 10)).astype(np.float32)
  y = rng.integers(0, 3, 64)
  schedule = schedule_lib.IterativeSparsity(0.5, 3, epochs_per_iteration=1)
  pruned = prune_lib.prune_low_memorization(zoo.column_fc((10,), 3), schedule)
  pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
  # epochs defaults to the schedule's 3 rounds × 1 epoch.
  logs = pruned.fit(x, y, batch_size=16, verbose=0, callbacks=[
      tfmot.sparsity.keras.UpdatePruningStep(),
      wemem_tf.IterativePruning(patience=None)]).history
  assert logs["pruning_iteration"] == [0, 1, 2]
  assert [r.epochs_run for r in pruned.wemem_fit.history] == [1, 1, 1]
  sparsity = prune_lib.layer_sparsity(pruned)
  assert sparsity["fc1"] == pytest.approx(0.5, abs=0.01)
  assert sparsity["fc2"] == pytest.approx(0.5, abs=0.01)
  assert sparsity["classifier"] == 0.0
  stripped = prune_lib.layer_sparsity(prune_lib.strip_pruning(pruned))
  assert stripped == pytest.approx(sparsity, abs=1e-6)
