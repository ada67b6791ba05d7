"""A whole attack experiment: victim, attacker's models, attacks, artifacts.

`run_experiment` trains the victim and only the attacker models the chosen
attacks need (shadows for the shadow-trained attacks, random-halves
reference models for LiRA / RMIA), queries them once, runs the attacks and
returns results that `write_artifacts` stores as attacks.json, a ROC plot and
an .npz of the raw scores. Every stage's `AttackResults` carry complete
tensorflow-privacy report metadata (accuracies, losses, the configuration's
label as model_variant_label and the pruning iteration as epoch_num; rules
in `attacks.privacy_report`), stored in attacks.json under
"privacy_report_metadata".

`run_stages` is that loop for every stage of the models: with
`every_iteration`, each model is kept after every pruning iteration and the
attacks run once per iteration (`wemem_eval.iterations`); the last stage is
`run_experiment`'s.
"""

import dataclasses
import os
import time

import numpy as np
from typing import Any, Dict, List, Optional, Tuple

from attacks import base
from attacks import plotting
from attacks import privacy_report
from attacks import querying
from attacks import reference_design
from attacks import registry
from attacks import suite as suite_lib
from wemem_eval import executor as executor_lib
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_tf import io_utils
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib

MIN_REFERENCE_MODELS = 4
# Target t of a pooled audit is queried with noise seed seed + t · stride.
TARGET_SEED_STRIDE = 100_003


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Settings of one attack experiment.

  Attributes:
    recipe: how the victim is trained (and, adaptively, the attacker's
      models); its `target` picks the pruned or the unpruned model.
    attacks: registry names to run.
    num_shadows: shadow models (shadow protocol).
    num_reference_models: random-halves reference models for LiRA / RMIA;
      0 = max(4, num_shadows rounded up to even).
    reference_inclusion: share of the pool each reference model trains on
      (0.5: the protocol's random halves; see
      `attacks.reference_design.random_halves`). None: matched to the
      victim's training-set size (`reference_design.matched_design`;
      num_reference_models 0 then takes the design's count).
    adaptive: train the attacker's models with the victim's defense.
    seed: run seed (splits, models, attacks).
    options: attack settings (its seed is replaced by `seed`).
    split: the data protocol's fractions and stratification.
    num_targets: victims attacked and pooled (docs/method.md §7): target 0
      is the protocol's victim, targets 1.. are trained by the same
      pipeline on other draws of the victim pool
      (`splits_lib.target_splits`); each attack is fitted once and its
      member / non-member scores on all targets are pooled, so that low-FPR
      rates become estimable. 1 (default): the victim alone.
    label: the configuration's label, the model_variant_label of the
      results' tensorflow-privacy metadata (`attacks.privacy_report`);
      None (default): from the recipe, "unpruned" for the unpruned target,
      else "base" without a defense, else the defense's name
      (`variant_label`). `wemem run` passes its step labels (e.g.
      "one_shot", which the recipe alone does not tell).
  """
  recipe: model_training.ModelRecipe = model_training.ModelRecipe()
  attacks: Tuple[str, ...] = tuple(registry.attack_names())
  num_shadows: int = 5
  num_reference_models: int = 0
  reference_inclusion: Optional[float] = 0.5
  adaptive: bool = True
  seed: int = 0
  options: base.AttackOptions = base.AttackOptions()
  split: splits_lib.SplitConfig = splits_lib.SplitConfig()
  num_targets: int = 1
  label: Optional[str] = None

  def __post_init__(self):
    object.__setattr__(self, "attacks",
                       tuple(registry.parse_attack_names(self.attacks)))
    if self.num_targets < 1:
      raise ValueError(f"num_targets must be >= 1, got {self.num_targets}.")
    if self.num_shadows < 0 or self.num_reference_models < 0:
      raise ValueError("num_shadows and num_reference_models must be >= 0.")
    if (self.reference_inclusion is not None
        and not 0.0 < self.reference_inclusion < 1.0):
      raise ValueError("reference_inclusion must lie in (0, 1), got "
                       f"{self.reference_inclusion}.")

  def variant_label(self) -> str:
    """`label`, or the one the recipe implies (see `label`)."""
    if self.label is not None:
      return self.label
    return privacy_report.variant_label(self.recipe.target,
                                        self.recipe.defense)

  def epoch_num(self, iteration: Optional[int] = None) -> int:
    """The results' tensorflow-privacy epoch_num: `iteration` for the
    models after that pruning iteration, else the final iteration
    (num_iterations − 1) for the pruned target and 0 for the unpruned one
    (`attacks.privacy_report.epoch_num`)."""
    return privacy_report.epoch_num(
        self.recipe.target, self.recipe.pruning_config.num_iterations,
        iteration)

  def reference_count(self) -> int:
    if self.num_reference_models:
      return self.num_reference_models
    return max(MIN_REFERENCE_MODELS, self.num_shadows + self.num_shadows % 2)

  def reference_plan(self, splits: splits_lib.Splits,
                     targets: Optional[np.ndarray] = None
                     ) -> reference_design.ReferencePlan:
    """The LiRA/RMIA reference models' records for `splits` (`targets`:
    the queried records, default the victim's)."""
    inclusion, count = self.reference_inclusion, self.reference_count()
    if inclusion is None:
      inclusion, matched = reference_design.matched_design(
          splits, targets=targets)
      count = self.num_reference_models or matched
    return reference_design.plan_for(splits, count, self.seed, inclusion,
                                     targets)


