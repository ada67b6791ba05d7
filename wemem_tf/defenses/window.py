"""P1 + P2: the per-class sliding window over memorization order (docs/method.md §5).

Within each class, records are ordered by memorization score (high→low,
low→high, or a seeded random order). Fine-tuning epoch e of an iteration
visits, in every class, the records at order positions
[e · stride, e · stride + width), clipped at the class size; a class whose
order is exhausted contributes nothing. A record is therefore visited in at
most ceil(width / stride) epochs of an iteration.

Stride and width are integers in the method; fractional values (positions
[floor(e · stride), floor(e · stride + width))) let a window be scaled to a
smaller training set, as the tuning rehearsal does (wemem_eval/tuning/tuner.py).
"""

import enum
from typing import Dict, Optional, Tuple

import numpy as np


class Order(str, enum.Enum):
  """Which records a class's window visits first."""
  HIGH_TO_LOW = "h2l"
  LOW_TO_HIGH = "l2h"
  RANDOM = "random"


def _is_number(value) -> bool:
  return (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, bool))


def validate_window(stride: float, width: float) -> None:
  if not _is_number(stride) or not stride > 0:
    raise ValueError(f"window stride must be a number > 0 (records per "
                     f"class; an integer >= 1 in the method), got {stride!r}.")
  if not _is_number(width) or not width >= 1:
    raise ValueError(f"window width must be a number >= 1 (records per "
                     f"class), got {width!r}.")


def bounds(epoch: int, stride: float, width: float) -> Tuple[int, int]:
  """[start, end) order positions of `epoch`'s window."""
  return (int(np.floor(epoch * stride + 1e-9)),
          int(np.floor(epoch * stride + width + 1e-9)))


def class_orders(labels: np.ndarray, scores: np.ndarray, order: Order,
                 num_classes: int,
                 rng: Optional[np.random.Generator] = None
                 ) -> Dict[int, np.ndarray]:
  """{class: positions of its records in visiting order}.

  Args:
    labels: int (n,) class of each training record.
    scores: float (n,) memorization score of each record (ignored for
      RANDOM). Ties break by position, so the order is deterministic.
    order: the visiting order.
    num_classes: classes to cover (absent classes get empty arrays).
    rng: required for RANDOM.
  """
  order = Order(order)
  labels = np.asarray(labels)
  scores = np.asarray(scores, np.float64)
  if labels.shape != scores.shape:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} must "
                     "align one score per record.")
  if order is Order.RANDOM and rng is None:
    raise ValueError("a random window order needs an rng.")
  result = {}
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if order is Order.RANDOM:
      result[c] = rng.permutation(members)
      continue
    key = scores[members] if order is Order.LOW_TO_HIGH else -scores[members]
    result[c] = members[np.lexsort((members, key))]
  return result


def window(orders: Dict[int, np.ndarray], epoch: int, stride: float,
           width: float) -> Dict[int, np.ndarray]:
  """{class: positions visited in `epoch`, in window order} (may be empty)."""
  validate_window(stride, width)
  if epoch < 0:
    raise ValueError(f"epoch must be >= 0, got {epoch}.")
  start, end = bounds(epoch, stride, width)
  return {c: o[start:end] for c, o in orders.items()}


def epoch_positions(orders: Dict[int, np.ndarray], epoch: int,
                    stride: float, width: float) -> np.ndarray:
  """All positions visited in `epoch` (classes in order), int64."""
  parts = list(window(orders, epoch, stride, width).values())
  return (np.concatenate(parts).astype(np.int64) if parts
          else np.zeros(0, np.int64))


def records_ever_used(orders: Dict[int, np.ndarray], epochs: int,
                      stride: float, width: float) -> int:
  """How many records any epoch of an `epochs`-epoch iteration visits."""
  total = 0
  for o in orders.values():
    covered = np.zeros(len(o), bool)
    for epoch in range(epochs):
      start, end = bounds(epoch, stride, width)
      covered[start:end] = True
    total += int(covered.sum())
  return total
