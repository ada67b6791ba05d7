"""Training many small MLPs at once: one compiled graph for K members.

A memorization estimate trains K models of the same architecture on K random
subsets of one pool. When the architecture is a plain MLP (Dense, Dropout and
Flatten layers only, like `column_fc`), `MLPEnsemble` holds the K members'
weights as tensors with a leading member axis and trains them together:

* every member has its own subset and its own record order, and takes its own
  batches of `batch_size` records, gathered from the shared pool arrays
  ("own gather"). The alternative, one shared batch for all members with a
  0/1 membership mask on the loss, computes every record for every member
  (1/p = 1.43x the work at p = 0.7) and changes the batch size members see;
  own gather does neither. All members step in lock-step because their
  subsets have the same size;
* forward and backward passes are batched matmuls over the member axis;
* for sparse binary inputs (Location: 446 binary features, ~12% ones) the
  first layer is the sum of the weight rows of each record's active features,
  and its backward pass and Adam step are one fused kernel (`native`); the
  CSR structure of the pool is computed once;
* with the native kernels and sparse binary inputs, a whole epoch of all
  members is one native op (`fused_epoch`): each member runs its steps back
  to back (forward, backward and Adam of every layer, the dense layers'
  matmuls in Eigen), its weights and optimizer state reused from the
  caches, and the members are shared out to the cores with no
  synchronization between steps. It makes the same updates as the per-step
  graph (same dropout masks, up to float rounding; tests check this) at
  about 1.5x its speed (ColumnFC on Location);
* the optimizer is the library's (Adam, lr 1e-3, L2 weight decay added to the
  gradient, dropout active in training; Keras' Adam formula);
* without the native kernels (no compiler) everything runs on plain
  TensorFlow ops (dense first layer, `ResourceApplyAdam`,
  `stateless_uniform` dropout), about 2-3x slower.

One epoch of all members is one call of one `tf.function`, traced once per
member count and never again (`trace_count`). Members are trained in chunks
of at most `chunk_size` (at most two distinct chunk sizes, so at most two
traces). Their predictions on the pool use the row sum for the first layer
too (`pool_logits`).

Member batches: each member visits its subset in a fresh random order every
epoch, in consecutive batches of `batch_size` (the last one smaller), exactly
like `training.shuffled_plan`. The last batch is padded to `batch_size` with
zero-weight rows, and each member's loss is the mean over its real records.

Dropout masks come from a counter-based hash of (seed, element) rather
than Keras' generator: the same distribution (keep with probability
1 - rate, scale 1 / (1 - rate)), another random stream. The native kernels
and the fallback (`hash_dropout_mask`, in TensorFlow ops) draw the same
masks, so the two paths differ only by floating-point rounding.
"""

import dataclasses
import math
import os
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf import progress as progress_lib
from wemem_tf.memorization import native
from wemem_tf.training import loop as loop_lib

