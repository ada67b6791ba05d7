"""Tests of LiRA on synthetic reference outputs."""

import numpy as np
import pytest

from attacks import base
from attacks import inputs
from attacks import lira


def _reference(phi, in_mask, labels=None):
  """ReferenceOutputs whose logit-scaled confidence is exactly phi (R, n)."""
  r, n = phi.shape
  labels = np.zeros(n, np.int64) if labels is None else labels
  outs = []
  for row in phi:
    logits = np.zeros((n, 2))
    logits[np.arange(n), labels] = row  # φ = z_y − z_other
    outs.append(inputs.ModelOutputs.from_logits(logits, labels,
                                                record_ids=np.arange(n)))
  return inputs.ReferenceOutputs(np.arange(n), in_mask, tuple(outs))


def _halves(r, n, rng):
  mask = np.zeros((r, n), bool)
  for k in range(0, r, 2):
    half = rng.permutation(n)[:n // 2]
    mask[k, half] = True
    mask[k + 1] = ~mask[k]
  return mask


def test_gaussian_fit_per_record_and_pooled():
  phi = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 9.0]])
  mask = np.array([[True, True], [True, False], [False, True]])
  mean, std, count = lira.gaussian_fit(phi, mask, per_record=True)
  np.testing.assert_allclose(mean, [2.0, 7.0])
  np.testing.assert_array_equal(count, [2, 2])
  np.testing.assert_allclose(std, [np.sqrt(2.0), np.sqrt(8.0)])
  _, pooled, _ = lira.gaussian_fit(phi, mask, per_record=False)
  np.testing.assert_allclose(pooled, np.sqrt((2.0 + 8.0) / 2))


@pytest.mark.parametrize("online", [True, False])
def test_lira_separates_in_from_out(online):
  rng = np.random.default_rng(0)
  r, n = 8, 400
  mask = _halves(r, n, rng)
  base_phi = rng.normal(0, 2, n)
  phi = base_phi + 3.0 * mask + rng.normal(0, 0.5, (r, n))
  attack = lira.LiRA(online)
  calibration = attack.fit(base.AttackerData(reference=_reference(phi, mask)))
  choice = calibration.choose()
  assert choice.balanced_accuracy > 0.95
  # A target that trained on the first half.
  member = np.zeros(n, bool)
  member[:n // 2] = True
  target_phi = base_phi + 3.0 * member + rng.normal(0, 0.5, n)
  logits = np.stack([target_phi, np.zeros(n)], 1)
  query = base.TargetQuery(inputs.ModelOutputs.from_logits(
      logits, np.zeros(n, np.int64), record_ids=np.arange(n)))
  scores = attack.score(query)
  assert scores[member].min() > scores[~member].max() - 5  # mostly separated
  assert np.mean(scores[member] >= choice.threshold) > 0.95
  assert np.mean(scores[~member] < choice.threshold) > 0.95


def test_too_few_reference_models_rejected():
  rng = np.random.default_rng(0)
  mask = _halves(2, 10, rng)
  ref = _reference(rng.normal(size=(2, 10)), mask)
  for online in (True, False):
    with pytest.raises(ValueError, match="at least 4 reference"):
      lira.LiRA(online).fit(base.AttackerData(reference=ref))


def test_records_without_in_models_rejected():
  rng = np.random.default_rng(0)
  mask = _halves(4, 10, rng)
  mask[:, 0] = False  # record 0 never IN
  ref = _reference(rng.normal(size=(4, 10)), mask)
  attack = lira.lira_online()
  attack.fit(base.AttackerData(reference=ref))
  query = base.TargetQuery(inputs.ModelOutputs.from_logits(
      np.zeros((2, 2)), [0, 0], record_ids=np.array([0, 1])))
  with pytest.raises(ValueError, match="1 target records have no IN and OUT"):
    attack.score(query)
  lira.lira_offline().fit(base.AttackerData(reference=ref))  # OUT suffices


def test_unknown_or_missing_record_ids_rejected():
  rng = np.random.default_rng(0)
  ref = _reference(rng.normal(size=(4, 10)), _halves(4, 10, rng))
  attack = lira.lira_offline()
  attack.fit(base.AttackerData(reference=ref))
  no_ids = base.TargetQuery(inputs.ModelOutputs.from_logits(np.zeros((1, 2)),
                                                            [0]))
  with pytest.raises(ValueError, match="record_ids"):
    attack.score(no_ids)
  unknown = base.TargetQuery(inputs.ModelOutputs.from_logits(
      np.zeros((1, 2)), [0], record_ids=[99]))
  with pytest.raises(ValueError, match="not among the reference pool"):
    attack.score(unknown)
