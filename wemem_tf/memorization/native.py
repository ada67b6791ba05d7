"""Optional native kernels for the vectorized ensemble (built on first use).

TensorFlow's CPU kernels for sparse inputs (`tf.sparse.sparse_dense_matmul`,
`tf.sparse.segment_sum`) are single-threaded and, on Location, no faster than
the dense matmul; its random number generators cost ~8 ns per number here;
and its Adam needs the L2 term as a separate pass. These custom CPU ops do
what the ensemble needs (K members, binary inputs as CSR, batch positions idx
(K, B)):

* `WememRowSumReluDropout`: the first layer, h1 = dropout(relu(x @ W + b)),
  with x @ W computed as the sum of the weight rows of each record's active
  features (the record's ~54 ones of 446 on Location), accumulated in
  registers.
* `WememRowSumReluDropoutAdam`: that layer's backward pass and Adam step in
  one kernel: from dh1 it forms, feature row by feature row, the gradient
  decay * W + X^T dpre (and the bias gradient) and applies Adam at once; the
  gradient is never stored.
* `WememAdam`: Keras' Adam with the L2 term, one pass, for the other layers.
* `WememDropoutMask`: a float mask of 0 and 1 / (1 - rate) from a counter-
  based hash (two rounds of a 32-bit integer finalizer), ~0.6 ns/element.
* `WememRowSum` / `WememRowSumGrad`: the plain first-layer product and its
  gradient (`row_sum`, differentiable).
* `WememMlpEpoch`: a whole epoch of K plain-MLP members (sparse binary
  first layer, then Dense layers): each member runs all its steps back to
  back, one member a task on TensorFlow's CPU threads. A step is what the
  ops above and TensorFlow's matmuls do in the per-step graph (the same
  dropout masks, Adam step counts and L2 terms); the dense layers' products
  use Eigen's matrix product.

Adam here is Keras' (`keras.optimizers.Adam`: epsilon 1e-7 outside the
square root, bias correction folded into the step size); tests check that
members follow `TrainingLoop` step for step.

The C++ sources are package files, `kernels/*.cc` and `kernels/*.h` beside
this module (one .cc file per concept; `kernels/adam.h` holds the one Adam
update they all use). They are compiled once per machine, as one
translation unit, with the system's C++ compiler and TensorFlow's flags
into one library (~35 s of CPU) and loaded with `tf.load_op_library`.

The library lives in a cache folder ($WEMEM_TF_CACHE, default
~/.cache/wemem_tf) that must be the user's own: it is created with mode
0700, and one that another user owns or that group or others may write is
refused. The library's name is keyed by a SHA-256 over the sources, the
compiler flags, TensorFlow's version and flags and the CPU; a JSON sidecar
beside it records the library's own SHA-256, checked before every load. A
library that fails the check (empty, changed, no sidecar) is rebuilt once,
with a warning.
Where no compiler is available, the build fails, the cache folder is
refused, or WEMEM_TF_NATIVE=0 is set, `load()` returns None (warning once)
and callers use plain TensorFlow ops, about 2-3x slower. They draw the
same dropout masks as the kernels (`ensemble.hash_dropout_mask` computes
the kernels' hash in TensorFlow ops), so the fallback trains the same
members and its scores equal the native path's up to float rounding.
"""

import contextlib
import hashlib
import importlib.resources
import json
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from typing import Dict, Iterator, Optional

import tensorflow as tf

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Not POSIX.
  fcntl = None

# Hidden visibility keeps the kernels' own Eigen instantiations (built for
# this machine's instruction set) from being interposed by TensorFlow's.
_CXX_FLAGS = ("-shared", "-fPIC", "-O3", "-march=native", "-fno-math-errno",
              "-fvisibility=hidden", "-fvisibility-inlines-hidden")
_KERNELS = "kernels"  # The sources' folder in this package.
_SOURCE_SUFFIXES = (".cc", ".h")
# Ops whose outputs (or effects) get no gradient.
_NO_GRADIENT_OPS = ("WememDropoutMask", "WememAdam", "WememRowSumReluDropout",
                    "WememRowSumReluDropoutAdam", "WememMlpEpoch",
                    "WememCohortEpoch")

_lock = threading.Lock()
_module = None
_tried = False
_error = None


def _cpu_tag() -> str:
  """Identifies the instruction set the build used (-march=native)."""
  flags = ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith(("flags", "model name")):
          flags += line
  except OSError:
    flags = platform.processor()
  return flags


