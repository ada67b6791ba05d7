"""Export of a pruned model to TFLite, checked against Keras."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from wemem_tf import io_utils
from wemem_tf._keras import keras
from wemem_tf.models import served
from wemem_tf.pruning import prune as prune_lib


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
  """Result of `export_tflite`.

  Attributes:
    path: the written .tflite file.
    size_bytes: its size.
    max_abs_deviation: max |softmax(TFLite) − softmax(Keras)| over the inputs.
    num_checked: records compared.
  """
  path: str
  size_bytes: int
  max_abs_deviation: float
  num_checked: int


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def tflite_logits(tflite_model: bytes, x: np.ndarray) -> np.ndarray:
  """Runs a TFLite flatbuffer on float32 inputs x (n, ...) → outputs (n, c),
  in one batch."""
  return served.tflite_model(tflite_model, batch_size=max(1, len(x))).predict(x)


def export_tflite(model: keras.Model, path: str, check_inputs: np.ndarray,
                  tolerance: float = 1e-4, sparsity_aware: bool = True,
                  outputs_are_logits: bool = True) -> TFLiteExport:
  """Strips pruning, converts to TFLite and checks the result against Keras.

  Args:
    model: a pruned (wrapped) or stripped logit-output tf_keras model.
    path: where to write the .tflite file (written atomically).
    check_inputs: float32 (n, ...) inputs to compare Keras and TFLite on.
    tolerance: largest allowed |Δ probability| (softmax of the outputs).
    sparsity_aware: convert with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`.
    outputs_are_logits: compare softmax(outputs) (True) or raw outputs.

  Returns:
    `TFLiteExport` with the size and the measured deviation.

  Raises:
    ValueError: empty or mis-shaped check inputs, or a deviation above
      `tolerance` (nothing is written then).
  """
  check_inputs = np.asarray(check_inputs, np.float32)
  if check_inputs.ndim < 2 or len(check_inputs) == 0:
    raise ValueError("check_inputs must be a non-empty (n, ...) array.")
  if tuple(check_inputs.shape[1:]) != tuple(model.input_shape[1:]):
    raise ValueError(f"check_inputs have per-record shape "
                     f"{check_inputs.shape[1:]}, the model expects "
                     f"{model.input_shape[1:]}.")
  if tolerance <= 0:
    raise ValueError(f"tolerance must be > 0, got {tolerance}.")
  stripped = (prune_lib.strip_pruning(model)
              if prune_lib.pruned_wrappers(model) else model)
  converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
  if sparsity_aware:
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
  flatbuffer = converter.convert()
  reference = stripped(check_inputs, training=False).numpy()
  got = tflite_logits(flatbuffer, check_inputs)
  if outputs_are_logits:
    reference, got = _softmax(reference), _softmax(got)
  deviation = float(np.max(np.abs(reference - got)))
  if not deviation <= tolerance:
    raise ValueError(f"TFLite outputs differ from Keras by {deviation:.3g} > "
                     f"tolerance {tolerance:g}; the model was not written.")
  io_utils.atomic_write_bytes(path, flatbuffer)
  return TFLiteExport(path, os.path.getsize(path), deviation,
                      len(check_inputs))
