"""Tests of the user's own data: arrays, .npz and CSV files, and bad input."""

import pickle
import re

import numpy as np
import pytest

from wemem_tf.data import datasets
from wemem_tf.data import splits
from wemem_tf.data import user_data

N, D, C = 60, 4, 3


def _arrays(seed=0, heldout=False):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, D)) * 10.0 ** rng.integers(-8, 8, size=(N, D))
  y = np.arange(N) % C
  mask = (np.arange(N) % 5 == 0) if heldout else None
  return x, y, mask


def _write_csv(path, x, y, heldout=None, label_column="label", fmt="%.9g"):
  """Writes x as float32 with `fmt`, the label column second."""
  names = [f"f{j}" for j in range(x.shape[1])]
  header = names[:1] + [label_column] + names[1:]
  if heldout is not None:
    header.append("heldout")
  lines = [",".join(header)]
  for i, row in enumerate(np.asarray(x, np.float32)):
    cells = [fmt % v for v in row]
    cells = cells[:1] + [str(int(y[i]))] + cells[1:]
    if heldout is not None:
      cells.append(str(int(heldout[i])))
    lines.append(",".join(cells))
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def _write(path, text):
  path.write_text(text)
  return str(path)


def _table(rows, header="a,b,label"):
  return header + "\n" + "\n".join(rows) + "\n"


def _params(cases):
  """pytest params (input, message regex), named after the message."""
  return [pytest.param(value, message, id=re.sub(r"\W+", "_", message)[:40])
          for value, message in cases]


def _good_rows(n=N):
  return [f"{i * 0.5},{-i},{i % C}" for i in range(n)]


@pytest.mark.parametrize("with_heldout", [False, True])
def test_arrays_npz_and_csv_share_one_fingerprint(tmp_path, with_heldout):
  x, y, heldout = _arrays(heldout=with_heldout)
  from_arrays = user_data.from_arrays(x, y, heldout=heldout, name="whatever")
  np.savez(tmp_path / "mine.npz", x=x.astype(np.float32), y=y,
           **({"heldout": heldout} if with_heldout else {}))
  from_npz = user_data.load_npz_dataset(str(tmp_path / "mine.npz"))
  from_csv = user_data.load_csv_dataset(
      _write_csv(tmp_path / "other.csv", x, y, heldout))
  assert from_arrays.x.dtype == np.float32 and from_arrays.y.dtype == np.int64
  assert from_arrays.num_classes == C and from_arrays.input_shape == (D,)
  for ds in (from_npz, from_csv):
    np.testing.assert_array_equal(ds.x, from_arrays.x)
    np.testing.assert_array_equal(ds.y, from_arrays.y)
    assert ds.fingerprint == from_arrays.fingerprint
  assert (from_arrays.name, from_npz.name, from_csv.name) == (
      "whatever", "mine.npz", "other.csv")
  assert user_data.from_arrays(x, y, heldout=heldout).fingerprint == (
      from_arrays.fingerprint)
  assert from_arrays.fingerprint == datasets.fingerprint_arrays(
      user_data.FINGERPRINT_NAME, x.astype(np.float32), y.astype(np.int64),
      heldout, np.array([C], np.int64))


def test_fingerprint_follows_the_content():
  x, y, _ = _arrays()
  base = user_data.from_arrays(x, y).fingerprint
  y2 = y.copy()
  y2[0] = 1
  assert user_data.from_arrays(x, y2).fingerprint != base
  assert user_data.from_arrays(x, y, num_classes=C).fingerprint == base
  assert user_data.from_arrays(x, y, heldout=np.zeros(N, bool)).fingerprint != (
      base)


def test_heldout_mask_is_the_protocols_heldout_set(tmp_path):
  x, y, heldout = _arrays(heldout=True)
  ds = datasets.load_dataset(
      "csv:" + _write_csv(tmp_path / "h.csv", x, y, heldout))
  np.testing.assert_array_equal(ds.heldout_mask, heldout)
  s = splits.splits_for(ds, seed=3, num_shadows=2)
  np.testing.assert_array_equal(s.heldout, np.flatnonzero(heldout))
  np.testing.assert_array_equal(s.pool, np.flatnonzero(~heldout))
  for model in (s.victim,) + s.shadows:
    assert not np.isin(model.train, np.flatnonzero(heldout)).any()


