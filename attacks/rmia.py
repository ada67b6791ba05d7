"""RMIA (Zarifzadeh et al. 2024), online, on the random-halves reference models.

For a target record x and population records z (records no reference model
trained on, queried on the target model too):

  LR(x, z) = [p(x | θ) / p(x)] / [p(z | θ) / p(z)],
  score(x) = Pr_z[ LR(x, z) >= γ ],

where p(· | θ) is the target model's true-class probability and p(·) its
mean over the reference models (IN and OUT: the online variant; with
`rmia_marginal="in_out"`, the default for designs that are not halves, the
mean of the IN and the OUT models' means). Population records
are OUT for every reference model, so p(z) is always their plain mean. With one
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


def reference_marginal(px: np.ndarray, in_mask: np.ndarray,
                       how: str = "all") -> np.ndarray:
  """p(x) of each record from its reference models, float64 (n,).

  Args:
    px: (R, n) reference models' true-class probabilities.
    in_mask: bool (R, n), which models trained on which record.
    how: "all" (mean over the R models) or "in_out" (mean of the IN mean
      and the OUT mean; a record with models on one side only gets that
      side's mean).
  """
  if how == "all":
    return px.mean(0)
  if how != "in_out":
    raise ValueError(f"how must be 'all' or 'in_out', got {how!r}.")
  n_in, n_out = in_mask.sum(0), (~in_mask).sum(0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean_in = (px * in_mask).sum(0) / n_in
    mean_out = (px * ~in_mask).sum(0) / n_out
  return np.where(n_in == 0, mean_out,
                  np.where(n_out == 0, mean_in, 0.5 * (mean_in + mean_out)))


def marginal_mode(in_mask: np.ndarray, option: str) -> str:
  """`AttackOptions.rmia_marginal` resolved for a design ("auto": "all" iff
  every record is IN in exactly half of the models)."""
  if option != "auto":
    return option
  balanced = np.all(2 * in_mask.sum(0) == in_mask.shape[0])
  return "all" if balanced else "in_out"


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
    how = marginal_mode(ref.in_mask, self.options.rmia_marginal)
    members, non_members = [], []
    for j in range(ref.num_models):
      others = np.arange(ref.num_models) != j
      scores = rmia_scores(px[j],
                           reference_marginal(px[others], ref.in_mask[others],
                                              how),
                           pz[j], pz[others].mean(0), gamma)
      members.append(scores[ref.in_mask[j]])
      non_members.append(scores[~ref.in_mask[j]])
    self._reference = ref
    self._px = reference_marginal(px, ref.in_mask, how)
    self._pz = pz.mean(0)
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
