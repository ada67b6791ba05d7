"""The defense interface: frozen settings, and a run bound to records.

A `Defense` is immutable configuration (a frozen dataclass whose fields are
its declared settings, `settings.setting`), serializable with `get_config`
/ `from_config` like TFMOT's schedules. Binding it to the fine-tuning
records returns a `DefenseRun`, which holds everything per run and shapes
three things of fine-tuning, in the library's compiled loop and in
`model.fit` alike:

* which records each epoch visits and how they are batched (`epoch_plan`),
* the batch update (`train_step`: a fresh one per model),
* optionally what the served model outputs (`inference_model`),

and reports what happened (`report`). The same defense object may be bound
any number of times (victim, shadows, reference models): runs share no
state. `bind` rejects impossible settings with a clear ValueError, so
nothing fails inside training.
"""

import dataclasses
from typing import Any, ClassVar, Dict, Optional

import numpy as np

from wemem_tf._keras import keras
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib


@dataclasses.dataclass(frozen=True)
class TrainingRecords:
  """What a defense sees of the fine-tuning data.

  Attributes:
    x: float32 (n, ...) training features.
    y: int64 (n,) labels in [0, num_classes).
    index: int64 (n,) record indices into the dataset (aligns scores).
    num_classes: number of classes.
    reference_x, reference_y: the defender's own non-member records (the dev
      split), for defenses that need them (AdvReg).
  """
  x: np.ndarray
  y: np.ndarray
  index: np.ndarray
  num_classes: int
  reference_x: Optional[np.ndarray] = None
  reference_y: Optional[np.ndarray] = None

  def __post_init__(self):
    if len(self.index) != len(self.y) or len(self.x) != len(self.y):
      raise ValueError(f"TrainingRecords: x ({len(self.x)}), y ({len(self.y)})"
                       f" and index ({len(self.index)}) must have one entry "
                       "per record.")


@dataclasses.dataclass(frozen=True)
class FineTuning:
  """The fine-tuning a run is bound to.

  Attributes:
    train_config: optimizer settings (batch size, ordinary weight decay).
    num_iterations: pruning iterations.
    epochs_per_iteration: fine-tuning epochs at most per iteration.
    seed: the run's seed.
  """
  train_config: loop_lib.TrainConfig = loop_lib.TrainConfig()
  num_iterations: int = 1
  epochs_per_iteration: int = 1
  seed: int = 0


class DefenseRun:
  """A defense bound to one model's fine-tuning records (per-run state).

  The default: no defense; every epoch visits every record in random order.
  Subclasses override what their defense changes.

  Attributes:
    defense: the frozen settings.
    records: the fine-tuning records.
    tuning: the fine-tuning settings.
  """

  def __init__(self, defense: "Defense", records: TrainingRecords,
               tuning: FineTuning):
    self.defense = defense
    self.records = records
    self.tuning = tuning

  @property
  def train_config(self) -> loop_lib.TrainConfig:
    return self.tuning.train_config

  @property
  def seed(self) -> int:
    return self.tuning.seed

  def epoch_plan(self, iteration: int, epoch: int,
                 rng: np.random.Generator) -> loop_lib.EpochPlan:
    """The records and batches of fine-tuning epoch `epoch` of `iteration`."""
    del iteration, epoch
    return loop_lib.shuffled_plan(len(self.records.y), self.train_config, rng)

  def train_step(self) -> loop_lib.TrainStep:
    """A fresh batch update for one model (built by its trainer)."""
    return loop_lib.TrainStep()

  @property
  def modifies_output(self) -> bool:
    """Whether `inference_model` serves something else than the model."""
    return self.defense.modifies_output

  def inference_model(self, model: keras.Model) -> keras.Model:
    """The model as served to queries (default: unchanged)."""
    return model

  def report(self) -> Dict[str, Any]:
    """JSON-ready facts: the settings and what the run did (risky share, ε)."""
    return {"defense": self.defense.name, **self.defense.get_config()}


@dataclasses.dataclass(frozen=True)
class Defense:
  """No defense. Subclasses are frozen dataclasses of declared settings.

  Class attributes:
    name: the registry name.
    display_name: the name in messages.
    RUN: the `DefenseRun` class that `bind` creates.
    PAPER_SETTINGS: the settings of the WeMem authors' scripts where they
      differ from the class defaults (`--baseline_settings=paper`;
      docs/fidelity.md). The defaults are "ours".
  """
  name: ClassVar[str] = "none"
  display_name: ClassVar[str] = "no defense"
  RUN: ClassVar[type] = DefenseRun
  PAPER_SETTINGS: ClassVar[Dict[str, Any]] = {}

  def __post_init__(self):
    settings_lib.validate(self)

  def check_ready(self) -> None:
    """Raises ValueError if a required input (e.g. scores) is missing."""

  @property
  def modifies_output(self) -> bool:
    """Whether a run's `inference_model` serves something else than the
    trained model: a serving-only setting (output modification) is on."""
    return any(bool(getattr(self, f.name)) for f in self._serving_only())

  def bind(self, records: TrainingRecords,
           train_config: loop_lib.TrainConfig = loop_lib.TrainConfig(),
           num_iterations: int = 1, epochs_per_iteration: int = 1,
           seed: int = 0) -> DefenseRun:
    """A run of this defense on `records`; validates the settings against
    them.

    Raises:
      ValueError: the settings cannot work on these records.
    """
    self.check_ready()
    self.check_records(records, train_config)
    return self.RUN(self, records, FineTuning(train_config, num_iterations,
                                              epochs_per_iteration, seed))

  def check_records(self, records: TrainingRecords,
                    train_config: loop_lib.TrainConfig) -> None:
    """Raises ValueError when the settings cannot work on `records`."""

  def get_config(self) -> Dict[str, Any]:
    """The settings, JSON-ready (data such as scores is not a setting)."""
    return {f.name: settings_lib.json_value(getattr(self, f.name))
            for f in dataclasses.fields(self) if "setting" in f.metadata}

  def _serving_only(self):
    """The dataclass fields of serving-only settings."""
    return [f for f in dataclasses.fields(self)
            if "setting" in f.metadata and f.metadata["setting"].serving_only]

  def config(self) -> Dict[str, Any]:
    """The settings that identify a configuration's results (cache keys):
    `get_config` without serving-only settings at their default, so that
    adding one keeps every earlier key."""
    out = self.get_config()
    for f in self._serving_only():
      if getattr(self, f.name) == f.default:
        del out[f.name]
    return out

  def serving_config(self) -> Dict[str, Any]:
    """The serving-only settings alone (what a shared trained model's own
    report cannot know)."""
    return {f.name: settings_lib.json_value(getattr(self, f.name))
            for f in self._serving_only()}

  def training_config(self) -> Dict[str, Any]:
    """The settings that determine the trained weights: `get_config`
    without serving-only settings (models trained with this defense are
    shared whatever it serves)."""
    out = self.get_config()
    for f in self._serving_only():
      del out[f.name]
    return out

  @classmethod
  def from_config(cls, config: Dict[str, Any], **data) -> "Defense":
    """Rebuilds a defense from `get_config()` (plus data such as scores)."""
    known = {f.name for f in dataclasses.fields(cls) if "setting" in f.metadata}
    unknown = sorted(set(config) - known)
    if unknown:
      raise ValueError(f"{cls.display_name}: unknown settings {unknown}; "
                       f"known: {sorted(settings_lib.declared(cls))}.")
    return cls(**config, **data)


NO_DEFENSE = Defense
