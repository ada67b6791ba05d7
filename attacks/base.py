"""The attack interface and what an attack may see.

An attack is fitted on `AttackerData` (the attacker's own shadow and
reference models, with their known members) and then scores a `TargetQuery`
(the victim's outputs on the target records, *without* membership labels).
`fit` returns a `Calibration`: membership scores of records whose membership
the attacker knows (from its own models), from which the decision threshold
is chosen. Victim members and non-members are therefore never used to choose
thresholds or to train attack models: the interface does not hand them over.
"""

import abc
import dataclasses
from typing import Optional, Tuple

import numpy as np

from attacks import inputs as inputs_lib
from attacks import metrics as metrics_lib


@dataclasses.dataclass(frozen=True)
class AttackOptions:
  """Settings shared by the attacks (each uses the ones that apply).

  Attributes:
    seed: seeds data subsampling, splits and attack-model initialization.
    max_epochs: epochs at most for trained attack models (NN*, SAMIA).
    patience: early-stopping patience (epochs) on their dev accuracy.
    batch_size: their batch size.
    learning_rate: their Adam learning rate.
    weight_decay: their L2 coefficient (added to the gradient).
    dev_fraction: share of the (balanced) shadow records held out as dev
      for early stopping and threshold choice.
    samia_width: SAMIA's token width d.
    samia_heads: SAMIA's attention heads.
    samia_layers: SAMIA's encoder blocks.
    lira_variance: "auto", "per_record" or "global": LiRA's Gaussian
      variances; "auto" is per-record when every record has at least
      `lira_min_per_record` IN and OUT observations, else global.
    lira_min_per_record: see lira_variance.
    rmia_gamma: RMIA's likelihood-ratio threshold γ.
    rmia_marginal: how RMIA estimates p(x) from its reference models: "all"
      (their mean: the paper's online RMIA, whose IN and OUT models are
      balanced by design), "in_out" (the mean of the IN models' mean and
      the OUT models' mean: p(x) under an even membership prior whatever
      the design's inclusion rate) or "auto" (default: "all" when every
      record is IN in exactly half the reference models, else "in_out").
  """
  seed: int = 0
  max_epochs: int = 50
  patience: int = 5
  batch_size: int = 128
  learning_rate: float = 1e-3
  weight_decay: float = 0.0
  dev_fraction: float = 0.2
  samia_width: int = 64
  samia_heads: int = 4
  samia_layers: int = 3
  lira_variance: str = "auto"
  lira_min_per_record: int = 32
  rmia_gamma: float = 1.0
  rmia_marginal: str = "auto"

  def __post_init__(self):
    if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
      raise ValueError("max_epochs, patience and batch_size must be >= 1.")
    if not 0.0 < self.dev_fraction < 1.0:
      raise ValueError(f"dev_fraction must lie in (0, 1), got "
                       f"{self.dev_fraction}.")
    if self.lira_variance not in ("auto", "per_record", "global"):
      raise ValueError("lira_variance must be 'auto', 'per_record' or "
                       f"'global', got {self.lira_variance!r}.")
    if self.samia_width % self.samia_heads:
      raise ValueError("samia_width must be a multiple of samia_heads.")
    if not self.rmia_gamma > 0:
      raise ValueError(f"rmia_gamma must be > 0, got {self.rmia_gamma}.")
    if self.rmia_marginal not in ("auto", "all", "in_out"):
      raise ValueError("rmia_marginal must be 'auto', 'all' or 'in_out', got "
                       f"{self.rmia_marginal!r}.")


@dataclasses.dataclass(frozen=True, eq=False)
class AttackerData:
  """Everything the attacker learns from: its own models' outputs.

  Attributes:
    shadows: one `MembershipOutputs` per shadow model (members = its
      training records, non-members = its test records).
    reference: optional random-halves reference models (LiRA, RMIA).
  """
  shadows: Tuple[inputs_lib.MembershipOutputs, ...] = ()
  reference: Optional[inputs_lib.ReferenceOutputs] = None

  def __post_init__(self):
    object.__setattr__(self, "shadows", tuple(self.shadows))
    classes = {s.num_classes for s in self.shadows}
    if self.reference is not None:
      classes.add(self.reference.outputs[0].num_classes)
    if len(classes) > 1:
      raise ValueError(f"attacker models disagree on the number of classes: "
                       f"{sorted(classes)}.")

  def pooled_shadows(self) -> Tuple[inputs_lib.ModelOutputs, np.ndarray,
                                    np.ndarray]:
    """(all shadow records, is_member bool (n,), shadow index int (n,))."""
    if not self.shadows:
      raise ValueError("this attack needs shadow models; got none.")
    parts, members, which = [], [], []
    for i, shadow in enumerate(self.shadows):
      outputs, is_member = shadow.labelled()
      parts.append(outputs)
      members.append(is_member)
      which.append(np.full(len(is_member), i))
    return (inputs_lib.ModelOutputs.concatenate(parts),
            np.concatenate(members), np.concatenate(which))


