"""Our attack results in tensorflow-privacy's privacy report.

tensorflow-privacy's `privacy_report.plot_by_epochs` and
`privacy_report.plot_privacy_vs_accuracy` take an `AttackResultsCollection`
and plot each `AttackResults`' entire-dataset privacy metrics (AUC,
attacker advantage, PPV: `PRIVACY_METRICS`) against its metadata's
`epoch_num` or `accuracy_train`, one line per `model_variant_label` and
attack type; they refuse results whose metadata has no `epoch_num`.

Every `AttackResults` wemem produces (`SuiteResult.attack_results()` of
`wemem_eval`'s experiments and per-iteration results, and the ones rebuilt
here from a run directory) carries complete `PrivacyReportMetadata`:

* accuracy_train / accuracy_test: the victim's accuracy on its members
  (training split) / non-members (test split).
* loss_train / loss_test: its mean cross-entropy −log p_y on the same
  records, from the outputs the attacks queried (`mean_losses`; no extra
  query). In a pooled audit, accuracies and losses are target 0's (the
  protocol's victim).
* model_variant_label: the configuration's label, as `wemem run` names it:
  "unpruned", "one_shot", "base" (iterative pruning without defense) or the
  defense's name ("swmr", "hamp", ...); `ExperimentConfig.variant_label`.
  (`suite.run_attacks` called without metadata, outside any experiment:
  `target_metadata`, tensorflow-privacy's default label and epoch_num 0.)
* epoch_num: the pruning iteration of the attacked models (`epoch_num`):
  k for the attacks after pruning iteration k (per-iteration results,
  `wemem attack --per_iteration`; iteration 0 is dense fine-tuning),
  otherwise the final iteration, num_iterations − 1, for a pruned model and
  0 for the unpruned (pre-trained dense) model. A configuration's final
  result and the last of its per-iteration results thus share their
  epoch_num (and their numbers).

After a run the results are JSON plus raw scores, never pickles
(tensorflow-privacy's `AttackResults.save` pickles): attacks.json's
"privacy_report_metadata" with attack_scores.npz, and iterations.json's
per-iteration "privacy_report_metadata" with iteration_scores.npz.
`load_attack_results` and `load_iteration_results` rebuild `AttackResults`
from them: ROC and epsilon lower bound are recomputed from the raw scores
exactly as when the attacks ran (`metrics.single_attack_result`).
`plot_by_epochs` and `plot_privacy_vs_accuracy` call tensorflow-privacy's
functions on the Agg backend and write a PNG.
"""

import contextlib
import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

from attacks import base
from attacks import metrics as metrics_lib
from attacks import plotting
from attacks import registry
from wemem_tf import io_utils

PRIVACY_METRICS = (tfp_ds.PrivacyMetric.AUC,
                   tfp_ds.PrivacyMetric.ATTACKER_ADVANTAGE,
                   tfp_ds.PrivacyMetric.PPV)
METADATA_KEY = "privacy_report_metadata"
ATTACKS_JSON = "attacks.json"
ATTACK_SCORES = "attack_scores.npz"
ITERATIONS_JSON = "iterations.json"
ITERATION_SCORES = "iteration_scores.npz"
DEFAULT_LABEL = tfp_ds.PrivacyReportMetadata().model_variant_label
METADATA_FIELDS = tuple(f.name for f in
                        dataclasses.fields(tfp_ds.PrivacyReportMetadata))


# ---- metadata -------------------------------------------------------------


def epoch_num(target: str, num_iterations: int,
              iteration: Optional[int] = None) -> int:
  """The epoch_num rule (module docstring).

  Args:
    target: "pruned" or "unpruned", the attacked model.
    num_iterations: pruning iterations of the recipe.
    iteration: the pruning iteration of per-iteration results, else None.
  """
  if iteration is not None:
    if target != "pruned" or not 0 <= iteration < num_iterations:
      raise ValueError(f"no pruning iteration {iteration} of a {target} "
                       f"model with {num_iterations} iterations.")
    return int(iteration)
  if target == "unpruned":
    return 0
  if target == "pruned":
    return int(num_iterations) - 1
  raise ValueError(f"target must be 'pruned' or 'unpruned', got {target!r}.")


def variant_label(target: str, defense: Any) -> str:
  """A configuration's label from its target and defense: "unpruned" for
  the unpruned model, else "base" without a defense, else the defense's
  name (a defense name, an instance's `name`, or attacks.json's "defense"
  entry: null, a name or {"name": ...})."""
  if target == "unpruned":
    return "unpruned"
  if isinstance(defense, Mapping):
    defense = defense.get("name")
  if defense is None or defense == "none":
    return "base"
  if isinstance(defense, str):
    return defense
  return str(getattr(defense, "name", type(defense).__name__))


def mean_losses(target: base.TargetData) -> Tuple[float, float]:
  """(loss_train, loss_test): the victim's mean cross-entropy −log p_y on
  its members and non-members, from the outputs already queried."""
  return (float(np.mean(target.members.loss())),
          float(np.mean(target.non_members.loss())))


