"""`prune_low_memorization`: TFMOT magnitude pruning with WeMem defenses.

A drop-in sibling of `tfmot.sparsity.keras.prune_low_magnitude`: same
argument names where they apply, the same `PruneLowMagnitude` wrappers (so
`strip_pruning`, `UpdatePruningStep` and TFLite export work unchanged), plus
a choice of layers and a `defense` that the iterative trainer applies.
"""

from typing import Callable, List, Optional, Sequence, Union

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from wemem_tf._keras import keras
from wemem_tf.defenses import catalog as defense_catalog
from wemem_tf.pruning import schedule as schedule_lib

PRUNABLE_TYPES = (keras.layers.Dense, keras.layers.Conv1D,
                  keras.layers.Conv2D, keras.layers.Conv3D)

LayerSelector = Union[None, Sequence[str], Callable[[keras.layers.Layer], bool]]


def check_model(model) -> None:
  """Raises ValueError unless `model` is a built Sequential/functional tf_keras model."""
  if not isinstance(model, keras.Model):
    raise ValueError(
        f"expected a tf_keras Model, got {type(model).__name__}. Build models "
        "with `wemem_tf.keras` (tf_keras), not `keras` 3.")
  if not (isinstance(model, keras.Sequential)
          or getattr(model, "_is_graph_network", False)):
    raise ValueError(
        f"model {model.name!r} is a subclassed model; prune_low_memorization "
        "(like prune_low_magnitude) needs a Sequential or functional model. "
        "Rebuild it with keras.Sequential or the functional API.")
  if not model.built:
    raise ValueError(f"model {model.name!r} is not built; give it an input "
                     "shape first.")


def classifier_layer_names(model: keras.Model) -> List[str]:
  """Names of the last Dense/Conv layer (the classifier) of `model`."""
  weighted = [l for l in model.layers if isinstance(l, PRUNABLE_TYPES)
              or (isinstance(l, pruning_wrapper.PruneLowMagnitude))]
  if not weighted:
    return []
  last = weighted[-1]
  return [last.layer.name if isinstance(last, pruning_wrapper.PruneLowMagnitude)
          else last.name]


def default_layers_to_prune(model: keras.Model) -> List[str]:
  """Every Dense/Conv layer except the final classifier (docs/method.md §3)."""
  skip = set(classifier_layer_names(model))
  return [l.name for l in model.layers
          if isinstance(l, PRUNABLE_TYPES) and l.name not in skip]


def _selected_names(model: keras.Model, layers_to_prune: LayerSelector) -> List[str]:
  if layers_to_prune is None:
    names = default_layers_to_prune(model)
  elif callable(layers_to_prune):
    names = [l.name for l in model.layers if layers_to_prune(l)]
  else:
    names = list(layers_to_prune)
    known = {l.name for l in model.layers}
    unknown = sorted(set(names) - known)
    if unknown:
      raise ValueError(f"layers_to_prune names {unknown} that are not layers "
                       f"of {model.name!r}; its layers are {sorted(known)}.")
  by_name = {l.name: l for l in model.layers}
  bad = [n for n in names if not isinstance(by_name[n], PRUNABLE_TYPES)]
  if bad:
    raise ValueError(f"layers {bad} cannot be pruned: only Dense and Conv "
                     "layers are supported.")
  if not names:
    raise ValueError(f"no layer of {model.name!r} is selected for pruning; "
                     "it needs a Dense or Conv layer besides the classifier, or"
                     " pass layers_to_prune.")
  return names


