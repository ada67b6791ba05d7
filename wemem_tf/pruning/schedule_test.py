"""Tests of IterativeSparsity."""

import numpy as np
import pytest
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.pruning import schedule as schedule_lib


def test_formula_and_mask_steps():
  s = schedule_lib.IterativeSparsity(0.6, 5, steps_per_iteration=10)
  expected = [0.0] + [1 - 0.4 ** (k / 4) for k in range(1, 5)]
  np.testing.assert_allclose([s.sparsity(k) for k in range(5)], expected)
  assert s.sparsity(4) == pytest.approx(0.6)
  for step in range(0, 60):
    should_prune, sparsity = s(tf.constant(step, tf.int64))
    k = step // 10
    assert bool(should_prune) == (step % 10 == 0 and 1 <= k <= 4), step
    assert float(sparsity) == pytest.approx(expected[min(k, 4)], abs=1e-6)


def test_config_round_trip():
  s = schedule_lib.IterativeSparsity(0.7, 4, 33, epochs_per_iteration=6)
  config = s.get_config()
  assert config["class_name"] == "IterativeSparsity"
  t = schedule_lib.IterativeSparsity.from_config(config["config"])
  assert (t.target_sparsity, t.num_iterations, t.steps_per_iteration,
          t.epochs_per_iteration) == (0.7, 4, 33, 6)
  assert t.max_epochs == 24


def test_rounds_are_epochs():
  s = schedule_lib.IterativeSparsity(0.6, 5)
  assert (s.epochs_per_iteration, s.max_epochs) == (21, 105)  # docs/method.md §3
  for bad in (0, 2.5, "3"):
    with pytest.raises(ValueError, match="epochs_per_iteration must be a "
                       "positive integer"):
      schedule_lib.IterativeSparsity(0.6, 5, epochs_per_iteration=bad)


def test_loads_from_a_saved_model(tmp_path):
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
                            keras.layers.Dense(2, name="out")])
  pruned = prune_lib.prune_low_memorization(
      model, schedule_lib.IterativeSparsity(0.5, 3, 7, epochs_per_iteration=2))
  path = str(tmp_path / "pruned.h5")
  pruned.save(path)
  with prune_lib.prune_scope():
    loaded = keras.models.load_model(path)
  schedule = prune_lib.pruned_wrappers(loaded)[0].pruning_schedule
  assert isinstance(schedule, schedule_lib.IterativeSparsity)
  assert schedule.get_config() == pruned.layers[0].pruning_schedule.get_config()
  assert schedule.epochs_per_iteration == 2


@pytest.mark.parametrize("sparsity", [0.0, 1.0, -0.1, 1.5, "0.5"])
def test_sparsity_outside_open_interval_is_refused(sparsity):
  with pytest.raises(ValueError, match="strictly between 0 and 1"):
    schedule_lib.IterativeSparsity(sparsity, 5)


@pytest.mark.parametrize("iterations", [0, 1, 2.5])
def test_fewer_than_two_iterations_is_refused(iterations):
  with pytest.raises(ValueError, match="num_iterations must be an integer >= 2"):
    schedule_lib.IterativeSparsity(0.5, iterations)
