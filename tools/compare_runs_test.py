"""tools/compare_runs.py: equal runs pass, a changed number is reported."""

import json
import os

from tools import compare_runs


def _run_dir(root, accuracy):
  os.makedirs(root / "experiments" / "base")
  (root / "report.json").write_text(json.dumps(
      {"defenses": {"base": {"test_accuracy": accuracy,
                             "defense_seconds": 12.5}}}))
  (root / "experiments" / "base" / "attacks.json").write_text(json.dumps(
      {"attacks": [{"attack": "conf", "auc": 0.61, "seconds": 3.0}],
       "timing_seconds": {"total": 9.0}}))


def test_identical_numbers_pass_and_wall_times_are_ignored(tmp_path):
  _run_dir(tmp_path / "a", 0.75)
  _run_dir(tmp_path / "b", 0.75)
  data = json.loads((tmp_path / "b" / "report.json").read_text())
  data["defenses"]["base"]["defense_seconds"] = 99.0
  (tmp_path / "b" / "report.json").write_text(json.dumps(data))
  assert compare_runs.main(["x", str(tmp_path / "a"),
                            str(tmp_path / "b")]) == 0


def test_a_changed_number_is_reported(tmp_path, capsys):
  _run_dir(tmp_path / "a", 0.75)
  _run_dir(tmp_path / "b", 0.7500001)
  assert compare_runs.main(["x", str(tmp_path / "a"),
                            str(tmp_path / "b")]) == 1
  assert "test_accuracy: 0.75 vs 0.7500001" in capsys.readouterr().out
