"""Makes Keras 2 (`tf_keras`) the Keras that TensorFlow and TFMOT use.

TFMOT only accepts models built with Keras 2. With TensorFlow 2.15,
`tf.keras` resolves to `tf_keras` only when `TF_USE_LEGACY_KERAS=1` is set
*before* TensorFlow is first imported. This module sets it, and refuses to go
on (with instructions) when TensorFlow was already imported without it.
"""

import os
import sys

_FIX = (
    "wemem_tf needs Keras 2 (tf_keras): TensorFlow was imported before "
    "wemem_tf without TF_USE_LEGACY_KERAS=1, so tf.keras is not tf_keras and "
    "TFMOT would reject tf_keras models. Fix: `import wemem_tf` before "
    "`import tensorflow`, or set TF_USE_LEGACY_KERAS=1 in the environment "
    "before starting Python.")


def ensure_legacy_keras():
  """Sets TF_USE_LEGACY_KERAS=1 and returns the `tf_keras` module.

  Raises:
    ImportError: TensorFlow was already imported with a Keras other than
      tf_keras behind `tf.keras`.
  """
  tf_already_imported = "tensorflow" in sys.modules
  os.environ["TF_USE_LEGACY_KERAS"] = "1"
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  if tf.keras.Model is not tf_keras.Model:
    raise ImportError(_FIX if tf_already_imported else
                      "tf.keras is not tf_keras even with "
                      "TF_USE_LEGACY_KERAS=1; install tf-keras matching "
                      "TensorFlow's version (pip install 'tf-keras==2.15.1').")
  return tf_keras


keras = ensure_legacy_keras()
