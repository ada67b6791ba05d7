"""Sums of clipped per-record (or per-microbatch) gradients, for DP-SGD.

DP-SGD (Abadi et al. 2016) clips the gradient of each microbatch's mean loss
to L2 norm C over all trainable variables together, and sums the clipped
gradients; noise is added to the sum afterwards. A microbatch of size 1 is
one record. `clipped_gradient_sum` computes that sum in one of two ways,
with the same result up to float rounding:

* **Dense layers** (`fast`): for a Dense layer with input a_i (one vector
  per record) and pre-activation z_i, a record's kernel gradient is the outer
  product a_i ⊗ g_i, g_i = ∂l_i/∂z_i, and its bias gradient g_i. A single
  backward pass of the summed loss gives every g_i; the squared norm of a
  microbatch's gradient is Σ_{i,j in the microbatch} (a_i·a_j + 1)(g_i·g_j)
  / n², and the clipped sum is aᵀ(w ∘ g) with each record weighted by its
  microbatch's clip factor / n (Goodfellow 2015; tensorflow-privacy's "fast
  gradient clipping" uses the same identity). Cost: about one ordinary
  training step. Used when every trainable variable is the kernel or bias of
  a Dense layer (plain, or inside TFMOT's `PruneLowMagnitude`) fed one vector
  per record, in a functional or Sequential model, with no layer that mixes
  records of a batch (every other layer has no trainable variables).
* **Jacobian** (`jacobian`): the per-microbatch gradients from
  `GradientTape.jacobian`, then clipped and summed. Works for any model; it
  costs about one full-batch backward pass per microbatch.

The clip factor is C / max(‖G_k‖, C), as `tf.clip_by_global_norm`. Inside a
pruning wrapper the gradient reaches the dense kernel variable at every
position (pruned ones included) and is clipped as such, as the tape's
gradient of the variable is.
"""

import dataclasses
import math
from typing import Callable, List, Optional

import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from wemem_tf._keras import keras

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass
class ClippedSum:
  """What `clipped_gradient_sum` returns.

  Attributes:
    grads: one tensor per trainable variable (its shape): the sum over
      microbatches of the clipped microbatch gradients (no noise).
    per_record_loss: float32 (b,) the batch's per-record losses.
    num_microbatches: int32 scalar M = ceil(b / microbatch_size).
  """
  grads: List[tf.Tensor]
  per_record_loss: tf.Tensor
  num_microbatches: tf.Tensor


def _dense_inside(layer) -> Optional[keras.layers.Dense]:
  if isinstance(layer, keras.layers.Dense):
    return layer
  if isinstance(layer, pruning_wrapper.PruneLowMagnitude) and isinstance(
      layer.layer, keras.layers.Dense):
    return layer.layer
  return None


def _layers(model: keras.Model) -> list:
  out = []
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      out.extend(_layers(layer))
    else:
      out.append(layer)
  return out


def fast_clipping_unsupported(model: keras.Model) -> Optional[str]:
  """Why the Dense-layer path cannot clip `model`'s gradients (None: it can).
  """
  if not getattr(model, "_is_graph_network", False):
    return f"{type(model).__name__} is not a functional or Sequential model"
  for layer in _layers(model):
    dense = _dense_inside(layer)
    if dense is not None:
      try:
        shape = layer.input_shape
      except AttributeError:  # called more than once
        return f"Dense layer {dense.name!r} is called more than once"
      if not isinstance(shape, tuple) or len(shape) != 2:
        return (f"Dense layer {dense.name!r} gets {shape} inputs, not one "
                "vector per record")
      continue
    if layer.trainable_weights:
      return (f"layer {layer.name!r} ({type(layer).__name__}) has trainable "
              "weights and is not Dense")
    if isinstance(layer, keras.layers.BatchNormalization):
      return f"layer {layer.name!r} mixes the records of a batch"
  return None


def _microbatch_weights(per_record: tf.Tensor, microbatch_size: int):
  """(segment id per record, records per microbatch, M)."""
  b = tf.shape(per_record)[0]
  seg = tf.range(b) // microbatch_size
  m = (b + microbatch_size - 1) // microbatch_size
  counts = tf.math.unsorted_segment_sum(tf.ones([b]), seg, m)
  return seg, counts, m


def _clip_factors(sq_norms: tf.Tensor, l2_norm_clip: float) -> tf.Tensor:
  norms = tf.sqrt(tf.maximum(sq_norms, 0.0))
  return l2_norm_clip / tf.maximum(norms, l2_norm_clip)


def _grams(v: tf.Tensor, microbatch_size: int, m: tf.Tensor) -> tf.Tensor:
  """Per microbatch k, the matrix of v_i·v_j over its records (M, s, s);
  for s = 1 the squared norms (M,)."""
  if microbatch_size == 1:
    return tf.reduce_sum(tf.square(v), axis=1)
  b = tf.shape(v)[0]
  padded = tf.pad(v, [[0, m * microbatch_size - b], [0, 0]])
  blocks = tf.reshape(padded, [m, microbatch_size, -1])
  return tf.matmul(blocks, blocks, transpose_b=True)


