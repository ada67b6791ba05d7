"""`wemem attack`: train a victim and the attacker's models, run attacks.

  wemem attack --dataset=location --data_dir=DIR --target_sparsity=0.6 \
      --prune_iterations=5 --num_shadows=5 --attacks=all --adaptive=true \
      --target=pruned --output_dir=OUT --seed=0

writes OUT/attacks.json (one row per attack: attack, balanced_accuracy, auc,
tpr_at_0.1pct_fpr, tpr_at_1pct_fpr, advantage, seconds, intervals,
not_estimable, ... as README "Output files" lists; plus
victim_test_accuracy), OUT/attacks_roc.png (log-log ROC curves) and
OUT/attack_scores.npz (raw scores).

With --per_iteration the attacks also run on the models after every pruning
iteration (victim, shadows and reference models all at iteration k; see
`wemem_eval.iterations`): OUT/iterations.json, OUT/iteration_scores.npz
(each iteration's raw scores), OUT/plots/attack_per_iteration.png and
OUT/plots/privacy_report.png (tensorflow-privacy's `plot_by_epochs` over
the iterations: epoch = pruning iteration; `attacks.privacy_report`)
besides the files above, which then describe the last iteration (the same
numbers as without the flag).
--model_store_dir caches trained models (pre-training is shared by every
defense and by --per_iteration). --tensorboard_dir: the victim's iterations
and the attack metrics as `wemem run` writes them.
"""

import os
from typing import Optional

from absl import flags
from absl import logging

import wemem_tf
from attacks import base
from attacks import plotting
from attacks import privacy_report
from attacks import registry
from wemem_cli import common_flags
from wemem_cli import defense_flags
from wemem_cli import executor_flags
from wemem_cli import flag_utils
from wemem_eval import experiment
from wemem_eval import iterations
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval import run as run_lib

ATTACKS = flags.DEFINE_string(
    "attacks", "all", "Attacks to run: 'all' or a comma list of "
    f"{','.join(registry.attack_names())}.")
ADAPTIVE = flags.DEFINE_boolean(
    "adaptive", True, "Train the attacker's shadow/reference models with the "
    "victim's defense (adaptive attack); false: without it.")
TARGET = flags.DEFINE_enum(
    "target", "pruned", list(model_training.TARGETS), "Attack the iteratively "
    "pruned model or the pre-trained dense one (shadows then stay unpruned).")
NUM_TARGETS = flags.DEFINE_integer(
    "num_targets", 1, "Victims attacked and pooled (a pooled audit, "
    "docs/method.md §7): the protocol's victim and num_targets - 1 more "
    "trained by the same pipeline on other draws of the victim pool; each "
    "attack is fitted once and its scores on all of them are pooled, so "
    "TPRs at low FPRs become estimable. 1: the victim alone.",
    lower_bound=1)
NUM_REFERENCE_MODELS = flags.DEFINE_integer(
    "num_reference_models", 0, "Random-halves reference models for LiRA and "
    "RMIA (0: max(4, num_shadows rounded up to even)).")
REFERENCE_INCLUSION = flags.DEFINE_string(
    "reference_inclusion", "0.5", "Share of the pool each LiRA/RMIA "
    "reference model trains on: a number in (0, 1) (0.5: random halves, the "
    "attacks' protocol) or 'matched' (as many records as the victim trains "
    "on; --num_reference_models 0 then picks the count).")
ATTACK_MAX_EPOCHS = flags.DEFINE_integer(
    "attack_max_epochs", 50, "Epochs at most for the NN and SAMIA attack "
    "models.")
ATTACK_PATIENCE = flags.DEFINE_integer(
    "attack_patience", 5, "Early-stopping patience of the attack models.")
PER_ITERATION = flags.DEFINE_boolean(
    "per_iteration", False, "Also attack the models after every pruning "
    "iteration (victim, shadows, reference models at the same iteration); "
    "writes iterations.json, iteration_scores.npz, "
    "plots/attack_per_iteration.png and plots/privacy_report.png "
    "(tensorflow-privacy's plot_by_epochs, epoch = pruning iteration).")
MODEL_STORE_DIR = flags.DEFINE_string(
    "model_store_dir", None, "Cache trained models here "
    "(wemem_eval.model_store; e.g. RUN/models of `wemem run`) and reuse what "
    "is already there; default: no cache.")


def parse_inclusion(text: str, flag: str,
                    keyword: str = "matched") -> Optional[float]:
  """`keyword` -> None; a number in (0, 1) -> itself; else a clear error
  that names `flag`."""
  text = text.strip()
  if text == keyword:
    return None
  try:
    value = float(text)
  except ValueError:
    value = -1.0
  if not 0.0 < value < 1.0:
    raise ValueError(f"--{flag} must be '{keyword}' or a number in (0, 1), "
                     f"got {text!r}.")
  return value


def reference_inclusion() -> Optional[float]:
  return parse_inclusion(REFERENCE_INCLUSION.value, "reference_inclusion")


def attack_options() -> base.AttackOptions:
  """Attack-model settings from the flags."""
  return base.AttackOptions(max_epochs=ATTACK_MAX_EPOCHS.value,
                            patience=ATTACK_PATIENCE.value)


