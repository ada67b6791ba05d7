"""Paired differences between configurations of multi-seed aggregates.

  python tools/paired_configurations.py A/aggregate.json[:NAME] \
      B/aggregate.json[:NAME] ... -- swmr:hamp rsw:random swmr:dp@NAME

Each PAIR `x:y` prints x − y per seed (x from the first aggregate, y from
the aggregate named after `@`, default the first), for the victim-side and
attacker-side best attack and the test accuracy: the mean difference in
percentage points with its 95% t-interval over seeds
(`wemem_eval.aggregate.paired_difference`). Aggregates must share their
seeds. `wemem report --runs` compares every configuration with base and
unpruned only; this compares defenses with each other (claim (c)).
"""

import json
import sys
from typing import Dict, List, Tuple

from wemem_eval import aggregate

KEYS = (("best_attack_balanced_accuracy", "victim-side best attack"),
        ("best_attack_attacker_side_balanced_accuracy",
         "attacker-side best attack"),
        ("test_accuracy", "test accuracy"))


def _load(specs: List[str]) -> Tuple[Dict[str, Dict], List[int]]:
  named, seeds = {}, None
  for i, spec in enumerate(specs):
    path, _, name = spec.partition(":")
    with open(path) as f:
      agg = json.load(f)
    if seeds is not None and agg["seeds"] != seeds:
      raise SystemExit(f"{path}: seeds {agg['seeds']} differ from {seeds}.")
    seeds = agg["seeds"]
    named[name or str(i)] = agg
    if i == 0:
      named[""] = agg
  return named, seeds


def main(argv: List[str]) -> None:
  if "--" not in argv:
    raise SystemExit(__doc__)
  split = argv.index("--")
  named, seeds = _load(argv[1:split])
  print("| comparison | " + " | ".join(t for _, t in KEYS) + " |")
  print("|---|" + "---|" * len(KEYS))
  for pair in argv[split + 1:]:
    left, _, right = pair.partition(":")
    right, _, source = right.partition("@")
    if source not in named:
      raise SystemExit(f"{pair}: no aggregate named {source!r}; name one "
                       "as PATH:NAME before --.")
    missing = [c for c, agg in ((left, named[""]), (right, named[source]))
               if c not in agg["defenses"]]
    if not right or missing:
      raise SystemExit(f"{pair}: write pairs as x:y[@NAME] with "
                       f"configurations the aggregates hold; missing "
                       f"{missing or ['y']}.")
    a, b = named[""]["defenses"][left], named[source]["defenses"][right]
    cells = [aggregate.format_difference(aggregate.paired_difference(a[k]["values"],
                                               b[k]["values"], seeds))
             for k, _ in KEYS]
    label = f"{left} − {right}" + (f" ({source})" if source else "")
    print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv)
