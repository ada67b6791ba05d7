"""`wemem tune`: defense settings by KerasTuner (docs/method.md §8).

  wemem tune --flagfile=configs/location_base.cfg --data_dir=../shared/data \\
    --max_trials=20 --objective=constrained --attack_target=0.7 \\
    --output_dir=runs/location_tune
  wemem run --flagfile=configs/location_base.cfg \\
    --flagfile=runs/location_tune/best.cfg --output_dir=runs/location_tuned

Each trial prunes the victim with the trial's settings (dev accuracy) and
rehearses the adaptive attacks on data the victim's evaluation never sees
(by default the whole protocol at half scale on the shadows' side,
--rehearsal=scaled; see wemem_eval/tuning/tuner.py and
wemem_eval/tuning/objective.py).
Writes into --output_dir: manifest.json, the KerasTuner project (tuner/),
trials.json + trials.md (every trial, failed ones with their error), best.json and best.cfg (a flagfile for `wemem run` /
`wemem prune`); with --objective=pareto also frontier.json, frontier.md,
frontier.png and a flagfile per front point in frontier/
(wemem_eval/tuning/frontier.py). The same command resumes an interrupted search; --overwrite
starts afresh. Distributed: start one process with KERASTUNER_TUNER_ID=chief
and workers with KERASTUNER_TUNER_ID=tuner0, tuner1, ... (all with the same
KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT, flags and --output_dir on a
shared file system); the chief serves the oracle and writes the tables.
--executor=ray trains each trial's models (a rehearsal's victim, shadows and
reference models) and the memorization ensemble's chunks on Ray's workers,
with the same numbers (README "Running on a cluster"). --tensorboard_dir=TB
writes each trial's settings and metrics for TensorBoard's hparams plugin
(TB/trial_<id>/; wemem_eval/tuning/tuner.py).
"""

import os
from typing import Optional

from absl import flags

import wemem_tf
from attacks import registry
from wemem_cli import attack_cmd
from wemem_cli import common_flags as cf
from wemem_cli import defense_flags
from wemem_cli import executor_flags
from wemem_cli import flag_utils
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval.tuning import frontier as frontier_lib
from wemem_eval.tuning import objective as objective_lib
from wemem_eval.tuning import tuner as tuner_lib
from wemem_tf import io_utils

MAX_TRIALS = flags.DEFINE_integer("max_trials", 20, "Trials of the search.")
ORACLE = flags.DEFINE_enum("oracle", "bayesian", list(tuner_lib.ORACLES),
                           "KerasTuner oracle.")
OBJECTIVE = flags.DEFINE_enum(
    "objective", "constrained", [k.value for k in objective_lib.ObjectiveKind],
    "constrained: maximize dev accuracy subject to the strongest attack's "
    "balanced accuracy <= --attack_target; weighted: dev accuracy - "
    "--objective_weight x (attack accuracy - 0.5); pareto: the front of "
    "non-dominated (dev accuracy, attack accuracy) trials per defense and "
    "overall (frontier.json/.md/.png, a flagfile per point in frontier/; "
    "the oracle is steered by the weighted score).")
ATTACK_TARGET = flags.DEFINE_float(
    "attack_target", 0.7, "Highest acceptable balanced accuracy of the "
    "strongest rehearsed attack (constrained objective).")
OBJECTIVE_WEIGHT = flags.DEFINE_float(
    "objective_weight", 1.0, "Price of attack accuracy in dev accuracy "
    "(weighted objective).")
TUNE_METHODS = flags.DEFINE_list(
    "tune_methods", ["rsw", "rmr", "swmr"], "Defenses to choose among: WeMem "
    "methods (rsw, rmr, swmr, random) and/or existing defenses (ppb, advreg, "
    "dp, relaxloss, hamp; their strength is tuned).")
TUNE_ATTACKS = flags.DEFINE_string(
    "tune_attacks", ",".join(tuner_lib.DEFAULT_ATTACKS),
    "Attacks rehearsed in every trial ('all' or a comma list); the strongest "
    "counts.")
OVERWRITE = cf.OVERWRITE  # defined once, in common_flags
PRESETS = flags.DEFINE_boolean(
    "tune_presets", False, "Also measure the authors' preset settings of the "
    "tuned WeMem methods (when the dataset has presets) the same way as a "
    "trial, as reference rows of the trials table (cached in presets.json).")
CONFIRM_TOP_K = flags.DEFINE_integer(
    "confirm_top_k", 3, "After the search, re-measure this many best trials "
    "(and the presets, with --tune_presets) on other rehearsals and "
    "choose the best by the mean (0: keep the search's best as is). With "
    "--objective=pareto, any value > 0 re-measures every point on a front "
    "instead, and the fronts are drawn from the means.")
CONFIRM_REPEATS = flags.DEFINE_integer(
    "confirm_repeats", 2, "Further blocks of --rehearsals_per_trial "
    "rehearsals each confirmed candidate "
    "is measured on.")
