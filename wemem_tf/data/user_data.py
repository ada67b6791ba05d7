"""The user's own labelled data: NumPy arrays, .npz files and CSV files.

Three ways in, one `Dataset` out (features float32, labels int64):

* `from_arrays(x, y, num_classes=None, heldout=None)`: in-memory arrays.
* `load_npz_dataset(path)` (`--dataset=npz:PATH`): an .npz archive
  (`np.savez`) with
    - `x`: numeric features of shape (n, ...) (any of bool, int, uint, float;
      images may keep their shape, e.g. (n, 28, 28, 1));
    - `y`: integer labels of shape (n,), values in [0, num_classes);
    - optional `heldout`: bool (n,), True for records the data itself reserves
      as held-out (never trained on, like CIFAR-10's test split);
    - optional `num_classes`: integer scalar (default max(y) + 1).
  No other arrays. It is read with `allow_pickle=False`: object arrays are
  refused, never unpickled.
* `load_csv_dataset(path, label_column="label")` (`--dataset=csv:PATH`,
  `--label_column`): a comma-separated UTF-8 text file whose first line is a
  header naming the columns, then one line per record. The label column holds
  integer labels in [0, C) (C = max label + 1); an optional column named
  `heldout` holds 0/1 (1 = held-out record, as the npz `heldout`); every other
  column, in file order, is a numeric feature, so x has shape
  (n, number of columns - 1 [- 1 with `heldout`]).

Record i is the i-th row (array row, CSV line after the header): record
indices mean the same records on every machine. The `Dataset.name` of a file
is its file name (`data/mine.npz` -> "mine.npz", never a built-in name, so
no built-in defaults apply; run directories default to runs/<name>).

Fingerprint: `fingerprint_arrays(FINGERPRINT_NAME, x, y, heldout,
[num_classes])` of the model-ready arrays (float32 x, int64 y, bool heldout or
None). It depends on neither the source nor the name: arrays, the .npz saved
from them and the CSV written from them (floats with enough digits to
round-trip float32, e.g. "%.9g") give the same fingerprint, hence the same
splits (docs/method.md §2) and the same cached models and scores.

Validation: a bad input raises a one-line ValueError that names the file (or
the arrays' name) and says what to fix; a missing file raises
FileNotFoundError. Besides shapes and dtypes, the data must suit the split
protocol of docs/method.md §2: at least `MIN_RECORDS` records and, in every
class in [0, C), enough records that one model's training set expects
`MIN_EXPECTED_TRAIN_RECORDS` of them (`MIN_RECORDS_PER_CLASS`, or
`MIN_POOL_RECORDS_PER_CLASS` records outside `heldout` when it is given).
"""

import csv
import math
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib

# Hashed in place of the dataset name, so the fingerprint of user data does
# not depend on the file name or the name given to `from_arrays`.
FINGERPRINT_NAME = "user-data"

# `splits.make_splits` needs at least this many records.
MIN_RECORDS = 20

# Records of each class that one model's training set should hold, in
# expectation, for the class to be learnable and attackable at all.
MIN_EXPECTED_TRAIN_RECORDS = 3

_PROTOCOL = splits_lib.SplitConfig()
# Share of a class's records in one model's training set under the split
# protocol (docs/method.md §2): 80% pool x 50% victim (or shadow) pool x 90%
# train = 0.36 without `heldout`; 50% x 90% = 0.45 of the records outside
# `heldout` with it.
TRAIN_SHARE = ((1 - _PROTOCOL.heldout_fraction) *
               _PROTOCOL.victim_pool_fraction * _PROTOCOL.train_fraction)
TRAIN_SHARE_OF_POOL = (_PROTOCOL.victim_pool_fraction *
                       _PROTOCOL.train_fraction)
# The smallest class size whose expected share in one training set is at
# least MIN_EXPECTED_TRAIN_RECORDS: ceil(3 / 0.36) = 9 records per class;
# with `heldout`, ceil(3 / 0.45) = 7 records per class outside it.
MIN_RECORDS_PER_CLASS = math.ceil(
    round(MIN_EXPECTED_TRAIN_RECORDS / TRAIN_SHARE, 6))
MIN_POOL_RECORDS_PER_CLASS = math.ceil(
    round(MIN_EXPECTED_TRAIN_RECORDS / TRAIN_SHARE_OF_POOL, 6))

