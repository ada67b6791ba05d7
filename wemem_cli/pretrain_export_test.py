"""`wemem pretrain`, `wemem prune --pretrained` and `wemem export` (digits,
tiny settings, in-process)."""

import json

import numpy as np
import pytest

import wemem_tf
from wemem_cli import export_cmd
from wemem_cli import cli_testing
from wemem_cli import pretrain_cmd
from wemem_cli import prune_cmd

keras = wemem_tf.keras
TINY = ("--dataset=digits", "--seed=3", "--pretrain_epochs=3", "--patience=2",
        "--target_sparsity=0.5", "--prune_iterations=3",
        "--epochs_per_iteration=2")


_run = cli_testing.run_command
_run_cli = cli_testing.run_cli


def _weights(path):
  return keras.models.load_model(str(path), compile=False).get_weights()


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """pretrain, plain prune, and prune --pretrained, with the same flags."""
  root = tmp_path_factory.mktemp("runs")
  _run(pretrain_cmd, *TINY, f"--output_dir={root / 'pre'}")
  _run(prune_cmd, *TINY, f"--output_dir={root / 'plain'}")
  _run(prune_cmd, *TINY, f"--output_dir={root / 'from_pre'}",
       f"--pretrained={root / 'pre' / 'pretrained.h5'}")
  return root


def test_pretrain_writes_its_artifacts(runs):
  pre = runs / "pre"
  for name in ("pretrained.h5", "splits.npz", "summary.json",
               "manifest.json"):
    assert (pre / name).is_file(), name
  summary = json.loads((pre / "summary.json").read_text())
  assert summary["epochs_run"] == 3 and 0 <= summary["best_epoch"] < 3
  assert summary["dev_accuracy"] == pytest.approx(summary["best_dev_accuracy"])
  assert 0.3 < summary["test_accuracy"] <= 1 and summary["seconds"] > 0
  manifest = json.loads((pre / "manifest.json").read_text())
  assert manifest["seed"] == 3 and manifest["settings"]["pretrain_epochs"] == 3
  # Same splits and dense model as prune's own pre-training.
  assert (pre / "splits.npz").read_bytes() == (runs / "plain" /
                                               "splits.npz").read_bytes()
  _assert_same(_weights(pre / "pretrained.h5"),
               _weights(runs / "plain" / "pretrained.h5"))


def test_prune_from_pretrained_equals_plain_prune(runs):
  _assert_same(_weights(runs / "plain" / "model.h5"),
               _weights(runs / "from_pre" / "model.h5"))
  strip = lambda h: {k: v for k, v in h.items() if k != "seconds"}
  plain = json.loads((runs / "plain" / "history.json").read_text())
  loaded = json.loads((runs / "from_pre" / "history.json").read_text())
  assert [strip(h) for h in plain] == [strip(h) for h in loaded]
  assert json.loads((runs / "from_pre" / "summary.json").read_text())[
      "pretrain"] is None


def test_prune_rejects_models_that_do_not_fit(tmp_path, capsys):
  wrong_classes = wemem_tf.models.column_fc((64,), 7)
  wrong_classes.save(tmp_path / "classes.h5")
  other = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
  other.save(tmp_path / "other.h5")
  with pytest.raises(ValueError, match="7 outputs; dataset digits has 10"):
    _run(prune_cmd, *TINY, f"--output_dir={tmp_path / 'a'}",
         f"--pretrained={tmp_path / 'classes.h5'}")
  with pytest.raises(ValueError, match="is not a column_fc model"):
    _run(prune_cmd, *TINY, f"--output_dir={tmp_path / 'b'}",
         f"--pretrained={tmp_path / 'other.h5'}")
  assert not (tmp_path / "b" / "manifest.json").exists()  # nothing written
  assert _run_cli("prune", *TINY, f"--output_dir={tmp_path / 'c'}",
                  f"--pretrained={tmp_path / 'missing.h5'}") == 2
  assert "--pretrained: no such file" in capsys.readouterr().err


def test_export_reports_size_and_sparsity(runs, tmp_path, capsys):
  out = tmp_path / "model.tflite"
  _run(export_cmd, f"--model={runs / 'plain' / 'model.h5'}", f"--output={out}",
       "--dataset=digits", "--seed=3")
  printed = capsys.readouterr().out
  assert out.read_bytes()[4:8] == b"TFL3"
  assert f"{out.stat().st_size} bytes" in printed
  assert "fc1 50.0%, fc2 50.0%, classifier 0.0%" in printed
  assert "166 digits victim test records" in printed
  assert "accuracy: Keras" in printed and "stripped" not in printed


def test_export_strips_wrapped_models(tmp_path, capsys):
  model = wemem_tf.models.column_fc((64,), 10)
  config = wemem_tf.PruningConfig(target_sparsity=0.5, num_iterations=2)
  wrapped = wemem_tf.prune_low_memorization(model, config.schedule())
  wemem_tf.pruning.PruningRounds(wrapped).start(1)  # 50% masks
  wrapped.save(tmp_path / "wrapped.h5")
  _run(export_cmd, f"--model={tmp_path / 'wrapped.h5'}",
       f"--output={tmp_path / 'w.tflite'}", "--export_check_records=16")
  printed = capsys.readouterr().out
  assert "stripped 2 pruning wrapper(s)" in printed
  assert "fc1 50.0%, fc2 50.0%" in printed
  assert "16 standard-normal inputs" in printed
  assert (tmp_path / "w.tflite").is_file()


def test_export_errors_are_messages(tmp_path, capsys):
  (tmp_path / "junk.h5").write_bytes(b"not a model")
  assert _run_cli("export", f"--model={tmp_path / 'missing.h5'}",
                  f"--output={tmp_path / 'x.tflite'}") == 2
  assert "--model: no such file" in capsys.readouterr().err
  assert _run_cli("export", f"--model={tmp_path / 'junk.h5'}",
                  f"--output={tmp_path / 'x.tflite'}") == 2
  assert "is not a readable Keras model file" in capsys.readouterr().err
  assert _run_cli("export", f"--model={tmp_path / 'junk.h5'}") == 2
  assert "--output is required" in capsys.readouterr().err
  keras.Sequential([keras.Input((5,)), keras.layers.Dense(10)]).save(
      tmp_path / "five.h5")
  assert _run_cli("export", f"--model={tmp_path / 'five.h5'}",
                  f"--output={tmp_path / 'x.tflite'}", "--dataset=digits") == 2
  assert "expects inputs of shape (5,)" in capsys.readouterr().err
  assert not (tmp_path / "x.tflite").exists()
