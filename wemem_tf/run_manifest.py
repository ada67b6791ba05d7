"""Run manifests: what a run directory was produced from.

A manifest records the seed, the settings (flags), the versions of the
packages that shape results, the data fingerprint, the git commit and the
machine (CPU model and the instruction sets that pick TensorFlow's float
kernels), so a result can be traced and reproduced.

Run directories are transactions: `check_reuse` refuses one that holds
another seed's or dataset's run, `RunLock` keeps two commands out of one
directory, and `staged` lets a command write everything into a temporary
sibling that replaces the directory's files only when it succeeds.
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import tempfile
from typing import Any, Dict, Iterator, Optional

from wemem_tf import io_utils

_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization",
             "tensorflow-privacy", "keras-tuner", "numpy", "scikit-learn",
             "absl-py", "wemem_tf")


def package_versions() -> Dict[str, Optional[str]]:
  """{distribution name: installed version or None}."""
  versions = {}
  for name in _PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


# CPU features that change which float kernels TensorFlow (Eigen, oneDNN)
# runs, and so the last bits of every sum: the same code, seed and flags
# give bit-identical models on one machine, not across these.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
              "avx_vnni", "amx_bf16", "amx_int8")


def machine(cpuinfo: str = "/proc/cpuinfo") -> Dict[str, Any]:
  """The machine's CPU model, float-relevant ISA flags and core count."""
  model, flags = platform.processor() or None, set()
  try:
    with open(cpuinfo, encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
          model = value.strip()
        elif key.strip() == "flags":
          flags = set(value.split())
        if model and flags:
          break
  except OSError:
    pass
  return {"cpu": model, "isa": [f for f in _ISA_FLAGS if f in flags],
          "cpus": os.cpu_count(), "system": platform.system(),
          "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def git_commit() -> Optional[str]:
  """The commit of the source tree wemem_tf runs from, if it is a checkout."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"],
                         capture_output=True, text=True, timeout=10, check=True)
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True,
                           text=True, timeout=10, check=True).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    return None


def build_manifest(seed: int, settings: Dict[str, Any],
                   data_fingerprint: Optional[str],
                   command: Optional[str] = None) -> Dict[str, Any]:
  """The manifest as a JSON-ready dict."""
  return {
      "command": command,
      "seed": int(seed),
      "settings": settings,
      "data_fingerprint": data_fingerprint,
      "packages": package_versions(),
      "python": platform.python_version(),
      "machine": machine(),
      "git_commit": git_commit(),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
  }


def write_manifest(run_dir: str, seed: int, settings: Dict[str, Any],
                   data_fingerprint: Optional[str],
                   command: Optional[str] = None,
                   name: str = "manifest.json") -> str:
  """Writes `run_dir/name` atomically; returns its path."""
  path = os.path.join(run_dir, name)
  io_utils.atomic_write_json(path, build_manifest(seed, settings,
                                                  data_fingerprint, command))
  return path


# ---- run directories as transactions ---------------------------------------

LOCK_NAME = ".wemem.lock"


def check_reuse(run_dir: str, seed: int, data_fingerprint: Optional[str],
                overwrite: bool = False, name: str = "manifest.json") -> None:
  """Refuses a run directory that holds a run of another seed or dataset.

  Raises:
    ValueError: `run_dir/name` records another seed or data fingerprint
      (unless `overwrite`), or is unreadable; `run_dir` is a file.
  """
  if os.path.exists(run_dir) and not os.path.isdir(run_dir):
    raise ValueError(f"--output_dir {run_dir!r} is a file, not a directory.")
  path = os.path.join(run_dir, name)
  if overwrite or not os.path.isfile(path):
    return
  try:
    with open(path) as f:
      manifest = json.load(f)
    old_seed, old_data = manifest["seed"], manifest["data_fingerprint"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path!r} is not a readable run manifest ({e}); use "
                     "another --output_dir or --overwrite.") from e
  if old_seed != int(seed) or (data_fingerprint and old_data
                               and old_data != data_fingerprint):
    raise ValueError(
        f"--output_dir {run_dir!r} holds a run of seed {old_seed} on data "
        f"{str(old_data)[:12]}…; this command is seed {seed} on data "
        f"{str(data_fingerprint)[:12]}…. Use another --output_dir, or "
        "--overwrite to replace it.")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class RunLock:
  """An exclusive claim on a run directory while a command writes to it.

  The lock file (`LOCK_NAME`) holds the holder's pid and host. A second
  command on the same directory fails at once with a message naming the
  holder; a lock whose process is gone (killed) is taken over.
  """

  def __init__(self, run_dir: str):
    self.run_dir = run_dir
    self.path = os.path.join(run_dir, LOCK_NAME)
    self._held = False
    self._created = False

  def __enter__(self) -> "RunLock":
    if os.path.exists(self.run_dir) and not os.path.isdir(self.run_dir):
      raise ValueError(f"--output_dir {self.run_dir!r} is a file, not a "
                       "directory.")
    self._created = not os.path.isdir(self.run_dir)
    os.makedirs(self.run_dir, exist_ok=True)
    me = {"pid": os.getpid(), "host": platform.node()}
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._holder()
        if (holder and holder.get("host") == me["host"]
            and _pid_alive(int(holder.get("pid", -1)))):
          raise ValueError(
              f"another wemem command (pid {holder['pid']}) is using "
              f"{self.run_dir!r}; wait for it to finish or use another "
              "--output_dir.") from None
        try:  # stale: its process is gone
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(me, f)
      self._held = True
      return self
    raise ValueError(f"could not lock {self.run_dir!r}; another command is "
                     "taking it over; try again.")

  def _holder(self) -> Optional[Dict[str, Any]]:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return None

  def __exit__(self, *exc) -> None:
    if self._held:
      holder = self._holder()
      if holder and holder.get("pid") == os.getpid():
        os.remove(self.path)
      self._held = False
      if self._created and not os.listdir(self.run_dir):
        os.rmdir(self.run_dir)  # a failed first command leaves nothing


@contextlib.contextmanager
def staged(run_dir: str) -> Iterator[str]:
  """Writes into a temporary sibling of `run_dir`, published on success.

  Yields the staging folder. When the block ends normally its files move
  into `run_dir` (each with `os.replace`); when it raises they are deleted
  and `run_dir`'s files stay byte-identical.
  """
  parent = os.path.dirname(os.path.abspath(run_dir))
  os.makedirs(parent, exist_ok=True)
  stage = tempfile.mkdtemp(prefix=f".{os.path.basename(run_dir)}.staging-",
                           dir=parent)
  try:
    yield stage
    os.makedirs(run_dir, exist_ok=True)
    for root, _, files in os.walk(stage):
      target = os.path.join(run_dir, os.path.relpath(root, stage))
      os.makedirs(target, exist_ok=True)
      for name in files:
        os.replace(os.path.join(root, name), os.path.join(target, name))
  finally:
    shutil.rmtree(stage, ignore_errors=True)
