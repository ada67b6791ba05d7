"""A compiled training loop that is traced once per model and reused.

`TrainingLoop` compiles one `tf.function` that runs a whole epoch (every
batch, inside the graph) from an `EpochPlan`: the record order, the batch
boundaries and a per-batch L2 weight-decay coefficient. Changing the data, the
plan or the weights never retraces; only a new model object does.
"""

import dataclasses
import enum
import inspect
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.models import evaluate
from wemem_tf import progress


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimizer and early-stopping settings (defaults: docs/method.md §3).

  Attributes:
    learning_rate: Adam learning rate.
    weight_decay: L2 coefficient added to every gradient (PyTorch-style
      `weight_decay`), per step.
    batch_size: records per batch.
    max_epochs: epochs at most (pre-training: 100).
    patience: stop after this many epochs without a better dev accuracy
      (6: the WeMem authors' counter, which stops once it exceeds 5).
    eval_batch_size: records per forward pass when evaluating.
  """
  learning_rate: float = 1e-3
  weight_decay: float = 5e-4
  batch_size: int = 128
  max_epochs: int = 100
  patience: int = 6
  eval_batch_size: int = 4096

  def __post_init__(self):
    if self.learning_rate <= 0 or self.weight_decay < 0:
      raise ValueError("learning_rate must be > 0 and weight_decay >= 0, got "
                       f"{self.learning_rate}, {self.weight_decay}.")
    if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
      raise ValueError("batch_size, max_epochs and patience must be >= 1, got "
                       f"{self.batch_size}, {self.max_epochs}, {self.patience}.")


def apply_gradients(optimizer, grads_and_vars) -> None:
  """`optimizer.apply_gradients`, without Keras' no-op gradient aggregation
  when a single replica trains.

  Keras optimizers sum gradients across replicas before applying them.
  With one replica that is an identity, but in a traced function TensorFlow
  implements it as a graph-mode custom gradient, which registers a closure
  over the traced graph in TensorFlow's process-global gradient registry
  and never removes it: every traced training function (one per model)
  would stay in memory for good (about 10 MB for a small MLP; a tuning
  search prunes thousands of models). Multi-replica strategies keep the
  default path.

  Args:
    optimizer: a Keras optimizer.
    grads_and_vars: iterable of (gradient, variable) pairs.
  """
  single_replica = tf.distribute.get_strategy().num_replicas_in_sync == 1
  optimizer.apply_gradients(
      grads_and_vars,
      **(_no_aggregation_argument(optimizer) if single_replica else {}))


def _no_aggregation_argument(optimizer) -> dict:
  """The keyword that turns gradient aggregation off for this optimizer:
  Keras optimizers take `skip_gradients_aggregation`, legacy ones (and the
  tensorflow-privacy DP optimizers built on them) take
  `experimental_aggregate_gradients`."""
  if isinstance(optimizer, keras.optimizers.legacy.Optimizer):
    return {"experimental_aggregate_gradients": False}
  try:
    parameters = inspect.signature(optimizer.apply_gradients).parameters
  except (TypeError, ValueError):
    return {}
  if "skip_gradients_aggregation" in parameters:
    return {"skip_gradients_aggregation": True}
  return {}


class BatchKind(enum.IntEnum):
  """What a batch is, for the `TrainStep` (one meaning per value).

  ORDINARY: an ordinary batch.
  RISKY: risky records (P3), trained with their own optimizer and λ_mem.
  EVEN_EPOCH, ODD_EPOCH: a batch of an even / odd epoch of the iteration
    (RelaxLoss alternates its update by epoch parity).
  PADDING: no batch: fills an epoch of `model.fit` up to its fixed number
    of steps (Keras fixes it after the first epoch); trains nothing.
  """
  ORDINARY = 0
  RISKY = 1
  EVEN_EPOCH = 2
  ODD_EPOCH = 3
  PADDING = 4


@dataclasses.dataclass(frozen=True)
class EpochPlan:
  """What one epoch trains on.

  Attributes:
    order: int32 (m,): positions into the training arrays, in visiting order.
    batch_bounds: int32 (b + 1,): batch j is order[bounds[j]:bounds[j + 1]].
    batch_weight_decay: float32 (b,): L2 coefficient used for batch j.
    batch_kind: int32 (b,) `BatchKind` values, or None (all ORDINARY): what
      each batch is, for the `TrainStep` (e.g. RISKY batches get their own
      optimizer).
  """
  order: np.ndarray
  batch_bounds: np.ndarray
  batch_weight_decay: np.ndarray
  batch_kind: Optional[np.ndarray] = None

  def __post_init__(self):
    if self.batch_kind is None:
      object.__setattr__(self, "batch_kind",
                         np.full(len(self.batch_weight_decay),
                                 BatchKind.ORDINARY, np.int32))
    b = len(self.batch_weight_decay)
    if len(self.batch_bounds) != b + 1 or len(self.batch_kind) != b:
      raise ValueError(f"EpochPlan: {b} batches need {b + 1} bounds and {b} "
                       f"kinds, got {len(self.batch_bounds)} and "
                       f"{len(self.batch_kind)}.")
    if b and (self.batch_bounds[0] != 0 or self.batch_bounds[-1] != len(
        self.order) or np.any(np.diff(self.batch_bounds) <= 0)):
      raise ValueError("EpochPlan: batch_bounds must rise strictly from 0 to "
                       "len(order).")

  @property
  def num_batches(self) -> int:
    return len(self.batch_weight_decay)


def batched_plan(order: np.ndarray, batch_size: int,
                 weight_decay: float,
                 kind: BatchKind = BatchKind.ORDINARY) -> EpochPlan:
  """Consecutive batches of `batch_size` over `order`, one decay and kind."""
  order = np.asarray(order, np.int32)
  bounds = np.minimum(np.arange(0, len(order) + batch_size, batch_size),
                      len(order))
  bounds = np.unique(bounds).astype(np.int32)
  if len(bounds) == 1:  # empty order
    bounds = np.zeros(1, np.int32)
  return EpochPlan(order, bounds,
                   np.full(len(bounds) - 1, weight_decay, np.float32),
                   np.full(len(bounds) - 1, int(kind), np.int32))


def concat_plans(*plans: EpochPlan) -> EpochPlan:
  """Runs the plans' batches one after another in one epoch."""
  orders, bounds, decays, kinds, offset = [], [np.zeros(1, np.int32)], [], [], 0
  for plan in plans:
    orders.append(plan.order)
    bounds.append(plan.batch_bounds[1:] + offset)
    decays.append(plan.batch_weight_decay)
    kinds.append(plan.batch_kind)
    offset += len(plan.order)
  return EpochPlan(np.concatenate(orders).astype(np.int32),
                   np.concatenate(bounds).astype(np.int32),
                   np.concatenate(decays).astype(np.float32),
                   np.concatenate(kinds).astype(np.int32))


def shuffled_plan(num_records: int, config: TrainConfig,
                  rng: np.random.Generator) -> EpochPlan:
  """The ordinary epoch: every record once, in random order."""
  return batched_plan(rng.permutation(num_records), config.batch_size,
                      config.weight_decay)


LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def sparse_ce_from_logits(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Per-record cross-entropy, shape (batch,)."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)


class TrainStep:
  """One batch update inside the compiled epoch; defenses subclass it.

  The default: mean per-record loss, plus `weight_decay · w` added to every
  gradient (PyTorch-style L2), applied with Adam. `build` creates every
  variable (optimizer slots, auxiliary networks) before tracing.
  """

  def __init__(self, loss_fn: LossFn = sparse_ce_from_logits):
    self.loss_fn = loss_fn
    self.optimizer = None

  def build(self, model: keras.Model, config: TrainConfig,
            optimizer=None) -> None:
    """Creates the optimizer's (and any auxiliary) variables.

    Args:
      model: the model the step trains.
      config: optimizer settings.
      optimizer: the optimizer to use (e.g. the one a Keras model was
        compiled with, in `model.fit`); None: Adam at
        `config.learning_rate`, as the library's loop trains.
    """
    self.optimizer = (optimizer if optimizer is not None
                      else keras.optimizers.Adam(config.learning_rate))
    self.optimizer.build(model.trainable_variables)

  def objective_gradients(self, model: keras.Model,
                          objective: Callable[[], Tuple[tf.Tensor, tf.Tensor]],
                          weight_decay: tf.Tensor):
    """(reported loss, [∂objective/∂w + weight_decay · w]).

    Args:
      model: the model whose trainable variables are differentiated.
      objective: () -> (scalar to minimize, scalar to report), computed from
        the model inside the gradient tape.
      weight_decay: the batch's L2 coefficient.
    """
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
      loss, reported = objective()
    grads = tape.gradient(loss, variables)
    return reported, [g + weight_decay * v if g is not None else g
                      for g, v in zip(grads, variables)]

  def descend(self, model: keras.Model,
              objective: Callable[[], Tuple[tf.Tensor, tf.Tensor]],
              weight_decay: tf.Tensor) -> tf.Tensor:
    """One optimizer step on `objective` (see `objective_gradients`)."""
    reported, grads = self.objective_gradients(model, objective, weight_decay)
    apply_gradients(self.optimizer, zip(grads, model.trainable_variables))
    return reported

  def gradients(self, model: keras.Model, xb: tf.Tensor, yb: tf.Tensor,
                weight_decay: tf.Tensor):
    """(mean loss, [gradient + weight_decay · variable]) for one batch."""
    def mean_loss():
      loss = tf.reduce_mean(self.loss_fn(yb, model(xb, training=True)))
      return loss, loss
    return self.objective_gradients(model, mean_loss, weight_decay)

  def __call__(self, model: keras.Model, xb: tf.Tensor, yb: tf.Tensor,
               weight_decay: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    """Updates the model on batch (xb, yb); returns the batch loss.

    Args:
      model: the model to update.
      xb, yb: the batch's features and int labels.
      weight_decay: the batch's L2 coefficient (scalar).
      kind: the batch's `BatchKind` (int32 scalar).
    """
    del kind
    loss, grads = self.gradients(model, xb, yb, weight_decay)
    apply_gradients(self.optimizer, zip(grads, model.trainable_variables))
    return loss


class TrainingLoop:
  """Compiled per-epoch training and evaluation for one logit-output model.

  Args:
    model: a tf_keras model returning logits (batch, classes).
    config: optimizer settings.
    train_step: the batch update (default `TrainStep()`: CE + L2, Adam).
    after_epoch: optional eager callable run after each epoch (e.g. applying
      pruning masks); receives nothing.
  """

  def __init__(self, model: keras.Model, config: TrainConfig = TrainConfig(),
               train_step: Optional[TrainStep] = None,
               after_epoch: Optional[Callable[[], None]] = None):
    self.model = model
    self.config = config
    self.after_epoch = after_epoch
    self.train_step = train_step or TrainStep()
    self.train_step.build(model, config)
    self.trace_count = 0
    feature_spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    self._train_epoch = tf.function(self._train_epoch_impl, input_signature=[
        feature_spec, tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)])
    self._logits = tf.function(lambda x: model(x, training=False),
                               input_signature=[feature_spec])

  def _train_epoch_impl(self, x, y, order, bounds, decays, kinds):
    self.trace_count += 1  # Python side effect: runs once per trace.
    num_batches = tf.shape(decays)[0]
    total_loss = tf.constant(0.0)
    for b in tf.range(num_batches):
      idx = order[bounds[b]:bounds[b + 1]]
      total_loss += self.train_step(self.model, tf.gather(x, idx),
                                    tf.gather(y, idx), decays[b], kinds[b])
    return total_loss / tf.maximum(tf.cast(num_batches, tf.float32), 1.0)

  def train_epoch(self, x: tf.Tensor, y: tf.Tensor, plan: EpochPlan) -> float:
    """Runs one epoch of `plan` over (x, y); returns the mean batch loss."""
    if plan.num_batches == 0:
      return float("nan")
    loss = self._train_epoch(x, y, tf.constant(plan.order, tf.int32),
                             tf.constant(plan.batch_bounds, tf.int32),
                             tf.constant(plan.batch_weight_decay, tf.float32),
                             tf.constant(plan.batch_kind, tf.int32))
    if self.after_epoch is not None:
      self.after_epoch()
    return float(loss)

  def logits(self, x) -> np.ndarray:
    """Logits (n, classes) for float32 features x (n, ...), in batches."""
    step = self.config.eval_batch_size
    outs = [self._logits(tf.convert_to_tensor(x[i:i + step], tf.float32))
            for i in range(0, len(x), step)]
    return np.concatenate([o.numpy() for o in outs]) if outs else np.zeros(
        (0, self.model.output_shape[-1]), np.float32)

  def accuracy(self, x, y) -> float:
    """Fraction of records whose arg-max logit equals the label."""
    return evaluate.accuracy(self.logits, x, y)


@dataclasses.dataclass
class FitResult:
  """What `fit_with_early_stopping` did.

  Attributes:
    epochs_run: epochs trained.
    best_epoch: 0-based epoch with the best dev accuracy.
    best_dev_accuracy: that accuracy.
    train_loss: mean batch loss per epoch.
    dev_accuracy: dev accuracy per epoch.
    best_weights: model weights at best_epoch.
    seconds: wall time.
  """
  epochs_run: int
  best_epoch: int
  best_dev_accuracy: float
  train_loss: List[float]
  dev_accuracy: List[float]
  best_weights: List[np.ndarray]
  seconds: float


PlanFn = Callable[[int, np.random.Generator], EpochPlan]


def early_stopping_update(epoch: int, accuracy: float, best_accuracy: float,
                          best_epoch: int, patience: int) -> Tuple[bool, bool]:
  """The early-stopping rule on dev accuracy: (improved, stop).

  Epoch `epoch` improves on the best so far (`best_accuracy` at
  `best_epoch`) when strictly more accurate; otherwise training stops once
  `patience` epochs have passed since the best one.
  """
  if accuracy > best_accuracy:
    return True, False
  return False, epoch - best_epoch >= patience


class BestCheckpoint:
  """The best dev accuracy so far and its weights (early stopping).

  Args:
    model: the model whose weights are kept.
    patience: epochs without a better dev accuracy before stopping.

  Attributes:
    accuracy: the best dev accuracy (-1 before the first epoch).
    epoch: its 0-based epoch (-1 before the first epoch).
    weights: the model's weights then (at construction: the initial ones).
  """

  def __init__(self, model: keras.Model, patience: int):
    self.patience = patience
    self.accuracy, self.epoch = -1.0, -1
    self.weights = model.get_weights()

  def update(self, epoch: int, accuracy: float, model: keras.Model) -> bool:
    """Records epoch `epoch`'s dev accuracy; True when training should stop
    (no improvement for `patience` epochs)."""
    improved, stop = early_stopping_update(epoch, accuracy, self.accuracy,
                                           self.epoch, self.patience)
    if improved:
      self.accuracy, self.epoch = accuracy, epoch
      self.weights = model.get_weights()
    return stop


def fit_with_early_stopping(loop: TrainingLoop, train: Tuple[np.ndarray, np.ndarray],
                            dev: Tuple[np.ndarray, np.ndarray], seed: int,
                            max_epochs: Optional[int] = None,
                            patience: Optional[int] = None,
                            plan_fn: Optional[PlanFn] = None,
                            restore_best: bool = True,
                            progress_desc: Optional[str] = None) -> FitResult:
  """Trains up to `max_epochs`, stopping after `patience` epochs without a
  better dev accuracy; restores the best weights when `restore_best`.

  Args:
    loop: the model's compiled loop.
    train: (x float32 (n, ...), y int (n,)).
    dev: (x, y) used only for early stopping.
    seed: seeds the epoch plans.
    max_epochs, patience: override the loop's config.
    plan_fn: (epoch, rng) -> EpochPlan; default: shuffle all records. An
      empty plan (no batch) ends training: there is nothing left to visit.
    restore_best: set the model to the best epoch's weights at the end.
    progress_desc: names the epochs' progress bar (`wemem_tf.progress`);
      None: no bar.
  """
  config = loop.config
  max_epochs = config.max_epochs if max_epochs is None else max_epochs
  patience = config.patience if patience is None else patience
  datasets.validate_examples(train[0], train[1],
                             loop.model.output_shape[-1], "training data")
  datasets.validate_examples(dev[0], dev[1], loop.model.output_shape[-1],
                             "dev data")
  rng = np.random.default_rng(seed)
  plan_fn = plan_fn or (lambda epoch, r: shuffled_plan(len(train[1]), config, r))
  x = tf.convert_to_tensor(train[0], tf.float32)
  y = tf.convert_to_tensor(train[1], tf.int64)
  start = time.perf_counter()
  best = BestCheckpoint(loop.model, patience)
  losses, accs = [], []
  with progress.bar(max_epochs, progress_desc or "", unit="epoch",
                    enabled=progress_desc is not None) as bar:
    for epoch in range(max_epochs):
      plan = plan_fn(epoch, rng)
      if plan.num_batches == 0:
        break
      losses.append(loop.train_epoch(x, y, plan))
      accs.append(loop.accuracy(*dev))
      bar.update(1)
      bar.set_postfix(f"loss {losses[-1]:.3f}, dev acc {accs[-1]:.3f}")
      if best.update(epoch, accs[-1], loop.model):
        break
  if restore_best:
    loop.model.set_weights(best.weights)
  best_epoch, best_acc, best_weights = best.epoch, best.accuracy, best.weights
  return FitResult(len(losses), best_epoch, best_acc, losses, accs,
                   best_weights, time.perf_counter() - start)
