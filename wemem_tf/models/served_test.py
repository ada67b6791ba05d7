"""Served model files run as served: TFLite (free and fixed batch), Keras
files, SavedModels; unsafe SavedModels and bad paths are refused."""

import os

import numpy as np
import pytest
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.models import files as files_lib
from wemem_tf.models import served


def _model(seed=0, softmax=False):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((6,))
  h = keras.layers.Dense(8, activation="relu")(inputs)
  out = keras.layers.Dense(3, activation="softmax" if softmax else None)(h)
  return keras.Model(inputs, out)


def _tflite_bytes(model, batch=None):
  fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
      tf.TensorSpec([batch, 6], tf.float32))
  return tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()


@pytest.fixture(scope="module")
def data():
  return np.random.default_rng(0).normal(size=(37, 6)).astype(np.float32)


def test_tflite_free_and_fixed_batch_match_keras(tmp_path, data):
  model = _model()
  expected = model(data).numpy()
  path = tmp_path / "m.tflite"
  path.write_bytes(_tflite_bytes(model))
  free = served.load_served_model(str(path), batch_size=10)
  assert free.format == "tflite" and free.fixed_batch_size is None
  np.testing.assert_allclose(free.predict(data), expected, atol=1e-5)
  fixed_path = tmp_path / "fixed.tflite"
  fixed_path.write_bytes(_tflite_bytes(model, batch=8))
  fixed = served.load_served_model(str(fixed_path))
  assert fixed.fixed_batch_size == 8 and fixed.input_shape == (6,)
  np.testing.assert_allclose(fixed.predict(data), expected, atol=1e-5)


def test_h5_and_saved_model_match_keras(tmp_path, data):
  model = _model(1)
  expected = model(data).numpy()
  model.save(str(tmp_path / "m.h5"))
  np.testing.assert_allclose(
      served.load_served_model(str(tmp_path / "m.h5")).predict(data),
      expected, atol=1e-6)
  tf.saved_model.save(model, str(tmp_path / "sm"))
  loaded = served.load_served_model(str(tmp_path / "sm"))
  assert loaded.format == "saved_model" and loaded.num_classes == 3
  np.testing.assert_allclose(loaded.predict(data), expected, atol=1e-6)


def test_output_kind_detection(data):
  probs = served.from_keras(_model(2, softmax=True)).predict(data)
  logits = served.from_keras(_model(2)).predict(data)
  assert served.detect_output_kind(probs) is served.OutputKind.PROBABILITIES
  assert served.detect_output_kind(logits) is served.OutputKind.LOGITS


def test_saved_model_that_writes_files_is_refused(tmp_path):
  marker = tmp_path / "marker.txt"

  class Writer(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    def __call__(self, x):
      tf.io.write_file(str(marker), "pwned")
      return {"out": tf.concat([x[:, :2], x[:, :1]], 1)}

  module = Writer()
  tf.saved_model.save(module, str(tmp_path / "evil"),
                      signatures={"serving_default": module.__call__})
  with pytest.raises(files_lib.UntrustedModelCode, match="WriteFile"):
    served.load_served_model(str(tmp_path / "evil"))
  assert not marker.exists()


def test_bad_paths(tmp_path, data):
  with pytest.raises(FileNotFoundError, match="no model file"):
    served.load_served_model(str(tmp_path / "absent.tflite"))
  (tmp_path / "m.onnx").write_bytes(b"x")
  with pytest.raises(ValueError, match="unsupported model file"):
    served.load_served_model(str(tmp_path / "m.onnx"))
  (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
  with pytest.raises(ValueError, match="not a readable TFLite model"):
    served.load_served_model(str(tmp_path / "bad.tflite"))
  os.makedirs(tmp_path / "empty")
  with pytest.raises(ValueError, match="without saved_model.pb"):
    served.load_served_model(str(tmp_path / "empty"))
  model = served.from_keras(_model())
  with pytest.raises(ValueError, match="takes inputs of shape"):
    model.predict(data[:, :5])
