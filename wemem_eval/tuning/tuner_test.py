"""The defense tuner: space, real trials, failures, resume, chief/worker.

Search-mechanics tests use a cheap known evaluation function (a smooth
formula of the settings) so they test KerasTuner integration, not training;
one test runs real trials end to end on a tiny digits configuration.
"""

import dataclasses
import glob
import io
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import wemem_tf  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
import keras_tuner as kt  # pylint: disable=g-bad-import-order
import tensorflow as tf  # pylint: disable=g-bad-import-order
from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=g-bad-import-order

from attacks import base
from attacks import reference_design
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval.tuning import objective as objective_lib
from wemem_eval.tuning import tuner as tuner_lib
from wemem_tf import defenses as defenses_lib
from wemem_tf import memorization
from wemem_tf import progress
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.pruning import iterative
from wemem_tf.pruning import summaries
from wemem_tf.training import loop as loop_lib

TINY_RECIPE = model_training.ModelRecipe(
    architecture="column_fc",
    pruning_config=iterative.PruningConfig(0.5, 2, epochs_per_iteration=2,
                                           patience=2),
    train_config=loop_lib.TrainConfig(max_epochs=2, patience=2))
OBJECTIVE = objective_lib.TuningObjective("constrained", attack_target=0.7)


def _setup(**kwargs) -> tuner_lib.TuningSetup:
  return tuner_lib.TuningSetup(datasets.load_dataset("digits"), TINY_RECIPE,
                               seed=0, attacks=("conf", "gap"), num_shadows=1,
                               **kwargs)


def test_scaled_rehearsal_and_scaled_windows():
  setup = _setup()
  assert setup.rehearsal_kind == "scaled" and setup.reference_inclusion == 0.5
  assert 0.4 < setup.scale < 0.6
  victim = np.concatenate([setup.splits.victim.train, setup.splits.victim.dev,
                           setup.splits.victim.test])
  rehearsal = setup.rehearsal
  assert not np.intersect1d(np.concatenate(
      [rehearsal.victim.train, rehearsal.victim.test,
       rehearsal.shadow_pool]), victim).size
  rsw = defenses_lib.build("rsw", "location", None, order="l2h", stride=2,
                           width=15)
  half = defenses_lib.scaled_window(rsw, 0.5)
  assert (half.stride, half.width, half.order) == (1.0, 7.5, rsw.order)
  assert (rsw.stride, rsw.width) == (2, 15)  # the original is unchanged
  assert defenses_lib.scaled_window(rsw, 1.0) is rsw
  rmr = defenses_lib.build("rmr", "location", None, lambda_mem=0.1, tau=0.5)
  assert defenses_lib.scaled_window(rmr, 0.5) is rmr  # nothing per class
  for bad in (0.0, -0.5, float("nan")):
    with pytest.raises(ValueError, match="scale"):
      defenses_lib.scaled_window(rsw, bad)
  with pytest.raises(ValueError, match="rehearsal_kind"):
    _setup(rehearsal_kind="mirror")


def test_held_out_rehearsal_reference_models_match_the_targets_size():
  setup = _setup(rehearsal_kind="held_out")
  assert setup.scale == 1.0
  pool = np.union1d(reference_design.target_records(setup.rehearsal),
                    setup.rehearsal.shadow_pool).size
  target = setup.rehearsal.victim.train.size
  assert setup.reference_inclusion > 0.5
  assert abs(setup.reference_inclusion * pool - target) <= 0.05 * target
  k = round(setup.reference_inclusion * setup.num_reference_models)
  assert setup.num_reference_models - k >= 2  # OUT models per record
  halves = _setup(rehearsal_kind="held_out", reference_inclusion=0.5)
  assert halves.num_reference_models == 0  # the experiment's default count


def known_evaluate(setup, choice):
  """Known answers: rmr fails; a wider window leaks more, uses more data."""
  del setup
  if choice.name == "rmr":
    raise ValueError("rmr is broken in this test")
  width = choice.settings.get("width", 30)
  return objective_lib.TrialMetrics.from_attacks(
      dev_accuracy=0.5 + width / 200.0,
      attacks={"conf": 0.55 + width / 150.0, "gap": 0.55},
      rehearsal_test_accuracy=0.5, defense_seconds=0.1)


