"""Accuracy of a classifier with logit outputs: the one place it is computed.

  accuracy(model, x, y)            # a Keras model, called in batches
  accuracy(query.logits, x, y)     # any function x -> logits (n, classes)
  logits_accuracy(logits, y)       # logits already computed
"""

from typing import Callable, Union

import numpy as np

from wemem_tf._keras import keras

# Records per forward pass when `accuracy` is given a Keras model.
EVAL_BATCH = 4096

LogitsFn = Callable[[np.ndarray], np.ndarray]


def logits_accuracy(logits, labels) -> float:
  """Share of rows of `logits` (n, classes) whose arg-max is the label
  `labels` (n,); NaN for no records."""
  labels = np.asarray(labels)
  if len(labels) == 0:
    return float("nan")
  return float(np.mean(np.argmax(logits, -1) == labels))


def accuracy(model_or_logits_fn: Union[keras.Model, LogitsFn], x: np.ndarray,
             y: np.ndarray, batch_size: int = EVAL_BATCH) -> float:
  """Share of records x (n, ...) whose arg-max logit is their label y (n,).

  Args:
    model_or_logits_fn: a Keras model returning logits (called with
      `training=False` on batches of `batch_size` records), or a function
      mapping x to logits (n, classes), e.g. `ModelQuery.logits` or
      `TrainingLoop.logits`.
    x, y: the records and their labels.
    batch_size: records per forward pass of a Keras model.

  Returns:
    The accuracy in [0, 1]; NaN for no records.
  """
  if len(y) == 0:
    return float("nan")
  if isinstance(model_or_logits_fn, keras.Model):
    logits = np.concatenate([
        model_or_logits_fn(x[i:i + batch_size], training=False).numpy()
        for i in range(0, len(x), batch_size)])
  else:
    logits = model_or_logits_fn(x)
  return logits_accuracy(logits, y)
