"""The run report: the attacker-side best attack never depends on the
victim's membership labels, intervals and the estimability rule reach
report.json and report.md."""

import json
import math

import numpy as np

from attacks import metrics
from wemem_eval import report as report_lib

# name: (member score shift on the victim, calibration balanced accuracy)
ATTACKS = {"conf": (0.3, 0.58), "lira_online": (0.8, 0.66),
           "rmia": (1.0, 0.64), "gap": (0.1, float("nan"))}


def _rows(rng, attacks=ATTACKS, members=300, non_members=200):
  rows = []
  for name, (shift, calibration) in attacks.items():
    pos = rng.normal(shift, 1, members)
    neg = rng.normal(0, 1, non_members)
    rows.append(metrics.evaluate(name, pos, neg, shift / 2,
                                 calibration).to_json())
  return rows


def _scrambled(rng, rows):
  """The same attacks with the victim's member / non-member labels
  shuffled: every victim-side number changes, nothing of the attacker's."""
  out = []
  for row, (name, (shift, calibration)) in zip(rows, ATTACKS.items()):
    scores = rng.permutation(np.concatenate([
        rng.normal(shift, 1, row["num_members"]),
        rng.normal(0, 1, row["num_non_members"])]))
    split = row["num_members"]
    out.append(metrics.evaluate(name, scores[:split], scores[split:],
                                row["threshold"], calibration).to_json())
  return out


def _write_run(run_dir, rows_by_label):
  run_dir.mkdir()
  (run_dir / "manifest.json").write_text(json.dumps({
      "seed": 3, "settings": {"dataset": "location"},
      "data_fingerprint": "f" * 64}))
  for label, rows in rows_by_label.items():
    folder = run_dir / "experiments" / label
    folder.mkdir(parents=True)
    (folder / "step.json").write_text(json.dumps({"kind": "defense"}))
    (folder / "attacks.json").write_text(json.dumps({
        "victim_test_accuracy": 0.6, "victim_train_accuracy": 0.9,
        "models": {"victim": {"defense_seconds": 2.0}}, "attacks": rows}))
  return str(run_dir)


def test_attacker_side_choice_ignores_victim_labels():
  rng = np.random.default_rng(0)
  rows = _rows(rng)
  chosen = report_lib.attacker_side_best(
      {r["attack"]: r for r in rows})
  # Highest calibration balanced accuracy; NaN (gap) skipped.
  assert chosen["attack"] == "lira_online"
  victim_side = set()
  for _ in range(20):
    scrambled = {r["attack"]: r for r in _scrambled(rng, rows)}
    assert report_lib.attacker_side_best(scrambled)["attack"] == "lira_online"
    assert scrambled["lira_online"]["balanced_accuracy"] != (
        rows[1]["balanced_accuracy"])
    victim_side.add(report_lib.victim_side_best(scrambled)["attack"])
  # The victim-side maximum does follow the victim's labels.
  assert len(victim_side) > 1


def test_attacker_side_ties_missing_and_none():
  rows = {"conf": {"balanced_accuracy": 0.6, "auc": 0.6,
                   "calibration_balanced_accuracy": 0.7},
          "entr": {"balanced_accuracy": 0.9, "auc": 0.9,
                   "calibration_balanced_accuracy": 0.7},
          "gap": {"balanced_accuracy": 0.95, "auc": 0.95}}
  best = report_lib.attacker_side_best(rows)
  assert best["attack"] == "conf" and best["balanced_accuracy"] == 0.6
  assert best["intervals"] is None  # rows without intervals
  assert report_lib.victim_side_best(rows)["attack"] == "gap"
  rows = {"gap": {"balanced_accuracy": 0.95, "auc": 0.95,
                  "calibration_balanced_accuracy": math.nan}}
  none = report_lib.attacker_side_best(rows)
  assert none["attack"] is None and none["balanced_accuracy"] is None
  assert "calibration" in none["reason"]


