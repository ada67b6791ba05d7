"""`--model` / `--pretrained` files that hold Python code are refused."""

import os

from absl.testing import flagsaver
import pytest

from wemem_cli import export_cmd  # pylint: disable=unused-import  (flags)
from wemem_cli import cli_testing
from wemem_cli import model_files
from wemem_cli import prune_cmd
from wemem_tf.models import files_test


_run = cli_testing.run_command
_run_cli = cli_testing.run_cli


@pytest.fixture
def evil(tmp_path):
  """(an .h5 with a Lambda that writes the marker once armed, the marker)."""
  marker = str(tmp_path / "marker")
  path = str(tmp_path / "evil.h5")
  files_test.lambda_model(marker).save(path)
  open(marker + ".armed", "w").close()
  return path, marker


def test_export_refuses_a_lambda_model(evil, tmp_path, capsys):
  path, marker = evil
  out = tmp_path / "x.tflite"
  assert _run_cli("export", f"--model={path}", f"--output={out}") == 2
  err = capsys.readouterr().err
  assert "--model: " in err and "'evil' is a Lambda layer" in err
  assert "pass --trust_model_code (Python: trust_code=True)" in err
  assert not out.exists() and not os.path.exists(marker)


def test_prune_refuses_a_lambda_pretrained_model_first(evil, tmp_path):
  path, marker = evil
  with pytest.raises(ValueError, match="--pretrained: .*'evil' is a Lambda"):
    _run(prune_cmd, "--dataset=digits", f"--output_dir={tmp_path / 'run'}",
         f"--pretrained={path}")
  assert not os.path.exists(marker)
  assert not (tmp_path / "run" / "manifest.json").exists()


def test_trust_model_code_flag_loads_it(evil):
  path, marker = evil
  with flagsaver.flagsaver(trust_model_code=True):
    model = model_files.load_model(path, "--model")
  assert model.get_layer("evil") is not None and os.path.exists(marker)
