"""Defense settings found by KerasTuner (docs/method.md §8).

A `keras_tuner` oracle (Bayesian optimization by default; random search and
grid search available) proposes defense settings; `DefenseTuner.run_trial`
prunes with them and returns the trial's metrics:

1. the victim, pre-trained once (cached in a `ModelStore`) and pruned with
   the trial's defense → its **dev** accuracy;
2. *rehearsals* on the shadows' side of the data (by default
   `wemem_tf.data.splits.scaled_rehearsal_splits`: the whole protocol at
   about half scale, windows scaled; `TuningSetup`): a rehearsal victim,
   its shadows and LiRA/RMIA reference models are trained with the same
   defense (adaptive), and the attacks run against it → the **strongest
   attack's** balanced accuracy, averaged over the rehearsals.

No victim test record (member or non-member) is used.
`wemem_eval.tuning.objective` turns the pair into the score the oracle maximizes. Pre-trained models and
memorization scores are shared by all trials (and with `wemem run` when the
cache directory is a run directory); a trial that raises is recorded as
FAILED with its error and the search goes on; the search resumes from its
directory; KerasTuner's chief/worker mode distributes trials (README).

TensorBoard (`DefenseTuner(tensorboard_dir=...)`, or KerasTuner's way:
`tuner.search(callbacks=[keras.callbacks.TensorBoard(log_dir)])`): trials
train no Keras model, so KerasTuner's own TensorBoard patching (for
`Tuner.run_trial`'s `fit`) does not apply; the tuner writes the hparams
plugin's records itself, with KerasTuner's conversion of the search space
(`hparam_domains`): the experiment (every hyperparameter's domain and the
metrics) in the log folder, and in `<log_dir>/trial_<id>/` each trial's
active hyperparameters (`hparams_api.hparams`) and, when it completed, its
metrics as scalars at step 0 (`TENSORBOARD_METRICS`, then `attack_<name>`
per rehearsed attack).
"""

import dataclasses
import gc
import json
import os
import time
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import keras_tuner as kt
from keras_tuner.engine import base_tuner
from keras_tuner.src.distribute import utils as dist_utils
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from attacks import base
from attacks import reference_design
from attacks import registry
from wemem_eval import experiment
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval.tuning import objective as objective_lib
from wemem_tf import defenses as defenses_lib
from wemem_tf import io_utils
from wemem_tf import progress
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.models import evaluate

# The attacks without a trained attack model: SAMIA and the NN attacks cost
# 30-40 s per trial on Location and were never the strongest there
# (results/location_seed0), where LiRA or RMIA always was.
DEFAULT_ATTACKS = tuple(a for a in registry.attack_names()
                        if a not in ("samia", "nn", "nn_top3", "nn_cls"))
ORACLES = ("bayesian", "random", "grid")

# The tunable defenses (every registered one but "none") and, derived from
# their declarations (`wemem_tf.defenses.settings.Tune`), the search
# space's hyperparameters: {name: (Tune, Setting, defenses that have it)},
# in declaration order (the order the oracle sees them in).
TUNABLE = tuple(n for n in defenses_lib.available_defenses() if n != "none")
TUNED = settings_lib.tuned([defenses_lib.defense_class(n) for n in TUNABLE])
RANGE_NAMES = tuple(n for n, (t, _, _) in TUNED.items() if not t.choices)
_INTEGER_RANGES = tuple(n for n, (t, _, _) in TUNED.items() if t.integer)
_CHOICES = {n: t for n, (t, _, _) in TUNED.items() if t.choices}


def _space_fields():
  """SearchSpace's fields: per numeric hyperparameter its (low, high) range,
  per integer one with a grid its `<name>_step`, per choice the choices
  (`<name>s`), all defaulting to the declarations."""
  fields = [("methods", Tuple[str, ...],
             dataclasses.field(default=("rsw", "rmr", "swmr")))]
  for name, (tune, _, _) in TUNED.items():
    if tune.choices:
      fields.append((f"{name}s", Tuple[str, ...],
                     dataclasses.field(default=tuple(tune.choices))))
      continue
    kind = int if tune.integer else float
    fields.append((name, Tuple[kind, kind], dataclasses.field(
        default=(kind(tune.low), kind(tune.high)))))
    if tune.step is not None:
      fields.append((f"{name}_step", int, dataclasses.field(
          default=tune.step)))
  return fields