def _tuner(directory, max_trials, evaluate=known_evaluate, overwrite=False,
           methods=("rsw", "rmr"), oracle="random", space=None):
  space = space or tuner_lib.SearchSpace.for_dataset("digits",
                                                     methods=methods)
  return tuner_lib.DefenseTuner(
      tuner_lib.make_oracle(oracle, max_trials, seed=3,
                            max_consecutive_failed_trials=50),
      _setup(), OBJECTIVE, space, directory=str(directory),
      overwrite=overwrite, evaluate_fn=evaluate)


def test_search_space_is_conditional_on_the_method():
  model = tuner_lib.DefenseHyperModel(tuner_lib.SearchSpace(
      methods=("rsw", "rmr", "swmr", "hamp")))
  for method, expected in [
      ("rsw", {"order", "stride", "width"}),
      ("rmr", {"tau", "tau_share", "lambda_mem"}),
      ("swmr", {"order", "stride", "width", "tau", "tau_share",
                "lambda_mem"}),
      ("hamp", {"entropy_threshold", "alpha"})]:
    hp = kt.HyperParameters()
    hp.values["method"] = method
    choice = model.build(hp)
    assert choice.name == method
    assert set(choice.settings) == expected
  with pytest.raises(ValueError, match="methods"):
    tuner_lib.SearchSpace(methods=("magic",))
  with pytest.raises(ValueError, match="width"):
    tuner_lib.SearchSpace(width=(10, 5))
  assert tuner_lib.SearchSpace.for_dataset("cifar10").width == (100, 2000)
  # The 5,000-image subset (180 victim records per class): scaled by 0.08,
  # like its presets, which stay inside.
  subset = tuner_lib.SearchSpace.for_dataset("cifar10", records_per_class=180)
  assert (subset.stride, subset.width, subset.width_step) == (
      (1, 16), (8, 160), 8)
  for choice in tuner_lib.preset_choices("cifar10", ("rsw", "swmr"), 180):
    assert subset.stride[0] <= choice.settings["stride"] <= subset.stride[1]
    assert subset.width[0] <= choice.settings["width"] <= subset.width[1]


def test_range_overrides_narrow_the_space():
  ranges = tuner_lib.parse_ranges(["stride=1:2", "width=5:30",
                                   "lambda_mem=0.01:0.3"])
  assert ranges == {"stride": (1, 2), "width": (5, 30),
                    "lambda_mem": (0.01, 0.3)}
  assert isinstance(ranges["stride"][0], int)
  space = tuner_lib.SearchSpace.for_dataset("cifar10", **ranges)
  assert space.stride == (1, 2) and space.width == (5, 30)  # user wins
  assert space.tau_share == tuner_lib.SearchSpace().tau_share
  hp = kt.HyperParameters()
  hp.values["method"] = "rsw"
  model = tuner_lib.DefenseHyperModel(space)
  model.build(hp)
  declared = {h.name: h for h in hp.space}
  assert (declared["stride"].min_value, declared["stride"].max_value) == (1, 2)
  assert (declared["width"].min_value, declared["width"].max_value) == (5, 30)
  for bad, message in [("depth=1:2", "NAME one of"), ("stride=1", "LOW:HIGH"),
                       ("stride=1.5:2", "integers"), ("width", "NAME=LOW"),
                       ("tau_share=0.1:x", "numbers")]:
    with pytest.raises(ValueError, match=message):
      tuner_lib.parse_ranges([bad])
  with pytest.raises(ValueError, match="twice"):
    tuner_lib.parse_ranges(["width=5:10", "width=5:20"])
  with pytest.raises(ValueError, match="stride"):
    tuner_lib.SearchSpace(**tuner_lib.parse_ranges(["stride=2:1"]))


