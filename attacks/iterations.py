"""Attacks on the models as they are after each pruning iteration.

`run_experiment` attacks only the final pruned models. `run_per_iteration`
trains the same victim, shadow and (LiRA / RMIA) reference models through the
same pipeline (`wemem_tf.pretrain_and_prune`, with a per-iteration hook that
copies each model at the checkpoint an iteration ends with), then runs the
chosen attacks once per iteration k on the models as they are after
iteration k: victim, shadows and reference models all at iteration k. The
last iteration's models are the final pruned models of `run_experiment`
(same seeds, same training), so its numbers equal `run_experiment`'s.

iterations.json (`IterationsResult.to_json`):
  {"dataset": str, "seed": int, "target": "pruned", "adaptive": bool,
   "defense": null | name | {"name", settings...},
   "attacks": [attack names], "num_shadows": int,
   "num_reference_models": int,
   "iterations": [{            # one per pruning iteration, in order
       "iteration": int (0 = dense fine-tuning),
       "target_sparsity": float (the schedule's sparsity of the iteration),
       "layer_sparsity": {layer: fraction of zero kernel weights} (victim),
       "victim_test_accuracy", "victim_train_accuracy",
       "victim_dev_accuracy": floats in [0, 1],
       "attacks": {attack: {"balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                            "tpr_at_1pct_fpr", "advantage", "seconds"}},
       "best_attack": {"attack": str, "balanced_accuracy": float},
       "seconds": float (querying and attacks at this iteration)}],
   "settings": {"architecture", "pruning", "training", "attack_options"},
   "timing_seconds": {"victim_training", "shadow_training",
                      "reference_training", "attacks", "total"}}
All accuracies and rates are fractions in [0, 1]; times are seconds.

With a `ModelStore`, pre-trained models are shared with every other
experiment (same keys), the final pruned model is stored under the usual
"pruned" key and the models after iterations 0..n-2 under kinds
"pruned-it<k>" with the same key, so a repeated call trains nothing.
"""

import dataclasses
import functools
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

from attacks import experiment
from attacks import inputs as inputs_lib
from attacks import model_store
from attacks import registry
from attacks import shadows as shadows_lib
from attacks import suite as suite_lib
from wemem_tf import io_utils
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import zoo
from wemem_tf.pruning import pipeline
from wemem_tf.pruning import prune as prune_lib

ROW_METRICS = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
               "tpr_at_1pct_fpr", "advantage", "seconds")

ModelAndFacts = Tuple[keras.Model, Dict[str, Any]]


def iteration_kind(iteration: int, num_iterations: int) -> str:
  """The `ModelStore` kind of the model after `iteration` (the last one is
  the ordinary "pruned" model)."""
  return ("pruned" if iteration == num_iterations - 1
          else f"pruned-it{iteration}")


def _masked_weights(wrapped: keras.Model) -> Dict[Any, np.ndarray]:
  """{variable ref: value} of a wrapped model, pruned kernels times masks
  (what `strip_pruning` leaves in them)."""
  values = {v.ref(): v.numpy() for v in wrapped.weights}
  for wrapper in prune_lib.pruned_wrappers(wrapped):
    for weight, mask, _ in wrapper.pruning_vars:
      values[weight.ref()] = (weight * mask).numpy()
  return values


def _prune_each_iteration(dataset: datasets.Dataset,
                          split: splits_lib.ModelSplit, seed: int,
                          recipe: shadows_lib.ModelRecipe,
                          pretrained: keras.Model) -> List[ModelAndFacts]:
  """The pipeline's pruning stage, keeping the model after every iteration.

  Returns:
    One (stripped model, facts) per iteration; facts as `shadows._prune`
    writes them ("history" up to that iteration, "prune_seconds",
    "defense_report"). The last is the pipeline's own final model and facts.
  """
  snapshots = []
  result = pipeline.pretrain_and_prune(
      dataset, split, seed, architecture=recipe.architecture,
      pruning_config=recipe.pruning_config, train_config=recipe.train_config,
      pretrained=pretrained, defense=model_store.fresh_defense(recipe.defense),
      on_iteration=lambda record, model: snapshots.append(
          _masked_weights(model)))
  # `strip_pruning` reuses the wrapped model's inner layers, so the final
  # model's variables are keys of every snapshot.
  variables = result.pruned.weights
  history = [h.to_json() for h in result.history]
  out = []
  for k, snapshot in enumerate(snapshots):
    last = k == len(snapshots) - 1
    if last:
      model = result.pruned
    else:
      missing = [v.name for v in variables if v.ref() not in snapshot]
      if missing:
        raise ValueError(f"variables {missing} of the stripped model are not "
                         "in the wrapped model's weights.")
      model = zoo.build_model(recipe.architecture, dataset.input_shape,
                              dataset.num_classes)
      model.set_weights([snapshot[v.ref()] for v in variables])
    out.append((model, {
        "history": history[:k + 1],
        "prune_seconds": (result.prune_seconds if last else
                          float(sum(h["seconds"] for h in history[:k + 1]))),
        "defense_report": result.defense_report}))
  return out


