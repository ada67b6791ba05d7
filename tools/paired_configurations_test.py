"""paired_configurations: seed-paired differences against hand computation."""

import json

import pytest

from tools import paired_configurations


def _agg(path, seeds, **configs):
  defenses = {}
  for label, (attack, test) in configs.items():
    stat = lambda v: {"values": list(v)}
    defenses[label] = {"best_attack_balanced_accuracy": stat(attack),
                       "best_attack_attacker_side_balanced_accuracy":
                           stat(attack),
                       "test_accuracy": stat(test)}
  path.write_text(json.dumps({"seeds": seeds, "defenses": defenses}))
  return str(path)


def test_pairs_within_and_across_aggregates(tmp_path, capsys):
  ours = _agg(tmp_path / "a.json", [0, 1, 2],
              swmr=([0.70, 0.72, 0.74], [0.60, 0.61, 0.62]),
              hamp=([0.71, 0.72, 0.73], [0.55, 0.56, 0.57]))
  paper = _agg(tmp_path / "b.json", [0, 1, 2],
               dp=([0.80, 0.80, 0.80], [0.60, 0.60, 0.60]))
  paired_configurations.main(["x", ours, paper + ":paper", "--",
                              "swmr:hamp", "swmr:dp@paper"])
  lines = capsys.readouterr().out.splitlines()
  # swmr − hamp: attack differences −0.01, 0, +0.01 (mean 0); test +0.05.
  assert lines[2].startswith("| swmr − hamp | +0.0 [")
  assert lines[2].endswith("| +5.0 [+5.0, +5.0] |")
  # swmr − dp (paper): −0.10, −0.08, −0.06 → mean −8.0.
  assert lines[3].startswith("| swmr − dp (paper) | -8.0 [")


def test_unknown_pairs_get_a_message(tmp_path):
  ours = _agg(tmp_path / "a.json", [0, 1], swmr=([0.7, 0.7], [0.6, 0.6]))
  for pair, message in (("swmr:hamp", "missing \\['hamp'\\]"),
                        ("swmr:swmr@paper", "no aggregate named 'paper'")):
    with pytest.raises(SystemExit, match=message):
      paired_configurations.main(["x", ours, "--", pair])
