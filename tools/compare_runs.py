"""Compares the numbers of two `wemem run` directories, wall times aside.

  python tools/compare_runs.py BEFORE_DIR AFTER_DIR

Reads report.json and every experiments/<config>/attacks.json of BEFORE_DIR
and the same files of AFTER_DIR, and prints each value that differs (keys
naming seconds or timings, and tensorflow-privacy's text statement, are
skipped). Exit status 0 when every number is identical, 1 otherwise: the
check that a refactor changed no number.
"""

import json
import math
import os
import sys
from typing import Any, List

SKIPPED = ("seconds", "timing", "statement")


def differences(before: Any, after: Any, path: str = "") -> List[str]:
  """Paths (with both values) where two JSON documents differ."""
  out: List[str] = []
  if isinstance(before, dict) and isinstance(after, dict):
    for key in sorted(set(before) | set(after)):
      if any(s in str(key).lower() for s in SKIPPED):
        continue
      if key not in before or key not in after:
        out.append(f"{path}/{key}: only in {'after' if key in after else 'before'}")
      else:
        out += differences(before[key], after[key], f"{path}/{key}")
  elif isinstance(before, list) and isinstance(after, list):
    if len(before) != len(after):
      return [f"{path}: {len(before)} vs {len(after)} entries"]
    for i, (a, b) in enumerate(zip(before, after)):
      out += differences(a, b, f"{path}[{i}]")
  elif isinstance(before, float) and isinstance(after, float):
    if not (before == after or (math.isnan(before) and math.isnan(after))):
      out.append(f"{path}: {before!r} vs {after!r}")
  elif before != after:
    out.append(f"{path}: {before!r} vs {after!r}")
  return out


def run_files(run_dir: str) -> List[str]:
  """report.json and the experiments' attacks.json, relative to run_dir."""
  experiments = os.path.join(run_dir, "experiments")
  return ["report.json"] + [
      os.path.join("experiments", label, "attacks.json")
      for label in sorted(os.listdir(experiments))]


def main(argv: List[str]) -> int:
  if len(argv) != 3:
    print(__doc__, file=sys.stderr)
    return 2
  before_dir, after_dir = argv[1], argv[2]
  found = []
  files = run_files(before_dir)
  for name in files:
    with open(os.path.join(before_dir, name)) as f:
      before = json.load(f)
    with open(os.path.join(after_dir, name)) as f:
      after = json.load(f)
    found += [name + d for d in differences(before, after)]
  for line in found[:50]:
    print(line)
  print(f"{len(files)} files compared, {len(found)} differences "
        "(wall times ignored)")
  return 1 if found else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
