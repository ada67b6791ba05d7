"""Known-answer tests of every attack through the whole suite.

A memorizing (lookup) model must be detected with AUC >= 0.99 by every
score-based attack; a membership-independent model must give AUC 0.5 ± 0.05
on >= 2,000 victim records. Models are queried through `attacks.querying`
exactly like trained ones.
"""

import io
import logging

import numpy as np
import pytest

from attacks import base
from attacks import gap as gap_lib
from attacks import privacy_report
from attacks import registry
from attacks import suite
from attacks import testing_utils
from wemem_tf import progress
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds

# Epochs enough for the one-block SAMIA to reach AUC >= 0.99 on the
# memorizer for every attack seed tried (0-2); at 8 its seed-0 AUC was 0.988-0.990.
FAST = base.AttackOptions(max_epochs=15, patience=4, samia_width=16,
                          samia_heads=2, samia_layers=1)
SCORE_BASED = [n for n in registry.attack_names() if n != "gap"]


@pytest.fixture(scope="module")
def memorizing():
  setup = testing_utils.synthetic_setup(testing_utils.lookup_model)
  return setup, suite.run_attacks(registry.attack_names(), setup.attacker,
                                  setup.target, FAST)


@pytest.fixture(scope="module")
def independent():
  setup = testing_utils.synthetic_setup(
      testing_utils.independent_model, num_records=5000, members=1500,
      non_members=1500, shadow_pool=1600, num_shadows=2, holdout=300)
  return setup, suite.run_attacks(registry.attack_names(), setup.attacker,
                                  setup.target, FAST)


@pytest.mark.parametrize("name", SCORE_BASED)
def test_memorizing_model_is_detected(memorizing, name):
  result = memorizing[1].by_name()[name]
  assert result.auc >= 0.99, (name, result.auc)
  assert result.balanced_accuracy >= 0.9, (name, result.balanced_accuracy)


def test_gap_on_memorizing_model_matches_accuracy_gap(memorizing):
  setup, results = memorizing
  gap = results.by_name()["gap"]
  acc_in = setup.target.members.correct().mean()
  acc_out = setup.target.non_members.correct().mean()
  assert acc_in == 1.0
  assert gap.auc == pytest.approx(0.5 * (1 + acc_in - acc_out))
  assert gap.balanced_accuracy == pytest.approx(0.5 * (1 + acc_in - acc_out))


@pytest.mark.parametrize("fixture", ["memorizing", "independent"])
def test_label_only_bound_is_the_gap_attacks_balanced_accuracy(fixture,
                                                               request):
  setup, results = request.getfixturevalue(fixture)
  acc_in = setup.target.members.correct().mean()
  acc_out = setup.target.non_members.correct().mean()
  assert results.by_name()["gap"].balanced_accuracy == pytest.approx(
      gap_lib.label_only_bound(acc_in, acc_out))
  assert gap_lib.label_only_bound(0.9, 0.6) == pytest.approx(0.65)
  assert gap_lib.label_only_bound(0.6, 0.6) == 0.5
  with pytest.raises(ValueError, match=r"member_accuracy must lie in"):
    gap_lib.label_only_bound(1.2, 0.5)


@pytest.mark.parametrize("name", registry.attack_names())
def test_independent_model_gives_chance(independent, name):
  setup, results = independent
  assert len(setup.target.members) + len(setup.target.non_members) >= 2000
  result = results.by_name()[name]
  assert abs(result.auc - 0.5) <= 0.05, (name, result.auc)
  assert abs(result.balanced_accuracy - 0.5) <= 0.05, (
      name, result.balanced_accuracy)


