"""`wemem SUBCOMMAND --flags...`: dispatches to the subcommand modules.

Every subcommand module defines its own flags (shared ones live in
`common_flags`) and a `main(argv)` function.
"""

import errno
import importlib
import os
import sys
from typing import Optional
import warnings

# A quiet start: TensorFlow's C++ logging (cuDNN/cuFFT/cuBLAS registration
# errors on machines without a GPU, oneDNN notices) is silenced before
# TensorFlow is first imported, unless the user chose a level. absl's
# --verbosity (Python logging) is unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=FutureWarning,
                        module=r"google\.api_core\..*")

from absl import app  # pylint: disable=g-import-not-at-top

# Subcommand name -> "module" (its `main`) or "module:function". Modules are
# imported up front so that all flags exist before absl parses the command
# line (a flagfile may then carry flags of several subcommands).
SUBCOMMANDS = {
    "run": "wemem_cli.run_cmd",
    "prune": "wemem_cli.prune_cmd",
    "attack": "wemem_cli.attack_cmd",
    "audit": "wemem_cli.audit_cmd",
    "memscore": "wemem_cli.memscore_cmd",
    "report": "wemem_cli.run_cmd:report_main",
    "tune": "wemem_cli.tune_cmd",
    "pretrain": "wemem_cli.pretrain_cmd",
    "export": "wemem_cli.export_cmd",
}

_USAGE = "usage: wemem {%s} [--flags] [--flagfile=configs/...]" % "|".join(
    SUBCOMMANDS)


def _load_entry_points():
  entries = {}
  for name, target in SUBCOMMANDS.items():
    module, _, function = target.partition(":")
    entries[name] = getattr(importlib.import_module(module), function or "main")
  return entries


def _main(argv):
  if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
    raise app.UsageError(_USAGE + (f"\nunknown subcommand {argv[1]!r}"
                                   if len(argv) >= 2 else ""))
  try:
    if len(argv) > 2:
      raise ValueError(f"unexpected arguments: {argv[2:]} (flags take the "
                       "form --name=value)")
    _apply_common_flags()
    return _ENTRY_POINTS[argv[1]](argv[1:])
  except (ValueError, FileNotFoundError) as e:
    # Bad input: the message says what to fix; no traceback.
    print(f"wemem {argv[1]}: error: {e}", file=sys.stderr)
    return 2
  except OSError as e:
    message = storage_error(e)
    if message is None:
      raise
    print(f"wemem {argv[1]}: error: {message}", file=sys.stderr)
    return 1


def _apply_common_flags() -> None:
  """Process-wide settings every subcommand shares."""
  from wemem_cli import common_flags  # pylint: disable=g-import-not-at-top
  from wemem_tf import progress  # pylint: disable=g-import-not-at-top
  progress.set_display(common_flags.PROGRESS.value)


# What the machine refuses to store, and what to do about it.
_FULL = ("free some space or use another --output_dir / --cache_dir; "
         "finished files were not changed")
_FORBIDDEN = ("you may not write there; use another --output_dir / "
              "--cache_dir or fix its permissions")
_STORAGE_FIXES = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: _FULL,
    errno.EROFS: "the file system is read-only; use a writable "
                 "--output_dir / --cache_dir",
    errno.EACCES: _FORBIDDEN,
    errno.EPERM: _FORBIDDEN,
    errno.ENOTDIR: "a path component is a file, not a directory",
    errno.EISDIR: "a directory stands where a file is to be written",
}


def storage_error(error: OSError) -> Optional[str]:
  """A one-line message for a file-system error the user can fix (full
  disk, read-only or forbidden place), naming the file and the fix; None
  for other errors (a bug: they keep their traceback)."""
  fix = _STORAGE_FIXES.get(error.errno)
  if fix is None:
    return None
  where = f": {error.filename!r}" if error.filename else ""
  return f"{error.strerror or error}{where}; {fix}."


_ENTRY_POINTS = {}


def run():
  """Console-script entry point."""
  import wemem_tf  # pylint: disable=g-import-not-at-top,unused-import  (Keras 2 first)
  _ENTRY_POINTS.update(_load_entry_points())
  app.run(_main)


if __name__ == "__main__":
  run()
