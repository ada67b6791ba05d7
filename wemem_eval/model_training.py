"""The victim and the attacker's models, trained from one recipe.

Shadow protocol (docs/method.md §1–§2): shadow model i is trained on
`splits.shadows[i]` (records disjoint from the victim's) by the victim's own
pipeline, `wemem_tf.pretrain_and_prune`, with the victim's defense when the
attack is adaptive and without it otherwise. Its members are its training
records, its non-members its test records.

Random-halves protocol (LiRA, RMIA): reference models are trained the same
way on the subsets of `attacks.reference_design.ReferencePlan`.

`target="unpruned"` attacks the pre-trained dense model instead; shadows and
reference models then stop after pre-training too (pre-training is the first
stage of the same pipeline, `wemem_tf.pruning.pipeline.pretrain_model`).

`train_model_iterations` keeps the model after every pruning iteration
(a per-iteration hook copies each model at the checkpoint an iteration ends
with); its last model is `train_model`'s. With a `ModelStore`, the
pre-trained model is shared by every recipe with the same training
settings, the final pruned model is stored under kind "pruned" and the
models after iterations 0..n-2 under kinds "pruned-it<k>" with the same
key, so a repeated call trains nothing.
"""

import dataclasses
import functools
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from attacks import inputs as inputs_lib
from attacks import reference_design
from wemem_tf import progress
from wemem_eval import model_store
from wemem_tf.defenses import catalog as defense_catalog
from wemem_tf.defenses import defense as defense_lib
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models import evaluate
from wemem_tf.pruning import iterative
from wemem_tf.pruning import cohort as cohort_lib
from wemem_tf.pruning import pipeline
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib

TARGETS = ("pruned", "unpruned")


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
  """How a model (victim, shadow or reference) is trained.

  Attributes:
    architecture: any `wemem_tf.models.ArchitectureLike`: a zoo name
      (`wemem_tf.models.BUILDERS`), "MODULE:FUNCTION", a model file path, a
      callable (input_shape, num_classes) -> model or an `Architecture`. A
      zoo `Architecture` is stored as its name; reports use
      `architecture_name` (a string for every form).
    pruning_config: iterative pruning settings.
    train_config: optimizer and pre-training settings.
    defense: the defense passed to `pretrain_and_prune` (None, a name or a
      `wemem_tf.defenses.Defense`: frozen settings, bound afresh for every
      model, so one instance serves them all). Defenses that need
      memorization scores must hold scores for every record a model trains
      on (for shadows: the attacker's records).
    target: "pruned" (the iteratively pruned model) or "unpruned" (the
      pre-trained dense model; no pruning is run).
    attacker_defense: the defense an adaptive attacker's models train with,
      when it differs from `defense` (None: `defense`). An adaptive attacker
      runs the defense on its own data: a WeMem defense with memorization
      scores the attacker estimates over the records it holds
      (`attacker_variant`), while the victim's scores come from the
      defender's training pool.
    cohort: train models of this recipe together where they can
      (`wemem_tf.pruning.cohort`: plain MLPs; pruning with defenses whose
      batch update is the plain one), the others one at a time. Models
      trained in a cohort draw other dropout masks, so they are another
      draw than the loop's and are stored under their own keys.
  """
  architecture: arch_lib.ArchitectureLike = "column_fc"
  pruning_config: iterative.PruningConfig = iterative.PruningConfig()
  train_config: loop_lib.TrainConfig = loop_lib.TrainConfig()
  defense: Any = None
  target: str = "pruned"
  attacker_defense: Any = None
  cohort: bool = False

  def __post_init__(self):
    if self.target not in TARGETS:
      raise ValueError(f"target must be one of {TARGETS}, got "
                       f"{self.target!r}.")
    if (isinstance(self.architecture, arch_lib.Architecture)
        and self.architecture.is_zoo):
      object.__setattr__(self, "architecture", self.architecture.name)

  @property
  def resolved_architecture(self) -> arch_lib.Architecture:
    """`architecture` resolved (string specs once per process)."""
    return arch_lib.resolve_architecture(self.architecture)

  @property
  def architecture_name(self) -> str:
    """The architecture's report name (JSON-ready)."""
    return arch_lib.architecture_name(self.architecture)

  def for_attacker(self, adaptive: bool) -> "ModelRecipe":
    """The shadows' and reference models' recipe: the victim's, without a
    defense unless `adaptive` (then `attacker_defense`, else `defense`)."""
    defense = None
    if adaptive:
      defense = (self.attacker_defense if self.attacker_defense is not None
                 else self.defense)
    return dataclasses.replace(self, defense=defense, attacker_defense=None)


