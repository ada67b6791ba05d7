"""The resumable run: caching, resume after kill -9, report."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from attacks import base
from wemem_eval import report as report_lib
from wemem_eval import run as run_lib
from wemem_tf.data import splits as splits_lib
from wemem_tf.pruning import iterative
from wemem_tf.pruning import summaries
from wemem_tf.training import loop as loop_lib

TINY = dict(
    dataset="digits", seed=1,
    pruning=iterative.PruningConfig(0.6, 3, epochs_per_iteration=2,
                                    patience=2),
    training=loop_lib.TrainConfig(max_epochs=3, patience=2),
    defenses=("none", "rsw"), baselines=("unpruned",),
    attacks=("conf", "gap", "rmia"), num_shadows=2, memscore_models=48,
    memscore_epochs=3, attack_options=base.AttackOptions(max_epochs=2))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """One finished TINY run: (its directory, report, log lines). Tests that
  run again copy the directory first."""
  run_dir = tmp_path_factory.mktemp("tiny_run")
  logs = []
  report = run_lib.run(run_lib.RunConfig(**TINY), str(run_dir),
                       log=logs.append)
  return run_dir, report, logs


def test_run_writes_report_and_second_run_reuses_everything(tiny_run,
                                                            tmp_path):
  config = run_lib.RunConfig(**TINY)
  source, report, logs = tiny_run
  shutil.copytree(source, tmp_path, dirs_exist_ok=True)
  logs = list(logs)
  assert set(report["defenses"]) == {"unpruned", "base", "rsw"}
  for label, entry in report["defenses"].items():
    assert 0 < entry["test_accuracy"] <= 1
    assert set(entry["attacks"]) == {"conf", "gap", "rmia"}
    for metrics in entry["attacks"].values():
      assert 0 <= metrics["balanced_accuracy"] <= 1
    if label == "unpruned":
      assert entry["defense_seconds"] is None
    else:
      assert entry["defense_seconds"] > 0
      assert [i["iteration"] for i in entry["iterations"]] == [0, 1, 2]
  assert report["defenses"]["rsw"]["defense_report"]["defense"] == "rsw"
  # The victim's scores cover the training pool; the adaptive attacker's
  # own cover every record, since its reference models also train on the
  # target's held-out records.
  with open(tmp_path / "experiments" / "rsw" / "attacks.json") as f:
    attacker_scores = json.load(f)["attacker_memscores"]
  assert attacker_scores["records"] == 1797
  pool = splits_lib.Splits.load(str(tmp_path / "splits.npz")).pool
  assert len(pool) < 1797
  for name in ("report.json", "report.md", "manifest.json",
               "plots/privacy_utility.png", "plots/roc_best.png",
               "plots/iterations.png"):
    assert os.path.isfile(tmp_path / name), name
  assert any("ETA" in line for line in logs)
  logs.clear()
  again = run_lib.run(config, str(tmp_path), log=logs.append)
  assert sum("cached" in line for line in logs) == 3
  assert report_lib.without_timings(again) == report_lib.without_timings(report)


def test_changed_settings_redo_only_what_they_affect(tiny_run, tmp_path):
  shutil.copytree(tiny_run[0], tmp_path, dirs_exist_ok=True)
  changed = run_lib.RunConfig(**{**TINY, "defense_settings": {
      "rsw": {"width": 5}}})
  logs = []
  run_lib.run(changed, str(tmp_path), log=logs.append)
  cached = [l for l in logs if "cached" in l]
  assert len(cached) == 2 and not any("rsw" in l for l in cached)


def test_bad_run_configs_are_refused():
  with pytest.raises(ValueError, match="unknown defenses"):
    run_lib.RunConfig(defenses=("magic",))
  with pytest.raises(ValueError, match="unknown baselines"):
    run_lib.RunConfig(baselines=("two_shot",))
  with pytest.raises(ValueError, match="nothing to run"):
    run_lib.RunConfig(defenses=(), baselines=())
  with pytest.raises(ValueError, match="memscore_design must be one of"):
    run_lib.RunConfig(memscore_design="latin")


_CLI = [sys.executable, "-m", "wemem_cli.main", "run", "--seed=2",
        "--epochs_per_iteration=2", "--pretrain_epochs=3", "--patience=2",
        "--prune_iterations=3", "--num_shadows=2", "--attacks=conf,mentr",
        "--defenses=none,random", "--baselines=unpruned",
        "--attack_max_epochs=2"]


def _cli(run_dir, **kwargs):
  return subprocess.Popen(_CLI + [f"--output_dir={run_dir}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kwargs)


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path):
  interrupted = tmp_path / "interrupted"
  fresh = _cli(tmp_path / "fresh")  # beside the others: its own directory
  proc = _cli(interrupted)
  marker = interrupted / "experiments" / "unpruned" / "step.json"
  deadline = time.time() + 600
  while not marker.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  assert marker.exists(), proc.communicate()[0][-3000:]
  os.kill(proc.pid, signal.SIGKILL)  # in the middle of the next step
  proc.wait()
  assert not (interrupted / "report.json").exists()
  resumed = _cli(interrupted)
  out = resumed.communicate(timeout=900)[0]
  assert resumed.returncode == 0, out[-3000:]
  assert "[1/3] unpruned    cached" in out
  out = fresh.communicate(timeout=900)[0]
  assert fresh.returncode == 0, out[-3000:]
  reports = [json.loads((d / "report.json").read_text())
             for d in (interrupted, tmp_path / "fresh")]
  assert (report_lib.without_timings(reports[0])
          == report_lib.without_timings(reports[1]))


def test_tensorboard_per_configuration_written_once(tmp_path):
  config = run_lib.RunConfig(**{
      **TINY, "pruning": iterative.PruningConfig(0.5, 2, epochs_per_iteration=1,
                                                 patience=1),
      "training": loop_lib.TrainConfig(max_epochs=2, patience=1),
      "defenses": ("none",), "attacks": ("conf", "gap"), "num_shadows": 1})
  tb = tmp_path / "tb"
  report = run_lib.run(config, str(tmp_path / "run"), log=lambda _: None,
                       tensorboard_dir=str(tb))
  assert sorted(os.listdir(tb)) == ["base", "unpruned"]
  for label, entry in report["defenses"].items():
    scalars = summaries.read_scalars(str(tb / label))
    for attack, row in entry["attacks"].items():
      for metric in ("balanced_accuracy", "auc"):
        assert scalars[f"attack/{attack}/{metric}"] == {
            0: pytest.approx(row[metric])}
      # tpr_at_0.1pct_fpr is null (not estimable) on digits' few records
      tpr = row["tpr_at_0.1pct_fpr"]
      assert scalars.get(f"attack/{attack}/tpr_at_0.1pct_fpr") == (
          None if tpr is None else {0: pytest.approx(tpr)})
    assert scalars["victim/test_accuracy"] == {
        0: pytest.approx(entry["test_accuracy"])}
    assert scalars["best_attack/balanced_accuracy"][0] == pytest.approx(
        entry["best_attack"]["balanced_accuracy"])
    # With the gap attack run, the bound is its balanced accuracy.
    assert scalars["label_only_bound/balanced_accuracy"][0] == pytest.approx(
        entry["attacks"]["gap"]["balanced_accuracy"])
    assert scalars["excess_leakage/victim_side"][0] == pytest.approx(
        entry["excess_leakage"]["victim_side"])
  base = summaries.read_scalars(str(tb / "base"))
  assert set(base["iteration/test_accuracy"]) == {0, 1}
  assert set(base["prune_low_magnitude_fc1/mask:0/sparsity"]) == {0, 1}
  assert "iteration/epochs_run" in base
  assert "iteration/target_sparsity" not in summaries.read_scalars(
      str(tb / "unpruned"))
  # Resumed: cached configurations keep their summaries (no second file);
  # a new folder gets what attacks.json keeps.
  files = sorted(os.listdir(tb / "base"))
  run_lib.run(config, str(tmp_path / "run"), log=lambda _: None,
              tensorboard_dir=str(tb))
  assert sorted(os.listdir(tb / "base")) == files
  run_lib.run(config, str(tmp_path / "run"), log=lambda _: None,
              tensorboard_dir=str(tmp_path / "tb2"))
  cached = summaries.read_scalars(str(tmp_path / "tb2" / "base"))
  assert cached["iteration/test_accuracy"] == base["iteration/test_accuracy"]
  assert cached["iteration/epochs_run"] == base["iteration/epochs_run"]
  assert cached["attack/conf/auc"] == base["attack/conf/auc"]


def test_output_modification_reuses_every_model_and_keeps_accuracy(
    tiny_run, tmp_path):
  """The serving-only setting: a run of RSW behind output modification with
  the plain run's `cache_dir` trains nothing (every victim, shadow and
  reference model comes from the store), serves the same predictions and
  reports the setting it served with."""
  source, report, _ = tiny_run
  store = os.path.join(str(source), "models")
  before = sorted(os.listdir(store))
  config = run_lib.RunConfig(**{
      **TINY, "defenses": ("rsw",), "baselines": (),
      "defense_settings": {"rsw": {"modify_output": True}}})
  served = run_lib.run(config, str(tmp_path / "om"), log=lambda _: None,
                       cache_dir=str(source))
  assert sorted(os.listdir(store)) == before
  plain, om = report["defenses"]["rsw"], served["defenses"]["rsw"]
  assert om["defense_report"]["modify_output"] is True
  assert om["test_accuracy"] == plain["test_accuracy"]
  assert om["train_accuracy"] == plain["train_accuracy"]
  assert (report_lib.without_timings(om["attacks"]["gap"])
          == report_lib.without_timings(plain["attacks"]["gap"]))
  # Served confidences are a random input's (their effect on a model that
  # leaks is tested in defenses/output_modification_test.py; this tiny RSW
  # victim does not overfit, train 86% vs test 87%).
  assert om["attacks"]["conf"]["auc"] != plain["attacks"]["conf"]["auc"]