def _check_space(self) -> None:
  bad = [m for m in self.methods if m not in TUNABLE]
  if not self.methods or bad:
    raise ValueError(f"methods must be a non-empty subset of {TUNABLE}; got "
                     f"{list(self.methods)}.")
  for name, tune in _CHOICES.items():
    chosen = getattr(self, f"{name}s")
    if not chosen or set(chosen) - set(tune.choices):
      raise ValueError(f"{name}s must be a non-empty subset of "
                       f"{tune.choices}, got {chosen}.")
  for name in RANGE_NAMES:
    low, high = getattr(self, name)
    if not 0 < low <= high:
      raise ValueError(f"SearchSpace.{name} must be (low, high) with "
                       f"0 < low <= high, got {(low, high)}.")
    spec = TUNED[name][1]
    for bound in (low, high):
      spec.check("SearchSpace", name, bound)  # inside the valid range
    step = getattr(self, f"{name}_step", 1)
    if step < 1:
      raise ValueError(f"{name}_step must be >= 1.")


def _for_dataset(cls, dataset_name: str,
                 records_per_class: Optional[float] = None,
                 **overrides) -> "SearchSpace":
  """Defaults scaled to the dataset's class sizes (the authors' settings
  lie inside): per-class windows of tens of records for the tabular sets,
  hundreds for CIFAR-10 and MNIST (2,250 victim records per class), scaled like
  its preset to `records_per_class` (the victim's; e.g. the 5,000-image
  subset's 180: stride 1..16, width 8..160 in steps of 8)."""
  reference = defenses_lib.PRESET_RECORDS_PER_CLASS.get(dataset_name)
  if reference is not None:
    scale = 1.0 if records_per_class is None else records_per_class / reference

    def records(n):
      return max(1, int(round(n * scale)))
    overrides = {"stride": (records(10), records(200)),
                 "width": (records(100), records(2000)),
                 "width_step": records(100), **overrides}
  return cls(**overrides)


SearchSpace = dataclasses.make_dataclass(
    "SearchSpace", _space_fields(), frozen=True, namespace={
        "__post_init__": _check_space,
        "for_dataset": classmethod(_for_dataset),
        "__doc__": """Ranges of the defense settings searched (inclusive bounds).

  Derived from the defenses' declarations: `methods` (defenses to choose
  among), then one field per tuned setting: `(low, high)` for a number
  (window sizes count records per class and epoch, docs/method.md §5; τ is
  searched as the share of records marked risky, `tau_share`, since a score
  threshold's meaning depends on the estimator), `<name>_step` for an
  integer grid, `<name>s` for the choices of a choice (`orders`).
  """})
SearchSpace.__module__ = __name__


def parse_ranges(texts: Sequence[str]) -> Dict[str, Tuple[float, float]]:
  """Parses "NAME=LOW:HIGH" range overrides for `SearchSpace`.

  Args:
    texts: e.g. ["stride=1:2", "width=5:30", "lambda_mem=0.01:0.3"]; NAME
      is one of RANGE_NAMES; stride and width take integers.

  Returns:
    {name: (low, high)}, for `SearchSpace(**...)` (which checks
    0 < low <= high).

  Raises:
    ValueError: a malformed entry, an unknown or repeated name.
  """
  ranges: Dict[str, Tuple[float, float]] = {}
  for text in texts:
    name, sep, bounds = text.partition("=")
    name = name.strip()
    if not sep or name not in RANGE_NAMES:
      raise ValueError(f"--tune_range {text!r}: expected NAME=LOW:HIGH with "
                       f"NAME one of {', '.join(RANGE_NAMES)}.")
    if name in ranges:
      raise ValueError(f"--tune_range gives {name} twice.")
    parts = bounds.split(":")
    kind = int if name in _INTEGER_RANGES else float
    try:
      if len(parts) != 2:
        raise ValueError
      low, high = kind(parts[0]), kind(parts[1])
    except ValueError:
      raise ValueError(
          f"--tune_range {text!r}: bounds must be LOW:HIGH "
          f"{'integers' if kind is int else 'numbers'}.") from None
    ranges[name] = (low, high)
  return ranges


@dataclasses.dataclass(frozen=True)
class DefenseChoice:
  """A defense and its settings, as a trial proposes them.

  Attributes:
    name: defense registry name.
    settings: constructor arguments ({} = the dataset's preset / defaults).
  """
  name: str
  settings: Mapping[str, Any]

  def build(self, dataset_name: str,
            scores_fn: Optional[Callable[[], Any]] = None,
            baseline: str = "ours",
            records_per_class: Optional[float] = None
            ) -> defenses_lib.Defense:
    """The defense: `baseline` settings ("ours"/"paper"), the preset
    scaled to `records_per_class` (`defenses.build`), then `settings`."""
    return defenses_lib.build(self.name, dataset_name, scores_fn,
                              baseline=baseline,
                              records_per_class=records_per_class,
                              **dict(self.settings))

  def to_json(self) -> Dict[str, Any]:
    return {"name": self.name, "settings": dict(self.settings)}


