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