def attacker_variant(defense: Any, scores_fn: Callable[[], Any]) -> Any:
  """The attacker's copy of `defense`: the same settings with the scores
  `scores_fn()` when the defense uses memorization scores; None (the same
  defense) otherwise.

  The defender scores its training pool; an adaptive attacker's reference
  models also train on the target's held-out records, so it needs scores
  for those: its own estimate over every record it may train on.
  """
  if defense is None or isinstance(defense, str) or not getattr(
      defense, "needs_scores", False):
    return None
  return dataclasses.replace(defense, scores=scores_fn())


@dataclasses.dataclass
class TrainedModel:
  """A trained model and how it came about.

  Attributes:
    model: tf_keras model returning logits, as served to queries (None for
      an audited model file, which only has its `query`).
    split: its record indices.
    seed: its training seed.
    seconds: wall time of its training (0 parts for cached stages are their
      recorded times).
    test_accuracy: accuracy on split.test, in [0, 1].
    train_accuracy: accuracy on split.train, in [0, 1].
    facts: JSON-ready training facts: "pretrain" (epochs_run, best_epoch,
      best_dev_accuracy, seconds) and, when pruned, "prune" (history,
      prune_seconds = the defense time, defense_report).
    query: the model's compiled `ModelQuery` (reuse it: one trace per model).
  """
  model: Optional[keras.Model]
  split: splits_lib.ModelSplit
  seed: int
  seconds: float
  test_accuracy: float
  train_accuracy: float
  facts: Dict[str, Any] = dataclasses.field(default_factory=dict)
  query: Optional[inputs_lib.ModelQuery | inputs_lib.ServedQuery] = None

  def __post_init__(self):
    if self.query is None:
      self.query = inputs_lib.ModelQuery(self.model)

  @property
  def defense_seconds(self) -> Optional[float]:
    prune = self.facts.get("prune")
    return None if prune is None else prune["prune_seconds"]

  def summary(self) -> dict:
    """JSON-ready facts: sizes, accuracies, epochs, seconds."""
    info = {"seed": self.seed, "train_records": int(len(self.split.train)),
            "test_records": int(len(self.split.test)),
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy, "seconds": self.seconds}
    pretrain = self.facts.get("pretrain")
    if pretrain is not None:
      info["pretrain_epochs"] = pretrain["epochs_run"]
      info["pretrain_best_epoch"] = pretrain["best_epoch"]
    prune = self.facts.get("prune")
    if prune is not None:
      info["prune_epochs"] = [h["epochs_run"] for h in prune["history"]]
      info["defense_seconds"] = prune["prune_seconds"]
      info["defense_report"] = prune["defense_report"]
      info["iterations"] = [
          {k: h[k] for k in ("iteration", "target_sparsity", "train_accuracy",
                             "dev_accuracy", "test_accuracy")}
          for h in prune["history"]]
    return info


def derived_seed(seed: int, role: int, index: int) -> int:
  """A seed for model `index` of `role` (0 victim, 1 shadow, 2 reference)."""
  state = np.random.SeedSequence([int(seed), role, index]).generate_state(1)
  return int(state[0] % (2**31 - 1))


def victim_seed(seed: int) -> int:
  """The victim's training seed for run seed `seed`: `wemem attack`/`run`
  train their victim with it, and so do `wemem pretrain`/`prune`, so the
  model those write is the model the experiments attack."""
  return derived_seed(seed, 0, 0)


ModelAndFacts = Tuple[keras.Model, Dict[str, Any]]


def iteration_kind(iteration: int, num_iterations: int) -> str:
  """The `ModelStore` kind of the model after `iteration` (the last one is
  the ordinary "pruned" model)."""
  return ("pruned" if iteration == num_iterations - 1
          else f"pruned-it{iteration}")


