"""Model architectures from a zoo name, from code or from a model file.

Wherever wemem takes an architecture (`pretrain_and_prune`, `ModelRecipe`,
the memorization estimate, `--architecture` on the command line) it accepts
any `ArchitectureLike`, resolved once by `resolve_architecture`:

* a zoo name: "column_fc", "small_cnn", "resnet18", "vgg16_bn"
  (`zoo.BUILDERS`; docs/method.md §3);
* "MODULE:FUNCTION": MODULE is imported (a dotted module name on the Python
  path, or the path of a `.py` file) and FUNCTION(input_shape, num_classes)
  must return a tf_keras model with logit outputs. Importing runs the
  module's code: the user named it;
* the path of a saved `.h5` / `.keras` model: its architecture is cloned
  with fresh weights (initialized from the current seed, like any other
  build). The file is read as data (`files.load_model`): a Lambda layer or
  an unknown class is refused unless `trust_code=True`
  (`--trust_model_code`);
* a Python callable (input_shape, num_classes) -> tf_keras model;
* an `Architecture` (returned as is).

An `Architecture` has a `name` (what reports show: the zoo name, the spec as
given, or a callable's `__name__`) and a `key` (what cache keys use: the
model store's and the memorization cache's). A zoo name's key is the plain
name, so stores and scores cached before this module existed stay valid;
code is keyed by its qualified name (and line, for a lambda or nested
function) and a digest of its module's source (not by closure variables:
give an `Architecture` with its own key for builders that differ only in
them), a file by the SHA-256 of its stored model configuration.

Every model is built through `build_checked`, which refuses, with one-line
`ValueError`s, what the pipeline cannot use (`check_model`): a model that is
not tf_keras (e.g. Keras 3), a subclassed model (TFMOT's pruning wrapper
needs a Sequential or functional model), another input shape or output
width than the data's, pruning wrappers, and probability outputs (the
losses, attacks and memorization scores all take logits, docs/method.md §3,
§4, §7).
"""

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from wemem_tf._keras import keras
from wemem_tf.models import files as files_lib
from wemem_tf.models import zoo

Builder = Callable[[Tuple[int, ...], int], keras.Model]
MODEL_FILE_SUFFIXES = (".h5", ".hdf5", ".keras")
FORMS = ("a zoo name (" + ", ".join(sorted(zoo.BUILDERS)) + "), "
         "MODULE:FUNCTION (FUNCTION(input_shape, num_classes) returns a "
         "tf_keras model with logit outputs; MODULE may be a .py path), or "
         "the path of a saved .h5/.keras model")
