"""Feldman & Zhang memorization scores by subsampling (docs/method.md §4).

Train K models, each on a random subset of a fixed fraction p of the pool;
the score of record i is the accuracy on i of the models that trained on it
minus the accuracy on i of the models that did not:

  score_i = mean_{c: i in S_c} [f_c(x_i) = y_i] - mean_{c: i not in S_c} [...]

Any architecture works (`wemem_tf.models.ArchitectureLike`: a zoo name,
"MODULE:FUNCTION", a model file, a callable). When the *built* model is a
plain MLP (`ensemble.mlp_spec`: Flatten/Dense/Dropout, relu, linear output,
default initializers; e.g. ColumnFC or a user's MLP) all K models train in
one compiled graph (`ensemble.MLPEnsemble`, path "vectorized"); any other
model trains one by one with one model object and one compiled loop
(`ensemble.train_sequential`, path "per_model"). The scores' `details` record
the path and the measured seconds per model.
"""

import logging
import time
import warnings
from typing import Callable, Optional, Tuple

import numpy as np

from wemem_tf import data as data_lib
from wemem_tf._keras import keras
from wemem_tf.memorization import ensemble
from wemem_tf.memorization import scores as scores_lib
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models import zoo
from wemem_tf.training import loop as loop_lib

ModelFnLike = arch_lib.ArchitectureLike
METHODS = ("auto", "vectorized", "sequential")
# MemScores.details["path"] by training method.
PATHS = {"vectorized": "vectorized", "sequential": "per_model"}


def resolve_model_fn(model_fn: ModelFnLike
                     ) -> Tuple[Callable[..., keras.Model], str]:
  """(checked builder, report name) of any architecture form."""
  arch = arch_lib.resolve_architecture(model_fn)
  return arch_lib.builder(arch), arch.name


DESIGNS = ("random", "balanced")


def sample_membership(num_records: int, num_models: int,
                      subset_fraction: float, seed: int,
                      design: str = "random") -> np.ndarray:
  """bool (num_models, num_records): which records each model trains on.

  Args:
    num_records, num_models: n and K.
    subset_fraction: p in (0, 1).
    seed: seeds the draw.
    design: "random": each model trains on exactly round(p n) records drawn
      uniformly, so a record is left out of Binomial(K, 1 - p) models and
      of none with probability p^K (no score; `expected_nan_fraction`).
      "balanced": each record is in exactly k = round(p K) models, drawn
      uniformly per record (LiRA's design), so every record is included
      and left out whenever 1 <= k <= K - 1; the models' training sets
      then differ in size (about p n each).
  """
  if design not in DESIGNS:
    raise ValueError(f"design must be one of {DESIGNS}, got {design!r}.")
  if design == "balanced":  # per record (row), k of the K models
    k = int(round(subset_fraction * num_models))
    keys = np.random.default_rng([int(seed), 2]).random(
        (num_records, num_models))
    return _smallest_per_row(keys, k).T.copy()
  size = int(round(subset_fraction * num_records))
  keys = np.random.default_rng([int(seed), 1]).random(
      (num_models, num_records))
  return _smallest_per_row(keys, size)


def _smallest_per_row(keys: np.ndarray, count: int) -> np.ndarray:
  """bool of keys' shape: True at the `count` smallest keys of each row."""
  chosen = np.argpartition(keys, count - 1, axis=1)[:, :count]
  mask = np.zeros(keys.shape, bool)
  np.put_along_axis(mask, chosen, True, axis=1)
  return mask


