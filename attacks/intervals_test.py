"""Bootstrap intervals against known answers: coverage on simulated scores
of known AUC, the unweighted statistics against their definitions, and the
weighted ones against explicitly repeated scores."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics

from attacks import intervals
from attacks import metrics

FPRS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0)


def _tied_scores(rng, n_in, n_out):
  # Rounding to one decimal creates ties within and across the groups.
  return (np.round(rng.normal(1, 1, n_in), 1),
          np.round(rng.normal(0, 1, n_out), 1))


def _sk_auc(pos, neg):
  return sk_metrics.roc_auc_score(
      np.concatenate([np.ones(pos.size), np.zeros(neg.size)]),
      np.concatenate([pos, neg]))


@pytest.mark.parametrize("seed", range(20))
def test_unit_weights_give_the_full_data_metrics(seed):
  rng = np.random.default_rng(seed)
  pos, neg = _tied_scores(rng, rng.integers(1, 80), rng.integers(1, 80))
  threshold = float(rng.choice(np.concatenate([pos, neg])))
  got = intervals.resampled_metrics(pos, neg, np.ones((1, pos.size)),
                                    np.ones((1, neg.size)), threshold, FPRS)
  assert got["balanced_accuracy"][0] == metrics.balanced_accuracy(
      pos, neg, threshold)
  # Same Mann-Whitney sum; sklearn integrates the ROC, so the last bit may
  # differ.
  assert got["auc"][0] == pytest.approx(_sk_auc(pos, neg), abs=1e-12)
  roc = metrics.roc_curve(pos, neg)
  for f in FPRS:
    assert got["tpr_at_fpr"][f][0] == metrics.tpr_at_fpr(roc, f), f


@pytest.mark.parametrize("seed", range(10))
def test_weights_equal_repeating_the_scores(seed):
  rng = np.random.default_rng(seed)
  pos, neg = _tied_scores(rng, rng.integers(1, 50), rng.integers(1, 50))
  w_in = intervals.resample_weights(pos.size, 4, rng)
  w_out = intervals.resample_weights(neg.size, 4, rng)
  threshold = float(rng.choice(np.concatenate([pos, neg])))
  got = intervals.resampled_metrics(pos, neg, w_in, w_out, threshold, FPRS)
  for b in range(4):
    p, n = np.repeat(pos, w_in[b]), np.repeat(neg, w_out[b])
    assert got["balanced_accuracy"][b] == pytest.approx(
        metrics.balanced_accuracy(p, n, threshold))
    assert got["auc"][b] == pytest.approx(_sk_auc(p, n))
    roc = metrics.roc_curve(p, n)
    for f in FPRS:
      assert got["tpr_at_fpr"][f][b] == pytest.approx(
          metrics.tpr_at_fpr(roc, f)), (b, f)


def test_resample_weights_are_multinomial_counts():
  rng = np.random.default_rng(0)
  weights = intervals.resample_weights(50, 4000, rng)
  assert weights.shape == (4000, 50)
  np.testing.assert_array_equal(weights.sum(axis=1), 50)
  # Each count is Binomial(50, 1/50): mean 1, variance 0.98.
  assert weights.mean() == pytest.approx(1.0)
  assert weights.var() == pytest.approx(0.98, rel=0.03)


def test_intervals_cover_known_values():
  # Members ~ N(d, 1), non-members ~ N(0, 1): AUC = Φ(d / √2), balanced
  # accuracy at t = ½ (P(N(d,1) >= t) + Φ(t)), TPR at FPR f =
  # P(N(d, 1) > Φ⁻¹(1 − f)).
  d, t, f = 0.5, 0.25, 0.1
  truth = {"auc": stats.norm.cdf(d / np.sqrt(2)),
           "balanced_accuracy": 0.5 * (stats.norm.sf(t - d) +
                                       stats.norm.cdf(t)),
           "tpr": stats.norm.sf(stats.norm.isf(f) - d)}
  rng = np.random.default_rng(123)
  covered = dict.fromkeys(truth, 0)
  repetitions = 200
  for _ in range(repetitions):
    result = intervals.bootstrap_intervals(
        rng.normal(d, 1, 300), rng.normal(0, 1, 150), t, (f,), rng=rng)
    for key, interval in (("auc", result.auc),
                          ("balanced_accuracy", result.balanced_accuracy),
                          ("tpr", result.tpr_at_fpr[f])):
      covered[key] += interval[0] <= truth[key] <= interval[1]
  share = {k: v / repetitions for k, v in covered.items()}
  assert 0.90 <= share["auc"] <= 0.99, share
  assert 0.90 <= share["balanced_accuracy"] <= 0.99, share
  assert share["tpr"] >= 0.90, share  # a quantile: allowed to be wider


def test_random_scores_cover_chance_and_separation_gives_one():
  rng = np.random.default_rng(5)
  covers_half = 0
  for _ in range(100):
    auc = intervals.bootstrap_intervals(rng.normal(0, 1, 200),
                                        rng.normal(0, 1, 100), 0.0,
                                        num_resamples=300, rng=rng).auc
    covers_half += auc[0] <= 0.5 <= auc[1]
  assert covers_half >= 88
  result = intervals.bootstrap_intervals(rng.normal(10, 1, 200),
                                         rng.normal(0, 1, 100), 5.0, FPRS)
  assert result.auc == (1.0, 1.0)
  assert result.balanced_accuracy == (1.0, 1.0)
  assert all(result.tpr_at_fpr[f] == (1.0, 1.0) for f in FPRS)


def test_seeded_and_order_free():
  rng = np.random.default_rng(2)
  pos, neg = _tied_scores(rng, 120, 80)
  first = intervals.bootstrap_intervals(pos, neg, 0.5, (0.01,))
  again = intervals.bootstrap_intervals(rng.permutation(pos),
                                        rng.permutation(neg), 0.5, (0.01,))
  assert first == again
  other = intervals.bootstrap_intervals(pos, neg, 0.5, (0.01,), seed=1)
  assert other.auc != first.auc
  assert first.auc[0] < _sk_auc(pos, neg) < first.auc[1]
  assert first.num_resamples == 1000 and first.confidence == 0.95
  with pytest.raises(ValueError, match="num_resamples"):
    intervals.bootstrap_intervals(pos, neg, 0.5, num_resamples=0)
