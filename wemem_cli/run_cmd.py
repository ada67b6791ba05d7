"""`wemem run`: the whole experiment, resumable; `wemem report` rebuilds it.

  wemem run                                   # embedded digits, defaults
  wemem run --flagfile=configs/location_swmr.cfg --output_dir=runs/loc

Runs every configuration (--baselines, then iterative pruning with each of
--defenses) under the adaptive attacks, caching models and results in
--output_dir; the same command after an interruption skips finished steps.
Writes report.json, report.md and plots/ there. --seeds=0,1,2 runs each
seed into --output_dir/seed_<S> and aggregates them; --executor=ray trains
each configuration's models on Ray (same numbers). --tensorboard_dir=TB
writes TensorBoard summaries into TB/<label>/ per configuration
(TB/seed_<S>/<label>/ with --seeds; `wemem_eval.run.write_tensorboard`).
"""

import os

from absl import flags

import wemem_tf  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
from wemem_cli import attack_cmd
from wemem_cli import common_flags as cf
from wemem_cli import defense_flags
from wemem_cli import executor_flags
from wemem_cli import flag_utils
from wemem_eval import aggregate
from wemem_eval import report as report_lib
from wemem_eval import run as run_lib

DEFENSES = flags.DEFINE_list(
    "defenses", ["none", "rsw", "rmr", "swmr"],
    "Defenses to evaluate with iterative pruning (comma list of "
    f"{','.join(defense_flags.DEFENSE_NAMES)}); none = base.")
RUNS = flags.DEFINE_list(
    "runs", [], "wemem report only: run directories of different seeds to "
    "aggregate (mean ± std) into --output_dir/aggregate.{json,md}.")
SEEDS = flags.DEFINE_list(
    "seeds", [], "Run these seeds (comma list, e.g. 0,1,2) instead of "
    "--seed: each into --output_dir/seed_<S>, then their mean ± std into "
    "--output_dir/aggregate.{json,md} (as `wemem report --runs`).")
BASELINES = flags.DEFINE_list(
    "baselines", list(run_lib.BASELINES),
    "Baselines to evaluate too: unpruned, one_shot (empty: none).")


def config_from_flags(seed=None) -> run_lib.RunConfig:
  """The run the flags describe (with `seed` instead of --seed if given)."""
  defenses = tuple(DEFENSES.value)
  settings = {d: defense_flags.defense_settings(d) for d in defenses}
  return run_lib.RunConfig(
      dataset=cf.DATASET.value, data_dir=cf.DATA_DIR.value,
      label_column=cf.LABEL_COLUMN.value,
      seed=cf.SEED.value if seed is None else seed,
      architecture=(flag_utils.architecture(cf.DATASET.value)
                    if cf.ARCHITECTURE.value else None),
      pruning=flag_utils.pruning_config(), training=flag_utils.train_config(),
      defenses=defenses, defense_settings=settings,
      baseline_settings=defense_flags.BASELINE_SETTINGS.value,
      baselines=tuple(b for b in BASELINES.value if b),
      attacks=tuple(attack_cmd.ATTACKS.value.split(",")),
      num_shadows=cf.NUM_SHADOWS.value,
      num_reference_models=attack_cmd.NUM_REFERENCE_MODELS.value,
      reference_inclusion=attack_cmd.reference_inclusion(),
      adaptive=attack_cmd.ADAPTIVE.value,
      memscore_models=defense_flags.MEMSCORE_MODELS.value,
      memscore_epochs=defense_flags.MEMSCORE_EPOCHS.value,
      memscore_design=defense_flags.MEMSCORE_DESIGN.value,
      attack_options=attack_cmd.attack_options(),
      split=flag_utils.split_config(),
      num_targets=attack_cmd.NUM_TARGETS.value,
      cohorts=cf.COHORTS.value)


def _seeds():
  """--seeds as distinct non-negative integers (empty: none given)."""
  try:
    seeds = [int(s) for s in SEEDS.value]
  except ValueError:
    seeds = [-1]
  if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
    raise ValueError("--seeds must be distinct non-negative integers, e.g. "
                     f"--seeds=0,1,2; got {','.join(SEEDS.value)}.")
  return seeds


def main(argv) -> None:
  del argv  # extra arguments are refused by the dispatcher
  seeds = _seeds()
  if seeds and cf.CACHE_DIR.value:
    raise ValueError("--cache_dir shares one seed's models and scores; it "
                     "cannot be combined with --seeds.")
  configs = [config_from_flags(s) for s in seeds] or [config_from_flags()]
  out = flag_utils.output_dir()
  with executor_flags.executor_from_flags() as executor:
    run_dirs = []
    for config in configs:
      run_dir = (os.path.join(out, f"seed_{config.seed}") if seeds else out)
      tensorboard_dir = cf.TENSORBOARD_DIR.value
      if tensorboard_dir and seeds:
        tensorboard_dir = os.path.join(tensorboard_dir, f"seed_{config.seed}")
      run_lib.run(config, run_dir, command=flag_utils.command_line(),
                  cache_dir=None if seeds else cf.CACHE_DIR.value,
                  executor=executor, overwrite=cf.OVERWRITE.value,
                  tensorboard_dir=tensorboard_dir)
      run_dirs.append(run_dir)
  if len(run_dirs) > 1:
    paths = aggregate.write_aggregate(run_dirs, out)
    print(f"wrote {paths['md']} and {paths['json']}")


def report_main(argv) -> None:
  """`wemem report --output_dir=RUN`: rebuilds the report of a run.

  With --runs=RUN1,RUN2,...: writes their mean ± std into --output_dir.
  """
  del argv  # extra arguments are refused by the dispatcher
  run_dir = flag_utils.output_dir()
  if RUNS.value:
    paths = aggregate.write_aggregate(RUNS.value, run_dir)
    print(f"wrote {paths['md']} and {paths['json']}")
    return
  experiments = os.path.join(run_dir, "experiments")
  if not os.path.isdir(experiments):
    raise ValueError(f"{run_dir!r} holds no finished experiments; run "
                     "`wemem run --output_dir=...` first.")
  labels = sorted(os.listdir(experiments),
                  key=lambda l: (l not in run_lib.BASELINES, l != "base", l))
  report_lib.write_report(run_dir, labels)
  print(f"wrote {os.path.join(run_dir, 'report.md')}")