def _pretrain(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
              seed: int, recipe: ModelRecipe) -> ModelAndFacts:
  """The pipeline's pre-training stage: (dense model, facts)."""
  model, fit, seconds = pipeline.pretrain_model(
      dataset, split, seed, recipe.resolved_architecture,
      recipe.train_config)
  return model, {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                 "best_dev_accuracy": fit.best_dev_accuracy,
                 "seconds": seconds}


def _masked_weights(wrapped: keras.Model) -> Dict[Any, np.ndarray]:
  """{variable ref: value} of a wrapped model, pruned kernels times masks
  (what `strip_pruning` leaves in them)."""
  values = {v.ref(): v.numpy() for v in wrapped.weights}
  for wrapper in prune_lib.pruned_wrappers(wrapped):
    for weight, mask, _ in wrapper.pruning_vars:
      values[weight.ref()] = (weight * mask).numpy()
  return values


def _prune(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
           seed: int, recipe: ModelRecipe, pretrained: keras.Model,
           every_iteration: bool) -> List[ModelAndFacts]:
  """The pipeline's pruning stage: (stripped pruned model, facts).

  Returns:
    The final model only, or with `every_iteration` one model per pruning
    iteration (the last the final one). Facts: "history" up to that
    iteration, "prune_seconds" (the defense time; for an earlier iteration
    the sum of its iterations' times) and "defense_report".
  """
  snapshots = []
  hook = None
  if every_iteration:
    hook = lambda record, model: snapshots.append(_masked_weights(model))
  result = pipeline.pretrain_and_prune(
      dataset, split, seed, architecture=recipe.resolved_architecture,
      pruning_config=recipe.pruning_config, train_config=recipe.train_config,
      pretrained=pretrained, defense=recipe.defense,
      on_iteration=hook)
  history = [h.to_json() for h in result.history]
  final = (result.pruned, {"history": history,
                           "prune_seconds": result.prune_seconds,
                           "defense_report": result.defense_report})
  # `strip_pruning` reuses the wrapped model's inner layers, so the final
  # model's variables are keys of every snapshot.
  variables = result.pruned.weights
  earlier = []
  for k, snapshot in enumerate(snapshots[:-1]):
    missing = [v.name for v in variables if v.ref() not in snapshot]
    if missing:
      raise ValueError(f"variables {missing} of the stripped model are not "
                       "in the wrapped model's weights.")
    model = arch_lib.build_checked(recipe.resolved_architecture,
                                   dataset.input_shape, dataset.num_classes)
    model.set_weights([snapshot[v.ref()] for v in variables])
    earlier.append((model, {
        "history": history[:k + 1],
        "prune_seconds": float(sum(h["seconds"] for h in history[:k + 1])),
        "defense_report": result.defense_report}))
  return earlier + [final]


def _served(dataset, split, seed, recipe, pruned):
  """`pruned` as the defense serves it (HAMP modifies outputs)."""
  defense = defense_catalog.resolve(recipe.defense)
  if not defense.modifies_output:
    return pruned
  x, y = dataset.take(split.train)
  dev_x, dev_y = dataset.take(split.dev)
  run = defense.bind(
      defense_lib.TrainingRecords(x, y, split.train, dataset.num_classes,
                                  dev_x, dev_y),
      recipe.train_config, recipe.pruning_config.num_iterations,
      recipe.pruning_config.epochs_per_iteration, seed)
  return run.inference_model(pruned)


def _as_served(prune_facts: Dict[str, Any], recipe: ModelRecipe
               ) -> Dict[str, Any]:
  """The pruning facts with the defense report's serving-only settings
  (output modification) those of `recipe`'s defense: a trained model is
  shared by every value of them, and its stored report holds the values of
  the run that trained it."""
  serving = defense_catalog.resolve(recipe.defense).serving_config()
  if not serving or "defense_report" not in prune_facts:
    return prune_facts
  return {**prune_facts,
          "defense_report": {**prune_facts["defense_report"], **serving}}


def _stored(store: Optional[model_store.ModelStore], kind: str, key: str,
            build: Callable[[], ModelAndFacts],
            architecture: Callable[[], keras.Model]) -> ModelAndFacts:
  """`store.get_or_build`, or `build()` without a store."""
  if store is None:
    return build()
  return store.get_or_build(kind, key, build, architecture)


