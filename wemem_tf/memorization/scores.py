"""Memorization scores tied to the records and the dataset they belong to.

A `MemScores` value carries, for every record it scores, the record's index in
its dataset and the dataset's fingerprint, so that scores can never be applied
to the wrong records silently: `load`, `align` and `from_csv` fail with a
message that says what differs.

File format (`save`/`load`): an .npz without pickled objects holding
  index       int64 (n,)    record indices into the dataset
  score       float64 (n,)  memorization score in [-1, 1], NaN = unknown
  included    int64 (n,)    models whose subset held the record (-1: unknown)
  excluded    int64 (n,)    models whose subset did not (-1: unknown)
  fingerprint str           the dataset's hex fingerprint
  meta        str           JSON: num_models, subset_fraction, epochs, seed,
                            method and free-form details
"""

import csv
import dataclasses
import json
import math
from typing import Any, Dict, Optional

import numpy as np

from wemem_tf import io_utils

FORMAT_VERSION = 1


def _short(fingerprint: str) -> str:
  return (fingerprint[:12] + "…") if fingerprint else "(none)"


def _describe(indices: np.ndarray, limit: int = 5) -> str:
  shown = ", ".join(str(int(i)) for i in indices[:limit])
  return shown + (f", … ({len(indices)} in all)" if len(indices) > limit
                  else "")


def _as_index(index, what: str = "index") -> np.ndarray:
  array = np.asarray(index)
  if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or
                             array.size == 0):
    raise ValueError(f"{what} must be a 1-D array of integer record indices, "
                     f"got {array.dtype} {array.shape}.")
  array = array.astype(np.int64)
  if array.size and array.min() < 0:
    raise ValueError(f"{what} holds negative record indices "
                     f"({_describe(array[array < 0])}).")
  unique, counts = np.unique(array, return_counts=True)
  if np.any(counts > 1):
    raise ValueError(f"{what} holds duplicate record indices "
                     f"({_describe(unique[counts > 1])}).")
  return array


