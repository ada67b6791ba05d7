"""Dataset loaders with stable record indices and content fingerprints.

Every loader returns a `Dataset`: features `x` (float32, model-ready), labels
`y` (int64 in [0, num_classes)), and a SHA-256 `fingerprint` of the content.
Record `i` is row `i` of the dataset's canonical order (the file order, or for
CIFAR-10 the original train batches followed by the test batch), so an index
array identifies the same records on every machine.
"""

import dataclasses
import glob
import hashlib
import io
import os
import pickle
from typing import Callable, Dict, Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """An in-memory labelled dataset.

  Attributes:
    name: registry name, e.g. "location" (for the user's own data, the data
      file's stem; see `wemem_tf.data.user_data`).
    x: float32 features, shape (n, *feature_shape).
    y: int64 labels, shape (n,), values in [0, num_classes).
    num_classes: number of classes.
    fingerprint: hex SHA-256 of name, shapes, dtypes and the bytes of x and y
      (computed here when not given; user data passes its own, which does not
      depend on the name).
    heldout_mask: optional bool (n,): records the dataset itself designates as
      test data (CIFAR-10's test batch). When None the split protocol makes a
      fixed 80/20 pool/held-out split.
  """
  name: str
  x: np.ndarray
  y: np.ndarray
  num_classes: int
  fingerprint: str = ""
  heldout_mask: Optional[np.ndarray] = None

  def __post_init__(self):
    validate_examples(self.x, self.y, self.num_classes, what=self.name)
    if self.heldout_mask is not None:
      mask = np.asarray(self.heldout_mask)
      if mask.shape != (len(self.y),) or mask.dtype != bool:
        raise ValueError(
            f"{self.name}: heldout_mask must be bool of shape ({len(self.y)},),"
            f" got {mask.dtype} {mask.shape}.")
    if not self.fingerprint:
      object.__setattr__(self, "fingerprint", fingerprint_arrays(
          self.name, self.x, self.y, self.heldout_mask))

  def __len__(self) -> int:
    return len(self.y)

  @property
  def input_shape(self) -> Tuple[int, ...]:
    return tuple(self.x.shape[1:])

  def take(self, indices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (x[indices], y[indices]) after checking the indices."""
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
      raise ValueError("indices must be a 1-D integer array of record indices,"
                       f" got {indices.dtype} {indices.shape}.")
    if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
      raise ValueError(f"record indices must lie in [0, {len(self)}) for "
                       f"{self.name}; got range [{indices.min()}, "
                       f"{indices.max()}].")
    return self.x[indices], self.y[indices]


def validate_examples(x: np.ndarray, y: np.ndarray, num_classes: int,
                      what: str = "data") -> None:
  """Raises ValueError naming `what` if (x, y) is not a usable labelled set."""
  x = np.asarray(x)
  y = np.asarray(y)
  if x.ndim < 2:
    raise ValueError(f"{what}: x must have shape (n, features...), got "
                     f"{x.shape}.")
  if len(x) == 0:
    raise ValueError(f"{what}: the data is empty (0 records).")
  if y.shape != (len(x),):
    raise ValueError(f"{what}: y must have shape ({len(x)},) to match x, got "
                     f"{y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{what}: labels must be integers, got {y.dtype}.")
  if num_classes < 2:
    raise ValueError(f"{what}: num_classes must be >= 2, got {num_classes}.")
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(f"{what}: labels must lie in [0, {num_classes}), got "
                     f"range [{y.min()}, {y.max()}].")
  if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
    raise ValueError(f"{what}: x contains NaN or infinite values.")


def fingerprint_arrays(name: str, *arrays: Optional[np.ndarray]) -> str:
  """SHA-256 over the name and each array's dtype, shape and bytes."""
  digest = hashlib.sha256(name.encode())
  for array in arrays:
    if array is None:
      digest.update(b"none")
      continue
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def _require_file(path: str, expected: str) -> str:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"data file {path!r} not found; expected {expected}.")
  return path


