"""Tests of the dataset loaders: real files, standard formats, bad input."""

import os
import pickle

import numpy as np
import pytest

from wemem_tf.data import datasets

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                      "data")
SHARED = os.environ.get("WEMEM_SHARED_DATA", os.path.normpath(SHARED))
needs_shared = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHARED, "location.npz")),
    reason="../shared/data not present")


@needs_shared
def test_location_matches_published_description():
  ds = datasets.load_dataset("location", SHARED)
  assert ds.x.shape == (5010, 446) and ds.x.dtype == np.float32
  assert set(np.unique(ds.x)) == {0.0, 1.0}
  assert ds.num_classes == 30 and ds.y.min() == 0 and ds.y.max() == 29
  assert np.bincount(ds.y)[0] == 169  # label 1 in the original file
  assert len(ds.fingerprint) == 64
  assert datasets.load_dataset("location", SHARED).fingerprint == ds.fingerprint


@needs_shared
def test_cifar_subset_holds_out_test_images():
  ds = datasets.load_dataset("cifar10", SHARED)
  assert ds.x.shape == (5000, 32, 32, 3)
  assert ds.heldout_mask.sum() == 1000
  assert abs(float(ds.x[~ds.heldout_mask].mean())) < 0.1  # standardized


@needs_shared
def test_mnist_subset():
  ds = datasets.load_dataset("mnist", SHARED)
  assert ds.x.shape == (5000, 28, 28, 1) and ds.x.max() <= 1.0
  assert np.all(np.bincount(ds.y) == 500)


def test_digits_is_embedded():
  ds = datasets.load_dataset("digits")
  assert ds.x.shape == (1797, 64) and ds.num_classes == 10
  assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def _write_cifar_batch(path, n, label_offset=0):
  rng = np.random.default_rng(n)
  batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
           b"labels": [(i + label_offset) % 10 for i in range(n)]}
  with open(path, "wb") as f:
    pickle.dump(batch, f)


def test_cifar_batches_directory(tmp_path):
  root = tmp_path / "cifar-10-batches-py"
  root.mkdir()
  for i in range(1, 6):
    _write_cifar_batch(root / f"data_batch_{i}", 4)
  _write_cifar_batch(root / "test_batch", 3, label_offset=1)
  ds = datasets.load_dataset("cifar10", str(tmp_path))
  assert ds.x.shape == (23, 32, 32, 3)
  assert ds.heldout_mask.sum() == 3 and ds.heldout_mask[-3:].all()
  assert list(ds.y[-3:]) == [1, 2, 3]


def test_cifar_batch_with_foreign_globals_is_refused(tmp_path):
  root = tmp_path / "cifar-10-batches-py"
  root.mkdir()
  for i in range(1, 6):
    with open(root / f"data_batch_{i}", "wb") as f:
      pickle.dump({b"data": os.getcwd, b"labels": [0]}, f)
  _write_cifar_batch(root / "test_batch", 3)
  with pytest.raises(ValueError, match="data_batch_1"):
    datasets.load_dataset("cifar10", str(tmp_path))


def test_purchase_and_texas_standard_files(tmp_path):
  rng = np.random.default_rng(0)
  feats = rng.integers(0, 2, (6, 600))
  labels = np.array([1, 2, 100, 5, 6, 7])
  np.savetxt(tmp_path / "dataset_purchase",
             np.column_stack([labels, feats]), fmt="%d", delimiter=",")
  ds = datasets.load_dataset("purchase100", str(tmp_path))
  assert ds.x.shape == (6, 600) and list(ds.y) == list(labels - 1)
  texas = tmp_path / "texas" / "100"
  texas.mkdir(parents=True)
  np.savetxt(texas / "feats", rng.integers(0, 2, (6, 6169)), fmt="%d",
             delimiter=",")
  np.savetxt(texas / "labels", labels, fmt="%d")
  ds = datasets.load_dataset("texas100", str(tmp_path))
  assert ds.x.shape == (6, 6169) and ds.y.max() == 99


def test_missing_file_names_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"location\.npz.*expected"):
    datasets.load_dataset("location", str(tmp_path))


def test_malformed_npz_names_file_and_expectation(tmp_path):
  (tmp_path / "location.npz").write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match=r"location\.npz.*not a readable"):
    datasets.load_dataset("location", str(tmp_path))
  np.savez(tmp_path / "location.npz", x=np.zeros((3, 5), np.uint8),
           y=np.zeros(3))
  with pytest.raises(ValueError, match=r"array 'y'.*expected"):
    datasets.load_dataset("location", str(tmp_path))
  np.savez(tmp_path / "location.npz", features=np.zeros((3, 446)))
  with pytest.raises(ValueError, match=r"no array 'x'"):
    datasets.load_dataset("location", str(tmp_path))


def test_labels_out_of_range_and_empty_data():
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
    datasets.Dataset("t", np.zeros((4, 2), np.float32), np.array([0, 1, 2, 3]), 3)
  with pytest.raises(ValueError, match="empty"):
    datasets.Dataset("t", np.zeros((0, 2), np.float32), np.zeros(0, np.int64), 3)
  with pytest.raises(ValueError, match="NaN"):
    datasets.Dataset("t", np.full((2, 2), np.nan, np.float32),
                     np.array([0, 1]), 2)


def test_unknown_dataset_and_missing_data_dir():
  with pytest.raises(ValueError, match="unknown dataset"):
    datasets.load_dataset("imagenet")
  with pytest.raises(ValueError, match="needs --data_dir"):
    datasets.load_dataset("location")


def test_take_checks_indices():
  ds = datasets.load_dataset("digits")
  x, y = ds.take(np.array([0, 5]))
  assert x.shape == (2, 64) and y.shape == (2,)
  with pytest.raises(ValueError, match="must lie in"):
    ds.take(np.array([len(ds)]))


def test_fingerprint_changes_with_content():
  x = np.zeros((3, 2), np.float32)
  a = datasets.fingerprint_arrays("d", x, np.array([0, 1, 1]))
  b = datasets.fingerprint_arrays("d", x, np.array([0, 1, 0]))
  assert a != b
