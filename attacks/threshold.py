"""Threshold attacks: Conf, Entr, Mentr (per class) and Hconf (class-agnostic).

Each thresholds one per-record signal of the posterior (docs/method.md §7, Song &
Mittal 2021):

* conf:  true-class confidence p_y (higher for members);
* entr:  prediction entropy (lower for members);
* mentr: modified entropy Mentr (lower for members);
* hconf: true-class confidence with one class-agnostic threshold.

Per-class attacks choose, for each class y, the threshold τ_y maximizing
balanced accuracy on the shadow records labelled y (all shadows pooled); a
class with no shadow member or no shadow non-member falls back to the
threshold chosen on all shadow records. Their membership score is
signal − τ_y, so "score >= 0" is exactly the per-class decision and the ROC
sweeps one offset over all per-class thresholds.
"""

from typing import Callable

import numpy as np

from attacks import base
from attacks import inputs as inputs_lib
from attacks import metrics as metrics_lib

Signal = Callable[[inputs_lib.ModelOutputs], np.ndarray]


def confidence_signal(outputs: inputs_lib.ModelOutputs) -> np.ndarray:
  return outputs.true_class_confidence()


def negative_entropy_signal(outputs: inputs_lib.ModelOutputs) -> np.ndarray:
  return -outputs.entropy()


def negative_modified_entropy_signal(outputs: inputs_lib.ModelOutputs
                                     ) -> np.ndarray:
  return -outputs.modified_entropy()


def per_class_thresholds(signal: np.ndarray, labels: np.ndarray,
                         is_member: np.ndarray, num_classes: int) -> np.ndarray:
  """τ_y maximizing each class's balanced accuracy, float64 (num_classes,).

  Args:
    signal: float (n,), higher for members.
    labels: int (n,) in [0, num_classes).
    is_member: bool (n,).
    num_classes: c.
  """
  fallback = metrics_lib.best_threshold(signal[is_member],
                                        signal[~is_member]).threshold
  thresholds = np.full(num_classes, fallback, np.float64)
  for c in range(num_classes):
    in_class = labels == c
    pos, neg = signal[in_class & is_member], signal[in_class & ~is_member]
    if pos.size and neg.size:
      thresholds[c] = metrics_lib.best_threshold(pos, neg).threshold
  return thresholds


class ThresholdAttack(base.Attack):
  """Thresholds `signal` per class (`per_class`) or once for all records."""

  def __init__(self, name: str, signal: Signal, per_class: bool,
               options: base.AttackOptions = base.AttackOptions()):
    super().__init__(options)
    self.name = name
    self.signal = signal
    self.per_class = per_class
    self.thresholds = None  # (c,) after fit when per_class

  def fit(self, data: base.AttackerData) -> base.Calibration:
    self.check(data)
    outputs, is_member, _ = data.pooled_shadows()
    signal = self.signal(outputs)
    if not self.per_class:
      return base.Calibration(signal[is_member], signal[~is_member])
    self.thresholds = per_class_thresholds(signal, outputs.labels, is_member,
                                           outputs.num_classes)
    shifted = signal - self.thresholds[outputs.labels]
    return base.Calibration(shifted[is_member], shifted[~is_member],
                            threshold=0.0)

  def score(self, query: base.TargetQuery) -> np.ndarray:
    signal = self.signal(query.records)
    if not self.per_class:
      return signal
    if self.thresholds is None:
      raise ValueError(f"attack {self.name!r} must be fitted before scoring.")
    if query.records.num_classes != len(self.thresholds):
      raise ValueError(f"the target has {query.records.num_classes} classes "
                       f"but the shadows had {len(self.thresholds)}.")
    return signal - self.thresholds[query.records.labels]


def conf(options: base.AttackOptions = base.AttackOptions()) -> ThresholdAttack:
  return ThresholdAttack("conf", confidence_signal, True, options)


def entr(options: base.AttackOptions = base.AttackOptions()) -> ThresholdAttack:
  return ThresholdAttack("entr", negative_entropy_signal, True, options)


def mentr(options: base.AttackOptions = base.AttackOptions()) -> ThresholdAttack:
  return ThresholdAttack("mentr", negative_modified_entropy_signal, True,
                         options)


def hconf(options: base.AttackOptions = base.AttackOptions()) -> ThresholdAttack:
  return ThresholdAttack("hconf", confidence_signal, False, options)
