"""Adaptive membership-inference attacks on tensorflow-privacy result types.

Attacks (registry names): conf, entr, mentr, hconf (threshold), nn, nn_top3,
nn_cls (MLP), samia (transformer), lira_online, lira_offline, gap (label
only), rmia. Typical use:

  plan = attacks.reference_design.plan_for(splits, num_models, seed)
  attacker = attacks.querying.attacker_data(dataset, shadow_models,
                                            (reference_models, plan))
  target = attacks.querying.target_data(dataset, victim, plan.population)
  result = attacks.run_attacks(attacks.attack_names(), attacker, target)
  result.attack_results().summary()   # tensorflow-privacy AttackResults

with models that have a `split` and a `query` (`querying.QueriedModel`).
Training the victim, shadows and reference models is `wemem_eval`'s
(`wemem_eval.run_experiment`); this package trains only attack models.
Thresholds and attack models are fitted on the attacker's own models only;
the victim's members and non-members are used only for evaluation.

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
from attacks.inputs import MembershipOutputs
from attacks.inputs import ModelOutputs
from attacks.inputs import ModelQuery
from attacks.inputs import query_model
from attacks.inputs import ReferenceOutputs
from attacks.metrics import AttackResult
from attacks.metrics import to_attack_results
from attacks import querying
from attacks import reference_design
from attacks.reference_design import ReferencePlan
from attacks.registry import attack_names
from attacks.registry import make_attack
from attacks.registry import parse_attack_names
from attacks.registry import register_attack
from attacks.suite import run_attack
from attacks.suite import run_attacks
from attacks.suite import SuiteResult
