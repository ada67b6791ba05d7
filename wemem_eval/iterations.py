"""Attacks on the models as they are after each pruning iteration.

`run_experiment` attacks only the final pruned models. `run_per_iteration`
runs the same experiment loop (`experiment.run_stages`) with the models
kept after every pruning iteration
(`model_training.train_model_iterations`): the chosen attacks run once per
iteration k on the models as they are after iteration k: victim, shadows
and reference models all at iteration k. The last iteration's models are
the final pruned models of `run_experiment` (same seeds, same training), so
its numbers equal `run_experiment`'s.

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
       # the report.json row of each attack (`report.METRICS` and
       # `report.OPTIONAL_METRICS`, built by the report's row rule: a TPR
       # below the FPR resolution is null with its reason under
       # "not_estimable", no calibration data gives a null
       # "calibration_balanced_accuracy")
       "attacks": {attack: {"balanced_accuracy", "auc", "tpr_at_0.1pct_fpr",
                            "tpr_at_1pct_fpr", "advantage", "seconds",
                            "calibration_balanced_accuracy",
                            "tpr_at_zero_fpr", "num_members",
                            "num_non_members", "fpr_resolution",
                            "not_estimable", "intervals", "confidence",
                            "bootstrap_resamples"}},
       # victim-side max (`report.victim_side_best`): the maximum over
       # attacks of the victim balanced accuracy; chosen on the victim's
       # labels, so biased upward (the optimistic worst case)
       "best_attack": {"attack": str, "kind": report.VICTIM_SIDE,
                       "balanced_accuracy": float, "auc": float,
                       "calibration_balanced_accuracy": float | null,
                       "intervals": {"balanced_accuracy": [lo, hi],
                                     "auc": [lo, hi]} | null},
       # attacker-side (`report.attacker_side_best`, as in report.json): the
       # attack of highest calibration_balanced_accuracy on the attacker's
       # own shadow / reference models at this iteration, reported on the
       # victim; all null with a "reason" when no attack has one
       "best_attack_attacker_side": {same keys as "best_attack", "kind":
                                     report.ATTACKER_SIDE},
       # tensorflow-privacy's PrivacyReportMetadata of this iteration's
       # AttackResults (`attacks.privacy_report`): epoch_num = iteration
       "privacy_report_metadata": {"accuracy_train", "accuracy_test",
                                   "loss_train", "loss_test",
                                   "model_variant_label", "epoch_num"},
       "seconds": float (querying and attacks at this iteration)}],
   "settings": {"architecture", "pruning", "training", "attack_options"},
   "timing_seconds": {"victim_training", "shadow_training",
                      "reference_training", "attacks", "total"}}
All accuracies and rates are fractions in [0, 1]; times are seconds.

iteration_scores.npz (`write_iteration_scores`) holds every iteration's raw
victim scores, as attack_scores.npz does for the final models, under keys
prefixed "it<k>_" (`attacks.privacy_report.score_arrays`): with
iterations.json, what `attacks.privacy_report.load_iteration_results`
rebuilds tensorflow-privacy `AttackResults` from (one per iteration,
epoch_num = k) for its `plot_by_epochs`.

With a `ModelStore`, pre-trained models are shared with every other
experiment (same keys), the final pruned model is stored under the usual
"pruned" key and the models after iterations 0..n-2 under kinds
"pruned-it<k>" with the same key (`model_training.iteration_kind`), so a
repeated call trains nothing.
"""

import dataclasses
from typing import Any, Dict, List, Optional

from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

from attacks import privacy_report
from attacks import suite as suite_lib
from wemem_eval import experiment
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval import report as report_lib
from wemem_tf import io_utils
from wemem_tf.data import datasets


def attack_rows(suite: suite_lib.SuiteResult) -> Dict[str, Dict[str, Any]]:
  """{attack: its report row}: the suite's attacks.json rows through the
  report's row rule (`report_lib.attack_row`: the keys of `report_lib.METRICS`
  and `report_lib.OPTIONAL_METRICS`), in the attack order."""
  return {r["attack"]: report_lib.attack_row(r)
          for r in suite.rows()}


