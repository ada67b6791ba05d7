"""RMIA (Zarifzadeh et al. 2024), online, on the random-halves reference models.

For a target record x and population records z (records no reference model
trained on, queried on the target model too):

  LR(x, z) = [p(x | θ) / p(x)] / [p(z | θ) / p(z)],
  score(x) = Pr_z[ LR(x, z) >= γ ],

where p(· | θ) is the target model's true-class probability and p(·) its
mean over the reference models (IN and OUT: the online variant). With one
target model the score is a non-decreasing function of p(x | θ) / p(x); we
break its ties (many members reach score 1 with few z) by that ratio:
score = (#{z : LR(x, z) >= γ} + r / (1 + r)) / (n_z + 1) with
r = p(x | θ) / p(x), which keeps the order of the paper's score and is
strictly increasing in r.

Calibration leaves one reference model out at a time (it plays the target);
the victim's membership labels are never used.
"""

import numpy as np

from attacks import base
from attacks import inputs as inputs_lib

MIN_REFERENCE_MODELS = 2


def rmia_scores(target_px: np.ndarray, reference_px: np.ndarray,
                target_pz: np.ndarray, reference_pz: np.ndarray,
                gamma: float = 1.0) -> np.ndarray:
  """RMIA scores, float64 (n,), in [0, 1].

  Args:
    target_px: (n,) target model's true-class probability on the records.
    reference_px: (n,) its mean over the reference models.
    target_pz, reference_pz: (n_z,) the same on population records.
    gamma: likelihood-ratio threshold γ > 0.
  """
  floor = inputs_lib.LOG_FLOOR
  ratio_x = target_px / np.maximum(reference_px, floor)
  ratio_z = np.sort(target_pz / np.maximum(reference_pz, floor))
  count = np.searchsorted(ratio_z, ratio_x / gamma, side="right")
  return (count + ratio_x / (1.0 + ratio_x)) / (ratio_z.size + 1.0)


class RMIA(base.Attack):
  """Online RMIA with population records."""
  name = "rmia"
  needs_shadows = False
  needs_reference = True
  needs_population = True

  def __init__(self, options: base.AttackOptions = base.AttackOptions()):
    super().__init__(options)
    self._reference = None
    self._px = None
    self._pz = None

  def fit(self, data: base.AttackerData) -> base.Calibration:
    self.check(data)
    ref = data.reference
    if ref.population is None:
      raise ValueError("rmia needs the reference models' outputs on "
                       "population records (ReferenceOutputs.population).")
    if ref.num_models < MIN_REFERENCE_MODELS:
      raise ValueError(f"rmia needs at least {MIN_REFERENCE_MODELS} reference "
                       f"models (one is left out for calibration); got "
                       f"{ref.num_models}.")
    px = ref.stack("true_class_confidence")
    pz = np.stack([out.true_class_confidence() for out in ref.population])
    gamma = self.options.rmia_gamma
    members, non_members = [], []
    for j in range(ref.num_models):
      others = np.arange(ref.num_models) != j
      scores = rmia_scores(px[j], px[others].mean(0), pz[j],
                           pz[others].mean(0), gamma)
      members.append(scores[ref.in_mask[j]])
      non_members.append(scores[~ref.in_mask[j]])
    self._reference = ref
    self._px, self._pz = px.mean(0), pz.mean(0)
    return base.Calibration(np.concatenate(members),
                            np.concatenate(non_members))

  def score(self, query: base.TargetQuery) -> np.ndarray:
    if self._reference is None:
      raise ValueError("attack 'rmia' must be fitted before scoring.")
    self.check(base.AttackerData(reference=self._reference), query)
    records, population = query.records, query.population
    if records.record_ids is None:
      raise ValueError("rmia needs record_ids on the target outputs.")
    cols = self._reference.positions_of(records.record_ids)
    ref_pop = self._reference.population[0]
    if ref_pop.record_ids is not None and population.record_ids is not None:
      population = population.take(population.positions_of(ref_pop.record_ids))
    elif len(population) != len(ref_pop):
      raise ValueError(f"the target's population outputs cover "
                       f"{len(population)} records, the reference models' "
                       f"{len(ref_pop)}.")
    return rmia_scores(records.true_class_confidence(), self._px[cols],
                       population.true_class_confidence(), self._pz,
                       self.options.rmia_gamma)


def rmia(options: base.AttackOptions = base.AttackOptions()) -> RMIA:
  return RMIA(options)
