"""One model's whole pipeline: pre-train, wrap, prune iteratively, strip.

The victim and every shadow model go through this same function, so an
adaptive attacker's shadows are trained exactly like the victim.
`pretrain_model` is its first stage on its own (what `wemem pretrain` and
the model cache of `wemem_eval` run).
"""

import dataclasses
import time
from typing import List, Optional, Tuple

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import architecture as arch_lib
from wemem_tf.pruning import callbacks as callbacks_lib
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib


TRAINERS = ("loop", "keras_fit")


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


def pretrain_model(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                   seed: int,
                   architecture: arch_lib.ArchitectureLike = "column_fc",
                   train_config: loop_lib.TrainConfig = loop_lib.TrainConfig()
                   ) -> Tuple[keras.Model, loop_lib.FitResult, float]:
  """The pipeline's pre-training stage: a fresh model, seeded, then trained.

  Seeds everything with `seed`, builds `architecture` (any
  `ArchitectureLike`: a zoo name, "MODULE:FUNCTION", a model file path, a
  callable or an `Architecture`; resolved before seeding) and pre-trains it
  on `split.train` with early stopping on `split.dev`.

  Returns:
    (dense model at its best dev checkpoint, its `FitResult`, wall seconds).
  """
  start = time.perf_counter()
  arch = arch_lib.resolve_architecture(architecture)
  keras.utils.set_random_seed(seed)
  model = arch_lib.build_checked(arch, dataset.input_shape,
                                 dataset.num_classes)
  fit = iterative.pretrain(model, dataset.take(split.train),
                           dataset.take(split.dev), seed, train_config)
  return model, fit, time.perf_counter() - start


def pretrain_and_prune(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                       seed: int,
                       architecture: arch_lib.ArchitectureLike = "column_fc",
                       pruning_config: iterative.PruningConfig = iterative.PruningConfig(),
                       train_config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
                       pretrained: Optional[keras.Model] = None,
                       defense=None,
                       on_iteration: Optional[iterative.IterationHook] = None,
                       trainer: str = "loop") -> PipelineResult:
  """Pre-trains (unless `pretrained` is given) and iteratively prunes one model.

  Args:
    dataset: the data; `split` holds record indices into it.
    split: train (fine-tuning), dev (early stopping) and test (reporting).
    seed: seeds initialization and epoch order.
    architecture: a zoo name (`wemem_tf.models.BUILDERS`), "MODULE:FUNCTION",
      a model file path, a callable (input_shape, num_classes) -> model or
      an `Architecture` (`wemem_tf.models.resolve_architecture`); unused
      with `pretrained`.
    pruning_config: the schedule and fine-tuning settings.
    train_config: optimizer settings for pre-training (max_epochs, patience)
      and fine-tuning.
    pretrained: an already pre-trained dense model to start from (copied,
      not modified).
    defense: passed to `prune_low_memorization` (None, a name or a
      `Defense`).
    on_iteration: optional `(IterationRecord, wrapped model)` callback after
      each pruning iteration (see `IterativePruner.run`); results are the
      same with or without it. Only with trainer "loop".
    trainer: "loop" (the library's compiled loop, `IterativePruner`) or
      "keras_fit" (the pruned model's own `compile` + `fit`, as a TFMOT user
      trains: the same schedule, defense and early stopping).
  """
  if trainer not in TRAINERS:
    raise ValueError(f"trainer must be one of {TRAINERS}, got {trainer!r}.")
  if trainer != "loop" and on_iteration is not None:
    raise ValueError("on_iteration needs trainer='loop'.")
  fit, pretrain_seconds = None, 0.0
  if pretrained is None:
    pretrained, fit, pretrain_seconds = pretrain_model(
        dataset, split, seed, architecture, train_config)
  train, dev, test = (dataset.take(split.train), dataset.take(split.dev),
                      dataset.take(split.test))
  # Re-seed: pruning then depends only on (pretrained weights, seed), whether
  # the pretrained model was just trained or loaded from a cache.
  keras.utils.set_random_seed(seed + 1)
  start = time.perf_counter()
  working = clone_with_weights(pretrained)
  wrapped = prune_lib.prune_low_memorization(
      working, pruning_config.schedule(), defense=defense)
  if trainer == "loop":
    pruner = iterative.IterativePruner(wrapped, pruning_config, train_config)
    history = pruner.run(train, dev, test, seed=seed, train_index=split.train,
                         on_iteration=on_iteration)
    run = pruner.defense_run
  else:
    history, run = _keras_fit(wrapped, train, dev, test, split, seed,
                              pruning_config, train_config)
  pruned = prune_lib.strip_pruning(wrapped, serve=False)
  prune_seconds = time.perf_counter() - start
  return PipelineResult(pretrained, pruned, fit, history, pretrain_seconds,
                        prune_seconds, run.report(),
                        run.inference_model(pruned))


def _keras_fit(wrapped: keras.Model, train, dev, test,
               split: splits_lib.ModelSplit, seed: int,
               pruning_config: iterative.PruningConfig,
               train_config: loop_lib.TrainConfig):
  """The pruning stage through the wrapped model's `compile` and `fit`:
  (one IterationRecord per round, the bound defense)."""
  wrapped.compile(
      optimizer=keras.optimizers.Adam(train_config.learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  rounds = callbacks_lib.IterativePruning(
      patience=pruning_config.patience,
      restore_best_weights=pruning_config.restore_best_weights,
      test_data=test)
  wrapped.fit(*train, batch_size=train_config.batch_size,
              validation_data=dev, verbose=0, callbacks=[rounds],
              record_index=split.train, weight_decay=train_config.weight_decay,
              seed=seed)
  return wrapped.wemem_fit.history, wrapped.wemem_fit.run
