"""The privacy–utility objective that defense tuning maximizes (docs/method.md §8).

A trial is measured on data the victim's evaluation never sees:

* utility: the pruned victim's accuracy on its **dev** split (the records
  that already choose its checkpoints), never its test split;
* privacy: the **strongest adaptive attack** against a *held-out shadow*
  (`wemem_tf.data.splits.rehearsal_splits`): a model trained like the victim
  on the shadows' side, attacked with shadows / reference models trained
  with the same defense. "Strongest" = the highest balanced accuracy over
  the attacks run.

Two forms turn (dev accuracy a, attack accuracy m) into one score to
maximize, both in accuracy units (fractions):

* `constrained` (target t): maximize a subject to m ≤ t.
  score = a            if m ≤ t   (feasible: score ∈ [0, 1]),
  score = −(m − t)     otherwise  (infeasible: score < 0, closer to the
                                   target is better),
  so every feasible trial beats every infeasible one, and the search is
  still guided towards the feasible region.
* `weighted` (weight w): score = a − w · (m − 0.5): utility minus w times
  the attack's advantage over guessing.
* `pareto` (weight w): no single winner; the search reports the front of
  non-dominated (a, m) pairs (`frontier.py`). The oracle still needs one
  number to steer by: the weighted score with weight w. Use the random
  oracle (or several weights) to spread the trials along the front.
"""

import dataclasses
import enum
import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np


class ObjectiveKind(enum.Enum):
  CONSTRAINED = "constrained"
  WEIGHTED = "weighted"
  PARETO = "pareto"


@dataclasses.dataclass(frozen=True)
class TuningObjective:
  """How a trial's (dev accuracy, attack accuracy) become one score.

  Attributes:
    kind: constrained, weighted or pareto (see the module docstring).
    attack_target: constrained form's highest acceptable balanced accuracy
      of the strongest attack, in (0.5, 1].
    weight: weighted form's price of one point of attack accuracy in points
      of dev accuracy, >= 0 (the pareto form steers its oracle by it).
  """
  kind: ObjectiveKind = ObjectiveKind.CONSTRAINED
  attack_target: float = 0.7
  weight: float = 1.0

  def __post_init__(self):
    object.__setattr__(self, "kind", ObjectiveKind(self.kind))
    if not 0.5 < self.attack_target <= 1.0:
      raise ValueError("attack_target is a balanced accuracy in (0.5, 1], "
                       f"got {self.attack_target}.")
    if not self.weight >= 0.0:
      raise ValueError(f"weight must be >= 0, got {self.weight}.")

  def score(self, dev_accuracy: float, attack_accuracy: float) -> float:
    """The score to maximize (see the module docstring for the formulas).

    Args:
      dev_accuracy: pruned victim's dev accuracy in [0, 1].
      attack_accuracy: strongest attack's balanced accuracy in [0, 1].
    """
    for name, value in (("dev_accuracy", dev_accuracy),
                        ("attack_accuracy", attack_accuracy)):
      if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must lie in [0, 1], got {value}.")
    if self.kind is not ObjectiveKind.CONSTRAINED:
      return dev_accuracy - self.weight * (attack_accuracy - 0.5)
    if attack_accuracy <= self.attack_target:
      return dev_accuracy
    return -(attack_accuracy - self.attack_target)

  def feasible(self, attack_accuracy: float) -> Optional[bool]:
    """Whether the constraint holds (None for the other forms)."""
    if self.kind is not ObjectiveKind.CONSTRAINED:
      return None
    return attack_accuracy <= self.attack_target

  def describe(self) -> str:
    if self.kind is ObjectiveKind.PARETO:
      return ("the front of (dev accuracy, attack accuracy); trials steered "
              f"by dev accuracy - {self.weight:g} x (attack accuracy - 0.5)")
    if self.kind is ObjectiveKind.WEIGHTED:
      return f"dev accuracy - {self.weight:g} x (attack accuracy - 0.5)"
    return (f"dev accuracy, subject to attack accuracy <= "
            f"{self.attack_target:g}")

  def to_json(self) -> Dict[str, Any]:
    return {"kind": self.kind.value, "attack_target": self.attack_target,
            "weight": self.weight, "formula": self.describe()}


@dataclasses.dataclass(frozen=True)
class TrialMetrics:
  """What one tuning trial measured.

  Attributes:
    dev_accuracy: pruned victim's dev accuracy, in [0, 1].
    attack_accuracy: strongest attack's balanced accuracy on the held-out
      shadow, in [0, 1].
    strongest_attack: its name.
    attacks: {attack: balanced accuracy} of every attack run.
    rehearsal_test_accuracy: the held-out shadow's test accuracy (utility
      as the attacker's side sees it), in [0, 1].
    defense_seconds: the victim's pruning wall time with the defense, s.
  """
  dev_accuracy: float
  attack_accuracy: float
  strongest_attack: str
  attacks: Mapping[str, float]
  rehearsal_test_accuracy: float
  defense_seconds: float

  @classmethod
  def from_attacks(cls, dev_accuracy: float, attacks: Mapping[str, float],
                   rehearsal_test_accuracy: float,
                   defense_seconds: float) -> "TrialMetrics":
    """Picks the strongest of `attacks` ({name: balanced accuracy})."""
    if not attacks:
      raise ValueError("no attack results: the objective needs >= 1 attack.")
    strongest = max(attacks, key=lambda a: attacks[a])
    return cls(float(dev_accuracy), float(attacks[strongest]), strongest,
               {k: float(v) for k, v in attacks.items()},
               float(rehearsal_test_accuracy), float(defense_seconds))

  @classmethod
  def mean_of(cls, measurements: Sequence["TrialMetrics"]) -> "TrialMetrics":
    """Several rehearsals of one setting as one: every field is the mean
    over `measurements`; attack_accuracy is the mean of each rehearsal's
    strongest attack (not the strongest of the per-attack means, which is
    lower), strongest_attack the attack with the highest mean."""
    if not measurements:
      raise ValueError("no measurements to average.")
    names = measurements[0].attacks.keys()
    attacks = {a: float(np.mean([m.attacks[a] for m in measurements]))
               for a in names}
    mean = lambda field: float(np.mean([getattr(m, field)
                                        for m in measurements]))
    return cls(mean("dev_accuracy"), mean("attack_accuracy"),
               max(attacks, key=lambda a: attacks[a]), attacks,
               mean("rehearsal_test_accuracy"), mean("defense_seconds"))

  def metrics(self, objective: TuningObjective) -> Dict[str, float]:
    """The flat metrics dict a KerasTuner trial records ("score" first)."""
    out = {"score": objective.score(self.dev_accuracy, self.attack_accuracy),
           "dev_accuracy": self.dev_accuracy,
           "attack_accuracy": self.attack_accuracy,
           "rehearsal_test_accuracy": self.rehearsal_test_accuracy,
           "defense_seconds": self.defense_seconds}
    out.update({f"attack_{k}": v for k, v in self.attacks.items()})
    return out