@dataclasses.dataclass
class ExperimentResult:
  """What `run_experiment` produced."""
  config: ExperimentConfig
  dataset: str
  suite: suite_lib.SuiteResult
  victim: model_training.TrainedModel
  timing: Dict[str, float]
  shadow_models: List[model_training.TrainedModel]
  reference_models: List[model_training.TrainedModel]
  # Extra top-level entries of attacks.json (e.g. "audit").
  notes: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self) -> Dict[str, Any]:
    """The attacks.json document."""
    config = self.config
    recipe = config.recipe
    return {
        "dataset": self.dataset,
        "target": recipe.target,
        "adaptive": config.adaptive,
        "defense": _describe_defense(recipe.defense),
        **_attacker_scores(recipe),
        "seed": config.seed,
        "victim_test_accuracy": self.victim.test_accuracy,
        "victim_train_accuracy": self.victim.train_accuracy,
        "num_shadows": len(self.shadow_models),
        "num_reference_models": len(self.reference_models),
        "attacks": self.suite.rows(),
        "models": {
            "victim": self.victim.summary(),
            "shadows": [m.summary() for m in self.shadow_models],
            "reference": [m.summary() for m in self.reference_models],
        },
        "settings": {
            "architecture": recipe.architecture_name,
            "pruning": dataclasses.asdict(recipe.pruning_config),
            "training": dataclasses.asdict(recipe.train_config),
            "attack_options": dataclasses.asdict(config.options),
        },
        "timing_seconds": self.timing,
        "tf_privacy_summary": self.suite.attack_results().summary(),
        privacy_report.METADATA_KEY: privacy_report.metadata_to_json(
            self.suite.metadata),
        **self.notes,
    }


def _attacker_scores(recipe: model_training.ModelRecipe) -> Dict[str, Any]:
  """{"attacker_memscores": ...} when the attacker's models use their own
  memorization scores (`ModelRecipe.attacker_defense`), else {}."""
  scores = getattr(recipe.attacker_defense, "scores", None)
  if scores is None:
    return {}
  return {"attacker_memscores": {
      "records": int(len(getattr(scores, "index", scores))),
      "method": getattr(scores, "method", None)}}


def _describe_defense(defense) -> Any:
  """None, a defense name, or {"name": ..., settings...} for an instance."""
  if defense is None or isinstance(defense, str):
    return defense
  described = {"name": getattr(defense, "name", type(defense).__name__)}
  if hasattr(defense, "config"):
    described.update(defense.config())
  return described


def plan_attacks(config: ExperimentConfig
                 ) -> Tuple[base.AttackOptions, List[Any], bool, bool, bool]:
  """(options, attack objects, needs shadows, needs reference models,
  needs sensitivity) for `config`; refuses shadow attacks without shadows."""
  options = dataclasses.replace(config.options, seed=config.seed)
  attacks = [registry.make_attack(n, options) for n in config.attacks]
  need_shadows = any(a.needs_shadows for a in attacks)
  if need_shadows and config.num_shadows < 1:
    raise ValueError("the chosen attacks need shadow models; set "
                     "num_shadows >= 1.")
  return (options, attacks, need_shadows,
          any(a.needs_reference for a in attacks),
          any(a.needs_sensitivity for a in attacks))


@dataclasses.dataclass
class Stage:
  """The attacks on one stage of the models (victim, shadows and reference
  models all at that stage)."""
  victim: model_training.TrainedModel
  shadow_models: List[model_training.TrainedModel]
  reference_models: List[model_training.TrainedModel]
  suite: suite_lib.SuiteResult
  seconds: float  # querying and attacks
  query_seconds: float
  # Targets 1.. of a pooled audit (`ExperimentConfig.num_targets`).
  other_targets: List[model_training.TrainedModel] = dataclasses.field(
      default_factory=list)


