"""One model's whole pipeline: pre-train, wrap, prune iteratively, strip.

The victim and every shadow model go through this same function, so an
adaptive attacker's shadows are trained exactly like the victim.
"""

import dataclasses
import time
from typing import List, Optional


from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib


@dataclasses.dataclass
class PipelineResult:
  """What `pretrain_and_prune` produced for one model.

  Attributes:
    pretrained: the dense model at its best pre-training checkpoint (a
      separate model object from `pruned`).
    pruned: the stripped, iteratively pruned model (logit outputs).
    pretrain_fit: pre-training record (epochs, dev accuracy, seconds).
    history: one `IterationRecord` per pruning iteration.
    pretrain_seconds, prune_seconds: wall times; prune_seconds is the
      defense time of the comparison (iterative fine-tuning with the defense).
    defense_report: the defense's facts (`Defense.report()`).
    served: `pruned` as answered to queries (differs from `pruned` only for
      defenses that modify outputs at inference).
  """
  pretrained: keras.Model
  pruned: keras.Model
  pretrain_fit: Optional[loop_lib.FitResult]
  history: List[iterative.IterationRecord]
  pretrain_seconds: float
  prune_seconds: float
  defense_report: dict = dataclasses.field(default_factory=dict)
  served: Optional[keras.Model] = None


def clone_with_weights(model: keras.Model) -> keras.Model:
  """A new model object with the same architecture and weights."""
  copy = keras.models.clone_model(model)
  copy.set_weights(model.get_weights())
  return copy


def pretrain_and_prune(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                       seed: int, architecture: str = "column_fc",
                       pruning_config: iterative.PruningConfig = iterative.PruningConfig(),
                       train_config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
                       pretrained: Optional[keras.Model] = None,
                       defense=None,
                       on_iteration: Optional[iterative.IterationHook] = None
                       ) -> PipelineResult:
  """Pre-trains (unless `pretrained` is given) and iteratively prunes one model.

  Args:
    dataset: the data; `split` holds record indices into it.
    split: train (fine-tuning), dev (early stopping) and test (reporting).
    seed: seeds initialization and epoch order.
    architecture: a `wemem_tf.models.BUILDERS` name.
    pruning_config: the schedule and fine-tuning settings.
    train_config: optimizer settings for pre-training (max_epochs, patience)
      and fine-tuning.
    pretrained: an already pre-trained dense model to start from (copied,
      not modified).
    defense: passed to `prune_low_memorization` (None, a name or a
      `Defense`).
    on_iteration: optional `(IterationRecord, wrapped model)` callback after
      each pruning iteration (see `IterativePruner.run`); results are the
      same with or without it.
  """
  train, dev, test = (dataset.take(split.train), dataset.take(split.dev),
                      dataset.take(split.test))
  keras.utils.set_random_seed(seed)
  start = time.perf_counter()
  fit = None
  if pretrained is None:
    pretrained = zoo.build_model(architecture, dataset.input_shape,
                                 dataset.num_classes)
    fit = iterative.pretrain(pretrained, train, dev, seed, train_config)
  pretrain_seconds = time.perf_counter() - start
  # Re-seed: pruning then depends only on (pretrained weights, seed), whether
  # the pretrained model was just trained or loaded from a cache.
  keras.utils.set_random_seed(seed + 1)
  start = time.perf_counter()
  working = clone_with_weights(pretrained)
  wrapped = prune_lib.prune_low_memorization(
      working, pruning_config.schedule(), defense=defense)
  pruner = iterative.IterativePruner(wrapped, pruning_config, train_config)
  history = pruner.run(train, dev, test, seed=seed, train_index=split.train,
                       on_iteration=on_iteration)
  pruned = prune_lib.strip_pruning(wrapped)
  prune_seconds = time.perf_counter() - start
  return PipelineResult(pretrained, pruned, fit, history, pretrain_seconds,
                        prune_seconds, pruner.defense.report(),
                        pruner.defense.inference_model(pruned))