class DefenseHyperModel(kt.HyperModel):
  """Declares the search space; `build(hp)` returns a `DefenseChoice`.

  Each method's settings live in a conditional scope of the "method"
  choice, so oracles only tune the settings of the method a trial uses.
  """

  def __init__(self, space: SearchSpace):
    super().__init__(name="wemem_defense")
    self.space = space

  def build(self, hp: kt.HyperParameters) -> DefenseChoice:
    s = self.space
    method = hp.Choice("method", list(s.methods))
    values: Dict[str, Any] = {}
    for name, (tune, _, users) in TUNED.items():
      scope = [m for m in s.methods if m in users]
      if scope:
        with hp.conditional_scope("method", scope):
          values[name] = self._declare(hp, name, tune)
    settings: Dict[str, Any] = {}
    declared = settings_lib.declared(defenses_lib.defense_class(method))
    for arg, spec in declared.items():
      if spec.tune is not None:
        settings[arg] = values[spec.tune.name]
    if "tau_share" in settings and "tau" in declared:
      settings["tau"] = None  # the share replaces the preset's score
    return DefenseChoice(method, settings)

  def _declare(self, hp, name: str, tune: settings_lib.Tune):
    """Declares hyperparameter `name` with the space's range."""
    s = self.space
    if tune.choices:
      return hp.Choice(name, list(getattr(s, f"{name}s")))
    low, high = getattr(s, name)
    if tune.integer:
      step = getattr(s, f"{name}_step", None)
      return (hp.Int(name, low, high, step=step) if step is not None
              else hp.Int(name, low, high))
    return hp.Float(name, low, high, sampling=tune.sampling)


REHEARSALS = ("scaled", "held_out")


@dataclasses.dataclass
class TuningSetup:
  """What every trial shares.

  Attributes:
    dataset: the data.
    recipe: the victim's recipe without defense (architecture, pruning and
      training settings); trials add their defense.
    seed: run seed (splits, models, attacks).
    attacks: attacks whose maximum is the privacy term.
    num_shadows: shadow models of the rehearsal (>= 1).
    num_reference_models: LiRA/RMIA reference models (0: automatic).
    rehearsal_kind: where the attacks are rehearsed (README "Tuning
      defenses"):
      "scaled" (default): the whole protocol again on the shadows' side at
        about half scale (`splits.scaled_rehearsal_splits`), windows scaled
        to the smaller classes (`scale`); every ratio the attacks depend on
        is the real protocol's.
      "held_out": a full-size held-out shadow plays the victim
        (`splits.rehearsal_splits`); its reference models cannot have the
        real protocol's size and overlap with the target's training set.
    reference_inclusion: share of the pool each reference model trains on.
      None (default): 0.5 (random halves, the real protocol) for "scaled";
      matched to the target's training size
      (`reference_design.matched_design`) for
      "held_out", whose pool is too small for halves of that size.
    options: attack settings.
    scores_fn: memorization scores over every record, computed once on
      first use (the WeMem methods need them).
    store: caches the pre-trained victim, rehearsal target, shadows and
      reference models (pruned models are not cached by default).
    rehearsal_stream: the first rehearsal (another stream draws other
      splits).
    rehearsals_per_trial: a trial's attack accuracy is the mean over the
      rehearsals of streams rehearsal_stream, ..., + rehearsals_per_trial
      - 1 (one rehearsal varies by several points; confirmation measures
      further blocks of as many streams).
    executor: where a trial's models train (`wemem_eval.executor`): here,
      one after another (None, the default), or on Ray's workers, a
      rehearsal's victim, shadows and reference models at once; the numbers
      are the same.
    split: the data protocol's fractions and stratification (the
      rehearsals are cut the same way).
    protocol_splits: the protocol's splits, when already at hand (default:
      made from `dataset`, `seed` and `split`; stratified splits depend on
      every record's label, so a study fixes them once).
    baseline_settings: what the existing defenses' unsearched settings
      start from, "ours" or "paper".

  Set in `__post_init__`: `splits` (the protocol's), `rehearsals` (the
  rehearsals' splits, `rehearsal` the first) and `scale` (rehearsal
  target's training size / the victim's; 1 for "held_out").
  """
  dataset: datasets.Dataset
  recipe: model_training.ModelRecipe
  seed: int = 0
  attacks: Tuple[str, ...] = DEFAULT_ATTACKS
  num_shadows: int = 5
  num_reference_models: int = 0
  rehearsal_kind: str = "scaled"
  reference_inclusion: Optional[float] = None
  options: base.AttackOptions = base.AttackOptions()
  scores_fn: Optional[Callable[[], Any]] = None
  store: Optional[model_store.ModelStore] = None
  rehearsal_stream: int = 0
  rehearsals_per_trial: int = 1
  executor: Optional[Any] = None
  split: splits_lib.SplitConfig = splits_lib.SplitConfig()
  protocol_splits: Optional[splits_lib.Splits] = None
  baseline_settings: str = "ours"

  @property
  def records_per_class(self) -> float:
    """The protocol victim's training records per class (mean)."""
    return self.splits.victim.train.size / self.dataset.num_classes

  def __post_init__(self):
    self.attacks = tuple(registry.parse_attack_names(self.attacks))
    if self.rehearsals_per_trial < 1:
      raise ValueError("rehearsals_per_trial must be >= 1, got "
                       f"{self.rehearsals_per_trial}.")
    if self.num_shadows < 1:
      raise ValueError("tuning rehearses attacks with shadow models and "
                       f"needs num_shadows >= 1, got {self.num_shadows}.")
    if self.rehearsal_kind not in REHEARSALS:
      raise ValueError(f"rehearsal_kind must be one of {REHEARSALS}, got "
                       f"{self.rehearsal_kind!r}.")
    self.splits = self.protocol_splits or splits_lib.splits_for(
        self.dataset, self.seed, self.num_shadows, self.split)
    make = (splits_lib.scaled_rehearsal_splits
            if self.rehearsal_kind == "scaled" else splits_lib.rehearsal_splits)
    self.rehearsals = tuple(
        make(self.splits, self.split, stream=self.rehearsal_stream + k,
             labels=self.dataset.y)
        for k in range(self.rehearsals_per_trial))
    self.rehearsal = self.rehearsals[0]
    if self.rehearsal_kind == "scaled":
      self.scale = (self.rehearsal.victim.train.size
                    / self.splits.victim.train.size)
      if self.reference_inclusion is None:
        self.reference_inclusion = 0.5
    else:
      # A full-size target: the method's integer windows as they are (a
      # ratio a record off 1 would shift every fractional window).
      self.scale = 1.0
      if self.reference_inclusion is None:
        inclusion, count = reference_design.matched_design(self.rehearsal)
        self.reference_inclusion = inclusion
        self.num_reference_models = self.num_reference_models or count