@dataclasses.dataclass(frozen=True, eq=False)
class TargetQuery:
  """What the attacker gets from the target model: its outputs on the target
  records (no membership labels) and, optionally, on population records."""
  records: inputs_lib.ModelOutputs
  population: Optional[inputs_lib.ModelOutputs] = None


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
  """Scores of records with membership known to the attacker.

  Attributes:
    member_scores, non_member_scores: float64 scores.
    threshold: a threshold the attack fixes itself (e.g. 0 for per-class
      thresholds already folded into the score, 0.5 for Gap); None: choose
      the one maximizing balanced accuracy on these scores.
  """
  member_scores: np.ndarray
  non_member_scores: np.ndarray
  threshold: Optional[float] = None

  def choose(self) -> metrics_lib.ThresholdChoice:
    """The decision threshold and its balanced accuracy on this data."""
    if self.threshold is not None:
      if not (np.size(self.member_scores) and np.size(self.non_member_scores)):
        return metrics_lib.ThresholdChoice(float(self.threshold), float("nan"))
      return metrics_lib.ThresholdChoice(
          float(self.threshold), metrics_lib.balanced_accuracy(
              self.member_scores, self.non_member_scores, self.threshold))
    return metrics_lib.best_threshold(self.member_scores,
                                      self.non_member_scores)


@dataclasses.dataclass(frozen=True, eq=False)
class TargetData:
  """The victim's outputs on its members, its non-members and population.

  Only the evaluation (`suite.run_attack`) sees which record is which; an
  attack gets `query()`, the records in a seeded random order, unlabelled.
  """
  members: inputs_lib.ModelOutputs
  non_members: inputs_lib.ModelOutputs
  population: Optional[inputs_lib.ModelOutputs] = None

  def __post_init__(self):
    inputs_lib.MembershipOutputs(self.members, self.non_members)  # validates

  def query(self, seed: int = 0) -> Tuple[TargetQuery, np.ndarray]:
    """(unlabelled shuffled query, is_member bool aligned with it)."""
    outputs, is_member = inputs_lib.MembershipOutputs(
        self.members, self.non_members).labelled()
    order = np.random.default_rng(seed).permutation(len(is_member))
    return (TargetQuery(outputs.take(order), self.population),
            is_member[order])


class Attack(abc.ABC):
  """A membership-inference attack.

  Subclasses set `name`, the `needs_*` flags and implement `fit` / `score`.
  Scores are higher for "member".
  """
  name: str = ""
  trained: bool = False  # trains a model (tensorflow-privacy's notion)
  needs_shadows: bool = True
  needs_reference: bool = False
  needs_sensitivity: bool = False
  needs_population: bool = False

  def __init__(self, options: AttackOptions = AttackOptions()):
    self.options = options

  @property
  def attack_type(self) -> metrics_lib.SuiteAttackType:
    return metrics_lib.SuiteAttackType(self.name, self.trained)

  def check(self, data: AttackerData, query: Optional[TargetQuery] = None
            ) -> None:
    """Raises ValueError when the data lacks what this attack needs."""
    if self.needs_shadows and not data.shadows:
      raise ValueError(f"attack {self.name!r} needs shadow models; got none.")
    if self.needs_reference and data.reference is None:
      raise ValueError(f"attack {self.name!r} needs reference models (the "
                       "random-halves protocol); got none.")
    if self.needs_sensitivity:
      outs = [o for s in data.shadows for o in (s.members, s.non_members)]
      if query is not None:
        outs.append(query.records)
      if any(o.sensitivity is None for o in outs):
        raise ValueError(f"attack {self.name!r} needs SAMIA sensitivity in "
                         "every ModelOutputs (query with "
                         "with_sensitivity=True).")
    if self.needs_population and query is not None and (
        query.population is None):
      raise ValueError(f"attack {self.name!r} needs the target model's "
                       "outputs on population records.")

  @abc.abstractmethod
  def fit(self, data: AttackerData) -> Calibration:
    """Learns from the attacker's models only; returns calibration scores."""

  @abc.abstractmethod
  def score(self, query: TargetQuery) -> np.ndarray:
    """Membership scores, float64 (len(query.records),)."""