@dataclasses.dataclass(frozen=True, eq=False)
class MemScores:
  """Per-record memorization scores (Feldman & Zhang), aligned by index.

  Attributes:
    score: float64 (n,): P(correct | trained with i) - P(correct | without
      i), in [-1, 1]; NaN where it could not be estimated.
    index: int64 (n,): record indices (into the dataset) of the scores.
    fingerprint: hex fingerprint of the dataset the indices refer to.
    included: int64 (n,): number of models that trained on the record
      (-1 when unknown, e.g. imported scores).
    excluded: int64 (n,): number of models that did not (-1 when unknown).
    num_models: models trained (0 when unknown).
    subset_fraction: fraction of the records each model trained on (NaN when
      unknown).
    epochs: training epochs of each model (0 when unknown).
    seed: the estimate's seed (None when unknown).
    method: how the scores were made, e.g. "vectorized", "sequential",
      "csv", "proxy:learning_speed".
    details: JSON-serializable extra information (architecture, timings).
  """
  score: np.ndarray
  index: np.ndarray
  fingerprint: str
  included: np.ndarray
  excluded: np.ndarray
  num_models: int = 0
  subset_fraction: float = float("nan")
  epochs: int = 0
  seed: Optional[int] = None
  method: str = ""
  details: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    index = _as_index(self.index, "MemScores.index")
    n = len(index)
    score = np.asarray(self.score, np.float64)
    if score.shape != (n,):
      raise ValueError(f"MemScores: score has shape {score.shape}, index "
                       f"({n},); they must match.")
    finite = score[np.isfinite(score)]
    if np.any(np.isinf(score)) or (finite.size and (
        finite.min() < -1 - 1e-9 or finite.max() > 1 + 1e-9)):
      raise ValueError("MemScores: scores must lie in [-1, 1] (NaN allowed "
                       f"for unknown), got range [{np.nanmin(score)}, "
                       f"{np.nanmax(score)}].")
    counts = []
    for name in ("included", "excluded"):
      value = np.asarray(getattr(self, name))
      if value.shape != (n,) or not (np.issubdtype(value.dtype, np.integer) or
                                     n == 0):
        raise ValueError(f"MemScores: {name} must be integers of shape ({n},),"
                         f" got {value.dtype} {value.shape}.")
      if n and value.min() < -1:
        raise ValueError(f"MemScores: {name} counts must be >= 0 (or -1 for "
                         "unknown).")
      counts.append(value.astype(np.int64))
    if not isinstance(self.fingerprint, str):
      raise ValueError("MemScores: fingerprint must be a string.")
    for name, value in (("index", index), ("score", score),
                        ("included", counts[0]), ("excluded", counts[1])):
      value.setflags(write=False)
      object.__setattr__(self, name, value)
    json.dumps(self.details, default=io_utils.json_default)

  def __len__(self) -> int:
    return len(self.index)

  # -- queries -----------------------------------------------------------------

  @property
  def valid(self) -> np.ndarray:
    """bool (n,): the score is known (not NaN)."""
    return np.isfinite(self.score)

  def quantile(self, q):
    """Quantile(s) of the known scores (NaN ignored)."""
    if not np.any(self.valid):
      raise ValueError("no known (non-NaN) scores to take a quantile of.")
    return np.quantile(self.score[self.valid], q)

  def threshold_for_share(self, share: float) -> float:
    """The score threshold tau that marks about `share` of records risky.

    Records with score >= tau are risky; ties at tau can make the realized
    share a little larger (see `risky_mask`).
    """
    if not 0.0 < share <= 1.0:
      raise ValueError(f"share must lie in (0, 1], got {share}.")
    return float(self.quantile(1.0 - share))

  def risky_mask(self, tau: Optional[float] = None,
                 share: Optional[float] = None) -> np.ndarray:
    """bool (n,): records whose score is >= tau (NaN scores are never risky).

    Give exactly one of `tau` (a score threshold) or `share` (the fraction of
    known-score records to mark, via `threshold_for_share`).
    """
    if (tau is None) == (share is None):
      raise ValueError("give exactly one of tau (a score) or share (a "
                       "fraction of records).")
    if share is not None:
      tau = self.threshold_for_share(share)
    if not math.isfinite(tau):
      raise ValueError(f"tau must be a finite score, got {tau}.")
    return np.where(self.valid, self.score >= tau, False)

  def summary(self) -> Dict[str, Any]:
    """Count, NaN count, mean, quantiles and shares above 0.5 / 0.6."""
    known = self.score[self.valid]
    out = {"records": len(self), "nan": int(len(self) - known.size)}
    if known.size:
      qs = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
      out.update({
          "mean": float(known.mean()),
          "quantiles": {str(q): float(v) for q, v in
                        zip(qs, np.quantile(known, qs))},
          "share_ge_0.5": float(np.mean(known >= 0.5)),
          "share_ge_0.6": float(np.mean(known >= 0.6)),
      })
    return out

  # -- alignment ---------------------------------------------------------------

  def align(self, index) -> "MemScores":
    """The scores of the records `index`, in that order.

    Raises:
      ValueError: some requested records have no score here (names them).
    """
    index = _as_index(index, "requested index")
    order = np.argsort(self.index, kind="stable")
    pos = np.searchsorted(self.index, index, sorter=order)
    pos = np.minimum(pos, max(len(self) - 1, 0))
    found = (self.index[order[pos]] == index) if len(self) else np.zeros(
        len(index), bool)
    if not np.all(found):
      raise ValueError(
          f"{int((~found).sum())} of {len(index)} requested records have no "
          f"memorization score in these scores ({len(self)} records, dataset "
          f"{_short(self.fingerprint)}); missing record indices: "
          f"{_describe(index[~found])}. Were the scores computed on another "
          "split or pool?")
    take = order[pos]
    return dataclasses.replace(self, score=self.score[take], index=index,
                               included=self.included[take],
                               excluded=self.excluded[take])

  def check(self, fingerprint: Optional[str] = None, index=None,
            source: str = "these scores") -> "MemScores":
    """Checks the dataset and record set; returns scores aligned to `index`.

    Raises:
      ValueError: another dataset fingerprint, or another record set (the
        message counts and names missing and extra records).
    """
    if fingerprint is not None and fingerprint != self.fingerprint:
      raise ValueError(
          f"{source} belong to dataset fingerprint {_short(self.fingerprint)}"
          f", not to this dataset ({_short(fingerprint)}): the data differ "
          "(another dataset, version or preprocessing). Recompute the scores "
          "for this data (`wemem memscore` or memorization.estimate).")
    if index is None:
      return self
    index = _as_index(index, "expected index")
    missing = np.setdiff1d(index, self.index)
    extra = np.setdiff1d(self.index, index)
    if missing.size or extra.size:
      raise ValueError(
          f"{source} cover another record set: {len(self)} scored records vs "
          f"{len(index)} expected; {missing.size} expected records have no "
          f"score ({_describe(missing)}) and {extra.size} scored records are "
          f"not expected ({_describe(extra)}). Use scores computed on the "
          "same pool/split (same seed), or call align() on a superset.")
    return self.align(index)

  # -- files -------------------------------------------------------------------

  def _meta(self) -> Dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "num_models": self.num_models,
            "subset_fraction": (None if math.isnan(self.subset_fraction)
                                else self.subset_fraction),
            "epochs": self.epochs, "seed": self.seed, "method": self.method,
            "details": self.details}

  def save(self, path: str) -> None:
    """Writes the scores atomically as an .npz (see the module docstring)."""
    meta = json.dumps(self._meta(), default=io_utils.json_default)
    io_utils.atomic_save_npz(
        path, index=self.index, score=self.score, included=self.included,
        excluded=self.excluded, fingerprint=np.array(self.fingerprint),
        meta=np.array(meta))

  @classmethod
  def load(cls, path: str, fingerprint: Optional[str] = None,
           index=None) -> "MemScores":
    """Reads scores written by `save` and checks them.

    Args:
      path: the .npz file.
      fingerprint: when given, the dataset fingerprint the scores must have.
      index: when given, the record set the scores must cover exactly; the
        result is ordered like `index`.

    Raises:
      ValueError: not a scores file, another dataset, or another record set.
    """
    arrays = io_utils.load_npz(path)
    required = ("index", "score", "included", "excluded", "fingerprint")
    missing = [k for k in required if k not in arrays]
    if missing:
      raise ValueError(f"{path!r} is not a memorization-score file: it lacks "
                       f"arrays {missing} (has {sorted(arrays)}).")
    try:
      meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
      if not isinstance(meta, dict) or not isinstance(
          meta.get("details", {}), dict):
        raise ValueError("it is not a mapping")
      fraction = meta.get("subset_fraction")
      settings = dict(
          num_models=int(meta.get("num_models", 0)),
          subset_fraction=(float("nan") if fraction is None
                           else float(fraction)),
          epochs=int(meta.get("epochs", 0)),
          seed=None if meta.get("seed") is None else int(meta["seed"]),
          method=str(meta.get("method", "")),
          details=meta.get("details", {}))
    except (TypeError, ValueError) as e:
      raise ValueError(f"{path!r}: the memorization-score metadata ('meta' "
                       f"array) is unreadable ({e}); recompute the scores "
                       "with `wemem memscore`.") from e
    scores = cls(
        score=arrays["score"], index=arrays["index"],
        fingerprint=str(arrays["fingerprint"]),
        included=arrays["included"], excluded=arrays["excluded"], **settings)
    return scores.check(fingerprint, index, source=f"scores in {path!r}")

  @classmethod
  def from_csv(cls, path: str, index, fingerprint: str,
               method: str = "csv") -> "MemScores":
    """Imports (record index, score) rows and ties them to a dataset.

    The file has two comma-separated columns, record index then score, with
    an optional header line. Every record of `index` must appear exactly
    once; scores must be finite and lie in [-1, 1]. Counts are unknown (-1).

    Args:
      path: the CSV file.
      index: the records the scores are for (e.g. the training pool).
      fingerprint: the dataset's fingerprint.
      method: recorded as the scores' method.

    Returns:
      `MemScores` ordered like `index`.

    Raises:
      ValueError: naming the line or records at fault.
    """
    expected = _as_index(index, "index")
    rows, scores = [], []
    with open(path, newline="") as f:
      for line_no, row in enumerate(csv.reader(f), start=1):
        if not row or all(not cell.strip() for cell in row):
          continue
        if len(row) != 2:
          raise ValueError(f"{path}:{line_no}: expected 2 columns (record "
                           f"index, score), got {len(row)}: {row!r}.")
        try:
          record = int(row[0].strip())
          value = float(row[1].strip())
        except ValueError as e:
          if line_no == 1 and not rows:  # A header line.
            continue
          raise ValueError(f"{path}:{line_no}: cannot read an integer record "
                           f"index and a score from {row!r}.") from e
        if math.isnan(value):
          raise ValueError(f"{path}:{line_no}: score of record {record} is "
                           "NaN; every record needs a score.")
        if not -1.0 <= value <= 1.0:
          raise ValueError(f"{path}:{line_no}: score {value} of record "
                           f"{record} lies outside [-1, 1].")
        rows.append(record)
        scores.append(value)
    rows = np.asarray(rows, np.int64)
    if len(rows) != len(expected):
      raise ValueError(f"{path} has {len(rows)} score rows but "
                       f"{len(expected)} records are expected.")
    unique, counts = np.unique(rows, return_counts=True)
    if np.any(counts > 1):
      raise ValueError(f"{path} scores some records more than once: "
                       f"{_describe(unique[counts > 1])}.")
    n = len(rows)
    imported = cls(score=np.asarray(scores, np.float64), index=rows,
                   fingerprint=fingerprint,
                   included=np.full(n, -1, np.int64),
                   excluded=np.full(n, -1, np.int64), method=method,
                   details={"source": str(path)})
    return imported.check(None, expected, source=f"scores in {path!r}")
