"""Gap attack (label-only): a record is a member iff it is classified
correctly (Yeom et al. 2018). Its score is 1 (correct) or 0 (wrong) and its
threshold is fixed at 0.5; shadow models, when given, only report the
balanced accuracy the rule reaches on them.
"""

import numpy as np

from attacks import base


class GapAttack(base.Attack):
  """Member iff the arg-max class equals the label."""
  name = "gap"
  needs_shadows = False

  def fit(self, data: base.AttackerData) -> base.Calibration:
    if not data.shadows:
      return base.Calibration(np.zeros(0), np.zeros(0), threshold=0.5)
    outputs, is_member, _ = data.pooled_shadows()
    correct = outputs.correct().astype(np.float64)
    return base.Calibration(correct[is_member], correct[~is_member],
                            threshold=0.5)

  def score(self, query: base.TargetQuery) -> np.ndarray:
    return query.records.correct().astype(np.float64)


def label_only_bound(member_accuracy: float,
                     non_member_accuracy: float) -> float:
  """The gap attack's balanced accuracy: (1 + member accuracy − non-member
  accuracy) / 2.

  Every attack that sees the predicted label can reach it, so a defense
  that keeps the members' accuracy cannot push the best attack below it;
  the best attack's distance above it is the leakage a defense could still
  remove (docs/method.md §7, "Label-only bound"). Accuracies are fractions in [0, 1].
  """
  for name, value in (("member_accuracy", member_accuracy),
                      ("non_member_accuracy", non_member_accuracy)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"{name} must lie in [0, 1], got {value}.")
  return (1.0 + member_accuracy - non_member_accuracy) / 2.0


def gap(options: base.AttackOptions = base.AttackOptions()) -> GapAttack:
  return GapAttack(options)
