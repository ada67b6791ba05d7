"""The data protocol of docs/method.md §2 as a pure function of (fingerprint, seed).

1. Pool / held-out: the dataset's own test records are held out (CIFAR-10);
   otherwise a fixed 80/20 split of all records.
2. Pool → victim pool / shadow pool, 50/50.
3. Victim train = 90% of the victim pool. The other 10% joins the victim's
   half of the held-out records; that union splits 34% dev / 66% test.
4. Shadow i train = 90% of the shadow pool (its own stream i); its dev/test
   come the same way from the rest of the shadow pool and the shadows' half of
   the held-out records.

Our decisions where the authors' code is silent or differs: the held-out
records are halved between victim and shadows, so no victim member or
non-member is ever seen by the attacker's shadows (victim and shadow records
are disjoint); and every cut above is stratified by class (each class is cut
in the protocol's proportions, `SplitConfig.stratified`, docs/method.md §2).
The authors cut at random; then the victim's and the
shadows' per-class member shares are anti-correlated (their pools are
complementary halves) and attack models that see the class learn the
opposite of the victim's class prior. `SplitConfig(stratified=False)`
(`--split=unstratified`) keeps their cuts: the same random permutations,
cut without regard to class.
Every array holds record indices into the `Dataset`.
"""

import dataclasses
import json
from typing import Callable, Optional, Tuple

import numpy as np

from wemem_tf import io_utils


@dataclasses.dataclass(frozen=True)
class SplitConfig:
  """The split protocol's fractions (the authors' code) and whether every
  cut is stratified by class (ours: True; theirs: False)."""
  heldout_fraction: float = 0.2
  victim_pool_fraction: float = 0.5
  train_fraction: float = 0.9
  dev_fraction: float = 0.34
  stratified: bool = True

  @property
  def name(self) -> str:
    """"stratified" or "unstratified" (the `--split` flag's value)."""
    return "stratified" if self.stratified else "unstratified"

  def labels(self, labels: Optional[np.ndarray],
             num_records: int) -> Optional[np.ndarray]:
    """The labels the cuts stratify by: `labels` (checked) when stratified,
    None when not."""
    if not self.stratified:
      return None
    if labels is None:
      raise ValueError("stratified splits need the records' labels; pass "
                       "labels= (or use SplitConfig(stratified=False)).")
    labels = np.asarray(labels)
    if labels.shape != (num_records,):
      raise ValueError(f"labels must have shape ({num_records},), one per "
                       f"record; got {labels.shape}.")
    return labels

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
  stratified: bool = False

  def save(self, path: str) -> None:
    """Writes the splits atomically as an .npz of index arrays."""
    arrays = {"pool": self.pool, "heldout": self.heldout,
              "victim_pool": self.victim_pool, "shadow_pool": self.shadow_pool}
    for name, split in [("victim", self.victim)] + [
        (f"shadow{i}", s) for i, s in enumerate(self.shadows)]:
      for part in ("train", "dev", "test"):
        arrays[f"{name}_{part}"] = getattr(split, part)
    meta = {"fingerprint": self.fingerprint, "seed": self.seed,
            "num_shadows": len(self.shadows), "stratified": self.stratified}
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
                     for i in range(meta["num_shadows"])),
               bool(meta.get("stratified", False)))  # older files: random


def _rng(fingerprint: str, *stream: int) -> np.random.Generator:
  return np.random.default_rng([int(fingerprint[:16], 16), *stream])


def _stratified_head(classes: np.ndarray, k: int) -> np.ndarray:
  """Bool mask of the `k` records that open a random order, taken class by
  class: class c gets k * n_c / n of them, rounded by largest remainder
  (ties: the class seen first in the order), each class's first in the
  order."""
  _, inverse, counts = np.unique(classes, return_inverse=True,
                                 return_counts=True)
  exact = k * counts / len(classes)
  quota = np.floor(exact).astype(np.int64)
  left = k - int(quota.sum())
  if left:
    first_seen = np.full(len(counts), len(classes))
    np.minimum.at(first_seen, inverse, np.arange(len(classes)))
    quota[np.lexsort((first_seen, -(exact - quota)))[:left]] += 1
  by_class = np.argsort(inverse, kind="stable")
  rank = np.empty(len(classes), np.int64)
  rank[by_class] = (np.arange(len(classes))
                    - np.repeat(np.cumsum(counts) - counts, counts))
  return rank < quota[inverse]


def _cut(indices: np.ndarray, fraction: float,
         labels: Optional[np.ndarray] = None
         ) -> Tuple[np.ndarray, np.ndarray]:
  """(first `fraction`, rest) of `indices` (a random order), sorted; with
  `labels` (one per record of the dataset) each class is cut in that
  proportion; the total is round(fraction * len) either way."""
  k = int(round(fraction * len(indices)))
  if labels is None:
    return np.sort(indices[:k]), np.sort(indices[k:])
  head = _stratified_head(labels[indices], k)
  return np.sort(indices[head]), np.sort(indices[~head])