def _stage_keys(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                seed: int, recipe: ModelRecipe,
                every_iteration: bool) -> Tuple[str, List[Tuple[str, str]]]:
  """(pre-training key, [(kind, key)] of the stages) of one model."""
  pre_key = model_store.ModelStore.pretrained_key(
      dataset, split, seed, recipe.resolved_architecture, recipe.train_config,
      cohort=recipe.cohort)
  if recipe.target == "unpruned":
    return pre_key, [("pretrained", pre_key)]
  key = model_store.ModelStore.pruned_key(pre_key, seed,
                                          recipe.pruning_config,
                                          recipe.defense)
  num_iterations = recipe.pruning_config.num_iterations
  kinds = ([iteration_kind(k, num_iterations) for k in range(num_iterations)]
           if every_iteration else ["pruned"])
  return pre_key, [(kind, key) for kind in kinds]


def _stage_models(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                  seed: int, recipe: ModelRecipe,
                  store: Optional[model_store.ModelStore],
                  every_iteration: bool
                  ) -> Tuple[Dict[str, Any], List[Tuple[keras.Model, Any]]]:
  """Pre-trains, then (target "pruned") prunes one model through `store`.

  Returns:
    (pre-training facts, [(stripped model, pruning facts or None)]): the
    final model, or with `every_iteration` the model after each iteration.
  """
  arch = recipe.resolved_architecture
  pre_key, stage_keys = _stage_keys(dataset, split, seed, recipe,
                                    every_iteration)
  architecture = lambda: arch_lib.build_checked(arch, dataset.input_shape,
                                                dataset.num_classes)
  pretrained, pre_facts = _stored(
      store, "pretrained", pre_key,
      lambda: _pretrain(dataset, split, seed, recipe), architecture)
  if recipe.target == "unpruned":
    return pre_facts, [(pretrained, None)]
  built = functools.cache(lambda: _prune(dataset, split, seed, recipe,
                                         pretrained, every_iteration))
  return pre_facts, [
      _stored(store, kind, key, lambda i=i: built()[i], architecture)
      for i, (kind, key) in enumerate(stage_keys)]


def _train_stages(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                  seed: int, recipe: ModelRecipe,
                  store: Optional[model_store.ModelStore],
                  every_iteration: bool) -> List[TrainedModel]:
  """Pre-trains, then (target "pruned") prunes one model; returns the final
  model, or with `every_iteration` the model after each pruning iteration,
  each as served and measured."""
  start = time.perf_counter()
  pre_facts, stages = _stage_models(dataset, split, seed, recipe, store,
                                    every_iteration)
  seconds = time.perf_counter() - start
  models = []
  for model, prune_facts in stages:
    facts = {"pretrain": pre_facts}
    if prune_facts is not None:
      facts["prune"] = _as_served(prune_facts, recipe)
      model = _served(dataset, split, seed, recipe, model)
    query = inputs_lib.ModelQuery(model)
    accuracy = lambda ids, q=query: evaluate.accuracy(q.logits,
                                                      *dataset.take(ids))
    models.append(TrainedModel(model, split, seed, seconds,
                               accuracy(split.test), accuracy(split.train),
                               facts, query))
  return models


@dataclasses.dataclass(frozen=True)
class ModelJob:
  """One model to train: its records, seed and recipe."""
  split: splits_lib.ModelSplit
  seed: int
  recipe: ModelRecipe


COHORT_SIZE = 64  # members per cohort (their weights, moments and best
# checkpoints stay in memory: about 0.2 GB for 64 ColumnFCs on Location)


def _chunks(items: Sequence[Any], size: int) -> List[Sequence[Any]]:
  return [items[i:i + size] for i in range(0, len(items), size)]


def _architecture_model(dataset: datasets.Dataset,
                        recipe: ModelRecipe) -> keras.Model:
  """An untrained model of the recipe's architecture (global seeds left
  alone)."""
  return arch_lib.build_checked(recipe.resolved_architecture,
                                dataset.input_shape, dataset.num_classes)