def train_model_iterations(dataset: datasets.Dataset,
                           split: splits_lib.ModelSplit, seed: int,
                           recipe: shadows_lib.ModelRecipe,
                           store: Optional[model_store.ModelStore] = None
                           ) -> List[shadows_lib.TrainedModel]:
  """`shadows.train_model`, returning the model after every pruning iteration.

  Args:
    dataset, split, seed, recipe, store: as `shadows.train_model`;
      `recipe.target` must be "pruned".

  Returns:
    One `TrainedModel` per pruning iteration (as served, e.g. with HAMP's
    output modification); the last equals `shadows.train_model`'s. Their
    `facts["prune"]["history"]` ends at that iteration; `seconds` is the
    wall time of this call (all iterations).
  """
  if recipe.target != "pruned":
    raise ValueError("per-iteration attacks need target='pruned', got "
                     f"{recipe.target!r}.")
  start = time.perf_counter()
  pre_key = model_store.ModelStore.pretrained_key(
      dataset, split, seed, recipe.architecture, recipe.train_config)
  architecture = lambda: zoo.build_model(recipe.architecture,
                                         dataset.input_shape,
                                         dataset.num_classes)
  # pylint: disable=protected-access  (the pipeline stages of the package)
  build_pre = lambda: shadows_lib._pretrain(dataset, split, seed, recipe)
  pretrained, pre_facts = (
      store.get_or_build("pretrained", pre_key, build_pre, architecture)
      if store else build_pre())
  built = functools.cache(lambda: _prune_each_iteration(
      dataset, split, seed, recipe, pretrained))
  key = model_store.ModelStore.pruned_key(pre_key, seed,
                                          recipe.pruning_config,
                                          recipe.defense)
  num_iterations = recipe.pruning_config.num_iterations
  stages = []
  for k in range(num_iterations):
    build = lambda k=k: built()[k]
    stages.append(store.get_or_build(iteration_kind(k, num_iterations), key,
                                     build, architecture)
                  if store else build())
  seconds = time.perf_counter() - start
  models = []
  for pruned, prune_facts in stages:
    served = shadows_lib._served(dataset, split, seed, recipe, pruned)
    query = inputs_lib.ModelQuery(served)
    accuracy = lambda ids, q=query: float(np.mean(
        np.argmax(q.logits(dataset.x[ids]), 1) == dataset.y[ids]))
    models.append(shadows_lib.TrainedModel(
        served, split, seed, seconds, accuracy(split.test),
        accuracy(split.train), {"pretrain": pre_facts, "prune": prune_facts},
        query))
  # pylint: enable=protected-access
  return models


@dataclasses.dataclass
class IterationResult:
  """The attacks on the models after one pruning iteration."""
  iteration: int
  target_sparsity: float
  victim: shadows_lib.TrainedModel
  suite: suite_lib.SuiteResult
  seconds: float

  def to_json(self) -> Dict[str, Any]:
    record = self.victim.facts["prune"]["history"][-1]
    rows = {r["attack"]: {m: r[m] for m in ROW_METRICS}
            for r in self.suite.rows()}
    best = max(rows, key=lambda a: rows[a]["balanced_accuracy"])
    return {
        "iteration": self.iteration,
        "target_sparsity": self.target_sparsity,
        "layer_sparsity": record["layer_sparsity"],
        "victim_test_accuracy": self.victim.test_accuracy,
        "victim_train_accuracy": self.victim.train_accuracy,
        "victim_dev_accuracy": record["dev_accuracy"],
        "attacks": rows,
        "best_attack": {"attack": best,
                        "balanced_accuracy": rows[best]["balanced_accuracy"]},
        "seconds": self.seconds,
    }


@dataclasses.dataclass
class IterationsResult:
  """What `run_per_iteration` produced.

  Attributes:
    config: the experiment's settings.
    dataset: the dataset's name.
    iterations: one `IterationResult` per pruning iteration.
    shadow_models, reference_models: the attacker's final (last-iteration)
      models.
    timing: wall times in seconds.
  """
  config: experiment.ExperimentConfig
  dataset: str
  iterations: List[IterationResult]
  shadow_models: List[shadows_lib.TrainedModel]
  reference_models: List[shadows_lib.TrainedModel]
  timing: Dict[str, float]

  def final_experiment(self) -> experiment.ExperimentResult:
    """The last iteration as an `ExperimentResult` (what `run_experiment`
    returns for the same config; `write_artifacts` writes it)."""
    last = self.iterations[-1]
    return experiment.ExperimentResult(
        self.config, self.dataset, last.suite, last.victim, dict(self.timing),
        self.shadow_models, self.reference_models)

  def to_json(self) -> Dict[str, Any]:
    """The iterations.json document (schema in the module docstring)."""
    final = self.final_experiment().to_json()
    return {
        "dataset": self.dataset,
        "seed": self.config.seed,
        "target": self.config.recipe.target,
        "adaptive": self.config.adaptive,
        "defense": final["defense"],
        "attacks": list(self.config.attacks),
        "num_shadows": len(self.shadow_models),
        "num_reference_models": len(self.reference_models),
        "iterations": [it.to_json() for it in self.iterations],
        "settings": final["settings"],
        "timing_seconds": self.timing,
    }