_PROBE_ROWS = 4
_PROBE_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A model architecture: how to build it, and how to name and key it.

  Attributes:
    name: what reports show (JSON-ready string).
    build: (input_shape without the batch axis, num_classes) -> an
      uncompiled tf_keras model with logit outputs, shape
      (batch, num_classes). Use `build_checked` to build with checks.
    key: identifies the architecture in cache keys; equals `name` for zoo
      names.
  """
  name: str
  build: Builder = dataclasses.field(compare=False, repr=False)
  key: str = ""

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise ValueError(f"Architecture.name must be a non-empty string, got "
                       f"{self.name!r}.")
    if not callable(self.build):
      raise ValueError(f"Architecture {self.name!r}: build must be callable "
                       f"(input_shape, num_classes) -> model, got "
                       f"{type(self.build).__name__}.")
    if not self.key:
      object.__setattr__(self, "key", self.name)

  def __str__(self) -> str:
    return self.name

  def to_json(self) -> str:
    """What reports write: the name (`io_utils.atomic_write_json` calls
    it)."""
    return self.name

  @property
  def is_zoo(self) -> bool:
    """Whether this is a `zoo.BUILDERS` architecture."""
    return (self.name in zoo.BUILDERS and self.key == self.name
            and self.build is zoo.BUILDERS[self.name])


ArchitectureLike = Union[str, Builder, Architecture]

ZOO: Dict[str, Architecture] = {
    name: Architecture(name, builder, name)
    for name, builder in zoo.BUILDERS.items()}

_RESOLVED: Dict[Tuple[str, bool, Any], Architecture] = {}
_LOADED_FILES: Dict[str, Any] = {}  # .py path -> module
_PROBED: Dict[Tuple[int, Tuple[int, ...], int], Builder] = {}
_LOCK = threading.Lock()


def _digest(data: bytes, length: int = 16) -> str:
  return hashlib.sha256(data).hexdigest()[:length]


def _one_line(error: BaseException, limit: int = 300) -> str:
  text = " ".join(str(error).split())
  return f"{type(error).__name__}: {text[:limit]}"


def _source_digest(module: Any) -> Optional[str]:
  """Digest of the source file of `module`, or None without one."""
  path = getattr(module, "__file__", None)
  if not path or not os.path.isfile(path):
    return None
  with open(path, "rb") as f:
    return _digest(f.read())


def _import_module(module_name: str, spec: str) -> Any:
  """Imports MODULE of "MODULE:FUNCTION" (a dotted name or a .py path)."""
  try:
    if module_name.endswith(".py"):
      path = os.path.abspath(module_name)
      if not os.path.isfile(path):
        raise FileNotFoundError(f"architecture {spec!r}: no such Python file "
                                f"{module_name!r}.")
      with open(path, "rb") as f:
        source_key = f"{path}#{_digest(f.read())}"
      with _LOCK:
        module = _LOADED_FILES.get(source_key)
      if module is not None:
        return module
      name = f"wemem_user_architecture_{_digest(source_key.encode(), 12)}"
      module_spec = importlib.util.spec_from_file_location(name, path)
      module = importlib.util.module_from_spec(module_spec)
      sys.modules[name] = module
      try:
        module_spec.loader.exec_module(module)
      except BaseException:
        del sys.modules[name]
        raise
      with _LOCK:
        _LOADED_FILES[source_key] = module
      return module
    return importlib.import_module(module_name)
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (user code)
    hint = ("" if module_name.endswith(".py") else
            " (is it on PYTHONPATH? A file can be named as path/to/file.py:"
            "FUNCTION)")
    raise ValueError(f"architecture {spec!r}: cannot import {module_name!r}"
                     f"{hint}: {_one_line(e)}") from e


def _from_code(spec: str) -> Architecture:
  module_name, _, function_name = spec.rpartition(":")
  if not module_name or not function_name:
    raise ValueError(f"architecture {spec!r}: expected MODULE:FUNCTION "
                     f"with both parts; an architecture is {FORMS}.")
  module = _import_module(module_name, spec)
  function = getattr(module, function_name, None)
  if function is None:
    raise ValueError(f"architecture {spec!r}: module {module_name!r} has no "
                     f"attribute {function_name!r}.")
  if not callable(function):
    raise ValueError(f"architecture {spec!r}: {function_name!r} is a "
                     f"{type(function).__name__}, not a function "
                     "(input_shape, num_classes) -> model.")
  source = _source_digest(module)
  # A .py file is keyed by its name and content, not by the path it was
  # reached by (the same file from another directory: the same models).
  key = (f"{os.path.basename(module_name)}:{function_name}"
         if module_name.endswith(".py") else spec)
  return Architecture(spec, function,
                      key if source is None else f"{key}#{source}")


def _has_pruning_wrappers(model: keras.Model) -> bool:
  return any(type(layer).__name__ == "PruneLowMagnitude"
             for layer in model.layers)


def _from_file(path: str, trust_code: bool) -> Architecture:
  if not os.path.exists(path):
    raise FileNotFoundError(f"architecture: no such model file {path!r}.")
  what = f"architecture {path!r}"
  config = files_lib.read_config(path)  # UnsupportedModelFile: a ValueError
  try:
    template = files_lib.load_model(path, trust_code=trust_code,
                                    compile=False)
  except files_lib.UntrustedModelCode:
    raise
  except Exception as e:  # pylint: disable=broad-except  (h5py, Keras, OS)
    raise ValueError(f"{what} is not a readable Keras model file "
                     f"({_one_line(e, 200)}).") from e
  if isinstance(template, keras.Model) and _has_pruning_wrappers(template):
    raise ValueError(f"{what} holds pruning wrappers; give a dense or "
                     "stripped model (wemem_tf.strip_pruning).")
  shape = (tuple(template.input_shape[1:])
           if isinstance(template, keras.Model) and template.inputs
           and len(template.inputs) == 1 else ())
  defined = bool(shape) and all(d is not None for d in shape)
  check_model(template, shape if defined else None, _width(template), what)

  def build(input_shape, num_classes):
    del input_shape, num_classes  # the file fixes them; checked by callers
    return keras.models.clone_model(template, clone_function=_clone_layer)

  build.__name__ = os.path.basename(path)
  key = "model-file:" + hashlib.sha256(
      json.dumps(config, sort_keys=True).encode()).hexdigest()
  return Architecture(path, build, key)


_OBJECT_MODULES = {"initializers": keras.initializers,
                   "regularizers": keras.regularizers,
                   "constraints": keras.constraints}


def _tf_keras_objects(config: Any) -> Any:
  """`config` with serialized built-in initializers, regularizers and
  constraints replaced by tf_keras instances.

  tf_keras serializes them as {"module": "keras.initializers", ...} and
  deserializes them through that API name, which finds the standalone
  `keras` package's classes once that package is imported too (TensorFlow
  2.15 imports it): a plain `clone_model` gives layers `keras`-package
  initializers, which e.g. `ensemble.mlp_spec` does not take for the
  defaults.
  """
  if isinstance(config, list):
    return [_tf_keras_objects(item) for item in config]
  if not isinstance(config, dict):
    return config
  module = config.get("module")
  if isinstance(module, str) and isinstance(config.get("class_name"), str):
    package, _, kind = module.partition(".")
    cls = getattr(_OBJECT_MODULES.get(kind), config["class_name"], None)
    if package in ("keras", "tf_keras") and isinstance(cls, type):
      return cls.from_config(config.get("config") or {})
  return {key: _tf_keras_objects(value) for key, value in config.items()}


def _clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
  """A new layer from `layer`'s configuration (fresh weights), with
  tf_keras' own initializers (`_tf_keras_objects`)."""
  return layer.__class__.from_config(_tf_keras_objects(layer.get_config()))


