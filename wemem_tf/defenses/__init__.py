"""Defenses applied while fine-tuning during iterative pruning.

A defense is frozen configuration (`Defense` subclasses: settings declared
once, `get_config`/`from_config`); `defense.bind(records, ...)` returns a
`DefenseRun` with the per-run state. Both trainers apply it: the library's
`IterativePruner` and `model.fit` of a model from `prune_low_memorization`.
"""

from wemem_tf.defenses.advreg import AdvReg
from wemem_tf.defenses.catalog import available_defenses
from wemem_tf.defenses.catalog import BASELINE_SETTINGS
from wemem_tf.defenses.catalog import baseline_settings
from wemem_tf.defenses.catalog import build
from wemem_tf.defenses.catalog import defense_class
from wemem_tf.defenses.catalog import get_defense
from wemem_tf.defenses.catalog import register_defense
from wemem_tf.defenses.catalog import resolve
from wemem_tf.defenses.catalog import WEMEM_METHODS
from wemem_tf.defenses.defense import Defense
from wemem_tf.defenses.defense import DefenseRun
from wemem_tf.defenses.defense import TrainingRecords
from wemem_tf.defenses.dp_sgd import DPSGD
from wemem_tf.defenses.hamp import HAMP
from wemem_tf.defenses.feed import DefenseFeed
from wemem_tf.defenses.ppb import PPB
from wemem_tf.defenses.relaxloss import RelaxLoss
from wemem_tf.defenses.settings import Setting
from wemem_tf.defenses.settings import Tune
from wemem_tf.defenses.window import Order
from wemem_tf.defenses.wemem import from_preset
from wemem_tf.defenses.wemem import PRESET_RECORDS_PER_CLASS
from wemem_tf.defenses.wemem import PRESETS
from wemem_tf.defenses.wemem import RandomWindow
from wemem_tf.defenses.wemem import RMR
from wemem_tf.defenses.wemem import RSW
from wemem_tf.defenses.wemem import scaled_window
from wemem_tf.defenses.wemem import SWMR
from wemem_tf.defenses.wemem import WeMem
