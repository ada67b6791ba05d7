"""Helpers for the CLI's tests: run a subcommand in-process with flags."""

from absl import flags
from absl.testing import flagsaver

from wemem_cli import main as main_lib

FLAGS = flags.FLAGS


def run_command(module, *args):
  """Runs `module.main` with the flags `args` (restored afterwards)."""
  with flagsaver.flagsaver():
    FLAGS(["wemem", *args])
    return module.main(["cmd"])


def run_cli(*args) -> int:
  """`wemem ARGS` through the entry point's dispatch and error handling;
  returns its exit status."""
  # pylint: disable=protected-access
  if not main_lib._ENTRY_POINTS:
    main_lib._ENTRY_POINTS.update(main_lib._load_entry_points())
  with flagsaver.flagsaver():
    FLAGS(["wemem", *args[1:]])
    return main_lib._main(["wemem", args[0]])