# The optional held-out column of a CSV file, and the arrays of an .npz.
HELDOUT_COLUMN = "heldout"
NPZ_ARRAYS = ("x", "y", "heldout", "num_classes")

_SPLITS_DOC = "the split protocol (docs/method.md §2)"


def from_arrays(x: np.ndarray, y: np.ndarray,
                num_classes: Optional[int] = None,
                heldout: Optional[np.ndarray] = None,
                name: str = "arrays") -> datasets.Dataset:
  """A validated `Dataset` from in-memory arrays.

  Args:
    x: numeric features, shape (n, ...) (bool, int, uint or float; converted
      to float32).
    y: integer labels, shape (n,), values in [0, num_classes) (int64).
    num_classes: number of classes C (default max(y) + 1); every class in
      [0, C) needs records (see `MIN_RECORDS_PER_CLASS`).
    heldout: optional bool (n,): True for records reserved as held-out (the
      protocol's pool is then the other records; else it holds out a random
      20%).
    name: the dataset's display name (also names it in error messages); not
      part of the fingerprint.

  Returns:
    A `Dataset` with float32 x, int64 y and the source-independent
    fingerprint described in the module docstring.

  Raises:
    ValueError: the arrays are not a usable labelled dataset (see the module
      docstring).
  """
  return _make_dataset(x, y, num_classes, heldout, name, what=name)


def load_npz_dataset(path: str) -> datasets.Dataset:
  """Loads the user's .npz file (format: module docstring), never unpickling.

  Args:
    path: the .npz file; its file name becomes the dataset's name.

  Returns:
    The validated `Dataset` (float32 x, int64 y, optional heldout mask).

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: an unreadable, empty or ill-formed file, with what to fix.
  """
  what = f"data file {path!r}"
  _require_data_file(path, what)
  fix = ("save it with np.savez(path, x=features, y=labels[, heldout=mask]"
         "[, num_classes=C])")
  try:
    archive = np.load(path, allow_pickle=False)
  except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError
    raise ValueError(f"{what} is not a readable .npz archive "
                     f"({_one_line(e)}); {fix}.") from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise ValueError(f"{what} holds a single array (.npy), not an .npz "
                     f"archive; {fix}.")
  with archive:
    unknown = sorted(set(archive.files) - set(NPZ_ARRAYS))
    if unknown:
      raise ValueError(f"{what} has unexpected arrays {unknown} (it may hold "
                       f"only {list(NPZ_ARRAYS)}); {fix}.")
    missing = [k for k in ("x", "y") if k not in archive.files]
    if missing:
      raise ValueError(f"{what} has no array {missing[0]!r} (it has "
                       f"{sorted(archive.files)}); {fix}.")
    arrays = {}
    for key in archive.files:
      try:
        arrays[key] = archive[key]
      except ValueError as e:
        if "allow_pickle" in str(e):
          raise ValueError(
              f"{what}: array {key!r} holds Python objects (dtype object), "
              "which are never unpickled; save numeric arrays instead (e.g. "
              f"{key}.astype(np.float32) or np.int64 labels).") from e
        raise ValueError(f"{what}: array {key!r} is unreadable "
                         f"({_one_line(e)}); {fix}.") from e
      except Exception as e:  # a corrupt member: zlib.error, EOFError, ...
        raise ValueError(f"{what}: array {key!r} is unreadable "
                         f"({_one_line(e)}); {fix}.") from e
  num_classes = None
  if "num_classes" in arrays:
    value = arrays["num_classes"]
    if value.size != 1 or value.dtype.kind not in "iu":
      raise ValueError(f"{what}: num_classes must be an integer scalar, got "
                       f"{value.dtype} {value.shape}; save num_classes=C "
                       "(an int).")
    num_classes = int(value.reshape(()))
  return _make_dataset(arrays["x"], arrays["y"], num_classes,
                       arrays.get("heldout"), _file_name(path), what)


