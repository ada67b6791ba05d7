"""The `wemem` command line: prune contract, dispatch and errors."""

import json
import subprocess
import sys

import pytest

from wemem_cli import cli_testing


def _wemem(*args, timeout=600):
  return subprocess.run([sys.executable, "-m", "wemem_cli.main", *args],
                        capture_output=True, text=True, timeout=timeout)


def test_prune_writes_the_contracted_artifacts(tmp_path):
  out = tmp_path / "out"
  proc = _wemem("prune", "--dataset=digits", f"--output_dir={out}",
                "--target_sparsity=0.5", "--prune_iterations=3",
                "--epochs_per_iteration=2", "--patience=2",
                "--pretrain_epochs=3", "--seed=4")
  assert proc.returncode == 0, proc.stderr[-3000:]
  history = json.loads((out / "history.json").read_text())
  assert [h["iteration"] for h in history] == [0, 1, 2]
  for h in history:
    assert set(h) >= {"iteration", "layer_sparsity", "train_accuracy",
                      "dev_accuracy", "test_accuracy", "seconds"}
  assert history[-1]["layer_sparsity"]["fc1"] == pytest.approx(0.5, abs=0.01)
  assert history[-1]["layer_sparsity"]["classifier"] == 0.0
  for name in ("model.h5", "pretrained.h5", "model.tflite", "manifest.json",
               "splits.npz", "summary.json"):
    assert (out / name).is_file(), name
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["seed"] == 4 and len(manifest["data_fingerprint"]) == 64
  assert manifest["settings"]["target_sparsity"] == 0.5
  assert manifest["packages"]["tensorflow"] == "2.15.1"
  summary = json.loads((out / "summary.json").read_text())
  assert summary["tflite"]["max_abs_deviation"] < 1e-4


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
  # Through the real entry point once (a process of its own) ...
  proc = _wemem("prune", "--dataset=location", f"--output_dir={tmp_path}")
  assert proc.returncode == 2
  assert "needs --data_dir" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = _wemem("frobnicate")
  assert proc.returncode != 0 and "usage: wemem" in proc.stderr
  # ... and the same dispatch and error handling in this process.
  for args, message in (
      (("prune", "--dataset=digits", "--target_sparsity=1.5"),
       "strictly between 0 and 1"),
      (("attack", "--dataset=digits", "--reference_inclusion=1.5"),
       "--reference_inclusion must be")):
    assert cli_testing.run_cli(*args, f"--output_dir={tmp_path}") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_flagfiles_parse(tmp_path):
  proc = _wemem("report", "--flagfile=configs/location_swmr.cfg",
                f"--output_dir={tmp_path}")
  # The flagfile parses; the empty run directory is then reported clearly.
  assert "holds no finished experiments" in proc.stderr
