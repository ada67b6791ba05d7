"""Attack inputs from queried models: `AttackerData` and `TargetData`.

A model here is anything with a `split` (its record indices) and a compiled
`query` (`inputs.ModelQuery`): the models `wemem_eval.model_training`
trains, or the known-answer models of `attacks.testing_utils`, which are
queried exactly like real ones. Members are a model's training records,
non-members its test records; reference models are queried on their plan's
pool and population (`reference_design.ReferencePlan`).
"""

from typing import Optional, Protocol, Sequence, Tuple

import numpy as np

from attacks import base
from attacks import inputs as inputs_lib
from attacks import reference_design
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib


class QueriedModel(Protocol):
  """A model as the attacks see it: its records and its query."""
  split: splits_lib.ModelSplit
  query: inputs_lib.ModelQuery


def outputs_on(dataset: datasets.Dataset, query: inputs_lib.ModelQuery,
               record_ids: np.ndarray, with_sensitivity: bool = False,
               seed: int = 0) -> inputs_lib.ModelOutputs:
  """A model's `ModelOutputs` on dataset records `record_ids`."""
  x, y = dataset.take(np.asarray(record_ids, np.int64))
  return query.outputs(x, y, np.asarray(record_ids, np.int64),
                       with_sensitivity, seed)


def membership_outputs(dataset: datasets.Dataset, model: QueriedModel,
                       with_sensitivity: bool = False,
                       seed: int = 0) -> inputs_lib.MembershipOutputs:
  """A model's outputs on its members (train) and non-members (test)."""
  query = model.query
  return inputs_lib.MembershipOutputs(
      outputs_on(dataset, query, model.split.train, with_sensitivity, seed),
      outputs_on(dataset, query, model.split.test, with_sensitivity, seed + 1))


def reference_outputs(dataset: datasets.Dataset,
                      models: Sequence[QueriedModel],
                      plan: reference_design.ReferencePlan
                      ) -> inputs_lib.ReferenceOutputs:
  """Every reference model's outputs on the pool and the population."""
  if len(models) != plan.num_models:
    raise ValueError(f"{len(models)} reference models for a plan of "
                     f"{plan.num_models}.")
  outputs, population = [], []
  for model in models:
    query = model.query
    outputs.append(outputs_on(dataset, query, plan.pool))
    population.append(outputs_on(dataset, query, plan.population))
  return inputs_lib.ReferenceOutputs(plan.pool, plan.in_mask, tuple(outputs),
                                     tuple(population))


def target_data(dataset: datasets.Dataset, victim: QueriedModel,
                population: Optional[np.ndarray] = None,
                with_sensitivity: bool = False,
                seed: int = 0) -> base.TargetData:
  """The victim's outputs on its members, non-members and population."""
  members = membership_outputs(dataset, victim, with_sensitivity, seed)
  pop = None if population is None else outputs_on(dataset, victim.query,
                                                   population)
  return base.TargetData(members.members, members.non_members, pop)


def attacker_data(dataset: datasets.Dataset, shadows: Sequence[QueriedModel],
                  reference: Optional[Tuple[Sequence[QueriedModel],
                                            reference_design.ReferencePlan]
                                      ] = None,
                  with_sensitivity: bool = False,
                  seed: int = 0) -> base.AttackerData:
  """`AttackerData` from the shadow and (optional) reference models."""
  shadow_outputs = tuple(
      membership_outputs(dataset, s, with_sensitivity, seed + 10 * i)
      for i, s in enumerate(shadows))
  ref = None if reference is None else reference_outputs(dataset, *reference)
  return base.AttackerData(shadow_outputs, ref)
