"""The tuning objective's formulas, with hand-computed values."""

import pytest

from wemem_eval.tuning import objective as objective_lib


def test_constrained_feasible_trials_score_their_dev_accuracy():
  obj = objective_lib.TuningObjective("constrained", attack_target=0.7)
  assert obj.score(0.64, 0.70) == pytest.approx(0.64)  # on the boundary
  assert obj.score(0.61, 0.55) == pytest.approx(0.61)
  assert obj.feasible(0.70) and not obj.feasible(0.7001)


def test_constrained_infeasible_trials_rank_below_every_feasible_one():
  obj = objective_lib.TuningObjective("constrained", attack_target=0.7)
  infeasible_close = obj.score(0.99, 0.72)
  infeasible_far = obj.score(0.99, 0.90)
  assert infeasible_close == pytest.approx(-0.02)
  assert infeasible_far == pytest.approx(-0.20)
  assert infeasible_far < infeasible_close < obj.score(0.0, 0.7)


def test_weighted_form():
  obj = objective_lib.TuningObjective("weighted", weight=2.0)
  assert obj.score(0.65, 0.75) == pytest.approx(0.65 - 2.0 * 0.25)
  assert obj.score(0.60, 0.50) == pytest.approx(0.60)
  assert obj.feasible(0.99) is None
  # Weight 0 is pure utility.
  assert objective_lib.TuningObjective("weighted", weight=0.0).score(
      0.6, 0.99) == pytest.approx(0.6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="lexicographic"), "lexicographic"),
    (dict(attack_target=0.5), "attack_target"),
    (dict(attack_target=1.2), "attack_target"),
    (dict(weight=-1.0), "weight"),
])
def test_bad_objectives_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    objective_lib.TuningObjective(**kwargs)


def test_out_of_range_accuracies_are_refused():
  obj = objective_lib.TuningObjective()
  with pytest.raises(ValueError, match="dev_accuracy"):
    obj.score(65.0, 0.7)  # percent instead of a fraction
  with pytest.raises(ValueError, match="attack_accuracy"):
    obj.score(0.6, float("nan"))


def test_trial_metrics_pick_the_strongest_attack():
  metrics = objective_lib.TrialMetrics.from_attacks(
      0.6, {"conf": 0.71, "rmia": 0.74, "gap": 0.6}, 0.58, 3.0)
  assert metrics.strongest_attack == "rmia"
  assert metrics.attack_accuracy == pytest.approx(0.74)
  flat = metrics.metrics(objective_lib.TuningObjective(attack_target=0.75))
  assert flat["score"] == pytest.approx(0.6)
  assert flat["attack_conf"] == pytest.approx(0.71)
  with pytest.raises(ValueError, match="no attack"):
    objective_lib.TrialMetrics.from_attacks(0.6, {}, 0.5, 1.0)


def test_mean_of_rehearsals():
  a = objective_lib.TrialMetrics.from_attacks(
      0.6, {"conf": 0.70, "lira": 0.60}, 0.5, 2.0)
  b = objective_lib.TrialMetrics.from_attacks(
      0.6, {"conf": 0.60, "lira": 0.74}, 0.7, 4.0)
  m = objective_lib.TrialMetrics.mean_of([a, b])
  # The mean of each rehearsal's strongest attack (0.70, 0.74), not the
  # strongest mean (lira 0.67).
  assert m.attack_accuracy == pytest.approx(0.72)
  assert m.strongest_attack == "lira"
  assert m.attacks == pytest.approx({"conf": 0.65, "lira": 0.67})
  assert (m.dev_accuracy, m.rehearsal_test_accuracy, m.defense_seconds) == (
      pytest.approx(0.6), pytest.approx(0.6), pytest.approx(3.0))
  assert objective_lib.TrialMetrics.mean_of([a]) == a
  with pytest.raises(ValueError, match="no measurements"):
    objective_lib.TrialMetrics.mean_of([])
