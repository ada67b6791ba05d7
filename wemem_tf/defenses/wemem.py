"""The WeMem defenses: RSW, RMR, SWMR and the random-window ablation.

* RSW  = P1 + P2: per-class sliding window over memorization order.
* RMR  = P3: risky memory regularization (λ_mem on risky records' batches).
* SWMR = P1 + P2 + P3.
* RandomWindow = P1 with a random order (ablation; needs no scores).

Scores are a `wemem_tf.memorization.MemScores` (aligned to the training
records by record index, so misaligned scores fail loudly) or a float array
with one score per training record, in training-record order.

Edge cases (docs/method.md §5), decided before training starts:
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
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import output_modification
from wemem_tf.defenses import risky as risky_lib
from wemem_tf.defenses import settings as settings_lib
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
                     "estimate); estimate with more models or the balanced design "
                     "(--memscore_design=balanced), or drop them.")
  return aligned


ORDER = settings_lib.Setting(
    flag="window_order", kind="choice", optional=True,
    choices=tuple(o.value for o in Order),
    help="Sliding-window order: h2l, l2h or random (None: no window).",
    tune=settings_lib.Tune("order", choices=("h2l", "l2h")))
STRIDE = settings_lib.Setting(
    flag="window_stride", kind="number", low=0, low_open=True,
    flag_type="int",
    help="Records per class the window advances each epoch (P1).",
    tune=settings_lib.Tune("stride", 1, 4, integer=True))
WIDTH = settings_lib.Setting(
    flag="window_width", kind="number", low=1, flag_type="int",
    help="Records per class in each epoch's window (P1).",
    tune=settings_lib.Tune("width", 5, 60, integer=True, step=5))
LAMBDA_MEM = settings_lib.Setting(
    flag="lambda_mem", low=0, optional=True,
    help="L2 weight decay of risky batches (P3; None: no P3).",
    tune=settings_lib.Tune("lambda_mem", 0.01, 1.0, "log"))
TAU = settings_lib.Setting(
    flag="tau", low=-1, high=1, optional=True,
    help="Risky threshold as a memorization score in [-1, 1].")
TAU_SHARE = settings_lib.Setting(
    flag="tau_share", low=0, high=1, optional=True,
    help="Risky threshold as a share of records (instead of tau).",
    tune=settings_lib.Tune("tau_share", 0.02, 0.4))
SHARED_OPTIMIZER = settings_lib.Setting(
    flag="risky_shared_optimizer", kind="bool",
    help="P3 with one Adam for all batches instead of a second one for "
    "risky batches.")
MODIFY_OUTPUT = settings_lib.Setting(
    flag="output_modification", kind="bool", serving_only=True,
    help="Serve the model behind HAMP's output modification (an extension "
    "beyond the paper: the served confidences are a random input's, only "
    "the class ranking is the query's).")
SHUFFLE = settings_lib.Setting(
    flag="window_shuffle", kind="bool",
    help="Shuffle the window's records into batches (the authors' loader "
    "does).")


@dataclasses.dataclass(frozen=True)
class WeMem(defense_lib.Defense):
  """Any combination of the three WeMem primitives.

  Attributes:
    scores: MemScores or float (n_train,) array; None only for a random
      window without P3. Data, not a setting: not in `get_config`.
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
    modify_output: serve the trained model behind output modification
      (`output_modification.py`: scores of a random input, ranked like the
      query's), which leaves predicted labels, and so accuracy, unchanged.
      Not in the paper: an extension (docs/method.md §5) that combines the
      primitives with HAMP's serving-time part. Training is unchanged, so
      the same trained models serve either way.
  """
  scores: Any = dataclasses.field(default=None, compare=False, repr=False)
  order: Optional[Order] = settings_lib.field(ORDER, None)
  stride: float = settings_lib.field(STRIDE, 1)
  width: float = settings_lib.field(WIDTH, 15)
  lambda_mem: Optional[float] = settings_lib.field(LAMBDA_MEM, None)
  tau: Optional[float] = settings_lib.field(TAU, None)
  tau_share: Optional[float] = settings_lib.field(TAU_SHARE, None)
  shared_optimizer: bool = settings_lib.field(SHARED_OPTIMIZER, False)
  shuffle_within_epoch: bool = settings_lib.field(SHUFFLE, True)
  modify_output: bool = settings_lib.field(MODIFY_OUTPUT, False)

  name: ClassVar[str] = "wemem"
  display_name: ClassVar[str] = "WeMem"

  def __post_init__(self):
    super().__post_init__()
    if self.order is not None:
      object.__setattr__(self, "order", Order(self.order))
    if self.lambda_mem is not None:
      if (self.tau is None) == (self.tau_share is None):
        raise ValueError("risky memory regularization needs exactly one of "
                         "tau (a score) and tau_share (a share of records).")

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


def _warn_if_window_covers_all(defense: "WeMem", records) -> None:
  """Warns when the window's width is at least the largest class's record
  count: every epoch's window then starts with every remaining record of
  every class, so P1/P2 limit nothing (docs/method.md §5)."""
  largest = int(np.bincount(np.asarray(records.y),
                            minlength=records.num_classes).max())
  if defense.width >= largest:
    warnings.warn(
        f"{defense.name}: window width {defense.width:g} covers every record "
        f"of every class (the largest class has {largest} training records),"
        " so the sliding window does nothing at this setting; use a width "
        f"below {largest}.")


class WeMemRun(defense_lib.DefenseRun):
  """A WeMem defense on one model's records: aligned scores, the risky set,
  each iteration's class orders."""

  def __init__(self, defense: WeMem, records, tuning):
    super().__init__(defense, records, tuning)
    n = len(records.y)
    self.scores = (align_scores(defense.scores, records.index)
                   if defense.needs_scores else np.zeros(n))
    self.risky = np.zeros(n, bool)
    if defense.regularized:
      self.risky = risky_lib.risky_mask(self.scores, defense.tau,
                                        defense.tau_share)
      if not self.risky.any():
        warnings.warn(f"{defense.name}: no training record is risky (tau="
                      f"{defense.tau}, tau_share={defense.tau_share}; max "
                      f"score {self.scores.max():.3f}); training as without "
                      "P3.")
    self._orders: Dict[int, Dict[int, np.ndarray]] = {}
    self._used: Dict[int, int] = {}
    if defense.windowed:
      _warn_if_window_covers_all(defense, records)

  def class_orders(self, iteration: int) -> Dict[int, np.ndarray]:
    """{class: positions in visiting order} of `iteration`.

    The same in every iteration: scores do not change, and a random order
    is drawn from the run's seed alone (as the WeMem authors keep one random
    order for all iterations, the way RSW/SWMR keep their score order).
    """
    d = self.defense
    if iteration not in self._orders:
      rng = np.random.default_rng([self.seed, 7919])
      self._orders[iteration] = window_lib.class_orders(
          self.records.y, self.scores, d.order, self.records.num_classes, rng)
      self._used[iteration] = window_lib.records_ever_used(
          self._orders[iteration], self.tuning.epochs_per_iteration,
          d.stride, d.width)
    return self._orders[iteration]

  def epoch_positions(self, iteration: int, epoch: int) -> np.ndarray:
    """Training-record positions visited in this epoch (window order)."""
    d = self.defense
    if not d.windowed:
      return np.arange(len(self.records.y))
    return window_lib.epoch_positions(self.class_orders(iteration), epoch,
                                      d.stride, d.width)

  def epoch_plan(self, iteration, epoch, rng):
    d = self.defense
    positions = self.epoch_positions(iteration, epoch)
    if d.regularized:
      risky = self.risky[positions]
      return risky_lib.plan(positions[risky], positions[~risky],
                            self.train_config, d.lambda_mem, rng)
    if d.shuffle_within_epoch:
      positions = rng.permutation(positions)
    return loop_lib.batched_plan(positions, self.train_config.batch_size,
                                 self.train_config.weight_decay)

  def inference_model(self, model):
    """`model` behind output modification when `modify_output` is set."""
    if not self.defense.modify_output:
      return model
    domain = output_modification.RandomInputDomain.of(self.records.x)
    return output_modification.serve(model, domain, self.seed, "om")

  def train_step(self):
    if self.defense.regularized:
      return risky_lib.RiskyMemoryStep(self.defense.shared_optimizer)
    return loop_lib.TrainStep()

  def report(self):
    d = self.defense
    out = super().report()
    if d.regularized:
      out["risky_share"] = float(self.risky.mean())
      out["risky_records"] = int(self.risky.sum())
      out["tau_mode"] = ("score" if d.tau is not None else "share"
                         if d.tau_share is not None else None)
    if self._used:
      out["records_used_per_iteration"] = {str(k): v for k, v in
                                           sorted(self._used.items())}
      out["max_epochs_per_record"] = math.ceil(d.width / d.stride)
    return out


WeMem.RUN = WeMemRun


@dataclasses.dataclass(frozen=True)
class RSW(WeMem):
  """Reduced sliding window (P1 + P2), against data reuse.

  Defaults: the authors' Location setting (L→H, stride 1, width 15).
  """
  order: Optional[Order] = settings_lib.field(ORDER, Order.LOW_TO_HIGH)
  name: ClassVar[str] = "rsw"
  display_name: ClassVar[str] = "RSW"
  EXPOSED: ClassVar[Tuple[str, ...]] = ("order", "stride", "width",
                                        "modify_output")

  def __post_init__(self):
    if self.order is None or self.lambda_mem is not None:
      raise ValueError("RSW is a sliding window without P3: give an order and "
                       "no lambda_mem (use SWMR for both).")
    super().__post_init__()


@dataclasses.dataclass(frozen=True)
class RMR(WeMem):
  """Risky memory regularization (P3), against inherent memorability.

  Defaults: the authors' Location setting (λ_mem 0.1, τ 0.6).
  """
  lambda_mem: Optional[float] = settings_lib.field(LAMBDA_MEM, 0.1)
  name: ClassVar[str] = "rmr"
  display_name: ClassVar[str] = "RMR"
  EXPOSED: ClassVar[Tuple[str, ...]] = ("tau", "tau_share", "lambda_mem",
                                        "modify_output")

  def __post_init__(self):
    if self.order is not None:
      raise ValueError("RMR has no sliding window; use SWMR for both.")
    if self.lambda_mem is None:
      raise ValueError("RMR needs lambda_mem.")
    _default_tau(self)
    super().__post_init__()


@dataclasses.dataclass(frozen=True)
class SWMR(WeMem):
  """Sliding window + risky memory regularization (P1 + P2 + P3).

  Defaults: the authors' Location setting (H→L, stride 1, width 15,
  λ_mem 0.1, τ 0.6).
  """
  order: Optional[Order] = settings_lib.field(ORDER, Order.HIGH_TO_LOW)
  lambda_mem: Optional[float] = settings_lib.field(LAMBDA_MEM, 0.1)
  name: ClassVar[str] = "swmr"
  display_name: ClassVar[str] = "SWMR"
  EXPOSED: ClassVar[Tuple[str, ...]] = ("order", "stride", "width", "tau",
                                        "tau_share", "lambda_mem",
                                        "modify_output")

  def __post_init__(self):
    if self.order is None or self.lambda_mem is None:
      raise ValueError("SWMR needs both an order and lambda_mem.")
    _default_tau(self)
    super().__post_init__()


def _default_tau(defense: WeMem) -> None:
  """τ = 0.6 (the authors' Location setting) when no threshold is given."""
  if defense.tau is None and defense.tau_share is None:
    object.__setattr__(defense, "tau", 0.6)


@dataclasses.dataclass(frozen=True)
class RandomWindow(WeMem):
  """Sliding window in a random order (ablation of P2); needs no scores."""
  order: Optional[Order] = settings_lib.field(ORDER, Order.RANDOM)
  name: ClassVar[str] = "random"
  display_name: ClassVar[str] = "random window"
  EXPOSED: ClassVar[Tuple[str, ...]] = ("stride", "width", "modify_output")

  def __post_init__(self):
    if self.order is not Order.RANDOM and self.order != "random":
      raise ValueError("RandomWindow uses order='random'.")
    if self.lambda_mem is not None:
      raise ValueError("RandomWindow has no P3.")
    super().__post_init__()


# The authors' settings (docs/method.md §5), by dataset and method.
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
# MNIST is not in the paper: it takes the image presets of CIFAR-10 (same
# number of classes), scaled to its class sizes by the same rule.
PRESETS["mnist"] = PRESETS["cifar10"]

# The victim's training records per class a preset's window was set for,
# where the dataset may come in another size (docs/method.md §5 "Windows on
# a smaller dataset"): CIFAR-10's 50,000 training images give the victim
# 22,500 members under the protocol (docs/method.md §2), 2,250 per class.
# Location's preset is for Location itself and is never scaled.
PRESET_RECORDS_PER_CLASS: Dict[str, float] = {"cifar10": 2250.0,
                                               "mnist": 2250.0}

METHODS = {"rsw": RSW, "rmr": RMR, "swmr": SWMR, "random": RandomWindow}


def scaled_window(defense: defense_lib.Defense, scale: float
                  ) -> defense_lib.Defense:
  """`defense` for classes `scale` times as large: a sliding window's stride
  and width (records per class) are multiplied by `scale` (fractional
  windows allowed, `window.bounds`; width at least 1); every other setting
  is a share or a strength and stays. Defenses without a window come back
  unchanged."""
  if (isinstance(scale, bool) or not isinstance(scale, (int, float, np.number))
      or not (scale > 0 and math.isfinite(scale))):
    raise ValueError(f"scale is a ratio of records per class and must be "
                     f"a finite number > 0, got {scale!r}.")
  if scale == 1.0 or not getattr(defense, "windowed", False):
    return defense
  return dataclasses.replace(defense, stride=defense.stride * scale,
                             width=max(1.0, defense.width * scale))


def from_preset(method: str, dataset: str, scores: Any = None,
                records_per_class: Optional[float] = None,
                **overrides) -> WeMem:
  """The authors' setting of `method` for `dataset`, with overrides.

  Args:
    method: "rsw", "rmr", "swmr" or "random".
    dataset: a `PRESETS` key.
    scores: memorization scores of the model's training records.
    records_per_class: the victim's training records per class (mean) on
      the data at hand; for a preset in `PRESET_RECORDS_PER_CLASS` (CIFAR-10)
      its window's stride and width are scaled by records_per_class /
      the preset's own (e.g. the 5,000-image subset's 180 per class:
      × 0.08). None, or a preset made for its dataset (Location): as is.
    **overrides: settings that replace the preset's; given windows are
      records per class and are not scaled.
  """
  if method not in METHODS:
    raise ValueError(f"unknown WeMem method {method!r}; choose one of "
                     f"{sorted(METHODS)}.")
  if dataset not in PRESETS:
    raise ValueError(f"no preset for dataset {dataset!r}; presets exist for "
                     f"{sorted(PRESETS)}. Configure {method.upper()}(...) "
                     "directly.")
  preset = METHODS[method](scores=scores, **PRESETS[dataset][method])
  reference = PRESET_RECORDS_PER_CLASS.get(dataset)
  if records_per_class is not None and reference is not None:
    preset = scaled_window(preset, records_per_class / reference)
  return dataclasses.replace(preset, **overrides) if overrides else preset
