"""PPB: pair-based posterior balancing (Yuan & Zhang, USENIX Security 2022).

Yuan and Zhang ("Membership Inference Attacks and Defenses in Neural Network
Pruning") defend pruned models by fine-tuning them with an extra term that
makes the *sorted* posteriors of different training records look alike, so
that the confidence profile of a member no longer stands out. Here, during
every fine-tuning step of iterative pruning:

  loss = mean CE(batch) + α · KL(sorted posterior of record h+i
                                 ‖ sorted posterior of record i),

averaged over the pairs (i, h+i), i < h = ⌊batch/2⌋: the first half of the
(shuffled) batch is paired with the second half, each posterior is sorted in
decreasing order, and the KL divergence is taken between the sorted vectors
(gradients flow through both halves). An odd batch leaves its last record
unpaired; a batch of one has no penalty. α ∈ {1, 2, 4, 8, 16} in WeMem
(docs/method.md §6); the default α = 4 is the middle of that grid (our choice —
neither paper fixes one value for all datasets).

Everything else is the library's ordinary step: L2 `weight_decay · w` added to
the gradients, Adam.
"""

import dataclasses
from typing import ClassVar

import tensorflow as tf

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib


def sorted_pair_kl(logits: tf.Tensor) -> tf.Tensor:
  """Mean KL(sorted p[h + i] ‖ sorted p[i]) over i < h = ⌊batch / 2⌋; 0 if h = 0.

  Args:
    logits: float (batch, classes).
  """
  # Sorting is monotone, so sorting log-probabilities sorts probabilities.
  log_p = tf.sort(tf.nn.log_softmax(logits, axis=-1), axis=-1,
                  direction="DESCENDING")
  half = tf.shape(log_p)[0] // 2
  first, second = log_p[:half], log_p[half:2 * half]
  kl = tf.reduce_sum(tf.exp(second) * (second - first), axis=-1)
  return tf.reduce_sum(kl) / tf.maximum(tf.cast(half, kl.dtype), 1.0)


class PPBStep(loop_lib.TrainStep):
  """CE + α · sorted-posterior pair KL, plus L2 on the gradients, Adam.

  Returns the batch's mean cross-entropy (not the penalized objective).
  """

  def __init__(self, alpha: float):
    super().__init__()
    self.alpha = float(alpha)

  def __call__(self, model, xb, yb, weight_decay, kind):
    del kind

    def objective():
      logits = model(xb, training=True)
      ce = tf.reduce_mean(self.loss_fn(yb, logits))
      return ce + self.alpha * sorted_pair_kl(logits), ce

    return self.descend(model, objective, weight_decay)


class PPBRun(defense_lib.DefenseRun):

  def train_step(self) -> loop_lib.TrainStep:
    return PPBStep(self.defense.alpha)


@dataclasses.dataclass(frozen=True)
class PPB(defense_lib.Defense):
  """Pair-based posterior balancing (Yuan & Zhang 2022).

  Attributes:
    alpha: weight α ≥ 0 of the sorted-posterior KL term (WeMem's grid:
      1, 2, 4, 8, 16; default 4). α = 0 is plain fine-tuning.
  """
  alpha: float = settings_lib.setting(
      4.0, "ppb_alpha", "PPB's weight α of the sorted-posterior KL term.",
      low=0, tune=settings_lib.Tune("ppb_alpha", 1.0, 16.0, "log"))

  name: ClassVar[str] = "ppb"
  display_name: ClassVar[str] = "PPB"
  RUN: ClassVar[type] = PPBRun

  def check_records(self, records, train_config):
    if train_config.batch_size < 2:
      raise ValueError("PPB pairs the two halves of each batch; batch_size "
                       f"must be >= 2, got {train_config.batch_size}.")
