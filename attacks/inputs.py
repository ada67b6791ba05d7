"""Attack inputs: what a model outputs on a set of records, validated.

`ModelOutputs` holds one model's outputs on n records (probabilities, optional
logits, labels, optional SAMIA sensitivity and record indices) and derives
every per-record signal the attacks use (true-class confidence, losses,
entropies, LiRA's logit-scaled confidence). `ModelQuery` computes them from a
tf_keras model in batches with one compiled `tf.function` per model and query
kind. `MembershipOutputs` pairs a model's outputs on its members and
non-members; `ReferenceOutputs` holds the random-halves reference models of
LiRA / RMIA with their IN/OUT masks.
"""

import dataclasses
import functools
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import special

import wemem_tf  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
import tensorflow as tf  # pylint: disable=g-bad-import-order

from wemem_tf._keras import keras
from wemem_tf.models import served as served_lib

# Probabilities of one record must sum to 1 within this tolerance.
PROB_SUM_ATOL = 1e-3
# Floor inside logarithms of probabilities.
LOG_FLOOR = 1e-30
# SAMIA sensitivity defaults (docs/method.md §7): m perturbations of scale epsilon.
SENSITIVITY_PERTURBATIONS = 10
SENSITIVITY_EPSILON = 1e-3


def _as_2d_finite(name: str, array, n: Optional[int] = None) -> np.ndarray:
  array = np.asarray(array, dtype=np.float64)
  if array.ndim != 2:
    raise ValueError(f"{name} must have shape (records, classes), got "
                     f"{array.shape}.")
  if n is not None and array.shape[0] != n:
    raise ValueError(f"{name} has {array.shape[0]} records but probs has {n}; "
                     "all arrays of one ModelOutputs must have the same length.")
  if not np.all(np.isfinite(array)):
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(f"{name} contains NaN or infinite values (first at record "
                     f"{bad[0]}, class {bad[1]}).")
  return array


def log_softmax(logits: np.ndarray) -> np.ndarray:
  """Row-wise log-softmax in float64, shape preserved."""
  logits = np.asarray(logits, np.float64)
  return logits - special.logsumexp(logits, axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True, eq=False)
