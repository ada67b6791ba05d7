"""`wemem run`: the whole experiment, resumable; `wemem report` rebuilds it.

  wemem run                                   # embedded digits, defaults
  wemem run --flagfile=configs/location_swmr.cfg --output_dir=runs/loc

Runs every configuration (--baselines, then iterative pruning with each of
--defenses) under the adaptive attacks, caching models and results in
--output_dir; the same command after an interruption skips finished steps.
Writes report.json, report.md and plots/ there.
"""

import os

from absl import flags

import wemem_tf  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
from wemem_cli import attack_cmd
from wemem_cli import common_flags as cf
from wemem_cli import defense_flags
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
BASELINES = flags.DEFINE_list(
    "baselines", list(run_lib.BASELINES),
    "Baselines to evaluate too: unpruned, one_shot (empty: none).")


def config_from_flags() -> run_lib.RunConfig:
  defenses = tuple(DEFENSES.value)
  settings = {d: defense_flags.defense_settings(d) for d in defenses}
  return run_lib.RunConfig(
      dataset=cf.DATASET.value, data_dir=cf.DATA_DIR.value,
      label_column=cf.LABEL_COLUMN.value, seed=cf.SEED.value,
      architecture=(flag_utils.architecture(cf.DATASET.value)
                    if cf.ARCHITECTURE.value else None),
      pruning=flag_utils.pruning_config(), training=flag_utils.train_config(),
      defenses=defenses, defense_settings=settings,
      baselines=tuple(b for b in BASELINES.value if b),
      attacks=tuple(attack_cmd.ATTACKS.value.split(",")),
      num_shadows=cf.NUM_SHADOWS.value,
      num_reference_models=attack_cmd.NUM_REFERENCE_MODELS.value,
      reference_inclusion=attack_cmd.reference_inclusion(),
      adaptive=attack_cmd.ADAPTIVE.value,
      memscore_models=defense_flags.MEMSCORE_MODELS.value,
      memscore_epochs=defense_flags.MEMSCORE_EPOCHS.value,
      attack_options=attack_cmd.attack_options())


def main(argv) -> None:
  del argv  # extra arguments are refused by the dispatcher
  run_lib.run(config_from_flags(), flag_utils.output_dir(),
               command=flag_utils.command_line(),
               cache_dir=cf.CACHE_DIR.value)


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