def _load_npz(path: str, keys: Dict[str, Tuple[Optional[int], str]],
              expected: str) -> Dict[str, np.ndarray]:
  """Loads an .npz without pickle and checks each key's rank and kind."""
  _require_file(path, expected)
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError
    raise ValueError(f"data file {path!r} is not a readable .npz ({e}); "
                     f"expected {expected}.") from e
  for key, (ndim, kind) in keys.items():
    if key not in arrays:
      raise ValueError(f"data file {path!r} has no array {key!r} (has "
                       f"{sorted(arrays)}); expected {expected}.")
    if (ndim is not None and arrays[key].ndim != ndim) or (
        arrays[key].dtype.kind not in kind):
      raise ValueError(f"data file {path!r}: array {key!r} is "
                       f"{arrays[key].dtype} {arrays[key].shape}; expected "
                       f"{expected}.")
  if len({len(arrays[k]) for k in keys}) != 1:
    raise ValueError(f"data file {path!r}: arrays {sorted(keys)} differ in "
                     f"length; expected {expected}.")
  return arrays


def _require_binary(x: np.ndarray, path: str, expected: str) -> None:
  """Raises ValueError naming `path` unless every feature is 0 or 1."""
  bad = ~np.isin(x, (0, 1))
  if bad.any():
    row, col = np.argwhere(bad)[0]
    raise ValueError(f"data file {path!r}: {int(bad.sum())} feature values "
                     f"are not 0 or 1 (e.g. {x[row, col]!r} at record {row}, "
                     f"feature {col}); expected {expected}.")


def load_location(data_dir: str) -> Dataset:
  """Location (Foursquare Bangkok): 5,010 records, 446 binary features, 30 classes.

  Reads `location.npz` (x uint8 (n, 446), y int64 (n,)) from `data_dir`.
  """
  path = os.path.join(data_dir, "location.npz")
  expected = "location.npz with x uint8 (n, 446) in {0,1} and y int (n,) in [0, 30)"
  arrays = _load_npz(path, {"x": (2, "uib"), "y": (1, "iu")}, expected)
  if arrays["x"].shape[1] != 446:
    raise ValueError(f"data file {path!r}: x has {arrays['x'].shape[1]} "
                     f"features; expected {expected}.")
  _require_binary(arrays["x"], path, expected)
  return Dataset("location", arrays["x"].astype(np.float32),
                 arrays["y"].astype(np.int64), 30)


_CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
_CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def _cifar_dataset(images: np.ndarray, labels: np.ndarray,
                   heldout: np.ndarray) -> Dataset:
  x = (images.astype(np.float32) / 255.0 - _CIFAR_MEAN) / _CIFAR_STD
  return Dataset("cifar10", x, labels.astype(np.int64), 10,
                 heldout_mask=heldout.astype(bool))


def load_cifar10_subset(data_dir: str) -> Dataset:
  """The 5,000-image CIFAR-10 subset `cifar10.npz` (4,000 train, 1,000 test).

  `split` = 1 marks test-set images, which become the held-out records.
  """
  path = os.path.join(data_dir, "cifar10.npz")
  expected = ("cifar10.npz with x uint8 (n, 32, 32, 3), y int (n,) in [0, 10)"
              " and split uint8 (n,) (0 train, 1 test)")
  arrays = _load_npz(path, {"x": (4, "u"), "y": (1, "iu"), "split": (1, "uib")},
                     expected)
  if arrays["x"].shape[1:] != (32, 32, 3):
    raise ValueError(f"data file {path!r}: x has shape {arrays['x'].shape}; "
                     f"expected {expected}.")
  return _cifar_dataset(arrays["x"], arrays["y"], arrays["split"] == 1)