def victim_metadata(target: base.TargetData, accuracy_train: float,
                    accuracy_test: float, label: str,
                    epoch: int) -> tfp_ds.PrivacyReportMetadata:
  """Complete metadata of the attacks on the victim of `target`."""
  loss_train, loss_test = mean_losses(target)
  return tfp_ds.PrivacyReportMetadata(
      accuracy_train=float(accuracy_train), accuracy_test=float(accuracy_test),
      loss_train=loss_train, loss_test=loss_test, model_variant_label=label,
      epoch_num=int(epoch))


def target_metadata(target: base.TargetData,
                    label: str = DEFAULT_LABEL,
                    epoch: int = 0) -> tfp_ds.PrivacyReportMetadata:
  """Complete metadata from the victim's queried outputs alone: accuracies
  (arg-max class = label) and losses on its members / non-members. What
  `suite.run_attacks` attaches when given no metadata (a victim outside
  any pruning: tensorflow-privacy's default label, epoch_num 0)."""
  return victim_metadata(target, float(np.mean(target.members.correct())),
                         float(np.mean(target.non_members.correct())), label,
                         epoch)


def metadata_to_json(metadata: Optional[tfp_ds.PrivacyReportMetadata]
                     ) -> Optional[Dict[str, Any]]:
  """{"accuracy_train", "accuracy_test", "loss_train", "loss_test",
  "model_variant_label", "epoch_num"}, or None."""
  if metadata is None:
    return None
  return {name: getattr(metadata, name) for name in METADATA_FIELDS}


def metadata_from_json(doc: Mapping[str, Any]
                       ) -> tfp_ds.PrivacyReportMetadata:
  return tfp_ds.PrivacyReportMetadata(
      **{name: doc[name] for name in METADATA_FIELDS if name in doc})


def _attacks_json_metadata(doc: Mapping[str, Any]
                           ) -> tfp_ds.PrivacyReportMetadata:
  """attacks.json's metadata; for files written before it was stored, what
  the file says (losses unknown: None)."""
  if doc.get(METADATA_KEY):
    return metadata_from_json(doc[METADATA_KEY])
  target = doc.get("target", "pruned")
  num_iterations = doc["settings"]["pruning"]["num_iterations"]
  return tfp_ds.PrivacyReportMetadata(
      accuracy_train=doc["victim_train_accuracy"],
      accuracy_test=doc["victim_test_accuracy"],
      model_variant_label=variant_label(target, doc.get("defense")),
      epoch_num=epoch_num(target, num_iterations))


def _iteration_metadata(doc: Mapping[str, Any], it: Mapping[str, Any]
                        ) -> tfp_ds.PrivacyReportMetadata:
  """One iterations.json entry's metadata (older files: from the entry)."""
  if it.get(METADATA_KEY):
    return metadata_from_json(it[METADATA_KEY])
  return tfp_ds.PrivacyReportMetadata(
      accuracy_train=it["victim_train_accuracy"],
      accuracy_test=it["victim_test_accuracy"],
      model_variant_label=variant_label("pruned", doc.get("defense")),
      epoch_num=int(it["iteration"]))


# ---- scores and rebuilt results ---------------------------------------------


def iteration_prefix(iteration: int) -> str:
  """The iteration_scores.npz key prefix of pruning iteration k."""
  return f"it{int(iteration)}_"


def score_arrays(results: Sequence[metrics_lib.AttackResult],
                 prefix: str = "") -> Dict[str, np.ndarray]:
  """{prefix + "<attack>_member_scores", "..._non_member_scores" and, when
  known, "..._member_ids", "..._non_member_ids": arrays}, as
  attack_scores.npz (prefix "") and iteration_scores.npz
  (`iteration_prefix`) store them."""
  arrays = {}
  for r in results:
    arrays[f"{prefix}{r.attack}_member_scores"] = r.member_scores
    arrays[f"{prefix}{r.attack}_non_member_scores"] = r.non_member_scores
    if r.member_ids is not None:
      arrays[f"{prefix}{r.attack}_member_ids"] = r.member_ids
      arrays[f"{prefix}{r.attack}_non_member_ids"] = r.non_member_ids
  return arrays


def _attack_type(name: str) -> metrics_lib.SuiteAttackType:
  """The registered attack's type (its `trained` flag), else a plain one."""
  if name not in registry.attack_names():
    return metrics_lib.SuiteAttackType(name)
  return registry.make_attack(name).attack_type


def attack_results_from_scores(
    attacks: Sequence[str], arrays: Mapping[str, np.ndarray],
    metadata: Optional[tfp_ds.PrivacyReportMetadata], prefix: str = ""
) -> tfp_ds.AttackResults:
  """tensorflow-privacy `AttackResults` of `attacks` from their saved victim
  scores (`score_arrays`' keys), equal to what the suite produced."""
  singles = []
  for name in attacks:
    key = f"{prefix}{name}"
    if f"{key}_member_scores" not in arrays:
      raise KeyError(f"no saved scores of attack {name!r} "
                     f"({key}_member_scores).")
    singles.append(metrics_lib.single_attack_result(
        _attack_type(name), arrays[f"{key}_member_scores"],
        arrays[f"{key}_non_member_scores"],
        arrays.get(f"{key}_member_ids"), arrays.get(f"{key}_non_member_ids")))
  return tfp_ds.AttackResults(single_attack_results=singles,
                              privacy_report_metadata=metadata)


