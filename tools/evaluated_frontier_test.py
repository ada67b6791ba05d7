"""evaluated_frontier: points, tags, dominance and pairing on known data."""

import json

import pytest

from tools import evaluated_frontier as ef


def _agg(path, seeds, **configs):
  """configs: label -> (test, best attack, bound), one value per seed."""
  stat = lambda v: {"values": list(v)}
  defenses = {label: {"test_accuracy": stat(test),
                      "best_attack_balanced_accuracy": stat(best),
                      "best_attack_attacker_side_balanced_accuracy":
                          stat(best),
                      "label_only_bound": stat(bound)}
              for label, (test, best, bound) in configs.items()}
  path.write_text(json.dumps({"seeds": seeds, "defenses": defenses}))
  return str(path)


def test_front_tags_and_dominance(tmp_path):
  main = _agg(tmp_path / "a.json", [0, 1],
              base=([0.62, 0.64], [0.88, 0.86], [0.69, 0.69]),
              unpruned=([0.61, 0.61], [0.80, 0.80], [0.68, 0.68]),
              hamp=([0.55, 0.57], [0.72, 0.72], [0.72, 0.72]))
  strong = _agg(tmp_path / "b.json", [0, 1],
                hamp=([0.50, 0.50], [0.70, 0.70], [0.70, 0.70]))
  om = _agg(tmp_path / "c.json", [0, 1],
            swmr=([0.63, 0.63], [0.68, 0.66], [0.66, 0.66]))
  points, seeds = ef.load_points([main, strong + ":g08", om + ":+om",
                                  main + ":again:hamp"],
                                 exclude=("unpruned",))
  assert points[-1].name == "hamp@again"
  points = points[:-1]
  assert seeds == [0, 1]
  assert [(p.name, p.family) for p in points] == [
      ("base", "base"), ("hamp", "hamp"), ("hamp@g08", "hamp"),
      ("swmr+om", "swmr+om")]
  front, beats = ef.dominance(points)
  # swmr+om (63.0, 67.0) beats everything: base (63.0, 87.0) on the attack
  # at equal accuracy, both HAMP points on both axes.
  assert front.tolist() == [False, False, False, True]
  assert sorted(beats["swmr+om"]) == ["base", "hamp", "hamp@g08"]
  assert beats["hamp"] == [] and beats["base"] == []
  text, data = ef.report(points, seeds)
  assert "| swmr+om | swmr+om | 63.0 ± 0.0 | 67.0 ± 1.4 |" in text
  # Excess = best − bound per seed: 2 and 0 points.
  row = next(r for r in data["points"] if r["name"] == "swmr+om")
  assert row["excess_leakage"]["values"] == pytest.approx([0.02, 0.0])
  # Paired: swmr+om − base attack −20, −20 → −20.0 [−20.0, −20.0].
  assert "| swmr+om − base | -20.0 [-20.0, -20.0] | +0.0 [" in text


def test_mismatched_seeds_and_duplicate_points_are_refused(tmp_path):
  a = _agg(tmp_path / "a.json", [0, 1], base=([0.6] * 2, [0.8] * 2, [0.7] * 2))
  b = _agg(tmp_path / "b.json", [0, 2], base=([0.6] * 2, [0.8] * 2, [0.7] * 2))
  with pytest.raises(SystemExit, match="differ from"):
    ef.load_points([a, b])
  with pytest.raises(SystemExit, match="appears twice"):
    ef.load_points([a, a])


def test_main_writes_the_three_files(tmp_path):
  a = _agg(tmp_path / "a.json", [0, 1],
           base=([0.6, 0.6], [0.8, 0.8], [0.7, 0.7]),
           rsw=([0.6, 0.6], [0.75, 0.77], [0.68, 0.68]))
  out = tmp_path / "out" / "frontier"
  ef.main(["x", f"--output={out}", a])
  for suffix in (".md", ".json", ".png"):
    assert (tmp_path / "out" / f"frontier{suffix}").stat().st_size > 0