def evaluate_choice(setup: TuningSetup, choice: DefenseChoice
                    ) -> objective_lib.TrialMetrics:
  """Prunes with `choice` and measures dev accuracy and rehearsed attacks."""
  defense = choice.build(setup.dataset.name, setup.scores_fn,
                         setup.baseline_settings, setup.records_per_class)
  recipe = dataclasses.replace(setup.recipe, defense=defense)
  ((victim,),) = model_training.train_models(
      setup.dataset, [model_training.victim_job(setup.splits, recipe,
                                                setup.seed)],
      setup.store, executor=setup.executor)
  dev_accuracy = evaluate.accuracy(
      victim.query.logits, *setup.dataset.take(setup.splits.victim.dev))
  rehearsed = dataclasses.replace(
      recipe, defense=defenses_lib.scaled_window(defense, setup.scale))
  config = experiment.ExperimentConfig(
      recipe=rehearsed, attacks=setup.attacks, num_shadows=setup.num_shadows,
      num_reference_models=setup.num_reference_models,
      reference_inclusion=setup.reference_inclusion, adaptive=True,
      seed=setup.seed, options=setup.options, split=setup.split)
  measurements = []
  for rehearsal in setup.rehearsals:
    result = experiment.run_experiment(setup.dataset, config, setup.store,
                                       rehearsal, executor=setup.executor)
    attacks = {r.attack: r.balanced_accuracy for r in result.suite.results}
    measurements.append(objective_lib.TrialMetrics.from_attacks(
        dev_accuracy, attacks, result.victim.test_accuracy,
        victim.defense_seconds or 0.0))
  return objective_lib.TrialMetrics.mean_of(measurements)


TRIAL_FILE = "wemem_trial.json"
# A trial's metrics (`TrialMetrics.metrics`) shown by TensorBoard's hparams
# plugin, before one `attack_<name>` per rehearsed attack.
TENSORBOARD_METRICS = ("score", "dev_accuracy", "attack_accuracy",
                       "rehearsal_test_accuracy", "defense_seconds")


def hparam_domains(hyperparameters: kt.HyperParameters
                   ) -> Dict[str, hparams_api.HParam]:
  """{name: TensorBoard `HParam`} of every hyperparameter declared in
  `hyperparameters`, active or not, with KerasTuner's domains
  (`convert_hyperparams_to_hparams`: a choice or a stepped range is
  `Discrete`, other ranges are intervals)."""
  out = {}
  for hp in hyperparameters.space:
    if isinstance(hp, kt.engine.hyperparameters.Choice):
      domain = hparams_api.Discrete(list(hp.values))
    elif isinstance(hp, kt.engine.hyperparameters.Int):
      domain = (hparams_api.Discrete(
          list(range(hp.min_value, hp.max_value + 1, hp.step)))
                if hp.step not in (None, 1) else
                hparams_api.IntInterval(hp.min_value, hp.max_value))
    elif isinstance(hp, kt.engine.hyperparameters.Float):
      domain = (hparams_api.Discrete(np.arange(
          hp.min_value, hp.max_value + 1e-7, hp.step).tolist())
                if hp.step is not None else
                hparams_api.RealInterval(float(hp.min_value),
                                         float(hp.max_value)))
    elif isinstance(hp, kt.engine.hyperparameters.Boolean):
      domain = hparams_api.Discrete([True, False])
    else:  # Fixed
      domain = hparams_api.Discrete([hp.value])
    out[hp.name] = hparams_api.HParam(hp.name, domain)
  return out