@dataclasses.dataclass
class StagesResult:
  """What `run_stages` produced: one `Stage` per stage, in order, and
  the wall times of training (victim_training, shadow_training,
  reference_training) and of the whole call (total)."""
  stages: List[Stage]
  timing: Dict[str, float]


def _experiment_splits(dataset: datasets.Dataset, config: ExperimentConfig,
                       num_shadows: int,
                       splits: Optional[splits_lib.Splits]
                       ) -> splits_lib.Splits:
  """The protocol's splits for `config.seed`, or `splits` checked and cut
  to `num_shadows` shadows."""
  if splits is None:
    return splits_lib.splits_for(dataset, config.seed, num_shadows,
                                 config.split)
  if splits.fingerprint != dataset.fingerprint:
    raise ValueError("the splits belong to another dataset (fingerprint "
                     f"{splits.fingerprint[:12]}…, data "
                     f"{dataset.fingerprint[:12]}…).")
  if len(splits.shadows) < num_shadows:
    raise ValueError(f"the splits have {len(splits.shadows)} shadows; "
                     f"{num_shadows} asked for.")
  return dataclasses.replace(splits, shadows=splits.shadows[:num_shadows])


def _train_groups(dataset, groups, store, every_iteration, executor):
  """Trains each group of jobs ({timing key: jobs}); returns ({key: the
  jobs' stages}, {key: seconds}). A remote executor gets every job at once
  (its wall time is "model_training"; each group's entry then sums its
  models' own training times)."""
  timing = {}
  if executor is not None and executor.remote:
    t = time.perf_counter()
    jobs = [job for group in groups.values() for job in group]
    flat = model_training.train_models(dataset, jobs, store, every_iteration,
                                       executor, desc="models")
    timing["model_training"] = time.perf_counter() - t
    trained, start = {}, 0
    for key, group in groups.items():
      trained[key] = flat[start:start + len(group)]
      timing[key] = float(sum(s[-1].seconds for s in trained[key]))
      start += len(group)
    return trained, timing
  trained = {}
  for key, group in groups.items():
    t = time.perf_counter()
    trained[key] = model_training.train_models(
        dataset, group, store, every_iteration,
        desc=key.replace("_training", " models"))
    timing[key] = time.perf_counter() - t
  return trained, timing


def run_stages(dataset: datasets.Dataset, config: ExperimentConfig,
               store: Optional[model_store.ModelStore] = None,
               splits: Optional[splits_lib.Splits] = None,
               every_iteration: bool = False,
               victim: Optional[List[model_training.TrainedModel]] = None,
               executor: Optional[executor_lib.Executor] = None
               ) -> StagesResult:
  """The experiment loop: trains, then queries and attacks every stage.

  Trains the victim and the attacker models the attacks need, each as a
  list of stages: the final model, or with `every_iteration` the model
  after each pruning iteration (`model_training.train_model_iterations`).
  Then, at every stage k, queries the victim, shadows and reference models
  all at stage k (the same query seeds at every stage) and runs fresh
  attacks on them. Arguments as `run_experiment`'s; `victim`, when given,
  is the victim's stages already at hand (an audited model,
  `wemem_eval.audit`) and is not trained. `executor`
  (`wemem_eval.executor`) trains the models: locally one after another
  (the default), or on Ray's workers all at once; the numbers are the
  same.
  """
  start = time.perf_counter()
  options, _, need_shadows, need_reference, need_sensitivity = (
      plan_attacks(config))
  num_shadows = config.num_shadows if need_shadows else 0
  splits = _experiment_splits(dataset, config, num_shadows, splits)
  if victim is not None and config.num_targets > 1:
    raise ValueError("an audited model is one victim; a pooled audit "
                     "(num_targets > 1) trains its targets itself.")
  targets = splits_lib.target_splits(splits, config.num_targets,
                                     config.split, dataset.y)
  groups = {"victim_training": (
      [] if victim is not None else
      model_training.target_jobs(targets, config.recipe, config.seed))}
  groups["shadow_training"] = (model_training.shadow_jobs(
      splits, config.recipe, config.adaptive, config.seed)
                               if need_shadows else [])
  plan = (config.reference_plan(splits,
                                reference_design.pooled_records(targets))
          if need_reference else None)
  groups["reference_training"] = (model_training.reference_jobs(
      plan, config.recipe, config.adaptive, config.seed)
                                  if need_reference else [])
  trained, timing = _train_groups(dataset, groups, store, every_iteration,
                                  executor)
  victims = [victim] if victim is not None else trained["victim_training"]
  shadow_models = trained["shadow_training"]
  reference = trained["reference_training"]

  stages = []
  for k, stage_victim in enumerate(victims[0]):
    t = time.perf_counter()
    stage_shadows = [s[k] for s in shadow_models]
    stage_reference = [r[k] for r in reference]
    attacker = querying.attacker_data(
        dataset, stage_shadows,
        (stage_reference, plan) if need_reference else None,
        need_sensitivity, seed=config.seed + 1000)
    target = [querying.target_data(
        dataset, v[k], plan.population if need_reference else None,
        need_sensitivity, seed=config.seed + TARGET_SEED_STRIDE * i)
              for i, v in enumerate(victims)]
    query_seconds = time.perf_counter() - t
    metadata = privacy_report.victim_metadata(
        target[0], stage_victim.train_accuracy, stage_victim.test_accuracy,
        config.variant_label(),
        config.epoch_num(k if every_iteration else None))
    suite = suite_lib.run_attacks(config.attacks, attacker, target, options,
                                  metadata)
    stages.append(Stage(stage_victim, stage_shadows, stage_reference, suite,
                        time.perf_counter() - t, query_seconds,
                        [v[k] for v in victims[1:]]))
  timing["total"] = time.perf_counter() - start
  return StagesResult(stages, timing)


