"""Atomic artifact writes (temp file + rename) and pickle-free reads."""

import json
import os
import tempfile
from typing import Any, Dict, Optional

_UMASK = os.umask(0)
os.umask(_UMASK)

import numpy as np


def _named(error: OSError, path: str) -> OSError:
  """`error` naming `path` (a write to a full disk names no file)."""
  if error.filename is not None or error.errno is None:
    return error
  return OSError(error.errno, error.strerror, path)


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
  except OSError as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise _named(e, path) from e
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


MODEL_METADATA_ATTR = "wemem_metadata"


def atomic_save_model(model, path: str,
                      metadata: Optional[Dict[str, Any]] = None) -> None:
  """Saves a Keras model (format from the suffix, e.g. .keras) atomically.

  `metadata` (JSON-ready; .h5 only) is stored as the HDF5 attribute
  `MODEL_METADATA_ATTR` (see `read_model_metadata`): what the model was
  trained on travels with the file.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  base = os.path.basename(path)
  tmp = os.path.join(directory, f".tmp-{os.getpid()}-{base}")
  try:
    model.save(tmp)
    if metadata is not None and path.endswith((".h5", ".hdf5")):
      import h5py  # pylint: disable=g-import-not-at-top
      with h5py.File(tmp, "a") as f:
        f.attrs[MODEL_METADATA_ATTR] = json.dumps(metadata, sort_keys=True,
                                                  default=json_default)
    os.replace(tmp, path)
  except OSError as e:
    raise _named(e, path) from e
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def read_model_metadata(path: str) -> Optional[Dict[str, Any]]:
  """The metadata `atomic_save_model` stored in an .h5 file, or None."""
  if not path.endswith((".h5", ".hdf5")):
    return None
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, "r") as f:
      text = f.attrs.get(MODEL_METADATA_ATTR)
  except OSError:
    return None
  if text is None:
    return None
  try:
    value = json.loads(text)
  except ValueError:
    return None
  return value if isinstance(value, dict) else None