REHEARSAL = flags.DEFINE_enum(
    "rehearsal", "scaled", list(tuner_lib.REHEARSALS), "Where trials "
    "rehearse the attacks (README 'Tuning defenses'): 'scaled' (the whole "
    "protocol again on the shadows' side at about half scale, windows "
    "scaled; the real protocol's ratios) or 'held_out' (a full-size "
    "held-out shadow plays the victim).")
REHEARSALS_PER_TRIAL = flags.DEFINE_integer(
    "rehearsals_per_trial", 3, "Rehearsals (independent splits of the "
    "shadows' side) a trial's attack accuracy is the mean of; one varies by "
    "several points on Location.")
REHEARSAL_INCLUSION = flags.DEFINE_string(
    "rehearsal_inclusion", "auto", "Share of the rehearsal's pool each "
    "LiRA/RMIA reference model trains on: 'auto' (0.5 for --rehearsal="
    "scaled; matched to the target's size for held_out) or a number in "
    "(0, 1).")
TUNE_RANGES = flags.DEFINE_multi_string(
    "tune_range", [], "Narrow or widen one range of the search space, as "
    "NAME=LOW:HIGH (inclusive), e.g. --tune_range=stride=1:2 "
    "--tune_range=width=5:30; NAME is one of "
    + ", ".join(tuner_lib.RANGE_NAMES) + " (window sizes in records per "
    "class and epoch).")
MAX_FAILED = flags.DEFINE_integer(
    "max_consecutive_failed_trials", 5, "Stop the search after this many "
    "failed trials in a row (a failed trial is recorded and skipped).")


def rehearsal_inclusion() -> Optional[float]:
  """--rehearsal_inclusion as `TuningSetup.reference_inclusion`."""
  return attack_cmd.parse_inclusion(REHEARSAL_INCLUSION.value,
                                    "rehearsal_inclusion", keyword="auto")


def setup_from_flags(dataset, cache_dir: str,
                     executor=None) -> tuner_lib.TuningSetup:
  """The `TuningSetup` the flags describe (models cached under
  `cache_dir`, trained by `executor`)."""
  seed = cf.SEED.value
  arch = flag_utils.architecture(dataset)
  recipe = model_training.ModelRecipe(
      architecture=arch, pruning_config=flag_utils.pruning_config(),
      train_config=flag_utils.train_config(), cohort=cf.COHORTS.value)
  return tuner_lib.TuningSetup(
      dataset, recipe, seed=seed,
      attacks=tuple(registry.parse_attack_names(TUNE_ATTACKS.value)),
      num_shadows=cf.NUM_SHADOWS.value,
      num_reference_models=attack_cmd.NUM_REFERENCE_MODELS.value,
      rehearsal_kind=REHEARSAL.value,
      rehearsals_per_trial=REHEARSALS_PER_TRIAL.value,
      reference_inclusion=rehearsal_inclusion(),
      options=attack_cmd.attack_options(),
      scores_fn=lambda: defense_flags.rehearsal_scores_for(
          dataset, seed, arch, os.path.join(cache_dir, "memscores"),
          defense_flags.MEMSCORES.value, executor),
      store=model_store.ModelStore(os.path.join(cache_dir, "models"),
                                   kinds=("pretrained",)),
      executor=executor, split=flag_utils.split_config(),
      baseline_settings=defense_flags.BASELINE_SETTINGS.value)


def _write_flagfile(path: str, header, row, dataset_name: str) -> None:
  """A flagfile for `wemem run` with the row's defense settings."""
  lines = list(header) + [
      f"--dataset={dataset_name}",
      f"--baseline_settings={defense_flags.BASELINE_SETTINGS.value}",
  ] + defense_flags.flag_lines(row.choice["name"], row.choice["settings"])
  io_utils.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _measured_text(row) -> str:
  return (f"dev accuracy {100 * row.metrics['dev_accuracy']:.1f}%, "
          f"strongest rehearsed attack "
          f"{100 * row.metrics['attack_accuracy']:.1f}%")


def write_best(rows, objective, output_dir: str, dataset_name: str) -> str:
  """best.json and best.cfg for the best completed trial; returns a line."""
  best = tuner_lib.best_row(rows)
  if best is None:
    return "no trial completed: nothing to write."
  name, settings = best.choice["name"], best.choice["settings"]
  feasible = objective.feasible(best.metrics["attack_accuracy"])
  what = ("confirmed candidates (mean over rehearsals)"
          if best.status == "CONFIRMED" else "trials")
  header = [f"# wemem tune: best of {len(rows)} {what} ({best.trial_id}, "
            f"score {best.score:.4f}; {objective.describe()}).",
            f"# {_measured_text(best)}.",
            "# Use after the base flagfile: wemem run --flagfile=<base.cfg> "
            "--flagfile=best.cfg"]
  if feasible is False:
    who = "confirmed candidate" if best.status == "CONFIRMED" else "trial"
    header.append(f"# WARNING: no {who} met the attack target "
                  f"{objective.attack_target:g}; this is the closest.")
  _write_flagfile(os.path.join(output_dir, "best.cfg"), header, best,
                  dataset_name)
  io_utils.atomic_write_json(os.path.join(output_dir, "best.json"), {
      "trial_id": best.trial_id, "status": best.status,
      "defense": best.choice,
      "metrics": best.metrics, "feasible": feasible,
      "objective": objective.to_json()})
  return (f"best: trial {best.trial_id}: {name} {settings} -> dev accuracy "
          f"{100 * best.metrics['dev_accuracy']:.1f}%, strongest attack "
          f"{100 * best.metrics['attack_accuracy']:.1f}%"
          + (" (target not met)" if feasible is False else ""))