_FINISHED = (kt.engine.trial.TrialStatus.COMPLETED,
             kt.engine.trial.TrialStatus.FAILED,
             kt.engine.trial.TrialStatus.INVALID)


class DefenseTuner(base_tuner.BaseTuner):
  """A KerasTuner tuner whose trials prune with defense settings.

  Use like any KerasTuner tuner: `tuner.search()` runs (or resumes) the
  search; `tuner.oracle` holds the trials. Besides KerasTuner's own files,
  each trial directory gets `wemem_trial.json` (choice, metrics, seconds,
  status, error). With `tensorboard_dir` (or a `keras.callbacks.TensorBoard`
  in `search(callbacks=[...])`, whose `log_dir` is used), each trial is
  written for TensorBoard's hparams plugin (module docstring).
  """

  def __init__(self, oracle: kt.Oracle, setup: TuningSetup,
               objective: objective_lib.TuningObjective,
               space: SearchSpace, directory: str,
               project_name: str = "tuner", overwrite: bool = False,
               evaluate_fn: Callable[[TuningSetup, DefenseChoice],
                                     objective_lib.TrialMetrics]
               = evaluate_choice,
               tensorboard_dir: Optional[str] = None):
    """Args: `evaluate_fn` measures a choice (default `evaluate_choice`;
    tests substitute cheap known functions); `tensorboard_dir`: the hparams
    plugin's log folder (None: none, unless `search` gets a TensorBoard
    callback); the rest as KerasTuner's."""
    self.setup = setup
    self.objective = objective
    self.evaluate_fn = evaluate_fn
    self.tensorboard_dir = tensorboard_dir
    self._experiment_written = set()  # log folders holding the experiment
    super().__init__(oracle, hypermodel=DefenseHyperModel(space),
                     directory=directory, project_name=project_name,
                     overwrite=overwrite)

  def search(self, *fit_args, **fit_kwargs) -> None:
    """KerasTuner's search, with a progress bar over the trials
    (`wemem_tf.progress`; while it is shown, KerasTuner's own per-trial
    display is off unless `verbose` is given). In KerasTuner's distributed
    mode (a chief oracle and workers) there is no bar: the chief serves
    the trials and each worker only sees its own."""
    if dist_utils.has_chief_oracle():
      return super().search(*fit_args, **fit_kwargs)
    done = sum(t.status in _FINISHED for t in self.oracle.trials.values())
    with progress.bar(self.oracle.max_trials, "tuning trials", unit="trial",
                      initial=done) as bar:
      if bar.shown:
        fit_kwargs.setdefault("verbose", 0)
      self._bar = bar
      try:
        super().search(*fit_args, **fit_kwargs)
      finally:
        self._bar = progress.Bar()

  def on_trial_end(self, trial) -> None:
    super().on_trial_end(trial)
    bar = getattr(self, "_bar", None)
    if bar is not None:
      bar.update(1)
      best = self.oracle.get_best_trials(1)
      if best and best[0].score is not None:
        bar.set_postfix(f"best {best[0].score:.4f}")

  def run_trial(self, trial, *args, **kwargs) -> Dict[str, float]:
    del args
    log_dir = self._tensorboard_dir(kwargs.get("callbacks"))
    choice = self.hypermodel.build(trial.hyperparameters)
    record = {"trial_id": trial.trial_id, "choice": choice.to_json(),
              "tuner_id": self.tuner_id}
    start = time.perf_counter()
    try:
      metrics = self.evaluate_fn(self.setup, choice)
    except Exception as e:  # pylint: disable=broad-except
      record.update(status="FAILED", seconds=time.perf_counter() - start,
                    error=f"{type(e).__name__}: {e}",
                    traceback=traceback.format_exc())
      self._write_record(trial, record)
      self._write_tensorboard(log_dir, trial, None)
      raise kt.errors.FailedTrialError(
          f"trial {trial.trial_id} ({choice.name} {dict(choice.settings)}) "
          f"failed: {type(e).__name__}: {e}") from e
    finally:
      keras.backend.clear_session()
      gc.collect()
    values = metrics.metrics(self.objective)
    record.update(status="COMPLETED", seconds=time.perf_counter() - start,
                  metrics=values, strongest_attack=metrics.strongest_attack,
                  feasible=self.objective.feasible(metrics.attack_accuracy))
    self._write_record(trial, record)
    self._write_tensorboard(log_dir, trial, values)
    return values

  def _write_record(self, trial, record: Dict[str, Any]) -> None:
    io_utils.atomic_write_json(
        os.path.join(self.get_trial_dir(trial.trial_id), TRIAL_FILE), record)

  # ---- TensorBoard ---------------------------------------------------------

  def _tensorboard_dir(self, callbacks) -> Optional[str]:
    """`tensorboard_dir`, else the log_dir of a TensorBoard callback given
    to `search` (as KerasTuner's `Tuner` finds it: by class name)."""
    if self.tensorboard_dir:
      return self.tensorboard_dir
    for callback in callbacks or ():
      if type(callback).__name__ == "TensorBoard":
        return str(callback.log_dir)
    return None

  def tensorboard_metrics(self) -> List[str]:
    """The metric tags each completed trial writes."""
    return list(TENSORBOARD_METRICS) + [f"attack_{a}"
                                        for a in self.setup.attacks]

  def _write_tensorboard(self, log_dir: Optional[str], trial,
                         values: Optional[Dict[str, float]]) -> None:
    """The trial's hparams (and metrics, when it completed); the
    experiment once per log folder and process."""
    if not log_dir:
      return
    domains = hparam_domains(self.oracle.get_space())
    if log_dir not in self._experiment_written:
      writer = tf.summary.create_file_writer(log_dir)
      with writer.as_default():
        hparams_api.hparams_config(
            hparams=list(domains.values()),
            metrics=[hparams_api.Metric(m) for m in self.tensorboard_metrics()])
      writer.close()
      self._experiment_written.add(log_dir)
    active = {domains[name]: value
              for name, value in trial.hyperparameters.values.items()
              if name in domains}
    writer = tf.summary.create_file_writer(
        os.path.join(log_dir, f"trial_{trial.trial_id}"))
    with writer.as_default():
      hparams_api.hparams(active, trial_id=trial.trial_id)
      for name, value in (values or {}).items():
        if isinstance(value, float) and np.isfinite(value):
          tf.summary.scalar(name, value, step=0)
    writer.close()

  def save_model(self, trial_id, model, step=0):
    """Trials keep no model (their pruned models are cheap to rebuild)."""
    del trial_id, model, step

  def load_model(self, trial):
    raise NotImplementedError(
        "defense trials keep no model: rebuild it with `wemem prune` and the "
        "trial's settings (best.cfg).")


