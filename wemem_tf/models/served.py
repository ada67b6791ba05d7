"""A trained model as it is served: a file queried in batches, as data.

`load_served_model` opens the artifact a deployment holds and returns a
`ServedModel` whose `predict` runs it exactly as served:

* `.tflite`: the TFLite interpreter (the file `wemem prune`/`wemem export`
  write, or any float32-input classifier). A model whose batch size is fixed
  (e.g. converted with batch 1) is run in batches of that size, the last one
  padded; a dynamic one is resized to `batch_size`.
* `.h5` / `.keras`: a tf_keras model, loaded by `wemem_tf.models.load_model`
  (no Python from the file runs: Lambda layers and unknown classes are
  refused unless `trust_code`).
* a SavedModel directory: its serving signature, loaded with
  `tf.saved_model.load` (graph functions only, no Python). A graph that
  reads or writes files or calls back into Python (`UNSAFE_OPS`) is refused
  before it is loaded, unless `trust_code`.

Outputs are logits or probabilities (`OutputKind`); `detect_output_kind`
tells them apart on the queried rows (probability rows are non-negative and
sum to 1). See docs/method.md §1 (threat model: the attacker queries the
served model).
"""

import dataclasses
import enum
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.models import files as files_lib

# Rows within this distance of summing to 1 (and all >= 0) are probabilities.
PROBABILITY_ATOL = 1e-4
DEFAULT_BATCH_SIZE = 1024
# Graph ops a served classifier never needs and that touch the file system
# or run Python; a SavedModel holding one is refused unless trusted. (The
# checkpoint ops SaveV2 / MergeV2Checkpoints are in every SavedModel's saver
# and are not listed; the ops are collected over the whole file, not only
# over the serving signature's functions.)
UNSAFE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "PyFuncStateless",
    "EagerPyFunc", "WholeFileReader", "WholeFileReaderV2", "TextLineReader",
    "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2",
    "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "Save",
    "SaveSlices", "DebugIdentityV3",
})


class OutputKind(enum.Enum):
  """What a served model returns per class."""
  LOGITS = "logits"
  PROBABILITIES = "probabilities"


def detect_output_kind(outputs: np.ndarray) -> OutputKind:
  """PROBABILITIES if every row of `outputs` (n, c) is a probability
  vector (>= 0, sums to 1 within `PROBABILITY_ATOL`), else LOGITS."""
  outputs = np.asarray(outputs, np.float64)
  if outputs.size and outputs.min() >= 0 and np.all(
      np.abs(outputs.sum(axis=1) - 1.0) <= PROBABILITY_ATOL):
    return OutputKind.PROBABILITIES
  return OutputKind.LOGITS


@dataclasses.dataclass(frozen=True, eq=False)
class ServedModel:
  """A served classifier: float32 (n, *input_shape) -> outputs (n, c).

  Attributes:
    path: the artifact ("" for an in-memory Keras model).
    format: "tflite", "keras" (.h5/.keras or in memory) or "saved_model".
    input_shape: per-record input shape (no batch axis).
    num_classes: outputs per record, c.
    fixed_batch_size: the batch size the artifact insists on, or None.
    run_batch: the artifact's forward pass on one batch (b, ...) -> (b, c).
    batch_size: records per forward pass when the batch size is free.
  """
  path: str
  format: str
  input_shape: Tuple[int, ...]
  num_classes: int
  fixed_batch_size: Optional[int]
  run_batch: Callable[[np.ndarray], np.ndarray]
  batch_size: int = DEFAULT_BATCH_SIZE

  def predict(self, x: np.ndarray) -> np.ndarray:
    """Outputs, float32 (n, num_classes), for inputs x (n, *input_shape).

    Batches of `fixed_batch_size` (the last padded with copies of its first
    record, the padding's outputs dropped) or of `batch_size`.
    """
    x = np.asarray(x, np.float32)
    if tuple(x.shape[1:]) != tuple(self.input_shape):
      raise ValueError(f"the served model {self.describe()} takes inputs of "
                       f"shape {self.input_shape}; got records of shape "
                       f"{tuple(x.shape[1:])}.")
    step = self.fixed_batch_size or self.batch_size
    outs = []
    for i in range(0, len(x), step):
      batch = x[i:i + step]
      real = len(batch)
      if self.fixed_batch_size and real < step:
        batch = np.concatenate([batch, np.repeat(batch[:1], step - real, 0)])
      out = np.asarray(self.run_batch(batch), np.float32)
      if out.shape != (len(batch), self.num_classes):
        raise ValueError(f"the served model {self.describe()} returned shape "
                         f"{out.shape} for a batch of {len(batch)}; expected "
                         f"({len(batch)}, {self.num_classes}).")
      outs.append(out[:real])
    if not outs:
      return np.zeros((0, self.num_classes), np.float32)
    return np.concatenate(outs)

  def describe(self) -> str:
    return f"{self.path!r} ({self.format})" if self.path else self.format


def from_keras(model: keras.Model, path: str = "",
               batch_size: int = DEFAULT_BATCH_SIZE) -> ServedModel:
  """A tf_keras model served as is (inference mode, compiled once)."""
  if not isinstance(model, keras.Model):
    raise ValueError(f"expected a tf_keras model, got {type(model).__name__}.")
  spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
  forward = tf.function(lambda x: model(x, training=False),
                        input_signature=[spec])
  return ServedModel(path, "keras", tuple(model.input_shape[1:]),
                     int(model.output_shape[-1]), None,
                     lambda x: forward(tf.constant(x)).numpy(), batch_size)


