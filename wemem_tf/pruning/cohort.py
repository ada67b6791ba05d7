"""Many MLPs pre-trained and iteratively pruned together: a cohort.

An attack needs many models trained like the victim: shadows, and LiRA's
and RMIA's reference models (docs/method.md §2). When the architecture is a
plain MLP (`memorization.ensemble.mlp_spec`: Dense, Dropout and Flatten
layers, like `column_fc`), `MLPCohort` holds the K members' weights as
tensors with a leading member axis and runs the whole pipeline of
`pruning.pipeline` for all of them in one compiled epoch function:

* pre-training: every member from its own initial weights (the ones
  `pretrain_model` builds with the member's seed), its own record order
  (`training.shuffled_plan` with the member's seed) and its own early
  stopping on its own dev records, restoring its own best checkpoint;
* iterative pruning: per-member masks recomputed at every iteration from the
  member's own weights by TFMOT's rule (keep the weights whose magnitude is
  at least the k-th largest, k = max(round(size · (1 − s)), 1), per layer,
  every Dense layer but the classifier), a fresh Adam per run as
  `IterativePruner` has, and the member's own defense run: its epoch plans
  come from `DefenseRun.epoch_plan` of the member's records, so windows
  (RSW, random windows) are per member;
* the same arithmetic as the single-model loop (`training.loop`): the mean
  cross-entropy of each batch, `weight_decay · w` added to the gradient,
  Keras' Adam formula with a step count per member, masks applied in the
  forward pass and after every epoch. Members that stop early freeze (no
  update, no Adam step) while the others go on.

Equality with models trained alone: without dropout, a member's weights,
epochs and checkpoints equal `pretrain_and_prune`'s for the same seed up to
float rounding (batched matmuls sum in another order; `cohort_test`
checks it). With dropout, masks come from a counter-based hash of the
member's seed, epoch, step and layer (`ensemble.member_dropout_masks`), not
from Keras' generator: the same distribution, another random stream. So a
cohort-trained model is a different draw from the model the loop trains
with the same seed, and the model store keys the two apart
(`ModelRecipe.trainer`). A member's result does not depend on which other
members share its cohort.

Not batched (`unsupported_reason` says why, and the caller trains those
models one at a time): non-MLP architectures, defenses whose batch update
is not the plain one (RMR's and SWMR's risky batches, PPB, RelaxLoss, HAMP,
AdvReg, DP-SGD), and `restore_best_weights=False`.
"""

import dataclasses
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.memorization import ensemble
from wemem_tf.memorization import native
from wemem_tf.models import architecture as arch_lib
from wemem_tf.pruning import iterative
from wemem_tf.training import loop as loop_lib

_BETA_1 = 0.9
_BETA_2 = 0.999
_EPSILON = 1e-7  # keras.optimizers.Adam's defaults.

# (epoch, rng) -> the member's EpochPlan over its own training records.
PlanFn = Callable[[int, np.random.Generator], loop_lib.EpochPlan]


def unsupported_reason(model: keras.Model,
                       run: Optional[object] = None,
                       pruning_config: Optional[iterative.PruningConfig] = None
                       ) -> Optional[str]:
  """Why a model cannot train in a cohort, or None when it can.

  Args:
    model: a member's (untrained) Keras model.
    run: the member's bound `DefenseRun` for the pruning stage (None: the
      pre-training stage only).
    pruning_config: the pruning settings (None: pre-training only).
  """
  if ensemble.mlp_spec(model) is None:
    return (f"architecture {model.name!r} is not a plain MLP (Dense, "
            "Dropout, Flatten)")
  if pruning_config is not None and not pruning_config.restore_best_weights:
    return "restore_best_weights=False (the authors' checkpoint rule)"
  if run is not None:
    step = run.train_step()
    if (type(step) is not loop_lib.TrainStep or  # pylint: disable=unidiomatic-typecheck
        step.loss_fn is not loop_lib.sparse_ce_from_logits):
      return (f"defense {run.defense.name!r} changes the batch update "
              f"({type(step).__name__})")
  return None


