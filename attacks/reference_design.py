"""The design of the random-halves reference models (LiRA, RMIA).

Reference models are trained on random halves (or, with `inclusion` != 0.5,
random subsets of a fixed share) of a pool made of the *target records*
(the victim's training and test records, as one unlabelled, sorted set: the
attacker only knows which records it will query, never which of them the
victim trained on) and the shadow pool. Models come in complementary pairs
(model 2k trains on one half, 2k+1 on the other), so every pool record has
as many IN as OUT models. The records held out on the attacker's side (the
shadows' half of the held-out set) are split into a dev set (early stopping
of the reference models) and RMIA's population.

This module only plans which records each reference model trains on
(`ReferencePlan`); training them is `wemem_eval.model_training`'s.
"""

import dataclasses
from typing import Optional, Sequence, Tuple

import numpy as np

from wemem_tf.data import splits as splits_lib


def target_records(splits: splits_lib.Splits) -> np.ndarray:
  """The records the attacker queries: the victim's training and test
  records as one sorted set (which are members is not part of it)."""
  return pooled_records([splits.victim])


def pooled_records(targets: Sequence[splits_lib.ModelSplit]) -> np.ndarray:
  """The records a pooled audit queries: every target's training and test
  records as one sorted set."""
  return np.unique(np.concatenate(
      [np.concatenate([t.train, t.test]) for t in targets])).astype(np.int64)


def attacker_heldout(splits: splits_lib.Splits) -> np.ndarray:
  """Held-out records on the attacker's side (none of the victim's)."""
  return splits_lib.shadow_heldout(splits)


@dataclasses.dataclass(frozen=True)
class ReferencePlan:
  """Record indices of the random-halves reference models.

  Attributes:
    pool: int64 (n,) sorted pool records (targets ∪ shadow pool).
    in_mask: bool (R, n): model r trains on pool[in_mask[r]].
    dev: int64 records for early stopping (outside the pool).
    population: int64 records for RMIA (outside the pool, disjoint from dev).
  """
  pool: np.ndarray
  in_mask: np.ndarray
  dev: np.ndarray
  population: np.ndarray

  @property
  def num_models(self) -> int:
    return self.in_mask.shape[0]

  def split(self, r: int) -> splits_lib.ModelSplit:
    """Model r's split: its half, dev, and the other half as test."""
    return splits_lib.ModelSplit(self.pool[self.in_mask[r]], self.dev,
                                 self.pool[~self.in_mask[r]])


def random_halves(targets: np.ndarray, attacker_pool: np.ndarray,
                  attacker_holdout: np.ndarray, num_models: int,
                  seed: int, inclusion: float = 0.5) -> ReferencePlan:
  """Plans `num_models` reference models on random subsets of the pool.

  Args:
    targets: record indices the attacker will query (membership unknown).
    attacker_pool: the attacker's own training records (shadow pool).
    attacker_holdout: records no reference model trains on; halved into dev
      and RMIA population.
    num_models: R >= 2 reference models.
    seed: seeds the subsets.
    inclusion: share of the pool each model trains on. 0.5 (the protocol
      of LiRA and RMIA): pairs (2k, 2k+1) train on complementary halves (an
      odd last model gets a random half of its own). Otherwise every record
      is IN in exactly k = round(inclusion * R) models chosen at random
      (1 <= k <= R - 1), so each model trains on about k / R of the pool:
      this matches a reference model's training size to a target's when
      the pool is too small for halves to (the tuning rehearsal).
  """
  if num_models < 2:
    raise ValueError(f"the random-halves protocol needs >= 2 reference "
                     f"models, got {num_models}.")
  if not 0.0 < inclusion < 1.0:
    raise ValueError(f"inclusion must lie in (0, 1), got {inclusion}.")
  pool = np.union1d(targets, attacker_pool).astype(np.int64)
  holdout = np.setdiff1d(attacker_holdout, pool).astype(np.int64)
  if holdout.size < 2:
    raise ValueError("need at least 2 attacker held-out records outside the "
                     "pool (for dev and population).")
  rng = np.random.default_rng([int(seed), 7919])
  if inclusion == 0.5:
    in_mask = _complementary_halves(rng, num_models, pool.size)
  else:
    in_mask = _fixed_count_subsets(rng, num_models, pool.size, inclusion)
  shuffled = rng.permutation(holdout)
  cut = holdout.size // 2
  return ReferencePlan(pool, in_mask, np.sort(shuffled[:cut]),
                       np.sort(shuffled[cut:]))


