"""Tests of loading model files as data (no Python from the file runs)."""

import os

import numpy as np
import pytest

import wemem_tf
from wemem_tf.models import files

keras = wemem_tf.keras


def lambda_model(marker: str) -> keras.Model:
  """A model whose Lambda layer writes `marker` when called, but only once
  `marker + ".armed"` exists (so not while it is built and saved here)."""
  fn = lambda x, m=marker: (  # pylint: disable=g-long-lambda
      open(m, "w").close() if __import__("os").path.exists(m + ".armed")
      else None, x)[1]
  inputs = keras.Input((4,))
  outputs = keras.layers.Lambda(fn, name="evil")(keras.layers.Dense(2)(inputs))
  return keras.Model(inputs, outputs)


class Doubler(keras.layers.Layer):

  def call(self, inputs):
    return inputs * 2


def _plain():
  return wemem_tf.models.column_fc((8,), 3)


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_plain_model_loads(tmp_path, ext):
  model = _plain()
  model.save(tmp_path / f"m.{ext}")
  files.check_file(str(tmp_path / f"m.{ext}"))  # its configuration passes
  loaded = wemem_tf.models.load_model(str(tmp_path / f"m.{ext}"))
  for a, b in zip(model.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(a, b)
  # tf_keras' classes, not the standalone keras package's (whose names a
  # .keras file's "keras.layers" would otherwise resolve to: a hang).
  assert all(type(layer).__module__.startswith("tf_keras")
             for layer in loaded.layers)


def test_pruning_wrapped_model_loads(tmp_path):
  wrapped = wemem_tf.prune_low_memorization(_plain())
  wrapped.save(tmp_path / "w.h5")
  loaded = files.load_model(str(tmp_path / "w.h5"))
  assert len(wemem_tf.pruning.pruned_wrappers(loaded)) == 2


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_lambda_is_refused_before_it_runs(tmp_path, ext):
  marker = str(tmp_path / "marker")
  path = str(tmp_path / f"l.{ext}")
  lambda_model(marker).save(path)
  open(marker + ".armed", "w").close()
  with pytest.raises(files.UntrustedModelCode) as e:
    files.load_model(path)
  message = str(e.value)
  assert "'evil' is a Lambda layer" in message and "\n" not in message
  assert "pass --trust_model_code (Python: trust_code=True) only for a file " \
         "you wrote" in message
  assert not os.path.exists(marker)
  # Trusted, it loads (and the code runs: the test above would have seen it).
  loaded = files.load_model(path, trust_code=True)
  assert loaded.get_layer("evil") is not None
  assert os.path.exists(marker)


def test_unknown_custom_class_is_refused_unless_given(tmp_path):
  inputs = keras.Input((3,))
  keras.Model(inputs, Doubler(name="twice")(inputs)).save(tmp_path / "d.h5")
  with pytest.raises(ValueError, match="'twice' has class 'Doubler'"):
    files.load_model(str(tmp_path / "d.h5"))
  loaded = files.load_model(str(tmp_path / "d.h5"),
                            custom_objects={"Doubler": Doubler})
  assert isinstance(loaded.get_layer("twice"), Doubler)


def test_lambda_nested_in_a_wrapper_is_refused():
  config = {"class_name": "Sequential", "config": {"layers": [
      {"class_name": "PruneLowMagnitude", "config": {"name": "w", "layer": {
          "class_name": "Lambda", "config": {"name": "inner"}}}}]}}
  with pytest.raises(files.UntrustedModelCode, match="'inner' is a Lambda"):
    files.check_config(config)


def test_other_formats_are_refused(tmp_path):
  keras.models.save_model(keras.Sequential([keras.Input((2,)),
                                            keras.layers.Dense(1)]),
                          str(tmp_path / "sm"), save_format="tf")
  (tmp_path / "notes.txt").write_text("not\na model\n")
  for path, match in [(tmp_path / "sm", "is a directory"),
                      (tmp_path / "notes.txt", "not a .keras zip or an HDF5")]:
    with pytest.raises(files.UnsupportedModelFile, match=match) as e:
      files.load_model(str(path))
    assert "\n" not in str(e.value) and "Supported formats" in str(e.value)
