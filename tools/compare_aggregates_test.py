"""compare_aggregates: within-one-std verdicts on known aggregates."""

from tools import compare_aggregates


def _entry(test, attack):
  return {"test_accuracy": {"mean": test[0], "std": test[1]},
          "best_attack_balanced_accuracy": {"mean": attack[0],
                                            "std": attack[1]}}


def test_verdicts_and_only_shared_configurations():
  old = {"defenses": {"base": _entry((0.62, 0.01), (0.87, 0.01)),
                      "dp": _entry((0.60, 0.02), (0.72, 0.04))}}
  new = {"defenses": {"base": _entry((0.625, 0.01), (0.85, 0.02)),
                      "rsw": _entry((0.63, 0.01), (0.72, 0.02))}}
  lines = compare_aggregates.table(old, new)
  assert len(lines) == 3  # header, rule, base (dp and rsw are not in both)
  assert lines[2] == ("| base | 62.0 ± 1.0 | 62.5 ± 1.0 | yes | "
                      "87.0 ± 1.0 | 85.0 ± 2.0 | no (-2.0) |")
