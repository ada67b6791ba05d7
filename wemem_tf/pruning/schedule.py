"""`IterativeSparsity`: the paper's iterative pruning schedule (docs/method.md §3)."""

from typing import Any, Dict

import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule

from wemem_tf._keras import keras


def validate_target(target_sparsity: float, num_iterations: int) -> None:
  """Raises ValueError unless 0 < target_sparsity < 1 and num_iterations >= 2."""
  if not isinstance(target_sparsity, (int, float)) or not (
      0.0 < float(target_sparsity) < 1.0):
    raise ValueError("target_sparsity must lie strictly between 0 and 1 "
                     f"(fraction of weights set to zero), got {target_sparsity!r}.")
  if not isinstance(num_iterations, int) or num_iterations < 2:
    raise ValueError("num_iterations must be an integer >= 2 (iteration 0 "
                     "fine-tunes the dense model, the last reaches the target),"
                     f" got {num_iterations!r}.")


def sparsity_at_iteration(target_sparsity: float, num_iterations: int,
                          iteration: int) -> float:
  """1 − (1 − s)^(k / (n − 1)) for iteration k in [0, n); 0 for k = 0."""
  validate_target(target_sparsity, num_iterations)
  if not 0 <= iteration < num_iterations:
    raise ValueError(f"iteration must lie in [0, {num_iterations}), got "
                     f"{iteration}.")
  return 1.0 - (1.0 - target_sparsity) ** (iteration / (num_iterations - 1))


class IterativeSparsity(pruning_schedule.PruningSchedule):
  """Sparsity rises geometrically over `num_iterations` pruning iterations.

  Iteration 0 keeps the model dense; at the start of iteration k ≥ 1 the
  masks are recomputed once, by L1 magnitude, to sparsity
  1 − (1 − s)^(k / (n − 1)), and stay fixed for the rest of the iteration
  (a fine-tuning round). The last iteration reaches `target_sparsity`
  exactly.

  Rounds are measured in epochs: each fine-tunes for at most
  `epochs_per_iteration` epochs and ends earlier when its dev accuracy
  stops improving. Both trainers drive the rounds themselves and ignore
  the step count: `IterativePruner` (the library's compiled loop) and
  `model.fit` of a model wrapped by `prune_low_memorization` (its
  `IterativePruning` callback). TFMOT's own wrappers
  (`prune_low_magnitude`) count optimizer steps instead: with them, set
  `steps_per_iteration` to the steps of one round (iteration k spans steps
  [k · steps_per_iteration, (k + 1) · steps_per_iteration)).
  """

  def __init__(self, target_sparsity: float, num_iterations: int = 5,
               steps_per_iteration: int = 1, epochs_per_iteration: int = 21):
    validate_target(target_sparsity, num_iterations)
    if not isinstance(steps_per_iteration, int) or steps_per_iteration < 1:
      raise ValueError("steps_per_iteration must be a positive integer, got "
                       f"{steps_per_iteration!r}.")
    if not isinstance(epochs_per_iteration, int) or epochs_per_iteration < 1:
      raise ValueError("epochs_per_iteration must be a positive integer "
                       f"(fine-tuning epochs per round), got "
                       f"{epochs_per_iteration!r}.")
    self.target_sparsity = float(target_sparsity)
    self.num_iterations = int(num_iterations)
    self.steps_per_iteration = int(steps_per_iteration)
    self.epochs_per_iteration = int(epochs_per_iteration)

  @property
  def max_epochs(self) -> int:
    """Epochs of the whole schedule when no round stops early."""
    return self.num_iterations * self.epochs_per_iteration

  def sparsity(self, iteration: int) -> float:
    """Target sparsity of `iteration` as a Python float."""
    return sparsity_at_iteration(self.target_sparsity, self.num_iterations,
                                 iteration)

  def first_step(self, iteration: int) -> int:
    """The step at which `iteration`'s masks are computed."""
    return iteration * self.steps_per_iteration

  def __call__(self, step):
    step = tf.cast(step, tf.int64)
    spi = tf.constant(self.steps_per_iteration, tf.int64)
    last = tf.constant(self.num_iterations - 1, tf.int64)
    iteration = tf.minimum(tf.math.floordiv(step, spi), last)
    should_prune = tf.logical_and(
        tf.equal(tf.math.floormod(step, spi), 0),
        tf.logical_and(iteration >= 1, tf.math.floordiv(step, spi) <= last))
    exponent = tf.cast(iteration, tf.float32) / tf.cast(last, tf.float32)
    sparsity = 1.0 - tf.pow(1.0 - self.target_sparsity, exponent)
    return should_prune, sparsity

  def get_config(self) -> Dict[str, Any]:
    return {"class_name": self.__class__.__name__,
            "config": {"target_sparsity": self.target_sparsity,
                       "num_iterations": self.num_iterations,
                       "steps_per_iteration": self.steps_per_iteration,
                       "epochs_per_iteration": self.epochs_per_iteration}}

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> "IterativeSparsity":
    return cls(**config)


# TFMOT's wrapper deserializes schedules by class name through Keras' custom
# objects; registering the plain name lets saved pruned models load.
keras.utils.get_custom_objects()["IterativeSparsity"] = IterativeSparsity