def _pretrain_cohorts(dataset: datasets.Dataset,
                      pending: Sequence[Tuple[ModelJob, str]],
                      store: model_store.ModelStore) -> None:
  """Pre-trains the `(job, pre-training key)` pairs in cohorts of one
  architecture and training config, writing them to `store` (an
  architecture a cohort cannot train is logged and left alone)."""
  groups: Dict[str, List[Tuple[ModelJob, str]]] = {}
  for job, key in pending:
    recipe = job.recipe
    group = model_store.digest(recipe.resolved_architecture.key,
                               dataclasses.asdict(recipe.train_config))
    groups.setdefault(group, []).append((job, key))
  for members in groups.values():
    recipe = members[0][0].recipe
    reason = cohort_lib.unsupported_reason(_architecture_model(dataset,
                                                               recipe))
    if reason is not None:
      logging.info("models train one at a time: %s.", reason)
      continue
    for chunk in _chunks(members, COHORT_SIZE):
      weights, fits, seconds = cohort_lib.pretrain(
          dataset, [cohort_lib.Member(j.split, j.seed) for j, _ in chunk],
          recipe.resolved_architecture, recipe.train_config)
      for (_, key), w, fit in zip(chunk, weights, fits):
        store.put("pretrained", key, w, {
            "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
            "best_dev_accuracy": fit.best_dev_accuracy, "seconds": seconds,
            "cohort": len(chunk)})


def _bound_run(dataset: datasets.Dataset, job: ModelJob):
  """The job's defense bound to its records, as `IterativePruner` binds it."""
  x, y = dataset.take(job.split.train)
  dev_x, dev_y = dataset.take(job.split.dev)
  config = job.recipe.pruning_config
  return defense_catalog.resolve(job.recipe.defense).bind(
      defense_lib.TrainingRecords(x, y, job.split.train, dataset.num_classes,
                                  dev_x, dev_y),
      job.recipe.train_config, config.num_iterations,
      config.epochs_per_iteration, job.seed)


def _prune_cohort(dataset: datasets.Dataset,
                  chunk: Sequence[Tuple[ModelJob, str, List[Tuple[str, str]]]],
                  store: model_store.ModelStore, model: keras.Model,
                  runs: Sequence[Any]) -> None:
  """Prunes one cohort of jobs of one recipe and writes every stage."""
  recipe = chunk[0][0].recipe
  every_iteration = len(chunk[0][2]) > 1
  pretrained = [store.entry("pretrained", key)[0] for _, key, _ in chunk]
  snapshots = []
  hook = None
  if every_iteration:
    hook = lambda it, cohort, records: snapshots.append(
        [cohort.get_weights(k) for k in range(len(chunk))])
  weights, histories = cohort_lib.prune(
      dataset, [cohort_lib.Member(j.split, j.seed) for j, _, _ in chunk],
      model, pretrained, runs, recipe.pruning_config, recipe.train_config,
      on_iteration=hook)
  snapshots = snapshots[:-1] + [weights]
  for k, ((_, _, stage_keys), run) in enumerate(zip(chunk, runs)):
    history = [h.to_json() for h in histories[k]]
    report = run.report()
    for i, (kind, key) in enumerate(stage_keys):
      upto = history[:len(history) - len(stage_keys) + i + 1]
      store.put(kind, key, snapshots[len(snapshots) - len(stage_keys) + i][k],
                {"history": upto,
                 "prune_seconds": float(sum(h["seconds"] for h in upto)),
                 "defense_report": report, "cohort": len(chunk)})


def _train_cohorts(dataset: datasets.Dataset, jobs: Sequence[ModelJob],
                   store: model_store.ModelStore,
                   every_iteration: bool) -> None:
  """Trains the jobs whose recipe asks for cohorts (`ModelRecipe.cohort`)
  and whose models `store` lacks, many at once, and writes their stages to
  `store`; what a cohort cannot train (`cohort.unsupported_reason`, logged
  once per recipe) is left to the one-at-a-time path, which then finds
  the pre-trained models in `store`."""
  todo, seen = [], set()
  for job in jobs:
    if not job.recipe.cohort:
      continue
    pre_key, stage_keys = _stage_keys(dataset, job.split, job.seed,
                                      job.recipe, every_iteration)
    keys = (pre_key, tuple(stage_keys))
    if keys in seen or all(store.has(*k) for k in stage_keys):
      continue
    seen.add(keys)
    todo.append((job, pre_key, stage_keys))
  if not todo:
    return
  pretrain = {key: job for job, key, _ in todo
              if not store.has("pretrained", key)}
  _pretrain_cohorts(dataset, [(j, k) for k, j in pretrain.items()], store)
  groups: Dict[str, list] = {}
  for job, pre_key, stage_keys in todo:
    if job.recipe.target == "pruned":
      recipe = job.recipe
      group = model_store.digest(
          recipe.resolved_architecture.key,
          dataclasses.asdict(recipe.train_config),
          dataclasses.asdict(recipe.pruning_config),
          model_store.defense_digest(recipe.defense, training_only=True))
      groups.setdefault(group, []).append((job, pre_key, stage_keys))
  for members in groups.values():
    recipe = members[0][0].recipe
    model = _architecture_model(dataset, recipe)
    runs = [_bound_run(dataset, job) for job, _, _ in members]
    reason = cohort_lib.unsupported_reason(model, runs[0],
                                           recipe.pruning_config)
    if reason is not None:
      logging.info("pruning one model at a time: %s.", reason)
      continue
    for lo in range(0, len(members), COHORT_SIZE):
      _prune_cohort(dataset, members[lo:lo + COHORT_SIZE], store, model,
                    runs[lo:lo + COHORT_SIZE])


