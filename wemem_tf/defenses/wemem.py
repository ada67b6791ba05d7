"""The WeMem defenses: RSW, RMR, SWMR and the random-window ablation.

* RSW  = P1 + P2: per-class sliding window over memorization order.
* RMR  = P3: risky memory regularization (λ_mem on risky records' batches).
* SWMR = P1 + P2 + P3.
* RandomWindow = P1 with a random order (ablation; needs no scores).

Scores are a `wemem_tf.memorization.MemScores` (aligned to the training
records by record index, so misaligned scores fail loudly) or a float array
with one score per training record, in training-record order.

Edge cases (METHOD.md §5), decided before training starts:
  * a class smaller than the window contributes what it has; a class whose
    order is exhausted contributes nothing;
  * an epoch whose window selects no record at all ends the iteration (the
    fit loop stops; the best checkpoint so far is kept);
  * no risky record (τ above every score): RMR trains exactly like no
    defense, with a warning; every record risky: all batches are risky;
  * τ outside [-1, 1], NaN scores, or scores for other records: ValueError.
"""

import dataclasses
import math
import warnings
from typing import Any, Dict, Optional

import numpy as np

from wemem_tf.defenses import base
from wemem_tf.defenses import risky as risky_lib
from wemem_tf.defenses import window as window_lib
from wemem_tf.training import loop as loop_lib

Order = window_lib.Order


def align_scores(scores: Any, index: np.ndarray) -> np.ndarray:
  """float (n,) scores of the records `index`, failing on any mismatch."""
  if scores is None:
    raise ValueError("this defense needs memorization scores: pass "
                     "scores=MemScores (wemem_tf.memorization.estimate) or an "
                     "array with one score per training record.")
  if hasattr(scores, "align"):
    aligned = scores.align(index)  # MemScores: raises on missing records
    aligned = np.asarray(getattr(aligned, "score", aligned), np.float64)
  else:
    aligned = np.asarray(scores, np.float64)
    if aligned.shape != (len(index),):
      raise ValueError(f"scores have shape {aligned.shape} but there are "
                       f"{len(index)} training records; pass one score per "
                       "training record, or a MemScores keyed by record index.")
  bad = int(np.sum(~np.isfinite(aligned)))
  if bad:
    raise ValueError(f"{bad} training records have NaN/inf memorization "
                     "scores (never left out or never included in the "
                     "estimate); estimate with more models or drop them.")
  return aligned


@dataclasses.dataclass
class WeMem(base.Defense):
  """Any combination of the three WeMem primitives.

  Attributes:
    scores: MemScores or float (n_train,) array; None only for a random
      window without P3.
    order: window order (None: no sliding window, every record each epoch).
    stride: records per class the window advances each epoch (P1; an
      integer in the method, fractional for scaled-down rehearsals).
    width: records per class in each epoch's window (P1; likewise).
    lambda_mem: L2 weight decay of risky batches (None: no P3).
    tau: risky threshold as a memorization score in [-1, 1].
    tau_share: risky threshold as the share of training records (top by
      score); give `tau` or `tau_share`, not both.
    shared_optimizer: P3 with one Adam for all batches instead of the
      authors' second optimizer for risky batches.
    shuffle_within_epoch: shuffle the window's records into batches (the
      authors' data loader shuffles); False keeps window order.
  """
  scores: Any = None
  order: Optional[Order] = None
  stride: float = 1
  width: float = 15
  lambda_mem: Optional[float] = None
  tau: Optional[float] = None
  tau_share: Optional[float] = None
  shared_optimizer: bool = False
  shuffle_within_epoch: bool = True

  name = "wemem"

  def __post_init__(self):
    base.Defense.__init__(self)
    if self.order is not None:
      self.order = Order(self.order)
      window_lib.validate_window(self.stride, self.width)
    if self.lambda_mem is not None:
      if not self.lambda_mem >= 0:
        raise ValueError(f"lambda_mem must be >= 0, got {self.lambda_mem}.")
      if (self.tau is None) == (self.tau_share is None):
        raise ValueError("risky memory regularization needs exactly one of "
                         "tau (a score) and tau_share (a share of records).")
      risky_lib.risky_mask(np.zeros(1), self.tau, self.tau_share)  # validates
    self._aligned = None
    self._risky = None
    self._orders = {}
    self._used = {}

  @property
  def windowed(self) -> bool:
    return self.order is not None

  @property
  def regularized(self) -> bool:
    return self.lambda_mem is not None

  @property
  def needs_scores(self) -> bool:
    return self.regularized or self.order in (Order.HIGH_TO_LOW,
                                              Order.LOW_TO_HIGH)

  def check_ready(self):
    if self.needs_scores and self.scores is None:
      align_scores(None, np.zeros(0))  # raises with the instructions

  def bind(self, records, train_config, num_iterations, epochs_per_iteration,
           seed):
    super().bind(records, train_config, num_iterations, epochs_per_iteration,
                 seed)
    n = len(records.y)
    self._aligned = (align_scores(self.scores, records.index)
                     if self.needs_scores else np.zeros(n))
    self._risky = np.zeros(n, bool)
    if self.regularized:
      self._risky = risky_lib.risky_mask(self._aligned, self.tau, self.tau_share)
      if not self._risky.any():
        warnings.warn(f"{self.name}: no training record is risky (tau="
                      f"{self.tau}, tau_share={self.tau_share}; max score "
                      f"{self._aligned.max():.3f}); training as without P3.")
    self._orders = {}
    self._used = {}
    self._epochs = epochs_per_iteration

  def _class_orders(self, iteration: int) -> Dict[int, np.ndarray]:
    if iteration not in self._orders:
      rng = np.random.default_rng([self.seed, iteration, 7919])
      self._orders[iteration] = window_lib.class_orders(
          self.records.y, self._aligned, self.order, self.records.num_classes,
          rng)
      self._used[iteration] = window_lib.records_ever_used(
          self._orders[iteration], self._epochs, self.stride, self.width)
    return self._orders[iteration]

  def epoch_positions(self, iteration: int, epoch: int) -> np.ndarray:
    """Training-record positions visited in this epoch (window order)."""
    if not self.windowed:
      return np.arange(len(self.records.y))
    return window_lib.epoch_positions(self._class_orders(iteration), epoch,
                                      self.stride, self.width)

  def epoch_plan(self, iteration, epoch, rng):
    positions = self.epoch_positions(iteration, epoch)
    if self.regularized:
      risky = self._risky[positions]
      return risky_lib.plan(positions[risky], positions[~risky],
                            self.train_config, self.lambda_mem, rng)
    if self.shuffle_within_epoch:
      positions = rng.permutation(positions)
    return loop_lib.batched_plan(positions, self.train_config.batch_size,
                                 self.train_config.weight_decay)

  def train_step(self):
    if self.regularized:
      return risky_lib.RiskyMemoryStep(self.shared_optimizer)
    return loop_lib.TrainStep()

  def report(self):
    out = {"defense": self.name, **self.config()}
    if self.order is not None:
      out["order"] = Order(self.order).value
    if self._risky is not None and self.regularized:
      out["risky_share"] = float(self._risky.mean())
      out["risky_records"] = int(self._risky.sum())
      out["tau_mode"] = ("score" if self.tau is not None else "share"
                         if self.tau_share is not None else None)
    if self._used:
      out["records_used_per_iteration"] = {str(k): v for k, v in
                                           sorted(self._used.items())}
      out["max_epochs_per_record"] = math.ceil(self.width / self.stride)
    return out


