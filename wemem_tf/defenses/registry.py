"""Defense names → defense classes, and resolution of user arguments."""

from typing import Any, Callable, Dict, Optional, Union

from wemem_tf.defenses import base

_REGISTRY: Dict[str, Callable[..., base.Defense]] = {"none": base.Defense}


def register_defense(name: str, factory: Callable[..., base.Defense]) -> None:
  """Makes `factory(**settings)` available as defense `name`."""
  if not name or name in _REGISTRY:
    raise ValueError(f"defense name {name!r} is empty or already registered.")
  _REGISTRY[name] = factory


def available_defenses():
  return sorted(_REGISTRY)


def get_defense(name: str, **settings) -> base.Defense:
  """Builds the registered defense `name` with `settings`."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown defense {name!r}; choose one of "
                     f"{available_defenses()}.")
  return _REGISTRY[name](**settings)


def resolve(defense: Union[None, str, base.Defense]) -> base.Defense:
  """None / a name / a Defense instance → a Defense instance."""
  if defense is None:
    return base.Defense()
  if isinstance(defense, base.Defense):
    defense.check_ready()
    return defense
  if isinstance(defense, str):
    try:
      built = get_defense(defense)
      built.check_ready()
      return built
    except (TypeError, ValueError) as e:
      if "unknown defense" in str(e):
        raise
      raise ValueError(f"defense {defense!r} needs settings: {e} Pass a "
                       "configured instance, e.g. wemem_tf.defenses.RSW("
                       "scores=...).") from e
  raise ValueError(f"defense must be None, a name or a Defense, got "
                   f"{type(defense).__name__}.")


WEMEM_METHODS = ("rsw", "rmr", "swmr", "random")


def build(name: str, dataset_name: Optional[str] = None,
          scores_fn: Optional[Callable[[], Any]] = None,
          **settings) -> base.Defense:
  """A configured defense by name.

  WeMem methods start from the authors' preset for `dataset_name` when one
  exists (location, cifar10), else from the class defaults; `settings`
  override. `scores_fn` is called only when the method needs memorization
  scores (every WeMem method but "random").
  """
  if name == "none":
    return base.Defense()
  if name in WEMEM_METHODS:
    from wemem_tf.defenses import wemem  # pylint: disable=g-import-not-at-top
    scores = (scores_fn() if name != "random" and scores_fn is not None
              else None)
    if dataset_name in wemem.PRESETS:
      return wemem.from_preset(name, dataset_name, scores, **settings)
    return get_defense(name, scores=scores, **settings)
  return get_defense(name, **settings)


def _register_builtin():
  from wemem_tf.defenses import wemem  # pylint: disable=g-import-not-at-top
  for name, cls in wemem.METHODS.items():
    _REGISTRY[name] = cls


_register_builtin()