def train_remotely(dataset: datasets.Dataset, job: ModelJob,
                   every_iteration: bool,
                   known: Dict[Tuple[str, str], model_store.Entry]
                   ) -> Tuple[Dict[Tuple[str, str], model_store.Entry], float]:
  """A worker's share of `train_models`: trains `job` through a memory
  store pre-filled with `known` (what the driver already holds) and returns
  (the new entries, the wall time in seconds)."""
  start = time.perf_counter()
  store = model_store.MemoryStore(known)
  _stage_models(dataset, job.split, job.seed, job.recipe, store,
                every_iteration)
  return store.new_entries(), time.perf_counter() - start


def train_models(dataset: datasets.Dataset, jobs: Sequence[ModelJob],
                 store: Optional[model_store.ModelStore] = None,
                 every_iteration: bool = False,
                 executor: Optional[Any] = None,
                 desc: str = "models") -> List[List[TrainedModel]]:
  """Trains every job (as `train_model`, or `train_model_iterations` with
  `every_iteration`) and returns each job's stages, in job order.

  Jobs whose recipe asks for cohorts (`ModelRecipe.cohort`) train first,
  many at once in this process (`_train_cohorts`), into `store`; the rest
  as follows. Without an executor (or with the local one) the jobs train
  one after another in this process. A remote executor (`wemem_eval.executor`) trains
  the jobs whose models `store` does not hold yet on its workers, each
  through `train_remotely` with the pre-trained model the store already
  has; their weights and facts come back, are written to `store` (a
  `MemoryStore` without one; kinds `store` does not keep are held in
  memory, `model_store.TieredStore`) and the models are then rebuilt from it
  exactly as a later cached run would: the numbers do not depend on the
  executor or on the order in which jobs finish. `desc` names the jobs on
  the progress bar (`wemem_tf.progress`).
  """
  remote = executor is not None and executor.remote
  if remote or any(j.recipe.cohort for j in jobs):
    if store is None:
      store = model_store.MemoryStore()
    elif store.kinds is not None:  # its other kinds live in memory meanwhile
      store = model_store.TieredStore(store)
    _train_cohorts(dataset, jobs, store, every_iteration)
  if not remote:
    return [_train_stages(dataset, j.split, j.seed, j.recipe, store,
                          every_iteration)
            for j in progress.track(jobs, desc, unit="model")]
  pending, planned = [], set()  # (job index, args); stage keys sent
  for index, job in enumerate(jobs):
    pre_key, stage_keys = _stage_keys(dataset, job.split, job.seed,
                                      job.recipe, every_iteration)
    keys = [("pretrained", pre_key)] + stage_keys
    if all(store.has(*k) for k in keys) or tuple(keys) in planned:
      continue
    planned.add(tuple(keys))
    known = {k: store.entry(*k) for k in keys if store.has(*k)}
    pending.append((index, (job, every_iteration, known)))
  seconds = {}
  results = executor.map(train_remotely, [args for _, args in pending],
                         shared=dataset, desc=desc)
  for (index, _), (entries, secs) in zip(pending, results):
    for (kind, key), (weights, facts) in entries.items():
      store.put(kind, key, weights, facts)
    seconds[index] = secs
  trained = []
  for index, job in enumerate(jobs):
    stages = _train_stages(dataset, job.split, job.seed, job.recipe, store,
                           every_iteration)
    for model in stages:
      model.seconds = seconds.get(index, model.seconds)
    trained.append(stages)
  return trained


