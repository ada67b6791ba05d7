"""Loading saved tf_keras models as data: no Python from the file runs.

Keras' `safe_mode` does not cover `.h5` files, and a `Lambda` layer in an
`.h5` (or a custom class named by a file) runs Python while the model is
rebuilt. `load_model` reads the stored configuration first (without building
anything) and refuses `Lambda` layers and every class that is not a built-in
tf_keras layer/model or an allowed custom object, unless the caller trusts
the file (`trust_code=True`, `--trust_model_code` on the command line).

Supported formats: `.h5` (HDF5, `model.save("m.h5")`) and `.keras` (zip,
`model.save("m.keras")`). SavedModel directories are refused.
"""

import contextlib
import json
import os
import zipfile
from typing import Any, Dict, Iterator, Optional, Tuple

import h5py

from wemem_tf._keras import keras

SUPPORTED = ("Supported formats: .h5 (HDF5) and .keras (zip) files saved "
             "with tf_keras `model.save`.")
OPT_IN = ("pass --trust_model_code (Python: trust_code=True) only for a file "
          "you wrote.")
CODE_CLASSES = ("Lambda", "__lambda__")  # hold Python bytecode
# Custom objects of this library (as registered by `pruning.prune_scope()`),
# by the position they may take in a configuration.
ALLOWED_CUSTOM_LAYERS = ("PruneLowMagnitude",)
ALLOWED_CUSTOM_OBJECTS = ("IterativeSparsity",)
# Values the .keras format stores as class-named dicts; plain data.
_PASSIVE = ("__tuple__", "__bytes__", "__numpy__", "__tensor__")
_MODEL_CLASSES = ("Functional", "Model", "Sequential")
_KERAS = ("keras", "tf_keras")  # modules of built-in classes (.keras)


class UnsupportedModelFile(ValueError):
  """The path is not an `.h5` / `.keras` model file with a configuration."""


class UntrustedModelCode(ValueError):
  """The model's configuration names code (Lambda, unknown classes)."""


def _classes_in(*modules) -> set:
  return {name for module in modules for name, value in vars(module).items()
          if isinstance(value, type) and not name.startswith("_")}


def _builtin_layers() -> set:
  names = {name for name, value in vars(keras.layers).items()
           if isinstance(value, type) and issubclass(value, keras.layers.Layer)}
  return (names | set(_MODEL_CLASSES)) - set(CODE_CLASSES)


def _builtin_objects() -> set:
  names = _classes_in(keras.initializers, keras.regularizers,
                      keras.constraints) | {"Policy"}
  return (names | _builtin_layers() | set(_PASSIVE)) - set(CODE_CLASSES)


def read_config(path: str) -> Dict[str, Any]:
  """The model configuration stored in `path`, without building the model.

  Dispatches as `keras.models.load_model` does: a `.keras` zip, else HDF5.

  Raises:
    UnsupportedModelFile: a directory (SavedModel), a file of another format,
      or a model file without a (readable) configuration.
  """
  if os.path.isdir(path):
    raise UnsupportedModelFile(f"{path!r} is a directory (SavedModel?), "
                               f"which is not loaded. {SUPPORTED}")
  try:
    if str(path).endswith(".keras") and zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        text = archive.read("config.json")
    elif h5py.is_hdf5(path):
      with h5py.File(path, "r") as f:
        text = f.attrs.get("model_config")
      if text is None:
        raise UnsupportedModelFile(
            f"{path!r} holds no model configuration (weights only?). "
            f"{SUPPORTED}")
    else:
      raise UnsupportedModelFile(f"{path!r} is not a .keras zip or an HDF5 "
                                 f"file. {SUPPORTED}")
    if isinstance(text, bytes):
      text = text.decode("utf-8")
    config = json.loads(text)
  except UnsupportedModelFile:
    raise
  except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
    raise UnsupportedModelFile(
        f"{path!r}: cannot read the model configuration "
        f"({type(e).__name__}: {str(e)[:200]}). {SUPPORTED}".replace(
            "\n", " ")) from e
  if not isinstance(config, dict) or "class_name" not in config:
    raise UnsupportedModelFile(f"{path!r}: the stored model configuration is "
                               f"not a Keras object. {SUPPORTED}")
  return config


def _objects(obj: Any, layer: bool) -> Iterator[Tuple[Dict[str, Any], bool]]:
  """(class-named dict, whether it sits where a layer/model goes), for
  every class-named dict in `obj`, outermost first."""
  if isinstance(obj, list):
    for item in obj:
      yield from _objects(item, False)
    return
  if not isinstance(obj, dict):
    return
  if "class_name" in obj:
    yield obj, layer
    config = obj.get("config")
    if isinstance(config, dict):
      for key, value in config.items():
        if key == "layers" and isinstance(value, list):  # models
          for item in value:
            yield from _objects(item, True)
        elif key in ("layer", "backward_layer"):  # wrappers, Bidirectional
          yield from _objects(value, True)
        else:
          yield from _objects(value, False)
    else:
      yield from _objects(config, False)
    for key, value in obj.items():
      if key not in ("config", "class_name"):
        yield from _objects(value, False)
    return
  for value in obj.values():
    yield from _objects(value, False)


def _name(obj: Dict[str, Any]) -> str:
  config = obj.get("config")
  if isinstance(config, dict) and isinstance(config.get("name"), str):
    return config["name"]
  return str(obj.get("name", "?"))


