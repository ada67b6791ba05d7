"""Tests of attack metrics against brute-force computations."""

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from attacks import metrics
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds


def brute_force_best_ba(pos, neg):
  """Max balanced accuracy of 'score >= t' over every candidate t."""
  candidates = np.concatenate([np.unique(np.concatenate([pos, neg])),
                               [np.inf]])
  return max(0.5 * (np.mean(pos >= t) + np.mean(neg < t)) for t in candidates)


def brute_force_tpr_at_fpr(pos, neg, max_fpr):
  best = 0.0
  for t in np.concatenate([np.unique(np.concatenate([pos, neg])), [np.inf]]):
    if np.mean(neg >= t) <= max_fpr:
      best = max(best, np.mean(pos >= t))
  return best


scores = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=30)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(scores, scores)
def test_best_threshold_matches_brute_force_on_ties(pos, neg):
  pos, neg = np.array(pos), np.array(neg)
  choice = metrics.best_threshold(pos, neg)
  expected = brute_force_best_ba(pos, neg)
  assert choice.balanced_accuracy == pytest.approx(expected)
  # The returned threshold really achieves it.
  assert metrics.balanced_accuracy(pos, neg, choice.threshold) == (
      pytest.approx(expected))


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_on_random_continuous_scores(seed):
  rng = np.random.default_rng(seed)
  pos = rng.normal(0.3, 1, 400)
  neg = rng.normal(0, 1, 150)
  choice = metrics.best_threshold(pos, neg)
  assert choice.balanced_accuracy == pytest.approx(brute_force_best_ba(pos, neg))
  assert metrics.balanced_accuracy(pos, neg, choice.threshold) == (
      pytest.approx(choice.balanced_accuracy))


def test_best_threshold_edge_cases():
  # Perfect separation: threshold between the groups.
  choice = metrics.best_threshold([3.0, 4.0], [1.0, 2.0])
  assert choice.balanced_accuracy == 1.0 and 2.0 < choice.threshold <= 3.0
  # Anti-correlated scores: nothing beats predicting "non-member".
  choice = metrics.best_threshold([1.0, 2.0], [3.0, 4.0])
  assert choice.balanced_accuracy == 0.5 and choice.threshold > 4.0
  # Identical scores carry no signal.
  assert metrics.best_threshold([1.0], [1.0]).balanced_accuracy == 0.5
  with pytest.raises(ValueError, match="at least one member"):
    metrics.best_threshold([], [1.0])
  with pytest.raises(ValueError, match="NaN"):
    metrics.best_threshold([np.nan], [1.0])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_fpr", [0.001, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_matches_direct_computation(seed, max_fpr):
  rng = np.random.default_rng(seed)
  pos = np.round(rng.normal(1, 1, 300), 1)  # rounding creates ties
  neg = np.round(rng.normal(0, 1, 1200), 1)
  roc = metrics.roc_curve(pos, neg)
  assert metrics.tpr_at_fpr(roc, max_fpr) == pytest.approx(
      brute_force_tpr_at_fpr(pos, neg, max_fpr))


def test_auc_and_advantage_against_definitions():
  rng = np.random.default_rng(3)
  pos, neg = rng.normal(0.5, 1, 200), rng.normal(0, 1, 300)
  result = metrics.evaluate("x", pos, neg, threshold=0.25)
  # AUC = P(score_member > score_non_member) (Mann-Whitney).
  wins = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]
                                                    ).mean()
  assert result.auc == pytest.approx(wins)
  gaps = [abs(np.mean(pos >= t) - np.mean(neg >= t))
          for t in np.concatenate([pos, neg])]
  assert result.advantage == pytest.approx(max(gaps))
  tpr, fpr = np.mean(pos >= 0.25), np.mean(neg >= 0.25)
  assert result.balanced_accuracy == pytest.approx(0.5 * (tpr + 1 - fpr))
  assert result.advantage_at_threshold == pytest.approx(tpr - fpr)


def test_balanced_accuracy_ignores_class_ratio():
  # Always "member" is 0.5 however unbalanced the sets are (plain accuracy
  # would be 0.9 here: the flaw of docs/method.md §10).
  assert metrics.balanced_accuracy(np.ones(900), np.ones(100), 0.5) == 0.5


