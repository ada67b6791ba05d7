"""Cheaper stand-ins for the memorization score, and rank agreement.

`learning_speed_proxy` trains a few models on *all* records (no subsets) and
scores each record by how slowly it is learned: one minus the mean, over
epochs and models, of the softmax probability of its label after each epoch
(a training-dynamics signal, cf. Jiang et al. 2021, "Characterizing
structural regularities of labeled data"). Records that are atypical or
mislabeled are learned late, i.e. fitted by memorization, and score high.
Its cost is `num_models` trainings instead of K (e.g. 4 instead of 256).

The proxy is a ranking signal in [0, 1], not an estimate of the
Feldman-Zhang score itself: compare it by rank (`spearman`), and when a
defense needs a threshold, give it as a share of records
(`MemScores.risky_mask(share=...)`), not as a score.
"""

import importlib
import time
from typing import Optional

import numpy as np
from scipy import stats

from wemem_tf import data as data_lib
from wemem_tf.memorization import scores as scores_lib
from wemem_tf.training import loop as loop_lib

# The package re-exports the function `estimate`, which hides the module of
# the same name as a package attribute; import the module by its full name.
estimate_lib = importlib.import_module("wemem_tf.memorization.estimate")


def learning_speed_proxy(model_fn: estimate_lib.ModelFnLike, x: np.ndarray,
                         y: np.ndarray, num_models: int = 4,
                         epochs: int = 30, seed: int = 0,
                         record_index: Optional[np.ndarray] = None,
                         fingerprint: Optional[str] = None,
                         batch_size: int = 128, learning_rate: float = 1e-3,
                         weight_decay: float = 5e-4,
                         num_classes: Optional[int] = None,
                         method: str = "auto", first_layer: str = "auto",
                         progress: bool = True) -> scores_lib.MemScores:
  """Learning-speed proxy: 1 - mean true-label probability over training.

  Args:
    model_fn, x, y, record_index, fingerprint, batch_size, learning_rate,
      weight_decay, num_classes, method, first_layer, progress: as in
      `memorization.estimate`.
    num_models: models trained on all records (>= 1); more models lower the
      noise of the ranking.
    epochs: epochs per model; the probabilities after each epoch are
      averaged.
    seed: seeds initialization, dropout and order.

  Returns:
    `MemScores` with method "proxy:learning_speed", scores in [0, 1]
    (higher = learned later), included = num_models and excluded = 0.
  """
  if int(num_models) != num_models or num_models < 1:
    raise ValueError(f"num_models must be an integer >= 1, got {num_models}.")
  # Validation shared with estimate (num_models >= 2 there; fraction dummy).
  x, y, num_classes, record_index = estimate_lib._validate(  # pylint: disable=protected-access
      x, y, num_classes, max(2, int(num_models)), 0.5, epochs, batch_size,
      record_index, method, 1)
  if fingerprint is None:
    fingerprint = data_lib.fingerprint_arrays("memorization-arrays", x, y)
  start = time.perf_counter()
  membership = np.ones((int(num_models), len(x)), bool)
  config = loop_lib.TrainConfig(learning_rate=learning_rate,
                                weight_decay=weight_decay,
                                batch_size=int(batch_size))
  predictions = estimate_lib.train_members(
      model_fn, x, y, membership, num_classes, int(epochs), config, seed,
      method=method, first_layer=first_layer, chunk_size=int(num_models),
      record_dynamics=True, progress=progress)
  score = np.clip(1.0 - predictions.dynamics.mean(0).astype(np.float64),
                  0.0, 1.0)
  n = len(x)
  _, model_name = estimate_lib.resolve_model_fn(model_fn)
  return scores_lib.MemScores(
      score=score, index=record_index, fingerprint=fingerprint,
      included=np.full(n, int(num_models), np.int64),
      excluded=np.zeros(n, np.int64), num_models=int(num_models),
      subset_fraction=1.0, epochs=int(epochs), seed=int(seed),
      method="proxy:learning_speed",
      details={"architecture": model_name,
               "seconds": round(time.perf_counter() - start, 3),
               "train_method": predictions.method,
               "first_layer": predictions.first_layer})


def spearman(a: scores_lib.MemScores, b: scores_lib.MemScores) -> float:
  """Spearman rank correlation of two score sets over their common records.

  Both must belong to the same dataset (fingerprint); records where either
  score is NaN are ignored.

  Raises:
    ValueError: other datasets, or fewer than 3 common scored records.
  """
  if a.fingerprint != b.fingerprint:
    raise ValueError("the two score sets belong to different datasets "
                     f"({a.fingerprint[:12]}… vs {b.fingerprint[:12]}…).")
  common = np.intersect1d(a.index, b.index)
  sa, sb = a.align(common).score, b.align(common).score
  keep = np.isfinite(sa) & np.isfinite(sb)
  if keep.sum() < 3:
    raise ValueError(f"only {int(keep.sum())} common records with known "
                     "scores; need at least 3.")
  return float(stats.spearmanr(sa[keep], sb[keep]).statistic)


def pearson(a: scores_lib.MemScores, b: scores_lib.MemScores) -> float:
  """Pearson correlation over common records with known scores."""
  if a.fingerprint != b.fingerprint:
    raise ValueError("the two score sets belong to different datasets.")
  common = np.intersect1d(a.index, b.index)
  sa, sb = a.align(common).score, b.align(common).score
  keep = np.isfinite(sa) & np.isfinite(sb)
  if keep.sum() < 3:
    raise ValueError("need at least 3 common records with known scores.")
  return float(np.corrcoef(sa[keep], sb[keep])[0, 1])
