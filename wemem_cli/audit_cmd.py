"""`wemem audit`: attack a trained model file exactly as it is served.

  wemem prune --dataset=location --data_dir=DIR --seed=0 --output_dir=RUN
  wemem audit --dataset=location --data_dir=DIR --seed=0 \
      --model=RUN/model.tflite --members=RUN/splits.npz --output_dir=AUDIT

--model is a `.tflite` file (run by the TFLite interpreter), an `.h5` /
`.keras` file or a SavedModel directory; it is queried once on the members
and non-members, batched. --members is the `splits.npz` of `wemem
pretrain`/`wemem prune` (then the attacker's records, shadows and reference
models are those of `wemem attack` with the same --seed, so the numbers
agree) or an `.npz` with integer arrays `member` and `non_member` (optional
`excluded`) of record indices. The attacker's shadows and reference models
are trained from the same flags as `wemem attack`'s (--architecture,
training and pruning settings, --target, and --defense with its settings
for an adaptive audit).

Writes to --output_dir what `wemem attack` writes (attacks.json with an
"audit" entry, attacks_roc.png, attack_scores.npz), audit.md (the table
and the wall times) and audit_manifest.json.
"""

import os

from absl import flags

import wemem_tf
from wemem_cli import attack_cmd
from wemem_cli import common_flags as cf
from wemem_cli import defense_flags
from wemem_cli import executor_flags
from wemem_cli import flag_utils
from wemem_cli import model_files
from wemem_eval import audit
from wemem_eval import experiment
from wemem_eval import model_store
from wemem_tf.models import served

MEMBERS = flags.DEFINE_string(
    "members", None, "Audit: who the model trained on: a splits.npz of "
    "`wemem pretrain`/`wemem prune`, or an .npz with integer arrays "
    "'member' and 'non_member' (optional 'excluded') of record indices.")
MODEL_OUTPUTS = flags.DEFINE_enum(
    "model_outputs", "auto", ["auto"] + [k.value for k in served.OutputKind],
    "Audit: what the model returns per class (auto: probabilities if every "
    "queried row is >= 0 and sums to 1, else logits).")


def _output_kind():
  value = MODEL_OUTPUTS.value
  return None if value == "auto" else served.OutputKind(value)


def main(argv) -> int:
  """Audits --model; returns 0."""
  del argv  # extra arguments are refused by the dispatcher
  if not cf.MODEL.value:
    raise ValueError("--model is required: the served model to audit "
                     "(.tflite, .h5, .keras or a SavedModel directory).")
  if not MEMBERS.value:
    raise ValueError(f"--members is required: {audit.MEMBERSHIP_FORMAT}.")
  attack_cmd.validate_flags()
  if attack_cmd.NUM_TARGETS.value != 1:
    raise ValueError("--num_targets pools victims that wemem attack / run "
                     "train themselves; an audit attacks the one --model.")
  dataset = flag_utils.load_dataset()
  membership = audit.load_membership(MEMBERS.value, dataset)
  model = served.load_served_model(
      cf.MODEL.value, trust_code=model_files.TRUST_MODEL_CODE.value)
  seed = cf.SEED.value
  output_dir = flag_utils.output_dir(dataset.name)
  with flag_utils.transaction(dataset, output_dir, seed,
                              "audit_manifest.json") as stage:
    architecture = flag_utils.architecture(dataset)
    defense = defense_flags.defense_from_flags(dataset, seed, architecture,
                                               output_dir)
    config = attack_cmd.config_from_flags(
        defense, architecture, defense_flags.attacker_defense_from_flags(
            defense, dataset, seed, architecture, output_dir))
    store = (model_store.ModelStore(attack_cmd.MODEL_STORE_DIR.value)
             if attack_cmd.MODEL_STORE_DIR.value else None)
    with executor_flags.executor_from_flags() as executor:
      result = audit.run_audit(dataset, model, membership, config, store,
                               _output_kind(), executor=executor)
    paths = experiment.write_artifacts(result, stage)
    paths["md"] = os.path.join(stage, "audit.md")
    wemem_tf.io_utils.atomic_write_bytes(paths["md"],
                                         audit.markdown(result).encode())
    paths = flag_utils.published(paths, stage, output_dir)
  print(audit.markdown(result))
  print(f"wrote {paths['json']}, {paths['roc']}, {paths['scores']}, "
        f"{paths['md']}")
  return 0
