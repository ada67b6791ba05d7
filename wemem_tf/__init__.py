"""wemem_tf: iterative pruning with defenses against membership inference.

Importing this package makes Keras 2 (`tf_keras`) the Keras behind
`tf.keras` (TFMOT requires it); build models with `wemem_tf.keras`.
"""

from wemem_tf._keras import keras  # first: sets TF_USE_LEGACY_KERAS=1

# pylint: disable=g-import-not-at-top,g-bad-import-order
from wemem_tf import data
from wemem_tf import defenses
from wemem_tf import models
from wemem_tf import pruning
from wemem_tf import training
from wemem_tf import io_utils
from wemem_tf import memorization
from wemem_tf import run_manifest
from wemem_tf.pruning import export_tflite
from wemem_tf.pruning import IterationSummaries
from wemem_tf.pruning import IterativePruner
from wemem_tf.pruning import IterativePruning
from wemem_tf.pruning import IterativeSparsity
from wemem_tf.pruning import pretrain
from wemem_tf.pruning import pretrain_and_prune
from wemem_tf.pruning import prune_low_memorization
from wemem_tf.pruning import prune_scope
from wemem_tf.pruning import PruningConfig
from wemem_tf.pruning import strip_pruning
from wemem_tf.training import TrainConfig

__version__ = "0.1.0"
