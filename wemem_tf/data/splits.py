"""The data protocol of docs/method.md §2 as a pure function of (fingerprint, seed).

1. Pool / held-out: the dataset's own test records are held out (CIFAR-10);
   otherwise a fixed 80/20 split of all records.
2. Pool → victim pool / shadow pool, 50/50.
3. Victim train = 90% of the victim pool. The other 10% joins the victim's
   half of the held-out records; that union splits 34% dev / 66% test.
4. Shadow i train = 90% of the shadow pool (its own stream i); its dev/test
   come the same way from the rest of the shadow pool and the shadows' half of
   the held-out records.

Our decision where the authors' code is silent: the held-out records are
halved between victim and shadows, so no victim member or non-member is ever
seen by the attacker's shadows (victim and shadow records are disjoint).
Every array holds record indices into the `Dataset`.
"""

import dataclasses
import json
from typing import Callable, Optional, Tuple

import numpy as np

from wemem_tf import io_utils


@dataclasses.dataclass(frozen=True)
class SplitConfig:
  """Fractions of the split protocol (defaults: the authors' code)."""
  heldout_fraction: float = 0.2
  victim_pool_fraction: float = 0.5
  train_fraction: float = 0.9
  dev_fraction: float = 0.34

  def __post_init__(self):
    for name in ("heldout_fraction", "victim_pool_fraction", "train_fraction",
                 "dev_fraction"):
      value = getattr(self, name)
      if not 0.0 < value < 1.0:
        raise ValueError(f"SplitConfig.{name} must lie in (0, 1), got {value}.")


@dataclasses.dataclass(frozen=True)
class ModelSplit:
  """Record indices for one model: int64 arrays, pairwise disjoint."""
  train: np.ndarray
  dev: np.ndarray
  test: np.ndarray


@dataclasses.dataclass(frozen=True)
class Splits:
  """Victim and shadow splits of one dataset for one seed."""
  fingerprint: str
  seed: int
  pool: np.ndarray
  heldout: np.ndarray
  victim_pool: np.ndarray
  shadow_pool: np.ndarray
  victim: ModelSplit
  shadows: Tuple[ModelSplit, ...]

  def save(self, path: str) -> None:
    """Writes the splits atomically as an .npz of index arrays."""
    arrays = {"pool": self.pool, "heldout": self.heldout,
              "victim_pool": self.victim_pool, "shadow_pool": self.shadow_pool}
    for name, split in [("victim", self.victim)] + [
        (f"shadow{i}", s) for i, s in enumerate(self.shadows)]:
      for part in ("train", "dev", "test"):
        arrays[f"{name}_{part}"] = getattr(split, part)
    meta = {"fingerprint": self.fingerprint, "seed": self.seed,
            "num_shadows": len(self.shadows)}
    io_utils.atomic_save_npz(path, meta=np.array(json.dumps(meta)), **arrays)

  @classmethod
  def load(cls, path: str, fingerprint: Optional[str] = None) -> "Splits":
    """Reads splits saved by `save`; checks the dataset fingerprint."""
    arrays = io_utils.load_npz(path)
    if "meta" not in arrays:
      raise ValueError(f"{path!r} is not a splits file (no 'meta' array).")
    meta = json.loads(str(arrays["meta"]))
    if fingerprint is not None and meta["fingerprint"] != fingerprint:
      raise ValueError(
          f"splits in {path!r} belong to dataset fingerprint "
          f"{meta['fingerprint'][:12]}…, not to this dataset "
          f"({fingerprint[:12]}…); recompute them with make_splits.")
    def model_split(name):
      return ModelSplit(*(arrays[f"{name}_{p}"] for p in ("train", "dev", "test")))
    return cls(meta["fingerprint"], int(meta["seed"]), arrays["pool"],
               arrays["heldout"], arrays["victim_pool"], arrays["shadow_pool"],
               model_split("victim"),
               tuple(model_split(f"shadow{i}")
                     for i in range(meta["num_shadows"])))


def _rng(fingerprint: str, *stream: int) -> np.random.Generator:
  return np.random.default_rng([int(fingerprint[:16], 16), *stream])