def train_model(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                seed: int, recipe: ModelRecipe,
                store: Optional[model_store.ModelStore] = None
                ) -> TrainedModel:
  """Trains one model through the shared pipeline (pre-train, then prune).

  With a `store`, the pre-trained model (shared by every defense and by the
  unpruned target) and the pruned model are loaded when already on disk and
  saved when built; results are the same either way.
  """
  return train_models(dataset, [ModelJob(split, seed, recipe)], store)[0][0]


def train_model_iterations(dataset: datasets.Dataset,
                           split: splits_lib.ModelSplit, seed: int,
                           recipe: ModelRecipe,
                           store: Optional[model_store.ModelStore] = None
                           ) -> List[TrainedModel]:
  """`train_model`, returning the model after every pruning iteration.

  Args:
    dataset, split, seed, recipe, store: as `train_model`; `recipe.target`
      must be "pruned".

  Returns:
    One `TrainedModel` per pruning iteration (as served, e.g. with HAMP's
    output modification); the last equals `train_model`'s. Their
    `facts["prune"]["history"]` ends at that iteration; `seconds` is the
    wall time of this call (all iterations).
  """
  if recipe.target != "pruned":
    raise ValueError("per-iteration attacks need target='pruned', got "
                     f"{recipe.target!r}.")
  return train_models(dataset, [ModelJob(split, seed, recipe)], store,
                      every_iteration=True)[0]


def victim_job(splits: splits_lib.Splits, recipe: ModelRecipe,
               seed: int) -> ModelJob:
  """The victim (for experiments; a real attacker is handed it)."""
  return ModelJob(splits.victim, victim_seed(seed), recipe)


def target_jobs(targets: Sequence[splits_lib.ModelSplit], recipe: ModelRecipe,
                seed: int) -> List[ModelJob]:
  """The victims of a pooled audit (`splits_lib.target_splits`): target 0
  is `victim_job`'s, target t trains with seed `derived_seed(seed, 0, t)`."""
  return [ModelJob(split, derived_seed(seed, 0, t), recipe)
          for t, split in enumerate(targets)]


def shadow_jobs(splits: splits_lib.Splits, victim_recipe: ModelRecipe,
                adaptive: bool, seed: int,
                num_shadows: Optional[int] = None) -> List[ModelJob]:
  """Shadow models on `splits.shadows`, through the victim's pipeline.

  Args:
    splits: victim/shadow splits; shadows use only `splits.shadows`.
    victim_recipe: the victim's recipe; its defense is kept iff `adaptive`.
    adaptive: train shadows with the victim's defense.
    seed: run seed (each shadow derives its own).
    num_shadows: how many (default: all of `splits.shadows`).
  """
  count = len(splits.shadows) if num_shadows is None else num_shadows
  if count < 1 or count > len(splits.shadows):
    raise ValueError(f"num_shadows must lie in [1, {len(splits.shadows)}] "
                     f"(the splits' shadows), got {count}.")
  recipe = victim_recipe.for_attacker(adaptive)
  return [ModelJob(splits.shadows[i], derived_seed(seed, 1, i), recipe)
          for i in range(count)]


def reference_jobs(plan: reference_design.ReferencePlan,
                   victim_recipe: ModelRecipe, adaptive: bool,
                   seed: int) -> List[ModelJob]:
  """Reference models through the victim's pipeline (defense iff
  adaptive)."""
  recipe = victim_recipe.for_attacker(adaptive)
  return [ModelJob(plan.split(r), derived_seed(seed, 2, r), recipe)
          for r in range(plan.num_models)]


def train_shadow_models(dataset: datasets.Dataset, splits: splits_lib.Splits,
                        victim_recipe: ModelRecipe, adaptive: bool, seed: int,
                        num_shadows: Optional[int] = None,
                        store: Optional[model_store.ModelStore] = None
                        ) -> List[TrainedModel]:
  """The final models of `shadow_jobs(...)` (arguments as there)."""
  jobs = shadow_jobs(splits, victim_recipe, adaptive, seed, num_shadows)
  return [stages[-1] for stages in train_models(dataset, jobs, store)]
