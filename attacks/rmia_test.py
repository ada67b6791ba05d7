"""Tests of RMIA's score."""

import numpy as np
import pytest

from attacks import base
from attacks import inputs
from attacks import rmia


def test_score_counts_population_and_breaks_ties_by_ratio():
  rng = np.random.default_rng(0)
  px, ref_px = rng.uniform(0.01, 1, 200), rng.uniform(0.01, 1, 200)
  pz, ref_pz = rng.uniform(0.01, 1, 50), rng.uniform(0.01, 1, 50)
  gamma = 1.5
  scores = rmia.rmia_scores(px, ref_px, pz, ref_pz, gamma)
  ratio_x, ratio_z = px / ref_px, pz / ref_pz
  # The paper's score: fraction of z with LR(x, z) >= gamma.
  paper = ((ratio_x[:, None] / ratio_z[None]) >= gamma).mean(1)
  np.testing.assert_array_equal(np.floor(scores * 51), np.round(paper * 50))
  # Strictly increasing in p(x|θ)/p(x), so no ties remain.
  order = np.argsort(ratio_x)
  assert np.all(np.diff(scores[order]) > 0)
  assert scores.min() >= 0 and scores.max() <= 1


def test_rmia_needs_population_and_two_models():
  out = inputs.ModelOutputs.from_logits(np.zeros((4, 2)), [0, 1, 0, 1],
                                        record_ids=np.arange(4))
  mask = np.array([[True, False, True, False], [False, True, False, True]])
  no_pop = inputs.ReferenceOutputs(np.arange(4), mask, (out, out))
  with pytest.raises(ValueError, match="population"):
    rmia.rmia().fit(base.AttackerData(reference=no_pop))
  one = inputs.ReferenceOutputs(np.arange(4), mask[:1], (out,), (out,))
  with pytest.raises(ValueError, match="at least 2 reference"):
    rmia.rmia().fit(base.AttackerData(reference=one))
