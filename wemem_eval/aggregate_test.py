"""Mean ± std across seeds, against hand-computed values."""

import json
import os

import pytest

from wemem_eval import aggregate


def _report(seed, test_acc, conf, rmia, seconds):
  attack = lambda b: {"balanced_accuracy": b, "auc": b + 0.05,
                      "tpr_at_0.1pct_fpr": 0.01, "tpr_at_1pct_fpr": 0.02,
                      "advantage": 0.1, "seconds": 0.1}
  best = "conf" if conf >= rmia else "rmia"
  return {"dataset": "location", "seed": seed, "defenses": {
      "base": {"kind": "defense", "test_accuracy": test_acc,
               "defense_seconds": seconds,
               "best_attack": {"attack": best,
                               "balanced_accuracy": max(conf, rmia)},
               "attacks": {"conf": attack(conf), "rmia": attack(rmia)}},
      **({"extra": {}} if seed == 0 else {})}}


def _write(tmp_path, reports):
  dirs = []
  for r in reports:
    d = tmp_path / f"seed{r['seed']}"
    d.mkdir()
    (d / "report.json").write_text(json.dumps(r))
    dirs.append(str(d))
  return dirs


def test_mean_and_sample_std_over_seeds(tmp_path):
  dirs = _write(tmp_path, [_report(0, 0.60, 0.80, 0.70, 4.0),
                           _report(1, 0.62, 0.70, 0.76, 6.0),
                           _report(2, 0.64, 0.84, 0.72, 5.0)])
  paths = aggregate.write_aggregate(dirs, str(tmp_path / "out"))
  summary = json.load(open(paths["json"]))
  assert summary["seeds"] == [0, 1, 2]
  assert list(summary["defenses"]) == ["base"]  # "extra" is not in every run
  base = summary["defenses"]["base"]
  assert base["test_accuracy"]["mean"] == pytest.approx(0.62)
  assert base["test_accuracy"]["std"] == pytest.approx(0.02)  # ddof = 1
  best = base["best_attack_balanced_accuracy"]
  assert best["values"] == pytest.approx([0.80, 0.76, 0.84])
  assert best["mean"] == pytest.approx(0.80)
  assert base["best_attack_counts"] == {"conf": 2, "rmia": 1}
  assert base["defense_seconds"]["mean"] == pytest.approx(5.0)
  assert base["attacks"]["rmia"]["auc"]["mean"] == pytest.approx(0.7766667)
  table = open(paths["md"]).read()
  assert "| base | 62.0 ± 2.0 | 80.0 ± 4.0 | conf ×2, rmia ×1 |" in table


def test_bound_and_excess_leakage_over_seeds(tmp_path):
  reports = [_report(0, 0.60, 0.80, 0.70, 4.0),
             _report(1, 0.62, 0.70, 0.76, 6.0)]
  for report, bound in zip(reports, (0.70, 0.66)):
    entry = report["defenses"]["base"]
    entry["label_only_bound"] = {"balanced_accuracy": bound,
                                 "source": "gap attack"}
    entry["excess_leakage"] = {
        "victim_side": entry["best_attack"]["balanced_accuracy"] - bound,
        "attacker_side": None}
  paths = aggregate.write_aggregate(_write(tmp_path, reports),
                                    str(tmp_path / "out"))
  base = json.load(open(paths["json"]))["defenses"]["base"]
  assert base["label_only_bound"]["mean"] == pytest.approx(0.68)
  assert base["excess_leakage_victim_side"]["values"] == pytest.approx(
      [0.10, 0.10])
  assert base["excess_leakage_attacker_side"]["n"] == 0
  assert "| 68.0 ± 2.8 | — |" in open(paths["md"]).read()


def test_bad_run_sets_are_refused(tmp_path):
  dirs = _write(tmp_path, [_report(0, 0.6, 0.8, 0.7, 1.0)])
  with pytest.raises(FileNotFoundError, match="report.json"):
    aggregate.load_reports(dirs + [str(tmp_path / "missing")])
  with pytest.raises(ValueError, match="share a seed"):
    aggregate.load_reports(dirs + dirs)
  other = tmp_path / "other"
  other.mkdir()
  r = _report(1, 0.6, 0.8, 0.7, 1.0)
  r["dataset"] = "purchase100"
  (other / "report.json").write_text(json.dumps(r))
  with pytest.raises(ValueError, match="different datasets"):
    aggregate.load_reports(dirs + [str(other)])
  assert os.path.isdir(dirs[0])