def load_csv_dataset(path: str, label_column: str = "label"
                     ) -> datasets.Dataset:
  """Loads the user's CSV file (format: module docstring).

  Args:
    path: the CSV file; its file name becomes the dataset's name.
    label_column: the header name of the label column.

  Returns:
    The validated `Dataset`: x float32 (n, number of feature columns), y
    int64 (n,), the `heldout` column (if any) as its heldout mask; C = max
    label + 1.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: an empty or ill-formed file, with the line and column of a
      bad cell.
  """
  what = f"data file {path!r}"
  _require_data_file(path, what)
  header, rows, lines = _read_csv_rows(path, what)
  if all(_is_number(cell) for cell in header):
    raise ValueError(f"{what} has no header row (line {lines[0]} is all "
                     "numbers); add a first line naming the columns, with "
                     f"the labels in a column named {label_column!r}.")
  if label_column == HELDOUT_COLUMN:
    raise ValueError(f"{what}: the label column cannot be {HELDOUT_COLUMN!r} "
                     "(that name marks held-out records); rename it.")
  for column in (label_column, HELDOUT_COLUMN):
    if header.count(column) > 1:
      raise ValueError(f"{what}: the header names column {column!r} "
                       f"{header.count(column)} times; rename all but one.")
  if label_column not in header:
    raise ValueError(f"{what} has no label column {label_column!r} (columns: "
                     f"{_column_list(header)}); rename the label column to "
                     f"{label_column!r} or pass its name as label_column "
                     "(--label_column).")
  feature_columns = [j for j, c in enumerate(header)
                     if c not in (label_column, HELDOUT_COLUMN)]
  if not feature_columns:
    raise ValueError(f"{what} has no feature columns (columns: "
                     f"{_column_list(header)}); add at least one numeric "
                     "feature column.")
  if not rows:
    raise ValueError(f"{what} has a header but no records; add one line per "
                     "record below the header.")
  for row, line in zip(rows, lines[1:]):
    if len(row) != len(header):
      raise ValueError(f"{what}: line {line} has {len(row)} cells but the "
                       f"header has {len(header)} columns; every line needs "
                       "one cell per column.")
  x = _numeric_columns(rows, lines[1:], header, feature_columns, what,
                       "features")
  with np.errstate(over="ignore"):
    finite = np.isfinite(x.astype(np.float32))
  if not np.all(finite):
    i, k = (int(v) for v in np.argwhere(~finite)[0])
    raise ValueError(f"{what}: line {lines[1 + i]}, column "
                     f"{header[feature_columns[k]]!r}: "
                     f"{rows[i][feature_columns[k]]!r} is NaN, infinite or "
                     "beyond float32 range; remove or impute such values.")
  label_index = header.index(label_column)
  y_values = _numeric_columns(rows, lines[1:], header, [label_index], what,
                              "labels")[:, 0]
  whole = np.isfinite(y_values) & (y_values == np.round(y_values)) & (
      np.abs(y_values) < 2**31)
  if not np.all(whole):
    i = int(np.argmin(whole))
    raise ValueError(f"{what}: line {lines[1 + i]}, column {label_column!r}: "
                     f"{rows[i][label_index]!r} is not an "
                     "integer label; labels must be integers in [0, C).")
  heldout = None
  if HELDOUT_COLUMN in header:
    j = header.index(HELDOUT_COLUMN)
    cells = [row[j].strip() for row in rows]
    for i, cell in enumerate(cells):
      if cell not in ("0", "1"):
        raise ValueError(f"{what}: line {lines[1 + i]}, column "
                         f"{HELDOUT_COLUMN!r}: {_cell_text(cell)} is not 0 or "
                         "1; mark held-out records with 1, the others with "
                         "0.")
    heldout = np.array([cell == "1" for cell in cells], bool)
  return _make_dataset(x, y_values.astype(np.int64), None, heldout,
                       _file_name(path), what)


def dataset_name(spec: str) -> str:
  """The `Dataset.name` that `datasets.load_dataset(spec)` will have.

  "npz:PATH" / "csv:PATH" -> the file's name; a built-in name -> itself. For
  default output paths (runs/<name>) before (or without) loading the data.
  """
  prefix, sep, path = spec.partition(":")
  if sep and prefix in datasets.FILE_LOADERS and path:
    return _file_name(path)
  return spec


