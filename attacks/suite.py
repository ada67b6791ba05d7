"""Runs attacks on one victim (or several, pooled) and collects their results.

`run_attack` fits an attack on the attacker's data, takes the threshold from
its calibration (attacker's models only), scores the victim's target records
(shuffled, unlabelled) and only then compares the scores with the victim's
membership to compute the metrics. Given several targets (victims trained by
the same pipeline on other member sets, a pooled audit), the attack is
fitted once, scores each target's records with that target's own outputs,
and the metrics are computed on all their scores together, so that a TPR at
a low FPR has enough non-member observations to be estimable.
"""

import dataclasses
import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

from attacks import base
from attacks import metrics as metrics_lib
from attacks import privacy_report
from attacks import registry
from wemem_tf import progress

AttackSpec = Union[str, base.Attack]
Targets = Union[base.TargetData, Sequence[base.TargetData]]


def _as_targets(target: Targets) -> List[base.TargetData]:
  targets = ([target] if isinstance(target, base.TargetData)
             else list(target))
  if not targets:
    raise ValueError("need at least one target (victim) to attack.")
  return targets


def _scored(attack: base.Attack, query: base.TargetQuery,
            is_member: np.ndarray
            ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
  """(scores, is_member, record ids or None) of one target's records, the
  fitted `attack` scoring its unlabelled `query`."""
  scores = np.asarray(attack.score(query), np.float64)
  if scores.shape != (len(is_member),):
    raise ValueError(f"attack {attack.name!r} returned scores of shape "
                     f"{scores.shape}, expected ({len(is_member)},).")
  if not np.all(np.isfinite(scores)):
    raise ValueError(f"attack {attack.name!r} produced NaN or infinite "
                     "scores.")
  return scores, is_member, query.records.record_ids


def run_attack(attack: base.Attack, attacker: base.AttackerData,
               target: Targets, seed: int = 0) -> metrics_lib.AttackResult:
  """Fits `attack` on `attacker`, evaluates it on `target`.

  `target` is one victim's `TargetData` or a sequence of them (a pooled
  audit: target t is queried with seed `seed + t`, and member and
  non-member scores of all targets are pooled; one target is the plain
  case).

  Raises:
    ValueError: the data lacks what the attack needs, or is malformed.
  """
  start = time.perf_counter()
  queries = [t.query(seed + i) for i, t in enumerate(_as_targets(target))]
  attack.check(attacker, queries[0][0])
  calibration = attack.fit(attacker)
  choice = calibration.choose()
  scored = [_scored(attack, query, is_member)
            for query, is_member in queries]
  scores = np.concatenate([s for s, _, _ in scored])
  is_member = np.concatenate([m for _, m, _ in scored])
  ids = (None if any(i is None for _, _, i in scored)
         else np.concatenate([i for _, _, i in scored]))
  seconds = time.perf_counter() - start
  return metrics_lib.evaluate(
      attack.name, scores[is_member], scores[~is_member], choice.threshold,
      choice.balanced_accuracy, seconds, attack.attack_type,
      member_ids=None if ids is None else ids[is_member],
      non_member_ids=None if ids is None else ids[~is_member])


@dataclasses.dataclass
class SuiteResult:
  """Results of several attacks on one victim.

  Attributes:
    results: one `AttackResult` per attack, in the order run.
    metadata: tensorflow-privacy report metadata of the victim (accuracies,
      losses, model_variant_label, epoch_num; `attacks.privacy_report`), so
      that its privacy report plots take `attack_results()`.
  """
  results: List[metrics_lib.AttackResult]
  metadata: Optional[tfp_ds.PrivacyReportMetadata] = None

  def attack_results(self) -> tfp_ds.AttackResults:
    """tensorflow-privacy `AttackResults` (summary(), plots, reports)."""
    return metrics_lib.to_attack_results(self.results, self.metadata)

  def rows(self) -> List[Dict[str, Any]]:
    """One attacks.json row per attack."""
    return [r.to_json() for r in self.results]

  def by_name(self) -> Dict[str, metrics_lib.AttackResult]:
    return {r.attack: r for r in self.results}

  def table(self) -> str:
    """A plain-text table of the headline metrics (percent; "n/a" for a
    TPR at an FPR below the FPR resolution, see `metrics`)."""
    lines = [f"{'attack':<13}{'bal.acc':>8}{'AUC':>7}{'TPR@0.1%':>10}"
             f"{'TPR@1%':>8}{'adv':>7}{'sec':>7}"]
    for r in self.results:
      lines.append(
          f"{r.attack:<13}{100 * r.balanced_accuracy:8.1f}{100 * r.auc:7.1f}"
          f"{_tpr_cell(r, 0.001):>10}{_tpr_cell(r, 0.01):>8}"
          f"{100 * r.advantage:7.1f}{r.seconds:7.1f}")
    return "\n".join(lines)


def _tpr_cell(result: metrics_lib.AttackResult, max_fpr: float) -> str:
  tpr = result.reported_tpr_at_fpr(max_fpr)
  return "n/a" if tpr is None else f"{100 * tpr:.2f}"


def run_attacks(attacks: Sequence[AttackSpec], attacker: base.AttackerData,
                target: Targets,
                options: base.AttackOptions = base.AttackOptions(),
                metadata: Optional[tfp_ds.PrivacyReportMetadata] = None
                ) -> SuiteResult:
  """Runs each attack (registry name or `Attack`) on the same data (one
  target, or several pooled: `run_attack`).

  `metadata` goes with the results' tensorflow-privacy `AttackResults`;
  None: `privacy_report.target_metadata` of the (first) target's outputs
  (accuracies and losses; default label, epoch_num 0).
  """
  if metadata is None:
    metadata = privacy_report.target_metadata(_as_targets(target)[0])
  results = []
  with progress.bar(len(attacks), "attacks", unit="attack") as bar:
    for spec in attacks:
      attack = registry.make_attack(spec, options) if isinstance(spec, str) \
          else spec
      bar.set_postfix(attack.name)
      result = run_attack(attack, attacker, target, seed=options.seed)
      # DEBUG: one line per attack only at absl's --verbosity=1 (the
      # configuration's table has them all).
      logging.debug("attack %s: balanced accuracy %.4f, AUC %.4f (%.1f s)",
                    result.attack, result.balanced_accuracy, result.auc,
                    result.seconds)
      results.append(result)
      bar.update(1)
  return SuiteResult(results, metadata)
