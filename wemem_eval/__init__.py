"""Experiments: pruned victims and the attacker's models under the attacks.

Trains the victim, shadow and reference models from a recipe
(`model_training`, cached by `model_store`), runs the `attacks` on them
(`experiment`: once, or after every pruning iteration with `iterations`),
runs whole resumable evaluations over defenses (`run`, `report`,
`aggregate`) and tunes defense settings (`tuning`). Typical use:

  result = wemem_eval.run_experiment(dataset, wemem_eval.ExperimentConfig(
      recipe=wemem_eval.ModelRecipe(defense="rsw"), attacks=("conf", "rmia")))
  wemem_eval.write_artifacts(result, output_dir)

Layering: `wemem_cli` → `wemem_eval` → {`attacks`, `wemem_tf`}; neither
`attacks` nor `wemem_tf` imports `wemem_eval`. Importing it imports
`wemem_tf` first (Keras 2 behind tf.keras).
"""

import wemem_tf  # pylint: disable=unused-import  (must precede TensorFlow)

# pylint: disable=g-import-not-at-top,g-bad-import-order
from wemem_eval.experiment import ExperimentConfig
from wemem_eval.experiment import ExperimentResult
from wemem_eval.experiment import run_experiment
from wemem_eval.experiment import write_artifacts
from wemem_eval.iterations import run_per_iteration
from wemem_eval.model_training import ModelRecipe
from wemem_eval.model_training import TrainedModel
