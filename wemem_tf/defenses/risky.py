"""P3: risky memory regularization (docs/method.md §5).

Records whose memorization score is ≥ τ are "risky". Each fine-tuning epoch
trains the epoch's risky records first, as batches of their own, with a
second Adam optimizer and the strong L2 weight decay λ_mem; then the ordinary
records with the main optimizer and the ordinary decay. This is the authors'
procedure (their code keeps two optimizers); `shared_optimizer=True` gives the
single-optimizer variant (same batches and decays, one Adam state).
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.training import loop as loop_lib

RISKY = loop_lib.BatchKind.RISKY


class RiskyMemoryStep(loop_lib.TrainStep):
  """A batch update that sends RISKY batches to their own Adam."""

  def __init__(self, shared_optimizer: bool = False):
    super().__init__()
    self.shared_optimizer = shared_optimizer
    self.risky_optimizer = None

  def build(self, model: keras.Model, config: loop_lib.TrainConfig,
            optimizer=None) -> None:
    super().build(model, config, optimizer)
    if self.shared_optimizer:
      self.risky_optimizer = self.optimizer
    else:
      # A second optimizer of the same kind and settings (Adam at the
      # learning rate in the library's loop; a copy of the compiled one
      # in `model.fit`).
      self.risky_optimizer = (
          keras.optimizers.Adam(config.learning_rate) if optimizer is None
          else type(optimizer).from_config(optimizer.get_config()))
      self.risky_optimizer.build(model.trainable_variables)

  def __call__(self, model, xb, yb, weight_decay, kind):
    loss, grads = self.gradients(model, xb, yb, weight_decay)
    pairs = list(zip(grads, model.trainable_variables))
    if self.shared_optimizer:
      loop_lib.apply_gradients(self.optimizer, pairs)
      return loss

    def apply(optimizer):
      def fn():
        loop_lib.apply_gradients(optimizer, pairs)
        return tf.constant(0)
      return fn

    tf.cond(tf.equal(kind, int(RISKY)), apply(self.risky_optimizer),
            apply(self.optimizer))
    return loss


def risky_mask(scores: np.ndarray, tau: Optional[float] = None,
               tau_share: Optional[float] = None) -> np.ndarray:
  """bool (n,): records with score ≥ τ, or the top `tau_share` by score.

  Exactly one of `tau` (a score in [-1, 1]) and `tau_share` (a fraction of
  records in [0, 1]) must be given. With a share, ties at the cut are all
  risky.
  """
  scores = np.asarray(scores, np.float64)
  if (tau is None) == (tau_share is None):
    raise ValueError("give exactly one of tau (a score) and tau_share (a share"
                     " of records).")
  if tau is not None:
    if not -1.0 <= tau <= 1.0:
      raise ValueError(f"tau must lie in [-1, 1] (the range of memorization "
                       f"scores), got {tau}.")
    return scores >= tau
  if not 0.0 <= tau_share <= 1.0:
    raise ValueError(f"tau_share must lie in [0, 1], got {tau_share}.")
  k = int(round(tau_share * len(scores)))
  if k == 0:
    return np.zeros(len(scores), bool)
  cut = np.sort(scores)[::-1][k - 1]
  return scores >= cut


def plan(risky_positions: np.ndarray, ordinary_positions: np.ndarray,
         config: loop_lib.TrainConfig, lambda_mem: float,
         rng: np.random.Generator) -> loop_lib.EpochPlan:
  """RISKY batches (λ_mem) first, then ordinary ones; each shuffled."""
  parts = []
  if len(risky_positions):
    parts.append(loop_lib.batched_plan(rng.permutation(risky_positions),
                                       config.batch_size, lambda_mem, RISKY))
  if len(ordinary_positions):
    parts.append(loop_lib.batched_plan(rng.permutation(ordinary_positions),
                                       config.batch_size, config.weight_decay))
  if not parts:
    return loop_lib.batched_plan(np.zeros(0, np.int32), config.batch_size,
                                 config.weight_decay)
  return loop_lib.concat_plans(*parts)