def test_results_work_in_tensorflow_privacy(memorizing):
  _, results = memorizing
  attack_results = results.attack_results()
  assert isinstance(attack_results, tfp_ds.AttackResults)
  summary = attack_results.summary(by_slices=True)
  assert "achieved an AUC of" in summary
  frame = attack_results.calculate_pd_dataframe()
  assert sorted(frame["attack type"]) == sorted(
      n.upper() for n in registry.attack_names())
  best = attack_results.get_result_with_max_auc()
  assert best.get_auc() >= 0.99
  # Complete privacy-report metadata without being given any (the target's
  # outputs: accuracies and losses), so tensorflow-privacy's report runs.
  meta = attack_results.privacy_report_metadata
  assert all(getattr(meta, f) is not None
             for f in privacy_report.METADATA_FIELDS)
  assert meta.epoch_num == 0
  assert meta.loss_train < meta.loss_test
  fig = privacy_report.plot_by_epochs([attack_results])
  assert len(fig.axes) == len(privacy_report.PRIVACY_METRICS)
  rows = results.rows()
  assert [r["attack"] for r in rows] == registry.attack_names()
  for row in rows:
    for key in ("balanced_accuracy", "auc", "tpr_at_1pct_fpr",
                "tpr_at_zero_fpr", "advantage", "seconds"):
      assert np.isfinite(row[key]), (row["attack"], key)
    # 300 non-members: an FPR of 0.1% is below the resolution 1/300.
    assert row["tpr_at_0.1pct_fpr"] is None, row["attack"]
    assert "1/300" in row["not_estimable"]["tpr_at_0.1pct_fpr"]
    low, high = row["intervals"]["auc"]
    assert low <= row["auc"] <= high, row["attack"]
  table = results.table()
  assert "conf" in table and "n/a" in table


def test_attacks_never_see_victim_labels_order(memorizing):
  # The query is shuffled: members are not simply first.
  setup, _ = memorizing
  _, is_member = setup.target.query(seed=0)
  assert 0 < is_member[:len(setup.target.members)].mean() < 1


def test_missing_inputs_are_reported():
  setup = testing_utils.synthetic_setup(
      testing_utils.independent_model, num_records=900, members=100,
      non_members=100, shadow_pool=200, holdout=100, with_sensitivity=False)
  with pytest.raises(ValueError, match="sensitivity"):
    suite.run_attacks(["samia"], setup.attacker, setup.target, FAST)
  no_reference = base.AttackerData(setup.attacker.shadows)
  with pytest.raises(ValueError, match="reference models"):
    suite.run_attacks(["lira_online"], no_reference, setup.target, FAST)
  no_shadows = base.AttackerData((), setup.attacker.reference)
  with pytest.raises(ValueError, match="shadow models"):
    suite.run_attacks(["conf"], no_shadows, setup.target, FAST)
  no_population = base.TargetData(setup.target.members,
                                  setup.target.non_members)
  with pytest.raises(ValueError, match="population"):
    suite.run_attacks(["rmia"], setup.attacker, no_population, FAST)


def test_pooling_copies_of_one_victim_gives_its_metrics(memorizing):
  """A pooled audit of N copies of the same victim has the victim's own
  metrics (the pooled ROC is the victim's ROC); only the counts grow."""
  setup, single = memorizing
  names = ["conf", "mentr", "lira_online", "rmia", "gap"]
  pooled = suite.run_attacks(names, setup.attacker, [setup.target] * 3,
                             FAST)
  for name in names:
    one, three = single.by_name()[name], pooled.by_name()[name]
    assert len(three.member_scores) == 3 * len(one.member_scores)
    assert len(three.non_member_scores) == 3 * len(one.non_member_scores)
    assert three.auc == pytest.approx(one.auc, abs=1e-12), name
    assert three.balanced_accuracy == pytest.approx(one.balanced_accuracy,
                                                    abs=1e-12), name
    for f, tpr in one.tpr_at_low_fpr.items():
      assert three.tpr_at_low_fpr[f] == pytest.approx(tpr, abs=1e-12), name
    assert three.threshold == one.threshold
  with pytest.raises(ValueError, match="at least one target"):
    suite.run_attacks(["conf"], setup.attacker, [], FAST)


def test_attacks_count_on_a_bar_and_log_one_line_each_only_at_debug(caplog):
  setup = testing_utils.synthetic_setup(testing_utils.lookup_model)
  with caplog.at_level(logging.INFO), progress.drawn_to(io.StringIO()) as out:
    suite.run_attacks(["gap", "conf"], setup.attacker, setup.target, FAST)
  assert "attacks" in out.getvalue() and "2/2" in out.getvalue()
  assert not [r for r in caplog.records if r.getMessage().startswith("attack")]
  with caplog.at_level(logging.DEBUG):  # absl's --verbosity=1
    suite.run_attacks(["gap"], setup.attacker, setup.target, FAST)
  assert [r.getMessage() for r in caplog.records
          if r.getMessage().startswith("attack gap: balanced accuracy")]