def _width(model: Any) -> int:
  try:
    return int(model.output_shape[-1])
  except Exception:  # pylint: disable=broad-except  (checked later)
    return -1


def _from_callable(function: Builder) -> Architecture:
  for name, builder in zoo.BUILDERS.items():
    if function is builder:
      return ZOO[name]
  name = getattr(function, "__name__", None) or type(function).__name__
  module_name = getattr(function, "__module__", None)
  qualname = getattr(function, "__qualname__", name)
  source = _source_digest(sys.modules.get(module_name)) if module_name else None
  key = f"{module_name}:{qualname}" if module_name else f"callable:{name}"
  code = getattr(function, "__code__", None)
  if "<" in qualname and code is not None:  # lambdas, nested functions
    key += f"@{code.co_firstlineno}"
  return Architecture(name, function, key if source is None
                      else f"{key}#{source}")


def _looks_like_file(spec: str) -> bool:
  return spec.lower().endswith(MODEL_FILE_SUFFIXES) or os.path.isdir(spec) or (
      os.path.isfile(spec) and not spec.endswith(".py"))


def resolve_architecture(spec: ArchitectureLike,
                         trust_code: bool = False) -> Architecture:
  """The `Architecture` of any accepted form (see the module docstring).

  Args:
    spec: a zoo name, "MODULE:FUNCTION", a model file path, a callable or
      an `Architecture`.
    trust_code: load a model file even if it holds Python code (Lambda
      layers, custom classes), which then runs. Only for files you wrote.

  Returns:
    The architecture. String specs are resolved once per process (a model
    file again when it changed on disk); a zoo name always gives the same
    object (`ZOO[name]`).

  Raises:
    ValueError: an unknown name, a module that cannot be imported, no such
      function, a model file that cannot be read or holds code (unless
      `trust_code`), holds pruning wrappers or outputs probabilities.
    FileNotFoundError: a model file or .py path that does not exist.
  """
  if isinstance(spec, Architecture):
    return spec
  if isinstance(spec, str):
    if spec in ZOO:
      return ZOO[spec]
    stamp = None
    if _looks_like_file(spec) and os.path.isfile(spec):
      stat = os.stat(spec)
      stamp = (stat.st_mtime_ns, stat.st_size)
    memo_key = (spec, bool(trust_code), stamp)
    with _LOCK:
      found = _RESOLVED.get(memo_key)
    if found is not None:
      return found
    if _looks_like_file(spec):
      arch = _from_file(spec, trust_code)
    elif ":" in spec:
      arch = _from_code(spec)
    else:
      raise ValueError(f"unknown architecture {spec!r}; an architecture is "
                       f"{FORMS}.")
    with _LOCK:
      _RESOLVED[memo_key] = arch
    return arch
  if callable(spec):
    return _from_callable(spec)
  raise ValueError(f"an architecture must be {FORMS}, a callable "
                   "(input_shape, num_classes) -> model or an Architecture; "
                   f"got {type(spec).__name__}.")


