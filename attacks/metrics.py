"""Attack metrics and their tensorflow-privacy result objects.

Convention: a membership score is higher for "member"; an attack with
threshold t predicts member iff score >= t.

* Balanced accuracy (the paper's metric) is (TPR + TNR) / 2 on the victim's
  members vs non-members at a threshold chosen on the attacker's own
  (shadow) data, never on the victim's. It is insensitive to the member /
  non-member ratio, unlike plain accuracy (docs/method.md §10).
* ROC, AUC, TPR at a fixed FPR (the largest TPR of a ROC point whose FPR is
  <= the target) and the advantage max |TPR − FPR| (tensorflow-privacy's
  definition) are threshold-free.
* With n_out non-members the smallest nonzero FPR (the FPR resolution) is
  1 / n_out. A TPR at an FPR f < 1 / n_out is the TPR at zero false
  positives, not a rate at f: it is not estimable, and every report of it
  (`AttackResult.reported_tpr_at_fpr`, the attacks.json row) gives null
  with the reason instead.
* 95% intervals of the balanced accuracy, AUC and TPRs at `LOW_FPRS` come
  from a stratified bootstrap over the victim's records (`attacks.intervals`).

`AttackResult` holds all of them; `to_single_attack_result` and
`to_attack_results` give tensorflow-privacy `SingleAttackResult` /
`AttackResults`, so `summary()`, its plots and privacy reports work unchanged.
"""

import dataclasses
from typing import Any, Dict, Optional, Sequence

import numpy as np
from sklearn import metrics as sk_metrics
from tensorflow_privacy.privacy.privacy_tests import epsilon_lower_bound as elb
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

from attacks import intervals as intervals_lib

LOW_FPRS = (0.001, 0.01)


@dataclasses.dataclass(frozen=True)
class SuiteAttackType:
  """An attack's type, duck-typing tensorflow-privacy's `AttackType` enum.

  `AttackType` is a closed enum without our attacks; tensorflow-privacy only
  uses `str()` (the upper-case name), `.name`, `.value` and
  `.is_trained_attack` of an attack type, which this provides.
  """
  value: str
  is_trained_attack: bool = False

  @property
  def name(self) -> str:
    return self.value.upper()

  def __str__(self) -> str:
    return self.name


def _check_scores(member_scores, non_member_scores):
  pos = np.asarray(member_scores, np.float64).ravel()
  neg = np.asarray(non_member_scores, np.float64).ravel()
  if pos.size == 0 or neg.size == 0:
    raise ValueError("need at least one member and one non-member score, got "
                     f"{pos.size} and {neg.size}.")
  if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
    raise ValueError("membership scores contain NaN or infinite values.")
  return pos, neg


def rates_at(member_scores, non_member_scores, threshold: float):
  """(TPR, FPR) of "member iff score >= threshold"."""
  pos, neg = _check_scores(member_scores, non_member_scores)
  return float(np.mean(pos >= threshold)), float(np.mean(neg >= threshold))


def balanced_accuracy(member_scores, non_member_scores,
                      threshold: float) -> float:
  """(TPR + TNR) / 2 of "member iff score >= threshold", in [0, 1]."""
  tpr, fpr = rates_at(member_scores, non_member_scores, threshold)
  return 0.5 * (tpr + 1.0 - fpr)


@dataclasses.dataclass(frozen=True)
class ThresholdChoice:
  """A threshold and the balanced accuracy it reaches on the data it was
  chosen on."""
  threshold: float
  balanced_accuracy: float