def test_bayesian_oracle_never_repeats_a_measured_setting(tmp_path,
                                                         monkeypatch):
  """Seeded trials measure the same numbers again, so a repeat is wasted.
  KerasTuner's own Bayesian oracle keeps proposing the optimum it found on
  integer settings; ours draws untried settings instead."""
  space = tuner_lib.SearchSpace(methods=("rsw",), stride=(1, 2),
                                width=(5, 30))  # 2 x 2 x 6 = 24 settings
  tuner = _tuner(tmp_path, 8, oracle="bayesian", space=space)
  tuner.search()
  settings = [tuple(sorted(r.choice["settings"].items()))
              for r in tuner_lib.trial_rows(tuner)]
  assert len(settings) == 8 and len(set(settings)) == 8
  # The Gaussian process proposing a measured setting again: replaced.
  oracle = tuner.oracle
  measured = dict(tuner_lib.trial_rows(tuner)[-1].choice["settings"],
                  method="rsw")
  monkeypatch.setattr(
      kt.oracles.BayesianOptimizationOracle, "populate_space",
      lambda self, trial_id: {"status": "RUNNING", "values": dict(measured)})
  proposal = oracle.populate_space("99")
  assert proposal["status"] == "RUNNING"
  assert proposal["values"] != measured
  assert not oracle._tried(proposal["values"])  # pylint: disable=protected-access
  fresh = next(dict(measured, width=w) for w in range(5, 35, 5)
               if not oracle._tried(dict(measured, width=w)))  # pylint: disable=protected-access
  monkeypatch.setattr(
      kt.oracles.BayesianOptimizationOracle, "populate_space",
      lambda self, trial_id: {"status": "RUNNING", "values": dict(fresh)})
  assert oracle.populate_space("99")["values"] == fresh  # kept as is


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
  tuner = _tuner(tmp_path, max_trials=8)
  tuner.search()
  rows = tuner_lib.trial_rows(tuner)
  assert len(rows) == 8
  failed = [r for r in rows if r.status == "FAILED"]
  done = [r for r in rows if r.status == "COMPLETED"]
  assert failed and done
  assert all(r.choice["name"] == "rmr" for r in failed)
  assert all("rmr is broken" in r.error for r in failed)
  for r in done:  # the recorded score is the objective's formula
    m = r.metrics
    assert r.score == pytest.approx(OBJECTIVE.score(m["dev_accuracy"],
                                                    m["attack_accuracy"]))
  best = tuner_lib.best_row(rows)
  assert best.score == max(r.score for r in done)
  # Feasible = attack <= 0.7 <=> width <= 22.5; the best feasible trial has
  # the widest such window.
  feasible = [r for r in done if r.metrics["attack_accuracy"] <= 0.7]
  if feasible:
    assert best.choice["settings"]["width"] == max(
        r.choice["settings"]["width"] for r in feasible)
  paths = tuner_lib.write_trials(rows, OBJECTIVE, str(tmp_path))
  table = open(paths["md"]).read()
  assert table.count("FAILED") == len(failed)
  assert len(json.load(open(paths["json"]))["trials"]) == 8


def test_presets_are_measured_like_trials_and_cached(tmp_path):
  setup = tuner_lib.TuningSetup(
      dataclasses.replace(datasets.load_dataset("digits"), name="location"),
      TINY_RECIPE, seed=0, attacks=("conf",), num_shadows=1)
  choices = tuner_lib.preset_choices("location", ("rsw", "swmr", "ppb"))
  assert [c.name for c in choices] == ["rsw", "swmr"]  # ppb has no preset
  assert choices[0].settings == {"order": "l2h", "stride": 1, "width": 15}
  calls = []
  evaluate = lambda s, c: calls.append(c) or known_evaluate(s, c)
  path = str(tmp_path / "presets.json")
  rows = tuner_lib.evaluate_presets(setup, ("rsw", "swmr"), OBJECTIVE, path,
                                    evaluate)
  assert [r.trial_id for r in rows] == ["preset:rsw", "preset:swmr"]
  assert rows[0].metrics["dev_accuracy"] == pytest.approx(0.5 + 15 / 200)
  again = tuner_lib.evaluate_presets(setup, ("rsw", "swmr"), OBJECTIVE, path,
                                     evaluate)
  assert len(calls) == 2 and again == rows
  # A rerun with another objective rescores the cached measurements.
  other = objective_lib.TuningObjective("weighted", weight=2.0)
  rescored = tuner_lib.evaluate_presets(setup, ("rsw", "swmr"), other, path,
                                        evaluate)
  assert len(calls) == 2
  m = rescored[0].metrics
  assert m["score"] == pytest.approx(other.score(m["dev_accuracy"],
                                                 m["attack_accuracy"]))
  assert m["score"] != rows[0].metrics["score"]
  table = tuner_lib.trials_markdown([], OBJECTIVE, rows)
  assert "| preset:rsw | COMPLETED | rsw order=l2h stride=1 width=15 |" in table


