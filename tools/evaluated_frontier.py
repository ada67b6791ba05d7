"""The privacy–utility frontier of evaluated configurations (issue 19).

  python tools/evaluated_frontier.py --output=DIR/frontier \
      [--exclude=unpruned,one_shot] A/aggregate.json[:TAG[:CONFIGS]] ...

Every configuration of every multi-seed aggregate (`wemem report --runs`)
becomes one point: its mean test accuracy and mean best attack over seeds
(victim-side maximum; the attacker-side choice is reported beside it), with
the label-only bound and the excess leakage. A TAG names the aggregate's
points: `ppb` from `B/aggregate.json:α16` is `ppb@α16`, another strength of
the `ppb` family; a TAG starting with `+` makes a variant family instead
(`swmr` from `C/aggregate.json:+om` is `swmr+om`). CONFIGS, a comma list,
keeps only those configurations of that aggregate (`A/aggregate.json::ppb,hamp`).
Aggregates must share their seeds, so the pairs below are paired by seed.

Writes DIR/frontier.md, .json and .png: every point with mean ± std, whether
it is on the front (no point has at least its test accuracy and at most its
best attack, strictly better in one; `wemem_eval.tuning.frontier`), which
points it dominates, and, for each point, its seed-paired difference to
each point it dominates or is dominated by (95% t-interval,
`wemem_eval.aggregate.paired_difference`): dominance by means is not
significance.
"""

import dataclasses
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib import colormaps
from matplotlib import figure as mpl_figure
import numpy as np

from attacks import plotting
from wemem_eval import aggregate
from wemem_eval.tuning import frontier
from wemem_tf import io_utils

BEST = "best_attack_balanced_accuracy"
ATTACKER = "best_attack_attacker_side_balanced_accuracy"
TEST = "test_accuracy"
BOUND = "label_only_bound"


@dataclasses.dataclass(frozen=True)
class Point:
  """One evaluated configuration (fractions in [0, 1], per seed).

  Attributes:
    name: `config`, `config@TAG` (a strength) or `config+TAG` (a variant).
    family: `config`, or `config+TAG` for a variant.
    test: test accuracy per seed.
    best: victim-side best attack per seed.
    attacker: attacker-side best attack per seed.
    bound: label-only bound per seed.
  """
  name: str
  family: str
  test: Tuple[float, ...]
  best: Tuple[float, ...]
  attacker: Tuple[float, ...]
  bound: Tuple[float, ...]


def _values(entry, key) -> Tuple[float, ...]:
  return tuple(float(v) for v in entry[key]["values"])


def load_points(specs: Sequence[str], exclude: Sequence[str] = ()
                ) -> Tuple[List[Point], List[int]]:
  """The points of `specs` (PATH[:TAG[:CONFIGS]]) and their common seeds."""
  points, seeds, names = [], None, set()
  for spec in specs:
    path, _, rest = spec.partition(":")
    tag, _, only = rest.partition(":")
    only = {c for c in only.split(",") if c}
    with open(path, encoding="utf-8") as f:
      agg = json.load(f)
    if seeds is not None and agg["seeds"] != seeds:
      raise SystemExit(f"{path}: seeds {agg['seeds']} differ from {seeds}; "
                       "aggregate the same seeds.")
    seeds = agg["seeds"]
    for config, entry in agg["defenses"].items():
      if config in exclude or (only and config not in only):
        continue
      if tag.startswith("+"):
        name = family = config + tag
      else:
        name, family = (f"{config}@{tag}" if tag else config), config
      if name in names:
        raise SystemExit(f"{spec}: point {name!r} appears twice; give the "
                         "aggregate its own TAG.")
      names.add(name)
      points.append(Point(name, family, _values(entry, TEST),
                          _values(entry, BEST), _values(entry, ATTACKER),
                          _values(entry, BOUND)))
  if not points:
    raise SystemExit("no configurations to compare; give aggregate.json "
                     "files (`wemem report --runs`).")
  return points, seeds


def _mean(values) -> float:
  return float(np.mean(values))


def _std(values) -> float:
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def dominance(points: Sequence[Point]) -> Tuple[np.ndarray, Dict[str, List[str]]]:
  """(on-front mask, {name: names of the points it dominates}) by mean test
  accuracy (higher is better) and mean victim-side best attack (lower)."""
  test = np.array([_mean(p.test) for p in points])
  best = np.array([_mean(p.best) for p in points])
  front = frontier.non_dominated(test, best)
  beats = {}
  for i, p in enumerate(points):
    no_worse = (test[i] >= test) & (best[i] <= best)
    better = (test[i] > test) | (best[i] < best)
    beats[p.name] = [q.name for j, q in enumerate(points)
                     if no_worse[j] and better[j]]
  return front, beats


def _cell(values) -> str:
  return f"{100 * _mean(values):.1f} ± {100 * _std(values):.1f}"


def _difference(a, b, seeds) -> str:
  return aggregate.format_difference(
      aggregate.paired_difference(list(a), list(b), seeds))


