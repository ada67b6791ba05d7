"""`wemem audit` end to end: the .tflite and .h5 that `wemem prune` wrote,
audited with their splits.npz, give `wemem attack`'s numbers; bad input is
a one-line error."""

import json
import os

from wemem_cli import cli_testing

TINY = ("--dataset=digits", "--seed=2", "--prune_iterations=2",
        "--epochs_per_iteration=1", "--patience=1", "--pretrain_epochs=3")
# Attacks without attack models of their own (SAMIA's served queries are
# checked against Keras' in attacks/inputs_test.py).
ATTACK = ("--num_shadows=1", "--attacks=conf,mentr,lira_offline,rmia")


def _aucs(path):
  with open(os.path.join(path, "attacks.json")) as f:
    doc = json.load(f)
  return {r["attack"]: r["auc"] for r in doc["attacks"]}, doc


def test_audit_of_exported_files_reproduces_attack(tmp_path):
  run, store = str(tmp_path / "run"), str(tmp_path / "models")
  assert cli_testing.run_cli("prune", *TINY, f"--output_dir={run}") in (0, None)
  # The attacker's models are cached by `attack` and reused by the audits
  # (same seeds, splits and recipe): the audits train nothing.
  assert cli_testing.run_cli("attack", *TINY, *ATTACK,
                             f"--model_store_dir={store}",
                             f"--output_dir={tmp_path / 'attack'}") == 0
  expected, attack_doc = _aucs(str(tmp_path / "attack"))
  for name in ("model.tflite",):
    out = str(tmp_path / f"audit_{name}")
    assert cli_testing.run_cli(
        "audit", *TINY, *ATTACK, f"--model_store_dir={store}",
        f"--model={os.path.join(run, name)}",
        f"--members={os.path.join(run, 'splits.npz')}",
        f"--output_dir={out}") == 0
    got, doc = _aucs(out)
    assert got.keys() == expected.keys()
    for attack, auc in expected.items():
      assert abs(got[attack] - auc) <= 0.01, (name, attack, got[attack], auc)
    assert doc["victim_test_accuracy"] == attack_doc["victim_test_accuracy"]
    assert doc["audit"]["membership"]["source"] == "splits"
    assert os.path.isfile(os.path.join(out, "audit.md"))


def test_bad_input_is_one_line(tmp_path, capsys):
  assert cli_testing.run_cli("audit", "--dataset=digits",
                             f"--output_dir={tmp_path}") == 2
  assert "--model is required" in capsys.readouterr().err
  assert cli_testing.run_cli("audit", "--dataset=digits",
                             f"--model={tmp_path / 'm.tflite'}",
                             f"--output_dir={tmp_path}") == 2
  assert "--members is required" in capsys.readouterr().err
  members = tmp_path / "splits.npz"
  members.write_bytes(b"junk")
  assert cli_testing.run_cli("audit", "--dataset=digits",
                             f"--model={tmp_path / 'm.tflite'}",
                             f"--members={members}",
                             f"--output_dir={tmp_path}") == 2
  err = capsys.readouterr().err
  assert "not a readable .npz" in err and len(err.strip().splitlines()) == 1