def config_from_flags(defense=None, architecture=None, attacker_defense=None
                      ) -> experiment.ExperimentConfig:
  """The experiment described by the command line.

  Args:
    defense: the victim's defense (see `defense_flags.defense_from_flags`);
      the attacker's models get it too when --adaptive.
    attacker_defense: the attacker's own copy of it when it differs
      (`defense_flags.attacker_defense_from_flags`).
    architecture: the resolved --architecture (`flag_utils.architecture`;
      default: resolved here from the flags).
  """
  if architecture is None:
    architecture = flag_utils.architecture(common_flags.DATASET.value)
  recipe = model_training.ModelRecipe(
      architecture=architecture,
      pruning_config=flag_utils.pruning_config(),
      train_config=flag_utils.train_config(),
      defense=defense,
      attacker_defense=attacker_defense if ADAPTIVE.value else None,
      target=TARGET.value, cohort=common_flags.COHORTS.value)
  return experiment.ExperimentConfig(
      recipe=recipe,
      attacks=tuple(registry.parse_attack_names(ATTACKS.value)),
      num_shadows=common_flags.NUM_SHADOWS.value,
      num_reference_models=NUM_REFERENCE_MODELS.value,
      reference_inclusion=reference_inclusion(),
      adaptive=ADAPTIVE.value,
      seed=common_flags.SEED.value,
      options=attack_options(),
      split=flag_utils.split_config(),
      num_targets=NUM_TARGETS.value,
      label=variant_label())


def variant_label() -> str:
  """The configuration's label (`wemem run`'s names): "unpruned" for
  --target=unpruned, else "base" for --defense=none, else the defense."""
  return privacy_report.variant_label(TARGET.value,
                                      defense_flags.DEFENSE.value)


def validate_flags() -> None:
  """Fails fast on a bad attack list or reference design."""
  registry.parse_attack_names(ATTACKS.value)
  reference_inclusion()


def main(argv) -> int:
  """Runs the experiment of the flags; returns 0."""
  del argv  # extra arguments are refused by the dispatcher
  validate_flags()
  dataset = flag_utils.load_dataset()
  architecture = flag_utils.architecture(dataset)  # fails before writing
  seed = common_flags.SEED.value
  output_dir = common_flags.OUTPUT_DIR.value or os.path.join(
      "runs", dataset.name, f"attacks_{TARGET.value}")
  with flag_utils.transaction(dataset, output_dir, seed,
                              "attack_manifest.json") as stage:
    defense = defense_flags.defense_from_flags(dataset, seed, architecture,
                                               output_dir)
    attacker_defense = defense_flags.attacker_defense_from_flags(
        defense, dataset, seed, architecture, output_dir)
    config = config_from_flags(defense, architecture, attacker_defense)
    store = (model_store.ModelStore(MODEL_STORE_DIR.value)
             if MODEL_STORE_DIR.value else None)
    with executor_flags.executor_from_flags() as executor:
      if PER_ITERATION.value:
        result = _run_per_iteration(dataset, config, store, stage,
                                    output_dir, executor)
      else:
        result = experiment.run_experiment(dataset, config, store,
                                           executor=executor)
        if common_flags.TENSORBOARD_DIR.value:
          run_lib.write_experiment_summaries(
              common_flags.TENSORBOARD_DIR.value, result)
    paths = flag_utils.published(
        experiment.write_artifacts(result, stage), stage, output_dir)
  logging.info("wrote %s", paths)
  print(f"victim test accuracy {100 * result.victim.test_accuracy:.2f}% "
        f"({config.recipe.target}); total {result.timing['total']:.1f} s")
  print(result.suite.table())
  print(f"wrote {paths['json']}, {paths['roc']}, {paths['scores']}")
  return 0


def _run_per_iteration(dataset, config: experiment.ExperimentConfig,
                       store, stage: str, output_dir: str,
                       executor=None) -> experiment.ExperimentResult:
  """Attacks after every iteration; writes iterations.json,
  iteration_scores.npz and the plots into `stage` (published to
  `output_dir`).

  Returns:
    The last iteration as an `ExperimentResult`.
  """
  if config.recipe.target != "pruned":
    raise ValueError("--per_iteration needs --target=pruned.")
  result = iterations.run_per_iteration(dataset, config, store, executor)
  doc = result.to_json()
  if common_flags.TENSORBOARD_DIR.value:
    run_lib.write_experiment_summaries(common_flags.TENSORBOARD_DIR.value,
                                       result.final_experiment(),
                                       doc["iterations"])
  json_path = iterations.write_iterations_json(
      result, os.path.join(stage, "iterations.json"))
  scores_path = iterations.write_iteration_scores(
      result, os.path.join(stage, privacy_report.ITERATION_SCORES))
  label = config.variant_label()
  plot_path = os.path.join(stage, "plots", "attack_per_iteration.png")
  plotting.plot_attack_per_iteration(
      {label: doc}, plot_path,
      title=f"{dataset.name}, {label}: best adaptive attack per iteration")
  report_path = os.path.join(stage, "plots", "privacy_report.png")
  privacy_report.plot_by_epochs(result.attack_results(), report_path)
  print("iteration  sparsity  test acc  best attack (balanced accuracy): "
        "attacker-side; victim-side max")
  for it in doc["iterations"]:
    best, side = it["best_attack"], it.get("best_attack_attacker_side") or {}
    chosen = (f"{side['attack']} ({100 * side['balanced_accuracy']:.2f})"
              if side.get("attack") else "none")
    print(f"{it['iteration']:>9}  {it['target_sparsity']:8.2f}  "
          f"{100 * it['victim_test_accuracy']:8.2f}  {chosen}; "
          f"{best['attack']} ({100 * best['balanced_accuracy']:.2f})")
  shown = flag_utils.published(
      {"json": json_path, "scores": scores_path, "plot": plot_path,
       "privacy_report": report_path}, stage, output_dir)
  print(f"wrote {shown['json']}, {shown['scores']}, {shown['plot']}, "
        f"{shown['privacy_report']}")
  return result.final_experiment()


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(main)