def _model_split(rng: np.random.Generator, pool: np.ndarray,
                 heldout: np.ndarray, config: SplitConfig,
                 labels: Optional[np.ndarray]) -> ModelSplit:
  train, rest = _cut(rng.permutation(pool), config.train_fraction, labels)
  dev, test = _cut(rng.permutation(np.concatenate([rest, heldout])),
                   config.dev_fraction, labels)
  return ModelSplit(train, dev, test)


def make_splits(num_records: int, fingerprint: str, seed: int,
                num_shadows: int = 5,
                heldout_mask: Optional[np.ndarray] = None,
                config: SplitConfig = SplitConfig(),
                labels: Optional[np.ndarray] = None) -> Splits:
  """Splits records for the victim and `num_shadows` shadows (docs/method.md §2).

  A pure function: the same (fingerprint, seed, num_shadows, config, labels)
  gives the same arrays on any machine.

  Args:
    num_records: records in the dataset (n).
    fingerprint: the dataset's hex fingerprint (seeds the generator).
    seed: run seed.
    num_shadows: shadow models to split for (>= 0).
    heldout_mask: optional bool (n,) of records the dataset holds out itself.
    config: split fractions and stratification.
    labels: int (n,) class of each record; needed when `config.stratified`
      (`splits_for` passes the dataset's).

  Returns:
    `Splits` with int64 record-index arrays.
  """
  if num_records < 20:
    raise ValueError(f"need at least 20 records to split, got {num_records}.")
  if num_shadows < 0:
    raise ValueError(f"num_shadows must be >= 0, got {num_shadows}.")
  if not fingerprint or len(fingerprint) < 16:
    raise ValueError("fingerprint must be the dataset's hex fingerprint.")
  labels = config.labels(labels, num_records)
  seed = int(seed)
  rng = _rng(fingerprint, seed, 0)
  all_records = np.arange(num_records, dtype=np.int64)
  if heldout_mask is not None:
    pool, heldout = all_records[~heldout_mask], all_records[heldout_mask]
  else:
    heldout, pool = _cut(rng.permutation(all_records), config.heldout_fraction,
                         labels)
  return _protocol(fingerprint, seed, pool, heldout, rng,
                   lambda i: _rng(fingerprint, seed, 1 + i), num_shadows,
                   config, labels)


def _protocol(fingerprint: str, seed: int, pool: np.ndarray,
              heldout: np.ndarray, rng: np.random.Generator,
              shadow_rng: Callable[[int], np.random.Generator],
              num_shadows: int, config: SplitConfig,
              labels: Optional[np.ndarray]) -> Splits:
  """Steps 2-4 of the protocol on a given pool and held-out set."""
  victim_pool, shadow_pool = _cut(rng.permutation(pool),
                                  config.victim_pool_fraction, labels)
  victim_heldout, shadow_heldout_part = _cut(rng.permutation(heldout),
                                             config.victim_pool_fraction,
                                             labels)
  victim = _model_split(rng, victim_pool, victim_heldout, config, labels)
  shadows = tuple(_model_split(shadow_rng(i), shadow_pool,
                               shadow_heldout_part, config, labels)
                  for i in range(num_shadows))
  return Splits(fingerprint, seed, np.sort(pool), np.sort(heldout),
                victim_pool, shadow_pool, victim, shadows, labels is not None)


def splits_for(dataset, seed: int, num_shadows: int = 5,
               config: SplitConfig = SplitConfig()) -> Splits:
  """`make_splits` for a `Dataset` (stratified by its labels unless
  `config.stratified` is False)."""
  return make_splits(len(dataset), dataset.fingerprint, seed, num_shadows,
                     dataset.heldout_mask, config, dataset.y)


def target_splits(splits: Splits, num_targets: int,
                  config: SplitConfig = SplitConfig(),
                  labels: Optional[np.ndarray] = None
                  ) -> Tuple[ModelSplit, ...]:
  """`num_targets` victims' splits for a pooled audit (docs/method.md §7).

  Target 0 is `splits.victim`; target t >= 1 is drawn by the same step 3
  from its own stream (40,000 + t): it trains on `config.train_fraction` of
  the victim pool, and its dev/test come from the rest and the victim's half
  of the held-out records. So every target has the victim's sizes, a
  victim-pool record is a member of some targets and a non-member of others,
  and no record of the attacker's side is ever a target's.

  Args:
    splits: the protocol's splits (`make_splits`).
    num_targets: how many targets (>= 1).
    config: split fractions (those `splits` were made with).
    labels: the records' labels, needed when `splits.stratified`.
  """
  if num_targets < 1:
    raise ValueError(f"num_targets must be >= 1, got {num_targets}.")
  labels = _derived_labels(splits, labels)
  victim_heldout = np.setdiff1d(splits.heldout,
                                shadow_heldout(splits)).astype(np.int64)
  return (splits.victim,) + tuple(
      _model_split(_rng(splits.fingerprint, splits.seed, 40_000 + t),
                   splits.victim_pool, victim_heldout, config, labels)
      for t in range(1, num_targets))


