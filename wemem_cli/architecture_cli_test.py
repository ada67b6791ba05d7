"""`--architecture=MODULE:FUNCTION` and `--architecture=PATH` on the command
line: a user's model (not in the zoo) is pruned, attacked and scored; bad
specs fail with one line and write nothing. Tiny settings on digits."""

import json
import os

import numpy as np
import pytest

import wemem_tf
from wemem_cli import attack_cmd  # pylint: disable=unused-import  (flags)
from wemem_cli import cli_testing
from wemem_cli import export_cmd  # pylint: disable=unused-import  (flags)
from wemem_cli import memscore_cmd  # pylint: disable=unused-import  (flags)
from wemem_cli import model_files
from wemem_cli import prune_cmd  # pylint: disable=unused-import  (flags)
from wemem_tf import data as data_lib
from wemem_tf.models import files_test
from wemem_tf.models.testdata import user_models

USER_FILE = os.path.join(os.path.dirname(wemem_tf.__file__), "models",
                         "testdata", "user_models.py")
CONV = f"--architecture={USER_FILE}:conv_net"
TINY = ("--dataset=digits", "--seed=1", "--pretrain_epochs=2",
        "--prune_iterations=2", "--epochs_per_iteration=1", "--patience=1",
        "--target_sparsity=0.5")
_run_cli = cli_testing.run_cli


def test_prune_a_user_model_then_check_its_file(tmp_path):
  out = tmp_path / "prune"
  assert _run_cli("prune", *TINY, CONV, f"--output_dir={out}") in (0, None)
  history = json.loads((out / "history.json").read_text())
  assert [h["iteration"] for h in history] == [0, 1]
  sparsity = history[-1]["layer_sparsity"]
  assert sparsity["conv"] == pytest.approx(0.5, abs=0.02)
  assert sparsity["fc"] == pytest.approx(0.5, abs=0.02)
  pretrained = model_files.load_model(str(out / "pretrained.h5"), "--p")
  dataset = data_lib.load_dataset("digits")
  model_files.check_matches(pretrained, dataset, f"{USER_FILE}:conv_net",
                            "--pretrained")
  with pytest.raises(ValueError, match="is not a column_fc model"):
    model_files.check_matches(pretrained, dataset, "column_fc",
                              "--pretrained")


def test_attack_a_user_model(tmp_path):
  out = tmp_path / "attack"
  assert _run_cli("attack", *TINY, CONV, f"--output_dir={out}",
                  "--num_shadows=1", "--attacks=hconf,gap") == 0
  doc = json.loads((out / "attacks.json").read_text())
  assert doc["settings"]["architecture"] == f"{USER_FILE}:conv_net"
  assert [r["attack"] for r in doc["attacks"]] == ["hconf", "gap"]
  assert 0 < doc["victim_test_accuracy"] <= 1


@pytest.mark.parametrize("spec,path", [("conv_net", "per_model"),
                                       ("small_mlp", "vectorized")])
def test_memscore_of_a_user_model_takes_the_right_path(spec, path, tmp_path,
                                                       capsys):
  out = str(tmp_path / "scores.npz")
  assert _run_cli("memscore", "--dataset=digits", "--num_models=2",
                  "--epochs=1", f"--output={out}", "--seed=1", "--noprogress",
                  f"--architecture={USER_FILE}:{spec}") in (0, None)
  scores = wemem_tf.memorization.MemScores.load(out)
  assert scores.details["path"] == path
  assert scores.details["architecture"] == f"{USER_FILE}:{spec}"
  assert scores.details["seconds_per_model"] > 0
  printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert printed["path"] == path


def test_memscore_of_a_model_file(tmp_path):
  model_path = str(tmp_path / "mlp.h5")
  user_models.small_mlp((64,), 10).save(model_path)
  out = str(tmp_path / "scores.npz")
  assert _run_cli("memscore", "--dataset=digits", "--num_models=2",
                  "--epochs=1", f"--output={out}", "--noprogress",
                  f"--architecture={model_path}") in (0, None)
  scores = wemem_tf.memorization.MemScores.load(out)
  assert scores.details["path"] == "vectorized"
  assert np.isfinite(scores.score).any()


@pytest.mark.parametrize("spec,message", [
    ("no_such_module_xyz:net", "cannot import 'no_such_module_xyz'"),
    (f"{USER_FILE}:nope", "has no attribute 'nope'"),
    (f"{USER_FILE}:not_a_model", "gave a list, not a tf_keras model"),
    (f"{USER_FILE}:softmax_net", "remove the final softmax; wemem needs "
     "logits"),
    (f"{USER_FILE}:subclassed_net", "subclassed keras.Model"),
    (f"{USER_FILE}:wide_net", "the data has 10 classes"),
    ("resnet9000", "unknown architecture 'resnet9000'"),
    ("nowhere/model.h5", "no such model file"),
])
def test_bad_architectures_fail_in_one_line_before_writing(spec, message,
                                                           tmp_path, capsys):
  out = tmp_path / "run"
  assert _run_cli("prune", "--dataset=digits", f"--architecture={spec}",
                  f"--output_dir={out}") == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("wemem prune: error: ") and message in err, err
  assert len(err.splitlines()) == 1
  assert not (out / "manifest.json").exists()


def test_architecture_file_with_code_needs_trust(tmp_path, capsys):
  marker = str(tmp_path / "marker")
  path = str(tmp_path / "evil.h5")
  files_test.lambda_model(marker).save(path)
  open(marker + ".armed", "w").close()
  out = str(tmp_path / "scores.npz")
  assert _run_cli("memscore", "--dataset=digits", f"--architecture={path}",
                  f"--output={out}") == 2
  err = capsys.readouterr().err
  assert "'evil' is a Lambda layer" in err and "--trust_model_code" in err
  assert not os.path.exists(marker) and not os.path.exists(out)