def test_ties_go_to_the_more_private_setting():
  def row(trial_id, dev, attack):
    return tuner_lib.TrialRow(
        trial_id, "CONFIRMED", {"name": "rsw", "settings": {}},
        {"score": OBJECTIVE.score(dev, attack), "dev_accuracy": dev,
         "attack_accuracy": attack}, None, None)
  # Same dev accuracy, both under the 0.7 target: the same score.
  rows = [row("first", 0.64, 0.69), row("second", 0.64, 0.66),
          row("worse", 0.60, 0.50)]
  assert rows[0].score == rows[1].score
  assert tuner_lib.best_row(rows).trial_id == "second"
  assert [r.trial_id for r in tuner_lib.top_rows(
      [dataclasses.replace(r, status="COMPLETED") for r in rows], 3)] == [
          "second", "first", "worse"]


def test_confirmation_undoes_a_lucky_measurement(tmp_path):
  """Trial "lucky" measured 0.60 once (stream 0) but really leaks 0.80;
  "steady" leaks 0.68 everywhere. The search alone would keep "lucky";
  confirmation on two more held-out shadows keeps "steady"."""
  truth = {5: 0.80, 20: 0.68}

  def evaluate(setup, choice):
    width = choice.settings["width"]
    return objective_lib.TrialMetrics.from_attacks(
        0.6, {"conf": truth[width]}, 0.5, 0.1)

  def row(trial_id, width, measured):
    return tuner_lib.TrialRow(
        trial_id, "COMPLETED", {"name": "rsw", "settings": {"width": width}},
        {"score": OBJECTIVE.score(0.6, measured), "dev_accuracy": 0.6,
         "attack_accuracy": measured}, 1.0, None)

  rows = [row("lucky", 5, 0.60), row("steady", 20, 0.68)]
  assert tuner_lib.best_row(rows).trial_id == "lucky"
  assert [r.trial_id for r in tuner_lib.top_rows(rows, 1)] == ["lucky"]
  setup = _setup()
  path = str(tmp_path / "confirm.json")
  calls = []
  counted = lambda s, c: calls.append(s.rehearsal_stream) or evaluate(s, c)
  confirmed = tuner_lib.confirm(setup, rows, 2, OBJECTIVE, path, counted)
  assert sorted(calls) == [1, 1, 2, 2]
  by_id = {r.trial_id: r for r in confirmed}
  assert by_id["lucky"].metrics["attack_accuracy"] == pytest.approx(
      (0.60 + 0.80 + 0.80) / 3)  # 0.733: infeasible
  assert by_id["steady"].metrics["attack_accuracy"] == pytest.approx(0.68)
  assert tuner_lib.best_row(confirmed).trial_id == "steady"
  # With several rehearsals per trial, confirmation uses the next blocks.
  blocks = []
  tuner_lib.confirm(_setup(rehearsals_per_trial=2, rehearsal_stream=1),
                    rows[:1], 2, OBJECTIVE, str(tmp_path / "c2.json"),
                    lambda s, c: blocks.append(
                        [len(s.rehearsals), s.rehearsal_stream])
                    or evaluate(s, c))
  assert blocks == [[2, 3], [2, 5]]
  # Cached: a rerun measures nothing.
  tuner_lib.confirm(setup, rows, 2, OBJECTIVE, path, counted)
  assert len(calls) == 4
  # Other streams are other held-out shadows.
  other = dataclasses.replace(setup, rehearsal_stream=1)
  assert not np.array_equal(other.rehearsal.victim.train,
                            setup.rehearsal.victim.train)
  table = tuner_lib.write_trials(rows, OBJECTIVE, str(tmp_path),
                                 confirmed=confirmed)["md"]
  assert "Confirmation: mean of 3 measurements" in open(table).read()


class _Interrupt(BaseException):
  pass


