"""The privacy–utility frontier of a tuning search (docs/method.md §8).

`wemem tune --objective=pareto` keeps every trial's (dev accuracy, strongest
rehearsed attack) pair and reports the trials no other trial beats on both:
a trial *dominates* another when its dev accuracy is at least as high and
its attack accuracy at least as low, and it is strictly better on one of
the two. The non-dominated set is the front; a user picks a point from it
instead of fixing a price of privacy (weighted) or a target (constrained)
in advance.

Fronts are drawn per defense family (the trial's defense name: rsw, swmr,
ppb, ...) and over all trials together. Identical points dominate neither
each other: both stay on the front.
"""

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from matplotlib import colormaps
from matplotlib import figure as mpl_figure
import numpy as np

from attacks import plotting
from wemem_eval.tuning import tuner as tuner_lib
from wemem_tf import io_utils

ALL = "all"
_MEASURED = ("COMPLETED", "CONFIRMED")


def non_dominated(dev_accuracy: Sequence[float],
                  attack_accuracy: Sequence[float]) -> np.ndarray:
  """Which points no other point dominates.

  Args:
    dev_accuracy: shape (n,), higher is better.
    attack_accuracy: shape (n,), lower is better.

  Returns:
    Boolean mask of shape (n,): True on the front.
  """
  dev = np.asarray(dev_accuracy, dtype=np.float64)
  attack = np.asarray(attack_accuracy, dtype=np.float64)
  if dev.shape != attack.shape or dev.ndim != 1:
    raise ValueError("dev_accuracy and attack_accuracy must be 1-D of one "
                     f"length, got shapes {dev.shape} and {attack.shape}.")
  if np.isnan(dev).any() or np.isnan(attack).any():
    raise ValueError("accuracies must not be NaN.")
  # dominated[i] = some j with dev_j >= dev_i, attack_j <= attack_i and one
  # of them strict. O(n^2) memory is fine for a search's trials.
  no_worse = (dev[None, :] >= dev[:, None]) & (attack[None, :]
                                               <= attack[:, None])
  better = (dev[None, :] > dev[:, None]) | (attack[None, :]
                                            < attack[:, None])
  return ~(no_worse & better).any(axis=1)


def family(row) -> str:
  """A trial's defense family: its defense's name."""
  return row.choice["name"]


def _measured(rows: Sequence[Any]) -> List[Any]:
  """The rows with a measurement (completed or confirmed, with a defense,
  dev and attack accuracy)."""
  return [r for r in rows if r.status in _MEASURED and r.choice
          and "dev_accuracy" in r.metrics and "attack_accuracy" in r.metrics]


def fronts(rows: Sequence[Any]) -> Dict[str, List[Any]]:
  """The front of every family and of all measured rows together.

  Args:
    rows: `tuner.TrialRow`s; those measured ("COMPLETED" or "CONFIRMED",
      with dev and attack accuracy) count, the others are skipped.

  Returns:
    {family or ALL: its front's rows, by increasing attack accuracy (then
    decreasing dev accuracy)}; ALL first.
  """
  measured = _measured(rows)
  out = {}
  groups = {ALL: measured}
  for r in measured:
    groups.setdefault(family(r), []).append(r)
  for name, group in groups.items():
    if not group:
      continue
    mask = non_dominated([r.metrics["dev_accuracy"] for r in group],
                         [r.metrics["attack_accuracy"] for r in group])
    out[name] = sorted([r for r, keep in zip(group, mask) if keep],
                       key=lambda r: (r.metrics["attack_accuracy"],
                                      -r.metrics["dev_accuracy"]))
  return out


def on_any_front(rows: Sequence[Any]) -> List[Any]:
  """Every row on some front (a family's or the overall one), in the
  order given: what a pareto search confirms."""
  on_front = {r.trial_id for front in fronts(rows).values() for r in front}
  return [r for r in rows if r.trial_id in on_front]


@dataclasses.dataclass(frozen=True)
class FrontPoint:
  """One point of a front, as frontier.json stores it.

  Attributes:
    trial_id: the trial (or "preset:<method>").
    family: its defense family.
    defense: {"name", "settings"} of the trial's defense.
    dev_accuracy: dev accuracy in [0, 1] (mean over measurements when
      confirmed).
    attack_accuracy: strongest rehearsed attack's balanced accuracy in
      [0, 1] (mean of each measurement's strongest when confirmed).
    status: "COMPLETED" (the search's one measurement) or "CONFIRMED".
    flagfile: the point's flagfile for `wemem run`, relative to the
      search's output directory, or None.
  """
  trial_id: str
  family: str
  defense: Mapping[str, Any]
  dev_accuracy: float
  attack_accuracy: float
  status: str
  flagfile: Optional[str] = None


