"""Pre-training and the iterative prune / fine-tune procedure (docs/method.md §3)."""

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from wemem_tf._keras import keras
from wemem_tf.defenses import catalog as defense_catalog
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.pruning import schedule as schedule_lib
from wemem_tf.training import loop as loop_lib

Arrays = Tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class PruningConfig:
  """Iterative pruning settings (defaults: docs/method.md §3).

  Attributes:
    target_sparsity: final fraction of zero weights per pruned layer, in (0, 1).
    num_iterations: pruning iterations n >= 2 (iteration 0 stays dense).
    epochs_per_iteration: fine-tuning epochs at most per iteration.
    patience: early-stopping patience on dev accuracy.
    restore_best_weights: True (default): each iteration ends at its best dev
      checkpoint, and the next iteration's masks come from it. False: the
      authors' code: continue from the last epoch's weights; only the final
      model is the last iteration's best checkpoint.
  """
  target_sparsity: float = 0.6
  num_iterations: int = 5
  epochs_per_iteration: int = 21
  patience: int = 6
  restore_best_weights: bool = True

  def __post_init__(self):
    schedule_lib.validate_target(self.target_sparsity, self.num_iterations)
    if self.epochs_per_iteration < 1 or self.patience < 1:
      raise ValueError("epochs_per_iteration and patience must be >= 1, got "
                       f"{self.epochs_per_iteration}, {self.patience}.")

  def schedule(self) -> schedule_lib.IterativeSparsity:
    return schedule_lib.IterativeSparsity(
        self.target_sparsity, self.num_iterations,
        epochs_per_iteration=self.epochs_per_iteration)


@dataclasses.dataclass
class IterationRecord:
  """One pruning iteration, after its chosen checkpoint.

  Attributes:
    iteration: 0-based index (0 = dense fine-tuning).
    target_sparsity: the schedule's sparsity for this iteration.
    layer_sparsity: {layer name: fraction of zero kernel weights}.
    train_accuracy, dev_accuracy, test_accuracy: accuracies in [0, 1].
    epochs_run: fine-tuning epochs trained.
    best_epoch: 0-based epoch of the kept checkpoint.
    seconds: wall time of the iteration (masking, training, evaluation).
    epoch_train_loss: mean batch loss of each epoch trained (empty when not
      recorded); not in `to_json`.
    epoch_dev_accuracy: dev accuracy after each epoch trained (NaN without
      dev data); not in `to_json`.
  """
  iteration: int
  target_sparsity: float
  layer_sparsity: Dict[str, float]
  train_accuracy: float
  dev_accuracy: float
  test_accuracy: float
  epochs_run: int
  best_epoch: int
  seconds: float
  epoch_train_loss: List[float] = dataclasses.field(default_factory=list)
  epoch_dev_accuracy: List[float] = dataclasses.field(default_factory=list)

  # Per-epoch curves stay out of the JSON facts (history.json, reports and
  # the model store's records keep their schema).
  _NOT_IN_JSON = ("epoch_train_loss", "epoch_dev_accuracy")

  def to_json(self) -> dict:
    return {k: v for k, v in dataclasses.asdict(self).items()
            if k not in self._NOT_IN_JSON}


# (record of the finished iteration, the wrapped model at its checkpoint).
IterationHook = Callable[[IterationRecord, keras.Model], None]


def _evaluate(loop: loop_lib.TrainingLoop, train: Arrays, dev: Arrays,
              test: Optional[Arrays]) -> Tuple[float, float, float]:
  return (loop.accuracy(*train), loop.accuracy(*dev),
          loop.accuracy(*test) if test is not None else float("nan"))


def pretrain(model: keras.Model, train: Arrays, dev: Arrays, seed: int,
             config: loop_lib.TrainConfig = loop_lib.TrainConfig()
             ) -> loop_lib.FitResult:
  """Trains `model` from its current weights with early stopping on dev
  accuracy and leaves it at the best checkpoint (docs/method.md §3)."""
  prune_lib.check_model(model)
  keras.utils.set_random_seed(seed)
  loop = loop_lib.TrainingLoop(model, config)
  return loop_lib.fit_with_early_stopping(loop, train, dev, seed,
                                         progress_desc="pre-training")


class PruningRounds:
  """The rounds of a wrapped model's `IterativeSparsity` schedule.

  Both trainers (`IterativePruner` and, in `model.fit`, the
  `IterativePruning` callback) start a round with `start`: the masks are
  recomputed once, by L1 magnitude, to the round's sparsity, and the
  wrappers' step is parked past the schedule's end, so that training
  steps (which advance it) never update the masks within a round.

  Args:
    model: a model wrapped by `prune_low_memorization`.
  """

  def __init__(self, model: keras.Model):
    self.wrappers = prune_lib.pruned_wrappers(model)
    if not self.wrappers:
      raise ValueError("the model has no pruning wrappers; wrap it with "
                       "prune_low_memorization first.")
    self.schedule = self.wrappers[0].pruning_schedule
    if not isinstance(self.schedule, schedule_lib.IterativeSparsity):
      raise ValueError("iterative pruning needs an IterativeSparsity "
                       f"schedule, got {type(self.schedule).__name__}.")
    self.parked_step = self.schedule.first_step(
        self.schedule.num_iterations) + 1

  @property
  def num_iterations(self) -> int:
    return self.schedule.num_iterations

  def apply_masks(self) -> None:
    """Sets every pruned kernel to kernel · mask."""
    for wrapper in self.wrappers:
      wrapper.pruning_obj.weight_mask_op()

  def start(self, iteration: int) -> None:
    """Recomputes the masks for `iteration` once and fixes them."""
    step = self.schedule.first_step(iteration)
    for wrapper in self.wrappers:
      wrapper.pruning_step.assign(step)
      if iteration > 0:
        wrapper.pruning_obj.conditional_mask_update()
      # Park the step past the schedule's end: no mask update while training.
      wrapper.pruning_step.assign(self.parked_step)
    self.apply_masks()


