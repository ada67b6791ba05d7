"""Attacks per pruning iteration: one entry per iteration, the last equal to
the ordinary experiment, both best attacks (victim-side max and the
report's attacker-side choice), store reuse, plots (digits, tiny
settings)."""

import copy
import json
import os

import numpy as np
import pytest

from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import privacy_report as tfp_report

from attacks import plotting
from attacks import privacy_report
import wemem_tf
from wemem_eval import experiment
from wemem_eval import iterations
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval import report as report_lib

PNG = b"\x89PNG\r\n\x1a\n"
ATTACKS = ("conf", "lira_online", "rmia", "gap")
COMPARED = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
            "tpr_at_1pct_fpr", "advantage", "threshold")


def _config(**recipe_changes):
  recipe = model_training.ModelRecipe(
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
  # The same tensorflow-privacy metadata: epoch_num is the final iteration
  # (num_iterations - 1) for the ordinary experiment too.
  assert ordinary.suite.metadata == final.suite.metadata
  assert ordinary.suite.metadata.epoch_num == 2


def test_both_best_attacks_per_iteration(per_iteration):
  result, _ = per_iteration
  doc = json.loads(json.dumps(result.to_json()))
  chosen = set()
  for it in doc["iterations"]:
    rows = it["attacks"]
    # The report's rows (calibration, intervals, estimability) ...
    assert {"calibration_balanced_accuracy", "intervals",
            "not_estimable"} <= set(rows["conf"])
    # ... and the report's choice functions on them.
    attacker_side = it["best_attack_attacker_side"]
    assert attacker_side == report_lib.attacker_side_best(rows)
    assert attacker_side["kind"] == report_lib.ATTACKER_SIDE
    victim_side = it["best_attack"]
    assert victim_side == report_lib.victim_side_best(rows)
    assert victim_side["kind"] == report_lib.VICTIM_SIDE
    # conf, LiRA and RMIA calibrate on the attacker's models.
    assert attacker_side["attack"] in ATTACKS
    row = rows[attacker_side["attack"]]
    assert attacker_side["balanced_accuracy"] == row["balanced_accuracy"]
    assert attacker_side["calibration_balanced_accuracy"] == max(
        r["calibration_balanced_accuracy"] for r in rows.values()
        if r["calibration_balanced_accuracy"] is not None)
    assert set(attacker_side["intervals"]) == {"balanced_accuracy", "auc"}
    # The victim-side max is an upper bound of the attacker's pick.
    assert (victim_side["balanced_accuracy"] >=
            attacker_side["balanced_accuracy"])
    chosen.add(attacker_side["attack"])
  assert chosen


def test_per_iteration_plot_draws_both_best_attacks(per_iteration, tmp_path):
  result, _ = per_iteration
  doc = json.loads(json.dumps(result.to_json()))
  path = tmp_path / "plots" / "attack_per_iteration.png"
  fig = plotting.plot_attack_per_iteration({"base": doc}, str(path))
  assert path.read_bytes()[:8] == PNG
  top = fig.axes[0]
  styles = {line.get_label(): line.get_linestyle() for line in top.lines}
  assert styles["base, victim-side max (optimistic)"] == "--"
  assert styles["base, attacker-side"] == "-"
  legend = [t.get_text() for t in top.get_legend().get_texts()]
  assert legend == ["base, victim-side max (optimistic)",
                    "base, attacker-side"]
  # Older documents (no attacker-side entry) and iterations without an
  # attacker-side choice still plot.
  old = copy.deepcopy(doc)
  for it in old["iterations"]:
    del it["best_attack_attacker_side"]
  none = copy.deepcopy(doc)
  none["iterations"][0]["best_attack_attacker_side"] = (
      report_lib.attacker_side_best({"gap": {"balanced_accuracy": 0.5,
                                             "auc": 0.5}}))
  fig = plotting.plot_attack_per_iteration({"old": old, "none": none},
                                           str(path))
  labels = [line.get_label() for line in fig.axes[0].lines]
  assert "old, attacker-side" not in labels
  assert "none, attacker-side" in labels


def test_tf_privacy_report_per_iteration(per_iteration, tmp_path):
  """Complete metadata (epoch_num = iteration); tensorflow-privacy's own
  plot_by_epochs runs on the results; saved and rebuilt, they are equal."""
  result, _ = per_iteration
  results = result.attack_results()
  doc = json.loads(json.dumps(result.to_json()))
  for k, (it, r) in enumerate(zip(result.iterations, results)):
    meta = r.privacy_report_metadata
    assert all(getattr(meta, f) is not None
               for f in privacy_report.METADATA_FIELDS)
    assert (meta.epoch_num, meta.model_variant_label) == (k, "base")
    assert meta.accuracy_train == it.victim.train_accuracy
    assert meta.accuracy_test == it.victim.test_accuracy
    assert 0 < meta.loss_train < meta.loss_test
    assert doc["iterations"][k]["privacy_report_metadata"] == (
        privacy_report.metadata_to_json(meta))
    assert [str(s.attack_type) for s in r.single_attack_results] == [
        a.upper() for a in ATTACKS]
  final = result.final_experiment().to_json()["privacy_report_metadata"]
  assert final == doc["iterations"][-1]["privacy_report_metadata"]
  with privacy_report._agg_pyplot() as plt:  # pylint: disable=protected-access
    fig = tfp_report.plot_by_epochs(
        tfp_ds.AttackResultsCollection(results), [tfp_ds.PrivacyMetric.AUC])
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(),
                                  [0, 1, 2])
    plt.close(fig)
  iterations.write_iterations_json(result, str(tmp_path / "iterations.json"))
  iterations.write_iteration_scores(
      result, str(tmp_path / "iteration_scores.npz"))
  loaded = privacy_report.load_iteration_results(str(tmp_path))
  for a, b in zip(results, loaded):
    assert a.privacy_report_metadata == b.privacy_report_metadata
    assert a.calculate_pd_dataframe().equals(b.calculate_pd_dataframe())