def report(points: Sequence[Point], seeds: Sequence[int]
           ) -> Tuple[str, Dict]:
  """frontier.md and the JSON of the comparison."""
  front, beats = dominance(points)
  by_name = {p.name: p for p in points}
  order = sorted(range(len(points)), key=lambda i: -_mean(points[i].test))
  lines = [
      f"# Privacy–utility frontier of {len(points)} evaluated configurations"
      f" (seeds {', '.join(map(str, seeds))})", "",
      "Percent, mean ± std over seeds. *Best attack*: the victim-side "
      "maximum over the attacks; *attacker-side*: the attacker's pick; "
      "*bound*: the label-only bound; *excess*: best attack − bound. A point "
      "is on the front when no other point has at least its test accuracy "
      "and at most its best attack (by means), strictly better in one.", "",
      "| point | family | test acc | best attack | attacker-side | bound | "
      "excess | front | dominates |",
      "|---|---|---|---|---|---|---|---|---|"]
  rows = []
  for i in order:
    p = points[i]
    excess = np.subtract(p.best, p.bound)
    lines.append(
        f"| {p.name} | {p.family} | {_cell(p.test)} | {_cell(p.best)} | "
        f"{_cell(p.attacker)} | {_cell(p.bound)} | {_cell(excess)} | "
        f"{'yes' if front[i] else ''} | {', '.join(beats[p.name])} |")
    rows.append({"name": p.name, "family": p.family, "on_front":
                 bool(front[i]), "dominates": beats[p.name],
                 **{k: {"mean": _mean(v), "std": _std(v), "values": list(v)}
                    for k, v in (("test_accuracy", p.test),
                                 ("best_attack", p.best),
                                 ("best_attack_attacker_side", p.attacker),
                                 ("label_only_bound", p.bound),
                                 ("excess_leakage", tuple(excess)))}})
  lines += ["", "## Seed-paired differences of each front point to the "
            "points it dominates", "",
            "Front point − dominated point, percentage points, mean [95% "
            "t-interval over seeds].", "",
            "| front point − dominated point | best attack | test accuracy |",
            "|---|---|---|"]
  for i in order:
    p = points[i]
    if not front[i]:
      continue
    for other in beats[p.name]:
      q = by_name[other]
      lines.append(f"| {p.name} − {q.name} | "
                   f"{_difference(p.best, q.best, seeds)} | "
                   f"{_difference(p.test, q.test, seeds)} |")
  return "\n".join(lines) + "\n", {"seeds": list(seeds), "points": rows}


def plot(points: Sequence[Point], path: str) -> None:
  """Test accuracy against best attack, mean ± std per point, one colour
  per family, the bound as an open marker, the front as a dashed line."""
  front, _ = dominance(points)
  fig = mpl_figure.Figure(figsize=(8, 6))
  ax = fig.add_subplot(1, 1, 1)
  families = list(dict.fromkeys(p.family for p in points))
  colors = colormaps["tab20"]
  for k, fam in enumerate(families):
    mine = [p for p in points if p.family == fam]
    color = colors(k % 20)
    ax.errorbar([100 * _mean(p.best) for p in mine],
                [100 * _mean(p.test) for p in mine],
                xerr=[100 * _std(p.best) for p in mine],
                yerr=[100 * _std(p.test) for p in mine], fmt="o",
                color=color, capsize=2, label=fam, alpha=0.85)
    ax.scatter([100 * _mean(p.bound) for p in mine],
               [100 * _mean(p.test) for p in mine], marker="|", s=80,
               color=color)
    for p in mine:
      ax.annotate(p.name, (100 * _mean(p.best), 100 * _mean(p.test)),
                  fontsize=6, xytext=(3, 3), textcoords="offset points")
  on = sorted((p for p, f in zip(points, front) if f),
              key=lambda p: _mean(p.best))
  ax.plot([100 * _mean(p.best) for p in on],
          [100 * _mean(p.test) for p in on], "k--", linewidth=1,
          label="front")
  ax.set_xlabel("best attack, balanced accuracy (%)  (| = label-only bound)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title("privacy–utility frontier (up and left is better)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  plotting.save_png(fig, path)


def main(argv: List[str]) -> None:
  output, exclude, specs = None, (), []
  for arg in argv[1:]:
    if arg.startswith("--output="):
      output = arg.split("=", 1)[1]
    elif arg.startswith("--exclude="):
      exclude = tuple(a for a in arg.split("=", 1)[1].split(",") if a)
    else:
      specs.append(arg)
  if not output or not specs:
    raise SystemExit(__doc__)
  points, seeds = load_points(specs, exclude)
  text, data = report(points, seeds)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  io_utils.atomic_write_bytes(output + ".md", text.encode())
  io_utils.atomic_write_json(output + ".json", {"inputs": specs, **data})
  plot(points, output + ".png")
  print(text)


if __name__ == "__main__":
  main(sys.argv)
