"""Auditing a model that is already trained and served (docs/method.md §1).

The model under audit is a file as deployed (`.tflite`, `.h5`/`.keras`, a
SavedModel; `wemem_tf.models.served`) or a Keras model in memory. It is
queried once on its members and non-members, batched; the attacker's
shadow and reference models are trained from a `ModelRecipe` exactly as
`wemem attack` trains them (with the victim's defense for an adaptive
audit), and the same attacks run.

Who the members are comes from a `Membership`:

* a `splits.npz` that `wemem pretrain`/`wemem prune` wrote
  (`load_membership`): members are the victim's training records,
  non-members its test records, its dev records are kept from the attacker.
  The splits are the protocol's for their seed (docs/method.md §2), so the
  attacker's records, shadows and reference models are exactly those of
  `wemem attack` with that seed: auditing the exported model reproduces
  `wemem attack`'s numbers.
* an `.npz` with integer arrays `member` and `non_member` (optionally
  `excluded`: other records the model saw): the attacker gets every other
  record (`splits.audit_splits`).
"""

import dataclasses
import time
from typing import Optional, Union

import numpy as np

from attacks import inputs as inputs_lib
from wemem_eval import experiment
from wemem_eval import model_store
from wemem_eval import model_training
from wemem_tf import io_utils
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import evaluate
from wemem_tf.models import served as served_lib

MEMBERSHIP_FORMAT = ("a splits.npz written by `wemem pretrain`/`wemem prune`, "
                     "or an .npz with integer arrays 'member' and "
                     "'non_member' (optional 'excluded') of record indices")


@dataclasses.dataclass(frozen=True, eq=False)
class Membership:
  """Which records the audited model trained on.

  Attributes:
    members: int64 (m,) record indices the model trained on.
    non_members: int64 (k,) records it never saw (the audit's negatives).
    excluded: int64 records it saw otherwise (e.g. early-stopping dev
      records): neither audited nor given to the attacker.
    splits: the protocol splits the membership came from (a splits.npz),
      or None for plain index arrays.
  """
  members: np.ndarray
  non_members: np.ndarray
  excluded: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(0, np.int64))
  splits: Optional[splits_lib.Splits] = None

  @classmethod
  def from_splits(cls, splits: splits_lib.Splits) -> "Membership":
    victim = splits.victim
    return cls(victim.train, victim.test, victim.dev, splits)


def load_membership(path: str, dataset: datasets.Dataset) -> Membership:
  """Reads a `Membership` from `path` (see the module docstring).

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: neither format, another dataset's splits, or bad indices.
  """
  arrays = io_utils.load_npz(path)  # no pickle; clear errors
  if "meta" in arrays:
    splits = splits_lib.Splits.load(path, dataset.fingerprint)
    return Membership.from_splits(splits)
  missing = [k for k in ("member", "non_member") if k not in arrays]
  if missing:
    raise ValueError(f"--members file {path!r} has arrays {sorted(arrays)}; "
                     f"expected {MEMBERSHIP_FORMAT}.")
  excluded = arrays.get("excluded", np.zeros(0, np.int64))
  return Membership(arrays["member"], arrays["non_member"], excluded)


def audit_splits(dataset: datasets.Dataset, membership: Membership,
                 seed: int, num_shadows: int,
                 config: splits_lib.SplitConfig = splits_lib.SplitConfig()
                 ) -> splits_lib.Splits:
  """The experiment's splits: the protocol's for a splits file (checked to
  reproduce its victim; cut as the file records, stratified or not), else
  `splits_lib.audit_splits` around the membership (cut as `config` says),
  with `num_shadows` shadows."""
  if membership.splits is not None:
    given = membership.splits
    protocol = splits_lib.splits_for(
        dataset, given.seed, num_shadows,
        dataclasses.replace(config, stratified=given.stratified))
    same = all(np.array_equal(getattr(protocol.victim, p),
                              getattr(given.victim, p))
               for p in ("train", "dev", "test"))
    if not same:
      raise ValueError(
          "the splits file's victim split is not the protocol's for its seed "
          f"{given.seed}; pass an .npz with 'member' and 'non_member' arrays "
          "instead.")
    return protocol
  return splits_lib.audit_splits(
      len(dataset), dataset.fingerprint, seed, membership.members,
      membership.non_members, num_shadows, membership.excluded,
      dataset.heldout_mask, config, dataset.y)


def served_victim(dataset: datasets.Dataset, query: inputs_lib.ServedQuery,
                  split: splits_lib.ModelSplit,
                  seed: int) -> model_training.TrainedModel:
  """The audited model as the experiments' victim (no training facts)."""
  accuracy = lambda ids: evaluate.accuracy(query.predict, *dataset.take(ids))
  facts = {"served": {"path": query.model.path, "format": query.model.format,
                      "fixed_batch_size": query.model.fixed_batch_size}}
  victim = model_training.TrainedModel(
      None, split, seed, 0.0, accuracy(split.test), accuracy(split.train),
      facts, query)
  facts["served"]["output_kind"] = query.output_kind.value
  return victim


