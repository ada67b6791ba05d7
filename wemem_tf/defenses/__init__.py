"""Defenses applied while fine-tuning during iterative pruning."""

from wemem_tf.defenses.base import Defense
from wemem_tf.defenses.base import TrainingRecords
from wemem_tf.defenses.registry import available_defenses
from wemem_tf.defenses.registry import get_defense
from wemem_tf.defenses.registry import register_defense
from wemem_tf.defenses.registry import resolve
