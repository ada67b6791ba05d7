"""Compiled training loop, epoch plans and early stopping."""

from wemem_tf.training.loop import batched_plan
from wemem_tf.training.loop import concat_plans
from wemem_tf.training.loop import EpochPlan
from wemem_tf.training.loop import fit_with_early_stopping
from wemem_tf.training.loop import FitResult
from wemem_tf.training.loop import shuffled_plan
from wemem_tf.training.loop import sparse_ce_from_logits
from wemem_tf.training.loop import TrainConfig
from wemem_tf.training.loop import TrainingLoop
from wemem_tf.training.loop import TrainStep