ServedLike = Union[str, keras.Model, served_lib.ServedModel]


def _served(model: ServedLike, trust_code: bool) -> served_lib.ServedModel:
  if isinstance(model, served_lib.ServedModel):
    return model
  if isinstance(model, keras.Model):
    return served_lib.from_keras(model)
  return served_lib.load_served_model(model, trust_code=trust_code)


def run_audit(dataset: datasets.Dataset, model: ServedLike,
              membership: Union[Membership, str],
              config: experiment.ExperimentConfig,
              store: Optional[model_store.ModelStore] = None,
              output_kind: Optional[served_lib.OutputKind] = None,
              trust_code: bool = False,
              executor=None) -> experiment.ExperimentResult:
  """Audits a served model: trains the attacker's models, runs the attacks.

  Args:
    dataset: the data the model was trained on (`Dataset`).
    model: a served model file path, a tf_keras model or a `ServedModel`.
    membership: a `Membership` or the path of a membership file.
    config: the attacker's recipe (architecture, training, pruning,
      defense for an adaptive audit), attacks, shadows and reference models;
      `config.recipe.target` says whether the attacker's models are pruned.
    store: caches the attacker's models.
    output_kind: the model's outputs (None: detected from its answers).
    trust_code: load files that name Python code (files you wrote).
    executor: where the attacker's models train (`wemem_eval.executor`).

  Returns:
    An `ExperimentResult` (`experiment.write_artifacts` writes it); its
    timing has "victim_querying" (opening and first query of the model),
    "shadow_training", "reference_training", "querying" and "attacks".
  """
  if isinstance(membership, str):
    membership = load_membership(membership, dataset)
  start = time.perf_counter()
  served = _served(model, trust_code)
  if (tuple(served.input_shape) != tuple(dataset.input_shape)
      or served.num_classes != dataset.num_classes):
    raise ValueError(
        f"the model {served.describe()} maps inputs {served.input_shape} to "
        f"{served.num_classes} outputs; dataset {dataset.name} has inputs "
        f"{dataset.input_shape} and {dataset.num_classes} classes.")
  splits = audit_splits(dataset, membership, config.seed, config.num_shadows,
                        config.split)
  query = inputs_lib.ServedQuery(served, output_kind)
  victim = served_victim(dataset, query, splits.victim,
                         model_training.victim_seed(config.seed))
  opened = time.perf_counter() - start
  result = experiment.run_experiment(dataset, config, store, splits, victim,
                                     executor)
  result.timing["victim_querying"] = opened
  result.timing.pop("victim_training", None)
  result.timing["total"] += opened
  result.notes["audit"] = dict(victim.facts["served"],
                               membership=describe_membership(membership))
  return result


def describe_membership(membership: Membership) -> dict:
  """JSON-ready summary of a membership (counts, source)."""
  return {"members": int(membership.members.size),
          "non_members": int(membership.non_members.size),
          "excluded": int(membership.excluded.size),
          "source": ("splits" if membership.splits is not None
                     else "indices"),
          "splits_seed": (None if membership.splits is None
                          else membership.splits.seed)}


def markdown(result: experiment.ExperimentResult) -> str:
  """audit.md: the audited model, its membership, the attack table and the
  wall times."""
  facts = result.notes["audit"]
  members = facts["membership"]
  timing = result.timing
  lines = [
      f"# Audit of {facts['path'] or 'a Keras model'} ({facts['format']}, "
      f"{facts['output_kind']})",
      "",
      f"Dataset {result.dataset}; {members['members']} members, "
      f"{members['non_members']} non-members (from "
      f"{members['source']}); accuracy {100 * result.victim.train_accuracy:.2f}"
      f"% on members, {100 * result.victim.test_accuracy:.2f}% on "
      "non-members.",
      f"Attacker: {len(result.shadow_models)} shadows, "
      f"{len(result.reference_models)} reference models, "
      f"{'adaptive' if result.config.adaptive else 'non-adaptive'}, "
      f"target {result.config.recipe.target}, seed {result.config.seed}.",
      "",
      "```",
      result.suite.table(),
      "```",
      "",
      "| stage | seconds |",
      "|---|---:|",
  ]
  for key in ("victim_querying", "shadow_training", "reference_training",
              "querying", "attacks", "total"):
    if key in timing:
      lines.append(f"| {key.replace('_', ' ')} | {timing[key]:.1f} |")
  return "\n".join(lines) + "\n"