def prune_low_memorization(
    to_prune: keras.Model,
    pruning_schedule: Optional[schedule_lib.IterativeSparsity] = None,
    *,
    layers_to_prune: LayerSelector = None,
    defense=None,
    block_size=(1, 1),
    block_pooling_type: str = "AVG",
) -> keras.Model:
  """Wraps the chosen layers of `to_prune` for iterative magnitude pruning.

  Args:
    to_prune: a built Sequential or functional tf_keras model (logit outputs).
    pruning_schedule: an `IterativeSparsity` (default: s = 0.6, 5 iterations)
      or any TFMOT `PruningSchedule`.
    layers_to_prune: None (every Dense/Conv layer except the last one, the
      classifier), a list of layer names, or a predicate on layers.
    defense: the defense the iterative trainer applies while fine-tuning:
      None (no defense), a registered name with default settings, or a
      configured `wemem_tf.defenses.Defense` (e.g. `RSW(scores=...)`).
    block_size, block_pooling_type: as in `prune_low_magnitude`.

  Returns:
    A new model sharing weights with `to_prune`, whose selected layers are
    TFMOT `PruneLowMagnitude` wrappers. Its `wemem_defense` attribute holds
    the resolved `Defense`, which both trainers apply: `IterativePruner`
    (the library's compiled loop) and the model's own `fit`, which runs
    the schedule's rounds and the defense (see `wemem_tf.pruning.keras_fit`).

  Raises:
    ValueError: bad model, layer selection, schedule or defense.
  """
  check_model(to_prune)
  if pruning_schedule is None:
    pruning_schedule = schedule_lib.IterativeSparsity(0.6, 5)
  if not isinstance(pruning_schedule, tfmot.sparsity.keras.PruningSchedule):
    raise ValueError("pruning_schedule must be a tfmot PruningSchedule such as "
                     f"IterativeSparsity, got {type(pruning_schedule).__name__}.")
  defense = defense_catalog.resolve(defense)
  if any(isinstance(l, pruning_wrapper.PruneLowMagnitude)
         for l in to_prune.layers):
    raise ValueError(f"model {to_prune.name!r} is already pruned; call "
                     "strip_pruning first.")
  names = set(_selected_names(to_prune, layers_to_prune))

  def wrap(layer):
    if layer.name in names:
      return tfmot.sparsity.keras.prune_low_magnitude(
          layer, pruning_schedule=pruning_schedule, block_size=block_size,
          block_pooling_type=block_pooling_type)
    return layer

  pruned = keras.models.clone_model(to_prune, clone_function=wrap)
  pruned.wemem_defense = defense
  from wemem_tf.pruning import keras_fit  # pylint: disable=g-import-not-at-top  (cycle)
  keras_fit.install(pruned)
  return pruned


def pruned_wrappers(model: keras.Model) -> List[pruning_wrapper.PruneLowMagnitude]:
  """The model's `PruneLowMagnitude` wrappers, in layer order."""
  return [l for l in model.layers
          if isinstance(l, pruning_wrapper.PruneLowMagnitude)]


def strip_pruning(model: keras.Model, serve: bool = True) -> keras.Model:
  """Removes pruning wrappers (masks already applied to the kernels).

  Args:
    model: a pruned model.
    serve: after the model's own `fit` with a defense that modifies what
      is served (HAMP), return the model as served (output modification
      around the stripped model); False: the stripped model itself.
  """
  check_model(model)
  for wrapper in pruned_wrappers(model):
    wrapper.pruning_obj.weight_mask_op()
  stripped = tfmot.sparsity.keras.strip_pruning(model)
  fitted = getattr(model, "wemem_fit", None)
  if serve and fitted is not None and fitted.run.modifies_output:
    return fitted.run.inference_model(stripped)
  return stripped


def prune_scope():
  """Custom-object scope for loading saved pruned models (as TFMOT's)."""
  return keras.utils.custom_object_scope({
      "PruneLowMagnitude": pruning_wrapper.PruneLowMagnitude,
      "IterativeSparsity": schedule_lib.IterativeSparsity})


def layer_sparsity(model: keras.Model) -> dict:
  """{layer name: fraction of zero kernel weights} for Dense/Conv layers.

  Wrapped layers are reported by their inner layer's name, with the mask
  applied.
  """
  result = {}
  for layer in model.layers:
    inner = layer.layer if isinstance(layer, pruning_wrapper.PruneLowMagnitude) else layer
    if isinstance(inner, PRUNABLE_TYPES):
      kernel = inner.kernel.numpy()
      if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
        kernel = kernel * layer.pruning_vars[0][1].numpy()
      result[inner.name] = float((kernel == 0).mean())
  return result