class IterativePruner:
  """Runs the whole iterative pruning schedule on a wrapped model.

  The model's training function is traced once per run and reused by
  every epoch of every iteration.

  Args:
    pruned_model: output of `prune_low_memorization`.
    config: pruning settings.
    train_config: optimizer settings (max_epochs/patience come from config).
    defense: overrides the model's `wemem_defense` (None: use the model's).

  Attributes:
    defense: the (frozen) defense.
    defense_run: the defense bound to the records of the last `run`.
  """

  def __init__(self, pruned_model: keras.Model,
               config: PruningConfig = PruningConfig(),
               train_config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
               defense: Optional[defense_lib.Defense] = None):
    self.model = pruned_model
    self.defense = defense_catalog.resolve(
        defense if defense is not None
        else getattr(pruned_model, "wemem_defense", None))
    self.rounds = PruningRounds(pruned_model)
    self.config = config
    self.schedule = self.rounds.schedule
    if (self.schedule.target_sparsity, self.schedule.num_iterations) != (
        config.target_sparsity, config.num_iterations):
      raise ValueError(
          "the model's schedule (s={}, n={}) differs from PruningConfig "
          "(s={}, n={}); build both from the same settings.".format(
              self.schedule.target_sparsity, self.schedule.num_iterations,
              config.target_sparsity, config.num_iterations))
    self.train_config = train_config
    self.defense_run: Optional[defense_lib.DefenseRun] = None
    self.loop: Optional[loop_lib.TrainingLoop] = None

  def run(self, train: Arrays, dev: Arrays, test: Optional[Arrays] = None,
          seed: int = 0, train_index: Optional[np.ndarray] = None,
          on_iteration: Optional[IterationHook] = None
          ) -> List[IterationRecord]:
    """Fine-tunes through every iteration; returns one record per iteration.

    Args:
      train: (x float32 (n, ...), y int (n,)) fine-tuning data.
      dev: (x, y) for early stopping and checkpoint choice; also the
        defender's reference non-members for defenses that need them.
      test: optional (x, y) for reporting only.
      seed: seeds the epoch order of every iteration.
      train_index: int (n,) dataset record indices of `train` (aligns
        memorization scores); default 0..n-1.
      on_iteration: optional `(record, model)` callback run after each
        iteration, while the wrapped model holds that iteration's chosen
        (best dev) checkpoint with its masks applied: the model as the
        iteration leaves it. It may read the model (e.g. copy its weights)
        but must not change it; it does not alter training. The bound
        defense is `model.wemem_defense_run` (its `report()`: risky share,
        ε so far, ...), as `model.wemem_fit.run` is in `model.fit`.
    """
    index = (np.arange(len(train[1]), dtype=np.int64) if train_index is None
             else np.asarray(train_index, np.int64))
    self.defense_run = run = self.defense.bind(
        defense_lib.TrainingRecords(train[0], train[1], index,
                                    self.model.output_shape[-1], dev[0],
                                    dev[1]),
        self.train_config, self.config.num_iterations,
        self.config.epochs_per_iteration, seed)
    self.model.wemem_defense_run = run  # for on_iteration hooks
    self.loop = loop_lib.TrainingLoop(self.model, self.train_config,
                                      run.train_step(),
                                      after_epoch=self.rounds.apply_masks)
    history = []
    best_weights = None
    for iteration in range(self.config.num_iterations):
      start = time.perf_counter()
      self.rounds.start(iteration)
      fit = loop_lib.fit_with_early_stopping(
          self.loop, train, dev, seed=seed * 1000 + iteration,
          max_epochs=self.config.epochs_per_iteration,
          patience=self.config.patience,
          plan_fn=lambda epoch, rng, k=iteration: run.epoch_plan(
              k, epoch, rng),
          restore_best=self.config.restore_best_weights,
          progress_desc=f"pruning iteration {iteration}")
      best_weights = fit.best_weights
      if not self.config.restore_best_weights:
        last_weights = self.model.get_weights()
        self.model.set_weights(best_weights)
      train_acc, dev_acc, test_acc = _evaluate(self.loop, train, dev, test)
      record = iteration_record(self.model, self.schedule, iteration,
                                (train_acc, dev_acc, test_acc),
                                fit.epochs_run, fit.best_epoch,
                                time.perf_counter() - start,
                                fit.train_loss, fit.dev_accuracy)
      if on_iteration is not None:
        on_iteration(record, self.model)
      if not self.config.restore_best_weights:
        self.model.set_weights(last_weights)
      history.append(record)
    self.model.set_weights(best_weights)
    return history


def iteration_record(model: keras.Model,
                     schedule: schedule_lib.IterativeSparsity,
                     iteration: int, accuracies: Tuple[float, float, float],
                     epochs_run: int, best_epoch: int,
                     seconds: float,
                     epoch_train_loss: Sequence[float] = (),
                     epoch_dev_accuracy: Sequence[float] = ()
                     ) -> IterationRecord:
  """The record of `iteration`, with the model's current layer sparsity.

  Args:
    accuracies: (train, dev, test) accuracies in [0, 1] (NaN: not measured).
    epoch_train_loss, epoch_dev_accuracy: per-epoch curves of the iteration.
  """
  return IterationRecord(iteration, schedule.sparsity(iteration),
                         prune_lib.layer_sparsity(model), *accuracies,
                         epochs_run, best_epoch, seconds,
                         [float(v) for v in epoch_train_loss],
                         [float(v) for v in epoch_dev_accuracy])