def test_tensorflow_privacy_round_trip():
  rng = np.random.default_rng(0)
  result = metrics.evaluate("mentr", rng.normal(1, 1, 120),
                            rng.normal(0, 1, 80), 0.5,
                            attack_type=metrics.SuiteAttackType("mentr"),
                            member_ids=np.arange(120),
                            non_member_ids=np.arange(120, 200))
  single = result.to_single_attack_result()
  assert single.get_auc() == pytest.approx(result.auc)
  assert single.get_attacker_advantage() == pytest.approx(result.advantage)
  assert single.data_size == tfp_ds.DataSize(ntrain=120, ntest=80)
  assert str(single.attack_type) == "MENTR"
  assert "MENTR" in str(single)
  results = metrics.to_attack_results(
      [result], tfp_ds.PrivacyReportMetadata(accuracy_train=1.0,
                                             accuracy_test=0.6, epoch_num=1))
  assert "MENTR" in results.summary()
  row = result.to_json()
  # 80 non-members: FPR <= 0.1% and <= 1% both allow no false positive.
  assert row["tpr_at_0.1pct_fpr"] is None and row["tpr_at_1pct_fpr"] is None
  assert row["tpr_at_zero_fpr"] == result.tpr_at_low_fpr[0.001]
  assert row["num_members"] == 120 and row["num_non_members"] == 80


def test_privacy_report_plot_accepts_suite_results():
  from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import privacy_report  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  collection = []
  for epoch in (1, 2):
    result = metrics.evaluate("conf", rng.normal(epoch, 1, 50),
                              rng.normal(0, 1, 50), 0.5)
    collection.append(metrics.to_attack_results(
        [result], tfp_ds.PrivacyReportMetadata(
            accuracy_train=0.9, accuracy_test=0.6, epoch_num=epoch,
            model_variant_label="m")))
  fig = privacy_report.plot_by_epochs(
      tfp_ds.AttackResultsCollection(collection), [tfp_ds.PrivacyMetric.AUC])
  assert fig is not None
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  plt.close(fig)


def test_tpr_below_the_fpr_resolution_is_not_estimable():
  rng = np.random.default_rng(4)
  pos, neg = rng.normal(2, 1, 300), rng.normal(0, 1, 100)
  result = metrics.evaluate("x", pos, neg, threshold=1.0)
  row = result.to_json()
  assert row["fpr_resolution"] == 0.01
  assert row["tpr_at_0.1pct_fpr"] is None
  assert row["not_estimable"] == {"tpr_at_0.1pct_fpr": (
      "FPR resolution 1/100 = 1% is above 0.1%: this would be the TPR at "
      "zero false positives")}
  assert row["intervals"]["tpr_at_0.1pct_fpr"] is None
  # 1% = one false positive in 100: estimable.
  assert row["tpr_at_1pct_fpr"] == brute_force_tpr_at_fpr(pos, neg, 0.01)
  low, high = row["intervals"]["tpr_at_1pct_fpr"]
  assert low <= row["tpr_at_1pct_fpr"] <= high
  # What the not-estimable rate would have said: the TPR at zero false
  # positives, which is reported as such.
  assert row["tpr_at_zero_fpr"] == np.mean(pos > neg.max())
  assert result.tpr_at_low_fpr[0.001] == row["tpr_at_zero_fpr"]
  assert result.reported_tpr_at_fpr(0.001) is None


def test_reason_names_the_resolution():
  assert metrics.not_estimable_reason(0.001, 463) == (
      "FPR resolution 1/463 = 0.216% is above 0.1%: this would be the TPR "
      "at zero false positives")
  assert metrics.not_estimable_reason(0.001, 1000) is None
  assert metrics.not_estimable_reason(0.01, 463) is None
  assert metrics.tpr_key(0.001) == "tpr_at_0.1pct_fpr"
  assert metrics.tpr_key(0.01) == "tpr_at_1pct_fpr"


def test_row_carries_intervals_of_every_metric():
  rng = np.random.default_rng(6)
  pos, neg = rng.normal(0.5, 1, 1500), rng.normal(0, 1, 1200)
  result = metrics.evaluate("x", pos, neg, threshold=0.25)
  row = result.to_json()
  assert row["not_estimable"] == {}
  assert row["confidence"] == 0.95 and row["bootstrap_resamples"] == 1000
  assert set(row["intervals"]) == {"balanced_accuracy", "auc",
                                   "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr"}
  for key, (low, high) in row["intervals"].items():
    assert low <= row[key] <= high, key
  # About ±1.96 standard errors: the AUC's is about 0.011 here.
  low, high = row["intervals"]["auc"]
  assert 0.03 < high - low < 0.06
  # Deterministic, and optional.
  assert metrics.evaluate("x", pos, neg, 0.25).to_json()["intervals"] == (
      row["intervals"])
  bare = metrics.evaluate("x", pos, neg, 0.25, bootstrap_resamples=0)
  assert bare.to_json()["intervals"] is None
