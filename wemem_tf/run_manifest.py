"""Run manifests: what a run directory was produced from.

A manifest records the seed, the settings (flags), the versions of the
packages that shape results, the data fingerprint and the git commit, so a
result can be traced and reproduced.
"""

import datetime
import importlib.metadata
import os
import platform
import subprocess
from typing import Any, Dict, Optional

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