class _ArrayOnlyUnpickler(pickle.Unpickler):
  """Unpickler that only rebuilds plain containers and NumPy arrays.

  The CIFAR-10 python batches are pickles; this refuses any other global, so a
  tampered file cannot run code.
  """
  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
              ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
              ("numpy._core.multiarray", "_reconstruct"),
              ("numpy._core.multiarray", "scalar")}

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_cifar_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
  expected = "a CIFAR-10 python batch (dict with b'data' (n, 3072) and b'labels')"
  _require_file(path, expected)
  try:
    with open(path, "rb") as f:
      batch = _ArrayOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    data = np.asarray(batch[b"data"], np.uint8)
    labels = np.asarray(batch[b"labels"], np.int64)
  except Exception as e:
    raise ValueError(f"data file {path!r} is not {expected}: {e}") from e
  if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
    raise ValueError(f"data file {path!r}: data {data.shape}, labels "
                     f"{labels.shape}; expected {expected}.")
  return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10_batches(data_dir: str) -> Dataset:
  """Standard `cifar-10-batches-py` directory: 50,000 train + 10,000 test."""
  root = data_dir
  if os.path.isdir(os.path.join(data_dir, "cifar-10-batches-py")):
    root = os.path.join(data_dir, "cifar-10-batches-py")
  parts = [_read_cifar_batch(os.path.join(root, f"data_batch_{i}"))
           for i in range(1, 6)]
  test = _read_cifar_batch(os.path.join(root, "test_batch"))
  images = np.concatenate([p[0] for p in parts] + [test[0]])
  labels = np.concatenate([p[1] for p in parts] + [test[1]])
  heldout = np.zeros(len(labels), bool)
  heldout[-len(test[1]):] = True
  return _cifar_dataset(images, labels, heldout)


def load_cifar10(data_dir: str) -> Dataset:
  """CIFAR-10 from `cifar10.npz` (subset) or a `cifar-10-batches-py` folder."""
  if os.path.isfile(os.path.join(data_dir, "cifar10.npz")):
    return load_cifar10_subset(data_dir)
  if glob.glob(os.path.join(data_dir, "**", "data_batch_1"), recursive=True):
    return load_cifar10_batches(data_dir)
  raise FileNotFoundError(
      f"no CIFAR-10 data in {data_dir!r}; expected cifar10.npz or a "
      "cifar-10-batches-py directory with data_batch_1..5 and test_batch.")


def load_mnist(data_dir: str) -> Dataset:
  """MNIST from `mnist_5k.npz` or `mnist.npz` (x uint8 (n, 28, 28), y (n,)).

  `mnist.npz` in Keras' layout (x_train, y_train, x_test, y_test) also works;
  its test images become the held-out records.
  """
  expected = "an .npz with x uint8 (n, 28, 28) and y int (n,) in [0, 10)"
  keras_path = os.path.join(data_dir, "mnist.npz")
  if os.path.isfile(keras_path):
    tr = _load_npz(keras_path, {"x_train": (3, "u"), "y_train": (1, "iu")},
                   "mnist.npz with x_train/y_train/x_test/y_test")
    te = _load_npz(keras_path, {"x_test": (3, "u"), "y_test": (1, "iu")},
                   "mnist.npz with x_train/y_train/x_test/y_test")
    images = np.concatenate([tr["x_train"], te["x_test"]])
    labels = np.concatenate([tr["y_train"], te["y_test"]])
    heldout = np.arange(len(labels)) >= len(tr["y_train"])
  else:
    arrays = _load_npz(os.path.join(data_dir, "mnist_5k.npz"),
                       {"x": (3, "u"), "y": (1, "iu")}, expected)
    images, labels, heldout = arrays["x"], arrays["y"], None
  if images.shape[1:] != (28, 28):
    raise ValueError(f"MNIST images in {data_dir!r} have shape "
                     f"{images.shape[1:]}; expected (28, 28).")
  x = (images.astype(np.float32) / 255.0)[..., None]
  return Dataset("mnist", x, labels.astype(np.int64), 10,
                 heldout_mask=heldout)


def _load_label_first_csv(path: str, num_features: int, expected: str
                          ) -> Tuple[np.ndarray, np.ndarray]:
  _require_file(path, expected)
  try:
    table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
  except ValueError as e:
    raise ValueError(f"data file {path!r} is not {expected}: {e}") from e
  if table.shape[1] != num_features + 1:
    raise ValueError(f"data file {path!r} has {table.shape[1]} columns; "
                     f"expected {expected}.")
  return table[:, 1:], table[:, 0].astype(np.int64)


def load_purchase100(data_dir: str) -> Dataset:
  """Purchase100 from the standard `dataset_purchase` file (Shokri et al.).

  Each line: label (1..100), then 600 binary features, comma separated.
  """
  path = os.path.join(data_dir, "dataset_purchase")
  expected = "dataset_purchase: lines of label (1..100) and 600 binary features"
  x, y = _load_label_first_csv(path, 600, expected)
  _require_binary(x, path, expected)
  return Dataset("purchase100", x, _one_based(y, 100, path), 100)


