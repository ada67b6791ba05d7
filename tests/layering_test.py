"""The packages import each other in one direction only:

  wemem_cli → wemem_eval → {attacks, wemem_tf},  attacks → wemem_tf,

and `attacks` (the attacks proper) needs neither KerasTuner nor anything
that trains the victim and the attacker's models (that is `wemem_eval`).
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN = {
    "wemem_tf": {"attacks", "wemem_eval", "wemem_cli"},
    "attacks": {"wemem_eval", "wemem_cli", "keras_tuner"},
    "wemem_eval": {"wemem_cli"},
}


def _imported_packages(path):
  """Top-level package names that the module at `path` imports."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(a.name.split(".")[0] for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module.split(".")[0])
  return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_layering(package):
  bad = []
  for directory, dirs, files in os.walk(os.path.join(ROOT, package)):
    dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(directory, f)
        wrong = _imported_packages(path) & FORBIDDEN[package]
        if wrong:
          bad.append(f"{os.path.relpath(path, ROOT)} imports {sorted(wrong)}")
  assert not bad, "\n".join(bad)
