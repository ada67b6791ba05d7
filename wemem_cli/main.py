"""`wemem SUBCOMMAND --flags...`: dispatches to the subcommand modules.

Every subcommand module defines its own flags (shared ones live in
`common_flags`) and a `main(argv)` function.
"""

import importlib
import sys

from absl import app

# Subcommand name -> module path. Modules are imported up front so that all
# flags exist before absl parses the command line.
SUBCOMMANDS = {
    "prune": "wemem_cli.prune_cmd",
    "attack": "wemem_cli.attack_cmd",
}

_USAGE = "usage: wemem {%s} [--flags] [--flagfile=configs/...]" % "|".join(
    SUBCOMMANDS)


def _load_modules():
  return {name: importlib.import_module(path)
          for name, path in SUBCOMMANDS.items()}


def _main(argv):
  if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
    raise app.UsageError(_USAGE + (f"\nunknown subcommand {argv[1]!r}"
                                   if len(argv) >= 2 else ""))
  return _MODULES[argv[1]].main(argv[1:])


_MODULES = {}


def run():
  """Console-script entry point."""
  import wemem_tf  # pylint: disable=g-import-not-at-top,unused-import  (Keras 2 first)
  _MODULES.update(_load_modules())
  app.run(_main)


if __name__ == "__main__":
  run()
