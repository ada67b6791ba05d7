"""Tests of the TFLite export."""

import numpy as np
import pytest

from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.pruning import export
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline


@pytest.fixture(scope="module")
def pruned_digits():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  result = pipeline.pretrain_and_prune(
      ds, split, 0, pruning_config=iterative.PruningConfig(
          0.6, 3, epochs_per_iteration=2))
  return ds, split, result


def test_tflite_agrees_with_keras(pruned_digits, tmp_path):
  ds, split, result = pruned_digits
  x_test, _ = ds.take(split.test)
  out = export.export_tflite(result.pruned, str(tmp_path / "m.tflite"), x_test)
  assert out.max_abs_deviation < 1e-4
  assert out.size_bytes == (tmp_path / "m.tflite").stat().st_size
  probs = export._softmax(export.tflite_logits(
      (tmp_path / "m.tflite").read_bytes(), x_test))
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_bad_check_inputs(pruned_digits, tmp_path):
  _, _, result = pruned_digits
  with pytest.raises(ValueError, match="per-record shape"):
    export.export_tflite(result.pruned, str(tmp_path / "m.tflite"),
                         np.zeros((3, 5), np.float32))
  with pytest.raises(ValueError, match="non-empty"):
    export.export_tflite(result.pruned, str(tmp_path / "m.tflite"),
                         np.zeros((0, 64), np.float32))


def test_deviation_above_tolerance_writes_nothing(pruned_digits, tmp_path):
  ds, split, result = pruned_digits
  with pytest.raises(ValueError, match="differ from Keras"):
    export.export_tflite(result.pruned, str(tmp_path / "m.tflite"),
                         ds.take(split.test)[0], tolerance=1e-30)
  assert not (tmp_path / "m.tflite").exists()