def architecture_name(spec: ArchitectureLike) -> str:
  """The report name of `spec` without loading or importing anything: the
  string itself, or the resolved name of a callable / `Architecture`."""
  if isinstance(spec, str):
    return spec
  if isinstance(spec, Architecture):
    return spec.name
  return _from_callable(spec).name if callable(spec) else str(spec)


def _shape_matches(got: Sequence[Any], want: Sequence[int]) -> bool:
  return len(got) == len(want) and all(
      g is None or int(g) == int(w) for g, w in zip(got, want))


def check_model(model: Any, input_shape: Optional[Sequence[int]],
                num_classes: int, what: str = "model",
                probe: bool = True) -> keras.Model:
  """Raises a one-line ValueError unless wemem can train and prune `model`.

  Args:
    model: what a builder returned.
    input_shape: the data's per-record shape (no batch axis); None: not
      checked (and no probe).
    num_classes: the data's classes: the model's output width.
    what: names the model in messages, e.g. "architecture 'm:f'".
    probe: also run a few random inputs of shape (4, *input_shape) through
      the model to refuse probability outputs (every row non-negative and
      summing to 1 within 1e-4).

  Returns:
    `model` (a Sequential model without an input shape is built for
    `input_shape` first).

  Raises:
    ValueError: not a tf_keras model (e.g. a Keras 3 model), a subclassed
      model, several inputs or outputs, another input shape or output
      width, pruning wrappers, or probability outputs.
  """
  if input_shape is not None:
    input_shape = tuple(int(d) for d in input_shape)
  if not isinstance(model, keras.Model):
    module = type(model).__module__ or ""
    if module.split(".")[0] == "keras":
      raise ValueError(
          f"{what} is a model of the `keras` package ({module}."
          f"{type(model).__name__}, e.g. Keras 3), not tf_keras; wemem "
          "(TFMOT) needs Keras 2: build it with `import tf_keras as keras` or "
          "`from wemem_tf import keras`.")
    raise ValueError(f"{what} gave a {type(model).__name__}, not a tf_keras "
                     "model (keras.Model with logit outputs).")
  if (isinstance(model, keras.Sequential) and not model.built
      and input_shape is not None):
    try:
      model.build((None,) + input_shape)
    except Exception as e:  # pylint: disable=broad-except  (user layers)
      raise ValueError(f"{what}: a Sequential model without an input shape "
                       f"that cannot be built for inputs {input_shape} "
                       f"({_one_line(e, 200)}).") from e
  if not (isinstance(model, keras.Sequential)
          or getattr(model, "_is_graph_network", False)):
    raise ValueError(
        f"{what} is a subclassed keras.Model ({type(model).__name__}); "
        "pruning (TFMOT prune_low_magnitude) needs a Sequential or "
        "functional model: build it with keras.Sequential or keras.Input.")
  if len(model.inputs or ()) != 1 or len(model.outputs or ()) != 1:
    raise ValueError(f"{what} has {len(model.inputs or ())} inputs and "
                     f"{len(model.outputs or ())} outputs; wemem needs one "
                     "input and one output (logits).")
  got_input = tuple(model.input_shape[1:])
  if input_shape is not None and not _shape_matches(got_input, input_shape):
    raise ValueError(f"{what} takes inputs of shape {got_input}; the data's "
                     f"records have shape {input_shape}.")
  got_output = tuple(model.output_shape[1:])
  if got_output != (int(num_classes),):
    raise ValueError(f"{what} outputs shape {got_output} per record; the "
                     f"data has {int(num_classes)} classes, so it must "
                     f"output ({int(num_classes)},) logits.")
  if _has_pruning_wrappers(model):
    raise ValueError(f"{what} holds pruning wrappers; give a dense model "
                     "(wemem_tf.strip_pruning).")
  if probe and input_shape is not None:
    _check_logits(model, input_shape, what)
  return model


