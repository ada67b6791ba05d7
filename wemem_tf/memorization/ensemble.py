"""Training many small MLPs at once: one compiled graph for K members.

A memorization estimate trains K models of the same architecture on K random
subsets of one pool. When the architecture is a plain MLP (Dense, Dropout and
Flatten layers only, like `column_fc`), `MLPEnsemble` holds the K members'
weights as tensors with a leading member axis and trains them together:

* every member has its own subset and its own record order, and takes its own
  batches of `batch_size` records (each member gathers its batch from the
  shared pool arrays); all members step in lock-step because their subsets
  have the same size;
* forward and backward passes are batched matmuls over the member axis;
* the first layer exploits binary, mostly-zero inputs (Location: 446 binary
  features, ~12% ones): see `first_layer` below;
* the optimizer is the library's (Adam, lr 1e-3, L2 weight decay added to the
  gradient, dropout active in training), applied with TensorFlow's fused
  `ResourceApplyAdam` kernel, which computes the same update as
  `keras.optimizers.Adam` (epsilon 1e-7).

One epoch of all members is one call of one `tf.function`; it is traced once
per member count and never again (`trace_count`).

Member batches: each member visits its subset in a fresh random order every
epoch, in consecutive batches of `batch_size` (the last one smaller), exactly
like `training.shuffled_plan`. The last batch is padded to `batch_size` with
zero-weight rows, and each member's loss is the mean over its real records.
"""

import dataclasses
import math
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.training import loop as loop_lib

_EPSILON = 1e-7  # keras.optimizers.Adam's default.
_BETA_1 = 0.9
_BETA_2 = 0.999


@dataclasses.dataclass(frozen=True)
class MLPSpec:
  """A plain MLP: Dense(relu) layers with optional dropout, linear output.

  Attributes:
    input_dim: number of input features after flattening.
    hidden_units: units of each hidden Dense layer (relu).
    dropout_rates: dropout rate after each hidden layer (0 for none).
    num_classes: units of the output Dense layer (logits).
  """
  input_dim: int
  hidden_units: Tuple[int, ...]
  dropout_rates: Tuple[float, ...]
  num_classes: int

  def __post_init__(self):
    if len(self.hidden_units) != len(self.dropout_rates):
      raise ValueError("MLPSpec: one dropout rate per hidden layer needed, got "
                       f"{self.hidden_units} and {self.dropout_rates}.")
    if any(not 0.0 <= r < 1.0 for r in self.dropout_rates):
      raise ValueError(f"MLPSpec: dropout rates must lie in [0, 1), got "
                       f"{self.dropout_rates}.")

  @property
  def layer_dims(self) -> List[Tuple[int, int]]:
    """(fan_in, fan_out) of every Dense layer, input to output."""
    dims = [self.input_dim, *self.hidden_units, self.num_classes]
    return list(zip(dims[:-1], dims[1:]))

  def flops_per_record(self, first_layer_density: float = 1.0) -> float:
    """Multiply-add FLOPs (x2) of one training step per record.

    Forward, input gradient (not for the first layer) and weight gradient;
    the first layer's forward and weight gradient scale with the input
    density when the input is handled sparsely.
    """
    total = 0.0
    for i, (fan_in, fan_out) in enumerate(self.layer_dims):
      macs = fan_in * fan_out
      total += (2 * macs * first_layer_density if i == 0 else 3 * macs)
    return 2.0 * total


def _is_default_initializer(init, kind) -> bool:
  return isinstance(init, kind) and getattr(init, "seed", None) is None