def _complementary_halves(rng: np.random.Generator, num_models: int,
                          size: int) -> np.ndarray:
  in_mask = np.zeros((num_models, size), bool)
  for r in range(0, num_models, 2):
    half = rng.permutation(size)[:size // 2]
    in_mask[r, half] = True
    if r + 1 < num_models:
      in_mask[r + 1] = ~in_mask[r]
  return in_mask


def _fixed_count_subsets(rng: np.random.Generator, num_models: int,
                         size: int, inclusion: float) -> np.ndarray:
  k = int(round(inclusion * num_models))
  if not 1 <= k <= num_models - 1:
    raise ValueError(
        f"inclusion {inclusion} with {num_models} reference models puts "
        f"every record IN {k} models, leaving no {'IN' if k < 1 else 'OUT'} "
        "model; use more reference models or an inclusion nearer 0.5.")
  ranks = np.argsort(rng.random((size, num_models)), axis=1)
  return (ranks < k).T


def matched_inclusion(target_train_size: int, pool_size: int,
                      min_in: int = 2, min_out: int = 2,
                      tolerance: float = 0.05) -> Tuple[float, int]:
  """(inclusion, R) so reference models train on about as many records as
  a target with `target_train_size` records, from a pool of `pool_size`.

  R is the smallest even number >= 4 for which k = round(share * R) models
  per record are IN and R - k OUT with k >= `min_in`, R - k >= `min_out`,
  and k / R within `tolerance` (relative) of share = target / pool.
  Examples: Location's rehearsal (1,804 of 2,170) gives (0.8, 10); its real
  protocol (1,804 of 4,271) gives (5/12, 12).
  """
  if not 0 < target_train_size < pool_size:
    raise ValueError(f"target_train_size must lie in [1, pool_size="
                     f"{pool_size}), got {target_train_size}.")
  if min_in < 1 or min_out < 1 or not 0 < tolerance < 1:
    raise ValueError("min_in and min_out must be >= 1 and tolerance in "
                     "(0, 1).")
  share = target_train_size / pool_size
  num_models = 4
  while True:
    k = int(round(share * num_models))
    if (k >= min_in and num_models - k >= min_out
        and abs(k / num_models - share) <= tolerance * share):
      return k / num_models, num_models
    num_models += 2


def matched_design(splits: splits_lib.Splits, min_out: int = 2,
                   targets: Optional[np.ndarray] = None
                   ) -> Tuple[float, int]:
  """`matched_inclusion` for the victim of `splits` and its LiRA pool
  (`targets`: the queried records, default `target_records(splits)`)."""
  targets = target_records(splits) if targets is None else targets
  pool = np.union1d(targets, splits.shadow_pool).size
  return matched_inclusion(splits.victim.train.size, pool, min_out=min_out)


def plan_for(splits: splits_lib.Splits, num_models: int,
             seed: int, inclusion: float = 0.5,
             targets: Optional[np.ndarray] = None) -> ReferencePlan:
  """`random_halves` for the victim's targets (or the queried records
  `targets`, e.g. several victims' in a pooled audit) and the attacker's
  records."""
  targets = target_records(splits) if targets is None else targets
  return random_halves(targets, splits.shadow_pool, attacker_heldout(splits),
                       num_models, seed, inclusion)
