"""`wemem tune`: trials table, best flagfile usable by the other commands."""

import json
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver

import wemem_tf
from wemem_cli import cli_testing
from wemem_cli import tune_cmd
from wemem_eval.tuning import objective as objective_lib
from wemem_eval.tuning import tuner as tuner_lib
from wemem_eval.tuning import tuner_test

FLAGS = flags.FLAGS


def _wemem(*args, timeout=600):
  return subprocess.run([sys.executable, "-m", "wemem_cli.main", *args],
                        capture_output=True, text=True, timeout=timeout)


def test_tune_writes_trials_and_a_best_flagfile(tmp_path):
  out = tmp_path / "tune"
  args = ["tune", "--dataset=digits", f"--output_dir={out}", "--seed=1",
          "--tune_methods=rsw", "--max_trials=2", "--oracle=random",
          "--tune_attacks=conf,gap", "--num_shadows=1",
          "--objective=weighted", "--objective_weight=0.5",
          "--target_sparsity=0.5", "--prune_iterations=2",
          "--epochs_per_iteration=2", "--patience=2", "--pretrain_epochs=2",
          "--memscore_models=32", "--memscore_epochs=2",
          "--attack_max_epochs=2", "--confirm_top_k=1",
          "--confirm_repeats=1", "--rehearsals_per_trial=1",
          "--tune_range=width=5:10", "--tune_range=stride=2:2"]
  proc = _wemem(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  trials = json.loads((out / "trials.json").read_text())
  assert trials["objective"]["kind"] == "weighted"
  assert [t["status"] for t in trials["trials"]] == ["COMPLETED"] * 2
  best = json.loads((out / "best.json").read_text())
  m = best["metrics"]
  # The search's best trial, confirmed on one more held-out shadow.
  top = max(trials["trials"], key=lambda t: t["metrics"]["score"])
  assert best["status"] == "CONFIRMED" and best["trial_id"] == top["trial_id"]
  assert m["attack_accuracies"][0] == top["metrics"]["attack_accuracy"]
  assert len(m["attack_accuracies"]) == 2
  assert abs(m["score"] - (m["dev_accuracy"]
                           - 0.5 * (m["attack_accuracy"] - 0.5))) < 1e-9
  cfg = (out / "best.cfg").read_text()
  assert "--defense=rsw" in cfg and "--window_width=" in cfg
  for t in trials["trials"]:  # inside the --tune_range ranges
    assert t["choice"]["settings"]["width"] in (5, 10)
    assert t["choice"]["settings"]["stride"] == 2
  assert (out / "trials.md").read_text().count("| COMPLETED |") == 2
  assert json.loads((out / "tune_manifest.json").read_text())["seed"] == 1
  # Pre-trained models are cached for the trials, pruned ones are not.
  names = [p.name for p in (out / "models").iterdir()]
  assert names and all(n.startswith("pretrained") for n in names)

  # The flagfile parses for `wemem run` (an empty run dir is then refused).
  proc = _wemem("report", f"--flagfile={out / 'best.cfg'}",
                f"--output_dir={tmp_path / 'empty'}")
  assert "holds no finished experiments" in proc.stderr, proc.stderr[-2000:]

  # Rerunning resumes: nothing new to do, same best.
  proc = _wemem(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads((out / "best.json").read_text()) == best


def test_tune_rejects_bad_settings(tmp_path, capsys):
  for flag, message in (("--tune_methods=magic", "methods must be"),
                        ("--attack_target=70", "attack_target"),
                        ("--rehearsal_inclusion=most",
                         "--rehearsal_inclusion must be")):
    assert cli_testing.run_cli("tune", "--dataset=digits",
                               f"--output_dir={tmp_path}", flag) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_pareto_search_confirms_its_front_and_writes_a_flagfile_per_point(
    tmp_path):
  """Known answers (a wider window: more dev accuracy, more leakage), so
  the whole front is known; the search's code path is the command's."""
  if not FLAGS.is_parsed():
    FLAGS(["wemem"])
  space = tuner_lib.SearchSpace.for_dataset("digits", methods=("rsw",))
  objective = objective_lib.TuningObjective("pareto")
  out = tmp_path / "tune"
  with flagsaver.flagsaver(oracle="random", max_trials=4, seed=3,
                           confirm_top_k=1, confirm_repeats=1):
    assert tune_cmd._search(objective, wemem_tf.data.load_dataset("digits"),
                            space, str(out), tuner_test._setup(),
                            tuner_test.known_evaluate) == 0
  trials = json.loads((out / "trials.json").read_text())
  done = [t for t in trials["trials"] if t["status"] == "COMPLETED"]
  # Every completed trial is on the front here, so every one is confirmed.
  assert len(trials["confirmed"]) == len(done) >= 2
  saved = json.loads((out / "frontier.json").read_text())
  assert saved["source"].startswith("confirmed front points")
  front = saved["fronts"]["all"]
  assert len(front) == len(done)
  attacks = [p["attack_accuracy"] for p in front]
  assert attacks == sorted(attacks)
  for point in front:
    cfg = (out / point["flagfile"]).read_text()
    width = point["defense"]["settings"]["width"]
    assert "--defense=rsw" in cfg and f"--window_width={width}" in cfg
  assert (out / "frontier.md").read_text().count("| CONFIRMED |") >= 2
  assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
