"""Runs attacks on one victim and collects their results.

`run_attack` fits an attack on the attacker's data, takes the threshold from
its calibration (attacker's models only), scores the victim's target records
(shuffled, unlabelled) and only then compares the scores with the victim's
membership to compute the metrics.
"""

import dataclasses
import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

from attacks import base
from attacks import metrics as metrics_lib
from attacks import registry

AttackSpec = Union[str, base.Attack]


def run_attack(attack: base.Attack, attacker: base.AttackerData,
               target: base.TargetData, seed: int = 0
               ) -> metrics_lib.AttackResult:
  """Fits `attack` on `attacker`, evaluates it on `target`.

  Raises:
    ValueError: the data lacks what the attack needs, or is malformed.
  """
  start = time.perf_counter()
  query, is_member = target.query(seed)
  attack.check(attacker, query)
  calibration = attack.fit(attacker)
  choice = calibration.choose()
  scores = np.asarray(attack.score(query), np.float64)
  if scores.shape != (len(is_member),):
    raise ValueError(f"attack {attack.name!r} returned scores of shape "
                     f"{scores.shape}, expected ({len(is_member)},).")
  if not np.all(np.isfinite(scores)):
    raise ValueError(f"attack {attack.name!r} produced NaN or infinite "
                     "scores.")
  seconds = time.perf_counter() - start
  ids = query.records.record_ids
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
    metadata: optional tensorflow-privacy report metadata (accuracies).
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
    """A plain-text table of the headline metrics (percent)."""
    lines = [f"{'attack':<13}{'bal.acc':>8}{'AUC':>7}{'TPR@0.1%':>10}"
             f"{'TPR@1%':>8}{'adv':>7}{'sec':>7}"]
    for r in self.results:
      lines.append(
          f"{r.attack:<13}{100 * r.balanced_accuracy:8.1f}{100 * r.auc:7.1f}"
          f"{100 * r.tpr_at_low_fpr[0.001]:10.2f}"
          f"{100 * r.tpr_at_low_fpr[0.01]:8.2f}{100 * r.advantage:7.1f}"
          f"{r.seconds:7.1f}")
    return "\n".join(lines)


def run_attacks(attacks: Sequence[AttackSpec], attacker: base.AttackerData,
                target: base.TargetData,
                options: base.AttackOptions = base.AttackOptions(),
                metadata: Optional[tfp_ds.PrivacyReportMetadata] = None
                ) -> SuiteResult:
  """Runs each attack (registry name or `Attack`) on the same data."""
  results = []
  for spec in attacks:
    attack = registry.make_attack(spec, options) if isinstance(spec, str) \
        else spec
    result = run_attack(attack, attacker, target, seed=options.seed)
    logging.info("attack %s: balanced accuracy %.4f, AUC %.4f (%.1f s)",
                 result.attack, result.balanced_accuracy, result.auc,
                 result.seconds)
    results.append(result)
  return SuiteResult(results, metadata)
