"""The end-to-end experiment behind `wemem run`: resumable and cached.

For one dataset and seed, a run evaluates several *configurations* of the
victim (the unpruned model, one-shot pruning, and iterative pruning with each
defense) under the same adaptive attacks, then writes a report.

Run directory:
  manifest.json            flags, seed, versions, data fingerprint, commit
  splits.npz               the split protocol's index arrays
  memscores/               memorization scores (shared by all defenses)
  models/                  every trained model, keyed by what determines it:
                           pre-training is shared by all configurations
  experiments/<label>/     attacks.json, attacks_roc.png, attack_scores.npz,
                           step.json (written last: marks the step done)
  report.json, report.md, plots/

With `tensorboard_dir`, TensorBoard summaries go to
`<tensorboard_dir>/<label>/` per configuration, each written when its
step is done (`write_configuration_summaries`).

Every artifact is written atomically, so after an interruption (even
`kill -9`) the same command skips finished steps, reloads finished models and
produces the same numbers (wall times aside).
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from attacks import base
from attacks import registry
from wemem_eval import executor as executor_lib
from wemem_eval import experiment
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval import report as report_lib
from wemem_tf import defenses as defenses_lib
from wemem_tf import io_utils
from wemem_tf import memorization
from wemem_tf import run_manifest
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.pruning import summaries as summaries_lib
from wemem_tf.training import loop as loop_lib

BASELINES = ("unpruned", "one_shot")


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """What `run` evaluates.

  Attributes:
    dataset, data_dir, label_column: the data
      (`wemem_tf.data.load_dataset`: a built-in name, "npz:PATH" or
      "csv:PATH" with the label in column `label_column`).
    seed: run seed.
    architecture: model architecture, any `wemem_tf.models.ArchitectureLike`
      (default: the dataset's zoo architecture).
    pruning: iterative pruning settings (one-shot uses the same target
      sparsity in a single pruning iteration).
    training: optimizer and pre-training settings.
    defenses: defense names for iterative pruning ("none" = base).
    defense_settings: {defense name: {setting: value}} overrides.
    baseline_settings: what the existing defenses start from, "ours" or
      "paper" (`wemem_tf.defenses.BASELINE_SETTINGS`).
    baselines: any of "unpruned", "one_shot".
    attacks: attack names (see attacks.registry).
    num_shadows: shadow models.
    num_reference_models: LiRA/RMIA reference models (0: automatic).
    reference_inclusion: share of the pool each reference model trains on
      (0.5: random halves; None: matched to the victim's training size).
    adaptive: attacker's models trained with the victim's defense.
    memscore_models, memscore_epochs: the memorization estimate's size.
    memscore_design: its membership design ("random" or "balanced", see
      `memorization.sample_membership`).
    attack_options: attack settings.
    split: the data protocol's fractions and stratification.
    num_targets: victims attacked and pooled per configuration
      (`experiment.ExperimentConfig.num_targets`).
    cohorts: train the victim, shadows and reference models of each
      configuration together where they can (`ModelRecipe.cohort`).
  """
  dataset: str = "digits"
  data_dir: Optional[str] = None
  label_column: str = "label"
  seed: int = 0
  architecture: Optional[arch_lib.ArchitectureLike] = None
  pruning: iterative.PruningConfig = iterative.PruningConfig()
  training: loop_lib.TrainConfig = loop_lib.TrainConfig()
  defenses: Tuple[str, ...] = ("none", "rsw", "rmr", "swmr")
  defense_settings: Dict[str, Dict[str, Any]] = dataclasses.field(
      default_factory=dict)
  baseline_settings: str = "ours"
  baselines: Tuple[str, ...] = BASELINES
  attacks: Tuple[str, ...] = tuple(registry.attack_names())
  num_shadows: int = 5
  num_reference_models: int = 0
  reference_inclusion: Optional[float] = 0.5
  adaptive: bool = True
  memscore_models: int = 128
  memscore_epochs: int = 30
  memscore_design: str = "random"
  attack_options: base.AttackOptions = base.AttackOptions()
  split: splits_lib.SplitConfig = splits_lib.SplitConfig()
  num_targets: int = 1
  cohorts: bool = False

  def __post_init__(self):
    unknown = [d for d in self.defenses if d != "none"
               and d not in defenses_lib.available_defenses()]
    if unknown:
      raise ValueError(f"unknown defenses {unknown}; choose from "
                       f"{defenses_lib.available_defenses()}.")
    bad = [b for b in self.baselines if b not in BASELINES]
    if bad:
      raise ValueError(f"unknown baselines {bad}; choose from {BASELINES}.")
    if self.baseline_settings not in defenses_lib.BASELINE_SETTINGS:
      raise ValueError(f"baseline_settings must be one of "
                       f"{list(defenses_lib.BASELINE_SETTINGS)}, got "
                       f"{self.baseline_settings!r}.")
    if self.memscore_design not in memorization.DESIGNS:
      raise ValueError(f"memscore_design must be one of "
                       f"{list(memorization.DESIGNS)}, got "
                       f"{self.memscore_design!r}.")
    if not self.defenses and not self.baselines:
      raise ValueError("nothing to run: give at least one defense or baseline.")
    object.__setattr__(self, "attacks",
                       tuple(registry.parse_attack_names(self.attacks)))

  def arch(self) -> arch_lib.ArchitectureLike:
    """`architecture`, or the dataset's default zoo name."""
    return self.architecture or zoo.DEFAULT_ARCHITECTURE.get(self.dataset,
                                                             "column_fc")

  def to_json(self) -> Dict[str, Any]:
    plain = dataclasses.replace(self, architecture=None)  # code: by name
    doc = json.loads(json.dumps(dataclasses.asdict(plain), default=str))
    if self.architecture is not None:
      doc["architecture"] = arch_lib.architecture_name(self.architecture)
    return doc


def label_of(defense: str) -> str:
  return "base" if defense == "none" else defense


@dataclasses.dataclass
class Step:
  """One configuration to evaluate: a label and its victim recipe."""
  label: str
  recipe: model_training.ModelRecipe
  kind: str  # "baseline" or "defense"

  def key(self, config: RunConfig, fingerprint: str) -> str:
    return model_store.digest(
        self.label, fingerprint, config.seed,
        arch_lib.resolve_architecture(config.arch()).key,
        dataclasses.asdict(self.recipe.pruning_config),
        dataclasses.asdict(self.recipe.train_config), self.recipe.target,
        model_store.defense_digest(self.recipe.defense),
        model_store.defense_digest(self.recipe.attacker_defense),
        config.attacks,
        config.num_shadows, config.num_reference_models,
        config.reference_inclusion, config.adaptive,
        dataclasses.asdict(config.attack_options),
        *(["cohort"] if self.recipe.cohort else []))


class Progress:
  """One line per step with elapsed time and an ETA."""

  def __init__(self, total: int, log: Callable[[str], None]):
    self.total, self.log = total, log
    self.start = time.perf_counter()
    self.done = 0
    self.worked = []

  def step(self, label: str, seconds: float, cached: bool) -> None:
    self.done += 1
    if not cached:
      self.worked.append(seconds)
    elapsed = time.perf_counter() - self.start
    left = self.total - self.done
    eta = (left * sum(self.worked) / len(self.worked)) if self.worked else 0.0
    state = "cached" if cached else f"{seconds:.0f}s"
    self.log(f"[{self.done}/{self.total}] {label:<10} {state:>7}   elapsed "
             f"{elapsed:6.0f}s   ETA {eta:6.0f}s")


def build_steps(config: RunConfig, dataset: datasets.Dataset,
                scores_fn: Callable[[], Any],
                attacker_scores_fn: Optional[Callable[[], Any]] = None,
                records_per_class: Optional[float] = None) -> List[Step]:
  """The configurations of the run, in order.

  `scores_fn` gives the defender's memorization scores (its training pool),
  `attacker_scores_fn` an adaptive attacker's own (every record it may
  train on; default: `scores_fn`'s). `records_per_class`, the victim's
  training records per class, scales a preset window made for another size
  of the dataset (`wemem_tf.defenses.from_preset`).
  """
  base_recipe = model_training.ModelRecipe(
      architecture=config.arch(), pruning_config=config.pruning,
      train_config=config.training, cohort=config.cohorts)
  steps = []
  if "unpruned" in config.baselines:
    steps.append(Step("unpruned", dataclasses.replace(
        base_recipe, target="unpruned"), "baseline"))
  if "one_shot" in config.baselines:
    one_shot = dataclasses.replace(config.pruning, num_iterations=2)
    steps.append(Step("one_shot", dataclasses.replace(
        base_recipe, pruning_config=one_shot), "baseline"))
  for name in config.defenses:
    defense = None if name == "none" else defenses_lib.build(
        name, dataset.name, scores_fn, baseline=config.baseline_settings,
        records_per_class=records_per_class,
        **config.defense_settings.get(name, {}))
    attacker = (model_training.attacker_variant(defense, attacker_scores_fn)
                if attacker_scores_fn is not None else None)
    steps.append(Step(label_of(name), dataclasses.replace(
        base_recipe, defense=defense, attacker_defense=attacker), "defense"))
  return steps


def run(config: RunConfig, run_dir: str,
        log: Callable[[str], None] = print, command: Optional[str] = None,
        cache_dir: Optional[str] = None,
        executor: Optional[executor_lib.Executor] = None,
        overwrite: bool = False,
        tensorboard_dir: Optional[str] = None) -> Dict[str, Any]:
  """Runs (or resumes) every step and writes the report; returns it.

  `cache_dir` (default `run_dir`) holds models/ and memscores/: another
  run directory of the same dataset and seed shares its pre-trained models,
  memorization scores and any identical pruned model. `executor`
  (`wemem_eval.executor`; default: this process) trains each
  configuration's models; the report's numbers do not depend on it.
  `run_dir` is locked while the run writes to it (a second run there fails
  at once), and a `run_dir` holding another seed's or dataset's run is
  refused before anything is written unless `overwrite`.
  `tensorboard_dir` (default: none) receives each configuration's
  TensorBoard summaries (`write_configuration_summaries`).
  """
  dataset = datasets.load_dataset(config.dataset, config.data_dir,
                                  config.label_column)
  run_manifest.check_reuse(run_dir, config.seed, dataset.fingerprint,
                           overwrite)
  with run_manifest.RunLock(run_dir):
    return _run(config, dataset, run_dir, log, command,
                cache_dir or run_dir, executor, tensorboard_dir)


def _run(config, dataset, run_dir, log, command, cache_dir, executor,
         tensorboard_dir=None):
  """`run` on the loaded `dataset`, with `run_dir` locked and checked."""
  run_manifest.write_manifest(run_dir, config.seed, config.to_json(),
                              dataset.fingerprint, command)
  splits = splits_lib.splits_for(dataset, config.seed, config.num_shadows,
                                 config.split)
  splits.save(os.path.join(run_dir, "splits.npz"))
  # The defender scores its training pool (the held-out split never
  # enters); an adaptive attacker scores every record it may train on.
  def estimate(indices):
    return memorization.cached_estimate(
        dataset, os.path.join(cache_dir, "memscores"), config.seed,
        config.arch(), num_models=config.memscore_models,
        epochs=config.memscore_epochs, executor=executor, indices=indices,
        design=config.memscore_design)
  scores_fn = functools.cache(lambda: estimate(splits.pool))
  attacker_scores_fn = functools.cache(lambda: estimate(None))
  store = model_store.ModelStore(os.path.join(cache_dir, "models"))
  steps = build_steps(config, dataset, scores_fn,
                      attacker_scores_fn if config.adaptive else None,
                      splits.victim.train.size / dataset.num_classes)
  progress = Progress(len(steps), log)
  log(f"wemem run: {dataset.name} ({len(dataset)} records), seed "
      f"{config.seed}, {len(steps)} configurations, {len(config.attacks)} "
      f"attacks -> {run_dir}")
  for step in steps:
    out_dir = os.path.join(run_dir, "experiments", step.label)
    marker = os.path.join(out_dir, "step.json")
    key = step.key(config, dataset.fingerprint)
    if os.path.isfile(marker):
      try:
        with open(marker) as f:
          done = json.load(f).get("key") == key
      except (OSError, ValueError, AttributeError) as e:
        log(f"warning: {marker} is unreadable ({e}); redoing {step.label}")
        done = False
      if done:
        progress.step(step.label, 0.0, cached=True)
        continue
    start = time.perf_counter()
    result = experiment.run_experiment(dataset, experiment.ExperimentConfig(
        recipe=step.recipe, attacks=config.attacks,
        num_shadows=config.num_shadows,
        num_reference_models=config.num_reference_models,
        reference_inclusion=config.reference_inclusion,
        adaptive=config.adaptive, seed=config.seed,
        options=config.attack_options, split=config.split,
        num_targets=config.num_targets, label=step.label), store,
        executor=executor)
    experiment.write_artifacts(result, out_dir)
    if tensorboard_dir:  # replaces what an earlier invocation wrote
      folder = os.path.join(tensorboard_dir, step.label)
      _remove_event_files(folder)
      write_experiment_summaries(folder, result)
    seconds = time.perf_counter() - start
    io_utils.atomic_write_json(marker, {"key": key, "label": step.label,
                                        "kind": step.kind,
                                        "seconds": seconds})
    progress.step(step.label, seconds, cached=False)
  report = report_lib.write_report(run_dir, [s.label for s in steps])
  if tensorboard_dir:
    write_tensorboard(tensorboard_dir, run_dir, report)
  log(f"report: {os.path.join(run_dir, 'report.md')} "
      f"(total {time.perf_counter() - progress.start:.0f}s)")
  return report


# The attack metrics of a configuration written to TensorBoard.
TENSORBOARD_METRICS = ("balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                       "tpr_at_1pct_fpr")


def _cached_history(run_dir: str, label: str,
                    entry: Dict[str, Any]) -> List[Dict[str, Any]]:
  """The victim's iterations as attacks.json records them (no layer
  sparsity), with each iteration's epochs."""
  history = [dict(h) for h in entry.get("iterations") or []]
  try:
    with open(os.path.join(run_dir, "experiments", label,
                           "attacks.json")) as f:
      epochs = json.load(f)["models"]["victim"].get("prune_epochs") or []
  except (OSError, ValueError, KeyError, TypeError):
    epochs = []
  for h, e in zip(history, epochs):
    h["epochs_run"] = e
  return history


def write_configuration_summaries(folder: str, entry: Dict[str, Any],
                                  history: List[Dict[str, Any]]) -> None:
  """One configuration's TensorBoard summaries in `folder`.

  Its victim's pruning iterations (`wemem_tf.pruning.summaries`:
  `iteration/*`, the pruned layers' sparsity when `history` has it,
  `defense/*` from the entry's "defense_report") and, at step 0,
  `victim/{train,test}_accuracy`, `victim/defense_seconds`,
  `attack/<attack>/<metric>` for `TENSORBOARD_METRICS` (null TPRs, not
  estimable, are skipped), `best_attack/{balanced_accuracy,auc}` (the
  victim-side maximum), `best_attack_attacker_side/...`,
  `label_only_bound/balanced_accuracy` and
  `excess_leakage/{victim_side,attacker_side}`; with attacks
  after each iteration ("attack_per_iteration"),
  `attack_per_iteration/best_balanced_accuracy` and
  `attack_per_iteration/best_auc` at step = iteration.

  Args:
    entry: the configuration's report.json entry (`report.collect`).
    history: the victim's iteration records (JSON), [] when not pruned.
  """
  scalars = {"victim/test_accuracy": entry.get("test_accuracy"),
             "victim/train_accuracy": entry.get("train_accuracy"),
             "victim/defense_seconds": entry.get("defense_seconds")}
  for attack, row in (entry.get("attacks") or {}).items():
    scalars.update({f"attack/{attack}/{m}": row.get(m)
                    for m in TENSORBOARD_METRICS})
  for key in ("best_attack", "best_attack_attacker_side"):
    best = entry.get(key) or {}
    scalars.update({f"{key}/{m}": best.get(m)
                    for m in ("balanced_accuracy", "auc")})
  scalars["label_only_bound/balanced_accuracy"] = (
      entry.get("label_only_bound") or {}).get("balanced_accuracy")
  scalars.update({f"excess_leakage/{side}": value for side, value in (
      entry.get("excess_leakage") or {}).items()})
  with summaries_lib.IterationSummaries(folder) as writer:
    writer.write_scalars(scalars, 0)
    if history:
      writer.write_history(history, entry.get("defense_report"))
    for it in entry.get("attack_per_iteration") or []:
      best = it.get("best_attack") or {}
      writer.write_scalars({
          "attack_per_iteration/best_balanced_accuracy":
              best.get("balanced_accuracy"),
          "attack_per_iteration/best_auc": best.get("auc")},
                           it["iteration"])


def _event_files(folder: str) -> List[str]:
  names = os.listdir(folder) if os.path.isdir(folder) else []
  return [os.path.join(folder, n) for n in names
          if n.startswith("events.out.tfevents.")]


def _remove_event_files(folder: str) -> None:
  for path in _event_files(folder):
    os.remove(path)


def write_tensorboard(tensorboard_dir: str, run_dir: str,
                      report: Dict[str, Any]) -> None:
  """Writes each configuration of `report` that has no summaries in
  `<tensorboard_dir>/<label>/` yet (`write_configuration_summaries`).

  `run` writes a configuration it computes as soon as it is done
  (`write_experiment_summaries`, replacing earlier summaries); this fills
  in those taken from the cache of an earlier invocation without
  summaries, from what their attacks.json keeps (no layer sparsity).
  """
  for label, entry in report.get("defenses", {}).items():
    folder = os.path.join(tensorboard_dir, label)
    if not _event_files(folder):
      write_configuration_summaries(folder, entry,
                                    _cached_history(run_dir, label, entry))


def write_experiment_summaries(folder: str,
                               result: experiment.ExperimentResult,
                               attack_per_iteration: Optional[
                                   List[Dict[str, Any]]] = None) -> None:
  """An `ExperimentResult`'s TensorBoard summaries in `folder` (what
  `wemem run` writes per configuration; for `wemem attack`).

  Args:
    attack_per_iteration: the "iterations" of iterations.json (attacks
      after each pruning iteration), if run.
  """
  doc = result.to_json()
  rows = {r["attack"]: report_lib.attack_row(r) for r in doc["attacks"]}
  victim = result.victim
  entry = {"test_accuracy": victim.test_accuracy,
           "train_accuracy": victim.train_accuracy,
           "defense_seconds": victim.defense_seconds,
           "defense_report": victim.facts.get("prune", {}).get(
               "defense_report", {}),
           "attacks": rows,
           **report_lib.leakage_summary(rows, victim.train_accuracy,
                                        victim.test_accuracy),
           "attack_per_iteration": attack_per_iteration or []}
  write_configuration_summaries(
      folder, entry, victim.facts.get("prune", {}).get("history", []))
