"""Tests of the native kernels' build: the C++ sources are package files, the
cache folder must be the user's own, and a cached library is loaded only
when it matches the SHA-256 its sidecar records (else it is rebuilt once).

The rebuild tests use a stand-in compiler ($CXX) that copies a library file
and a stub in place of `tf.load_op_library`, so they take milliseconds; one
test builds and loads the real library, in a child process (~35 s of CPU),
so that this process never loads a second copy of the ops.
"""

# The build's private helpers are under test.
# pylint: disable=protected-access

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import types
import warnings

import pytest

from wemem_tf.memorization import native

KERNELS = pathlib.Path(native.__file__).parent / "kernels"
ROOT = pathlib.Path(native.__file__).parents[2]
# Spelled in two parts so that this file does not hold the marker itself.
REGISTER_MARKER = "REGISTER_" + "OP("
LOADED = object()  # What the stubbed tf.load_op_library returns.


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
  """Every test loads anew; the module's state is restored afterwards."""
  monkeypatch.setattr(native, "_tried", False)
  monkeypatch.setattr(native, "_module", None)
  monkeypatch.setattr(native, "_error", None)
  monkeypatch.delenv("WEMEM_TF_NATIVE", raising=False)


@pytest.fixture
def stubs(tmp_path, monkeypatch):
  """A private cache folder, a stand-in compiler and a stub loader.

  Returns a namespace: `cache` (the folder, $WEMEM_TF_CACHE), `key`,
  `library` and `sidecar` (what `load()` will use), `pristine` (the file the
  compiler "builds"), `fail` (a file whose presence makes the compiler
  fail), `builds()` (compiler runs so far) and `opened` (the SHA-256 of the
  library at each load).
  """
  cache = tmp_path / "cache"
  cache.mkdir(mode=0o700)
  monkeypatch.setenv("WEMEM_TF_CACHE", str(cache))
  pristine = tmp_path / "pristine.so"
  pristine.write_bytes(b"\x7fELF stand-in library " * 64)
  log, fail = tmp_path / "compiler.log", tmp_path / "fail"
  compiler = tmp_path / "fake-cxx"
  compiler.write_text(
      f"#!{sys.executable}\n"
      "import os, shutil, sys\n"
      f"open({str(log)!r}, 'a').write('build\\n')\n"
      f"if os.path.exists({str(fail)!r}):\n"
      "  sys.exit('compiler error')\n"
      f"shutil.copyfile({str(pristine)!r}, sys.argv[sys.argv.index('-o') + 1])"
      "\n")
  compiler.chmod(0o700)
  monkeypatch.setenv("CXX", str(compiler))
  opened = []

  def open_library(path):
    opened.append(native._file_sha256(path))
    return LOADED

  monkeypatch.setattr(native, "_open_library", open_library)
  key = native._build_key(native._sources())
  library = pathlib.Path(native._library_path(key))
  return types.SimpleNamespace(
      cache=cache, key=key, library=library,
      sidecar=pathlib.Path(native._sidecar_path(str(library))),
      pristine=pristine, fail=fail, opened=opened,
      builds=lambda: len(log.read_text().split()) if log.exists() else 0)


def _our_warnings(record):
  return [str(w.message) for w in record
          if issubclass(w.category, RuntimeWarning) and "wemem_tf" in
          str(w.message)]


def test_sources_are_package_files():
  sources = native._sources()
  assert "adam.h" in sources
  assert any(name.endswith(".cc") for name in sources)
  assert all(name.endswith((".cc", ".h")) for name in sources)
  on_disk = {p.name: p.read_bytes() for p in KERNELS.iterdir()
             if p.suffix in (".cc", ".h")}
  assert sources == on_disk
  assert any(REGISTER_MARKER in data.decode() for data in sources.values())
  setup = ROOT / "setup.py"
  if setup.exists():  # Shipped as package data.
    assert '"kernels/*.cc", "kernels/*.h"' in setup.read_text()


def test_no_python_file_holds_the_cpp():
  # The repository in a source checkout, else the installed package.
  top = ROOT if (ROOT / "setup.py").exists() else KERNELS.parents[1]
  holders = []
  for directory, dirs, files in os.walk(top):
    dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        with open(path, encoding="utf-8", errors="replace") as f:
          if REGISTER_MARKER in f.read():
            holders.append(path)
  assert not holders


def test_cache_folder_is_created_private(tmp_path):
  folder = tmp_path / "new" / "cache"
  assert native._check_cache_dir(str(folder)) is None
  assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777], ids=oct)
def test_cache_writable_by_group_or_others_is_refused(stubs, mode):
  stubs.cache.chmod(mode)
  with pytest.warns(RuntimeWarning) as record:
    assert native.load() is None
    assert native.load() is None  # Warns once.
  assert len(_our_warnings(record)) == 1
  assert "writable by group or others" in native.unavailable_reason()
  assert stubs.builds() == 0 and not stubs.opened
  assert not stubs.library.exists()


