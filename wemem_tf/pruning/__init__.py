"""Iterative magnitude pruning on TFMOT: schedule, wrapper, trainer, export."""

from wemem_tf.pruning.callbacks import IterativePruning
from wemem_tf.pruning.export import export_tflite
from wemem_tf.pruning.export import TFLiteExport
from wemem_tf.pruning.iterative import IterationRecord
from wemem_tf.pruning.iterative import IterativePruner
from wemem_tf.pruning.iterative import pretrain
from wemem_tf.pruning.iterative import PruningRounds
from wemem_tf.pruning.iterative import PruningConfig
from wemem_tf.pruning.keras_fit import DefendedFit
from wemem_tf.pruning.pipeline import clone_with_weights
from wemem_tf.pruning.pipeline import pretrain_and_prune
from wemem_tf.pruning.pipeline import PipelineResult
from wemem_tf.pruning.pipeline import pretrain_model
from wemem_tf.pruning.pipeline import TRAINERS
from wemem_tf.pruning.prune import default_layers_to_prune
from wemem_tf.pruning.prune import layer_sparsity
from wemem_tf.pruning.prune import prune_low_memorization
from wemem_tf.pruning.prune import prune_scope
from wemem_tf.pruning.prune import pruned_wrappers
from wemem_tf.pruning.prune import strip_pruning
from wemem_tf.pruning.schedule import IterativeSparsity
from wemem_tf.pruning.schedule import sparsity_at_iteration
from wemem_tf.pruning.summaries import IterationSummaries