def test_store_is_reused_and_models_reload_equal(per_iteration, digits):
  result, store = per_iteration
  config = _config()
  hits = store.hits
  splits = wemem_tf.data.splits_for(digits, config.seed, num_shadows=1)
  again = model_training.train_model_iterations(
      digits, splits.victim, model_training.derived_seed(config.seed, 0, 0),
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


def test_unpruned_target_is_refused(digits):
  with pytest.raises(ValueError, match="target='pruned'"):
    iterations.run_per_iteration(digits, _config(target="unpruned"))


def test_report_includes_the_per_iteration_plot(per_iteration, tmp_path):
  result, _ = per_iteration
  run_dir = tmp_path / "run"
  folder = run_dir / "experiments" / "base"
  experiment.write_artifacts(result.final_experiment(), str(folder))
  iterations.write_iterations_json(result, str(folder / "iterations.json"))
  iterations.write_iteration_scores(result,
                                    str(folder / "iteration_scores.npz"))
  (folder / "step.json").write_text(json.dumps({"kind": "defense"}))
  wemem_tf.run_manifest.write_manifest(str(run_dir), 2, {"dataset": "digits"},
                                       "f" * 64)
  report = report_lib.write_report(str(run_dir), ["base"])
  its = report["defenses"]["base"]["attack_per_iteration"]
  assert [it["iteration"] for it in its] == [0, 1, 2]
  # The last iteration's rows and best attacks are the report's own.
  entry = report["defenses"]["base"]
  last = json.loads((folder / "iterations.json").read_text())[
      "iterations"][-1]
  assert last["attacks"] == entry["attacks"]
  assert last["best_attack"] == entry["best_attack"]
  assert (last["best_attack_attacker_side"] ==
          entry["best_attack_attacker_side"])
  plot = run_dir / "plots" / "attack_per_iteration.png"
  assert plot.read_bytes()[:8] == PNG
  text = (run_dir / "report.md").read_text()
  assert "Best attack per pruning iteration" in text
  # tensorflow-privacy's report, from the saved JSON and scores.
  for name in ("privacy_vs_accuracy.png", "privacy_report.png"):
    assert (run_dir / "plots" / name).read_bytes()[:8] == PNG
    assert f"plots/{name}" in text
  final, by_iteration = report_lib.privacy_report_results(str(run_dir),
                                                          ["base"])
  assert final["base"].privacy_report_metadata == (
      by_iteration["base"][-1].privacy_report_metadata)
  assert [r.privacy_report_metadata.epoch_num
          for r in by_iteration["base"]] == [0, 1, 2]
  # Without iterations.json: no such plots, no such key.
  os.remove(folder / "iterations.json")
  for name in ("attack_per_iteration.png", "privacy_report.png",
               "privacy_vs_accuracy.png"):
    os.remove(run_dir / "plots" / name)
  report = report_lib.write_report(str(run_dir), ["base"])
  assert "attack_per_iteration" not in report["defenses"]["base"]
  assert not (run_dir / "plots" / "attack_per_iteration.png").exists()
  assert not (run_dir / "plots" / "privacy_report.png").exists()
  assert (run_dir / "plots" / "privacy_vs_accuracy.png").exists()
  assert "privacy_report.png" not in (run_dir / "report.md").read_text()