class BayesianOracle(kt.oracles.BayesianOptimizationOracle):
  """KerasTuner's Bayesian optimization, without repeated proposals.

  KerasTuner's oracle proposes the Gaussian process's optimum even when
  that point was measured already; with integer and choice settings it
  keeps returning to one point (trials are seeded, so a repeat measures
  exactly the same numbers and teaches the process nothing). A proposal
  equal to an earlier trial's settings is replaced by random untried
  settings, as the random oracle would draw them.
  """

  def populate_space(self, trial_id):
    proposal = super().populate_space(trial_id)
    if (proposal["status"] == kt.engine.trial.TrialStatus.RUNNING
        and self._tried(proposal["values"])):
      return self._random_populate_space()
    return proposal

  def _tried(self, values) -> bool:
    # The settings as `create_trial` records them (active values only).
    hps = self.hyperparameters.copy()
    hps.values = dict(values)
    hps.ensure_active_values()
    return self._duplicate(hps.values)


def make_oracle(kind: str, max_trials: int, seed: int,
                max_consecutive_failed_trials: int = 5) -> kt.Oracle:
  """The oracle maximizing "score" ("bayesian", "random" or "grid")."""
  if kind not in ORACLES:
    raise ValueError(f"oracle must be one of {ORACLES}, got {kind!r}.")
  if max_trials < 1:
    raise ValueError(f"max_trials must be >= 1, got {max_trials}.")
  goal = kt.Objective("score", direction="max")
  common = dict(objective=goal, max_trials=max_trials, seed=seed,
                max_consecutive_failed_trials=max_consecutive_failed_trials)
  if kind == "bayesian":
    return BayesianOracle(num_initial_points=min(max_trials, 5), **common)
  if kind == "random":
    return kt.oracles.RandomSearchOracle(**common)
  return kt.oracles.GridSearchOracle(**common)


# ---- the trials table and the best trial ----------------------------------


@dataclasses.dataclass(frozen=True)
class TrialRow:
  """One line of the trials table."""
  trial_id: str
  status: str
  choice: Optional[Dict[str, Any]]
  metrics: Dict[str, float]
  seconds: Optional[float]
  error: Optional[str]

  @property
  def score(self) -> Optional[float]:
    return self.metrics.get("score")