def test_report_carries_both_best_attacks_and_intervals(tmp_path):
  rng = np.random.default_rng(1)
  run_dir = _write_run(tmp_path / "run", {"base": _rows(rng),
                                          "rsw": _rows(rng)})
  report = report_lib.write_report(run_dir, ["base", "rsw"])
  assert json.loads((tmp_path / "run" / "report.json").read_text()) == (
      json.loads(json.dumps(report)))
  entry = report["defenses"]["base"]
  victim_side = entry["best_attack"]
  assert victim_side["kind"] == report_lib.VICTIM_SIDE
  assert victim_side["balanced_accuracy"] == max(
      r["balanced_accuracy"] for r in entry["attacks"].values())
  attacker_side = entry["best_attack_attacker_side"]
  assert attacker_side["attack"] == "lira_online"
  row = entry["attacks"]["lira_online"]
  assert attacker_side["balanced_accuracy"] == row["balanced_accuracy"]
  assert attacker_side["intervals"] == {
      "balanced_accuracy": row["intervals"]["balanced_accuracy"],
      "auc": row["intervals"]["auc"]}
  low, high = attacker_side["intervals"]["balanced_accuracy"]
  assert low < attacker_side["balanced_accuracy"] < high
  # gap had no calibration data (NaN in attacks.json): null in the report.
  assert entry["attacks"]["gap"]["calibration_balanced_accuracy"] is None
  # 200 non-members: 0.1% FPR is not estimable, 1% is.
  assert row["tpr_at_0.1pct_fpr"] is None
  assert "1/200" in row["not_estimable"]["tpr_at_0.1pct_fpr"]
  assert row["tpr_at_1pct_fpr"] is not None
  assert row["fpr_resolution"] == 0.005 and row["num_non_members"] == 200
  text = (tmp_path / "run" / "report.md").read_text()
  assert "victim-side max" in text and "attacker-side" in text
  assert "| base | 60.0 | " in text
  lo, hi = row["intervals"]["auc"]
  assert (f"{100 * row['auc']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
          in text)
  assert "| base | 300 | 200 | 0.5 |" in text
  assert "n/a" in text
  # The label-only bound is the gap attack's balanced accuracy; the excess
  # is each best attack above it.
  bound = entry["label_only_bound"]
  assert bound == {"balanced_accuracy":
                   entry["attacks"]["gap"]["balanced_accuracy"],
                   "source": "gap attack"}
  assert entry["excess_leakage"] == {
      "victim_side": victim_side["balanced_accuracy"]
                     - bound["balanced_accuracy"],
      "attacker_side": attacker_side["balanced_accuracy"]
                       - bound["balanced_accuracy"]}
  assert entry["excess_leakage"]["victim_side"] >= 0
  assert f"| {100 * bound['balanced_accuracy']:.1f} | " in text


def test_without_the_gap_attack_the_bound_comes_from_the_accuracies(
    tmp_path):
  rng = np.random.default_rng(2)
  no_gap = {k: v for k, v in ATTACKS.items() if k != "gap"}
  run_dir = _write_run(tmp_path / "run", {"base": _rows(rng, no_gap)})
  entry = report_lib.write_report(run_dir, ["base"])["defenses"]["base"]
  # attacks.json of _write_run: train accuracy 0.9, test accuracy 0.6.
  assert math.isclose(entry["label_only_bound"]["balanced_accuracy"], 0.65)
  assert entry["label_only_bound"]["source"].startswith("victim train")
  assert math.isclose(entry["excess_leakage"]["victim_side"],
                      entry["best_attack"]["balanced_accuracy"] - 0.65)


def test_old_attacks_json_goes_through_the_estimability_rule(tmp_path):
  # Written before intervals: a number where the rate is not estimable.
  old = {"attack": "conf", "balanced_accuracy": 0.7, "auc": 0.75,
         "tpr_at_0.1pct_fpr": 0.02, "tpr_at_1pct_fpr": 0.05,
         "advantage": 0.4, "seconds": 1.0, "num_members": 1804,
         "num_non_members": 463, "calibration_balanced_accuracy": 0.69}
  run_dir = _write_run(tmp_path / "run", {"base": [old]})
  entry = report_lib.collect(run_dir, ["base"])["defenses"]["base"]
  row = entry["attacks"]["conf"]
  assert row["tpr_at_0.1pct_fpr"] is None
  assert row["not_estimable"] == {"tpr_at_0.1pct_fpr": (
      "FPR resolution 1/463 = 0.216% is above 0.1%: this would be the TPR "
      "at zero false positives")}
  assert row["tpr_at_1pct_fpr"] == 0.05
  assert entry["best_attack_attacker_side"]["attack"] == "conf"
  assert entry["best_attack"]["intervals"] is None
  text = report_lib.markdown(report_lib.collect(run_dir, ["base"]))
  # No gap attack: the bound (1 + 0.9 − 0.6) / 2 from the accuracies.
  assert ("| base | 60.0 | conf | 70.0 | 75.0 | conf | 70.0 | 75.0 | 65.0 | "
          "5.0 / 5.0 | 2.0 |") in text