def best_threshold(member_scores, non_member_scores) -> ThresholdChoice:
  """The threshold maximizing balanced accuracy on these scores.

  Every distinct partition "score >= t" is considered (t = each distinct
  score, and t above all scores), in O(n log n). The returned threshold lies
  halfway between the chosen score and the next lower distinct score, so it
  makes the same decisions on these scores and generalizes symmetrically.
  Ties in balanced accuracy go to the higher threshold.
  """
  pos, neg = _check_scores(member_scores, non_member_scores)
  values = np.unique(np.concatenate([pos, neg]))[::-1]  # descending
  pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
  tp = pos.size - np.searchsorted(pos_sorted, values, side="left")
  fp = neg.size - np.searchsorted(neg_sorted, values, side="left")
  ba = 0.5 * (tp / pos.size + 1.0 - fp / neg.size)
  k = int(np.argmax(ba))
  if ba[k] <= 0.5:  # nothing beats "nobody is a member"
    top = values[0]
    return ThresholdChoice(float(top + max(1.0, abs(top))), 0.5)
  if k + 1 < values.size:
    threshold = 0.5 * (values[k] + values[k + 1])
    if not threshold > values[k + 1]:  # adjacent floats: no midpoint
      threshold = values[k]
  else:
    threshold = values[k] - max(1.0, abs(values[k]))
  return ThresholdChoice(float(threshold), float(ba[k]))


def roc_curve(member_scores, non_member_scores) -> tfp_ds.RocCurve:
  """The full ROC (every distinct threshold) as tensorflow-privacy's
  `RocCurve`; its test_train_ratio is #non-members / #members."""
  pos, neg = _check_scores(member_scores, non_member_scores)
  y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
  fpr, tpr, thresholds = sk_metrics.roc_curve(
      y, np.concatenate([pos, neg]), drop_intermediate=False)
  return tfp_ds.RocCurve(thresholds=thresholds, tpr=tpr, fpr=fpr,
                         test_train_ratio=np.float64(neg.size / pos.size))


def tpr_at_fpr(roc: tfp_ds.RocCurve, max_fpr: float) -> float:
  """Largest TPR over ROC points with FPR <= max_fpr (0 if none)."""
  ok = np.asarray(roc.fpr) <= max_fpr + intervals_lib.FPR_TOLERANCE
  return float(np.max(np.asarray(roc.tpr)[ok])) if np.any(ok) else 0.0


def tpr_key(max_fpr: float) -> str:
  """The attacks.json key of the TPR at FPR <= max_fpr, e.g.
  "tpr_at_0.1pct_fpr" for 0.001."""
  return f"tpr_at_{100 * max_fpr:g}pct_fpr"


def fpr_resolution(num_non_members: int) -> float:
  """The smallest nonzero FPR with this many non-members: 1 / n_out."""
  return 1.0 / num_non_members


def not_estimable_reason(max_fpr: float,
                         num_non_members: int) -> Optional[str]:
  """Why the TPR at FPR <= max_fpr is not estimable, or None when it is.

  It is not when max_fpr is below the FPR resolution 1 / num_non_members:
  then FPR <= max_fpr allows no false positive at all.
  """
  if max_fpr * num_non_members >= 1.0 - 1e-9:  # 1e-9: rounding of f · n
    return None
  return (f"FPR resolution 1/{num_non_members} = "
          f"{100 / num_non_members:.3g}% is above {100 * max_fpr:g}%: this "
          "would be the TPR at zero false positives")


def epsilon_lower_bound(member_scores, non_member_scores
                        ) -> tfp_ds.EpsilonLowerBoundValue:
  """tensorflow-privacy's DP epsilon lower bound of these scores."""
  pos, neg = _check_scores(member_scores, non_member_scores)
  with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 rates
    bound = elb.EpsilonLowerBound(pos, neg, alpha=tfp_ds.EPSILON_ALPHA,
                                  two_sided_threshold=True)
    bounds = bound.compute_epsilon_lower_bounds(
        methods=tfp_ds.EPSILON_METHODS, k=tfp_ds.EPSILON_K)
  return tfp_ds.EpsilonLowerBoundValue(bounds=bounds)