def trial_rows(tuner: DefenseTuner) -> List[TrialRow]:
  """Every trial the oracle knows of, in trial order."""
  rows = []
  for trial_id in sorted(tuner.oracle.trials, key=lambda t: (len(t), t)):
    trial = tuner.oracle.trials[trial_id]
    path = os.path.join(tuner.get_trial_dir(trial_id), TRIAL_FILE)
    record = {}
    if os.path.isfile(path):
      with open(path) as f:
        record = json.load(f)
    metrics = record.get("metrics") or {
        name: trial.metrics.get_last_value(name)
        for name in trial.metrics.metrics}
    choice = record.get("choice")
    if choice is None and trial.hyperparameters.values:
      choice = tuner.hypermodel.build(trial.hyperparameters).to_json()
    error = record.get("error")
    if error is None and trial.message:
      error = str(trial.message).strip().splitlines()[-1]
    rows.append(TrialRow(trial_id, str(trial.status), choice,
                         {k: float(v) for k, v in metrics.items()
                          if v is not None},
                         record.get("seconds"), error))
  return rows


def _rank(row: TrialRow) -> Tuple[float, float, float]:
  """Sort key, best first: higher score; on a tie (e.g. the same dev
  accuracy, which a few hundred dev records make common), the lower attack
  accuracy, then the higher dev accuracy."""
  m = row.metrics
  return (-row.score, m.get("attack_accuracy", np.inf),
          -m.get("dev_accuracy", -np.inf))


def best_row(rows: Sequence[TrialRow]) -> Optional[TrialRow]:
  """The completed trial with the highest score (None if none completed);
  ties go to the lower attack accuracy."""
  done = [r for r in rows if r.status in ("COMPLETED", "CONFIRMED")
          and r.score is not None]
  return min(done, key=_rank) if done else None


def settings_text(settings: Mapping[str, Any]) -> str:
  """A defense's settings as "k=v k=v" (floats to 3 digits, None left
  out), as the trials and frontier tables show them."""
  return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in settings.items() if v is not None)


def _settings_text(choice: Optional[Dict[str, Any]]) -> str:
  if not choice:
    return ""
  return f"{choice['name']} " + settings_text(choice["settings"])


def preset_choices(dataset_name: str, methods: Sequence[str],
                   records_per_class: Optional[float] = None
                   ) -> List[DefenseChoice]:
  """The authors' settings (wemem PRESETS) of `methods` for the dataset,
  their windows scaled to `records_per_class` as `wemem.from_preset`
  does."""
  from wemem_tf.defenses import wemem  # pylint: disable=g-import-not-at-top
  presets = wemem.PRESETS.get(dataset_name, {})
  choices = []
  for m in methods:
    if m in presets:
      defense = wemem.from_preset(m, dataset_name, None, records_per_class)
      choices.append(DefenseChoice(m, {
          k: getattr(getattr(defense, k), "value", getattr(defense, k))
          for k in presets[m]}))
  return choices


def evaluate_presets(setup: TuningSetup, methods: Sequence[str],
                     objective: objective_lib.TuningObjective, path: str,
                     evaluate_fn=evaluate_choice) -> List[TrialRow]:
  """Measures the authors' preset settings exactly like a trial.

  Gives the search's results a reference point on the same (rehearsal)
  axes. Results are cached in `path` (JSON, rewritten after each preset),
  so a rerun measures only what is missing.
  """
  done = {}
  if os.path.isfile(path):
    with open(path) as f:
      done = {r["trial_id"]: r for r in json.load(f)}
  rows = []
  for choice in preset_choices(setup.dataset.name, methods,
                               setup.records_per_class):
    label = f"preset:{choice.name}"
    if label not in done:
      start = time.perf_counter()
      metrics = evaluate_fn(setup, choice)
      done[label] = dataclasses.asdict(TrialRow(
          label, "COMPLETED", choice.to_json(), metrics.metrics(objective),
          time.perf_counter() - start, None))
      io_utils.atomic_write_json(path, list(done.values()))
      keras.backend.clear_session()
    row = TrialRow(**done[label])
    # A cached measurement is scored by the objective of this run.
    row.metrics["score"] = objective.score(row.metrics["dev_accuracy"],
                                           row.metrics["attack_accuracy"])
    rows.append(row)
  return rows