def run_per_iteration(dataset: datasets.Dataset,
                      config: experiment.ExperimentConfig,
                      store: Optional[model_store.ModelStore] = None
                      ) -> IterationsResult:
  """Runs `config.attacks` on the models after every pruning iteration.

  Models, seeds, splits and attack settings are those of
  `experiment.run_experiment(dataset, config, store)`; at iteration k the
  victim, the shadows and the reference models are all the ones after
  iteration k. Attacks are fitted afresh at every iteration.

  Raises:
    ValueError: `config.recipe.target` is not "pruned", or the attacks need
      shadows and `config.num_shadows` is 0.
  """
  if config.recipe.target != "pruned":
    raise ValueError("per-iteration attacks need target='pruned' (the "
                     f"unpruned model has no iterations), got "
                     f"{config.recipe.target!r}.")
  start = time.perf_counter()
  options, _, need_shadows, need_reference, need_sensitivity = (
      experiment.plan_attacks(config))
  splits = splits_lib.make_splits(
      len(dataset), dataset.fingerprint, config.seed,
      config.num_shadows if need_shadows else 0, dataset.heldout_mask)
  recipe = config.recipe
  attacker_recipe = recipe.for_attacker(config.adaptive)
  timing = {}

  t = time.perf_counter()
  victim = train_model_iterations(
      dataset, splits.victim, shadows_lib.derived_seed(config.seed, 0, 0),
      recipe, store)
  timing["victim_training"] = time.perf_counter() - t

  t = time.perf_counter()
  shadows = []
  if need_shadows:
    shadows = [train_model_iterations(
        dataset, splits.shadows[i], shadows_lib.derived_seed(config.seed, 1, i),
        attacker_recipe, store) for i in range(len(splits.shadows))]
  timing["shadow_training"] = time.perf_counter() - t

  t = time.perf_counter()
  reference, plan = [], None
  if need_reference:
    plan = config.reference_plan(splits)
    reference = [train_model_iterations(
        dataset, plan.split(r), shadows_lib.derived_seed(config.seed, 2, r),
        attacker_recipe, store) for r in range(plan.num_models)]
  timing["reference_training"] = time.perf_counter() - t

  t = time.perf_counter()
  results = []
  schedule = recipe.pruning_config.schedule()
  for k in range(recipe.pruning_config.num_iterations):
    it_start = time.perf_counter()
    results.append(IterationResult(
        k, schedule.sparsity(k), victim[k],
        _attack(dataset, config, options, victim[k], [s[k] for s in shadows],
                [r[k] for r in reference], plan, need_sensitivity),
        0.0))
    results[-1].seconds = time.perf_counter() - it_start
  timing["attacks"] = time.perf_counter() - t
  timing["total"] = time.perf_counter() - start
  return IterationsResult(config, dataset.name, results,
                          [s[-1] for s in shadows], [r[-1] for r in reference],
                          timing)


def _attack(dataset: datasets.Dataset, config: experiment.ExperimentConfig,
            options, victim: shadows_lib.TrainedModel,
            shadows: Sequence[shadows_lib.TrainedModel],
            reference: Sequence[shadows_lib.TrainedModel],
            plan: Optional[shadows_lib.ReferencePlan],
            need_sensitivity: bool) -> suite_lib.SuiteResult:
  """Queries one iteration's models and runs fresh attacks, exactly as
  `run_experiment` does for the final models (same query seeds)."""
  attacker = shadows_lib.attacker_data(
      dataset, shadows, (reference, plan) if plan is not None else None,
      need_sensitivity, seed=config.seed + 1000)
  target = shadows_lib.target_data(
      dataset, victim, plan.population if plan is not None else None,
      need_sensitivity, seed=config.seed)
  metadata = tfp_ds.PrivacyReportMetadata(
      accuracy_train=victim.train_accuracy, accuracy_test=victim.test_accuracy,
      model_variant_label=f"{dataset.name} {config.recipe.target}")
  attacks = [registry.make_attack(n, options) for n in config.attacks]
  return suite_lib.run_attacks(attacks, attacker, target, options, metadata)


def write_iterations_json(result: IterationsResult, path: str) -> str:
  """Writes `result.to_json()` to `path` atomically; returns `path`."""
  io_utils.atomic_write_json(path, result.to_json())
  return path
