"""The attacker's models: shadow protocol and random-halves protocol.

Shadow protocol (METHOD.md §1–§2): shadow model i is trained on
`splits.shadows[i]` (records disjoint from the victim's) by the victim's own
pipeline, `wemem_tf.pretrain_and_prune`, with the victim's defense when the
attack is adaptive and without it otherwise. Its members are its training
records, its non-members its test records.

Random-halves protocol (LiRA, RMIA): reference models are trained on random
halves (or, with `inclusion` != 0.5, random subsets of a fixed share) of a
pool made of the *target records* (the victim's training and
test records, as one unlabelled, sorted set: the attacker only knows which
records it will query, never which of them the victim trained on) and the
shadow pool. Models come in complementary pairs (model 2k trains on one half,
2k+1 on the other), so every pool record has as many IN as OUT models. The
records held out on the attacker's side (the shadows' half of the held-out
set) are split into a dev set (early stopping of the reference models) and
RMIA's population.

`target="unpruned"` attacks the pre-trained dense model instead; shadows and
reference models then stop after pre-training too (pre-training is the first
stage of the same pipeline: same build, seeding and `wemem_tf.pretrain`).
"""

import dataclasses
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from attacks import base
from attacks import inputs as inputs_lib
from attacks import model_store
from wemem_tf.defenses import base as defense_base
from wemem_tf.defenses import registry as defense_registry
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline
from wemem_tf.training import loop as loop_lib

TARGETS = ("pruned", "unpruned")


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
  """How a model (victim, shadow or reference) is trained.

  Attributes:
    architecture: a `wemem_tf.models.BUILDERS` name.
    pruning_config: iterative pruning settings.
    train_config: optimizer and pre-training settings.
    defense: the defense passed to `pretrain_and_prune` (None, a name or a
      `wemem_tf.defenses.Defense`; every model gets its own deep copy of an
      instance, since defenses keep per-run state). Defenses that need
      memorization scores must hold scores for every record a model trains
      on (for shadows: the attacker's records).
    target: "pruned" (the iteratively pruned model) or "unpruned" (the
      pre-trained dense model; no pruning is run).
  """
  architecture: str = "column_fc"
  pruning_config: iterative.PruningConfig = iterative.PruningConfig()
  train_config: loop_lib.TrainConfig = loop_lib.TrainConfig()
  defense: Any = None
  target: str = "pruned"

  def __post_init__(self):
    if self.target not in TARGETS:
      raise ValueError(f"target must be one of {TARGETS}, got "
                       f"{self.target!r}.")

  def for_attacker(self, adaptive: bool) -> "ModelRecipe":
    """The shadows' recipe: the victim's, without its defense unless
    `adaptive`."""
    return dataclasses.replace(self, defense=self.defense if adaptive else None)


@dataclasses.dataclass
class TrainedModel:
  """A trained model and how it came about.

  Attributes:
    model: tf_keras model returning logits, as served to queries.
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
  model: keras.Model
  split: splits_lib.ModelSplit
  seed: int
  seconds: float
  test_accuracy: float
  train_accuracy: float
  facts: Dict[str, Any] = dataclasses.field(default_factory=dict)
  query: Optional[inputs_lib.ModelQuery] = None

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


def _pretrain(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
              seed: int, recipe: ModelRecipe):
  """The pipeline's pre-training stage: (dense model, facts)."""
  start = time.perf_counter()
  keras.utils.set_random_seed(seed)
  model = zoo.build_model(recipe.architecture, dataset.input_shape,
                          dataset.num_classes)
  fit = iterative.pretrain(model, dataset.take(split.train),
                           dataset.take(split.dev), seed, recipe.train_config)
  return model, {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                 "best_dev_accuracy": fit.best_dev_accuracy,
                 "seconds": time.perf_counter() - start}


def _prune(dataset, split, seed, recipe, pretrained):
  """The pipeline's pruning stage: (stripped pruned model, facts)."""
  result = pipeline.pretrain_and_prune(
      dataset, split, seed, architecture=recipe.architecture,
      pruning_config=recipe.pruning_config, train_config=recipe.train_config,
      pretrained=pretrained, defense=model_store.fresh_defense(recipe.defense))
  return result.pruned, {
      "history": [h.to_json() for h in result.history],
      "prune_seconds": result.prune_seconds,
      "defense_report": result.defense_report}


