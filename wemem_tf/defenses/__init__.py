"""Defenses applied while fine-tuning during iterative pruning."""

from wemem_tf.defenses.base import Defense
from wemem_tf.defenses.keras_fit import DefenseFeed
from wemem_tf.defenses.base import TrainingRecords
from wemem_tf.defenses.existing import AdvReg
from wemem_tf.defenses.existing import DPSGD
from wemem_tf.defenses.existing import HAMP
from wemem_tf.defenses.existing import PPB
from wemem_tf.defenses.existing import RelaxLoss
from wemem_tf.defenses.registry import available_defenses
from wemem_tf.defenses.registry import build
from wemem_tf.defenses.registry import WEMEM_METHODS
from wemem_tf.defenses.registry import get_defense
from wemem_tf.defenses.registry import register_defense
from wemem_tf.defenses.registry import resolve
from wemem_tf.defenses.window import Order
from wemem_tf.defenses.wemem import from_preset
from wemem_tf.defenses.wemem import PRESETS
from wemem_tf.defenses.wemem import RandomWindow
from wemem_tf.defenses.wemem import RMR
from wemem_tf.defenses.wemem import RSW
from wemem_tf.defenses.wemem import SWMR
from wemem_tf.defenses.wemem import WeMem
