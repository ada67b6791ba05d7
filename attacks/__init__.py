"""Adaptive membership-inference attacks on tensorflow-privacy result types.

Importing `attacks` imports `wemem_tf` first (Keras 2 behind tf.keras).
"""

import wemem_tf  # pylint: disable=unused-import  (must precede TensorFlow)

# pylint: disable=g-import-not-at-top,g-bad-import-order
from attacks.base import Attack
from attacks.base import AttackerData
from attacks.base import AttackOptions
from attacks.base import Calibration
from attacks.base import TargetData
from attacks.base import TargetQuery
from attacks.experiment import ExperimentConfig
from attacks.experiment import run_experiment
from attacks.experiment import write_artifacts
from attacks.inputs import MembershipOutputs
from attacks.inputs import ModelOutputs
from attacks.inputs import ModelQuery
from attacks.inputs import query_model
from attacks.inputs import ReferenceOutputs
from attacks.metrics import AttackResult
from attacks.metrics import to_attack_results
from attacks.registry import attack_names
from attacks.registry import make_attack
from attacks.registry import parse_attack_names
from attacks.registry import register_attack
from attacks.shadows import ModelRecipe
from attacks.suite import run_attack
from attacks.suite import run_attacks
from attacks.suite import SuiteResult
