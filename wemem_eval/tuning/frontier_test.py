"""The front is exactly the non-dominated set of the trials."""

import json

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from wemem_eval.tuning import frontier
from wemem_eval.tuning import objective as objective_lib
from wemem_eval.tuning import tuner as tuner_lib
from wemem_eval.tuning import tuner_test


def _dominates(a, b):
  """Point a = (dev, attack) dominates b, from the definition."""
  return (a[0] >= b[0] and a[1] <= b[1]) and (a[0] > b[0] or a[1] < b[1])


# Accuracies on a coarse grid, so that ties (same dev accuracy, same
# attack accuracy, identical points) are common, as with a few hundred
# dev records.
_ACC = st.integers(0, 20).map(lambda k: k / 20)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ACC, _ACC), min_size=1, max_size=30))
def test_front_is_exactly_the_non_dominated_set(points):
  mask = frontier.non_dominated([p[0] for p in points],
                                [p[1] for p in points])
  for i, p in enumerate(points):
    dominated = any(_dominates(q, p) for q in points)
    assert mask[i] == (not dominated), (p, points)
  front = [p for p, keep in zip(points, mask) if keep]
  assert front  # a finite set always has a non-dominated point
  # Every point off the front is dominated by a point on it.
  for p, keep in zip(points, mask):
    if not keep:
      assert any(_dominates(q, p) for q in front)


def test_known_front_with_ties_and_duplicates():
  dev = [0.90, 0.90, 0.80, 0.80, 0.70, 0.95, 0.70]
  attack = [0.70, 0.70, 0.60, 0.65, 0.60, 0.80, 0.55]
  # 0,1: identical, both kept; 3 is dominated by 2; 4 by 2 (same attack,
  # lower dev); 5 (most accurate) and 6 (most private) are kept.
  assert frontier.non_dominated(dev, attack).tolist() == [
      True, True, True, False, False, True, True]


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="1-D of one length"):
    frontier.non_dominated([0.5, 0.6], [0.5])
  with pytest.raises(ValueError, match="NaN"):
    frontier.non_dominated([0.5, np.nan], [0.5, 0.6])


def _row(trial_id, name, dev, attack, status="COMPLETED", **settings):
  return tuner_lib.TrialRow(
      trial_id, status, {"name": name, "settings": settings},
      {"score": dev - attack, "dev_accuracy": dev, "attack_accuracy": attack},
      1.0, None)


def test_fronts_per_family_and_overall_and_the_files(tmp_path):
  rows = [_row("0", "rsw", 0.80, 0.70, width=10),
          _row("1", "rsw", 0.78, 0.72, width=20),    # dominated by 0
          _row("2", "swmr", 0.76, 0.62, width=10),
          _row("3", "swmr", 0.82, 0.75, width=30),
          _row("4", "hamp", 0.70, 0.61, gamma=0.5),  # only its family's
          _row("5", "hamp", 0.60, 0.66, gamma=0.9),  # dominated by 4
          tuner_lib.TrialRow("6", "FAILED", {"name": "rsw", "settings": {}},
                             {}, 1.0, "boom")]
  fronts = frontier.fronts(rows)
  ids = {name: [r.trial_id for r in front] for name, front in fronts.items()}
  assert list(ids)[0] == frontier.ALL
  assert ids == {"all": ["4", "2", "0", "3"], "rsw": ["0"],
                 "swmr": ["2", "3"], "hamp": ["4"]}
  paths = frontier.write(rows, str(tmp_path), "trials",
                         flagfiles={"2": "frontier/2.cfg"})
  saved = json.loads(open(paths["json"]).read())
  assert saved["rows"] == 7 and saved["source"] == "trials"
  assert [p["trial_id"] for p in saved["fronts"]["all"]] == ["4", "2", "0",
                                                              "3"]
  assert saved["fronts"]["swmr"][0]["flagfile"] == "frontier/2.cfg"
  text = open(paths["md"]).read()
  assert "## All defenses (4 points)" in text and "| 2 | swmr | width=10 |"\
      in text
  assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_pareto_objective_steers_by_the_weighted_score():
  pareto = objective_lib.TuningObjective("pareto", weight=2.0)
  weighted = objective_lib.TuningObjective("weighted", weight=2.0)
  assert pareto.score(0.7, 0.6) == weighted.score(0.7, 0.6)
  assert pareto.feasible(0.99) is None
  assert "front" in pareto.describe()


def test_a_pareto_search_reports_the_front_of_its_trials(tmp_path):
  """Known answers (tuner_test.known_evaluate): a wider window gives more
  dev accuracy and more leakage, so every completed rsw trial with a
  distinct width is on the front."""
  tuner = tuner_test._tuner(tmp_path, 6, methods=("rsw",))
  tuner.search()
  rows = tuner_lib.trial_rows(tuner)
  done = [r for r in rows if r.status == "COMPLETED"]
  widths = {r.choice["settings"]["width"] for r in done}
  front = frontier.fronts(rows)[frontier.ALL]
  assert {r.choice["settings"]["width"] for r in front} == widths
  assert len(front) == len(done)  # same width twice: identical points