def check_config(config: Dict[str, Any],
                 custom_objects: Optional[Dict[str, Any]] = None,
                 path: str = "model") -> None:
  """Raises UntrustedModelCode for a `Lambda` layer, or a class that is not
  a built-in tf_keras layer/model/object or an allowed custom object,
  anywhere in `config` (nested models, wrappers' inner layers)."""
  custom = set(custom_objects or ())
  layers = _builtin_layers() | set(ALLOWED_CUSTOM_LAYERS) | custom
  objects = _builtin_objects() | set(ALLOWED_CUSTOM_OBJECTS) | custom
  custom_names = (custom | set(ALLOWED_CUSTOM_LAYERS)
                  | set(ALLOWED_CUSTOM_OBJECTS))
  for obj, is_layer in _objects(config, True):
    class_name = obj["class_name"]
    if class_name in CODE_CLASSES:
      raise UntrustedModelCode(
          f"{path!r}: layer {_name(obj)!r} is a {class_name} layer, whose "
          f"Python code would run on loading; refused: {OPT_IN}")
    module, registered = obj.get("module"), obj.get("registered_name")
    if class_name not in custom_names and not (
        registered in (None, class_name)
        and (module is None or module == "builtins" or (
            isinstance(module, str) and module.split(".")[0] in _KERAS))):
      raise UntrustedModelCode(
          f"{path!r}: {_name(obj)!r} of class {class_name!r} names module "
          f"{module!r} / registered name {registered!r}, which are not "
          f"tf_keras'; refused: {OPT_IN}")
    if class_name == "function":  # .keras: a function looked up by name
      fn = obj.get("config")
      if fn in custom or (isinstance(fn, str)
                          and fn in vars(keras.activations)):
        continue
    allowed = layers if is_layer else objects
    if not isinstance(class_name, str) or class_name not in allowed:
      kind = "layer" if is_layer else "object"
      raise UntrustedModelCode(
          f"{path!r}: {kind} {_name(obj)!r} has class {class_name!r}, which "
          "is not a built-in tf_keras class or an allowed custom object; "
          f"refused: {OPT_IN}")


def check_file(path: str,
               custom_objects: Optional[Dict[str, Any]] = None) -> None:
  """Raises UnsupportedModelFile / UntrustedModelCode (see `load_model`)
  without deserializing anything."""
  check_config(read_config(path), custom_objects, str(path))


def load_model(path: str, trust_code: bool = False,
               custom_objects: Optional[Dict[str, Any]] = None,
               compile: bool = False) -> keras.Model:  # pylint: disable=redefined-builtin
  """Loads a tf_keras model from an `.h5` or `.keras` file.

  Models holding TFMOT pruning wrappers (with `IterativeSparsity`
  schedules) load too.

  Args:
    path: the model file.
    trust_code: load as Keras does, running any Python the file holds
      (Lambda layers, `safe_mode=False` for `.keras`). Only for files you
      wrote.
    custom_objects: further classes/functions the model may use, by name.
    compile: whether to restore the training configuration.

  Raises:
    UnsupportedModelFile (a ValueError): not an `.h5`/`.keras` model file.
    UntrustedModelCode (a ValueError): without `trust_code`, the file names a
      Lambda layer or a class that is not built-in or allowed.
  """
  # Imported here: wemem_tf.pruning imports wemem_tf.models.
  from wemem_tf.pruning import prune as prune_lib  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  config = read_config(path)  # the format is checked even when trusted
  if not trust_code:
    check_config(config, custom_objects, path)
  kwargs = {}
  names = contextlib.nullcontext()
  if path.endswith(".keras"):
    kwargs["safe_mode"] = not trust_code
    names = _tf_keras_export_names(config)
  with prune_lib.prune_scope(), names:
    return keras.models.load_model(path, custom_objects=custom_objects,
                                   compile=compile, **kwargs)


def _tf_keras_symbol(api_name: str) -> Any:
  """The tf_keras object behind an exported name like "keras.layers.Dense",
  or None."""
  obj = keras
  for part in api_name.split(".")[1:]:
    obj = getattr(obj, part, None)
    if obj is None:
      return None
  return obj


@contextlib.contextmanager
def _tf_keras_export_names(config: Dict[str, Any]) -> Iterator[None]:
  """While loading a `.keras` file, its `keras.*` class names resolve to
  tf_keras' classes.

  A `.keras` configuration names built-in classes by module ("keras.layers",
  "Dense"), which tf_keras looks up in TensorFlow's table of exported names.
  The standalone `keras` package (imported in this process by a
  dependency) registers the same names for its own classes; a model rebuilt
  from those mixes two Keras implementations and its reconstruction never
  ends. For each class the configuration names, the table entry points at
  tf_keras' class during the load and is restored afterwards.
  """
  from tensorflow.python.util import tf_export  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  table = tf_export._NAME_TO_SYMBOL_MAPPING  # pylint: disable=protected-access
  saved = {}
  for obj, _ in _objects(config, True):
    module = obj.get("module")
    if not (isinstance(module, str) and (module == "keras"
                                         or module.startswith("keras."))):
      continue
    api_name = f"{module}.{obj['class_name']}"
    symbol = _tf_keras_symbol(api_name)
    if symbol is not None and api_name not in saved:
      saved[api_name] = table.get(api_name)
      table[api_name] = symbol
  try:
    yield
  finally:
    for api_name, previous in saved.items():
      if previous is None:
        table.pop(api_name, None)
      else:
        table[api_name] = previous
