"""Issue 17's cases through the command line: each exits 2 with a message
that names the file or flag and the fix, prints no traceback, and leaves a
finished run's files byte-identical."""

import errno
import hashlib
import json
import os

import numpy as np
import pytest

from wemem_cli import cli_testing
from wemem_tf import run_manifest

TINY = ("--dataset=digits", "--seed=1", "--prune_iterations=2",
        "--epochs_per_iteration=1", "--patience=1", "--pretrain_epochs=2")


def _digests(folder):
  return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
          for name in sorted(os.listdir(folder))}


def _fails(capsys, *args, message):
  code = cli_testing.run_cli(*args)
  err = capsys.readouterr().err
  assert code == 2, err
  assert message in err, err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  return err


def _held(tmp_path):
  """A directory locked by a live process (this test's parent)."""
  held = tmp_path / "held"
  held.mkdir()
  (held / run_manifest.LOCK_NAME).write_text(json.dumps(
      {"pid": os.getppid(), "host": os.uname().nodename}))
  return held


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished `wemem prune` run (digits, seed 1, tiny settings)."""
  out = tmp_path_factory.mktemp("finished") / "run"
  assert cli_testing.run_cli("prune", *TINY, f"--output_dir={out}") in (0,
                                                                       None)
  return out


def test_failed_prune_leaves_a_finished_run_byte_identical(finished, capsys):
  before = _digests(finished)
  _fails(capsys, "prune", *TINY, "--learning_rate=nan",
         f"--output_dir={finished}", message="NaN or infinite weights")
  assert _digests(finished) == before
  assert not [n for n in os.listdir(finished.parent) if "staging" in n]


def test_another_seed_in_a_finished_run_is_refused(finished, capsys, tmp_path):
  before = _digests(finished)
  _fails(capsys, "pretrain", *TINY[:1], "--seed=3", "--pretrain_epochs=1",
         f"--output_dir={finished}", message="holds a run of seed 1")
  assert _digests(finished) == before
  # wemem run checks the same before writing its manifest or splits.
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "manifest.json").write_text(json.dumps(
      {"seed": 0, "data_fingerprint": "0" * 64}))
  _fails(capsys, "run", "--dataset=digits", "--seed=3",
         f"--output_dir={run_dir}", message="--overwrite")
  assert sorted(os.listdir(run_dir)) == ["manifest.json"]


def test_pretrained_from_another_seed_is_refused(finished, capsys, tmp_path):
  _fails(capsys, "prune", *TINY[:1], "--seed=2",
         f"--pretrained={finished / 'pretrained.h5'}",
         f"--output_dir={tmp_path / 'out'}", message="another --seed")
  assert not (tmp_path / "out").exists()


def test_bad_output_dirs_and_a_held_lock(capsys, tmp_path):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  _fails(capsys, "pretrain", "--dataset=digits", f"--output_dir={a_file}",
         message="is a file, not a directory")
  _fails(capsys, "pretrain", "--dataset=digits",
         f"--output_dir={_held(tmp_path)}",
         message=f"another wemem command (pid {os.getppid()})")
  # An invalid flag leaves no half-made output directory.
  _fails(capsys, "pretrain", "--dataset=npz:/nowhere/x.npz",
         f"--output_dir={tmp_path / 'new'}", message="x.npz")
  assert not (tmp_path / "new").exists()


def test_location_values_outside_0_1_are_refused(capsys, tmp_path):
  x = np.zeros((40, 446), np.uint8)
  x[3, 7] = 2
  np.savez(tmp_path / "location.npz", x=x, y=np.arange(40) % 30)
  _fails(capsys, "pretrain", "--dataset=location", f"--data_dir={tmp_path}",
         f"--output_dir={tmp_path / 'out'}", message="not 0 or 1")


def test_stale_lock_is_taken_over(tmp_path):
  (tmp_path / run_manifest.LOCK_NAME).write_text(json.dumps(
      {"pid": 2**22 + 12345, "host": os.uname().nodename}))
  with run_manifest.RunLock(str(tmp_path)):
    holder = json.loads((tmp_path / run_manifest.LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid()
  assert not (tmp_path / run_manifest.LOCK_NAME).exists()


@pytest.mark.parametrize("meta", ["[1, 2]", '{"num_models": "many"}',
                                  '{"details": 3}'])
def test_score_metadata_errors_name_the_file(tmp_path, meta):
  from wemem_tf.memorization import scores as scores_lib  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "scores.npz")
  np.savez(path, index=np.arange(3), score=np.zeros(3), included=np.ones(3),
           excluded=np.ones(3), fingerprint=np.array("f" * 64),
           meta=np.array(meta))
  with pytest.raises(ValueError, match="scores.npz.*metadata .* "
                     "unreadable"):
    scores_lib.MemScores.load(path)


def test_attack_and_audit_directories_are_claimed(finished, capsys,
                                                  tmp_path):
  _fails(capsys, "attack", "--dataset=digits",
         f"--output_dir={_held(tmp_path)}",
         message=f"another wemem command (pid {os.getppid()})")
  other = tmp_path / "other"
  other.mkdir()
  (other / "audit_manifest.json").write_text(json.dumps(
      {"seed": 0, "data_fingerprint": "0" * 64}))
  _fails(capsys, "audit", "--dataset=digits", "--seed=3",
         f"--model={finished / 'model.h5'}",
         f"--members={finished / 'splits.npz'}", f"--output_dir={other}",
         message="holds a run of seed 0")
  assert sorted(os.listdir(other)) == ["audit_manifest.json"]


@pytest.mark.parametrize("code,words", [
    (errno.ENOSPC, "No space left on device"),
    (errno.EROFS, "Read-only file system")])
def test_a_full_or_read_only_disk_is_one_line_and_harms_nothing(
    finished, capsys, monkeypatch, code, words):
  """The disk refuses the writes of a rerun into a finished run: exit 1,
  one line naming the file and the fix, the finished files unchanged."""
  before = _digests(finished)

  def refuse(_):
    raise OSError(code, os.strerror(code))
  monkeypatch.setattr(os, "fsync", refuse)
  status = cli_testing.run_cli("prune", *TINY, f"--output_dir={finished}")
  monkeypatch.undo()
  err = capsys.readouterr().err
  assert status == 1, err
  assert words in err and "--output_dir" in err and ".staging-" in err, err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  assert _digests(finished) == before
  assert not [n for n in os.listdir(finished.parent) if "staging" in n]
