"""The Bazel BUILD files are current and load with `bazel query //...`."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen_build  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_build_files_are_up_to_date():
  for path, content in gen_build.expected_build_files().items():
    assert os.path.exists(path), f"missing {path}: run tools/gen_build.py"
    with open(path) as f:
      assert f.read() == content, f"stale {path}: run tools/gen_build.py"


@pytest.mark.skipif(shutil.which("bazel") is None, reason="bazel not installed")
def test_bazel_query_lists_every_module_and_test():
  out = subprocess.run(["bazel", "--batch", "query", "//..."], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  targets = set(out.stdout.split())
  for top in gen_build.PY_ROOTS:
    for directory, dirs, files in os.walk(os.path.join(ROOT, top)):
      dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
      package = os.path.relpath(directory, ROOT)
      for f in files:
        if f.endswith(".py") and f != "__init__.py":
          assert f"//{package}:{f[:-3]}" in targets, (package, f)