def _check_logits(model: keras.Model, input_shape: Tuple[int, ...],
                  what: str) -> None:
  """Refuses softmax outputs: a local RNG, no global random state used."""
  x = np.random.default_rng(0).random((_PROBE_ROWS,) + input_shape,
                                      dtype=np.float32)
  try:
    out = np.asarray(model(x, training=False), np.float64)
  except Exception as e:  # pylint: disable=broad-except  (user layers)
    raise ValueError(f"{what} fails on a probe batch of shape {x.shape} "
                     f"({_one_line(e, 200)}).") from e
  if out.shape != (_PROBE_ROWS, model.output_shape[-1]):
    raise ValueError(f"{what} returned shape {out.shape} for a probe batch "
                     f"of shape {x.shape}.")
  if (np.all(np.isfinite(out)) and np.all(out >= 0.0) and
      np.all(np.abs(out.sum(-1) - 1.0) <= _PROBE_TOLERANCE)):
    raise ValueError(f"{what} outputs probabilities (rows are non-negative "
                     "and sum to 1): remove the final softmax; wemem needs "
                     "logits.")


def build_checked(spec: ArchitectureLike, input_shape: Sequence[int],
                  num_classes: int, trust_code: bool = False) -> keras.Model:
  """Resolves `spec`, builds it for (input_shape, num_classes), checks it.

  The probe for probability outputs runs once per (builder, input shape,
  classes) in a process; later builds get the cheap structural checks
  only. No global random state is used besides the builder's own weight
  initialization, so a seeded build gives the same weights as the builder
  called directly.

  Returns:
    An uncompiled tf_keras model, logits of shape (batch, num_classes).

  Raises:
    ValueError / FileNotFoundError: see `resolve_architecture` and
      `check_model`.
  """
  arch = resolve_architecture(spec, trust_code)
  input_shape = tuple(int(d) for d in input_shape)
  num_classes = int(num_classes)
  what = f"architecture {arch.name!r}"
  try:
    model = arch.build(input_shape, num_classes)
  except ValueError as e:
    raise ValueError(f"{what} cannot be built for inputs {input_shape} and "
                     f"{num_classes} classes: {' '.join(str(e).split())}"
                     ) from e
  except Exception as e:  # pylint: disable=broad-except  (user code)
    if arch.is_zoo:
      raise
    raise ValueError(f"{what} failed to build for inputs {input_shape} and "
                     f"{num_classes} classes ({_one_line(e)}).") from e
  memo = (id(arch.build), input_shape, num_classes)
  with _LOCK:
    probed = memo in _PROBED
  check_model(model, input_shape, num_classes, what, probe=not probed)
  if not probed:
    with _LOCK:
      _PROBED[memo] = arch.build  # keeps the id valid
  return model


def builder(spec: ArchitectureLike, trust_code: bool = False) -> Builder:
  """A checked builder (input_shape, num_classes) -> model of `spec`."""
  arch = resolve_architecture(spec, trust_code)
  return lambda input_shape, num_classes: build_checked(arch, input_shape,
                                                        num_classes)