_EPSILON = 1e-7  # keras.optimizers.Adam's default.
_BETA_1 = 0.9
_BETA_2 = 0.999
FIRST_LAYER_MODES = ("auto", "native", "sparse", "dense")


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
    first_layer: how the first layer is computed in training:
      "native": the native row-sum kernel (`native.row_sum`; binary inputs);
      "sparse": `tf.sparse.segment_sum` over the active features' weight rows
        (binary inputs; plain TensorFlow, no faster than "dense" on CPU);
      "dense": batched matmul;
      "auto": "native" for sparse binary inputs when the kernels load, else
        "dense".
    native_kernels: use the native kernels (`native.load()`) when they load:
      the fused first-layer Adam step, the fused Adam + L2 step of the other
      layers and dropout masks (TensorFlow's generators cost ~8 ns per number
      here). False: plain TensorFlow ops only (ResourceApplyAdam,
      stateless_uniform).
    fused_epoch: in "native" mode, train a whole epoch with one native op
      (`WememMlpEpoch`: each member's steps back to back; the same masks,
      updates and losses as the per-step graph up to float rounding).
      False: the per-step graph (native first layer and Adam, TensorFlow
      matmuls).
  """

  def __init__(self, spec: MLPSpec, num_members: int,
               config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
               seed: int = 0, first_layer: str = "auto",
               native_kernels: bool = True, fused_epoch: bool = True):
    if num_members < 1:
      raise ValueError(f"num_members must be >= 1, got {num_members}.")
    if first_layer not in FIRST_LAYER_MODES:
      raise ValueError(f"first_layer must be one of {FIRST_LAYER_MODES}, got "
                       f"{first_layer!r}.")
    self.spec = spec
    self.num_members = num_members
    self.config = config
    self.first_layer = first_layer
    self.fused_epoch = bool(fused_epoch)
    self.trace_count = 0
    self._native = native.load() if native_kernels else None
    if first_layer == "native" and self._native is None:
      raise RuntimeError(
          "first_layer='native' but the native kernels are unavailable: "
          f"{native.unavailable_reason() or 'native_kernels=False'}")
    self._seed = int(seed)
    self._generator = tf.random.Generator.from_seed(self._seed)
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
    self._dropout_seed = tf.Variable(0, dtype=tf.int64, name="dropout_seed")
    self._mode = None  # Set by set_data.
    self._train_epoch = None
    # Per-instance closures: tf.function's retracing warning counts traces
    # per Python function, and every ensemble traces its own graphs once.
    def logits_fn(x):
      return self._logits_impl(x)
    self._logits = tf.function(logits_fn, input_signature=[
        tf.TensorSpec([None, spec.input_dim], tf.float32)])
    def pool_logits_fn(positions, cols, splits):
      return self._pool_logits_impl(positions, cols, splits)
    self._pool_logits = tf.function(pool_logits_fn, input_signature=[
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int64)])
    self.reset()

  @property
  def mode(self) -> Optional[str]:
    """The first-layer mode in use ("native", "sparse" or "dense")."""
    return self._mode

  def reset(self, seed: Optional[int] = None) -> None:
    """New glorot-uniform kernels, zero biases and a fresh optimizer state."""
    if seed is not None:
      self._seed = int(seed)
      self._generator.reset_from_seed(self._seed)
    for kernel, (fan_in, fan_out) in zip(self.kernels, self.spec.layer_dims):
      limit = math.sqrt(6.0 / (fan_in + fan_out))
      kernel.assign(self._generator.uniform(kernel.shape, -limit, limit))
    for v in self.biases + self._m + self._v:
      v.assign(tf.zeros_like(v))
    self._step.assign(0)
    self._dropout_seed.assign(
        np.random.default_rng([self._seed, 7]).integers(2**62))

  def set_data(self, x: np.ndarray, y: np.ndarray,
               csr: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> None:
    """The pool every member draws its batches from (positions 0..n-1).

    Args:
      x: float32 (n, input_dim) features (flattened).
      y: int (n,) labels.
      csr: optional (columns, row_splits) of x's ones (`binary_csr`); computed
        here when needed and not given.
    """
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    if x.shape[1] != self.spec.input_dim:
      raise ValueError(f"x has {x.shape[1]} features; the model takes "
                       f"{self.spec.input_dim}.")
    mode = self.first_layer
    if mode != "dense" and csr is None:
      csr = binary_csr(x, max_density=1.0 if mode != "auto" else 0.35)
      if csr is None and mode != "auto":
        raise ValueError(f"first_layer={mode!r} needs binary (0/1) inputs.")
    if mode == "auto":
      mode = "native" if (csr is not None and self._native is not None) else (
          "dense")
    self._x = tf.constant(x)
    self._y = tf.constant(np.asarray(y, np.int64))
    if mode == "dense":
      self._cols, self._splits = tf.zeros([0], tf.int32), tf.zeros([1],
                                                                   tf.int64)
    else:
      self._cols = tf.constant(csr[0], tf.int32)
      self._splits = tf.constant(csr[1], tf.int64)
    if mode != self._mode:  # The mode is fixed at trace time.
      self._mode = mode
      ints = tf.TensorSpec([self.num_members, None], tf.int32)
      def train_epoch_fn(*args):
        return self._train_epoch_impl(*args)
      self._train_epoch = tf.function(train_epoch_fn, input_signature=[
          tf.TensorSpec([None, self.spec.input_dim], tf.float32),
          tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([None], tf.int64), ints,
          tf.TensorSpec([self.num_members, None], tf.float32)])

  # -- training --------------------------------------------------------------

  def _first_layer(self, data, idx, weight_decay):
    """Pre-activations of layer 0 for batch positions idx (k, b).

    Returns (pre-activations (k, b, units), whether the kernel's gradient
    already includes the L2 term).
    """
    x, cols, splits = data
    kernel = self.kernels[0]
    del weight_decay  # Only the native kernels fold it into the gradient.
    if self._mode == "dense":
      return tf.matmul(tf.gather(x, idx), kernel), False
    k = self.num_members
    b = tf.shape(idx)[1]
    d, units = self.spec.input_dim, self.spec.layer_dims[0][1]
    ragged = tf.RaggedTensor.from_row_splits(cols, splits, validate=False)
    rows = tf.gather(ragged, tf.reshape(idx, [-1]))
    seg = tf.cast(rows.value_rowids(), tf.int32)
    flat = tf.sparse.segment_sum(
        tf.reshape(kernel, [k * d, units]),
        rows.flat_values + (seg // b) * d, seg, num_segments=k * b)
    return tf.reshape(flat, [k, b, units]), False

  def _dropout(self, h, rate, seed):
    if self._native is not None:
      return h * self._native.wemem_dropout_mask(h, seed, rate=rate)
    return h * hash_dropout_mask(tf.shape(h), seed, rate)

  def _adam_coefficients(self):
    self._step.assign_add(1)
    t = tf.cast(self._step, tf.float32)
    return tf.pow(_BETA_1, t), tf.pow(_BETA_2, t)

  def _apply_adam(self, variables, moments, grads, weight_decay, b1_power,
                  b2_power, decayed=()):
    lr = tf.constant(self.config.learning_rate, tf.float32)
    for var, (m, v), g in zip(variables, moments, grads):
      already = any(var is d for d in decayed)
      if self._native is not None:
        native.adam_l2(self._native, var, m, v, g, lr, b1_power, b2_power,
                       tf.constant(0.0) if already else weight_decay,
                       _BETA_1, _BETA_2, _EPSILON)
      else:
        if not already:
          g = g + weight_decay * var
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power,
            beta2_power=b2_power, lr=lr, beta1=_BETA_1, beta2=_BETA_2,
            epsilon=_EPSILON, grad=g)

  def _next_dropout_seed(self):
    self._dropout_seed.assign_add(1)
    return self._dropout_seed.read_value()

  def _layers_from(self, h, first: int, training: bool):
    """Layers first.. from the activations h of layer first - 1."""
    last = len(self.kernels) - 1
    for i in range(first, last + 1):
      h = tf.matmul(h, self.kernels[i]) + self.biases[i]
      if i < last:
        h = tf.nn.relu(h)
        rate = self.spec.dropout_rates[i]
        if training and rate > 0:
          h = self._dropout(h, rate, self._next_dropout_seed())
    return h

  def _rest_of_forward(self, pre, training: bool):
    """Layers 1.. from the first layer's pre-activations (without bias)."""
    h = tf.nn.relu(pre + self.biases[0])
    rate = self.spec.dropout_rates[0]
    if training and rate > 0:
      h = self._dropout(h, rate, self._next_dropout_seed())
    return self._layers_from(h, 1, training)

  def _train_step(self, x, y, cols, splits, idx, w, weight_decay):
    """One batch of every member; returns the per-member mean loss (k,)."""
    yb = tf.gather(y, idx)
    moments = list(zip(self._m, self._v))

    def loss_of(logits):
      ce = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits)
      per_member = tf.reduce_sum(ce * w, 1) / tf.reduce_sum(w, 1)
      return tf.reduce_sum(per_member), per_member

    if self._mode == "native":
      # The first layer (row sum, bias, relu, dropout) is one native kernel,
      # and its weights get their gradient and Adam step from another; the
      # tape stops at the layer's output h1.
      rate = float(self.spec.dropout_rates[0])
      h1 = self._native.wemem_row_sum_relu_dropout(
          self.kernels[0], self.biases[0], cols, splits, idx,
          self._next_dropout_seed(), rate=rate)
      rest = self.variables[2:]
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(h1)
        tape.watch(rest)
        loss, per_member = loss_of(self._layers_from(h1, 1, True))
      grads = tape.gradient(loss, [h1] + rest)
      b1_power, b2_power = self._adam_coefficients()
      native.row_sum_relu_dropout_adam(
          self._native, self.kernels[0], self._m[0], self._v[0],
          self.biases[0], self._m[1], self._v[1], h1, grads[0], cols, splits,
          idx, tf.constant(self.config.learning_rate), b1_power, b2_power,
          weight_decay, rate, _BETA_1, _BETA_2, _EPSILON)
      self._apply_adam(rest, moments[2:], grads[1:], weight_decay, b1_power,
                       b2_power)
      return per_member
    with tf.GradientTape() as tape:
      pre, decayed = self._first_layer((x, cols, splits), idx, weight_decay)
      loss, per_member = loss_of(self._rest_of_forward(pre, True))
    grads = tape.gradient(loss, self.variables)
    b1_power, b2_power = self._adam_coefficients()
    self._apply_adam(self.variables, moments, grads, weight_decay, b1_power,
                     b2_power, decayed=[self.kernels[0]] if decayed else [])
    return per_member

  def _train_epoch_impl(self, x, y, cols, splits, order, weight):
    """One epoch of all members.

    Args:
      x, y: the pool (n, input_dim) and labels (n,).
      cols, splits: CSR of x's ones (sparse first layers) or placeholders.
      order, weight: (k, s*B) batches of record positions and their weights.
    """
    self.trace_count += 1  # Python side effect: once per trace.
    batch = self.config.batch_size
    steps = tf.shape(order)[1] // batch
    weight_decay = tf.constant(self.config.weight_decay, tf.float32)
    if self._mode == "native" and self.fused_epoch:
      return self._fused_epoch(y, cols, splits, order, weight, steps,
                               weight_decay)
    total = tf.zeros([self.num_members])
    for s in tf.range(steps):
      total += self._train_step(x, y, cols, splits,
                                order[:, s * batch:(s + 1) * batch],
                                weight[:, s * batch:(s + 1) * batch],
                                weight_decay)
    return total / tf.cast(tf.maximum(steps, 1), tf.float32)

  def _fused_epoch(self, y, cols, splits, order, weight, steps, weight_decay):
    """The epoch as one native op (`fused_epoch`); mean loss (k,)."""
    rates = [float(r) for r in self.spec.dropout_rates]
    # Dropout seeds a step: the first layer's always, the others' with
    # dropout (as `_train_step` draws them).
    seeds_per_step = 1 + sum(r > 0 for r in rates[1:])
    loss = self._native.wemem_mlp_epoch(
        [v.handle for v in self.variables], [m.handle for m in self._m],
        [v.handle for v in self._v], y, cols, splits, order, weight,
        tf.constant(self.config.learning_rate, tf.float32), weight_decay,
        self._step.read_value(), self._dropout_seed.read_value(),
        rates=rates, batch_size=self.config.batch_size, beta1=_BETA_1,
        beta2=_BETA_2, epsilon=_EPSILON)
    with tf.control_dependencies([loss]):
      steps = tf.cast(steps, tf.int64)
      self._step.assign_add(steps)
      self._dropout_seed.assign_add(steps * seeds_per_step)
    return tf.identity(loss)

  def train_epoch(self, order: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One epoch of every member (see `epoch_schedule`); mean loss (k,)."""
    if self._train_epoch is None:
      raise ValueError("call set_data before train_epoch.")
    if order.shape != weight.shape or order.shape[0] != self.num_members or (
        order.shape[1] % self.config.batch_size):
      raise ValueError(f"order and weight must have shape ({self.num_members},"
                       f" steps * {self.config.batch_size}); got "
                       f"{order.shape} and {weight.shape}.")
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

  def _pool_logits_impl(self, positions, cols, splits):
    """Logits (k, b, classes) of pool records `positions` (b,) (native)."""
    k = self.num_members
    idx = tf.tile(positions[tf.newaxis], [k, 1])
    h = self._native.wemem_row_sum(self.kernels[0], cols, splits, idx)
    h = h + self.biases[0]
    for i in range(1, len(self.kernels)):
      h = tf.matmul(tf.nn.relu(h), self.kernels[i]) + self.biases[i]
    return h

  def pool_logits(self, batch_size: int = 1024) -> np.ndarray:
    """Logits float32 (k, n, classes) of every member on the pool of
    `set_data` (inference mode): `logits(x)` with that pool's x, with the
    first layer as a row sum of x's ones in "native" mode (x is sparse)."""
    if self._mode is None:
      raise ValueError("call set_data before pool_logits.")
    n = int(self._y.shape[0])
    if self._mode != "native":
      return self.logits(self._x.numpy(), batch_size)
    outs = [self._pool_logits(tf.range(i, min(n, i + batch_size)),
                              self._cols, self._splits).numpy()
            for i in range(0, n, batch_size)]
    return np.concatenate(outs, axis=1)


# -- K members of any model ----------------------------------------------------


@dataclasses.dataclass
class MemberPredictions:
  """What K members trained on K subsets predict for every pool record.

  Attributes:
    correct: bool (k, n): member c classifies record i correctly at the end.
    true_prob: float32 (k, n): member c's softmax probability of i's label.
    dynamics: float32 (k, n) or None: mean over epochs of the true-label
      probability after each epoch (when asked for; a training-dynamics
      signal).
    method: "vectorized" or "sequential".
    first_layer: the vectorized first-layer mode, or "" (sequential).
    seconds: wall time of training and prediction.
    trace_count: tf.function traces of the training graph(s).
    fused_epoch: whether epochs ran as one native op (`MLPEnsemble`'s
      `fused_epoch`).
  """
  correct: np.ndarray
  true_prob: np.ndarray
  dynamics: Optional[np.ndarray]
  method: str
  first_layer: str
  seconds: float
  trace_count: int
  fused_epoch: bool = False


ModelFn = Callable[[Tuple[int, ...], int], keras.Model]


def _mix32(x: tf.Tensor) -> tf.Tensor:
  """The 32-bit integer finalizer of kernels/dropout.h (uint32, wrapping)."""
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
  x = x * tf.constant(0x7feb352d, tf.uint32)
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
  x = x * tf.constant(0x846ca68b, tf.uint32)
  return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def hash_dropout_mask(shape, seed, rate: float) -> tf.Tensor:
  """The native kernels' dropout keep factors (0 or 1 / (1 - rate)), float32
  of `shape`, in TensorFlow ops: element i (flat, row-major) keeps iff
  Mix32(Mix32(i ^ k1) + k2) >> 8 >= round(rate * 2^24), with keys k1, k2
  from the int64 `seed` (kernels/dropout.h). The fallback path draws the
  same masks as the native one with it."""
  return member_dropout_masks(shape, tf.reshape(seed, [1]), rate)[0]


def member_dropout_masks(shape, seeds, rate: float) -> tf.Tensor:
  """`hash_dropout_mask` of many members at once.

  Args:
    shape: one member's mask shape.
    seeds: int64 (k,) seeds, one per member.
    rate: the dropout rate in [0, 1).

  Returns:
    float32 (k, *shape): member j's mask is `hash_dropout_mask(shape,
    seeds[j], rate)`, so a member's masks do not depend on the others.
  """
  seeds = tf.reshape(tf.cast(seeds, tf.int64), [-1, 1])
  low = tf.cast(tf.bitwise.bitwise_and(seeds, 0xFFFFFFFF), tf.uint32)
  high = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(seeds, 32),
                                        0xFFFFFFFF), tf.uint32)
  k1 = _mix32(tf.bitwise.bitwise_xor(low, tf.constant(0x9e3779b9,
                                                      tf.uint32)))
  k2 = _mix32(high + k1)
  threshold = tf.constant(int(float(rate) * 16777216.0 + 0.5), tf.uint32)
  index = tf.range(tf.reduce_prod(shape), dtype=tf.int64)[tf.newaxis]
  index = tf.cast(tf.bitwise.bitwise_and(index, 0xFFFFFFFF), tf.uint32)
  h = _mix32(_mix32(tf.bitwise.bitwise_xor(index, k1)) + k2)
  keep = tf.bitwise.right_shift(h, 8) >= threshold
  scale = tf.constant(1.0, tf.float32) / (1.0 - tf.constant(rate, tf.float32))
  out_shape = tf.concat([tf.shape(seeds)[:1], tf.cast(shape, tf.int32)], 0)
  return tf.reshape(tf.cast(keep, tf.float32) * scale, out_shape)


