"""Tests of the threshold attacks against a brute-force search."""

import numpy as np
import pytest

from attacks import base
from attacks import inputs
from attacks import threshold


def _random_shadow(rng, n_in, n_out, classes):
  def outs(n):
    return inputs.ModelOutputs.from_logits(rng.normal(0, 2, (n, classes)),
                                           rng.integers(0, classes, n))
  return inputs.MembershipOutputs(outs(n_in), outs(n_out))


def _brute_force_ba(signal, is_member):
  best = 0.5
  for t in np.unique(signal):
    pred = signal >= t
    best = max(best, 0.5 * (pred[is_member].mean() + (~pred[~is_member]).mean()))
  return best


@pytest.mark.parametrize("name", ["conf", "entr", "mentr"])
@pytest.mark.parametrize("seed", [0, 1])
def test_per_class_thresholds_match_brute_force(name, seed):
  rng = np.random.default_rng(seed)
  data = base.AttackerData(tuple(_random_shadow(rng, 90, 60, 4)
                                 for _ in range(2)))
  attack = getattr(threshold, name)()
  calibration = attack.fit(data)
  outputs, is_member, _ = data.pooled_shadows()
  signal = attack.signal(outputs)
  for c in range(4):
    in_class = outputs.labels == c
    expected = _brute_force_ba(signal[in_class], is_member[in_class])
    decided = signal[in_class] >= attack.thresholds[c]
    got = 0.5 * (decided[is_member[in_class]].mean()
                 + (~decided[~is_member[in_class]]).mean())
    assert got == pytest.approx(expected), (name, c)
  # The calibrated score folds the class thresholds in: decision at 0.
  assert calibration.threshold == 0.0
  shifted = np.concatenate([calibration.member_scores,
                            calibration.non_member_scores])
  assert shifted.size == len(outputs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hconf_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  data = base.AttackerData((_random_shadow(rng, 120, 80, 3),))
  calibration = threshold.hconf().fit(data)
  choice = calibration.choose()
  outputs, is_member, _ = data.pooled_shadows()
  expected = _brute_force_ba(outputs.true_class_confidence(), is_member)
  assert choice.balanced_accuracy == pytest.approx(expected)


def test_signal_directions():
  confident = inputs.ModelOutputs.from_probs([[0.98, 0.01, 0.01]], [0])
  unsure = inputs.ModelOutputs.from_probs([[0.4, 0.3, 0.3]], [0])
  for signal in (threshold.confidence_signal, threshold.negative_entropy_signal,
                 threshold.negative_modified_entropy_signal):
    assert signal(confident)[0] > signal(unsure)[0]


def test_class_without_shadow_members_falls_back_to_global_threshold():
  signal = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3])
  labels = np.array([0, 0, 0, 0, 1, 1])
  is_member = np.array([True, True, False, False, False, False])
  thresholds = threshold.per_class_thresholds(signal, labels, is_member, 3)
  assert 0.2 < thresholds[0] <= 0.8
  glob = threshold.per_class_thresholds(signal, np.zeros(6, int), is_member, 1)
  np.testing.assert_allclose(thresholds[1:], glob[0])


def test_scoring_needs_fit_and_matching_classes():
  rng = np.random.default_rng(0)
  attack = threshold.conf()
  query = base.TargetQuery(_random_shadow(rng, 5, 5, 3).members)
  with pytest.raises(ValueError, match="fitted"):
    attack.score(query)
  attack.fit(base.AttackerData((_random_shadow(rng, 30, 30, 4),)))
  with pytest.raises(ValueError, match="3 classes but the shadows had 4"):
    attack.score(query)