# Two-sided 95% t quantiles t_{0.975, df} from a table.
T_975 = {1: 12.706204736174707, 2: 4.302652729911275}


def _entry(best, attacker_side, test_acc):
  attack = {"balanced_accuracy": best, "auc": best,
            "tpr_at_0.1pct_fpr": None, "tpr_at_1pct_fpr": 0.02,
            "advantage": 0.1, "seconds": 0.1}
  return {"kind": "defense", "test_accuracy": test_acc,
          "defense_seconds": 1.0,
          "best_attack": {"attack": "rmia", "balanced_accuracy": best},
          "best_attack_attacker_side": {"attack": "lira_online",
                                        "balanced_accuracy": attacker_side},
          "attacks": {"rmia": attack}}


def _paired_reports():
  # seed: {configuration: (victim-side best, attacker-side best, test acc)}
  table = {0: {"unpruned": (0.85, 0.84, 0.61), "base": (0.80, 0.78, 0.60),
               "rsw": (0.70, 0.66, 0.59)},
           1: {"unpruned": (0.83, None, 0.63), "base": (0.76, 0.74, 0.62),
               "rsw": (0.62, 0.62, 0.60)},
           2: {"unpruned": (0.87, 0.88, 0.62), "base": (0.84, 0.80, 0.64),
               "rsw": (0.66, 0.70, 0.64)}}
  return [{"dataset": "location", "seed": seed,
           "defenses": {label: _entry(*values)
                        for label, values in configs.items()}}
          for seed, configs in table.items()]


def _t_interval(differences):
  n = len(differences)
  mean = sum(differences) / n
  sd = (sum((d - mean)**2 for d in differences) / (n - 1))**0.5
  half = T_975[n - 1] * sd / n**0.5
  return mean, [mean - half, mean + half]


def test_paired_differences_against_hand_computation(tmp_path):
  summary = aggregate.aggregate(_paired_reports())
  assert summary["confidence"] == 0.95
  rsw = summary["defenses"]["rsw"]["paired_differences"]
  assert set(rsw) == {"base", "unpruned"}
  victim_side = rsw["base"]["best_attack_balanced_accuracy"]
  # rsw − base per seed: −0.10, −0.14, −0.18; mean −0.14, s = 0.04.
  assert victim_side["differences"] == pytest.approx([-0.10, -0.14, -0.18])
  assert victim_side["mean"] == pytest.approx(-0.14)
  half = 4.302652729911275 * 0.04 / 3**0.5
  assert victim_side["interval"] == pytest.approx([-0.14 - half,
                                                   -0.14 + half])
  assert victim_side["seeds"] == [0, 1, 2] and "reason" not in victim_side
  for key, differences in (
      ("best_attack_attacker_side_balanced_accuracy", [-0.12, -0.12, -0.10]),
      ("test_accuracy", [-0.01, -0.02, 0.0])):
    mean, interval = _t_interval(differences)
    assert rsw["base"][key]["mean"] == pytest.approx(mean)
    assert rsw["base"][key]["interval"] == pytest.approx(interval)
  # base − unpruned, attacker side: seed 1 lacks a value, 2 pairs remain.
  base = summary["defenses"]["base"]["paired_differences"]
  assert set(base) == {"unpruned"}  # not against itself
  pairs = base["unpruned"]["best_attack_attacker_side_balanced_accuracy"]
  assert pairs["seeds"] == [0, 2] and pairs["n"] == 2
  mean, interval = _t_interval([-0.06, -0.08])
  assert pairs["mean"] == pytest.approx(mean)
  assert pairs["interval"] == pytest.approx(interval)
  assert set(summary["defenses"]["unpruned"]["paired_differences"]) == {
      "base"}
  attacker_side = summary["defenses"]["unpruned"][
      "best_attack_attacker_side_balanced_accuracy"]
  assert attacker_side["values"] == pytest.approx([0.84, 0.88])
  text = aggregate.to_markdown(summary)
  assert "Paired differences vs base" in text
  assert "| rsw | -14.0 [-23.9, -4.1] | -11.3 [-14.2, -8.5] | " in text
  assert "n/a" in text  # TPR at 0.1% FPR below the FPR resolution


def test_one_seed_gives_no_interval():
  summary = aggregate.aggregate(_paired_reports()[:1])
  diff = summary["defenses"]["rsw"]["paired_differences"]["base"][
      "test_accuracy"]
  assert diff["mean"] == pytest.approx(-0.01) and diff["n"] == 1
  assert diff["interval"] is None and "at least 2" in diff["reason"]
  assert "-1.0 (no interval)" in aggregate.to_markdown(summary)