def mlp_spec(model: keras.Model) -> Optional[MLPSpec]:
  """Returns the `MLPSpec` of `model`, or None when it is not a plain MLP.

  A plain MLP here: an input, optional Flatten, then Dense layers with relu
  activation, each optionally followed by one Dropout, and a final linear
  Dense (logits); glorot-uniform kernels and zero biases (Keras' defaults), no
  regularizers or constraints. Anything else returns None (the caller then
  trains members one by one with the model itself).
  """
  dims = [int(d) for d in model.input_shape[1:]]
  if any(d <= 0 for d in dims):
    return None
  layers = [l for l in model.layers
            if not isinstance(l, keras.layers.InputLayer)]
  if not isinstance(model, keras.Sequential) and len(model.inputs) != 1:
    return None
  hidden, rates, out = [], [], None
  flattened = len(dims) == 1
  for layer in layers:
    if out is not None:
      return None  # Nothing may follow the output layer.
    if isinstance(layer, keras.layers.Flatten):
      if hidden:
        return None
      flattened = True
    elif isinstance(layer, keras.layers.Dropout):
      if (not hidden or len(rates) != len(hidden) - 1 or
          layer.noise_shape is not None):
        return None
      rates.append(float(layer.rate))
    elif type(layer) is keras.layers.Dense:  # pylint: disable=unidiomatic-typecheck
      if (not layer.use_bias or layer.kernel_regularizer is not None or
          layer.bias_regularizer is not None or
          layer.activity_regularizer is not None or
          layer.kernel_constraint is not None or
          layer.bias_constraint is not None or
          not _is_default_initializer(layer.kernel_initializer,
                                      keras.initializers.GlorotUniform) or
          not isinstance(layer.bias_initializer, keras.initializers.Zeros)):
        return None
      if len(rates) < len(hidden):
        rates.append(0.0)
      activation = keras.activations.serialize(layer.activation)
      if activation == "relu":
        hidden.append(int(layer.units))
      elif activation == "linear":
        out = int(layer.units)
      else:
        return None
    else:
      return None
  if out is None or not flattened or not hidden:
    return None
  if len(rates) < len(hidden):
    rates.append(0.0)
  input_dim = int(np.prod(dims))
  # The functional graph must be the chain we walked: check the layer count
  # against the model's own output shape.
  if model.output_shape[1:] != (out,):
    return None
  return MLPSpec(input_dim, tuple(hidden), tuple(rates), out)


