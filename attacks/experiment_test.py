"""End-to-end tests: the experiment and the `wemem attack` command on digits
with tiny settings (few epochs, 2 shadows)."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from attacks import base
from attacks import experiment
from attacks import registry
from wemem_cli import attack_cmd

FLAGS = flags.FLAGS

REQUIRED_KEYS = {"attack", "balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                 "tpr_at_1pct_fpr", "advantage", "seconds"}


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


def test_cli_end_to_end_on_digits(tmp_path):
  if not FLAGS.is_parsed():
    FLAGS(["wemem"])
  out = str(tmp_path / "run")
  with flagsaver.flagsaver(
      dataset="digits", output_dir=out, seed=1, num_shadows=2,
      prune_iterations=2, epochs_per_iteration=2, patience=1,
      pretrain_epochs=3, attacks="all", adaptive=True, target="pruned",
      attack_max_epochs=2, attack_patience=1):
    assert attack_cmd.main(["attack"]) == 0
  with open(os.path.join(out, "attacks.json")) as f:
    doc = json.load(f)
  assert 0 < doc["victim_test_accuracy"] <= 1
  assert [r["attack"] for r in doc["attacks"]] == registry.attack_names()
  for row in doc["attacks"]:
    assert REQUIRED_KEYS <= set(row), row["attack"]
    assert 0 <= row["balanced_accuracy"] <= 1 and 0 <= row["auc"] <= 1
    assert row["num_members"] > row["num_non_members"] > 0
  assert doc["num_shadows"] == 2 and doc["num_reference_models"] == 4
  assert doc["target"] == "pruned" and doc["adaptive"] is True
  assert len(doc["models"]["shadows"]) == 2
  assert "achieved an AUC" in doc["tf_privacy_summary"]
  with open(os.path.join(out, "attacks_roc.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  scores = np.load(os.path.join(out, "attack_scores.npz"))
  assert len(scores["conf_member_scores"]) == doc["attacks"][0]["num_members"]


def test_cli_unpruned_subset(tmp_path):
  if not FLAGS.is_parsed():
    FLAGS(["wemem"])
  out = str(tmp_path / "dense")
  with flagsaver.flagsaver(
      dataset="digits", output_dir=out, seed=0, num_shadows=1,
      pretrain_epochs=2, patience=1, attacks="hconf,gap", target="unpruned"):
    assert attack_cmd.main(["attack"]) == 0
  with open(os.path.join(out, "attacks.json")) as f:
    doc = json.load(f)
  assert [r["attack"] for r in doc["attacks"]] == ["hconf", "gap"]
  assert doc["target"] == "unpruned" and doc["num_reference_models"] == 0
  assert doc["defense"] == {"name": "none"}
  assert os.path.isfile(os.path.join(out, "attack_manifest.json"))
  assert "prune_epochs" not in doc["models"]["victim"]


def test_victim_defense_reaches_adaptive_attacker_only():
  if not FLAGS.is_parsed():
    FLAGS(["wemem"])
  defense = object()
  with flagsaver.flagsaver(adaptive=True):
    config = attack_cmd.config_from_flags(defense)
  assert config.recipe.defense is defense
  assert config.recipe.for_attacker(config.adaptive).defense is defense
  with flagsaver.flagsaver(adaptive=False, target="unpruned"):
    config = attack_cmd.config_from_flags(defense)
  assert config.recipe.for_attacker(config.adaptive).defense is None
  assert config.recipe.target == "unpruned"


def test_options_validation():
  with pytest.raises(ValueError, match="lira_variance"):
    base.AttackOptions(lira_variance="per-record")
  with pytest.raises(ValueError, match="dev_fraction"):
    base.AttackOptions(dev_fraction=1.0)