@dataclasses.dataclass
class MemberFit:
  """One member's early-stopped training (a `loop.FitResult` without the
  weights, which stay in the cohort).

  Attributes:
    epochs_run: epochs trained.
    best_epoch: 0-based epoch of the best dev accuracy (the kept weights).
    best_dev_accuracy: that accuracy.
    train_loss: mean batch loss of each epoch.
    dev_accuracy: dev accuracy after each epoch.
  """
  epochs_run: int = 0
  best_epoch: int = -1
  best_dev_accuracy: float = -1.0
  train_loss: List[float] = dataclasses.field(default_factory=list)
  dev_accuracy: List[float] = dataclasses.field(default_factory=list)


def _padded_positions(positions: Sequence[np.ndarray]):
  """(int32 (k, n) positions padded with 0, float32 (k, n) 1/0 validity)."""
  width = max(1, max(len(p) for p in positions))
  out = np.zeros((len(positions), width), np.int32)
  valid = np.zeros((len(positions), width), np.float32)
  for k, p in enumerate(positions):
    out[k, :len(p)] = p
    valid[k, :len(p)] = 1.0
  return out, valid


def _padded_plans(plans: Sequence[loop_lib.EpochPlan],
                  train_positions: Sequence[np.ndarray]):
  """One epoch of some members as padded arrays.

  Returns:
    (index int32 (k, steps, batch) positions into the shared arrays,
     weight float32 (k, steps, batch) 1 for a real record, 0 for padding,
     decay float32 (k, steps)): member k's step j is its plan's batch j;
    a member with fewer batches has all-zero weights there, which the
    epoch function treats as no step at all.
  """
  steps = max(p.num_batches for p in plans)
  width = max(int(np.diff(p.batch_bounds).max()) for p in plans)
  index = np.zeros((len(plans), steps, width), np.int32)
  weight = np.zeros((len(plans), steps, width), np.float32)
  decay = np.zeros((len(plans), steps), np.float32)
  for k, plan in enumerate(plans):
    if np.any(plan.batch_kind != loop_lib.BatchKind.ORDINARY):
      raise ValueError("a cohort trains ordinary batches only; this defense "
                       "plans other kinds (train it one model at a time).")
    records = train_positions[k][plan.order]
    for j in range(plan.num_batches):
      lo, hi = plan.batch_bounds[j], plan.batch_bounds[j + 1]
      index[k, j, :hi - lo] = records[lo:hi]
      weight[k, j, :hi - lo] = 1.0
    decay[k, :plan.num_batches] = plan.batch_weight_decay
  return index, weight, decay


