"""Architectures from zoo names, MODULE:FUNCTION, model files and callables,
and the one-line errors for every kind of unusable model."""

import os
import sys

import numpy as np
import pytest

from wemem_tf._keras import keras
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models import files_test
from wemem_tf.models import zoo
from wemem_tf.models.testdata import user_models

USER_MODULE = "wemem_tf.models.testdata.user_models"
USER_FILE = os.path.join(os.path.dirname(__file__), "testdata",
                         "user_models.py")
SHAPE, CLASSES = (64,), 10


def _weights(model):
  return [w.copy() for w in model.get_weights()]


def _same_weights(a, b):
  return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", sorted(zoo.BUILDERS))
def test_zoo_names_resolve_to_themselves_as_key(name):
  arch = arch_lib.resolve_architecture(name)
  assert arch is arch_lib.ZOO[name] and arch.is_zoo
  assert arch.name == arch.key == name and arch.build is zoo.BUILDERS[name]
  assert arch_lib.resolve_architecture(zoo.BUILDERS[name]) is arch
  assert arch_lib.resolve_architecture(arch) is arch
  assert arch.to_json() == str(arch) == name


def test_zoo_build_is_bit_identical_to_the_builder():
  keras.utils.set_random_seed(7)
  direct = _weights(zoo.column_fc(SHAPE, CLASSES))
  keras.utils.set_random_seed(7)
  checked = arch_lib.build_checked("column_fc", SHAPE, CLASSES)
  assert _same_weights(direct, _weights(checked))
  after = np.random.random()  # the probe used no global random state
  keras.utils.set_random_seed(7)
  zoo.column_fc(SHAPE, CLASSES)
  assert np.random.random() == after


@pytest.mark.parametrize("spec", [f"{USER_MODULE}:conv_net",
                                  f"{USER_FILE}:conv_net"])
def test_module_function_specs(spec):
  arch = arch_lib.resolve_architecture(spec)
  key = spec if spec.startswith(USER_MODULE) else "user_models.py:conv_net"
  assert arch.name == spec and arch.key.startswith(key + "#")
  assert not arch.is_zoo and arch_lib.resolve_architecture(spec) is arch
  model = arch_lib.build_checked(arch, SHAPE, CLASSES)
  assert model.output_shape == (None, CLASSES)
  assert any(isinstance(l, keras.layers.Conv1D) for l in model.layers)


def test_callables_are_named_and_keyed_by_their_code():
  arch = arch_lib.resolve_architecture(user_models.small_mlp)
  assert arch.name == "small_mlp"
  assert arch.key.startswith(f"{USER_MODULE}:small_mlp#")
  assert arch_lib.architecture_name(user_models.small_mlp) == "small_mlp"
  own = arch_lib.Architecture("mine", user_models.small_mlp)
  assert own.key == "mine" and arch_lib.resolve_architecture(own) is own
  model = arch_lib.build_checked(own, (8, 8), 3)  # Flatten: 2-D records
  assert model.input_shape == (None, 8, 8)


def test_sequential_without_input_shape_is_built_for_the_data():
  def lazy(input_shape, num_classes):
    del input_shape
    return keras.Sequential([keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(num_classes)])
  model = arch_lib.build_checked(lazy, SHAPE, CLASSES)
  assert model.input_shape == (None, 64) and model.built


def test_model_file_is_cloned_with_fresh_seeded_weights(tmp_path):
  path = str(tmp_path / "mine.h5")
  saved = user_models.conv_net(SHAPE, CLASSES)
  saved.save(path)
  arch = arch_lib.resolve_architecture(path)
  assert arch.name == path and arch.key.startswith("model-file:")
  assert len(arch.key) == len("model-file:") + 64
  keras.utils.set_random_seed(3)
  first = arch_lib.build_checked(path, SHAPE, CLASSES)
  keras.utils.set_random_seed(3)
  second = arch_lib.build_checked(path, SHAPE, CLASSES)
  assert [type(l) for l in first.layers] == [type(l) for l in saved.layers]
  assert _same_weights(_weights(first), _weights(second))
  kernel = first.get_layer("conv").kernel.numpy()
  assert not np.array_equal(kernel, saved.get_layer("conv").kernel.numpy())
  with pytest.raises(ValueError, match=r"takes inputs of shape \(64,\); the "
                     r"data's records have shape \(8, 8\)"):
    arch_lib.build_checked(path, (8, 8), CLASSES)


