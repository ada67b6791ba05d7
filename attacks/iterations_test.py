"""Attacks per pruning iteration: one entry per iteration, the last equal to
the ordinary experiment, store reuse, plots (digits, tiny settings)."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

import wemem_tf
from attacks import experiment
from attacks import iterations
from attacks import model_store
from attacks import report as report_lib
from attacks import shadows as shadows_lib
from wemem_cli import attack_cmd

FLAGS = flags.FLAGS
PNG = b"\x89PNG\r\n\x1a\n"
ATTACKS = ("conf", "lira_online", "rmia", "gap")
COMPARED = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
            "tpr_at_1pct_fpr", "advantage", "threshold")


def _config(**recipe_changes):
  recipe = shadows_lib.ModelRecipe(
      architecture="column_fc",
      pruning_config=wemem_tf.PruningConfig(
          target_sparsity=0.6, num_iterations=3, epochs_per_iteration=2,
          patience=1),
      train_config=wemem_tf.TrainConfig(max_epochs=2, patience=1),
      **recipe_changes)
  return experiment.ExperimentConfig(recipe=recipe, attacks=ATTACKS,
                                     num_shadows=1, seed=2)


@pytest.fixture(scope="module")
def digits():
  return wemem_tf.data.load_dataset("digits")


@pytest.fixture(scope="module")
def per_iteration(digits, tmp_path_factory):
  store = model_store.ModelStore(str(tmp_path_factory.mktemp("models")))
  return iterations.run_per_iteration(digits, _config(), store), store


def test_one_entry_per_iteration(per_iteration):
  result, store = per_iteration
  doc = json.loads(json.dumps(result.to_json()))  # JSON-ready
  its = doc["iterations"]
  assert [it["iteration"] for it in its] == [0, 1, 2]
  np.testing.assert_allclose([it["target_sparsity"] for it in its],
                             [0.0, 1 - 0.4**0.5, 0.6])
  assert its[0]["layer_sparsity"]["fc1"] == 0.0
  assert its[2]["layer_sparsity"]["fc1"] == pytest.approx(0.6, abs=0.01)
  for it in its:
    assert list(it["attacks"]) == list(ATTACKS)
    best = max(it["attacks"].values(), key=lambda r: r["balanced_accuracy"])
    assert it["best_attack"]["balanced_accuracy"] == best["balanced_accuracy"]
    assert 0 < it["victim_test_accuracy"] <= 1
  assert doc["num_shadows"] == 1 and doc["num_reference_models"] == 4
  # 6 models: pre-trained, 2 intermediate and the final pruned one each.
  assert store.misses == 6 * 4 and store.hits == 0
  # The models differ between iterations (pruning changes them).
  victims = [it.victim.model.get_weights()[0] for it in result.iterations]
  assert not np.array_equal(victims[0], victims[2])
  assert np.mean(victims[2] == 0) > np.mean(victims[0] == 0)


def test_last_iteration_equals_the_ordinary_experiment(per_iteration, digits):
  result, _ = per_iteration
  ordinary = experiment.run_experiment(digits, _config())  # no store: retrains
  final = result.final_experiment()
  for a, b in zip(ordinary.victim.model.get_weights(),
                  final.victim.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  rows = {r["attack"]: r for r in ordinary.to_json()["attacks"]}
  last = result.to_json()["iterations"][-1]
  assert last["victim_test_accuracy"] == ordinary.victim.test_accuracy
  for name in ATTACKS:
    for metric in COMPARED[:-1]:
      assert last["attacks"][name][metric] == rows[name][metric], (name,
                                                                   metric)
  for r in final.to_json()["attacks"]:
    for metric in COMPARED:
      assert r[metric] == rows[r["attack"]][metric], (r["attack"], metric)


def test_store_is_reused_and_models_reload_equal(per_iteration, digits):
  result, store = per_iteration
  config = _config()
  hits = store.hits
  splits = wemem_tf.data.splits_for(digits, config.seed, num_shadows=1)
  again = iterations.train_model_iterations(
      digits, splits.victim, shadows_lib.derived_seed(config.seed, 0, 0),
      config.recipe, store)
  assert store.hits == hits + 4
  for k, model in enumerate(again):
    for a, b in zip(model.model.get_weights(),
                    result.iterations[k].victim.model.get_weights()):
      np.testing.assert_array_equal(a, b)
  names = os.listdir(store.root)
  assert sum(n.startswith("pruned-it0-") and n.endswith(".npz")
             for n in names) == 6
  assert sum(n.startswith("pruned-it2-") for n in names) == 0  # = "pruned"


@pytest.mark.parametrize("restore_best", [True, False])
def test_hook_copies_each_checkpoint_and_changes_nothing(digits, restore_best):
  split = wemem_tf.data.splits_for(digits, 0, num_shadows=0).victim
  recipe = shadows_lib.ModelRecipe(
      pruning_config=wemem_tf.PruningConfig(
          target_sparsity=0.5, num_iterations=2, epochs_per_iteration=3,
          patience=1, restore_best_weights=restore_best),
      train_config=wemem_tf.TrainConfig(max_epochs=1, patience=1))
  # pylint: disable=protected-access
  pretrained, _ = shadows_lib._pretrain(digits, split, 0, recipe)
  plain = wemem_tf.pretrain_and_prune(
      digits, split, 0, pruning_config=recipe.pruning_config,
      train_config=recipe.train_config, pretrained=pretrained)
  staged = iterations._prune_each_iteration(digits, split, 0, recipe,
                                            pretrained)
  # pylint: enable=protected-access
  assert len(staged) == 2
  for a, b in zip(plain.pruned.get_weights(), staged[-1][0].get_weights()):
    np.testing.assert_array_equal(a, b)
  no_seconds = lambda h: {k: v for k, v in h.items() if k != "seconds"}
  assert [no_seconds(h.to_json()) for h in plain.history] == [
      no_seconds(h) for h in staged[-1][1]["history"]]
  x, y = digits.take(split.test)
  for k, (model, facts) in enumerate(staged):
    record = facts["history"][-1]
    assert record["iteration"] == k
    # The copy is the checkpoint the iteration was evaluated at.
    assert wemem_tf.pruning.layer_sparsity(model) == record["layer_sparsity"]
    accuracy = np.mean(np.argmax(model(x, training=False).numpy(), 1) == y)
    assert accuracy == pytest.approx(record["test_accuracy"], abs=1e-9)


def test_unpruned_target_is_refused(digits):
  with pytest.raises(ValueError, match="target='pruned'"):
    iterations.run_per_iteration(digits, _config(target="unpruned"))


def test_report_includes_the_per_iteration_plot(per_iteration, tmp_path):
  result, _ = per_iteration
  run_dir = tmp_path / "run"
  folder = run_dir / "experiments" / "base"
  experiment.write_artifacts(result.final_experiment(), str(folder))
  iterations.write_iterations_json(result, str(folder / "iterations.json"))
  (folder / "step.json").write_text(json.dumps({"kind": "defense"}))
  wemem_tf.run_manifest.write_manifest(str(run_dir), 2, {"dataset": "digits"},
                                       "f" * 64)
  report = report_lib.write_report(str(run_dir), ["base"])
  its = report["defenses"]["base"]["attack_per_iteration"]
  assert [it["iteration"] for it in its] == [0, 1, 2]
  plot = run_dir / "plots" / "attack_per_iteration.png"
  assert plot.read_bytes()[:8] == PNG
  assert "Best attack per pruning iteration" in (run_dir /
                                                  "report.md").read_text()
  # Without iterations.json: no such plot, no such key.
  os.remove(folder / "iterations.json")
  os.remove(run_dir / "plots" / "attack_per_iteration.png")
  report = report_lib.write_report(str(run_dir), ["base"])
  assert "attack_per_iteration" not in report["defenses"]["base"]
  assert not (run_dir / "plots" / "attack_per_iteration.png").exists()


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
  # Victim and shadow: pre-trained, iteration 0, final; .npz + .json each.
  assert len(os.listdir(tmp_path / "models")) == 2 * 3 * 2