def confirm(setup: TuningSetup, candidates: Sequence[TrialRow],
            repeats: int, objective: objective_lib.TuningObjective,
            path: str, evaluate_fn=evaluate_choice) -> List[TrialRow]:
  """Re-measures candidates on `repeats` further blocks of rehearsals.

  A search keeps the trial whose single measurement came out best, which
  favours lucky measurements (the winner's curse). Confirmation measures
  each candidate (e.g. the top trials and the presets) again on `repeats`
  further blocks of `setup.rehearsals_per_trial` rehearsal streams (block
  j starts at stream rehearsal_stream + j * rehearsals_per_trial) and
  scores the *mean* dev accuracy and mean attack accuracy with `objective`.
  Measurements are cached in `path`.

  Returns:
    One row per candidate (status "CONFIRMED", trial_id as given), with
    metrics: score (of the means), dev_accuracy and attack_accuracy (means),
    dev_accuracies / attack_accuracies (every measurement, stream 0 first)
    as lists, and measurements.
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}.")
  done: Dict[str, Dict[str, Any]] = {}
  if os.path.isfile(path):
    with open(path) as f:
      done = json.load(f)
  rows = []
  for row in candidates:
    if row.choice is None or "dev_accuracy" not in row.metrics:
      raise ValueError(f"trial {row.trial_id} has no measurement to confirm.")
    choice = DefenseChoice(row.choice["name"], row.choice["settings"])
    measured = done.setdefault(row.trial_id, {})
    for stream in range(1, repeats + 1):
      if str(stream) in measured:
        continue
      metrics = evaluate_fn(dataclasses.replace(
          setup, rehearsal_stream=setup.rehearsal_stream
          + stream * setup.rehearsals_per_trial), choice)
      measured[str(stream)] = {"dev_accuracy": metrics.dev_accuracy,
                               "attack_accuracy": metrics.attack_accuracy,
                               "strongest_attack": metrics.strongest_attack}
      io_utils.atomic_write_json(path, done)
      keras.backend.clear_session()
    dev = [row.metrics["dev_accuracy"]] + [
        measured[str(k)]["dev_accuracy"] for k in range(1, repeats + 1)]
    attack = [row.metrics["attack_accuracy"]] + [
        measured[str(k)]["attack_accuracy"] for k in range(1, repeats + 1)]
    mean_dev, mean_attack = float(np.mean(dev)), float(np.mean(attack))
    rows.append(TrialRow(row.trial_id, "CONFIRMED", row.choice, {
        "score": objective.score(mean_dev, mean_attack),
        "dev_accuracy": mean_dev, "attack_accuracy": mean_attack,
        "measurements": float(len(dev))}, None, None))
    rows[-1].metrics["dev_accuracies"] = dev  # lists, for the record
    rows[-1].metrics["attack_accuracies"] = attack
  return rows


def top_rows(rows: Sequence[TrialRow], k: int) -> List[TrialRow]:
  """The k completed trials with the highest scores, best first."""
  done = [r for r in rows if r.status == "COMPLETED" and r.score is not None]
  return sorted(done, key=_rank)[:k]


def trials_markdown(rows: Sequence[TrialRow],
                    objective: objective_lib.TuningObjective,
                    presets: Sequence[TrialRow] = ()) -> str:
  """The trials table as Markdown (accuracies in percent); `presets` rows
  (the authors' settings, measured the same way) come first. Confirmed
  rows show means over their measurements."""
  lines = [f"Objective: {objective.describe()}.", "",
           "| trial | status | defense and settings | dev acc | strongest "
           "attack | score | seconds |", "|---|---|---|---|---|---|---|"]
  for r in list(presets) + list(rows):
    m = r.metrics
    attack = ""
    if "attack_accuracy" in m:
      names = [k for k in m if k.startswith("attack_")
               and k != "attack_accuracy" and isinstance(m[k], float)]
      attack = f"{100 * m['attack_accuracy']:.1f}"
      if names:
        name = max(names, key=lambda k: m[k])
        attack += f" ({name[len('attack_'):]})"
    dev = f"{100 * m['dev_accuracy']:.1f}" if "dev_accuracy" in m else ""
    score = f"{m['score']:.4f}" if "score" in m else ""
    seconds = f"{r.seconds:.0f}" if r.seconds is not None else ""
    status = r.status + (f": {r.error}" if r.error else "")
    lines.append(f"| {r.trial_id} | {status} | {_settings_text(r.choice)} | "
                 f"{dev} | {attack} | {score} | {seconds} |")
  return "\n".join(lines) + "\n"


def write_trials(rows: Sequence[TrialRow],
                 objective: objective_lib.TuningObjective,
                 output_dir: str, presets: Sequence[TrialRow] = (),
                 confirmed: Sequence[TrialRow] = ()) -> Dict[str, str]:
  """Writes trials.json and trials.md; returns their paths."""
  paths = {"json": os.path.join(output_dir, "trials.json"),
           "md": os.path.join(output_dir, "trials.md")}
  io_utils.atomic_write_json(paths["json"], {
      "objective": objective.to_json(),
      "trials": [dataclasses.asdict(r) for r in rows],
      "presets": [dataclasses.asdict(r) for r in presets],
      "confirmed": [dataclasses.asdict(r) for r in confirmed]})
  text = trials_markdown(rows, objective, presets)
  if confirmed:
    n = int(confirmed[0].metrics["measurements"])
    text += (f"\nConfirmation: mean of {n} measurements (the search's and "
             f"{n - 1} more, each on other rehearsals):\n\n" + "\n".join(
                 trials_markdown(confirmed, objective).splitlines()[2:]) +
             "\n")
  io_utils.atomic_write_bytes(paths["md"], text.encode())
  return paths