def _cut(indices: np.ndarray, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
  k = int(round(fraction * len(indices)))
  return np.sort(indices[:k]), np.sort(indices[k:])


def _model_split(rng: np.random.Generator, pool: np.ndarray,
                 heldout: np.ndarray, config: SplitConfig) -> ModelSplit:
  train, rest = _cut(rng.permutation(pool), config.train_fraction)
  dev, test = _cut(rng.permutation(np.concatenate([rest, heldout])),
                   config.dev_fraction)
  return ModelSplit(train, dev, test)


def make_splits(num_records: int, fingerprint: str, seed: int,
                num_shadows: int = 5,
                heldout_mask: Optional[np.ndarray] = None,
                config: SplitConfig = SplitConfig()) -> Splits:
  """Splits records for the victim and `num_shadows` shadows (docs/method.md §2).

  A pure function: the same (fingerprint, seed, num_shadows, config) gives the
  same arrays on any machine.

  Args:
    num_records: records in the dataset (n).
    fingerprint: the dataset's hex fingerprint (seeds the generator).
    seed: run seed.
    num_shadows: shadow models to split for (>= 0).
    heldout_mask: optional bool (n,) of records the dataset holds out itself.
    config: split fractions.

  Returns:
    `Splits` with int64 record-index arrays.
  """
  if num_records < 20:
    raise ValueError(f"need at least 20 records to split, got {num_records}.")
  if num_shadows < 0:
    raise ValueError(f"num_shadows must be >= 0, got {num_shadows}.")
  if not fingerprint or len(fingerprint) < 16:
    raise ValueError("fingerprint must be the dataset's hex fingerprint.")
  seed = int(seed)
  rng = _rng(fingerprint, seed, 0)
  all_records = np.arange(num_records, dtype=np.int64)
  if heldout_mask is not None:
    pool, heldout = all_records[~heldout_mask], all_records[heldout_mask]
  else:
    heldout, pool = _cut(rng.permutation(all_records), config.heldout_fraction)
  return _protocol(fingerprint, seed, pool, heldout, rng,
                   lambda i: _rng(fingerprint, seed, 1 + i), num_shadows,
                   config)


def _protocol(fingerprint: str, seed: int, pool: np.ndarray,
              heldout: np.ndarray, rng: np.random.Generator,
              shadow_rng: Callable[[int], np.random.Generator],
              num_shadows: int, config: SplitConfig) -> Splits:
  """Steps 2-4 of the protocol on a given pool and held-out set."""
  victim_pool, shadow_pool = _cut(rng.permutation(pool),
                                  config.victim_pool_fraction)
  victim_heldout, shadow_heldout_part = _cut(rng.permutation(heldout),
                                             config.victim_pool_fraction)
  victim = _model_split(rng, victim_pool, victim_heldout, config)
  shadows = tuple(_model_split(shadow_rng(i), shadow_pool,
                               shadow_heldout_part, config)
                  for i in range(num_shadows))
  return Splits(fingerprint, seed, np.sort(pool), np.sort(heldout),
                victim_pool, shadow_pool, victim, shadows)


def splits_for(dataset, seed: int, num_shadows: int = 5,
               config: SplitConfig = SplitConfig()) -> Splits:
  """`make_splits` for a `Dataset`."""
  return make_splits(len(dataset), dataset.fingerprint, seed, num_shadows,
                     dataset.heldout_mask, config)


def shadow_heldout(splits: Splits) -> np.ndarray:
  """The held-out records on the shadows' side (none of the victim's)."""
  victim = np.concatenate([splits.victim.train, splits.victim.dev,
                           splits.victim.test])
  return np.setdiff1d(splits.heldout, victim).astype(np.int64)


def rehearsal_splits(splits: Splits, config: SplitConfig = SplitConfig(),
                     stream: int = 0) -> Splits:
  """Splits for rehearsing attacks without touching the victim's records.

  A *held-out shadow* plays the victim: it trains on `config.train_fraction`
  of the shadow pool (as many records as the victim) and takes its dev/test
  records from the rest of the shadow pool and one half of the shadows'
  held-out records; the other half stays outside every target (LiRA / RMIA
  need such records for dev and population). The shadows are `splits`'
  own, so their pre-trained models are shared with the real experiment.
  Used to tune defenses (docs/method.md §8): no victim train, dev or test
  record appears in the result.

  Args:
    splits: the protocol's splits (`make_splits`), with >= 1 shadow.
    config: split fractions (must be those `splits` were made with).
    stream: which held-out shadow (another stream draws another target
      split and another half of the held-out records; 0 is the default).

  Returns:
    `Splits` whose `victim` is the held-out shadow, `shadows` are
    `splits.shadows`, `pool`/`victim_pool`/`shadow_pool` the shadow pool and
    `heldout` the shadows' held-out records.
  """
  if not splits.shadows:
    raise ValueError("rehearsal needs splits with at least one shadow.")
  heldout = shadow_heldout(splits)
  if heldout.size < 4:
    raise ValueError(f"only {heldout.size} shadow-side held-out records; "
                     "rehearsal needs at least 4.")
  if stream < 0:
    raise ValueError(f"stream must be >= 0, got {stream}.")
  rng = _rng(splits.fingerprint, splits.seed, 10_000 + int(stream))
  target_heldout, _ = _cut(rng.permutation(heldout), 0.5)
  target = _model_split(rng, splits.shadow_pool, target_heldout, config)
  return Splits(splits.fingerprint, splits.seed, splits.shadow_pool, heldout,
                splits.shadow_pool, splits.shadow_pool, target, splits.shadows)


def scaled_rehearsal_splits(splits: Splits, config: SplitConfig = SplitConfig(),
                            stream: int = 0) -> Splits:
  """The whole protocol again, at about half scale, on the shadows' side.

  The shadow pool plays the pool and the shadows' held-out records play the
  held-out set: a victim, its shadows (`len(splits.shadows)` of them) and,
  through them, LiRA/RMIA reference models split exactly as `make_splits`
  splits the dataset. Everything is about half as large as in the real
  protocol, but every ratio the attacks depend on (reference models'
  training-set size and overlap with the target's, shadow sizes, member /
  non-member shares) is the real protocol's, which a full-size target on
  the shadows' side cannot have (`rehearsal_splits`). Defenses that count
  records per class scale their settings to it
  (wemem_eval.tuning.tuner.scaled_defense).
  No victim train, dev or test record appears in the result.

  Args:
    splits: the protocol's splits (`make_splits`).
    config: split fractions (those `splits` were made with).
    stream: which rehearsal world (another stream draws other splits).
  """
  heldout = shadow_heldout(splits)
  if splits.shadow_pool.size < 20 or heldout.size < 4:
    raise ValueError(f"the shadows' side ({splits.shadow_pool.size} pool, "
                     f"{heldout.size} held-out records) is too small for a "
                     "scaled rehearsal; it needs >= 20 and >= 4.")
  if stream < 0:
    raise ValueError(f"stream must be >= 0, got {stream}.")
  base = 20_000 + 100 * int(stream)
  return _protocol(splits.fingerprint, splits.seed, splits.shadow_pool,
                   heldout, _rng(splits.fingerprint, splits.seed, base),
                   lambda i: _rng(splits.fingerprint, splits.seed,
                                  base + 1 + i),
                   len(splits.shadows), config)


def audit_splits(num_records: int, fingerprint: str, seed: int,
                 members: np.ndarray, non_members: np.ndarray,
                 num_shadows: int = 5, excluded: Optional[np.ndarray] = None,
                 heldout_mask: Optional[np.ndarray] = None,
                 config: SplitConfig = SplitConfig()) -> Splits:
  """Splits around a given model's members and non-members (an audit).

  The victim is a model trained elsewhere: its `train` are `members`, its
  `test` the `non_members`, its `dev` the `excluded` records (any other
  record it saw, kept from the attacker). Every other record is the
  attacker's: the dataset's own held-out records among them (or, without a
  `heldout_mask`, a `config.heldout_fraction` share drawn from stream
  30,000) are the attacker's held-out records, the rest its pool, and shadow
  i splits them as step 4 of docs/method.md §2 does (stream 30,001 + i).
  A pure function of its arguments.

  Raises:
    ValueError: overlapping or out-of-range indices, or too few records
      left for the attacker (>= 20 pool and >= 4 held-out records).
  """
  groups = {"members": members, "non_members": non_members,
            "excluded": np.zeros(0, np.int64) if excluded is None
            else excluded}
  for name, array in groups.items():
    array = np.asarray(array)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
      raise ValueError(f"{name} must be a 1-D integer array of record "
                       f"indices, got {array.dtype} {array.shape}.")
    if array.size and (array.min() < 0 or array.max() >= num_records):
      raise ValueError(f"{name} must lie in [0, {num_records}); got range "
                       f"[{array.min()}, {array.max()}].")
    if len(np.unique(array)) != len(array):
      raise ValueError(f"{name} repeat record indices.")
    groups[name] = np.sort(array.astype(np.int64))
  for name in ("members", "non_members"):
    if groups[name].size == 0:
      raise ValueError(f"{name} is empty; an audit needs both members and "
                       "non-members.")
  for a, b in (("members", "non_members"), ("members", "excluded"),
               ("non_members", "excluded")):
    both = np.intersect1d(groups[a], groups[b])
    if both.size:
      raise ValueError(f"{both.size} records (e.g. {both[0]}) are in both "
                       f"{a} and {b}.")
  seed = int(seed)
  victim_records = np.concatenate(list(groups.values()))
  attacker = np.setdiff1d(np.arange(num_records, dtype=np.int64),
                          victim_records)
  if heldout_mask is not None:
    held = np.asarray(heldout_mask)[attacker]
    heldout, pool = attacker[held], attacker[~held]
  else:
    heldout, pool = _cut(_rng(fingerprint, seed, 30_000).permutation(attacker),
                         config.heldout_fraction)
  if pool.size < 20 or heldout.size < 4:
    raise ValueError(
        f"only {attacker.size} records are neither members, non-members nor "
        f"excluded ({pool.size} pool, {heldout.size} held-out); the attacker "
        "needs >= 20 pool and >= 4 held-out records to train shadow and "
        "reference models. Audit fewer records.")
  shadows = tuple(_model_split(_rng(fingerprint, seed, 30_001 + i), pool,
                               heldout, config) for i in range(num_shadows))
  victim = ModelSplit(groups["members"], groups["excluded"],
                      groups["non_members"])
  return Splits(fingerprint, seed,
                np.sort(np.concatenate([groups["members"], pool])),
                np.sort(np.concatenate([groups["non_members"],
                                        groups["excluded"], heldout])),
                groups["members"], np.sort(pool), victim, shadows)