class MLPCohort:
  """K MLPs of one `MLPSpec`, trained together (see the module docstring).

  Args:
    model: one member's Keras model (the architecture; its weights unused).
    initial_weights: each member's `model.get_weights()` to start from.
    seeds: each member's training seed (dropout masks).
    config: optimizer settings: the learning rate and the evaluation batch
      size (batches and their L2 coefficients come from the epoch plans).
    native_kernels: run epochs in the native op (`WememCohortEpoch`) when
      the kernels load and the features are sparse binary; else (or False)
      in TensorFlow ops. Both draw the same dropout masks.

  Attributes:
    num_members: K.
    layer_names: the Dense layers' names, input to output.
    pruned_layers: indices of the layers that carry pruning masks (all but
      the last).
    mode: "native" or "tensorflow", fixed by `set_data` (call it once,
      before training).
  """

  def __init__(self, model: keras.Model,
               initial_weights: Sequence[Sequence[np.ndarray]],
               seeds: Sequence[int],
               config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
               native_kernels: bool = True):
    reason = unsupported_reason(model)
    if reason is not None:
      raise ValueError(f"MLPCohort: {reason}.")
    if len(initial_weights) != len(seeds) or not seeds:
      raise ValueError(f"MLPCohort: one seed per member needed, got "
                       f"{len(initial_weights)} weight lists and {len(seeds)} "
                       "seeds.")
    self.spec = ensemble.mlp_spec(model)
    self.config = config
    self.num_members = len(seeds)
    self.seeds = np.asarray(seeds, np.int64)
    self.layer_names = [l.name for l in model.layers
                        if isinstance(l, keras.layers.Dense)]
    num_layers = len(self.spec.layer_dims)
    self.pruned_layers = tuple(range(num_layers - 1))
    stacked = [np.stack([np.asarray(w[i], np.float32)
                         for w in initial_weights])
               for i in range(2 * num_layers)]
    self.kernels = [tf.Variable(stacked[2 * l]) for l in range(num_layers)]
    self.biases = [tf.Variable(stacked[2 * l + 1])
                   for l in range(num_layers)]
    self.masks = [tf.Variable(tf.ones_like(k)) for k in self.kernels]
    self._variables = self.kernels + self.biases
    self._best = [tf.Variable(v) for v in self._variables]
    self._m = [tf.Variable(tf.zeros_like(v)) for v in self._variables]
    self._v = [tf.Variable(tf.zeros_like(v)) for v in self._variables]
    self._steps = tf.Variable(tf.zeros([self.num_members], tf.float32))
    self.trace_count = 0
    self._x = self._y = self._cols = self._splits = None
    self._native = native.load() if native_kernels else None
    self.mode = None  # "native" or "tensorflow", fixed by set_data
    # Per-instance closures: each cohort traces its own graphs once.
    self._train_epoch = tf.function(
        lambda *args: (self._native_epoch_impl(*args)
                       if self.mode == "native"
                       else self._train_epoch_impl(*args)), input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None, None], tf.int32),
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None], tf.float32)])
    self._correct = tf.function(
        lambda members, idx: self._correct_impl(members, idx),
        input_signature=[tf.TensorSpec([None], tf.int32),
                         tf.TensorSpec([None, None], tf.int32)])

  # Data and weights ----------------------------------------------------

  def set_data(self, x: np.ndarray, y: np.ndarray) -> None:
    """The shared records every member's positions index.

    Args:
      x: float32 (n, ...) features (flattened to the spec's input).
      y: int (n,) labels.
    """
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    if x.shape[1] != self.spec.input_dim:
      raise ValueError(f"MLPCohort: features have {x.shape[1]} values, the "
                       f"architecture takes {self.spec.input_dim}.")
    self._x = tf.constant(x)
    self._y = tf.constant(np.asarray(y, np.int64))
    csr = ensemble.binary_csr(x) if self._native is not None else None
    self.mode = "tensorflow" if csr is None else "native"
    if csr is not None:
      self._cols = tf.constant(csr[0], tf.int32)
      self._splits = tf.constant(csr[1], tf.int64)

  def get_weights(self, member: int) -> List[np.ndarray]:
    """Member `member`'s weights in Keras' `get_weights()` order, pruned
    kernels times their masks (what `strip_pruning` leaves)."""
    out = []
    for kernel, mask, bias in zip(self.kernels, self.masks, self.biases):
      out += [(kernel[member] * mask[member]).numpy(), bias[member].numpy()]
    return out

  def layer_sparsity(self, member: int) -> dict:
    """{Dense layer name: fraction of zero kernel weights} of a member (as
    `prune.layer_sparsity` reports the stripped model)."""
    return {name: float(np.mean((k[member] * m[member]).numpy() == 0))
            for name, k, m in zip(self.layer_names, self.kernels,
                                  self.masks)}

  def prune(self, iteration: int, schedule) -> None:
    """Recomputes every member's masks for `iteration` from its current
    weights by TFMOT's magnitude rule, then applies them (as
    `PruningRounds.start`)."""
    _, sparsity = schedule(schedule.first_step(iteration))
    for l in self.pruned_layers:
      weights = tf.reshape(tf.abs(self.kernels[l] * self.masks[l]),
                           [self.num_members, -1])
      size = tf.shape(weights)[1]
      # TFMOT's k and threshold, in its float32 arithmetic.
      k = tf.cast(tf.maximum(tf.math.round(
          tf.cast(size, tf.float32) * (1 - sparsity)), 1), tf.int32)
      values, _ = tf.math.top_k(weights, k=k)
      threshold = values[:, k - 1:k]
      mask = tf.cast(weights >= threshold, tf.float32)
      self.masks[l].assign(tf.reshape(mask, tf.shape(self.masks[l])))
      self.kernels[l].assign(self.kernels[l] * self.masks[l])

  # Compiled parts ------------------------------------------------------

  def _forward(self, xb, kernels, biases, training: bool, seeds=None,
               first=None):
    """Logits (k, b, classes) of members with these (masked) kernels and
    biases (leading member axis) on their batches xb (k, b, d); `first`,
    when given, is the first layer's product xb @ kernel (xb unused)."""
    h = xb
    last = len(kernels) - 1
    for l, (kernel, bias) in enumerate(zip(kernels, biases)):
      product = (first if l == 0 and first is not None
                 else tf.einsum("kbi,kio->kbo", h, kernel))
      h = product + bias[:, tf.newaxis, :]
      if l < last:
        h = tf.nn.relu(h)
        rate = self.spec.dropout_rates[l]
        if training and rate > 0:
          h = h * ensemble.member_dropout_masks(
              tf.shape(h)[1:], seeds + l, rate)
    return h

  def _train_epoch_impl(self, members, index, weight, decay, dropout_keys,
                        learning_rate):
    """One epoch of the members `members` (int32 (l,)): step j of each at
    once, on copies of their weights and Adam state gathered once and
    written back at the end (the other members cost nothing). Returns
    each one's summed batch loss and number of steps, (l,), (l,)."""
    self.trace_count += 1  # Python side effect: once per trace.
    rows = members[:, tf.newaxis]
    take = lambda variables: [tf.gather(v, members) for v in variables]
    masks = take(self.masks)
    state = (take(self._variables), take(self._m), take(self._v),
             tf.gather(self._steps, members))
    num = len(self.kernels)
    lr = learning_rate[0]
    loss_sum = tf.zeros(tf.shape(members), tf.float32)
    step_count = tf.zeros(tf.shape(members), tf.float32)
    for j in tf.range(tf.shape(index)[1]):
      idx, w = index[:, j], weight[:, j]
      count = tf.reduce_sum(w, axis=1)
      stepping = count > 0
      values, m, v, steps = state
      # The loop's wrapped layers hold kernel · mask in their variables.
      masked = [k * mask for k, mask in zip(values[:num], masks)]
      current = masked + values[num:]
      seeds = dropout_keys + tf.cast(j, tf.int64) * 64
      with tf.GradientTape() as tape:
        tape.watch(current)
        logits = self._forward(tf.gather(self._x, idx), current[:num],
                               current[num:], True, seeds)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.gather(self._y, idx), logits)
        per_member = tf.reduce_sum(ce * w, axis=1) / tf.maximum(count, 1.0)
        total = tf.reduce_sum(per_member)
      grads = tape.gradient(total, current)
      state = self._adam(current, grads, m, v, steps, decay[:, j], stepping,
                         lr)
      loss_sum += tf.where(stepping, per_member, 0.0)
      step_count += tf.cast(stepping, tf.float32)
    values, m, v, steps = state
    values = [k * mask for k, mask in zip(values[:num], masks)] + values[num:]
    for variables, new in ((self._variables, values), (self._m, m),
                           (self._v, v)):
      for var, value in zip(variables, new):
        var.scatter_nd_update(rows, value)
    self._steps.scatter_nd_update(rows, steps)
    return loss_sum, step_count

  def _native_epoch_impl(self, members, index, weight, decay, dropout_keys,
                         learning_rate):
    """`_train_epoch_impl` in one native op (`WememCohortEpoch`): the same
    steps, masks, dropout masks and Adam arithmetic, each member's steps
    back to back on a CPU thread of its own, the first layer as sums of
    the weight rows of each record's ones."""
    self.trace_count += 1  # Python side effect: once per trace.
    num = len(self.kernels)
    interleaved = lambda variables: [
        v.handle for pair in zip(variables[:num], variables[num:])
        for v in pair]
    loss_sum, taken = self._native.wemem_cohort_epoch(
        interleaved(self._variables), interleaved(self._m),
        interleaved(self._v),
        [self.masks[l].read_value() for l in self.pruned_layers],
        self._y, self._cols, self._splits, members, index, weight, decay,
        learning_rate[0], tf.cast(tf.gather(self._steps, members), tf.int64),
        dropout_keys, rates=list(self.spec.dropout_rates), beta1=_BETA_1,
        beta2=_BETA_2, epsilon=_EPSILON)
    taken = tf.cast(taken, tf.float32)
    self._steps.scatter_nd_add(members[:, tf.newaxis], taken)
    return loss_sum, taken

  @staticmethod
  def _adam(values, grads, ms, vs, steps, decay, stepping, lr):
    """Keras' Adam step, with `decay · value` added to each gradient, of
    the stepping members (the others unchanged): (values, m, v, steps)."""
    steps = steps + tf.cast(stepping, tf.float32)
    t = tf.maximum(steps, 1.0)
    alpha = lr * tf.sqrt(1 - tf.pow(_BETA_2, t)) / (1 - tf.pow(_BETA_1, t))
    out_values, out_m, out_v = [], [], []
    for value, grad, m, v in zip(values, grads, ms, vs):
      shape = [-1] + [1] * (len(value.shape) - 1)
      on = tf.reshape(stepping, shape)
      g = grad + tf.reshape(decay, shape) * value
      m_new = m + (g - m) * (1 - _BETA_1)
      v_new = v + (tf.square(g) - v) * (1 - _BETA_2)
      updated = value - (m_new * tf.reshape(alpha, shape)) / (
          tf.sqrt(v_new) + _EPSILON)
      out_m.append(tf.where(on, m_new, m))
      out_v.append(tf.where(on, v_new, v))
      out_values.append(tf.where(on, updated, value))
    return out_values, out_m, out_v, steps

  def _correct_impl(self, members, idx):
    """1 where a member's arg-max logit equals the label, (l, n), for the
    members `members` (int32 (l,)) on their records idx (l, n)."""
    take = lambda variables: [tf.gather(v, members) for v in variables]
    masked = [k * m for k, m in zip(take(self.kernels), take(self.masks))]
    if self.mode == "native":  # the first layer as row sums of its ones
      first = self._native.wemem_row_sum(masked[0], self._cols, self._splits,
                                         idx)
      logits = self._forward(None, masked, take(self.biases), False,
                             first=first)
    else:
      logits = self._forward(tf.gather(self._x, idx), masked,
                             take(self.biases), False)
    return tf.cast(tf.equal(tf.argmax(logits, axis=-1),
                            tf.gather(self._y, idx)), tf.float32)

  # Public training -----------------------------------------------------

  def accuracy(self, positions: Sequence[np.ndarray],
               members: Optional[np.ndarray] = None) -> np.ndarray:
    """Accuracy of each member in `members` (default all; (l,)) on its own
    records `positions[i]` (positions into the shared arrays); NaN for a
    member without records."""
    members = (np.arange(self.num_members) if members is None
               else np.asarray(members))
    idx, valid = _padded_positions([positions[i] for i in members])
    chunk = max(1, self.config.eval_batch_size // 4)
    correct = np.zeros(len(members))
    chosen = tf.constant(members, tf.int32)
    for lo in range(0, idx.shape[1], chunk):
      hits = self._correct(chosen, tf.constant(idx[:, lo:lo + chunk])).numpy()
      correct += (hits * valid[:, lo:lo + chunk]).sum(axis=1)
    counts = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
      return np.where(counts > 0, correct / counts, np.nan)

  def fit(self, train: Sequence[np.ndarray], dev: Sequence[np.ndarray],
          plan_fns: Sequence[PlanFn], plan_seeds: Sequence[int],
          max_epochs: int, patience: int, stream: int) -> List[MemberFit]:
    """Trains every member with early stopping on its dev accuracy and
    leaves each at its best checkpoint (`loop.fit_with_early_stopping`,
    restore_best=True, member by member).

    Args:
      train, dev: each member's positions into the shared arrays.
      plan_fns: each member's (epoch, rng) -> EpochPlan over its training
        records; an empty plan ends that member's training.
      plan_seeds: each member's plan seed (`np.random.default_rng`).
      max_epochs, patience: as the loop's.
      stream: distinguishes this fit's dropout masks from the member's
        other fits (0 pre-training, 1 + k pruning iteration k).
    """
    members = range(self.num_members)
    rngs = [np.random.default_rng(s) for s in plan_seeds]
    fits = [MemberFit() for _ in members]
    live = np.ones(self.num_members, bool)
    for best, var in zip(self._best, self._variables):
      best.assign(var)
    lr = tf.constant([self.config.learning_rate], tf.float32)
    for epoch in range(max_epochs):
      plans = {k: plan_fns[k](epoch, rngs[k]) for k in np.flatnonzero(live)}
      for k, plan in plans.items():
        if plan.num_batches == 0:  # nothing left to visit: training ends
          live[k] = False
      chosen = np.flatnonzero(live)
      if not len(chosen):
        break
      index, weight, decay = _padded_plans([plans[k] for k in chosen],
                                           [train[k] for k in chosen])
      keys = np.array([int(np.random.SeedSequence(
          [int(self.seeds[k]), stream, epoch]).generate_state(
              1, np.uint64)[0]) >> 1 for k in chosen], np.int64)
      loss_sum, steps = self._train_epoch(
          tf.constant(chosen, tf.int32), tf.constant(index),
          tf.constant(weight), tf.constant(decay), tf.constant(keys), lr)
      accuracy = self.accuracy(dev, chosen)
      loss = loss_sum.numpy() / np.maximum(steps.numpy(), 1.0)
      improved = np.zeros(self.num_members, bool)
      for i, k in enumerate(chosen):
        fit = fits[k]
        fit.epochs_run += 1
        fit.train_loss.append(float(loss[i]))
        fit.dev_accuracy.append(float(accuracy[i]))
        improved[k], stop = loop_lib.early_stopping_update(
            epoch, accuracy[i], fit.best_dev_accuracy, fit.best_epoch,
            patience)
        if improved[k]:
          fit.best_dev_accuracy, fit.best_epoch = float(accuracy[i]), epoch
        live[k] = not stop
      self._keep_best(improved)
    for best, var in zip(self._best, self._variables):
      var.assign(best)
    return fits

  def _keep_best(self, improved: np.ndarray) -> None:
    if not improved.any():
      return
    on = tf.constant(improved)
    for best, var in zip(self._best, self._variables):
      shape = [-1] + [1] * (len(var.shape) - 1)
      best.assign(tf.where(tf.reshape(on, shape), var, best))


@dataclasses.dataclass(frozen=True)
class Member:
  """One model of a cohort.

  Attributes:
    split: its record indices into the dataset (train, dev, test).
    seed: its training seed (as `pretrain_and_prune`'s).
  """
  split: splits_lib.ModelSplit
  seed: int


def _share(start: float, num_members: int) -> float:
  """A member's share of the wall time since `start` (seconds)."""
  return (time.perf_counter() - start) / max(1, num_members)


def initial_weights(architecture: arch_lib.ArchitectureLike,
                    dataset: datasets.Dataset, seed: int
                    ) -> Tuple[keras.Model, List[np.ndarray]]:
  """(model, weights) as `pipeline.pretrain_model` initializes a model with
  `seed`."""
  keras.utils.set_random_seed(seed)
  model = arch_lib.build_checked(arch_lib.resolve_architecture(architecture),
                                 dataset.input_shape, dataset.num_classes)
  return model, model.get_weights()


def pretrain(dataset: datasets.Dataset, members: Sequence[Member],
             architecture: arch_lib.ArchitectureLike,
             config: loop_lib.TrainConfig = loop_lib.TrainConfig()
             ) -> Tuple[List[List[np.ndarray]], List[MemberFit], float]:
  """`pipeline.pretrain_model` for every member at once.

  Returns:
    (each member's weights at its best dev checkpoint, each member's fit, a
    member's share of the wall time in seconds).
  """
  start = time.perf_counter()
  built = [initial_weights(architecture, dataset, m.seed) for m in members]
  cohort = MLPCohort(built[0][0], [w for _, w in built],
                     [m.seed for m in members], config)
  cohort.set_data(dataset.x, dataset.y)
  fits = cohort.fit(
      [m.split.train for m in members], [m.split.dev for m in members],
      [lambda epoch, rng, n=len(m.split.train): loop_lib.shuffled_plan(
          n, config, rng) for m in members],
      [m.seed for m in members], config.max_epochs, config.patience,
      stream=0)
  weights = [cohort.get_weights(k) for k in range(len(members))]
  return weights, fits, _share(start, len(members))


# (iteration, the cohort at every member's chosen checkpoint of it, each
# member's IterationRecord).
CohortIterationHook = Callable[[int, MLPCohort,
                                List[iterative.IterationRecord]], None]


def prune(dataset: datasets.Dataset, members: Sequence[Member],
          model: keras.Model, pretrained: Sequence[Sequence[np.ndarray]],
          runs: Sequence[Any], pruning_config: iterative.PruningConfig,
          train_config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
          on_iteration: Optional[CohortIterationHook] = None
          ) -> Tuple[List[List[np.ndarray]],
                     List[List[iterative.IterationRecord]]]:
  """`IterativePruner.run` for every member at once, from its pre-trained
  weights, with its bound `DefenseRun` (`runs[k]`).

  Returns:
    (each member's final stripped weights, each member's IterationRecords).
  """
  for run in runs:
    reason = unsupported_reason(model, run, pruning_config)
    if reason is not None:
      raise ValueError(f"cohort pruning: {reason}.")
  cohort = MLPCohort(model, pretrained, [m.seed for m in members],
                     train_config)
  cohort.set_data(dataset.x, dataset.y)
  schedule = pruning_config.schedule()
  splits = [m.split for m in members]
  histories = [[] for _ in members]
  for iteration in range(pruning_config.num_iterations):
    start = time.perf_counter()
    if iteration > 0:
      cohort.prune(iteration, schedule)
    fits = cohort.fit(
        [s.train for s in splits], [s.dev for s in splits],
        [lambda epoch, rng, run=run, it=iteration: run.epoch_plan(
            it, epoch, rng) for run in runs],
        [m.seed * 1000 + iteration for m in members],
        pruning_config.epochs_per_iteration, pruning_config.patience,
        stream=1 + iteration)
    accuracies = [cohort.accuracy([getattr(s, part) for s in splits])
                  for part in ("train", "dev", "test")]
    seconds = _share(start, len(members))
    records = [iterative.IterationRecord(
        iteration, schedule.sparsity(iteration), cohort.layer_sparsity(k),
        *(float(a[k]) for a in accuracies), fit.epochs_run, fit.best_epoch,
        seconds, fit.train_loss, fit.dev_accuracy)
               for k, fit in enumerate(fits)]
    for history, record in zip(histories, records):
      history.append(record)
    if on_iteration is not None:
      on_iteration(iteration, cohort, records)
  return [cohort.get_weights(k) for k in range(len(members))], histories