def test_an_interrupted_search_resumes_without_redoing_trials(tmp_path):
  calls = []

  def interrupted_at_third(setup, choice):
    calls.append(choice)
    if len(calls) == 3:
      raise _Interrupt()
    return known_evaluate(setup, choice)

  with pytest.raises(_Interrupt):
    _tuner(tmp_path, 5, interrupted_at_third, methods=("rsw",)).search()
  assert len(calls) == 3
  resumed = []

  def counting(setup, choice):
    resumed.append(choice)
    return known_evaluate(setup, choice)

  tuner = _tuner(tmp_path, 5, counting, methods=("rsw",))
  with progress.drawn_to(io.StringIO()) as stream:
    tuner.search()
  # The bar starts at the two finished trials and counts the other three.
  assert "tuning trials" in stream.getvalue()
  assert "2/5" in stream.getvalue() and "5/5" in stream.getvalue()
  rows = tuner_lib.trial_rows(tuner)
  assert [r.status for r in rows] == ["COMPLETED"] * 5
  # Two trials were done before the interruption; the interrupted one and
  # the last two remain.
  assert len(resumed) == 3
  assert resumed[0] == calls[2]  # the interrupted trial is re-run as is
  # overwrite=True starts afresh.
  fresh = []
  _tuner(tmp_path, 2, lambda s, c: fresh.append(c) or known_evaluate(s, c),
         overwrite=True, methods=("rsw",)).search()
  assert len(fresh) == 2