def _make_dataset(x, y, num_classes: Optional[int], heldout, name: str,
                  what: str) -> datasets.Dataset:
  """Validates model-ready copies of the arrays; returns the `Dataset`."""
  x = _features(x, what)
  y = _labels(y, what)
  if heldout is not None:
    heldout = _heldout(heldout, what)
  n = len(x)
  if len(y) != n or (heldout is not None and len(heldout) != n):
    lengths = f"x has {n} records, y {len(y)}"
    if heldout is not None:
      lengths += f", heldout {len(heldout)}"
    raise ValueError(f"{what}: {lengths}; they must align record by "
                     "record.")
  if n < MIN_RECORDS:
    raise ValueError(f"{what}: only {n} records; {_SPLITS_DOC} needs at "
                     f"least {MIN_RECORDS}. Add records.")
  _check_finite(x, what)
  num_classes = _num_classes(y, num_classes, what)
  _check_class_sizes(y, num_classes, heldout, what)
  fingerprint = datasets.fingerprint_arrays(
      FINGERPRINT_NAME, x, y, heldout, np.array([num_classes], np.int64))
  return datasets.Dataset(name, x, y, num_classes, fingerprint=fingerprint,
                          heldout_mask=heldout)


def _as_array(value, what: str, role: str) -> np.ndarray:
  try:
    return np.asarray(value)
  except ValueError as e:  # ragged nested lists
    raise ValueError(f"{what}: {role} is not a rectangular array "
                     f"({_one_line(e)}); give every record the same "
                     "shape.") from e


def _features(x, what: str) -> np.ndarray:
  """x as a float32 copy of shape (n, ...); refuses non-numeric arrays."""
  x = _as_array(x, what, "x")
  if x.dtype.kind not in "biuf":
    raise ValueError(f"{what}: features x must be numeric, got dtype "
                     f"{x.dtype} (strings or Python objects); convert them to "
                     "numbers first (e.g. one-hot encode categories).")
  if x.ndim < 2:
    raise ValueError(f"{what}: features x must have shape (n, features...), "
                     f"got {x.shape}; for one feature per record pass "
                     "x.reshape(-1, 1).")
  with np.errstate(over="ignore", invalid="ignore"):
    return x.astype(np.float32)


def _labels(y, what: str) -> np.ndarray:
  """y as an int64 copy of shape (n,); refuses non-integer labels."""
  y = _as_array(y, what, "y")
  if y.dtype.kind not in "iu":
    hint = ""
    if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(
        y == np.round(y)):
      hint = " (they are whole numbers: pass y.astype(np.int64))"
    raise ValueError(f"{what}: labels y must be integers, got dtype "
                     f"{y.dtype}{hint}; give class indices 0..C-1.")
  if y.ndim != 1:
    raise ValueError(f"{what}: labels y must have shape (n,), got "
                     f"{y.shape}; give one class index per record.")
  return y.astype(np.int64)


def _heldout(heldout, what: str) -> np.ndarray:
  heldout = _as_array(heldout, what, "heldout")
  if heldout.dtype.kind != "b" or heldout.ndim != 1:
    raise ValueError(f"{what}: heldout must be a boolean array of shape (n,) "
                     "(True = held-out record), got "
                     f"{heldout.dtype} {heldout.shape}; convert it with "
                     ".astype(bool).")
  return heldout.copy()


def _check_finite(x: np.ndarray, what: str) -> None:
  finite = np.isfinite(x)
  if not np.all(finite):
    bad = np.argwhere(~finite)
    record, feature = int(bad[0][0]), tuple(int(i) for i in bad[0][1:])
    feature_text = feature[0] if len(feature) == 1 else feature
    raise ValueError(f"{what}: features x hold {len(bad)} NaN, infinite or "
                     "beyond-float32-range value(s) (first: record "
                     f"{record}, feature {feature_text}); remove or impute "
                     "them.")


def _num_classes(y: np.ndarray, num_classes: Optional[int], what: str) -> int:
  if y.min() < 0:
    raise ValueError(f"{what}: labels must lie in [0, C), got a label "
                     f"{int(y.min())}; map the classes to 0..C-1 (e.g. "
                     "np.unique(y, return_inverse=True)).")
  if num_classes is None:
    num_classes = int(y.max()) + 1
    if num_classes < 2:
      raise ValueError(f"{what}: every label is 0; a classifier needs at "
                       "least 2 classes.")
    return num_classes
  if isinstance(num_classes, bool) or not isinstance(num_classes,
                                                     (int, np.integer)):
    raise ValueError(f"{what}: num_classes must be an integer, got "
                     f"{num_classes!r}.")
  num_classes = int(num_classes)
  if num_classes < 2:
    raise ValueError(f"{what}: num_classes must be >= 2, got {num_classes}.")
  if y.max() >= num_classes:
    raise ValueError(f"{what}: labels must lie in [0, {num_classes}), got "
                     f"range [{int(y.min())}, {int(y.max())}]; map the classes "
                     "to 0..C-1 or raise num_classes.")
  return num_classes