def front_points(rows: Sequence[Any],
                 flagfiles: Optional[Mapping[str, str]] = None
                 ) -> Dict[str, List[FrontPoint]]:
  """`fronts(rows)` as `FrontPoint`s; `flagfiles` maps trial ids to their
  flagfile paths."""
  flagfiles = flagfiles or {}
  return {name: [FrontPoint(r.trial_id, family(r), r.choice,
                            float(r.metrics["dev_accuracy"]),
                            float(r.metrics["attack_accuracy"]), r.status,
                            flagfiles.get(r.trial_id))
                 for r in front]
          for name, front in fronts(rows).items()}


def markdown(points: Mapping[str, Sequence[FrontPoint]], source: str,
             num_rows: int) -> str:
  """frontier.md: the overall front, then each family's."""
  lines = [f"# Privacy–utility frontier of {num_rows} {source}", "",
           "A point is on a front when no other point has at least its dev "
           "accuracy and at most its strongest rehearsed attack, and is "
           "strictly better in one (percent).", ""]
  for name, front in points.items():
    title = ("All defenses" if name == ALL else f"Family `{name}`")
    lines += [f"## {title} ({len(front)} points)", "",
              "| trial | defense | settings | dev acc | strongest attack | "
              "status | flagfile |", "|---|---|---|---|---|---|---|"]
    for p in front:
      lines.append(f"| {p.trial_id} | {p.defense['name']} | "
                   f"{tuner_lib.settings_text(p.defense['settings'])} | "
                   f"{100 * p.dev_accuracy:.1f} | "
                   f"{100 * p.attack_accuracy:.1f} | {p.status} | "
                   f"{p.flagfile or ''} |")
    lines.append("")
  return "\n".join(lines)


def plot(rows: Sequence[Any], points: Mapping[str, Sequence[FrontPoint]],
         path: str, title: str = "") -> None:
  """Every measured trial (dots) and each family's front (a step line),
  dev accuracy against the strongest rehearsed attack, as a PNG."""
  fig = mpl_figure.Figure(figsize=(7, 5))
  ax = fig.add_subplot(1, 1, 1)
  families = [n for n in points if n != ALL]
  colors = colormaps["tab10"]
  measured = _measured(rows)
  for i, name in enumerate(families):
    color = colors(i % 10)
    mine = [r for r in measured if family(r) == name]
    ax.scatter([100 * r.metrics["attack_accuracy"] for r in mine],
               [100 * r.metrics["dev_accuracy"] for r in mine],
               color=color, alpha=0.35, s=18)
    front = points[name]
    ax.step([100 * p.attack_accuracy for p in front],
            [100 * p.dev_accuracy for p in front], where="post",
            color=color, marker="o", label=f"{name} front")
  overall = points.get(ALL, [])
  if overall:
    ax.plot([100 * p.attack_accuracy for p in overall],
            [100 * p.dev_accuracy for p in overall], "k--", linewidth=1,
            label="front of all")
  ax.set_xlabel("strongest rehearsed attack, balanced accuracy (%)")
  ax.set_ylabel("dev accuracy (%)")
  ax.set_title(title or "privacy–utility frontier (up and left is better)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  plotting.save_png(fig, path)


def write(rows: Sequence[Any], output_dir: str, source: str,
          flagfiles: Optional[Mapping[str, str]] = None
          ) -> Dict[str, Any]:
  """Writes frontier.json, frontier.md and frontier.png into `output_dir`.

  Args:
    rows: the measured rows whose front is reported (the confirmed
      candidates when the search confirmed its front, else the trials).
    output_dir: the search's output directory.
    source: what the rows are, for the table's title (e.g. "trials").
    flagfiles: {trial_id: flagfile path relative to output_dir}.

  Returns:
    {"json", "md", "png"}: the paths written, and "points": the fronts
    (`front_points`).
  """
  points = front_points(rows, flagfiles)
  paths = {kind: os.path.join(output_dir, f"frontier.{kind}")
           for kind in ("json", "md", "png")}
  io_utils.atomic_write_json(paths["json"], {
      "source": source, "rows": len(rows),
      "fronts": {name: [dataclasses.asdict(p) for p in front]
                 for name, front in points.items()}})
  io_utils.atomic_write_bytes(
      paths["md"], markdown(points, source, len(rows)).encode())
  plot(rows, points, paths["png"])
  return {**paths, "points": points}