def _served(dataset, split, seed, recipe, pruned):
  """`pruned` as the defense serves it (HAMP modifies outputs)."""
  defense = defense_registry.resolve(
      model_store.fresh_defense(recipe.defense))
  if type(defense).inference_model is defense_base.Defense.inference_model:
    return pruned
  x, y = dataset.take(split.train)
  dev_x, dev_y = dataset.take(split.dev)
  defense.bind(defense_base.TrainingRecords(x, y, split.train,
                                            dataset.num_classes, dev_x, dev_y),
               recipe.train_config, recipe.pruning_config.num_iterations,
               recipe.pruning_config.epochs_per_iteration, seed)
  return defense.inference_model(pruned)


def train_model(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                seed: int, recipe: ModelRecipe,
                store: Optional[model_store.ModelStore] = None
                ) -> TrainedModel:
  """Trains one model through the shared pipeline (pre-train, then prune).

  With a `store`, the pre-trained model (shared by every defense and by the
  unpruned target) and the pruned model are loaded when already on disk and
  saved when built; results are the same either way.
  """
  start = time.perf_counter()
  pre_key = model_store.ModelStore.pretrained_key(
      dataset, split, seed, recipe.architecture, recipe.train_config)
  build_pre = lambda: _pretrain(dataset, split, seed, recipe)
  architecture = lambda: zoo.build_model(recipe.architecture,
                                         dataset.input_shape,
                                         dataset.num_classes)
  pretrained, pre_facts = (
      store.get_or_build("pretrained", pre_key, build_pre, architecture)
      if store else build_pre())
  facts = {"pretrain": pre_facts}
  model = pretrained
  if recipe.target == "pruned":
    key = model_store.ModelStore.pruned_key(pre_key, seed,
                                            recipe.pruning_config,
                                            recipe.defense)
    build = lambda: _prune(dataset, split, seed, recipe, pretrained)
    pruned, facts["prune"] = (
        store.get_or_build("pruned", key, build, architecture)
        if store else build())
    model = _served(dataset, split, seed, recipe, pruned)
  seconds = time.perf_counter() - start
  query = inputs_lib.ModelQuery(model)
  accuracy = lambda ids: float(np.mean(
      np.argmax(query.logits(dataset.x[ids]), 1) == dataset.y[ids]))
  return TrainedModel(model, split, seed, seconds, accuracy(split.test),
                      accuracy(split.train), facts, query)


def train_victim(dataset: datasets.Dataset, splits: splits_lib.Splits,
                 recipe: ModelRecipe, seed: int,
                 store: Optional[model_store.ModelStore] = None
                 ) -> TrainedModel:
  """The victim (for experiments; a real attacker is handed it)."""
  return train_model(dataset, splits.victim, derived_seed(seed, 0, 0), recipe,
                     store)


def train_shadow_models(dataset: datasets.Dataset, splits: splits_lib.Splits,
                        victim_recipe: ModelRecipe, adaptive: bool, seed: int,
                        num_shadows: Optional[int] = None,
                        store: Optional[model_store.ModelStore] = None
                        ) -> List[TrainedModel]:
  """Shadow models on `splits.shadows`, through the victim's pipeline.

  Args:
    dataset: the data.
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
  return [train_model(dataset, splits.shadows[i], derived_seed(seed, 1, i),
                      recipe, store) for i in range(count)]


def target_records(splits: splits_lib.Splits) -> np.ndarray:
  """The records the attacker queries: the victim's training and test
  records as one sorted set (which are members is not part of it)."""
  return np.union1d(splits.victim.train, splits.victim.test).astype(np.int64)


def attacker_heldout(splits: splits_lib.Splits) -> np.ndarray:
  """Held-out records on the attacker's side (none of the victim's)."""
  return splits_lib.shadow_heldout(splits)


@dataclasses.dataclass(frozen=True)
class ReferencePlan:
  """Record indices of the random-halves reference models.

  Attributes:
    pool: int64 (n,) sorted pool records (targets ∪ shadow pool).
    in_mask: bool (R, n): model r trains on pool[in_mask[r]].
    dev: int64 records for early stopping (outside the pool).
    population: int64 records for RMIA (outside the pool, disjoint from dev).
  """
  pool: np.ndarray
  in_mask: np.ndarray
  dev: np.ndarray
  population: np.ndarray

  @property
  def num_models(self) -> int:
    return self.in_mask.shape[0]

  def split(self, r: int) -> splits_lib.ModelSplit:
    """Model r's split: its half, dev, and the other half as test."""
    return splits_lib.ModelSplit(self.pool[self.in_mask[r]], self.dev,
                                 self.pool[~self.in_mask[r]])