def test_cache_of_another_user_is_refused(stubs, monkeypatch):
  uid = os.getuid()
  monkeypatch.setattr(os, "getuid", lambda: uid + 1)
  with pytest.warns(RuntimeWarning, match="not to this user"):
    assert native.load() is None
  assert f"belongs to uid {uid}" in native.unavailable_reason()
  assert stubs.builds() == 0 and not stubs.opened


def test_missing_library_is_built_and_loaded_without_warning(stubs):
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    assert native.load() is LOADED
  assert stubs.builds() == 1
  assert stubs.library.read_bytes() == stubs.pristine.read_bytes()
  record = json.loads(stubs.sidecar.read_text())
  assert record == {"key": stubs.key,
                    "sha256": native._file_sha256(str(stubs.pristine))}
  assert stubs.opened == [record["sha256"]]
  assert native.unavailable_reason() is None


def _flip_a_byte(s):
  data = bytearray(s.library.read_bytes())
  data[len(data) // 2] ^= 0xFF
  s.library.write_bytes(bytes(data))


def _truncate(s):
  s.library.write_bytes(b"")


def _drop_sidecar(s):
  s.sidecar.unlink()


def _other_build(s):
  record = json.loads(s.sidecar.read_text())
  s.sidecar.write_text(json.dumps({**record, "key": "0" * 64}))


def _corrupt_sidecar(s):
  s.sidecar.write_text("{not json")


@pytest.mark.parametrize("tamper", [_flip_a_byte, _truncate, _drop_sidecar,
                                    _other_build, _corrupt_sidecar])
def test_library_failing_its_check_is_rebuilt_once(stubs, tamper):
  assert native.load() is LOADED  # The first build.
  native._tried = False
  tamper(stubs)
  with pytest.warns(RuntimeWarning) as record:
    assert native.load() is LOADED
  messages = _our_warnings(record)
  assert len(messages) == 1 and "rebuilding" in messages[0], messages
  assert stubs.builds() == 2
  good = native._file_sha256(str(stubs.pristine))
  assert stubs.opened == [good, good]  # Never the tampered file.
  assert native._verify(str(stubs.library), stubs.key) is None


def test_intact_library_is_loaded_without_rebuild(stubs):
  assert native.load() is LOADED
  native._tried = False
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    assert native.load() is LOADED
  assert stubs.builds() == 1 and len(stubs.opened) == 2


def test_failed_rebuild_falls_back_to_tensorflow_ops(stubs):
  assert native.load() is LOADED
  native._tried = False
  _flip_a_byte(stubs)
  stubs.fail.touch()  # The compiler fails from now on.
  with pytest.warns(RuntimeWarning) as record:
    assert native.load() is None
  messages = _our_warnings(record)
  assert len(messages) == 2, messages
  assert "rebuilding" in messages[0] and "unavailable" in messages[1]
  assert "compiler error" in native.unavailable_reason()
  assert len(stubs.opened) == 1  # Only the first, intact library.


def test_real_build_loads_runs_and_is_checked(tmp_path, monkeypatch):
  """Builds the kernels for real in a child process, which loads them and
  runs an op; the library then matches its sidecar, and no longer does once
  a byte of it changes."""
  if not (os.environ.get("CXX") or shutil.which("g++") or
          shutil.which("c++")):
    pytest.skip("no C++ compiler")
  cache = tmp_path / "cache"
  env = dict(os.environ, WEMEM_TF_CACHE=str(cache), TF_USE_LEGACY_KERAS="1",
             TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("WEMEM_TF_NATIVE", None)
  child = (
      "import numpy as np, tensorflow as tf\n"
      "from wemem_tf.memorization import native\n"
      "m = native.load()\n"
      "assert m is not None, native.unavailable_reason()\n"
      "for op in ('wemem_row_sum', 'wemem_row_sum_grad', 'wemem_adam',\n"
      "           'wemem_dropout_mask', 'wemem_row_sum_relu_dropout',\n"
      "           'wemem_row_sum_relu_dropout_adam', 'wemem_mlp_epoch'):\n"
      "  assert hasattr(m, op), op\n"
      "mask = m.wemem_dropout_mask(tf.zeros([4, 1000]),\n"
      "                            tf.constant(7, tf.int64), rate=0.25)\n"
      "values = np.unique(mask.numpy())\n"
      "assert np.array_equal(values, np.float32([0, 1 / 0.75])), values\n"
      "print(native._library_path())\n")
  out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  assert stat.S_IMODE(cache.stat().st_mode) == 0o700
  monkeypatch.setenv("WEMEM_TF_CACHE", str(cache))
  key = native._build_key(native._sources())
  library = native._library_path(key)
  assert out.stdout.split()[-1] == library
  assert native._verify(library, key) is None
  data = bytearray(pathlib.Path(library).read_bytes())
  data[len(data) // 2] ^= 0xFF
  pathlib.Path(library).write_bytes(bytes(data))
  assert "SHA-256 differs" in native._verify(library, key)