def _check_class_sizes(y: np.ndarray, num_classes: int,
                       heldout: Optional[np.ndarray], what: str) -> None:
  """Every class in [0, C) needs enough records for the split protocol."""
  if heldout is None:
    counts = np.bincount(y, minlength=num_classes)
    minimum, records = MIN_RECORDS_PER_CLASS, "records"
    share = TRAIN_SHARE
  else:
    counts = np.bincount(y[~heldout], minlength=num_classes)
    minimum, records = MIN_POOL_RECORDS_PER_CLASS, "records outside heldout"
    share = TRAIN_SHARE_OF_POOL
  small = np.flatnonzero(counts < minimum)
  if small.size:
    listed = ", ".join(f"class {int(c)} ({int(counts[c])})"
                       for c in small[:8])
    if small.size > 8:
      listed += f", ... ({small.size} classes)"
    raise ValueError(
        f"{what}: classes with fewer than {minimum} {records}: {listed}; "
        f"{_SPLITS_DOC} trains each model on about "
        f"{share:.0%} of them. Add records to those classes, or drop or merge "
        "them and renumber the labels 0..C-1.")


def _require_data_file(path: str, what: str) -> None:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what} not found (no such file).")
  if os.path.getsize(path) == 0:
    raise ValueError(f"{what} is empty (0 bytes).")


def _read_csv_rows(path: str, what: str
                   ) -> Tuple[List[str], List[List[str]], List[int]]:
  """(header, data rows, line number of the header and of each row)."""
  rows, lines = [], []
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      for row in reader:
        if row and any(cell.strip() for cell in row):
          rows.append(row)
          lines.append(reader.line_num)
  except UnicodeDecodeError as e:
    raise ValueError(f"{what} is not UTF-8 text ({_one_line(e)}); save the "
                     "CSV as UTF-8.") from e
  except csv.Error as e:
    raise ValueError(f"{what} is not a valid CSV ({_one_line(e)}).") from e
  if not rows:
    raise ValueError(f"{what} is empty (no lines with cells).")
  header = [cell.strip() for cell in rows[0]]
  return header, rows[1:], lines


def _numeric_columns(rows: Sequence[List[str]], lines: Sequence[int],
                     header: Sequence[str], columns: Sequence[int], what: str,
                     role: str) -> np.ndarray:
  """float64 (len(rows), len(columns)) of the cells; names a bad cell."""
  cells = [[row[j] for j in columns] for row in rows]
  try:
    return np.array(cells, dtype=np.float64).reshape(len(rows), len(columns))
  except ValueError as e:
    for i, row in enumerate(cells):
      for k, cell in enumerate(row):
        if not _is_number(cell):
          raise ValueError(
              f"{what}: line {lines[i]}, column {header[columns[k]]!r}: "
              f"{_cell_text(cell)} is not a number; {role} must be numeric "
              "(encode categories as numbers first).") from e
    raise ValueError(f"{what}: {role} cells are not all numbers "
                     f"({_one_line(e)}).") from e


def _cell_text(cell: str) -> str:
  """A cell as shown in messages: quoted, "empty cell" for blanks."""
  return "an empty cell" if not cell.strip() else repr(cell)


def _is_number(cell: str) -> bool:
  try:
    float(cell)
  except ValueError:
    return False
  return True


def _column_list(header: Sequence[str], limit: int = 20) -> str:
  shown = ", ".join(repr(c) for c in header[:limit])
  return shown + (f", ... ({len(header)} columns)" if len(header) > limit
                  else "")


def _file_name(path: str) -> str:
  # The file name with its extension: never a built-in dataset's name, so a
  # user's "mnist.npz" gets no MNIST defaults (architecture, presets).
  return os.path.basename(os.path.normpath(path)) or "user-data"


def _one_line(error: Exception) -> str:
  return " ".join(str(error).split())


def _npz_file_loader(path: str, label_column: str) -> datasets.Dataset:
  del label_column  # an .npz names its arrays
  return load_npz_dataset(path)


datasets.FILE_LOADERS.update(npz=_npz_file_loader, csv=load_csv_dataset)