@dataclasses.dataclass(frozen=True, eq=False)
class AttackResult:
  """One attack on one victim model.

  Attributes:
    attack: registry name, e.g. "mentr".
    attack_type: its `SuiteAttackType`.
    member_scores, non_member_scores: float64 scores of the victim's members
      (n_in,) and non-members (n_out,).
    threshold: decision threshold, chosen on the attacker's data.
    balanced_accuracy: (TPR + TNR) / 2 at `threshold` on the victim.
    tpr_at_threshold, fpr_at_threshold: the rates behind it.
    calibration_balanced_accuracy: the same on the attacker's calibration
      data (shadow or reference models).
    auc: ROC AUC on the victim.
    tpr_at_low_fpr: {0.001: TPR at 0.1% FPR, 0.01: TPR at 1% FPR}, raw
      values even where not estimable (tensorflow-privacy interop); reports
      use `reported_tpr_at_fpr`.
    advantage: max over thresholds of |TPR − FPR|.
    roc: the ROC as tensorflow-privacy `RocCurve`.
    seconds: wall time of fitting and scoring the attack (shared model
      training not included).
    member_ids, non_member_ids: optional record indices of the scores.
    intervals: bootstrap intervals over the victim's records, or None when
      not computed.
  """
  attack: str
  attack_type: SuiteAttackType
  member_scores: np.ndarray
  non_member_scores: np.ndarray
  threshold: float
  balanced_accuracy: float
  tpr_at_threshold: float
  fpr_at_threshold: float
  calibration_balanced_accuracy: float
  auc: float
  tpr_at_low_fpr: Dict[float, float]
  advantage: float
  roc: tfp_ds.RocCurve
  seconds: float
  member_ids: Optional[np.ndarray] = None
  non_member_ids: Optional[np.ndarray] = None
  intervals: Optional[intervals_lib.Intervals] = None

  @property
  def advantage_at_threshold(self) -> float:
    """TPR − FPR at the chosen threshold (= 2 · balanced accuracy − 1)."""
    return self.tpr_at_threshold - self.fpr_at_threshold

  @property
  def fpr_resolution(self) -> float:
    """1 / #non-members, the smallest nonzero FPR on the victim."""
    return fpr_resolution(len(self.non_member_scores))

  @property
  def tpr_at_zero_fpr(self) -> float:
    """Share of members scored above every non-member."""
    return tpr_at_fpr(self.roc, 0.0)

  def not_estimable(self) -> Dict[str, str]:
    """{attacks.json key: reason} of the TPRs at `LOW_FPRS` that are not
    estimable from this many non-members."""
    reasons = {tpr_key(f): not_estimable_reason(
        f, len(self.non_member_scores)) for f in self.tpr_at_low_fpr}
    return {key: reason for key, reason in reasons.items() if reason}

  def reported_tpr_at_fpr(self, max_fpr: float) -> Optional[float]:
    """The TPR at FPR <= max_fpr (a `LOW_FPRS` entry), None where it is not
    estimable."""
    if not_estimable_reason(max_fpr, len(self.non_member_scores)):
      return None
    return self.tpr_at_low_fpr[max_fpr]

  def _intervals_json(self) -> Optional[Dict[str, Any]]:
    """{metric key: [low, high] or None where not estimable}."""
    if self.intervals is None:
      return None
    out = {"balanced_accuracy": list(self.intervals.balanced_accuracy),
           "auc": list(self.intervals.auc)}
    for f, interval in self.intervals.tpr_at_fpr.items():
      estimable = self.reported_tpr_at_fpr(f) is not None
      out[tpr_key(f)] = list(interval) if estimable else None
    return out

  def to_single_attack_result(self) -> tfp_ds.SingleAttackResult:
    """tensorflow-privacy's result for the entire victim dataset."""
    return single_attack_result(self.attack_type, self.member_scores,
                                self.non_member_scores, self.member_ids,
                                self.non_member_ids, roc=self.roc)

  def to_json(self) -> Dict[str, Any]:
    """The attacks.json row (fractions in [0, 1], seconds).

    TPRs at FPRs below the FPR resolution are None, with their reason under
    "not_estimable"; "intervals" holds [low, high] per metric ("confidence"
    their coverage, "bootstrap_resamples" B), or is None when none were
    computed.
    """
    return {
        "attack": self.attack,
        "balanced_accuracy": self.balanced_accuracy,
        "auc": self.auc,
        **{tpr_key(f): self.reported_tpr_at_fpr(f)
           for f in self.tpr_at_low_fpr},
        "tpr_at_zero_fpr": self.tpr_at_zero_fpr,
        "fpr_resolution": self.fpr_resolution,
        "not_estimable": self.not_estimable(),
        "intervals": self._intervals_json(),
        "confidence": (None if self.intervals is None
                       else self.intervals.confidence),
        "bootstrap_resamples": (0 if self.intervals is None
                                else self.intervals.num_resamples),
        "advantage": self.advantage,
        "advantage_at_threshold": self.advantage_at_threshold,
        "threshold": self.threshold,
        "tpr_at_threshold": self.tpr_at_threshold,
        "fpr_at_threshold": self.fpr_at_threshold,
        "calibration_balanced_accuracy": self.calibration_balanced_accuracy,
        "num_members": int(len(self.member_scores)),
        "num_non_members": int(len(self.non_member_scores)),
        "seconds": self.seconds,
    }