def _derived_labels(splits: Splits, labels: Optional[np.ndarray]
                    ) -> Optional[np.ndarray]:
  """The labels splits derived from `splits` stratify by: `labels` when
  `splits` are stratified (then required), else None."""
  if not splits.stratified:
    return None
  if labels is None:
    raise ValueError("these splits are stratified by class; pass the "
                     "records' labels (labels=dataset.y) to derive others "
                     "from them.")
  return np.asarray(labels)


def shadow_heldout(splits: Splits) -> np.ndarray:
  """The held-out records on the shadows' side (none of the victim's)."""
  victim = np.concatenate([splits.victim.train, splits.victim.dev,
                           splits.victim.test])
  return np.setdiff1d(splits.heldout, victim).astype(np.int64)


def rehearsal_splits(splits: Splits, config: SplitConfig = SplitConfig(),
                     stream: int = 0,
                     labels: Optional[np.ndarray] = None) -> Splits:
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
    labels: the records' labels, needed when `splits.stratified` (the
      target's cuts are then stratified too).

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
  labels = _derived_labels(splits, labels)
  rng = _rng(splits.fingerprint, splits.seed, 10_000 + int(stream))
  target_heldout, _ = _cut(rng.permutation(heldout), 0.5, labels)
  target = _model_split(rng, splits.shadow_pool, target_heldout, config,
                        labels)
  return Splits(splits.fingerprint, splits.seed, splits.shadow_pool, heldout,
                splits.shadow_pool, splits.shadow_pool, target, splits.shadows,
                splits.stratified)


def scaled_rehearsal_splits(splits: Splits, config: SplitConfig = SplitConfig(),
                            stream: int = 0,
                            labels: Optional[np.ndarray] = None) -> Splits:
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
  (wemem_tf.defenses.scaled_window).
  No victim train, dev or test record appears in the result.

  Args:
    splits: the protocol's splits (`make_splits`).
    config: split fractions (those `splits` were made with).
    stream: which rehearsal world (another stream draws other splits).
    labels: the records' labels, needed when `splits.stratified`.
  """
  heldout = shadow_heldout(splits)
  if splits.shadow_pool.size < 20 or heldout.size < 4:
    raise ValueError(f"the shadows' side ({splits.shadow_pool.size} pool, "
                     f"{heldout.size} held-out records) is too small for a "
                     "scaled rehearsal; it needs >= 20 and >= 4.")
  if stream < 0:
    raise ValueError(f"stream must be >= 0, got {stream}.")
  labels = _derived_labels(splits, labels)
  base = 20_000 + 100 * int(stream)
  return _protocol(splits.fingerprint, splits.seed, splits.shadow_pool,
                   heldout, _rng(splits.fingerprint, splits.seed, base),
                   lambda i: _rng(splits.fingerprint, splits.seed,
                                  base + 1 + i),
                   len(splits.shadows), config, labels)


def audit_splits(num_records: int, fingerprint: str, seed: int,
                 members: np.ndarray, non_members: np.ndarray,
                 num_shadows: int = 5, excluded: Optional[np.ndarray] = None,
                 heldout_mask: Optional[np.ndarray] = None,
                 config: SplitConfig = SplitConfig(),
                 labels: Optional[np.ndarray] = None) -> Splits:
  """Splits around a given model's members and non-members (an audit).

  The victim is a model trained elsewhere: its `train` are `members`, its
  `test` the `non_members`, its `dev` the `excluded` records (any other
  record it saw, kept from the attacker). Every other record is the
  attacker's: the dataset's own held-out records among them (or, without a
  `heldout_mask`, a `config.heldout_fraction` share drawn from stream
  30,000) are the attacker's held-out records, the rest its pool, and shadow
  i splits them as step 4 of docs/method.md §2 does (stream 30,001 + i),
  every cut stratified by `labels` when `config.stratified`.
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
  labels = config.labels(labels, num_records)
  seed = int(seed)
  victim_records = np.concatenate(list(groups.values()))
  attacker = np.setdiff1d(np.arange(num_records, dtype=np.int64),
                          victim_records)
  if heldout_mask is not None:
    held = np.asarray(heldout_mask)[attacker]
    heldout, pool = attacker[held], attacker[~held]
  else:
    heldout, pool = _cut(_rng(fingerprint, seed, 30_000).permutation(attacker),
                         config.heldout_fraction, labels)
  if pool.size < 20 or heldout.size < 4:
    raise ValueError(
        f"only {attacker.size} records are neither members, non-members nor "
        f"excluded ({pool.size} pool, {heldout.size} held-out); the attacker "
        "needs >= 20 pool and >= 4 held-out records to train shadow and "
        "reference models. Audit fewer records.")
  shadows = tuple(_model_split(_rng(fingerprint, seed, 30_001 + i), pool,
                               heldout, config, labels)
                  for i in range(num_shadows))
  victim = ModelSplit(groups["members"], groups["excluded"],
                      groups["non_members"])
  return Splits(fingerprint, seed,
                np.sort(np.concatenate([groups["members"], pool])),
                np.sort(np.concatenate([groups["non_members"],
                                        groups["excluded"], heldout])),
                groups["members"], np.sort(pool), victim, shadows,
                labels is not None)