def test_real_trials_never_read_the_victims_test_records(tmp_path):
  """End to end: real pruning and attacks. Scrambling the victim's test
  records (features and labels) must not change any trial metric, given the
  protocol's splits (fixed once per study: stratified splits depend on
  every record's label)."""
  dataset = datasets.load_dataset("digits")
  n = len(dataset)
  scores = memorization.MemScores(  # any fixed scores do for this test
      np.random.default_rng(1).uniform(0, 1, n), np.arange(n),
      dataset.fingerprint, np.full(n, -1), np.full(n, -1), method="test")
  store = model_store.ModelStore(str(tmp_path / "models"),
                                 kinds=("pretrained",))
  setup = tuner_lib.TuningSetup(dataset, TINY_RECIPE, seed=0,
                                attacks=("conf", "gap", "rmia"),
                                num_shadows=1, num_reference_models=2,
                                options=base.AttackOptions(max_epochs=2),
                                scores_fn=lambda: scores, store=store)
  choice = tuner_lib.DefenseChoice("swmr", dict(
      order="h2l", stride=1, width=20, tau=None, tau_share=0.2,
      lambda_mem=0.1))
  first = tuner_lib.evaluate_choice(setup, choice)
  assert 0.0 <= first.dev_accuracy <= 1.0
  assert set(first.attacks) == {"conf", "gap", "rmia"}
  assert first.attack_accuracy == max(first.attacks.values())
  assert store.misses > 0 and not any(
      n.startswith("pruned") for n in os.listdir(store.root))

  test = setup.splits.victim.test
  rng = np.random.default_rng(0)
  x, y = dataset.x.copy(), dataset.y.copy()
  x[test] = rng.permutation(x)[:len(test)]
  y[test] = rng.integers(0, dataset.num_classes, len(test))
  scrambled = dataclasses.replace(dataset, x=x, y=y)  # same fingerprint
  hits = store.hits
  again = tuner_lib.evaluate_choice(
      dataclasses.replace(setup, dataset=scrambled,
                          protocol_splits=setup.splits), choice)
  assert store.hits > hits  # pre-trained models came from the cache
  untimed = lambda m: dataclasses.replace(m, defense_seconds=0.0)
  assert untimed(again) == untimed(first)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_chief_and_worker_processes(tmp_path):
  """KerasTuner's distributed mode: a chief serves the oracle, a worker
  runs the trials; both are separate processes on this machine."""
  port = str(_free_port())
  env = dict(os.environ, KERASTUNER_ORACLE_IP="127.0.0.1",
             KERASTUNER_ORACLE_PORT=port)
  command = [sys.executable, "-m", "wemem_eval.tuning.tuner_test",
             str(tmp_path)]
  chief = subprocess.Popen(command, env=dict(env, KERASTUNER_TUNER_ID="chief"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  worker = subprocess.run(command, env=dict(env, KERASTUNER_TUNER_ID="tuner0"),
                          capture_output=True, text=True, timeout=300)
  chief_out = chief.communicate(timeout=120)[0].decode()
  assert worker.returncode == 0, worker.stderr[-3000:]
  assert chief.returncode == 0, chief_out[-3000:]
  result = json.load(open(tmp_path / "result.json"))
  assert result["completed"] == 3
  assert result["tuner_ids"] == ["tuner0"]


def _distributed_main(directory: str) -> None:
  """One process of the chief/worker test (role from KERASTUNER_TUNER_ID)."""
  tuner = _tuner(directory, 3, methods=("rsw",))
  tuner.search()
  if tuner._is_worker():  # pylint: disable=protected-access
    return
  rows = tuner_lib.trial_rows(tuner)
  tuner_ids = set()
  for r in rows:
    with open(os.path.join(tuner.get_trial_dir(r.trial_id),
                           tuner_lib.TRIAL_FILE)) as f:
      tuner_ids.add(json.load(f)["tuner_id"])
  with open(os.path.join(directory, "result.json"), "w") as f:
    json.dump({"completed": sum(r.status == "COMPLETED" for r in rows),
               "tuner_ids": sorted(tuner_ids)}, f)


if __name__ == "__main__":
  _distributed_main(sys.argv[1])


def _hparams_records(log_dir):
  """(experiment, {trial_id: hparams}) of the hparams plugin's records in
  `log_dir` (not its subfolders)."""
  experiment, sessions = None, {}
  for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
    for raw in tf.data.TFRecordDataset(path):
      for value in tf.compat.v1.Event.FromString(raw.numpy()).summary.value:
        if value.metadata.plugin_data.plugin_name != "hparams":
          continue
        data = plugin_data_pb2.HParamsPluginData.FromString(
            value.metadata.plugin_data.content)
        if data.HasField("experiment"):
          experiment = data.experiment
        if data.HasField("session_start_info"):
          info = data.session_start_info
          sessions[info.group_name] = {
              k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
              for k, v in info.hparams.items()}
  return experiment, sessions


def test_trials_are_written_for_the_tensorboard_hparams_plugin(tmp_path):
  space = tuner_lib.SearchSpace.for_dataset("digits", methods=("rsw", "rmr"))
  tb = tmp_path / "tb"
  tuner = tuner_lib.DefenseTuner(
      tuner_lib.make_oracle("random", 6, seed=3,
                            max_consecutive_failed_trials=50),
      _setup(), OBJECTIVE, space, directory=str(tmp_path / "search"),
      evaluate_fn=known_evaluate, tensorboard_dir=str(tb))
  tuner.search()
  rows = tuner_lib.trial_rows(tuner)
  experiment, _ = _hparams_records(str(tb))
  names = {h.name for h in experiment.hparam_infos}
  assert {"method", "order", "stride", "width", "tau_share",
          "lambda_mem"} <= names
  method = next(h for h in experiment.hparam_infos if h.name == "method")
  assert {v.string_value for v in method.domain_discrete.values} == {
      "rsw", "rmr"}
  assert [m.name.tag for m in experiment.metric_infos] == [
      "score", "dev_accuracy", "attack_accuracy", "rehearsal_test_accuracy",
      "defense_seconds", "attack_conf", "attack_gap"]
  assert {r.status for r in rows} == {"COMPLETED", "FAILED"}
  for row in rows:
    folder = str(tb / f"trial_{row.trial_id}")
    _, sessions = _hparams_records(folder)
    (hparams,) = sessions.values()
    assert hparams["method"] == row.choice["name"]
    scalars = summaries.read_scalars(folder)
    if row.status == "FAILED":
      assert not scalars
      continue
    assert hparams["width"] == row.choice["settings"]["width"]
    assert "tau_share" not in hparams  # inactive for rsw
    for tag in [m.name.tag for m in experiment.metric_infos]:
      assert scalars[tag] == {0: pytest.approx(row.metrics[tag])}, tag

  # KerasTuner's way: a TensorBoard callback given to search.
  other = tuner_lib.DefenseTuner(
      tuner_lib.make_oracle("random", 1, seed=4), _setup(), OBJECTIVE,
      tuner_lib.SearchSpace.for_dataset("digits", methods=("rsw",)),
      directory=str(tmp_path / "other"), evaluate_fn=known_evaluate)
  other.search(callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "kt"))])
  (trial_id,) = other.oracle.trials
  assert _hparams_records(str(tmp_path / "kt"))[0] is not None
  assert "score" in summaries.read_scalars(
      str(tmp_path / "kt" / f"trial_{trial_id}"))
