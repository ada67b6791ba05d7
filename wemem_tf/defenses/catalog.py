"""The catalog of defenses: names → classes, and resolution of user input.

A defense is added by one module (a frozen `Defense` subclass with declared
settings and its `DefenseRun`) and one `register_defense` call. Everything
else (the CLI's flags, the tuner's search space, reports) is derived from
the registered classes' declarations (`settings.declared`).
"""

from typing import Any, Callable, Dict, List, Optional, Type, Union

from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib

_REGISTRY: Dict[str, Type[defense_lib.Defense]] = {}


def register_defense(cls: Type[defense_lib.Defense]) -> Type[defense_lib.Defense]:
  """Adds defense class `cls` under `cls.name` (usable as a decorator)."""
  name = getattr(cls, "name", None)
  if not name or name in _REGISTRY:
    raise ValueError(f"defense name {name!r} is empty or already registered.")
  if not (isinstance(cls, type) and issubclass(cls, defense_lib.Defense)):
    raise ValueError(f"register_defense takes a Defense subclass, got "
                     f"{cls!r}.")
  _REGISTRY[name] = cls
  return cls


def available_defenses() -> List[str]:
  """Registered names, in registration order ("none" first)."""
  return list(_REGISTRY)


def defense_class(name: str) -> Type[defense_lib.Defense]:
  """The class registered as `name`."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown defense {name!r}; choose one of "
                     f"{available_defenses()}.")
  return _REGISTRY[name]


def get_defense(name: str, **settings) -> defense_lib.Defense:
  """Builds the registered defense `name` with `settings`."""
  cls = defense_class(name)
  try:
    return cls(**settings)
  except TypeError as e:
    raise ValueError(f"defense {name!r}: {e}; its settings are "
                     f"{sorted(settings_lib.declared(cls))}.") from None


def resolve(defense: Union[None, str, defense_lib.Defense]
            ) -> defense_lib.Defense:
  """None / a name / a Defense instance → a Defense instance."""
  if defense is None:
    return defense_lib.Defense()
  if isinstance(defense, defense_lib.Defense):
    defense.check_ready()
    return defense
  if isinstance(defense, str):
    built = get_defense(defense)
    try:
      built.check_ready()
    except ValueError as e:
      raise ValueError(f"defense {defense!r} needs settings: {e} Pass a "
                       "configured instance, e.g. wemem_tf.defenses.RSW("
                       "scores=...).") from e
    return built
  raise ValueError(f"defense must be None, a name or a Defense, got "
                   f"{type(defense).__name__}.")


WEMEM_METHODS = ("rsw", "rmr", "swmr", "random")

# Which settings the existing defenses start from (docs/fidelity.md):
# "ours", the class defaults; "paper", the WeMem authors' scripts'
# (`Defense.PAPER_SETTINGS`).
BASELINE_SETTINGS = ("ours", "paper")


def baseline_settings(name: str, which: str = "ours") -> Dict[str, Any]:
  """The settings defense `name` starts from under `which` baseline
  settings ({} for the class defaults)."""
  if which not in BASELINE_SETTINGS:
    raise ValueError(f"baseline settings must be one of "
                     f"{list(BASELINE_SETTINGS)}, got {which!r}.")
  return dict(defense_class(name).PAPER_SETTINGS) if which == "paper" else {}


def build(name: str, dataset_name: Optional[str] = None,
          scores_fn: Optional[Callable[[], Any]] = None,
          baseline: str = "ours", records_per_class: Optional[float] = None,
          **settings) -> defense_lib.Defense:
  """A configured defense by name.

  WeMem methods start from the authors' preset for `dataset_name` when one
  exists (location, cifar10), else from the class defaults; the existing
  defenses from their `baseline` settings ("ours" or "paper"); `settings`
  override. `scores_fn` is called only when the method needs memorization
  scores (every WeMem method but "random"). `records_per_class` (the
  victim's training records per class) scales a preset's window made for
  another size of the dataset (`wemem.from_preset`; the CIFAR-10 subset).
  """
  settings = {**baseline_settings(name, baseline), **settings}
  if name in WEMEM_METHODS:
    from wemem_tf.defenses import wemem  # pylint: disable=g-import-not-at-top
    scores = (scores_fn() if name != "random" and scores_fn is not None
              else None)
    if dataset_name in wemem.PRESETS:
      return wemem.from_preset(name, dataset_name, scores, records_per_class,
                               **settings)
    return get_defense(name, scores=scores, **settings)
  return get_defense(name, **settings)


def _register_builtin() -> None:
  # pylint: disable=g-import-not-at-top
  from wemem_tf.defenses import advreg
  from wemem_tf.defenses import dp_sgd
  from wemem_tf.defenses import hamp
  from wemem_tf.defenses import ppb
  from wemem_tf.defenses import relaxloss
  from wemem_tf.defenses import wemem
  # Order: how they are listed (flags, --help) and tuned.
  for cls in (defense_lib.Defense, wemem.RSW, wemem.RMR, wemem.SWMR,
              wemem.RandomWindow, ppb.PPB, advreg.AdvReg, dp_sgd.DPSGD,
              relaxloss.RelaxLoss, hamp.HAMP):
    register_defense(cls)


_register_builtin()