def test_load_dataset_prefixes_and_names(tmp_path):
  x, y, _ = _arrays()
  np.savez(tmp_path / "d.npz", x=x, y=y, num_classes=np.int64(5))
  with pytest.raises(ValueError, match=r"classes with fewer than 9 records: "
                     r"class 3 \(0\), class 4 \(0\)"):
    datasets.load_dataset(f"npz:{tmp_path / 'd.npz'}")
  np.savez(tmp_path / "d.npz", x=x, y=y, num_classes=np.int64(C))
  ds = datasets.load_dataset(f"npz:{tmp_path / 'd.npz'}", "ignored/dir")
  assert ds.name == "d.npz" and ds.num_classes == C
  path = _write_csv(tmp_path / "t.csv", x, y, label_column="target")
  assert datasets.load_dataset(f"csv:{path}", label_column="target").name == "t.csv"
  assert user_data.dataset_name(f"csv:{path}") == "t.csv"
  assert user_data.dataset_name("location") == "location"
  with pytest.raises(ValueError, match=r"'npz:' names no file"):
    datasets.load_dataset("npz:")
  with pytest.raises(ValueError, match=r"unknown dataset 'tsv:a'.*csv:PATH"):
    datasets.load_dataset("tsv:a")


def test_class_size_constants_follow_the_split_protocol():
  share = 0.8 * 0.5 * 0.9
  assert user_data.MIN_RECORDS_PER_CLASS == 9
  assert 9 * share >= 3 > 8 * share
  assert user_data.MIN_POOL_RECORDS_PER_CLASS == 7
  assert 7 * 0.45 >= 3 > 6 * 0.45


def _bad_array_cases():
  x, y, heldout = _arrays(heldout=True)
  nan_x = x.copy()
  nan_x[7, 2] = np.nan
  few = np.where(np.arange(N) < 5, 3, y)  # class 3 has 5 records
  return [
      (dict(x=nan_x, y=y),
       r"features x hold 1 NaN, infinite .* \(first: record 7, feature 2\)"),
      (dict(x=np.full((N, D), 1e300), y=y), r"beyond-float32-range value"),
      (dict(x=x, y=y.astype(float)), r"labels y must be integers, got dtype "
       r"float64 \(they are whole numbers: pass y.astype\(np.int64\)\)"),
      (dict(x=x, y=y + 0.5), r"labels y must be integers"),
      (dict(x=x, y=y - 1), r"labels must lie in \[0, C\), got a label -1"),
      (dict(x=x, y=y, num_classes=2), r"labels must lie in \[0, 2\), got "
       r"range \[0, 2\]"),
      (dict(x=x, y=np.zeros(N, int)), r"every label is 0"),
      (dict(x=x, y=few), r"fewer than 9 records: class 3 \(5\); the split "
       r"protocol \(docs/method.md §2\) trains each model on about 36%"),
      (dict(x=x, y=y, num_classes=4), r"fewer than 9 records: class 3 \(0\)"),
      (dict(x=x, y=y, heldout=heldout | (y == 1)),
       r"fewer than 7 records outside heldout: class 1 \(0\)"),
      (dict(x=x, y=y[:-1]), r"x has 60 records, y 59; they must align"),
      (dict(x=x, y=y, heldout=heldout[:-2]),
       r"x has 60 records, y 60, heldout 58"),
      (dict(x=x.astype(object), y=y), r"must be numeric, got dtype object"),
      (dict(x=x.astype(str), y=y), r"must be numeric, got dtype <U"),
      (dict(x=x, y=y.astype(str)), r"labels y must be integers, got dtype <U"),
      (dict(x=x[:19], y=y[:19]), r"only 19 records; the split protocol "
       r"\(docs/method.md §2\) needs at least 20"),
      (dict(x=x, y=y, heldout=heldout.astype(int)),
       r"heldout must be a boolean array .* int64"),
      (dict(x=x[:, 0], y=y), r"x.reshape\(-1, 1\)"),
      (dict(x=[[1.0, 2.0], [3.0]] * 15, y=y[:30]), r"not a rectangular array"),
      (dict(x=x, y=y, num_classes=1), r"num_classes must be >= 2"),
  ]


@pytest.mark.parametrize("kwargs,message", _params(_bad_array_cases()))
def test_bad_arrays_are_refused_with_what_to_fix(kwargs, message):
  with pytest.raises(ValueError, match=r"^arrays: .*" + message) as info:
    user_data.from_arrays(**kwargs)
  assert "\n" not in str(info.value)


def _pickle_marker(path):  # called only if an object array were unpickled
  with open(path, "w") as f:
    f.write("unpickled")


class _Trap:

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return _pickle_marker, (self.path,)


def test_object_array_npz_is_refused_without_unpickling(tmp_path):
  marker = tmp_path / "marker"
  x = np.empty((N, 1), object)
  x[:, 0] = [_Trap(str(marker))] * N
  np.savez(tmp_path / "o.npz", x=x, y=np.arange(N) % C)
  with pytest.raises(ValueError, match=r"array 'x' holds Python objects "
                     r"\(dtype object\), which are never unpickled"):
    user_data.load_npz_dataset(str(tmp_path / "o.npz"))
  assert not marker.exists()
  # A bare pickle (not an .npz) is refused too.
  (tmp_path / "p.npz").write_bytes(pickle.dumps(_Trap(str(marker))))
  with pytest.raises(ValueError, match=r"not a readable .npz archive"):
    user_data.load_npz_dataset(str(tmp_path / "p.npz"))
  assert not marker.exists()