def binary_csr(x: np.ndarray, max_density: float = 0.35
               ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
  """CSR structure of a binary matrix, or None when x is not sparse binary.

  Args:
    x: float (n, d) features.
    max_density: largest fraction of ones for which the CSR is worth it.

  Returns:
    (columns int32 (nnz,), row_splits int64 (n + 1,)) of the ones of x, or
    None when x holds values other than 0 and 1 or is denser than
    `max_density`.
  """
  x = np.asarray(x)
  if x.ndim != 2 or x.size == 0:
    return None
  ones = x == 1
  if not np.all(ones | (x == 0)) or ones.mean() > max_density:
    return None
  rows, cols = np.nonzero(ones)
  splits = np.zeros(len(x) + 1, np.int64)
  np.cumsum(np.bincount(rows, minlength=len(x)), out=splits[1:])
  return cols.astype(np.int32), splits


def epoch_schedule(membership: np.ndarray, batch_size: int,
                   rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
  """Every member's record order for one epoch, padded to whole batches.

  Args:
    membership: bool (k, n); every row has the same number m of True.
    batch_size: records per batch.
    rng: draws the orders.

  Returns:
    order int32 (k, s * batch_size) of record positions, member c's
    batch j being order[c, j*B:(j+1)*B]; and weight float32 of the same
    shape, 1 for real records and 0 for the padding of the last batch.
    s = ceil(m / batch_size).
  """
  k, _ = membership.shape
  members = np.nonzero(membership)[1].reshape(k, -1)  # (k, m), sorted rows.
  m = members.shape[1]
  order = rng.permuted(members, axis=1)
  steps = max(1, math.ceil(m / batch_size))
  pad = steps * batch_size - m
  weight = np.ones((k, steps * batch_size), np.float32)
  if pad:
    order = np.concatenate([order, np.zeros((k, pad), order.dtype)], axis=1)
    weight[:, m:] = 0.0
  return order.astype(np.int32), weight


class MLPEnsemble:
  """K members of one plain MLP, trained together in one compiled graph.

  Args:
    spec: the architecture.
    num_members: K, members held (and trained) together.
    config: learning rate, weight decay, batch size (`TrainConfig`).
    seed: seeds initialization and dropout.
    first_layer: how the first layer is computed in training: "dense"
      (batched matmul), "sparse" (sum of the weight rows of the active
      features, for binary inputs given as CSR to `train_epoch`), or "auto"
      (sparse when `csr` is given to `set_data`).
  """

  def __init__(self, spec: MLPSpec, num_members: int,
               config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
               seed: int = 0, first_layer: str = "auto"):
    if num_members < 1:
      raise ValueError(f"num_members must be >= 1, got {num_members}.")
    if first_layer not in ("auto", "dense", "sparse"):
      raise ValueError("first_layer must be 'auto', 'dense' or 'sparse', got "
                       f"{first_layer!r}.")
    self.spec = spec
    self.num_members = num_members
    self.config = config
    self.first_layer = first_layer
    self.trace_count = 0
    self._generator = tf.random.Generator.from_seed(int(seed) & (2**63 - 1))
    self.kernels, self.biases = [], []
    for i, (fan_in, fan_out) in enumerate(spec.layer_dims):
      self.kernels.append(tf.Variable(
          tf.zeros([num_members, fan_in, fan_out]), name=f"kernel{i}"))
      self.biases.append(tf.Variable(tf.zeros([num_members, 1, fan_out]),
                                     name=f"bias{i}"))
    self.variables = [v for pair in zip(self.kernels, self.biases)
                      for v in pair]
    self._m = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
    self._v = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
    self._step = tf.Variable(0, dtype=tf.int64, name="step")
    ints, floats = tf.TensorSpec([num_members, None], tf.int32), tf.TensorSpec(
        [num_members, None], tf.float32)
    self._train_epoch = tf.function(self._train_epoch_impl, input_signature=[
        tf.TensorSpec([None, spec.input_dim], tf.float32),
        tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int64), ints, floats])
    self._logits = tf.function(self._logits_impl, input_signature=[
        tf.TensorSpec([None, spec.input_dim], tf.float32)])
    self._sparse = False
    self._traced_sparse = False
    self.reset()

  def reset(self, seed: Optional[int] = None) -> None:
    """New glorot-uniform kernels, zero biases and a fresh optimizer state."""
    if seed is not None:
      self._generator.reset_from_seed(int(seed) & (2**63 - 1))
    for kernel, (fan_in, fan_out) in zip(self.kernels, self.spec.layer_dims):
      limit = math.sqrt(6.0 / (fan_in + fan_out))
      kernel.assign(self._generator.uniform(kernel.shape, -limit, limit))
    for v in self.biases + self._m + self._v:
      v.assign(tf.zeros_like(v))
    self._step.assign(0)

  def set_data(self, x: np.ndarray, y: np.ndarray,
               csr: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> None:
    """The pool every member draws its batches from (positions 0..n-1).

    Args:
      x: float32 (n, input_dim) features (flattened).
      y: int (n,) labels.
      csr: optional (columns, row_splits) of x's ones (`binary_csr`), used by
        the sparse first layer.
    """
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    if x.shape[1] != self.spec.input_dim:
      raise ValueError(f"x has {x.shape[1]} features; the model takes "
                       f"{self.spec.input_dim}.")
    self._x = tf.constant(x)
    self._y = tf.constant(np.asarray(y, np.int64))
    use_sparse = (self.first_layer == "sparse" or
                  (self.first_layer == "auto" and csr is not None))
    if use_sparse and csr is None:
      csr = binary_csr(x, max_density=1.0)
      if csr is None:
        raise ValueError("first_layer='sparse' needs binary (0/1) inputs.")
    if use_sparse:
      self._cols = tf.constant(csr[0], tf.int32)
      self._splits = tf.constant(csr[1], tf.int64)
    else:
      self._cols = tf.zeros([0], tf.int32)
      self._splits = tf.zeros([1], tf.int64)
    self._sparse = use_sparse

  # -- training --------------------------------------------------------------

  def _first_layer(self, data, idx):
    """Pre-activations of layer 0 for batch positions idx (k, b)."""
    x, cols, splits = data
    kernel = self.kernels[0]
    if not self._sparse:
      return tf.matmul(tf.gather(x, idx), kernel)
    k = self.num_members
    b = tf.shape(idx)[1]
    d, units = self.spec.input_dim, self.spec.layer_dims[0][1]
    ragged = tf.RaggedTensor.from_row_splits(cols, splits, validate=False)
    rows = tf.gather(ragged, tf.reshape(idx, [-1]))
    seg = tf.cast(rows.value_rowids(), tf.int32)
    member = seg // b
    cols = rows.flat_values + member * d
    flat = tf.sparse.segment_sum(
        tf.reshape(kernel, [k * d, units]), cols, seg,
        num_segments=k * b)
    return tf.reshape(flat, [k, b, units])

  def _forward(self, data, idx, training: bool):
    h = self._first_layer(data, idx) + self.biases[0]
    for i in range(1, len(self.kernels)):
      h = tf.nn.relu(h)
      rate = self.spec.dropout_rates[i - 1]
      if training and rate > 0:
        keep = self._generator.uniform(tf.shape(h)) >= rate
        h = tf.where(keep, h * (1.0 / (1.0 - rate)), 0.0)
      h = tf.matmul(h, self.kernels[i]) + self.biases[i]
    return h

  def _apply_adam(self, grads, weight_decay):
    self._step.assign_add(1)
    t = tf.cast(self._step, tf.float32)
    b1_power = tf.pow(_BETA_1, t)
    b2_power = tf.pow(_BETA_2, t)
    for var, m, v, g in zip(self.variables, self._m, self._v, grads):
      tf.raw_ops.ResourceApplyAdam(
          var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power,
          beta2_power=b2_power, lr=self.config.learning_rate, beta1=_BETA_1,
          beta2=_BETA_2, epsilon=_EPSILON, grad=g + weight_decay * var)

  def _train_epoch_impl(self, x, y, cols, splits, order, weight):
    """One epoch of all members.

    Args:
      x, y: the pool (n, input_dim) and labels (n,).
      cols, splits: CSR of x's ones (sparse first layer) or placeholders.
      order, weight: (k, s*B) batches of record positions and their weights.
    """
    self.trace_count += 1  # Python side effect: once per trace.
    batch = self.config.batch_size
    steps = tf.shape(order)[1] // batch
    weight_decay = tf.constant(self.config.weight_decay, tf.float32)
    total = tf.zeros([self.num_members])
    for s in tf.range(steps):
      idx = order[:, s * batch:(s + 1) * batch]
      w = weight[:, s * batch:(s + 1) * batch]
      yb = tf.gather(y, idx)
      with tf.GradientTape() as tape:
        logits = self._forward((x, cols, splits), idx, training=True)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits)
        per_member = tf.reduce_sum(ce * w, 1) / tf.reduce_sum(w, 1)
        loss = tf.reduce_sum(per_member)
      grads = tape.gradient(loss, self.variables)
      self._apply_adam(grads, weight_decay)
      total += per_member
    return total / tf.cast(tf.maximum(steps, 1), tf.float32)

  def train_epoch(self, order: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One epoch of every member (see `epoch_schedule`); mean loss (k,)."""
    if order.shape != weight.shape or order.shape[0] != self.num_members or (
        order.shape[1] % self.config.batch_size):
      raise ValueError(f"order and weight must have shape ({self.num_members},"
                       f" steps * {self.config.batch_size}); got "
                       f"{order.shape} and {weight.shape}.")
    if not hasattr(self, "_x"):
      raise ValueError("call set_data before train_epoch.")
    if self._sparse != self._traced_sparse:
      # The first-layer kind is fixed at trace time.
      self._traced_sparse = self._sparse
      self._train_epoch = tf.function(
          self._train_epoch_impl,
          input_signature=self._train_epoch.input_signature)
    return self._train_epoch(self._x, self._y, self._cols, self._splits,
                             tf.constant(order, tf.int32),
                             tf.constant(weight, tf.float32)).numpy()

  # -- evaluation ------------------------------------------------------------

  def _logits_impl(self, x):
    """Logits (k, n, classes) of every member for shared x (n, input_dim)."""
    k = self.num_members
    d, units = self.spec.layer_dims[0]
    # One large matmul: (n, d) @ (d, k * units).
    w0 = tf.reshape(tf.transpose(self.kernels[0], [1, 0, 2]), [d, k * units])
    h = tf.transpose(tf.reshape(tf.matmul(x, w0), [-1, k, units]), [1, 0, 2])
    h = h + self.biases[0]
    for i in range(1, len(self.kernels)):
      h = tf.matmul(tf.nn.relu(h), self.kernels[i]) + self.biases[i]
    return h

  def logits(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits float32 (k, n, classes) of every member (inference mode)."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    outs = [self._logits(tf.constant(x[i:i + batch_size])).numpy()
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=1)