def _fast(model, xb, yb, loss_fn, l2_norm_clip, microbatch_size):
  captured = []

  def call_layer(layer, args, kwargs):
    kwargs = dict(kwargs, training=True)
    dense = _dense_inside(layer)
    if dense is None:
      return layer(*args, **kwargs), None
    activation = dense.activation
    dense.activation = None  # Python-side, while tracing: z before activation
    try:
      z = layer(*args, **kwargs)
    finally:
      dense.activation = activation
    captured.append((dense, args[0], z))
    return (activation(z) if activation is not None else z), None

  # Imported here: tensorflow-privacy takes seconds to import.
  from tensorflow_privacy.privacy.fast_gradient_clipping import gradient_clipping_utils  # pylint: disable=g-import-not-at-top
  with tf.GradientTape() as tape:
    outputs, _ = gradient_clipping_utils.model_forward_pass(
        model, xb, call_layer)
    per_record = loss_fn(yb, outputs)
    total = tf.reduce_sum(per_record)
  zs = [z for _, _, z in captured]
  gs = tape.gradient(total, zs)  # row i: ∂l_i/∂z_i

  seg, counts, m = _microbatch_weights(per_record, microbatch_size)
  scale = tf.gather(1.0 / counts, seg)[:, None]  # microbatch mean
  sq = tf.zeros([m])
  for (dense, a, _), g in zip(captured, gs):
    g = g * scale
    a_gram = _grams(a, microbatch_size, m)
    if dense.use_bias:
      a_gram += 1.0
    product = a_gram * _grams(g, microbatch_size, m)
    sq += product if microbatch_size == 1 else tf.reduce_sum(product, [1, 2])
  weights = tf.gather(_clip_factors(sq, l2_norm_clip), seg)[:, None] * scale

  by_variable = {}
  for (dense, a, _), g in zip(captured, gs):
    wg = weights * g
    by_variable[id(dense.kernel)] = tf.matmul(a, wg, transpose_a=True)
    if dense.use_bias:
      by_variable[id(dense.bias)] = tf.reduce_sum(wg, axis=0)
  grads = [by_variable[id(v)] for v in model.trainable_variables]
  return ClippedSum(grads, per_record, m)


def _jacobian(model, xb, yb, loss_fn, l2_norm_clip, microbatch_size):
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    per_record = loss_fn(yb, model(xb, training=True))
    seg, counts, m = _microbatch_weights(per_record, microbatch_size)
    losses = tf.math.unsorted_segment_sum(per_record, seg, m) / counts
  jac = tape.jacobian(losses, variables, unconnected_gradients="zero")
  sq = tf.add_n([tf.reduce_sum(tf.reshape(j, [m, -1])**2, axis=1)
                 for j in jac])
  factors = _clip_factors(sq, l2_norm_clip)
  grads = [tf.tensordot(factors, j, axes=1) for j in jac]
  return ClippedSum(grads, per_record, m)


METHODS = {"fast": _fast, "jacobian": _jacobian}


def clipped_gradient_sum(model: keras.Model, xb: tf.Tensor, yb: tf.Tensor,
                         loss_fn: LossFn, l2_norm_clip: float,
                         microbatch_size: int = 1,
                         method: str = "fast") -> ClippedSum:
  """Σ_k clip(∇ mean loss of microbatch k, C) over the batch's microbatches.

  Microbatch k holds records [k·s, (k+1)·s) of the batch (s =
  `microbatch_size`; the last may be smaller). Call inside the training
  step (traced or eager); the model runs in training mode.

  Args:
    model: the model; its trainable variables are differentiated.
    xb: the batch's features (b, ...).
    yb: its labels (b,).
    loss_fn: (labels, logits) -> per-record losses (b,).
    l2_norm_clip: C > 0.
    microbatch_size: s >= 1 records per microbatch (1: per record).
    method: "fast" (Dense layers only; see `fast_clipping_unsupported`) or
      "jacobian" (any model).

  Returns:
    A `ClippedSum`.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {sorted(METHODS)}, got "
                     f"{method!r}.")
  if not (l2_norm_clip > 0 and math.isfinite(l2_norm_clip)):
    raise ValueError(f"l2_norm_clip must be > 0, got {l2_norm_clip}.")
  if int(microbatch_size) != microbatch_size or microbatch_size < 1:
    raise ValueError(f"microbatch_size must be an integer >= 1, got "
                     f"{microbatch_size}.")
  return METHODS[method](model, xb, yb, loss_fn, float(l2_norm_clip),
                         int(microbatch_size))
