"""End-to-end tests of `wemem attack` on digits with tiny settings (few
epochs, 1-2 shadows)."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np

from attacks import privacy_report
from attacks import registry
from wemem_cli import attack_cmd

FLAGS = flags.FLAGS
PNG = b"\x89PNG\r\n\x1a\n"
REQUIRED_KEYS = {"attack", "balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                 "tpr_at_1pct_fpr", "advantage", "seconds"}


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
  assert config.variant_label() == "unpruned"
  with flagsaver.flagsaver(target="pruned", defense="swmr"):
    assert attack_cmd.config_from_flags(defense).variant_label() == "swmr"


def test_cli_per_iteration_flag(tmp_path):
  if not FLAGS.is_parsed():
    FLAGS(["wemem"])
  out = tmp_path / "attack"
  with flagsaver.flagsaver(
      dataset="digits", output_dir=str(out), seed=1, num_shadows=1,
      prune_iterations=2, epochs_per_iteration=1, patience=1,
      pretrain_epochs=2, attacks="hconf,gap", target="pruned",
      per_iteration=True, model_store_dir=str(tmp_path / "models")):
    assert attack_cmd.main(["attack"]) == 0
  doc = json.loads((out / "iterations.json").read_text())
  assert [it["iteration"] for it in doc["iterations"]] == [0, 1]
  final = json.loads((out / "attacks.json").read_text())
  assert [r["balanced_accuracy"] for r in final["attacks"]] == [
      doc["iterations"][-1]["attacks"][a]["balanced_accuracy"]
      for a in ("hconf", "gap")]
  assert (out / "plots" / "attack_per_iteration.png").read_bytes()[:8] == PNG
  # tensorflow-privacy's plot_by_epochs over the iterations, and what it
  # is rebuilt from (epoch_num = iteration; the final one's is the last).
  assert (out / "plots" / "privacy_report.png").read_bytes()[:8] == PNG
  results = privacy_report.load_iteration_results(str(out))
  assert [r.privacy_report_metadata.epoch_num for r in results] == [0, 1]
  assert {r.privacy_report_metadata.model_variant_label
          for r in results} == {"base"}
  assert final["privacy_report_metadata"] == (
      doc["iterations"][-1]["privacy_report_metadata"])
  assert final["privacy_report_metadata"]["epoch_num"] == 1
  # Victim and shadow: pre-trained, iteration 0, final; .npz + .json each.
  assert len(os.listdir(tmp_path / "models")) == 2 * 3 * 2
