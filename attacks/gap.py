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


def gap(options: base.AttackOptions = base.AttackOptions()) -> GapAttack:
  return GapAttack(options)
