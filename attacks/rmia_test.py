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


def test_reference_marginal():
  rng = np.random.default_rng(0)
  in_mask = np.zeros((10, 6), bool)
  for j in range(6):
    in_mask[rng.permutation(10)[:8], j] = True  # IN 8 of 10 models
  px = np.where(in_mask, 0.9, 0.3) + rng.uniform(-0.05, 0.05, (10, 6))
  np.testing.assert_allclose(rmia.reference_marginal(px, in_mask, "all"),
                             px.mean(0))
  in_out = rmia.reference_marginal(px, in_mask, "in_out")
  expected = [0.5 * (px[in_mask[:, j], j].mean() + px[~in_mask[:, j], j].mean())
              for j in range(6)]
  np.testing.assert_allclose(in_out, expected)
  # The plain mean leans to the IN side (0.78); the even prior does not.
  assert np.all(np.abs(in_out - 0.6) < 0.06)
  assert np.all(px.mean(0) > 0.7)
  # A balanced design: both agree.
  half = np.array([[True, False], [False, True], [True, False],
                   [False, True]])
  px2 = rng.uniform(0.1, 1, (4, 2))
  np.testing.assert_allclose(rmia.reference_marginal(px2, half, "in_out"),
                             px2.mean(0))
  # Records with models on one side only take that side's mean.
  one_sided = np.array([[True, False], [True, False]])
  np.testing.assert_allclose(
      rmia.reference_marginal(px2[:2], one_sided, "in_out"), px2[:2].mean(0))
  with pytest.raises(ValueError, match="'all' or 'in_out'"):
    rmia.reference_marginal(px2, half, "median")


def test_marginal_mode_auto_follows_the_design():
  halves = np.array([[True, False], [False, True]])
  assert rmia.marginal_mode(halves, "auto") == "all"
  assert rmia.marginal_mode(np.ones((3, 2), bool) & [True, False],
                            "auto") == "in_out"
  assert rmia.marginal_mode(halves, "in_out") == "in_out"


def test_attack_options_check_rmia_marginal():
  with pytest.raises(ValueError, match="rmia_marginal"):
    base.AttackOptions(rmia_marginal="median")