def _relabelled(metadata, label: Optional[str]):
  return (metadata if label is None else
          dataclasses.replace(metadata, model_variant_label=label))


def _read_json(path: str) -> Dict[str, Any]:
  with open(path) as f:
    return json.load(f)


def load_attack_results(experiment_dir: str, label: Optional[str] = None
                        ) -> tfp_ds.AttackResults:
  """The `AttackResults` of a finished experiment directory (attacks.json
  and attack_scores.npz of `wemem attack`, or experiments/<label>/ of
  `wemem run`). `label` replaces the stored model_variant_label."""
  doc = _read_json(os.path.join(experiment_dir, ATTACKS_JSON))
  arrays = io_utils.load_npz(os.path.join(experiment_dir, ATTACK_SCORES))
  return attack_results_from_scores(
      [r["attack"] for r in doc["attacks"]], arrays,
      _relabelled(_attacks_json_metadata(doc), label))


def has_iteration_results(experiment_dir: str) -> bool:
  """Whether `experiment_dir` holds iterations.json and its scores."""
  return all(os.path.isfile(os.path.join(experiment_dir, name))
             for name in (ITERATIONS_JSON, ITERATION_SCORES))


def load_iteration_results(experiment_dir: str, label: Optional[str] = None
                           ) -> List[tfp_ds.AttackResults]:
  """One `AttackResults` per pruning iteration (epoch_num = the iteration),
  from iterations.json and iteration_scores.npz (`wemem attack
  --per_iteration`). `label` replaces the stored model_variant_label."""
  doc = _read_json(os.path.join(experiment_dir, ITERATIONS_JSON))
  arrays = io_utils.load_npz(os.path.join(experiment_dir, ITERATION_SCORES))
  # The rows are a JSON object (keys sorted on disk); "attacks" keeps the
  # order the attacks ran in.
  order = doc.get("attacks") or []
  return [attack_results_from_scores(
      [a for a in order if a in it["attacks"]] +
      sorted(set(it["attacks"]) - set(order)), arrays,
      _relabelled(_iteration_metadata(doc, it), label),
      prefix=iteration_prefix(it["iteration"]))
          for it in doc["iterations"]]


# ---- tensorflow-privacy's plots ---------------------------------------------


@contextlib.contextmanager
def _agg_pyplot():
  """pyplot on the Agg backend for the duration (tensorflow-privacy's plots
  use pyplot); the previous backend is restored after. With figures of the
  caller open (switching would close them), the current backend is kept."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  previous = matplotlib.get_backend()
  switch = previous.lower() != "agg" and not plt.get_fignums()
  if switch:
    plt.switch_backend("agg")
  try:
    yield plt
  finally:
    if switch:
      plt.switch_backend(previous)


def _results_list(results) -> List[tfp_ds.AttackResults]:
  if isinstance(results, tfp_ds.AttackResultsCollection):
    results = results.attack_results_list
  results = list(results)
  if not results:
    raise ValueError("no attack results to plot.")
  return results


def _plot(plot_fn, results, path: Optional[str],
          privacy_metrics: Sequence[tfp_ds.PrivacyMetric]):
  from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import privacy_report  # pylint: disable=g-import-not-at-top
  collection = tfp_ds.AttackResultsCollection(_results_list(results))
  with _agg_pyplot() as plt:
    fig = getattr(privacy_report, plot_fn)(collection, list(privacy_metrics))
    # A variant with one result is one point: give every line markers.
    for ax in fig.axes:
      for line in ax.get_lines():
        line.set_marker("o")
        line.set_markersize(4)
    if path is not None:
      plotting.save_png(fig, path)
    plt.close(fig)  # detached from pyplot; still a usable Figure
  return fig


def plot_by_epochs(results: Iterable[tfp_ds.AttackResults],
                   path: Optional[str] = None,
                   privacy_metrics: Sequence[tfp_ds.PrivacyMetric] = (
                       PRIVACY_METRICS)):
  """tensorflow-privacy's `plot_by_epochs` (vulnerability per epoch_num,
  here the pruning iteration) of `results` (AttackResults or an
  AttackResultsCollection), with point markers; writes a PNG to `path`
  when given. Returns the Figure."""
  return _plot("plot_by_epochs", results, path, privacy_metrics)


def plot_privacy_vs_accuracy(results: Iterable[tfp_ds.AttackResults],
                             path: Optional[str] = None,
                             privacy_metrics: Sequence[
                                 tfp_ds.PrivacyMetric] = PRIVACY_METRICS):
  """tensorflow-privacy's `plot_privacy_vs_accuracy` (vulnerability against
  the victim's train accuracy) of `results`, with point markers; writes a
  PNG to `path` when given. Returns the Figure."""
  return _plot("plot_privacy_vs_accuracy", results, path, privacy_metrics)