def random_halves(targets: np.ndarray, attacker_pool: np.ndarray,
                  attacker_holdout: np.ndarray, num_models: int,
                  seed: int, inclusion: float = 0.5) -> ReferencePlan:
  """Plans `num_models` reference models on random subsets of the pool.

  Args:
    targets: record indices the attacker will query (membership unknown).
    attacker_pool: the attacker's own training records (shadow pool).
    attacker_holdout: records no reference model trains on; halved into dev
      and RMIA population.
    num_models: R >= 2 reference models.
    seed: seeds the subsets.
    inclusion: share of the pool each model trains on. 0.5 (the protocol
      of LiRA and RMIA): pairs (2k, 2k+1) train on complementary halves (an
      odd last model gets a random half of its own). Otherwise every record
      is IN in exactly k = round(inclusion * R) models chosen at random
      (1 <= k <= R - 1), so each model trains on about k / R of the pool:
      this matches a reference model's training size to a target's when
      the pool is too small for halves to (the tuning rehearsal).
  """
  if num_models < 2:
    raise ValueError(f"the random-halves protocol needs >= 2 reference "
                     f"models, got {num_models}.")
  if not 0.0 < inclusion < 1.0:
    raise ValueError(f"inclusion must lie in (0, 1), got {inclusion}.")
  pool = np.union1d(targets, attacker_pool).astype(np.int64)
  holdout = np.setdiff1d(attacker_holdout, pool).astype(np.int64)
  if holdout.size < 2:
    raise ValueError("need at least 2 attacker held-out records outside the "
                     "pool (for dev and population).")
  rng = np.random.default_rng([int(seed), 7919])
  if inclusion == 0.5:
    in_mask = _complementary_halves(rng, num_models, pool.size)
  else:
    in_mask = _fixed_count_subsets(rng, num_models, pool.size, inclusion)
  shuffled = rng.permutation(holdout)
  cut = holdout.size // 2
  return ReferencePlan(pool, in_mask, np.sort(shuffled[:cut]),
                       np.sort(shuffled[cut:]))


