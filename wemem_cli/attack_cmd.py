"""`wemem attack`: train a victim and the attacker's models, run attacks.

  wemem attack --dataset=location --data_dir=DIR --target_sparsity=0.6 \
      --prune_iterations=5 --num_shadows=5 --attacks=all --adaptive=true \
      --target=pruned --output_dir=OUT --seed=0

writes OUT/attacks.json (one row per attack: attack, balanced_accuracy, auc,
tpr_at_0.1pct_fpr, tpr_at_1pct_fpr, advantage, seconds, ...; plus
victim_test_accuracy), OUT/attacks_roc.png (log-log ROC curves) and
OUT/attack_scores.npz (raw scores).
"""

import os

from absl import flags
from absl import logging

import wemem_tf  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
from attacks import base
from attacks import experiment
from attacks import registry
from attacks import shadows
from wemem_cli import common_flags
from wemem_tf.data import datasets
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.training import loop as loop_lib

ATTACKS = flags.DEFINE_string(
    "attacks", "all", "Attacks to run: 'all' or a comma list of "
    f"{','.join(registry.attack_names())}.")
ADAPTIVE = flags.DEFINE_boolean(
    "adaptive", True, "Train the attacker's shadow/reference models with the "
    "victim's defense (adaptive attack); false: without it.")
TARGET = flags.DEFINE_enum(
    "target", "pruned", list(shadows.TARGETS), "Attack the iteratively "
    "pruned model or the pre-trained dense one (shadows then stay unpruned).")
NUM_REFERENCE_MODELS = flags.DEFINE_integer(
    "num_reference_models", 0, "Random-halves reference models for LiRA and "
    "RMIA (0: max(4, num_shadows rounded up to even)).")
ATTACK_MAX_EPOCHS = flags.DEFINE_integer(
    "attack_max_epochs", 50, "Epochs at most for the NN and SAMIA attack "
    "models.")
ATTACK_PATIENCE = flags.DEFINE_integer(
    "attack_patience", 5, "Early-stopping patience of the attack models.")


def _defense():
  """The victim's defense: the value of a --defense flag when some module
  (prune_cmd today, common_flags ideally) defines one; else None."""
  if "defense" not in flags.FLAGS:
    return None
  value = flags.FLAGS["defense"].value
  return None if value in (None, "", "none") else value


def config_from_flags() -> experiment.ExperimentConfig:
  """The experiment described by the command line."""
  dataset = common_flags.DATASET.value
  architecture = common_flags.ARCHITECTURE.value or \
      zoo.DEFAULT_ARCHITECTURE.get(dataset, "column_fc")
  recipe = shadows.ModelRecipe(
      architecture=architecture,
      pruning_config=iterative.PruningConfig(
          target_sparsity=common_flags.TARGET_SPARSITY.value,
          num_iterations=common_flags.PRUNE_ITERATIONS.value,
          epochs_per_iteration=common_flags.EPOCHS_PER_ITERATION.value,
          patience=common_flags.PATIENCE.value,
          restore_best_weights=common_flags.RESTORE_BEST.value),
      train_config=loop_lib.TrainConfig(
          learning_rate=common_flags.LEARNING_RATE.value,
          weight_decay=common_flags.WEIGHT_DECAY.value,
          batch_size=common_flags.BATCH_SIZE.value,
          max_epochs=common_flags.PRETRAIN_EPOCHS.value,
          patience=common_flags.PATIENCE.value),
      defense=_defense(),
      target=TARGET.value)
  return experiment.ExperimentConfig(
      recipe=recipe,
      attacks=tuple(registry.parse_attack_names(ATTACKS.value)),
      num_shadows=common_flags.NUM_SHADOWS.value,
      num_reference_models=NUM_REFERENCE_MODELS.value,
      adaptive=ADAPTIVE.value,
      seed=common_flags.SEED.value,
      options=base.AttackOptions(max_epochs=ATTACK_MAX_EPOCHS.value,
                                 patience=ATTACK_PATIENCE.value))


def main(argv) -> int:
  """Runs the experiment of the flags; returns 0."""
  if len(argv) > 1:
    logging.warning("ignoring extra arguments %s", argv[1:])
  config = config_from_flags()
  dataset = datasets.load_dataset(common_flags.DATASET.value,
                                  common_flags.DATA_DIR.value)
  output_dir = common_flags.OUTPUT_DIR.value or os.path.join(
      "runs", dataset.name, f"attacks_{config.recipe.target}")
  result = experiment.run_experiment(dataset, config)
  paths = experiment.write_artifacts(result, output_dir)
  print(f"victim test accuracy {100 * result.victim.test_accuracy:.2f}% "
        f"({config.recipe.target}); total {result.timing['total']:.1f} s")
  print(result.suite.table())
  print(f"wrote {paths['json']}, {paths['roc']}, {paths['scores']}")
  return 0


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(main)
