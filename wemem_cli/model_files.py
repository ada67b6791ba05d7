"""Loading saved Keras models given on the command line, with clear errors.

Used by `wemem prune --pretrained`, `wemem export --model`: a missing file,
a file that is not a Keras model, or a model that does not fit the dataset
becomes a one-line `FileNotFoundError` / `ValueError` (the `wemem` entry
point prints it without a traceback). Model files are data: a file whose
configuration names Python code (a `Lambda` layer, an unknown class) is
refused before anything in it is deserialized, unless `--trust_model_code`.
"""

import os
from typing import List, Tuple

from absl import flags

import wemem_tf
from wemem_tf.data import datasets
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models import files as files_lib
from wemem_tf.pruning import prune as prune_lib

keras = wemem_tf.keras

TRUST_MODEL_CODE = flags.DEFINE_boolean(
    "trust_model_code", False, "Load model files (--model, --pretrained, "
    "--architecture=PATH) even if they hold Python code (Lambda layers, "
    "custom classes), which then runs. Only for files you wrote.")

# (layer class name, shapes of the layer's weights) per weighted layer.
Signature = List[Tuple[str, List[Tuple[int, ...]]]]


def load_model(path: str, flag: str) -> keras.Model:
  """Loads a tf_keras model saved with `model.save` (.h5 or .keras).

  Models that still hold TFMOT pruning wrappers load too (inside
  `wemem_tf.prune_scope`). Without `--trust_model_code`, a file holding
  Python code is refused before it is deserialized
  (`wemem_tf.models.load_model`).

  Args:
    path: the model file.
    flag: the flag that named it (for messages), e.g. "--pretrained".

  Raises:
    FileNotFoundError: `path` is not an existing file.
    ValueError: no path, or the file is not a loadable tf_keras model.
  """
  if not path:
    raise ValueError(f"{flag} is required: the path of a saved model (.h5).")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{flag}: no such file {path!r}.")
  try:
    model = files_lib.load_model(path, trust_code=TRUST_MODEL_CODE.value,
                                 compile=False)
  except files_lib.UntrustedModelCode as e:
    raise ValueError(f"{flag}: {e}") from e
  except Exception as e:  # pylint: disable=broad-except  (h5py, Keras, OS)
    raise ValueError(f"{flag}: {path!r} is not a readable Keras model file "
                     f"({type(e).__name__}: {str(e)[:200]}).") from e
  if not isinstance(model, keras.Model):
    raise ValueError(f"{flag}: {path!r} holds a {type(model).__name__}, not "
                     "a Keras model.")
  return model


def signature(model: keras.Model) -> Signature:
  """The weighted layers' classes and weight shapes, in layer order."""
  return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights])
          for layer in model.layers if layer.weights]


def check_data_shapes(model: keras.Model, dataset: datasets.Dataset,
                      flag: str) -> None:
  """Raises ValueError unless `model` takes `dataset`'s records (same
  per-record input shape) and has `dataset.num_classes` outputs."""
  input_shape = tuple(model.input_shape[1:])
  if input_shape != tuple(dataset.input_shape):
    raise ValueError(f"{flag} model expects inputs of shape {input_shape}; "
                     f"dataset {dataset.name} has {dataset.input_shape}.")
  classes = model.output_shape[-1]
  if classes != dataset.num_classes:
    raise ValueError(f"{flag} model has {classes} outputs; dataset "
                     f"{dataset.name} has {dataset.num_classes} classes.")


def check_matches(model: keras.Model, dataset: datasets.Dataset,
                  architecture: arch_lib.ArchitectureLike, flag: str) -> None:
  """Raises ValueError unless `model` is a dense `architecture` model for
  `dataset`: same input shape (no batch axis), `dataset.num_classes`
  outputs, same weighted layers and weight shapes, no pruning wrappers.

  `architecture` is any `wemem_tf.models.ArchitectureLike` (resolved as
  given: a resolved `Architecture` keeps its trust setting); the expected
  layers are those of a model it builds for `dataset`."""
  check_data_shapes(model, dataset, flag)
  if prune_lib.pruned_wrappers(model):
    raise ValueError(f"{flag} model still has pruning wrappers; give a "
                     "dense (pre-trained) or stripped model.")
  arch = arch_lib.resolve_architecture(architecture,
                                       trust_code=TRUST_MODEL_CODE.value)
  expected = signature(arch_lib.build_checked(arch, dataset.input_shape,
                                              dataset.num_classes))
  got = signature(model)
  if got != expected:
    raise ValueError(
        f"{flag} model is not a {arch.name} model for {dataset.name} "
        f"(pass --architecture to match it): its weighted layers are {got}, "
        f"{arch.name} has {expected}.")