@dataclasses.dataclass
class IterationResult:
  """The attacks on the models after one pruning iteration."""
  iteration: int
  target_sparsity: float
  victim: model_training.TrainedModel
  suite: suite_lib.SuiteResult
  seconds: float

  def to_json(self) -> Dict[str, Any]:
    record = self.victim.facts["prune"]["history"][-1]
    rows = attack_rows(self.suite)
    return {
        "iteration": self.iteration,
        "target_sparsity": self.target_sparsity,
        "layer_sparsity": record["layer_sparsity"],
        "victim_test_accuracy": self.victim.test_accuracy,
        "victim_train_accuracy": self.victim.train_accuracy,
        "victim_dev_accuracy": record["dev_accuracy"],
        "attacks": rows,
        "best_attack": report_lib.victim_side_best(rows),
        "best_attack_attacker_side": report_lib.attacker_side_best(rows),
        privacy_report.METADATA_KEY: privacy_report.metadata_to_json(
            self.suite.metadata),
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
  shadow_models: List[model_training.TrainedModel]
  reference_models: List[model_training.TrainedModel]
  timing: Dict[str, float]

  def final_experiment(self) -> experiment.ExperimentResult:
    """The last iteration as an `ExperimentResult` (what `run_experiment`
    returns for the same config; `write_artifacts` writes it)."""
    last = self.iterations[-1]
    return experiment.ExperimentResult(
        self.config, self.dataset, last.suite, last.victim, dict(self.timing),
        self.shadow_models, self.reference_models)

  def attack_results(self) -> List[tfp_ds.AttackResults]:
    """tensorflow-privacy `AttackResults` per iteration (epoch_num = the
    iteration), e.g. for its `privacy_report.plot_by_epochs`."""
    return [it.suite.attack_results() for it in self.iterations]

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
                      store: Optional[model_store.ModelStore] = None,
                      executor=None) -> IterationsResult:
  """Runs `config.attacks` on the models after every pruning iteration.

  Models, seeds, splits and attack settings are those of
  `experiment.run_experiment(dataset, config, store)`; at iteration k the
  victim, the shadows and the reference models are all the ones after
  iteration k. Attacks are fitted afresh at every iteration. `executor`
  trains the models (`experiment.run_stages`).

  Raises:
    ValueError: `config.recipe.target` is not "pruned", or the attacks need
      shadows and `config.num_shadows` is 0.
  """
  if config.recipe.target != "pruned":
    raise ValueError("per-iteration attacks need target='pruned' (the "
                     f"unpruned model has no iterations), got "
                     f"{config.recipe.target!r}.")
  result = experiment.run_stages(dataset, config, store, every_iteration=True,
                                 executor=executor)
  schedule = config.recipe.pruning_config.schedule()
  iterations = [IterationResult(k, schedule.sparsity(k), stage.victim,
                                stage.suite, stage.seconds)
                for k, stage in enumerate(result.stages)]
  timing = dict(result.timing)
  total = timing.pop("total")
  timing.update(attacks=sum(stage.seconds for stage in result.stages),
                total=total)
  last = result.stages[-1]
  return IterationsResult(config, dataset.name, iterations,
                          last.shadow_models, last.reference_models, timing)


def write_iterations_json(result: IterationsResult, path: str) -> str:
  """Writes `result.to_json()` to `path` atomically; returns `path`."""
  io_utils.atomic_write_json(path, result.to_json())
  return path


def write_iteration_scores(result: IterationsResult, path: str) -> str:
  """Writes iteration_scores.npz (every iteration's raw victim scores, keys
  prefixed "it<k>_"; see the module docstring) to `path` atomically;
  returns `path`."""
  arrays = {}
  for it in result.iterations:
    arrays.update(privacy_report.score_arrays(
        it.suite.results, privacy_report.iteration_prefix(it.iteration)))
  io_utils.atomic_save_npz(path, **arrays)
  return path