def _tflite(path: Optional[str], content: Optional[bytes],
            batch_size: int) -> ServedModel:
  try:
    interpreter = tf.lite.Interpreter(model_path=path, model_content=content)
  except Exception as e:  # pylint: disable=broad-except  (TFLite's errors)
    raise ValueError(f"{path!r} is not a readable TFLite model "
                     f"({type(e).__name__}: {str(e)[:200]}).") from e
  inputs, outputs = (interpreter.get_input_details(),
                     interpreter.get_output_details())
  if len(inputs) != 1 or len(outputs) != 1:
    raise ValueError(f"the TFLite model {path!r} has {len(inputs)} inputs and "
                     f"{len(outputs)} outputs; a classifier with one of each "
                     "is needed.")
  inp, out = inputs[0], outputs[0]
  if inp["dtype"] != np.float32:
    raise ValueError(f"the TFLite model {path!r} takes {inp['dtype'].__name__}"
                     " inputs; only float32 (unquantized) inputs are "
                     "supported.")
  signature = inp.get("shape_signature", inp["shape"])
  fixed = None if signature[0] == -1 else int(inp["shape"][0])
  current = [None]

  def run_batch(x: np.ndarray) -> np.ndarray:
    if current[0] != len(x):
      if fixed is None:
        interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
      interpreter.allocate_tensors()
      current[0] = len(x)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]).copy()

  return ServedModel(path or "", "tflite", tuple(int(d) for d in inp["shape"][1:]),
                     int(out["shape"][-1]), fixed, run_batch, batch_size)


def tflite_model(content: bytes,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> ServedModel:
  """A TFLite flatbuffer held in memory, served."""
  return _tflite(None, content, batch_size)


def saved_model_ops(path: str) -> set:
  """Op types of a SavedModel's graphs (functions included), without
  loading it."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  proto = saved_model_pb2.SavedModel()
  pb_path = os.path.join(path, "saved_model.pb")
  if not os.path.isfile(pb_path):
    raise ValueError(f"{path!r} is a directory without saved_model.pb; not a "
                     "SavedModel.")
  with open(pb_path, "rb") as f:
    proto.ParseFromString(f.read())
  ops = set()
  for meta in proto.meta_graphs:
    ops.update(node.op for node in meta.graph_def.node)
    for function in meta.graph_def.library.function:
      ops.update(node.op for node in function.node_def)
  return ops


def _saved_model(path: str, trust_code: bool, signature: str,
                 batch_size: int) -> ServedModel:
  unsafe = sorted(saved_model_ops(path) & UNSAFE_OPS)
  if unsafe and not trust_code:
    raise files_lib.UntrustedModelCode(
        f"the SavedModel {path!r} holds ops that read or write files or run "
        f"Python ({', '.join(unsafe)}); it is not loaded. "
        f"{files_lib.OPT_IN}")
  loaded = tf.saved_model.load(path)
  if signature not in loaded.signatures:
    raise ValueError(f"the SavedModel {path!r} has no signature "
                     f"{signature!r} (has {sorted(loaded.signatures)}).")
  function = loaded.signatures[signature]
  _, specs = function.structured_input_signature
  if len(specs) != 1:
    raise ValueError(f"signature {signature!r} of {path!r} takes "
                     f"{len(specs)} inputs; a classifier with one is needed.")
  (name, spec), = specs.items()
  outputs = function.structured_outputs
  if len(outputs) != 1:
    raise ValueError(f"signature {signature!r} of {path!r} returns "
                     f"{sorted(outputs)}; a classifier with one output is "
                     "needed.")
  (out_name, out_spec), = outputs.items()
  if spec.shape.rank is None or out_spec.shape.rank != 2:
    raise ValueError(f"signature {signature!r} of {path!r} maps "
                     f"{spec.shape} to {out_spec.shape}; expected (batch, ...)"
                     " to (batch, classes).")
  fixed = spec.shape[0]
  run_batch = lambda x: function(**{name: tf.constant(x, spec.dtype)})[
      out_name].numpy()
  return ServedModel(path, "saved_model", tuple(spec.shape[1:].as_list()),
                     int(out_spec.shape[-1]), fixed, run_batch, batch_size)


def load_served_model(path: str, trust_code: bool = False,
                      signature: str = "serving_default",
                      batch_size: int = DEFAULT_BATCH_SIZE) -> ServedModel:
  """Opens a served model file (.tflite, .h5, .keras or a SavedModel dir).

  Args:
    path: the artifact.
    trust_code: load Keras files naming Python code and SavedModels with
      file/Python ops (only for files you wrote).
    signature: the SavedModel signature to call.
    batch_size: records per forward pass where the batch size is free.

  Raises:
    FileNotFoundError: nothing at `path`.
    ValueError: an unsupported or unreadable file, or one that is not a
      one-input, one-output classifier (`files.UntrustedModelCode` for
      refused code).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  if not os.path.exists(path):
    raise FileNotFoundError(f"no model file or SavedModel directory {path!r}.")
  if os.path.isdir(path):
    return _saved_model(path, trust_code, signature, batch_size)
  if path.endswith(".tflite"):
    return _tflite(path, None, batch_size)
  if path.endswith((".h5", ".hdf5", ".keras")):
    try:
      model = files_lib.load_model(path, trust_code=trust_code, compile=False)
    except ValueError:
      raise
    except Exception as e:  # pylint: disable=broad-except  (h5py, Keras, OS)
      raise ValueError(f"{path!r} is not a readable Keras model file "
                       f"({type(e).__name__}: {str(e)[:200]}).") from e
    return from_keras(model, path, batch_size)
  raise ValueError(f"{path!r}: unsupported model file; serve a .tflite, .h5 "
                   "or .keras file or a SavedModel directory.")