class ModelOutputs:
  """One model's outputs on n records.

  Build with `from_logits` (preferred: exact log-probabilities) or
  `from_probs` (black-box APIs that return only probabilities).

  Attributes:
    probs: float64 (n, c), rows are probability vectors (sum to 1 within
      `PROB_SUM_ATOL`).
    labels: int64 (n,), true labels in [0, c).
    logits: optional float64 (n, c); when given, softmax(logits) == probs.
    sensitivity: optional float64 (n, c) >= 0: SAMIA's per-class mean
      |Δ posterior| / ε (see `ModelQuery.sensitivity`).
    record_ids: optional int64 (n,), dataset record indices (needed by LiRA
      and RMIA to match records with reference models; they may repeat when
      outputs of several models are pooled).
  """
  probs: np.ndarray
  labels: np.ndarray
  logits: Optional[np.ndarray] = None
  sensitivity: Optional[np.ndarray] = None
  record_ids: Optional[np.ndarray] = None

  def __post_init__(self):
    probs = _as_2d_finite("probs", self.probs)
    n, c = probs.shape
    if n == 0:
      raise ValueError("ModelOutputs needs at least one record, got 0.")
    if c < 2:
      raise ValueError(f"probs needs >= 2 classes, got {c}.")
    if probs.min() < 0 or probs.max() > 1 + PROB_SUM_ATOL:
      raise ValueError("probs must lie in [0, 1]; got range "
                       f"[{probs.min():.4g}, {probs.max():.4g}]. Pass logits "
                       "with ModelOutputs.from_logits instead.")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_ATOL)
    if bad.size:
      raise ValueError(
          f"probabilities must sum to 1 for every record; {bad.size} of {n} "
          f"do not (record {bad[0]} sums to {sums[bad[0]]:.6g}). Apply softmax "
          "to logits (ModelOutputs.from_logits) first.")
    labels = np.asarray(self.labels)
    if labels.shape != (n,):
      raise ValueError(f"labels must have shape ({n},) to match probs, got "
                       f"{labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"labels must be integers, got {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= c:
      raise ValueError(f"labels must lie in [0, {c}), got range "
                       f"[{labels.min()}, {labels.max()}].")
    object.__setattr__(self, "probs", probs)
    object.__setattr__(self, "labels", labels.astype(np.int64))
    if self.logits is not None:
      logits = _as_2d_finite("logits", self.logits, n)
      if logits.shape != probs.shape:
        raise ValueError(f"logits shape {logits.shape} differs from probs "
                         f"shape {probs.shape}.")
      if np.max(np.abs(np.exp(log_softmax(logits)) - probs)) > PROB_SUM_ATOL:
        raise ValueError("probs is not softmax(logits); pass one of them "
                         "(from_logits or from_probs).")
      object.__setattr__(self, "logits", logits)
    if self.sensitivity is not None:
      sens = _as_2d_finite("sensitivity", self.sensitivity, n)
      if sens.shape != probs.shape:
        raise ValueError(f"sensitivity shape {sens.shape} differs from probs "
                         f"shape {probs.shape}.")
      if sens.min() < 0:
        raise ValueError("sensitivity must be >= 0 (a mean absolute change).")
      object.__setattr__(self, "sensitivity", sens)
    if self.record_ids is not None:
      ids = np.asarray(self.record_ids)
      if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"record_ids must be integers of shape ({n},), got "
                         f"{ids.dtype} {ids.shape}.")
      object.__setattr__(self, "record_ids", ids.astype(np.int64))

  @classmethod
  def from_logits(cls, logits, labels, sensitivity=None,
                  record_ids=None) -> "ModelOutputs":
    """Outputs from logits (n, c); probabilities are their softmax."""
    logits = _as_2d_finite("logits", logits)
    return cls(np.exp(log_softmax(logits)), labels, logits, sensitivity,
               record_ids)

  @classmethod
  def from_probs(cls, probs, labels, sensitivity=None,
                 record_ids=None) -> "ModelOutputs":
    """Outputs from probability vectors (n, c) only."""
    return cls(probs, labels, None, sensitivity, record_ids)

  def __len__(self) -> int:
    return self.probs.shape[0]

  @property
  def num_classes(self) -> int:
    return self.probs.shape[1]

  # ---- derived per-record signals -------------------------------------------

  def log_probs(self) -> np.ndarray:
    """log p, float64 (n, c) (exact from logits, else floored at 1e-30)."""
    if self.logits is not None:
      return log_softmax(self.logits)
    return np.log(np.maximum(self.probs, LOG_FLOOR))

  def true_class_confidence(self) -> np.ndarray:
    """p_y, float64 (n,)."""
    return self.probs[np.arange(len(self)), self.labels]

  def per_class_loss(self) -> np.ndarray:
    """Cross-entropy against every class, −log p_c, float64 (n, c)."""
    return -self.log_probs()

  def loss(self) -> np.ndarray:
    """True-class cross-entropy −log p_y, float64 (n,)."""
    return self.per_class_loss()[np.arange(len(self)), self.labels]

  def entropy(self) -> np.ndarray:
    """Prediction entropy −Σ_c p_c log p_c in nats, float64 (n,)."""
    return -np.sum(self.probs * self.log_probs(), axis=1)

  def modified_entropy(self) -> np.ndarray:
    """Song & Mittal's Mentr, float64 (n,), lower for members.

    Mentr(p, y) = −(1 − p_y) log p_y − Σ_{c≠y} p_c log(1 − p_c).
    """
    rows = np.arange(len(self))
    log_p = self.log_probs()
    log_one_minus = np.log(np.maximum(1.0 - self.probs, LOG_FLOOR))
    terms = -self.probs * log_one_minus
    terms[rows, self.labels] = -(1.0 - self.probs[rows, self.labels]) * (
        log_p[rows, self.labels])
    return terms.sum(axis=1)

  def correct(self) -> np.ndarray:
    """Whether the arg-max class is the label, bool (n,)."""
    return np.argmax(self.probs, axis=1) == self.labels

  def logit_scaled_confidence(self) -> np.ndarray:
    """LiRA's φ = log(p_y / (1 − p_y)), float64 (n,).

    From logits: z_y − logsumexp_{c≠y} z_c (stable even when p_y ≈ 1).
    """
    rows = np.arange(len(self))
    if self.logits is not None:
      others = self.logits.copy()
      others[rows, self.labels] = -np.inf
      return self.logits[rows, self.labels] - special.logsumexp(others, axis=1)
    p_y = self.probs[rows, self.labels]
    rest = self.probs.sum(axis=1) - p_y
    return np.log(np.maximum(p_y, LOG_FLOOR)) - np.log(np.maximum(rest,
                                                                  LOG_FLOOR))

  # ---- selection ------------------------------------------------------------

  def take(self, indices) -> "ModelOutputs":
    """The records at positions `indices` (int array) in that order."""
    indices = np.asarray(indices, np.int64)
    pick = lambda a: None if a is None else a[indices]
    return ModelOutputs(self.probs[indices], self.labels[indices],
                        pick(self.logits), pick(self.sensitivity),
                        pick(self.record_ids))

  def positions_of(self, record_ids) -> np.ndarray:
    """Positions of `record_ids` in this object's records, int64.

    Raises:
      ValueError: no record_ids here, or some ids are absent.
    """
    if self.record_ids is None:
      raise ValueError("these outputs carry no record_ids; build them with "
                       "record_ids to align records across models.")
    if len(np.unique(self.record_ids)) != len(self):
      raise ValueError("these outputs repeat record_ids; cannot align them.")
    return _positions(self.record_ids, np.asarray(record_ids, np.int64),
                      "outputs")

  @staticmethod
  def concatenate(parts: Sequence["ModelOutputs"]) -> "ModelOutputs":
    """Stacks outputs of the same model kind along the record axis."""
    if not parts:
      raise ValueError("nothing to concatenate.")
    def cat(name):
      values = [getattr(p, name) for p in parts]
      if all(v is None for v in values):
        return None
      if any(v is None for v in values):
        raise ValueError(f"cannot concatenate outputs where only some have "
                         f"{name}.")
      return np.concatenate(values)
    if len({p.num_classes for p in parts}) != 1:
      raise ValueError("cannot concatenate outputs with different numbers of "
                       "classes.")
    return ModelOutputs(cat("probs"), cat("labels"), cat("logits"),
                        cat("sensitivity"), cat("record_ids"))


def _positions(haystack: np.ndarray, needles: np.ndarray,
               what: str) -> np.ndarray:
  order = np.argsort(haystack, kind="stable")
  sorted_ids = haystack[order]
  pos = np.searchsorted(sorted_ids, needles)
  pos = np.minimum(pos, len(sorted_ids) - 1)
  missing = sorted_ids[pos] != needles
  if np.any(missing):
    raise ValueError(f"{int(missing.sum())} of {len(needles)} records (e.g. "
                     f"record {needles[missing][0]}) are not among the {what}' "
                     "records.")
  return order[pos]


@dataclasses.dataclass(frozen=True, eq=False)
class MembershipOutputs:
  """One model's outputs on its members and on its non-members.

  For a shadow model this is the attacker's labelled training material; for
  the victim it is used only to evaluate an attack.
  """
  members: ModelOutputs
  non_members: ModelOutputs

  def __post_init__(self):
    if self.members.num_classes != self.non_members.num_classes:
      raise ValueError(
          f"members have {self.members.num_classes} classes but non-members "
          f"have {self.non_members.num_classes}.")
    if (self.members.record_ids is not None
        and self.non_members.record_ids is not None):
      both = np.intersect1d(self.members.record_ids,
                            self.non_members.record_ids)
      if both.size:
        raise ValueError(f"{both.size} records (e.g. {both[0]}) are both "
                         "members and non-members.")

  @property
  def num_classes(self) -> int:
    return self.members.num_classes

  def labelled(self) -> Tuple[ModelOutputs, np.ndarray]:
    """(members then non-members as one ModelOutputs, is_member bool (n,))."""
    return (ModelOutputs.concatenate([self.members, self.non_members]),
            np.concatenate([np.ones(len(self.members), bool),
                            np.zeros(len(self.non_members), bool)]))


@dataclasses.dataclass(frozen=True, eq=False)
class ReferenceOutputs:
  """Reference models of the random-halves protocol (LiRA, RMIA).

  Attributes:
    record_ids: int64 (n,), the pool records (targets and the attacker's own
      records), sorted.
    in_mask: bool (R, n): in_mask[r, i] says reference model r trained on
      record_ids[i].
    outputs: R `ModelOutputs`, model r on the pool records in record_ids
      order.
    population: optional R `ModelOutputs`, model r on population records that
      no reference model trained on (RMIA's z samples), same order for all r.
  """
  record_ids: np.ndarray
  in_mask: np.ndarray
  outputs: Tuple[ModelOutputs, ...]
  population: Optional[Tuple[ModelOutputs, ...]] = None

  def __post_init__(self):
    ids = np.asarray(self.record_ids, np.int64)
    in_mask = np.asarray(self.in_mask)
    outputs = tuple(self.outputs)
    if in_mask.dtype != bool or in_mask.ndim != 2:
      raise ValueError(f"in_mask must be bool (models, records), got "
                       f"{in_mask.dtype} {in_mask.shape}.")
    if in_mask.shape != (len(outputs), len(ids)):
      raise ValueError(f"in_mask has shape {in_mask.shape} but there are "
                       f"{len(outputs)} reference models and {len(ids)} "
                       "records.")
    if not outputs:
      raise ValueError("ReferenceOutputs needs at least one reference model.")
    for r, out in enumerate(outputs):
      if len(out) != len(ids):
        raise ValueError(f"reference model {r} has outputs for {len(out)} "
                         f"records, expected {len(ids)}.")
      if out.record_ids is not None and not np.array_equal(out.record_ids,
                                                           ids):
        raise ValueError(f"reference model {r}'s outputs are not in "
                         "record_ids order.")
    if len(np.unique(ids)) != len(ids):
      raise ValueError("ReferenceOutputs.record_ids must be distinct.")
    object.__setattr__(self, "record_ids", ids)
    object.__setattr__(self, "in_mask", in_mask)
    object.__setattr__(self, "outputs", outputs)
    if self.population is not None:
      population = tuple(self.population)
      if len(population) != len(outputs):
        raise ValueError(f"population has outputs of {len(population)} "
                         f"models, expected {len(outputs)}.")
      first = population[0]
      for out in population[1:]:
        if len(out) != len(first) or (
            first.record_ids is not None and not np.array_equal(
                out.record_ids, first.record_ids)):
          raise ValueError("every reference model's population outputs must "
                           "cover the same records in the same order.")
      object.__setattr__(self, "population", population)

  @property
  def num_models(self) -> int:
    return len(self.outputs)

  def stack(self, signal: str) -> np.ndarray:
    """A per-record signal of every model, float64 (R, n).

    Args:
      signal: a no-argument `ModelOutputs` method name, e.g.
        "logit_scaled_confidence" or "true_class_confidence".
    """
    return np.stack([getattr(out, signal)() for out in self.outputs])

  def positions_of(self, record_ids) -> np.ndarray:
    """Columns of `record_ids` in this pool; ValueError if some are absent."""
    return _positions(self.record_ids, np.asarray(record_ids, np.int64),
                      "reference pool")


def _check_query_settings(batch_size: int, num_perturbations: int,
                          epsilon: float) -> None:
  """The settings `ModelQuery` and `ServedQuery` share, checked."""
  if batch_size < 1 or num_perturbations < 1 or not epsilon > 0:
    raise ValueError("batch_size and num_perturbations must be >= 1 and "
                     f"epsilon > 0, got {batch_size}, {num_perturbations}, "
                     f"{epsilon}.")


class ModelQuery:
  """Queries a logit-output tf_keras model in batches, compiled once.

  Args:
    model: tf_keras model, (batch, ...) float32 -> logits (batch, classes).
    batch_size: records per forward pass (a sensitivity pass runs
      batch_size × num_perturbations inputs).
    num_perturbations: m, Gaussian perturbations per record for sensitivity.
    epsilon: perturbation scale ε (input units).
  """

  def __init__(self, model: keras.Model, batch_size: int = 1024,
               num_perturbations: int = SENSITIVITY_PERTURBATIONS,
               epsilon: float = SENSITIVITY_EPSILON):
    _check_query_settings(batch_size, num_perturbations, epsilon)
    self.model = model
    self.batch_size = batch_size
    self.num_perturbations = num_perturbations
    self.epsilon = epsilon
    self.trace_count = 0
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    # functools.partial: TF's retracing detector then keys each instance's
    # function separately (a bound method would share one key across models
    # and warn about "retracing" when many models are each traced once).
    self._logits_fn = tf.function(
        functools.partial(ModelQuery._logits_impl, self),
        input_signature=[spec])
    self._sensitivity_fn = tf.function(
        functools.partial(ModelQuery._sensitivity_impl, self),
        input_signature=[spec, tf.TensorSpec([2], tf.int32)])

  def _logits_impl(self, x):
    self.trace_count += 1  # Python side effect: once per trace.
    return self.model(x, training=False)

  def _sensitivity_impl(self, x, seed):
    self.trace_count += 1
    m = self.num_perturbations
    base = tf.nn.softmax(self.model(x, training=False))
    repeated = tf.repeat(x[tf.newaxis], m, axis=0)  # (m, b, ...)
    noise = tf.random.stateless_normal(tf.shape(repeated), seed)
    flat = tf.reshape(repeated + self.epsilon * noise,
                      tf.concat([[-1], tf.shape(x)[1:]], 0))
    perturbed = tf.nn.softmax(self.model(flat, training=False))
    perturbed = tf.reshape(perturbed, [m, tf.shape(x)[0], -1])
    return tf.reduce_mean(tf.abs(perturbed - base[tf.newaxis]), axis=0) / (
        self.epsilon)

  def logits(self, x: np.ndarray) -> np.ndarray:
    """Logits, float32 (n, classes), for features x (n, ...)."""
    x = np.asarray(x, np.float32)
    outs = [self._logits_fn(tf.constant(x[i:i + self.batch_size]))
            for i in range(0, len(x), self.batch_size)]
    if not outs:
      return np.zeros((0, self.model.output_shape[-1]), np.float32)
    return np.concatenate([o.numpy() for o in outs])

  def sensitivity(self, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """SAMIA sensitivity, float32 (n, classes).

    For each record, the mean over m Gaussian perturbations δ ~ N(0, I) of
    |softmax(f(x + ε δ)) − softmax(f(x))| / ε, per class. Deterministic given
    `seed` (stateless random numbers, one stream per batch).
    """
    x = np.asarray(x, np.float32)
    outs = []
    for b, i in enumerate(range(0, len(x), self.batch_size)):
      outs.append(self._sensitivity_fn(
          tf.constant(x[i:i + self.batch_size]),
          tf.constant([int(seed) % (2**31 - 1), b], tf.int32)).numpy())
    if not outs:
      return np.zeros((0, self.model.output_shape[-1]), np.float32)
    return np.concatenate(outs)

  def outputs(self, x: np.ndarray, labels: np.ndarray,
              record_ids: Optional[np.ndarray] = None,
              with_sensitivity: bool = False, seed: int = 0) -> ModelOutputs:
    """`ModelOutputs` of the model on (x, labels)."""
    x = np.asarray(x)
    if len(x) != len(np.asarray(labels)):
      raise ValueError(f"x has {len(x)} records but labels has "
                       f"{len(np.asarray(labels))}.")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
      raise ValueError("x contains NaN or infinite values.")
    logits = self.logits(x)
    if not np.all(np.isfinite(logits)):
      raise ValueError("the model produced NaN or infinite logits.")
    sens = self.sensitivity(x, seed) if with_sensitivity else None
    return ModelOutputs.from_logits(logits, labels, sens, record_ids)


def query_model(model: keras.Model, x: np.ndarray, labels: np.ndarray,
                record_ids: Optional[np.ndarray] = None,
                with_sensitivity: bool = False, seed: int = 0,
                batch_size: int = 1024) -> ModelOutputs:
  """One-off `ModelQuery(model).outputs(...)`; reuse a `ModelQuery` for
  several calls on the same model so it is compiled once."""
  return ModelQuery(model, batch_size).outputs(x, labels, record_ids,
                                               with_sensitivity, seed)


class ServedQuery:
  """Queries a served model file (`wemem_tf.models.served.ServedModel`) as
  `ModelQuery` queries a Keras model: same outputs, same SAMIA noise.

  The artifact is run as served (TFLite interpreter, SavedModel signature or
  Keras model), in its own batches. Its outputs are logits or probabilities;
  `output_kind` None decides from the first query
  (`served.detect_output_kind`) and keeps that choice. Probability outputs
  give `ModelOutputs.from_probs` (no logits).

  Args:
    model: the served model.
    output_kind: `served.OutputKind`, or None to detect.
    batch_size, num_perturbations, epsilon: as `ModelQuery`'s (the
      sensitivity noise is drawn per `batch_size` records with the same
      stateless streams, so a Keras model and its TFLite file get the same
      perturbations).
  """

  def __init__(self, model: "served_lib.ServedModel",
               output_kind: Optional["served_lib.OutputKind"] = None,
               batch_size: int = 1024,
               num_perturbations: int = SENSITIVITY_PERTURBATIONS,
               epsilon: float = SENSITIVITY_EPSILON):
    _check_query_settings(batch_size, num_perturbations, epsilon)
    self.model = model
    self.output_kind = output_kind
    self.batch_size = batch_size
    self.num_perturbations = num_perturbations
    self.epsilon = epsilon
    self.num_queries = 0  # records sent to the model

  def predict(self, x: np.ndarray) -> np.ndarray:
    """The served outputs, float32 (n, classes); fixes `output_kind` on
    the first call."""
    out = self.model.predict(np.asarray(x, np.float32))
    self.num_queries += len(out)
    if not np.all(np.isfinite(out)):
      raise ValueError(f"the served model {self.model.describe()} produced "
                       "NaN or infinite outputs.")
    if self.output_kind is None and len(out):
      self.output_kind = served_lib.detect_output_kind(out)
    return out

  def _probabilities(self, out: np.ndarray) -> np.ndarray:
    if self.output_kind is served_lib.OutputKind.PROBABILITIES:
      return out
    return tf.nn.softmax(out).numpy()

  def sensitivity(self, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """SAMIA sensitivity, float32 (n, classes), as `ModelQuery.sensitivity`."""
    x = np.asarray(x, np.float32)
    m = self.num_perturbations
    outs = []
    for b, i in enumerate(range(0, len(x), self.batch_size)):
      batch = x[i:i + self.batch_size]
      base = self._probabilities(self.predict(batch))
      noise = tf.random.stateless_normal(
          (m, *batch.shape), tf.constant([int(seed) % (2**31 - 1), b],
                                         tf.int32)).numpy()
      flat = (batch[np.newaxis] + self.epsilon * noise).reshape(
          (-1, *batch.shape[1:]))
      perturbed = self._probabilities(self.predict(flat)).reshape(
          (m, len(batch), -1))
      outs.append(np.mean(np.abs(perturbed - base[np.newaxis]), axis=0)
                  / self.epsilon)
    if not outs:
      return np.zeros((0, self.model.num_classes), np.float32)
    return np.concatenate(outs).astype(np.float32)

  def outputs(self, x: np.ndarray, labels: np.ndarray,
              record_ids: Optional[np.ndarray] = None,
              with_sensitivity: bool = False, seed: int = 0) -> ModelOutputs:
    """`ModelOutputs` of the served model on (x, labels)."""
    x = np.asarray(x)
    if len(x) != len(np.asarray(labels)):
      raise ValueError(f"x has {len(x)} records but labels has "
                       f"{len(np.asarray(labels))}.")
    out = self.predict(x)
    sens = self.sensitivity(x, seed) if with_sensitivity else None
    if self.output_kind is served_lib.OutputKind.PROBABILITIES:
      # Renormalize float32 rounding so rows sum to 1 in float64.
      probs = np.asarray(out, np.float64)
      return ModelOutputs.from_probs(probs / probs.sum(1, keepdims=True),
                                     labels, sens, record_ids)
    return ModelOutputs.from_logits(out, labels, sens, record_ids)
