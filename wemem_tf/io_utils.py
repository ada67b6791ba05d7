"""Atomic artifact writes (temp file + rename) and pickle-free reads."""

import json
import os
import tempfile
from typing import Any, Dict

_UMASK = os.umask(0)
os.umask(_UMASK)

import numpy as np


def _atomic_write(path: str, write_fn) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                             suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      write_fn(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual mode
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_save_npz(path: str, **arrays: Any) -> None:
  """Writes arrays to `path` (.npz) so readers never see a partial file."""
  _atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write_json(path: str, obj: Any) -> None:
  """Writes JSON (indented, sorted keys) atomically."""
  text = json.dumps(obj, indent=2, sort_keys=True, default=json_default)
  _atomic_write(path, lambda f: f.write(text.encode() + b"\n"))


def atomic_write_bytes(path: str, data: bytes) -> None:
  _atomic_write(path, lambda f: f.write(data))


def json_default(value):
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  to_json = getattr(value, "to_json", None)
  if callable(to_json) and not isinstance(value, type):
    return to_json()  # library objects that describe themselves
  raise TypeError(f"not JSON serializable: {type(value).__name__}")


def load_npz(path: str) -> Dict[str, np.ndarray]:
  """Reads every array of an .npz without allowing pickled objects."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path!r} not found.")
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except Exception as e:
    raise ValueError(f"{path!r} is not a readable .npz file: {e}") from e


def atomic_save_model(model, path: str) -> None:
  """Saves a Keras model (format from the suffix, e.g. .keras) atomically."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  base = os.path.basename(path)
  tmp = os.path.join(directory, f".tmp-{os.getpid()}-{base}")
  try:
    model.save(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