def _bad_npz_cases():
  x, y, heldout = _arrays(heldout=True)
  return [
      (dict(x=x), r"has no array 'y' \(it has \['x'\]\)"),
      (dict(x=x, y=y, split=heldout), r"unexpected arrays \['split'\]"),
      (dict(x=x, y=y, heldout=heldout.astype(np.uint8)),
       r"heldout must be a boolean array"),
      (dict(x=x, y=y, num_classes=np.array([3, 3])),
       r"num_classes must be an integer scalar"),
      (dict(x=x, y=y.astype(np.float32)), r"labels y must be integers"),
      (dict(x=x, y=y[:10]), r"x has 60 records, y 10"),
  ]


@pytest.mark.parametrize("arrays,message", _params(_bad_npz_cases()))
def test_bad_npz_files_are_refused(tmp_path, arrays, message):
  np.savez(tmp_path / "bad.npz", **arrays)
  path = str(tmp_path / "bad.npz")
  with pytest.raises(ValueError, match=r"^data file '.*bad.npz'.*" + message):
    user_data.load_npz_dataset(path)


def test_npz_file_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"'.*nope.npz' not found"):
    datasets.load_dataset(f"npz:{tmp_path / 'nope.npz'}")
  with pytest.raises(ValueError, match=r"'.*e.npz' is empty \(0 bytes\)"):
    user_data.load_npz_dataset(_write(tmp_path / "e.npz", ""))
  with pytest.raises(ValueError,
                     match=r"not a readable .npz archive.*np.savez"):
    user_data.load_npz_dataset(_write(tmp_path / "t.npz", "x,y\n1,2\n"))
  np.save(tmp_path / "a.npy", np.zeros((N, 2)))
  with pytest.raises(ValueError, match=r"single array \(.npy\)"):
    user_data.load_npz_dataset(str(tmp_path / "a.npy"))


def _bad_csv_cases():
  rows = _good_rows()
  bad_cell = list(rows)
  bad_cell[4] = "0.5,abc,1"
  empty_cell = list(rows)
  empty_cell[9] = "0.5,,1"
  nan_cell = list(rows)
  nan_cell[2] = "nan,1,1"
  ragged = list(rows)
  ragged[3] = "1,2"
  half_label = list(rows)
  half_label[0] = "1,2,1.5"
  return [
      ("", r"is empty \(0 bytes\)"),
      ("\n\n", r"is empty \(no lines with cells\)"),
      ("\n".join(rows) + "\n", r"has no header row \(line 1 is all "
       r"numbers\); add a first line naming the columns"),
      (_table(rows, "a,b,class"), r"has no label column 'label' \(columns: "
       r"'a', 'b', 'class'\); rename the label column .*\(--label_column\)"),
      (_table(rows, "a,label,label"), r"names column 'label' 2 times"),
      (_table(bad_cell), r"line 6, column 'b': 'abc' is not a number"),
      (_table(empty_cell), r"line 11, column 'b': an empty cell is not a "
       r"number"),
      (_table(nan_cell), r"line 4, column 'a': 'nan' is NaN, infinite or "
       r"beyond float32 range; remove or impute"),
      (_table(ragged), r"line 5 has 2 cells but the header has 3 columns"),
      (_table(half_label), r"line 2, column 'label': '1.5' is not an "
       r"integer label"),
      (_table([]), r"has a header but no records"),
      (_table(rows[:19]), r"only 19 records"),
      (_table(rows, "label,heldout"), r"has no feature columns"),
      (_table([r + ",2" for r in rows], "a,b,label,heldout"),
       r"line 2, column 'heldout': '2' is not 0 or 1"),
      (_table([r[:-1] + "7" for r in rows]),
       r"fewer than 9 records: class 0 \(0\), .*class 6 \(0\);"),
  ]


@pytest.mark.parametrize("text,message", _params(_bad_csv_cases()))
def test_bad_csv_files_are_refused(tmp_path, text, message):
  path = _write(tmp_path / "bad.csv", text)
  with pytest.raises(ValueError, match=r"^data file '.*bad.csv'.*" + message
                     ) as info:
    user_data.load_csv_dataset(path)
  assert "\n" not in str(info.value)


def test_csv_details(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"'.*nope.csv' not found"):
    user_data.load_csv_dataset(str(tmp_path / "nope.csv"))
  # A BOM, CRLF line ends, spaces around numbers and blank lines are fine.
  text = "\ufeffa, b ,label\r\n" + "\r\n".join(
      f" {i}, {i * 2} ,{i % 2}" for i in range(N)) + "\r\n\r\n"
  ds = user_data.load_csv_dataset(_write(tmp_path / "ok.csv", text))
  assert ds.x.shape == (N, 2) and ds.num_classes == 2
  assert ds.heldout_mask is None
  with pytest.raises(ValueError, match=r"cannot be 'heldout'"):
    user_data.load_csv_dataset(str(tmp_path / "ok.csv"), label_column="heldout")
