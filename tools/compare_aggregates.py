"""Compares two multi-seed aggregates (`wemem report --runs` output).

  python tools/compare_aggregates.py OLD/aggregate.json NEW/aggregate.json

Prints a Markdown table: per configuration present in both, the test
accuracy and the victim-side best attack's balanced accuracy (mean ± std,
percent) before and after, and whether the new mean lies within one old
standard deviation of the old mean ("yes") or not (the difference in
points). Used to check that a change of protocol or code moves results
within their seed-to-seed spread.
"""

import json
import sys
from typing import Dict, List

METRICS = (("test_accuracy", "test accuracy"),
           ("best_attack_balanced_accuracy", "best attack"))


def _cell(stat: Dict[str, float]) -> str:
  return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def _within(old: Dict[str, float], new: Dict[str, float]) -> str:
  diff = new["mean"] - old["mean"]
  if abs(diff) <= old["std"]:
    return "yes"
  return f"no ({100 * diff:+.1f})"


def table(old: Dict, new: Dict) -> List[str]:
  """Markdown lines comparing the configurations both aggregates hold."""
  header = "| configuration | " + " | ".join(
      f"{title} old | {title} new | within 1 std" for _, title in METRICS)
  lines = [header + " |", "|---|" + "---|---|---|" * len(METRICS)]
  for label, entry in new["defenses"].items():
    before = old["defenses"].get(label)
    if before is None:
      continue
    cells = []
    for key, _ in METRICS:
      cells += [_cell(before[key]), _cell(entry[key]),
                _within(before[key], entry[key])]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return lines


def main(argv: List[str]) -> int:
  if len(argv) != 3:
    print(__doc__, file=sys.stderr)
    return 2
  with open(argv[1]) as f:
    old = json.load(f)
  with open(argv[2]) as f:
    new = json.load(f)
  print("\n".join(table(old, new)))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
