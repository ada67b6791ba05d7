"""LiRA (Carlini et al. 2022), online and offline.

For every target record x, the attacker's reference models (random-halves
protocol, `attacks.reference_design`) give the logit-scaled true-class
confidence φ = log(p_y / (1 − p_y)) of models that trained on x (IN) and
that did not (OUT). LiRA fits a Gaussian to each set and scores the target model's φ(x):

* online:  log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out);
* offline: −log P(Φ_out >= φ) with Φ_out ~ N(μ_out, σ_out), a one-sided
  test that only needs OUT models.

Variances: per record when every record has at least `lira_min_per_record`
observations per side (`lira_variance="auto"`), else one global variance per
side, pooled over the records' within-record deviations (Carlini et al. use a
global variance below 64 reference models). σ is floored at `SIGMA_FLOOR`.

Calibration (threshold choice) leaves one reference model out at a time: it
plays the target, with its own known IN/OUT records, and the others fit the
Gaussians. The victim's membership labels are never used.
"""

from typing import Tuple

import numpy as np
from scipy import stats

from attacks import base

SIGMA_FLOOR = 1e-3
MIN_REFERENCE_MODELS = 4


def gaussian_fit(phi: np.ndarray, mask: np.ndarray, per_record: bool
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-record mean and std of φ over the models selected by `mask`.

  Args:
    phi: float (R, n).
    mask: bool (R, n), which observations to use.
    per_record: per-record std (records with < 2 observations get the
      pooled one); False: the pooled std for all.

  Returns:
    (mean (n,), std (n,) >= SIGMA_FLOOR, count int (n,)); mean is NaN where
    count is 0.
  """
  count = mask.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = np.where(count > 0, (phi * mask).sum(axis=0) / count, np.nan)
    dev2 = np.where(mask, (phi - mean[None]) ** 2, 0.0).sum(axis=0)
  several = count >= 2
  if np.any(several):
    pooled = np.sqrt(dev2[several].sum() / (count[several] - 1).sum())
  elif mask.any():  # one observation per record: spread across records
    pooled = float(np.std(phi[mask]))
  else:
    pooled = SIGMA_FLOOR
  std = np.full(phi.shape[1], pooled, np.float64)
  if per_record:
    with np.errstate(invalid="ignore", divide="ignore"):
      std = np.where(several, np.sqrt(dev2 / np.maximum(count - 1, 1)), std)
  return mean, np.maximum(std, SIGMA_FLOOR), count


class LiRA(base.Attack):
  """LiRA on reference models; `online` uses IN and OUT models."""
  needs_shadows = False
  needs_reference = True

  def __init__(self, online: bool,
               options: base.AttackOptions = base.AttackOptions()):
    super().__init__(options)
    self.online = online
    self.name = "lira_online" if online else "lira_offline"
    self._stats = None
    self._reference = None

  def _per_record(self, in_mask: np.ndarray) -> bool:
    mode = self.options.lira_variance
    if mode != "auto":
      return mode == "per_record"
    need = self.options.lira_min_per_record
    out_ok = (~in_mask).sum(axis=0).min() >= need
    in_ok = in_mask.sum(axis=0).min() >= need
    return bool(out_ok and (in_ok or not self.online))

  def _fit_stats(self, phi, in_mask, per_record):
    out_stats = gaussian_fit(phi, ~in_mask, per_record)
    in_stats = gaussian_fit(phi, in_mask, per_record) if self.online else None
    return in_stats, out_stats

  def _usable(self, stats_pair) -> np.ndarray:
    in_stats, out_stats = stats_pair
    ok = out_stats[2] > 0
    if self.online:
      ok &= in_stats[2] > 0
    return ok

  def _score(self, phi: np.ndarray, stats_pair, cols) -> np.ndarray:
    in_stats, out_stats = stats_pair
    mu_out, sd_out = out_stats[0][cols], out_stats[1][cols]
    if not self.online:
      return -stats.norm.logsf((phi - mu_out) / sd_out)
    mu_in, sd_in = in_stats[0][cols], in_stats[1][cols]
    return (stats.norm.logpdf(phi, mu_in, sd_in)
            - stats.norm.logpdf(phi, mu_out, sd_out))

  def fit(self, data: base.AttackerData) -> base.Calibration:
    self.check(data)
    ref = data.reference
    if ref.num_models < MIN_REFERENCE_MODELS:
      raise ValueError(
          f"{self.name} needs at least {MIN_REFERENCE_MODELS} reference "
          f"(shadow) models so that, with one left out for calibration, "
          f"records still have IN and OUT models; got {ref.num_models}.")
    phi = ref.stack("logit_scaled_confidence")
    in_mask = ref.in_mask
    per_record = self._per_record(in_mask)
    self._reference = ref
    self._stats = self._fit_stats(phi, in_mask, per_record)
    members, non_members = [], []
    for j in range(ref.num_models):
      others = np.arange(ref.num_models) != j
      pair = self._fit_stats(phi[others], in_mask[others], per_record)
      ok = self._usable(pair)
      cols = np.flatnonzero(ok)
      scores = self._score(phi[j, cols], pair, cols)
      members.append(scores[in_mask[j, cols]])
      non_members.append(scores[~in_mask[j, cols]])
    members, non_members = np.concatenate(members), np.concatenate(non_members)
    if not (members.size and non_members.size):
      raise ValueError(f"{self.name}: too few reference models to calibrate a "
                       "threshold (no record has IN and OUT models once one "
                       "model is left out); train more reference models.")
    return base.Calibration(members, non_members)

  def score(self, query: base.TargetQuery) -> np.ndarray:
    if self._stats is None:
      raise ValueError(f"attack {self.name!r} must be fitted before scoring.")
    records = query.records
    if records.record_ids is None:
      raise ValueError(f"{self.name} needs record_ids on the target outputs "
                       "to find each record's reference models.")
    cols = self._reference.positions_of(records.record_ids)
    usable = self._usable(self._stats)[cols]
    if not np.all(usable):
      raise ValueError(
          f"{self.name}: {int((~usable).sum())} target records have no "
          f"{'IN and OUT' if self.online else 'OUT'} reference model; too few "
          "shadows for LiRA (train more reference models).")
    return self._score(records.logit_scaled_confidence(), self._stats, cols)


def lira_online(options: base.AttackOptions = base.AttackOptions()) -> LiRA:
  return LiRA(True, options)


def lira_offline(options: base.AttackOptions = base.AttackOptions()) -> LiRA:
  return LiRA(False, options)