def load_texas100(data_dir: str) -> Dataset:
  """Texas100 from the standard `texas/100/feats` and `texas/100/labels` files.

  `feats`: 6,169 binary features per line, comma separated; `labels`: one
  label (1..100) per line.
  """
  root = data_dir
  if os.path.isdir(os.path.join(data_dir, "texas", "100")):
    root = os.path.join(data_dir, "texas", "100")
  feats = _require_file(os.path.join(root, "feats"),
                        "texas/100/feats: comma-separated binary features")
  labels = _require_file(os.path.join(root, "labels"),
                         "texas/100/labels: one label (1..100) per line")
  try:
    x = np.loadtxt(feats, delimiter=",", dtype=np.float32, ndmin=2)
    y = np.loadtxt(labels, dtype=np.int64, ndmin=1)
  except ValueError as e:
    raise ValueError(f"Texas100 files in {root!r} are malformed: {e}") from e
  if len(x) != len(y):
    raise ValueError(f"{feats!r} has {len(x)} rows but {labels!r} has "
                     f"{len(y)} labels; they must align line by line.")
  _require_binary(x, feats, "texas/100/feats: comma-separated binary features")
  return Dataset("texas100", x, _one_based(y, 100, labels), 100)


def _one_based(y: np.ndarray, num_classes: int, path: str) -> np.ndarray:
  if y.size and (y.min() < 1 or y.max() > num_classes):
    raise ValueError(f"data file {path!r}: labels must be 1..{num_classes}, "
                     f"got range [{y.min()}, {y.max()}].")
  return y - 1


def load_digits(data_dir: Optional[str] = None) -> Dataset:
  """scikit-learn's embedded digits: 1,797 8×8 images, 10 classes.

  Shipped inside scikit-learn, so it needs no `data_dir`. Features are the 64
  pixel intensities scaled to [0, 1].
  """
  del data_dir
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  bunch = sk_datasets.load_digits()
  return Dataset("digits", (bunch.data / 16.0).astype(np.float32),
                 bunch.target.astype(np.int64), 10)


LOADERS: Dict[str, Callable[[Optional[str]], Dataset]] = {
    "digits": load_digits,
    "location": load_location,
    "cifar10": load_cifar10,
    "mnist": load_mnist,
    "purchase100": load_purchase100,
    "texas100": load_texas100,
}

# The user's own data files, named "PREFIX:PATH" (e.g. "npz:data/mine.npz"):
# prefix -> loader(path, label_column). Filled by `wemem_tf.data.user_data`
# (which builds on this module and is imported with the `wemem_tf.data`
# package): "npz" and "csv".
FILE_LOADERS: Dict[str, Callable[[str, str], Dataset]] = {}


def load_dataset(name: str, data_dir: Optional[str] = None,
                 label_column: str = "label") -> Dataset:
  """Loads a built-in dataset by registry name, or the user's own data file.

  Args:
    name: one of `LOADERS`, or "npz:PATH" / "csv:PATH" for a data file in the
      format of `wemem_tf.data.user_data` (PATH as given, relative to the
      working directory; `data_dir` is not used).
    data_dir: folder holding a built-in dataset's files; not needed for
      "digits".
    label_column: the label column of a "csv:PATH" file.

  Raises:
    ValueError: unknown name, or a file with the wrong content.
    FileNotFoundError: a missing file or data_dir.
  """
  prefix, sep, path = name.partition(":")
  if sep and prefix in FILE_LOADERS:
    if not path:
      raise ValueError(f"dataset {name!r} names no file; use "
                       f"--dataset={prefix}:PATH.")
    return FILE_LOADERS[prefix](path, label_column)
  if name not in LOADERS:
    files = " or ".join(f"{p}:PATH" for p in sorted(FILE_LOADERS))
    raise ValueError(f"unknown dataset {name!r}; choose one of "
                     f"{sorted(LOADERS)}" + (f" or {files}" if files else "")
                     + ".")
  if name != "digits":
    if not data_dir:
      raise ValueError(f"dataset {name!r} needs --data_dir (the folder with "
                       "its files); only 'digits' is embedded.")
    if not os.path.isdir(data_dir):
      raise FileNotFoundError(f"data_dir {data_dir!r} is not a directory.")
  return LOADERS[name](data_dir)
