"""Tests of the experiment's settings and checks (the experiment end to end
runs in wemem_cli/attack_cmd_test.py and iterations_test.py)."""

import dataclasses

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


def test_variant_label_and_epoch_num_rules():
  from wemem_eval import model_training  # pylint: disable=g-import-not-at-top
  from wemem_tf.pruning import iterative  # pylint: disable=g-import-not-at-top
  pruned = model_training.ModelRecipe(
      pruning_config=iterative.PruningConfig(0.5, 4))
  config = experiment.ExperimentConfig(recipe=pruned)
  assert (config.variant_label(), config.epoch_num()) == ("base", 3)
  assert [config.epoch_num(k) for k in range(4)] == [0, 1, 2, 3]
  swmr = dataclasses.replace(config, recipe=dataclasses.replace(
      pruned, defense="swmr"))
  assert swmr.variant_label() == "swmr"
  unpruned = dataclasses.replace(config, recipe=dataclasses.replace(
      pruned, target="unpruned", defense="swmr"))
  assert (unpruned.variant_label(), unpruned.epoch_num()) == ("unpruned", 0)
  # An explicit label (wemem run's step label, e.g. "one_shot") wins.
  one_shot = dataclasses.replace(config, label="one_shot")
  assert one_shot.variant_label() == "one_shot"


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


def test_a_pooled_audit_attacks_every_target_once_fitted():
  """num_targets=3 on digits: target 0 is the single-victim run's victim,
  the attack rows pool 3 victims' records, LiRA's reference pool covers
  every target, and the single-victim run is unchanged by the feature."""
  import wemem_tf  # pylint: disable=g-import-not-at-top
  from wemem_eval import model_training  # pylint: disable=g-import-not-at-top
  from wemem_tf.pruning import iterative  # pylint: disable=g-import-not-at-top
  from wemem_tf.training import loop as loop_lib  # pylint: disable=g-import-not-at-top
  dataset = wemem_tf.data.load_dataset("digits")
  recipe = model_training.ModelRecipe(
      architecture="column_fc", target="unpruned",
      pruning_config=iterative.PruningConfig(0.5, 2),
      train_config=loop_lib.TrainConfig(max_epochs=2, patience=2))
  config = experiment.ExperimentConfig(
      recipe=recipe, attacks=("conf", "lira_online"), num_shadows=1,
      num_reference_models=4, seed=0,
      options=base.AttackOptions(max_epochs=2))
  one = experiment.run_experiment(dataset, config)
  pooled = experiment.run_experiment(
      dataset, dataclasses.replace(config, num_targets=3))
  assert pooled.victim.test_accuracy == one.victim.test_accuracy
  note = pooled.to_json()["pooled_targets"]
  assert note["num_targets"] == 3 and len(set(note["test_accuracies"])) > 1
  assert "pooled_targets" not in one.to_json()
  for name in ("conf", "lira_online"):
    a, b = one.suite.by_name()[name], pooled.suite.by_name()[name]
    assert len(b.non_member_scores) == 3 * len(a.non_member_scores)
    assert len(b.member_scores) == 3 * len(a.member_scores)
    assert b.fpr_resolution == pytest.approx(a.fpr_resolution / 3)
  # tensorflow-privacy metadata: the unpruned model is epoch 0; accuracies
  # and losses are target 0's (the protocol's victim), pooled or not.
  meta = one.suite.metadata
  assert (meta.model_variant_label, meta.epoch_num) == ("unpruned", 0)
  assert meta.accuracy_test == one.victim.test_accuracy
  assert meta.loss_train is not None and meta.loss_test is not None
  assert pooled.suite.metadata == meta
  assert one.to_json()["privacy_report_metadata"]["epoch_num"] == 0
  # The conf attack is fitted on the same shadows: the same threshold.
  assert (pooled.suite.by_name()["conf"].threshold
          == one.suite.by_name()["conf"].threshold)