def cache_dir() -> str:
  return os.environ.get("WEMEM_TF_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "wemem_tf")


def _sources() -> Dict[str, bytes]:
  """The kernel sources (package files kernels/*.cc, *.h): name -> bytes,
  in name order."""
  folder = importlib.resources.files(__name__.rpartition(".")[0]).joinpath(
      _KERNELS)
  found = {}
  if folder.is_dir():
    found = {entry.name: entry.read_bytes() for entry in folder.iterdir()
             if entry.name.endswith(_SOURCE_SUFFIXES) and entry.is_file()}
  if not any(name.endswith(".cc") for name in found):
    raise RuntimeError(f"no kernel sources (*.cc) in {folder}")
  return dict(sorted(found.items()))


def _build_key(sources: Dict[str, bytes]) -> str:
  """SHA-256 over the sources, the flags, TensorFlow's build and the CPU."""
  digest = hashlib.sha256()
  for name, data in sources.items():
    digest.update(f"{name}\0{len(data)}\0".encode())
    digest.update(data)
  digest.update("\n".join([
      " ".join(_CXX_FLAGS), tf.__version__,
      " ".join(tf.sysconfig.get_compile_flags()),
      " ".join(tf.sysconfig.get_link_flags()), _cpu_tag()]).encode())
  return digest.hexdigest()


def _library_path(key: Optional[str] = None) -> str:
  """The cached library of the build `key` (default: of the sources now)."""
  key = key or _build_key(_sources())
  return os.path.join(cache_dir(), f"wemem_kernels_{key[:16]}.so")


def _sidecar_path(library: str) -> str:
  """The JSON file beside `library` that records its key and SHA-256."""
  return os.path.splitext(library)[0] + ".json"


def _check_cache_dir(folder: str) -> Optional[str]:
  """Creates `folder` (mode 0700) when missing; returns why it must not be
  used (another user's, or writable by group or others), or None."""
  try:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.stat(folder)
  except OSError as e:
    return f"cache folder {folder} unusable: {e}"
  if not stat.S_ISDIR(info.st_mode):
    return f"cache folder {folder} is not a folder"
  if hasattr(os, "getuid") and info.st_uid != os.getuid():
    return (f"cache folder {folder} belongs to uid {info.st_uid}, not to "
            f"this user (uid {os.getuid()}); set WEMEM_TF_CACHE to a folder "
            "of your own")
  if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
    return (f"cache folder {folder} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):o}); chmod 700 it or set "
            "WEMEM_TF_CACHE to a private folder")
  return None


def _file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _verify(library: str, key: str) -> Optional[str]:
  """Why `library` must not be loaded ("missing", empty, no or another
  sidecar, content hash differs), or None when it matches its sidecar."""
  try:
    info = os.lstat(library)
  except FileNotFoundError:
    return "missing"
  if not stat.S_ISREG(info.st_mode):
    return "not a regular file"
  if info.st_size == 0:
    return "empty file"
  try:
    with open(_sidecar_path(library)) as f:
      record = json.load(f)
  except FileNotFoundError:
    return "no sidecar"
  except (OSError, ValueError) as e:
    return f"unreadable sidecar: {e}"
  if not isinstance(record, dict) or record.get("key") != key:
    return "the sidecar is another build's"
  if record.get("sha256") != _file_sha256(library):
    return "its SHA-256 differs from the sidecar's"
  return None


@contextlib.contextmanager
def _build_lock(library: str) -> Iterator[None]:
  """Holds an exclusive lock for `library` (checking, building, loading), so
  that concurrent processes build it once and never load it half-written."""
  if fcntl is None:
    yield
    return
  fd = os.open(library + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # Releases the lock.


def _build(library: str, key: str, sources: Dict[str, bytes]) -> None:
  """Compiles `sources` into `library` and writes its sidecar, each into a
  temporary file in the same folder, then moved into place atomically."""
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which(
      "c++")
  if not compiler:
    raise RuntimeError("no C++ compiler (g++) found")
  folder = os.path.dirname(library)
  with tempfile.TemporaryDirectory(dir=folder) as tmp:
    os.mkdir(os.path.join(tmp, "src"))
    for name, data in sources.items():
      with open(os.path.join(tmp, "src", name), "wb") as f:
        f.write(data)
    # One translation unit: the .cc files in name order.
    unity = os.path.join(tmp, "kernels.cc")
    with open(unity, "w") as f:
      f.writelines(f'#include "src/{name}"\n' for name in sources
                   if name.endswith(".cc"))
    out = os.path.join(tmp, "kernels.so")
    cmd = [compiler, *_CXX_FLAGS, unity, "-o", out,
           *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    sidecar = os.path.join(tmp, "kernels.json")
    with open(sidecar, "w") as f:
      json.dump({"key": key, "sha256": _file_sha256(out)}, f)
    os.replace(out, library)
    os.replace(sidecar, _sidecar_path(library))


def _open_library(library: str):
  """tf.load_op_library (a function of its own so that tests can stub it)."""
  return tf.load_op_library(library)


def _load_checked(library: str, key: str, sources: Dict[str, bytes]):
  """Loads `library` once it matches its sidecar, building it when missing
  and rebuilding it once (with a warning) when it fails the check."""
  with _build_lock(library):
    problem = _verify(library, key)
    if problem is not None:
      if problem != "missing":
        warnings.warn(
            f"wemem_tf: cached native kernel library {library} fails its "
            f"check ({problem}); rebuilding it", RuntimeWarning, stacklevel=3)
      _build(library, key, sources)
      problem = _verify(library, key)
      if problem is not None:
        raise RuntimeError(f"the library just built, {library}, fails its "
                           f"check ({problem})")
    return _open_library(library)


def load():
  """The compiled op module, or None (with one warning) when unavailable."""
  global _module, _tried, _error
  with _lock:
    if _tried:
      return _module
    _tried = True
    if os.environ.get("WEMEM_TF_NATIVE", "1") == "0":
      _error = "disabled by WEMEM_TF_NATIVE=0"
      return None
    try:
      refused = _check_cache_dir(cache_dir())
      if refused is not None:
        raise RuntimeError(refused)
      sources = _sources()
      key = _build_key(sources)
      module = _load_checked(_library_path(key), key, sources)
      for op in _NO_GRADIENT_OPS:
        try:
          tf.no_gradient(op)
        except KeyError:  # Registered by an earlier load in this process.
          pass
      _module = module
    except Exception as e:  # pylint: disable=broad-except
      _error = str(e)
      warnings.warn(
          "wemem_tf: native ensemble kernels unavailable, using plain "
          f"TensorFlow ops (slower): {e}", RuntimeWarning, stacklevel=2)
      _module = None
    return _module


def unavailable_reason() -> Optional[str]:
  """Why `load()` returned None, or None when it did not (or was not run)."""
  return _error


def adam_l2(module, var: tf.Variable, m: tf.Variable, v: tf.Variable,
            grad: tf.Tensor, lr, beta1_power, beta2_power, decay,
            beta1: float, beta2: float, epsilon: float):
  """In place: Keras' Adam step on `var` with gradient grad + decay * var."""
  return module.wemem_adam(var.handle, m.handle, v.handle, grad, lr,
                           beta1_power, beta2_power, decay, beta1=beta1,
                           beta2=beta2, epsilon=epsilon)


def row_sum_relu_dropout_adam(module, kernel, kernel_m, kernel_v, bias,
                              bias_m, bias_v, h1, dh1, cols, splits, idx, lr,
                              beta1_power, beta2_power, decay, rate: float,
                              beta1: float, beta2: float, epsilon: float):
  """In place: Adam on the fused first layer's kernel (K, F, H) and bias.

  h1 is `wemem_row_sum_relu_dropout`'s output and dh1 the loss gradient with
  respect to it; the gradients (with the L2 term) are never stored.
  """
  return module.wemem_row_sum_relu_dropout_adam(
      kernel.handle, kernel_m.handle, kernel_v.handle, bias.handle,
      bias_m.handle, bias_v.handle, h1, dh1, cols, splits, idx, lr,
      beta1_power, beta2_power, decay, rate=rate, beta1=beta1, beta2=beta2,
      epsilon=epsilon)


def row_sum(module, weights: tf.Tensor, cols: tf.Tensor, splits: tf.Tensor,
            idx: tf.Tensor, decay: tf.Tensor) -> tf.Tensor:
  """out (K, B, H) = sum of weights[k, f] over the ones f of record idx[k, b].

  The gradient with respect to `weights` includes `decay * weights` (the L2
  term of the optimizer), so callers must not add it again.
  """

  @tf.custom_gradient
  def forward(w):
    out = module.wemem_row_sum(w, cols, splits, idx)

    def grad(dy):
      return module.wemem_row_sum_grad(dy, w, cols, splits, idx, decay)

    return out, grad

  return forward(weights)
