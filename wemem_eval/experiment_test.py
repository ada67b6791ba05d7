"""Tests of the experiment's settings and checks (the experiment end to end
runs in wemem_cli/attack_cmd_test.py and iterations_test.py)."""

import numpy as np
import pytest

from attacks import base
from attacks import registry
from wemem_eval import experiment


def test_reference_count_and_config_checks():
  assert experiment.ExperimentConfig(num_shadows=5).reference_count() == 6
  assert experiment.ExperimentConfig(num_shadows=2).reference_count() == 4
  assert experiment.ExperimentConfig(
      num_shadows=2, num_reference_models=8).reference_count() == 8
  assert experiment.ExperimentConfig(attacks=("all",)).attacks == tuple(
      registry.attack_names())
  with pytest.raises(ValueError, match="unknown attack"):
    experiment.ExperimentConfig(attacks=("confidence",))
  with pytest.raises(ValueError, match="num_shadows"):
    experiment.ExperimentConfig(num_shadows=-1)


def test_reference_plans():
  import wemem_tf  # pylint: disable=g-import-not-at-top
  dataset = wemem_tf.data.load_dataset("digits")
  splits = wemem_tf.data.splits_for(dataset, seed=0, num_shadows=2)
  halves = experiment.ExperimentConfig(num_shadows=2).reference_plan(splits)
  assert halves.num_models == 4
  np.testing.assert_array_equal(halves.in_mask.sum(0), 2)
  matched = experiment.ExperimentConfig(
      num_shadows=2, reference_inclusion=None).reference_plan(splits)
  sizes = matched.in_mask.sum(1)
  target = splits.victim.train.size
  assert abs(np.median(sizes) - target) <= 0.1 * target
  assert (~matched.in_mask).sum(0).min() >= 2
  with pytest.raises(ValueError, match="reference_inclusion"):
    experiment.ExperimentConfig(reference_inclusion=1.0)


def test_shadow_attacks_need_shadows():
  import wemem_tf  # pylint: disable=g-import-not-at-top
  dataset = wemem_tf.data.load_dataset("digits")
  with pytest.raises(ValueError, match="num_shadows >= 1"):
    experiment.run_experiment(dataset, experiment.ExperimentConfig(
        attacks=("conf",), num_shadows=0))


def test_options_validation():
  with pytest.raises(ValueError, match="lira_variance"):
    base.AttackOptions(lira_variance="per-record")
  with pytest.raises(ValueError, match="dev_fraction"):
    base.AttackOptions(dev_fraction=1.0)