def _softmax_true_prob(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Softmax probability of label y (n,) from logits (..., n, classes)."""
  z = logits - logits.max(-1, keepdims=True)
  e = np.exp(z)
  picked = np.take_along_axis(e, y.reshape((1,) * (logits.ndim - 2) + (-1, 1)),
                              -1)[..., 0]
  return (picked / e.sum(-1)).astype(np.float32)


def chunk_sizes(total: int, max_chunk: int) -> List[int]:
  """Splits `total` members into near-equal chunks of at most `max_chunk`.

  At most two distinct sizes occur, so at most two graphs are traced.
  """
  count = max(1, math.ceil(total / max(1, max_chunk)))
  base, extra = divmod(total, count)
  return [base + 1] * extra + [base] * (count - extra)


def train_vectorized(spec: MLPSpec, x: np.ndarray, y: np.ndarray,
                     membership: np.ndarray, epochs: int,
                     config: loop_lib.TrainConfig, seed: int,
                     chunk_size: int = 64, first_layer: str = "auto",
                     record_dynamics: bool = False, progress: bool = True,
                     executor=None) -> MemberPredictions:
  """Trains K plain-MLP members in chunks of one compiled graph each.

  Args:
    spec: the architecture (`mlp_spec`).
    x: float32 (n, ...) pool features; y: int (n,) labels.
    membership: bool (k, n); member c trains on the records where row c is
      True. All rows must hold the same number of records.
    epochs: training epochs of every member.
    config: learning rate, weight decay, batch size.
    seed: seeds initialization, dropout and record order.
    chunk_size: members trained together (memory ~ 1.9 MB per member for
      ColumnFC on Location, plus activations).
    first_layer: see `MLPEnsemble`.
    record_dynamics: also return the mean true-label probability over
      epochs (costs one evaluation pass per epoch).
    progress: False: no progress bar (True: as `wemem_tf.progress`'s
      display setting says).
    executor: a remote executor (`wemem_eval.executor.RayExecutor`) trains
      each chunk as one task; chunks depend only on (seed, chunk number),
      so the predictions are the same as here.

  In "native" mode every epoch is one native op (`MLPEnsemble`'s
  `fused_epoch`); the environment variable WEMEM_TF_FUSED_EPOCH=0 selects
  the per-step graph instead (for comparisons).
  """
  start = time.perf_counter()
  k, n = membership.shape
  counts = membership.sum(1)
  if np.any(counts != counts[0]) or counts[0] < 1:
    raise ValueError("every member must train on the same number (>= 1) of "
                     f"records; got counts {np.unique(counts)[:5]}.")
  x = np.asarray(x, np.float32).reshape(n, -1)
  y = np.asarray(y, np.int64)
  csr = binary_csr(x) if first_layer in ("auto", "native", "sparse") else None
  sizes = chunk_sizes(k, chunk_size)
  fused = os.environ.get("WEMEM_TF_FUSED_EPOCH", "1") != "0"
  starts = np.cumsum([0] + sizes[:-1])
  chunks = [(int(start), size, chunk)
            for chunk, (start, size) in enumerate(zip(starts, sizes))]
  job = _ChunkJob(spec, membership, epochs, config, seed, first_layer, fused,
                  record_dynamics)
  if executor is not None and executor.remote:
    # Each chunk on a worker (its own ensemble); results in chunk order.
    parts = executor.map(_train_chunk_remote, [(job, c) for c in chunks],
                         shared=(x, y, csr), desc="memorization chunks")
    traces = sum(p[-1] for p in parts)
  else:
    ensembles = {}
    with progress_lib.bar(len(sizes) * epochs, f"memorization ({k} models)",
                          unit="epoch", enabled=progress) as bar:
      parts = [_train_chunk(job, x, y, csr, ensembles, chunk, bar)
               for chunk in chunks]
    traces = sum(e.trace_count for e in ensembles.values())
  correct = np.concatenate([p[0] for p in parts])
  true_prob = np.concatenate([p[1] for p in parts])
  dynamics = (np.concatenate([p[2] for p in parts]) if record_dynamics
              else None)
  mode = parts[-1][3]
  return MemberPredictions(correct, true_prob, dynamics, "vectorized", mode,
                           time.perf_counter() - start, traces,
                           fused_epoch=fused and mode == "native")


@dataclasses.dataclass(frozen=True)
class _ChunkJob:
  """What every chunk of one `train_vectorized` call shares."""
  spec: MLPSpec
  membership: np.ndarray
  epochs: int
  config: loop_lib.TrainConfig
  seed: int
  first_layer: str
  fused: bool
  record_dynamics: bool


def _train_chunk(job: _ChunkJob, x, y, csr, ensembles: dict,
                 chunk: Tuple[int, int, int], bar: progress_lib.Bar):
  """Trains members [start, start + size) of `job` (chunk number `chunk`);
  returns (correct, true_prob, dynamics or None, mode). `ensembles` caches
  one compiled ensemble per chunk size (reset per chunk)."""
  start, size, number = chunk
  members = slice(start, start + size)
  chunk_seed = int(np.random.default_rng([job.seed, 2, number]).integers(
      2**62))
  if size not in ensembles:
    ensembles[size] = MLPEnsemble(job.spec, size, job.config, chunk_seed,
                                  first_layer=job.first_layer,
                                  fused_epoch=job.fused)
    ensembles[size].set_data(x, y, csr)
  ens = ensembles[size]
  ens.reset(chunk_seed)
  rng = np.random.default_rng([job.seed, 3, number])
  dynamics = (np.zeros((size, len(y)), np.float32) if job.record_dynamics
              else None)
  for _ in range(job.epochs):
    order, weight = epoch_schedule(job.membership[members],
                                   job.config.batch_size, rng)
    losses = ens.train_epoch(order, weight)
    if job.record_dynamics:
      dynamics += _softmax_true_prob(ens.pool_logits(), y) / job.epochs
    bar.update(1)
    bar.set_postfix(f"loss {float(np.mean(losses)):.3f}")
  logits = ens.pool_logits()
  return (logits.argmax(-1) == y, _softmax_true_prob(logits, y), dynamics,
          ens.mode)


def _train_chunk_remote(shared, job: _ChunkJob, chunk: Tuple[int, int, int]):
  """`_train_chunk` as a task of a remote executor; adds the trace count."""
  x, y, csr = shared
  ensembles = {}
  out = _train_chunk(job, x, y, csr, ensembles, chunk, progress_lib.Bar())
  return out + (sum(e.trace_count for e in ensembles.values()),)


def _optimizer_of(loop: loop_lib.TrainingLoop):
  step = getattr(loop, "train_step", None)
  return getattr(step, "optimizer", None) or getattr(loop, "optimizer")


def train_sequential(model_fn: ModelFn, input_shape: Tuple[int, ...],
                     num_classes: int, x: np.ndarray, y: np.ndarray,
                     membership: np.ndarray, epochs: int,
                     config: loop_lib.TrainConfig, seed: int,
                     record_dynamics: bool = False, progress: bool = True
                     ) -> MemberPredictions:
  """Trains K members one by one with ONE model object and ONE TrainingLoop.

  Each member starts from fresh weights (a new `model_fn` model built under a
  per-member seed, whose weights are copied in) and a zeroed optimizer state,
  so the loop's compiled epoch is traced once for all members.
  """
  start = time.perf_counter()
  k, n = membership.shape
  keras.utils.set_random_seed(int(seed) % 2**31)
  model = model_fn(input_shape, num_classes)
  loop = loop_lib.TrainingLoop(model, config)
  optimizer = _optimizer_of(loop)
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int64)
  correct = np.zeros((k, n), bool)
  true_prob = np.zeros((k, n), np.float32)
  dynamics = np.zeros((k, n), np.float32) if record_dynamics else None
  with progress_lib.bar(k * epochs, f"memorization ({k} models)",
                        unit="epoch", enabled=progress) as bar:
    for c in range(k):
      member_seed = int(np.random.default_rng([seed, 4, c]).integers(2**31))
      keras.utils.set_random_seed(member_seed)
      fresh = model_fn(input_shape, num_classes)
      model.set_weights(fresh.get_weights())
      del fresh
      for var in optimizer.variables:
        var.assign(tf.zeros_like(var))
      subset = np.nonzero(membership[c])[0]
      xs = tf.constant(x[subset])
      ys = tf.constant(y[subset])
      rng = np.random.default_rng([seed, 5, c])
      for _ in range(epochs):
        loss = loop.train_epoch(xs, ys, loop_lib.shuffled_plan(len(subset),
                                                               config, rng))
        if record_dynamics:
          dynamics[c] += _softmax_true_prob(loop.logits(x), y) / epochs
        bar.update(1)
        bar.set_postfix(f"loss {loss:.3f}")
      logits = loop.logits(x)
      correct[c] = logits.argmax(-1) == y
      true_prob[c] = _softmax_true_prob(logits, y)
  return MemberPredictions(correct, true_prob, dynamics, "sequential", "",
                           time.perf_counter() - start, loop.trace_count)