@dataclasses.dataclass
class RSW(WeMem):
  """Reduced sliding window (P1 + P2), against data reuse.

  Defaults: the authors' Location setting (L→H, stride 1, width 15).
  """
  order: Optional[Order] = Order.LOW_TO_HIGH
  name = "rsw"

  def __post_init__(self):
    if self.order is None or self.lambda_mem is not None:
      raise ValueError("RSW is a sliding window without P3: give an order and "
                       "no lambda_mem (use SWMR for both).")
    super().__post_init__()


@dataclasses.dataclass
class RMR(WeMem):
  """Risky memory regularization (P3), against inherent memorability.

  Defaults: the authors' Location setting (λ_mem 0.1, τ 0.6).
  """
  lambda_mem: Optional[float] = 0.1
  tau: Optional[float] = None
  name = "rmr"

  def __post_init__(self):
    if self.order is not None:
      raise ValueError("RMR has no sliding window; use SWMR for both.")
    if self.lambda_mem is None:
      raise ValueError("RMR needs lambda_mem.")
    if self.tau is None and self.tau_share is None:
      self.tau = 0.6
    super().__post_init__()


@dataclasses.dataclass
class SWMR(WeMem):
  """Sliding window + risky memory regularization (P1 + P2 + P3).

  Defaults: the authors' Location setting (H→L, stride 1, width 15,
  λ_mem 0.1, τ 0.6).
  """
  order: Optional[Order] = Order.HIGH_TO_LOW
  lambda_mem: Optional[float] = 0.1
  name = "swmr"

  def __post_init__(self):
    if self.order is None or self.lambda_mem is None:
      raise ValueError("SWMR needs both an order and lambda_mem.")
    if self.tau is None and self.tau_share is None:
      self.tau = 0.6
    super().__post_init__()


@dataclasses.dataclass
class RandomWindow(WeMem):
  """Sliding window in a random order (ablation of P2); needs no scores."""
  order: Optional[Order] = Order.RANDOM
  name = "random"

  def __post_init__(self):
    if self.order is not Order.RANDOM and self.order != "random":
      raise ValueError("RandomWindow uses order='random'.")
    if self.lambda_mem is not None:
      raise ValueError("RandomWindow has no P3.")
    super().__post_init__()


# The authors' settings (METHOD.md §5), by dataset and method.
PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "location": {
        "rsw": dict(order=Order.LOW_TO_HIGH, stride=1, width=15),
        "rmr": dict(lambda_mem=0.1, tau=0.6),
        "swmr": dict(order=Order.HIGH_TO_LOW, stride=1, width=15,
                     lambda_mem=0.1, tau=0.6),
        "random": dict(stride=1, width=15),
    },
    "cifar10": {
        "rsw": dict(order=Order.LOW_TO_HIGH, stride=50, width=500),
        "rmr": dict(lambda_mem=0.1, tau=0.5),
        "swmr": dict(order=Order.HIGH_TO_LOW, stride=100, width=500,
                     lambda_mem=0.1, tau=0.5),
        "random": dict(stride=50, width=500),
    },
}

METHODS = {"rsw": RSW, "rmr": RMR, "swmr": SWMR, "random": RandomWindow}


def from_preset(method: str, dataset: str, scores: Any = None,
                **overrides) -> WeMem:
  """The authors' setting of `method` for `dataset`, with overrides."""
  if method not in METHODS:
    raise ValueError(f"unknown WeMem method {method!r}; choose one of "
                     f"{sorted(METHODS)}.")
  if dataset not in PRESETS:
    raise ValueError(f"no preset for dataset {dataset!r}; presets exist for "
                     f"{sorted(PRESETS)}. Configure {method.upper()}(...) "
                     "directly.")
  settings = {**PRESETS[dataset][method], **overrides}
  return METHODS[method](scores=scores, **settings)