def run_experiment(dataset: datasets.Dataset, config: ExperimentConfig,
                   store: Optional[model_store.ModelStore] = None,
                   splits: Optional[splits_lib.Splits] = None,
                   victim: Optional[model_training.TrainedModel] = None,
                   executor: Optional[executor_lib.Executor] = None
                   ) -> ExperimentResult:
  """Trains what the attacks need, runs them on the victim.

  With a `store`, trained models are cached on disk (and reused by other
  experiments of the same run: pre-training is shared by all defenses).
  `splits` replaces the protocol's splits for `config.seed` (e.g.
  `splits_lib.rehearsal_splits`, where a held-out shadow plays the victim);
  its first `config.num_shadows` shadows are used. `victim` replaces the
  trained victim by a model at hand (its `split` must be `splits.victim`;
  see `wemem_eval.audit`). `executor` trains the models (see
  `run_stages`).
  """
  result = run_stages(dataset, config, store, splits,
                      victim=None if victim is None else [victim],
                      executor=executor)
  (stage,) = result.stages
  timing = dict(result.timing)
  total = timing.pop("total")
  timing.update(querying=stage.query_seconds,
                attacks=stage.seconds - stage.query_seconds, total=total)
  notes = ({"pooled_targets": pooled_summary(stage)}
           if stage.other_targets else {})
  return ExperimentResult(config, dataset.name, stage.suite, stage.victim,
                          timing, stage.shadow_models, stage.reference_models,
                          notes)


def pooled_summary(stage: Stage) -> Dict[str, Any]:
  """attacks.json's "pooled_targets" entry: the targets' count and test
  accuracies (target 0, the protocol's victim, first; its numbers are
  "victim_test_accuracy"). The attack rows are pooled over all targets."""
  accuracies = [m.test_accuracy for m in [stage.victim] + stage.other_targets]
  return {"num_targets": len(accuracies),
          "test_accuracies": accuracies,
          "mean_test_accuracy": float(np.mean(accuracies)),
          "train_sizes": [int(m.split.train.size)
                          for m in [stage.victim] + stage.other_targets]}


def write_artifacts(result: ExperimentResult, output_dir: str) -> Dict[str, str]:
  """Writes attacks.json, attacks_roc.png and attack_scores.npz.

  Returns:
    {"json": path, "roc": path, "scores": path}.
  """
  os.makedirs(output_dir, exist_ok=True)
  paths = {"json": os.path.join(output_dir, "attacks.json"),
           "roc": os.path.join(output_dir, "attacks_roc.png"),
           "scores": os.path.join(output_dir, "attack_scores.npz")}
  io_utils.atomic_write_json(paths["json"], result.to_json())
  plotting.plot_roc_curves(
      result.suite.results, paths["roc"],
      title=f"{result.dataset}, {result.config.recipe.target} victim "
      f"(test acc {100 * result.victim.test_accuracy:.1f}%)")
  io_utils.atomic_save_npz(paths["scores"],
                           **privacy_report.score_arrays(result.suite.results))
  return paths