def single_attack_result(attack_type: SuiteAttackType, member_scores,
                         non_member_scores, member_ids=None,
                         non_member_ids=None,
                         roc: Optional[tfp_ds.RocCurve] = None
                         ) -> tfp_ds.SingleAttackResult:
  """tensorflow-privacy's `SingleAttackResult` of an attack's victim scores
  on the entire dataset: ROC (`roc`, or computed from the scores), epsilon
  lower bound, data size, scores and record ids. `AttackResult` and the
  results rebuilt from saved scores (`attacks.privacy_report`) both come
  from here, so they are equal."""
  pos, neg = _check_scores(member_scores, non_member_scores)
  return tfp_ds.SingleAttackResult(
      slice_spec=tfp_ds.SingleSliceSpec(),
      data_size=tfp_ds.DataSize(ntrain=pos.size, ntest=neg.size),
      attack_type=attack_type,
      roc_curve=roc_curve(pos, neg) if roc is None else roc,
      epsilon_lower_bound_value=epsilon_lower_bound(pos, neg),
      membership_scores_train=pos,
      membership_scores_test=neg,
      train_indices=member_ids,
      test_indices=non_member_ids)


def evaluate(attack: str, member_scores, non_member_scores, threshold: float,
             calibration_balanced_accuracy: float = float("nan"),
             seconds: float = 0.0,
             attack_type: Optional[SuiteAttackType] = None,
             member_ids=None, non_member_ids=None,
             bootstrap_resamples: int = intervals_lib.NUM_RESAMPLES,
             bootstrap_seed: int = 0) -> AttackResult:
  """Every metric of an attack's victim scores at a given threshold.

  With bootstrap_resamples > 0 the result also holds 95% bootstrap
  intervals over the victim's records (`attacks.intervals`, seeded by
  bootstrap_seed: the same scores always give the same intervals).
  """
  pos, neg = _check_scores(member_scores, non_member_scores)
  if not np.isfinite(threshold):
    raise ValueError(f"threshold must be finite, got {threshold}.")
  roc = roc_curve(pos, neg)
  tpr, fpr = rates_at(pos, neg, threshold)
  return AttackResult(
      attack=attack,
      attack_type=attack_type or SuiteAttackType(attack),
      member_scores=pos, non_member_scores=neg, threshold=float(threshold),
      balanced_accuracy=0.5 * (tpr + 1.0 - fpr), tpr_at_threshold=tpr,
      fpr_at_threshold=fpr,
      calibration_balanced_accuracy=float(calibration_balanced_accuracy),
      auc=float(sk_metrics.roc_auc_score(
          np.concatenate([np.ones(pos.size), np.zeros(neg.size)]),
          np.concatenate([pos, neg]))),
      tpr_at_low_fpr={f: tpr_at_fpr(roc, f) for f in LOW_FPRS},
      advantage=float(roc.get_attacker_advantage()), roc=roc,
      seconds=float(seconds), member_ids=member_ids,
      non_member_ids=non_member_ids,
      intervals=intervals_lib.bootstrap_intervals(
          pos, neg, threshold, LOW_FPRS, bootstrap_resamples,
          seed=bootstrap_seed) if bootstrap_resamples > 0 else None)


def to_attack_results(results: Sequence[AttackResult],
                      metadata: Optional[tfp_ds.PrivacyReportMetadata] = None
                      ) -> tfp_ds.AttackResults:
  """tensorflow-privacy `AttackResults` with one result per attack."""
  return tfp_ds.AttackResults(
      single_attack_results=[r.to_single_attack_result() for r in results],
      privacy_report_metadata=metadata)
