"""`--dataset=npz:PATH` / `csv:PATH` on the command line: errors and paths."""

import os

from absl import flags
from absl.testing import flagsaver

from wemem_cli import cli_testing
from wemem_cli import flag_utils

FLAGS = flags.FLAGS


def test_bad_user_data_is_a_one_line_error(tmp_path, capsys):
  missing = tmp_path / "missing.npz"
  assert cli_testing.run_cli("prune", f"--dataset=npz:{missing}",
                             f"--output_dir={tmp_path / 'out'}") == 2
  err = capsys.readouterr().err
  assert err.startswith("wemem prune: error: data file ") and (
      f"{str(missing)!r} not found" in err)
  assert err.count("\n") == 1 and "Traceback" not in err
  assert not (tmp_path / "out").exists()
  # --label_column reaches the CSV loader.
  (tmp_path / "mine.csv").write_text("a,label\n1,0\n2,1\n")
  assert cli_testing.run_cli("pretrain", f"--dataset=csv:{tmp_path}/mine.csv",
                             "--label_column=target") == 2
  err = capsys.readouterr().err
  assert "has no label column 'target' (columns: 'a', 'label')" in err
  assert err.count("\n") == 1


def test_output_dir_defaults_to_the_file_name(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with flagsaver.flagsaver():
    FLAGS(["wemem", "--dataset=npz:/some/where/mine.v2.npz"])
    assert flag_utils.output_dir() == os.path.join("runs", "mine.v2.npz")
    assert flag_utils.output_dir("loaded") == os.path.join("runs", "loaded")
    FLAGS(["wemem", "--dataset=location"])
    assert flag_utils.output_dir() == os.path.join("runs", "location")
  # Nothing is created before a command has checked all its inputs.
  assert not (tmp_path / "runs").exists()