def _complementary_halves(rng: np.random.Generator, num_models: int,
                          size: int) -> np.ndarray:
  in_mask = np.zeros((num_models, size), bool)
  for r in range(0, num_models, 2):
    half = rng.permutation(size)[:size // 2]
    in_mask[r, half] = True
    if r + 1 < num_models:
      in_mask[r + 1] = ~in_mask[r]
  return in_mask


def _fixed_count_subsets(rng: np.random.Generator, num_models: int,
                         size: int, inclusion: float) -> np.ndarray:
  k = int(round(inclusion * num_models))
  if not 1 <= k <= num_models - 1:
    raise ValueError(
        f"inclusion {inclusion} with {num_models} reference models puts "
        f"every record IN {k} models, leaving no {'IN' if k < 1 else 'OUT'} "
        "model; use more reference models or an inclusion nearer 0.5.")
  ranks = np.argsort(rng.random((size, num_models)), axis=1)
  return (ranks < k).T


def matched_inclusion(target_train_size: int, pool_size: int,
                      min_in: int = 2, min_out: int = 2,
                      tolerance: float = 0.05) -> Tuple[float, int]:
  """(inclusion, R) so reference models train on about as many records as
  a target with `target_train_size` records, from a pool of `pool_size`.

  R is the smallest even number >= 4 for which k = round(share * R) models
  per record are IN and R - k OUT with k >= `min_in`, R - k >= `min_out`,
  and k / R within `tolerance` (relative) of share = target / pool.
  Examples: Location's rehearsal (1,804 of 2,170) gives (0.8, 10); its real
  protocol (1,804 of 4,271) gives (5/12, 12).
  """
  if not 0 < target_train_size < pool_size:
    raise ValueError(f"target_train_size must lie in [1, pool_size="
                     f"{pool_size}), got {target_train_size}.")
  if min_in < 1 or min_out < 1 or not 0 < tolerance < 1:
    raise ValueError("min_in and min_out must be >= 1 and tolerance in "
                     "(0, 1).")
  share = target_train_size / pool_size
  num_models = 4
  while True:
    k = int(round(share * num_models))
    if (k >= min_in and num_models - k >= min_out
        and abs(k / num_models - share) <= tolerance * share):
      return k / num_models, num_models
    num_models += 2


def matched_design(splits: splits_lib.Splits, min_out: int = 2
                   ) -> Tuple[float, int]:
  """`matched_inclusion` for the victim of `splits` and its LiRA pool."""
  pool = np.union1d(target_records(splits), splits.shadow_pool).size
  return matched_inclusion(splits.victim.train.size, pool, min_out=min_out)


def plan_for(splits: splits_lib.Splits, num_models: int,
             seed: int, inclusion: float = 0.5) -> ReferencePlan:
  """`random_halves` for the victim's targets and the attacker's records."""
  return random_halves(target_records(splits), splits.shadow_pool,
                       attacker_heldout(splits), num_models, seed, inclusion)


def train_reference_models(dataset: datasets.Dataset, plan: ReferencePlan,
                           victim_recipe: ModelRecipe, adaptive: bool,
                           seed: int,
                           store: Optional[model_store.ModelStore] = None
                           ) -> List[TrainedModel]:
  """Reference models through the victim's pipeline (defense iff adaptive)."""
  recipe = victim_recipe.for_attacker(adaptive)
  return [train_model(dataset, plan.split(r), derived_seed(seed, 2, r), recipe,
                      store) for r in range(plan.num_models)]


# ---- model outputs ----------------------------------------------------------


def outputs_on(dataset: datasets.Dataset, query: inputs_lib.ModelQuery,
               record_ids: np.ndarray, with_sensitivity: bool = False,
               seed: int = 0) -> inputs_lib.ModelOutputs:
  """A model's `ModelOutputs` on dataset records `record_ids`."""
  x, y = dataset.take(np.asarray(record_ids, np.int64))
  return query.outputs(x, y, np.asarray(record_ids, np.int64),
                       with_sensitivity, seed)


def membership_outputs(dataset: datasets.Dataset, model: TrainedModel,
                       with_sensitivity: bool = False,
                       seed: int = 0) -> inputs_lib.MembershipOutputs:
  """A model's outputs on its members (train) and non-members (test)."""
  query = model.query
  return inputs_lib.MembershipOutputs(
      outputs_on(dataset, query, model.split.train, with_sensitivity, seed),
      outputs_on(dataset, query, model.split.test, with_sensitivity, seed + 1))


def reference_outputs(dataset: datasets.Dataset, models: Sequence[TrainedModel],
                      plan: ReferencePlan) -> inputs_lib.ReferenceOutputs:
  """Every reference model's outputs on the pool and the population."""
  if len(models) != plan.num_models:
    raise ValueError(f"{len(models)} reference models for a plan of "
                     f"{plan.num_models}.")
  outputs, population = [], []
  for model in models:
    query = model.query
    outputs.append(outputs_on(dataset, query, plan.pool))
    population.append(outputs_on(dataset, query, plan.population))
  return inputs_lib.ReferenceOutputs(plan.pool, plan.in_mask, tuple(outputs),
                                     tuple(population))


def target_data(dataset: datasets.Dataset, victim: TrainedModel,
                population: Optional[np.ndarray] = None,
                with_sensitivity: bool = False,
                seed: int = 0) -> base.TargetData:
  """The victim's outputs on its members, non-members and population."""
  query = victim.query
  members = outputs_on(dataset, query, victim.split.train, with_sensitivity,
                       seed)
  non_members = outputs_on(dataset, query, victim.split.test, with_sensitivity,
                           seed + 1)
  pop = None if population is None else outputs_on(dataset, query, population)
  return base.TargetData(members, non_members, pop)


def attacker_data(dataset: datasets.Dataset, shadows: Sequence[TrainedModel],
                  reference: Optional[Tuple[Sequence[TrainedModel],
                                            ReferencePlan]] = None,
                  with_sensitivity: bool = False,
                  seed: int = 0) -> base.AttackerData:
  """`AttackerData` from trained shadow and (optional) reference models."""
  shadow_outputs = tuple(
      membership_outputs(dataset, s, with_sensitivity, seed + 10 * i)
      for i, s in enumerate(shadows))
  ref = None if reference is None else reference_outputs(dataset, *reference)
  return base.AttackerData(shadow_outputs, ref)