def test_model_file_with_code_is_refused_unless_trusted(tmp_path):
  marker = str(tmp_path / "marker")
  path = str(tmp_path / "evil.h5")
  files_test.lambda_model(marker).save(path)
  open(marker + ".armed", "w").close()
  with pytest.raises(ValueError, match="'evil' is a Lambda layer"):
    arch_lib.resolve_architecture(path)
  assert not os.path.exists(marker)
  arch = arch_lib.resolve_architecture(path, trust_code=True)
  assert arch.key.startswith("model-file:")


def _softmax_file(tmp_path):
  path = str(tmp_path / "soft.h5")
  user_models.softmax_net(SHAPE, CLASSES).save(path)
  return path


@pytest.mark.parametrize("spec,error,message", [
    ("no_such_net", ValueError, "unknown architecture 'no_such_net'; an "
     "architecture is a zoo name"),
    ("no_such_module_xyz:build", ValueError,
     "cannot import 'no_such_module_xyz'.*ModuleNotFoundError"),
    ("missing/models.py:build", FileNotFoundError, "no such Python file"),
    (f"{USER_MODULE}:no_such_function", ValueError,
     "has no attribute 'no_such_function'"),
    (f"{USER_MODULE}:NOT_A_FUNCTION", ValueError, "is a int, not a function"),
    (f"{USER_MODULE}:", ValueError, "expected MODULE:FUNCTION"),
    ("missing.h5", FileNotFoundError, "no such model file 'missing.h5'"),
    (3, ValueError, "an architecture must be"),
])
def test_specs_that_do_not_resolve(spec, error, message):
  with pytest.raises(error, match=message):
    arch_lib.resolve_architecture(spec)


@pytest.mark.parametrize("function,message", [
    ("not_a_model", "gave a list, not a tf_keras model"),
    ("softmax_net", "outputs probabilities .*remove the final softmax; wemem "
     "needs logits"),
    ("subclassed_net", "is a subclassed keras.Model .*Sequential or "
     "functional"),
    ("wide_net", r"outputs shape \(11,\) per record; the data has 10 "
     "classes"),
])
def test_unusable_models_give_one_line_errors(function, message):
  with pytest.raises(ValueError, match=message) as info:
    arch_lib.build_checked(f"{USER_MODULE}:{function}", SHAPE, CLASSES)
  assert "\n" not in str(info.value)
  assert str(info.value).startswith(f"architecture '{USER_MODULE}:")


def test_softmax_model_file_is_refused_on_resolve(tmp_path):
  with pytest.raises(ValueError, match="remove the final softmax"):
    arch_lib.resolve_architecture(_softmax_file(tmp_path))


def test_keras_package_models_are_refused():
  fake = type("Functional", (), {"__module__": "keras.src.models.functional"})
  with pytest.raises(ValueError, match="model of the `keras` package .*not "
                     "tf_keras"):
    arch_lib.check_model(fake(), SHAPE, CLASSES, "architecture 'k3'")
  try:
    import keras as keras_package  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  if keras_package.Model is keras.Model:
    return
  model = keras_package.Sequential([keras_package.Input(SHAPE),
                                    keras_package.layers.Dense(CLASSES)])
  with pytest.raises(ValueError, match="`keras` package"):
    arch_lib.check_model(model, SHAPE, CLASSES, "m")


def test_build_errors_of_user_code_become_value_errors():
  def broken(input_shape, num_classes):
    raise RuntimeError("boom\nsecond line")
  with pytest.raises(ValueError, match="failed to build .*RuntimeError: boom "
                     "second line"):
    arch_lib.build_checked(broken, SHAPE, CLASSES)
  with pytest.raises(ValueError, match="must have 1..3 positive dimensions"):
    arch_lib.build_checked("column_fc", (), CLASSES)


def test_user_file_module_loads_once():
  spec = f"{USER_FILE}:small_mlp"
  first = arch_lib.resolve_architecture(spec)
  assert first.build.__module__ in sys.modules
  assert arch_lib.resolve_architecture(spec).build is first.build
