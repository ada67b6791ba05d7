"""The defense interface applied while fine-tuning during iterative pruning.

A `Defense` shapes three things of the fine-tuning run, all inside the
library's compiled loop: which records each epoch visits and how they are
batched (`epoch_plan`), the batch update (`train_step`), and optionally what
the served model outputs (`inference_model`). `bind` is called once before
any training with the fine-tuning records, and must reject impossible
settings with a clear ValueError, so nothing fails inside training.
"""

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from wemem_tf._keras import keras
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


class Defense:
  """No defense: every epoch visits every record in random order.

  Subclasses override what they change. Attributes set by `bind`:
  `records`, `train_config`, `seed`.
  """
  name = "none"

  def __init__(self):
    self.records: Optional[TrainingRecords] = None
    self.train_config = loop_lib.TrainConfig()
    self.seed = 0

  def check_ready(self) -> None:
    """Raises ValueError if a required input (e.g. scores) is missing."""

  def bind(self, records: TrainingRecords, train_config: loop_lib.TrainConfig,
           num_iterations: int, epochs_per_iteration: int, seed: int) -> None:
    """Prepares for fine-tuning on `records`; validates settings.

    Raises:
      ValueError: the settings cannot work on these records.
    """
    del num_iterations, epochs_per_iteration
    self.records = records
    self.train_config = train_config
    self.seed = seed

  def epoch_plan(self, iteration: int, epoch: int,
                 rng: np.random.Generator) -> loop_lib.EpochPlan:
    """The records and batches of fine-tuning epoch `epoch` of `iteration`."""
    del iteration, epoch
    return loop_lib.shuffled_plan(len(self.records.y), self.train_config, rng)

  def train_step(self) -> loop_lib.TrainStep:
    """A fresh batch update for one model (built by the TrainingLoop)."""
    return loop_lib.TrainStep()

  def inference_model(self, model: keras.Model) -> keras.Model:
    """The model as served to queries (default: unchanged)."""
    return model

  def report(self) -> Dict[str, Any]:
    """JSON-ready facts about the defense run (e.g. risky share, ε)."""
    return {"defense": self.name}

  def config(self) -> Dict[str, Any]:
    """The settings, JSON-ready (dataclass defenses return their fields)."""
    if dataclasses.is_dataclass(self):
      return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
              if f.name != "scores"}
    return {}


NO_DEFENSE = Defense