def scores_from_predictions(correct: np.ndarray, membership: np.ndarray
                            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(score float64 (n,), included int64 (n,), excluded int64 (n,)).

  NaN where a record was never included or never excluded (with a warning).
  """
  membership = np.asarray(membership, bool)
  correct = np.asarray(correct, bool)
  included = membership.sum(0).astype(np.int64)
  excluded = (~membership).sum(0).astype(np.int64)
  with np.errstate(invalid="ignore", divide="ignore"):
    acc_in = (correct & membership).sum(0) / included
    acc_out = (correct & ~membership).sum(0) / excluded
  score = np.where((included > 0) & (excluded > 0), acc_in - acc_out, np.nan)
  never_out, never_in = int((excluded == 0).sum()), int((included == 0).sum())
  if never_out or never_in:
    warnings.warn(
        f"memorization: {never_out} records were never left out and "
        f"{never_in} never included by the {membership.shape[0]} models; "
        "their scores are NaN (unknown). Use more models, design='balanced' "
        "or a subset fraction further from 0 and 1.", RuntimeWarning,
        stacklevel=3)
  return score, included, excluded


def _validate(x, y, num_classes, num_models, subset_fraction, epochs,
              batch_size, record_index, method, chunk_size,
              design="random"):
  x = np.asarray(x)
  y = np.asarray(y)
  if x.ndim < 2:
    raise ValueError(f"x must have shape (n, features...), got {x.shape}.")
  if y.ndim != 1 or len(y) != len(x):
    raise ValueError(f"x and y must have the same number of records: x has "
                     f"{len(x)}, y has shape {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels y must be integers, got {y.dtype}.")
  if num_classes is None:
    num_classes = max(2, int(y.max()) + 1) if y.size else 2
  data_lib.validate_examples(x, y, int(num_classes), what="memorization data")
  if isinstance(num_models, bool) or int(num_models) != num_models or (
      num_models < 2):
    raise ValueError(f"num_models must be an integer >= 2 (some models must "
                     f"include and some exclude each record), got "
                     f"{num_models}.")
  if not 0.0 < subset_fraction < 1.0:
    raise ValueError(f"subset_fraction must lie strictly between 0 and 1 (the"
                     f" share of records each model trains on), got "
                     f"{subset_fraction}.")
  size = int(round(subset_fraction * len(x)))
  if not 1 <= size <= len(x) - 1:
    raise ValueError(f"subset_fraction {subset_fraction} of {len(x)} records "
                     f"gives subsets of {size}; each model needs at least one "
                     "record in and one out.")
  if design not in DESIGNS:
    raise ValueError(f"design must be one of {', '.join(DESIGNS)}, got "
                     f"{design!r}.")
  if design == "balanced" and not (
      1 <= round(subset_fraction * num_models) <= num_models - 1):
    raise ValueError(f"design 'balanced' puts each record in round("
                     f"{subset_fraction} * {num_models}) = "
                     f"{round(subset_fraction * num_models)} of the "
                     f"{num_models} models; it must be between 1 and "
                     f"{num_models - 1}: use more models.")
  if design == "balanced" and method == "vectorized":
    raise ValueError("design 'balanced' gives the models training sets of "
                     "different sizes, which the vectorized ensemble cannot "
                     "train; use method='sequential' (or 'auto'), or design"
                     " 'random'.")
  if int(epochs) != epochs or epochs < 1:
    raise ValueError(f"epochs must be an integer >= 1, got {epochs}.")
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}.")
  if int(chunk_size) != chunk_size or chunk_size < 1:
    raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}.")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  if record_index is None:
    record_index = np.arange(len(x), dtype=np.int64)
  record_index = scores_lib._as_index(record_index, "record_index")  # pylint: disable=protected-access
  if len(record_index) != len(x):
    raise ValueError(f"record_index has {len(record_index)} entries for "
                     f"{len(x)} records; give one dataset index per record.")
  return x, y, int(num_classes), record_index


def train_members(model_fn: ModelFnLike, x: np.ndarray, y: np.ndarray,
                  membership: np.ndarray, num_classes: int, epochs: int,
                  config: loop_lib.TrainConfig, seed: int,
                  method: str = "auto", first_layer: str = "auto",
                  chunk_size: int = 64, record_dynamics: bool = False,
                  progress: bool = True,
                  executor=None) -> ensemble.MemberPredictions:
  """Trains one model per membership row; vectorized for plain MLPs (whose
  chunks a remote `executor` trains as tasks; others train here)."""
  builder, _ = resolve_model_fn(model_fn)
  input_shape = tuple(int(d) for d in np.asarray(x).shape[1:])
  spec = None
  if method != "sequential":
    spec = ensemble.mlp_spec(builder(input_shape, num_classes))
    if spec is None and method == "vectorized":
      raise ValueError(
          "method='vectorized' needs a plain MLP (Flatten/Dense/Dropout "
          "layers, relu hidden layers, linear output, default initializers);"
          " use method='sequential' or 'auto' for this model.")
  if spec is not None:
    return ensemble.train_vectorized(
        spec, x, y, membership, epochs, config, seed, chunk_size=chunk_size,
        first_layer=first_layer, record_dynamics=record_dynamics,
        progress=progress, executor=executor)
  return ensemble.train_sequential(builder, input_shape, num_classes, x, y,
                                   membership, epochs, config, seed,
                                   record_dynamics=record_dynamics,
                                   progress=progress)


def estimate(model_fn: ModelFnLike, x: np.ndarray, y: np.ndarray,
             num_models: int = 256, subset_fraction: float = 0.7,
             epochs: int = 30, seed: int = 0,
             record_index: Optional[np.ndarray] = None,
             fingerprint: Optional[str] = None, batch_size: int = 128,
             learning_rate: float = 1e-3, weight_decay: float = 5e-4,
             num_classes: Optional[int] = None, method: str = "auto",
             first_layer: str = "auto", chunk_size: int = 64,
             progress: bool = True, executor=None,
             design: str = "random") -> scores_lib.MemScores:
  """Estimates Feldman & Zhang memorization scores of (x, y).

  Args:
    model_fn: any architecture (`wemem_tf.models.ArchitectureLike`): a zoo
      name (`wemem_tf.models.BUILDERS`, e.g. "column_fc"),
      "MODULE:FUNCTION", a model file path, a callable (input_shape,
      num_classes) -> tf_keras model with logit outputs, or an
      `Architecture`.
    x: float features (n, ...); y: int labels (n,).
    num_models: K >= 2 models to train.
    subset_fraction: p in (0, 1): the share of the records each model
      trains on (see `design`).
    epochs: training epochs per model.
    seed: seeds subsets, initialization, dropout and record order.
    record_index: int64 (n,) dataset indices of the records (default
      0..n-1); stored with the scores.
    fingerprint: the dataset's fingerprint (default: a fingerprint of x and
      y themselves).
    batch_size, learning_rate, weight_decay: the optimizer (Adam with L2
      weight decay added to the gradient, as `training.TrainingLoop`).
    num_classes: default max(y) + 1.
    method: "vectorized" (plain MLPs, one graph for many models),
      "sequential" (one model at a time) or "auto" (vectorized when the
      built model is a plain MLP).
    first_layer: the vectorized first layer ("auto", "native", "sparse",
      "dense"; see `ensemble.MLPEnsemble`).
    chunk_size: models trained together by the vectorized method.
    progress: False: no progress bar (True: as `wemem_tf.progress` says).
    executor: where the vectorized method's chunks train: here (None, the
      local executor) or as tasks of a remote one (`wemem_eval.executor`);
      the scores are the same.
    design: "random" (each model trains on round(p * n) records drawn
      uniformly) or "balanced" (each record in exactly round(p * K) models,
      so every record gets a score; models train one at a time); see
      `sample_membership`.

  Returns:
    `MemScores` in the order of the records given; NaN (with a warning) for
    records that no model left out or no model included. `details` holds
    "path" ("vectorized" or "per_model"), "seconds_per_model" (training and
    prediction wall time / K) and the settings.

  Raises:
    ValueError: unusable arguments (K < 2, p outside (0, 1), x/y lengths,
      labels out of range, ...).
  """
  x, y, num_classes, record_index = _validate(
      x, y, num_classes, num_models, subset_fraction, epochs, batch_size,
      record_index, method, chunk_size, design)
  arch = arch_lib.resolve_architecture(model_fn)
  if fingerprint is None:
    fingerprint = data_lib.fingerprint_arrays("memorization-arrays", x, y)
  start = time.perf_counter()
  membership = sample_membership(len(x), int(num_models), subset_fraction,
                                 seed, design)
  if design == "balanced" and method == "auto":
    method = "sequential"  # unequal training sets: one model at a time
  config = loop_lib.TrainConfig(learning_rate=learning_rate,
                                weight_decay=weight_decay,
                                batch_size=int(batch_size))
  predictions = train_members(arch, x, y, membership, num_classes,
                              int(epochs), config, seed, method=method,
                              first_layer=first_layer,
                              chunk_size=int(chunk_size), progress=progress,
                              executor=executor)
  score, included, excluded = scores_from_predictions(predictions.correct,
                                                      membership)
  path = PATHS[predictions.method]
  seconds_per_model = predictions.seconds / int(num_models)
  logging.info("memorization: %d %s models trained %s in %.1f s (%.3f s per "
               "model)", int(num_models), arch.name, path,
               predictions.seconds, seconds_per_model)
  details = {
      "architecture": arch.name, "batch_size": int(batch_size),
      "path": path, "seconds_per_model": round(seconds_per_model, 4),
      "learning_rate": learning_rate, "weight_decay": weight_decay,
      "first_layer": predictions.first_layer, "design": design,
      "fused_epoch": predictions.fused_epoch,
      "train_seconds": round(predictions.seconds, 3),
      "total_seconds": round(time.perf_counter() - start, 3),
      "trace_count": predictions.trace_count,
      "mean_member_accuracy_in": float(np.mean(
          predictions.correct[membership])),
      "mean_member_accuracy_out": float(np.mean(
          predictions.correct[~membership])),
  }
  return scores_lib.MemScores(
      score=score, index=record_index, fingerprint=fingerprint,
      included=included, excluded=excluded, num_models=int(num_models),
      subset_fraction=float(subset_fraction), epochs=int(epochs),
      seed=int(seed), method=predictions.method, details=details)


def estimate_dataset(dataset: data_lib.Dataset, indices: np.ndarray,
                     model_fn: Optional[ModelFnLike] = None,
                     **kwargs) -> scores_lib.MemScores:
  """`estimate` on the records `indices` of a `Dataset` (e.g. its pool).

  The scores carry the dataset's fingerprint and the record indices; the
  architecture defaults to the dataset's (`models.DEFAULT_ARCHITECTURE`).
  """
  indices = scores_lib._as_index(indices, "indices")  # pylint: disable=protected-access
  x, y = dataset.take(indices)
  if model_fn is None:
    model_fn = zoo.DEFAULT_ARCHITECTURE.get(dataset.name, "column_fc")
  return estimate(model_fn, x, y, record_index=indices,
                  fingerprint=dataset.fingerprint,
                  num_classes=dataset.num_classes, **kwargs)


def expected_nan_fraction(num_models: int, subset_fraction: float) -> float:
  """Expected share of records never left out or never included."""
  return subset_fraction ** num_models + (1 - subset_fraction) ** num_models



def cached_estimate(dataset: data_lib.Dataset, cache_dir: str, seed: int = 0,
                    model_fn: Optional[ModelFnLike] = None,
                    num_models: int = 128, epochs: int = 30,
                    subset_fraction: float = 0.7,
                    executor=None,
                    indices: Optional[np.ndarray] = None,
                    design: str = "random") -> scores_lib.MemScores:
  """Scores over the records `indices` of `dataset` (None: every record),
  estimated once per settings.

  The protocol scores the training pool (`Splits.pool`: every record but
  the held-out test split), as `wemem memscore` does: held-out records never
  enter the estimate's models.

  The result is cached in `cache_dir` as `memscores-<key>.npz`, keyed by the
  dataset fingerprint, the records scored, seed, architecture
  (`Architecture.key`: a zoo name is its own key) and estimator settings; a
  later call with the same settings loads it (checked against the
  fingerprint).
  """
  import hashlib  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  if model_fn is None:
    model_fn = zoo.DEFAULT_ARCHITECTURE.get(dataset.name, "column_fc")
  arch = arch_lib.resolve_architecture(model_fn)
  if indices is None:
    indices = np.arange(len(dataset), dtype=np.int64)
  indices = scores_lib._as_index(indices, "indices")  # pylint: disable=protected-access
  parts = [dataset.fingerprint, int(seed), arch.key, int(num_models),
           int(epochs), float(subset_fraction)]
  if len(indices) != len(dataset):  # every record: the key stays as it was
    parts.append(data_lib.fingerprint_arrays("scored", indices))
  if design != "random":  # the random design's keys stay as they were
    parts.append(design)
  key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
  path = os.path.join(cache_dir, f"memscores-{key}.npz")
  if os.path.isfile(path):
    return scores_lib.MemScores.load(path, fingerprint=dataset.fingerprint)
  scores = estimate_dataset(dataset, indices,
                            arch, num_models=num_models, epochs=epochs,
                            subset_fraction=subset_fraction, seed=seed,
                            executor=executor, design=design)
  scores.save(path)
  return scores