def write_frontier(rows, output_dir: str, dataset_name: str,
                   source: str) -> str:
  """frontier.json/.md/.png and a flagfile per front point
  (frontier/<trial>.cfg); returns a line."""
  flagfiles = {}
  for row in frontier_lib.on_any_front(rows):
    relative = os.path.join("frontier",
                            row.trial_id.replace(":", "_") + ".cfg")
    path = os.path.join(output_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _write_flagfile(path, [
        f"# wemem tune --objective=pareto: front point {row.trial_id} "
        f"({row.status}): {_measured_text(row)}.",
        "# Use after the base flagfile: wemem run --flagfile=<base.cfg> "
        f"--flagfile={relative}"], row, dataset_name)
    flagfiles[row.trial_id] = relative
  paths = frontier_lib.write(rows, output_dir, source, flagfiles)
  overall = len(paths["points"].get(frontier_lib.ALL, []))
  return (f"frontier: {overall} of {len(rows)} {source} on the overall "
          f"front; wrote {paths['md']}, {paths['json']}, {paths['png']}")


def main(argv) -> int:
  del argv  # extra arguments are refused by the dispatcher
  objective = objective_lib.TuningObjective(
      OBJECTIVE.value, ATTACK_TARGET.value, OBJECTIVE_WEIGHT.value)
  dataset = flag_utils.load_dataset()
  space = tuner_lib.SearchSpace.for_dataset(
      dataset.name, methods=tuple(TUNE_METHODS.value),
      records_per_class=(flag_utils.victim_splits(dataset, cf.SEED.value)
                         .victim.train.size / dataset.num_classes),
      **tuner_lib.parse_ranges(TUNE_RANGES.value))
  output_dir = flag_utils.output_dir()
  cache_dir = cf.CACHE_DIR.value or output_dir
  wemem_tf.run_manifest.write_manifest(
      output_dir, cf.SEED.value, flag_utils.flag_values(), dataset.fingerprint,
      flag_utils.command_line(), name="tune_manifest.json")
  with executor_flags.executor_from_flags() as executor:
    return _search(objective, dataset, space, output_dir,
                   setup_from_flags(dataset, cache_dir, executor))


def _search(objective, dataset, space, output_dir: str,
            setup: tuner_lib.TuningSetup,
            evaluate_fn=tuner_lib.evaluate_choice) -> int:
  """Runs (or resumes) the search, confirms, writes the tables
  (`evaluate_fn` measures a choice; tests pass known answers)."""
  tuner = tuner_lib.DefenseTuner(
      tuner_lib.make_oracle(ORACLE.value, MAX_TRIALS.value, cf.SEED.value,
                            MAX_FAILED.value),
      setup, objective, space, directory=output_dir,
      project_name="tuner", overwrite=OVERWRITE.value,
      evaluate_fn=evaluate_fn, tensorboard_dir=cf.TENSORBOARD_DIR.value)
  tuner.search()
  if tuner._is_worker():  # pylint: disable=protected-access
    print("worker done; the chief writes the trials table.")
    return 0
  rows = tuner_lib.trial_rows(tuner)
  presets = []
  if PRESETS.value:
    presets = tuner_lib.evaluate_presets(
        setup, space.methods, objective,
        os.path.join(output_dir, "presets.json"), evaluate_fn)
  pareto = objective.kind is objective_lib.ObjectiveKind.PARETO
  confirmed = []
  if CONFIRM_TOP_K.value > 0 and CONFIRM_REPEATS.value > 0:
    candidates = (frontier_lib.on_any_front(list(rows) + list(presets))
                  if pareto
                  else tuner_lib.top_rows(rows, CONFIRM_TOP_K.value)
                  + list(presets))
    confirmed = tuner_lib.confirm(
        setup, candidates, CONFIRM_REPEATS.value, objective,
        os.path.join(output_dir, "confirm.json"), evaluate_fn)
  paths = tuner_lib.write_trials(rows, objective, output_dir, presets,
                                 confirmed)
  with open(paths["md"]) as f:
    print(f.read())
  print(write_best(confirmed or rows, objective, output_dir, dataset.name))
  if pareto:
    print(write_frontier(
        confirmed or list(rows) + list(presets), output_dir, dataset.name,
        "confirmed front points (mean over rehearsals)" if confirmed
        else "trials"))
  print(f"wrote {paths['md']}, {paths['json']}, "
        f"{os.path.join(output_dir, 'best.cfg')}")
  return 0
