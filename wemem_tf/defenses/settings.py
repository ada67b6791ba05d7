"""Declarations of defense settings: one per setting, everything derived.

Each defense is a frozen dataclass whose fields are its settings. A field
declared with `setting(...)` carries a `Setting`: its command-line flag, help
text, kind, valid range and, optionally, how it is tuned (`Tune`). From these
declarations, and nowhere else, come:

* validation of a configured defense (`validate`, run by every defense's
  `__post_init__`), with one-line errors that name the setting;
* the `--FLAG` definitions of the command line (`wemem_cli/defense_flags.py`);
* the tuner's search space (`wemem_eval/tuning`);
* the settings part of a defense's report (`Defense.get_config`).

Kinds:
  "float"   a real number, stored as float;
  "number"  a real number kept as given (int stays int: window sizes are
            integers in the method, fractional only in scaled rehearsals);
  "int"     an integer;
  "bool"    True / False;
  "choice"  one of `choices` (strings; an enum's values);
  "ints"    a non-empty tuple of positive integers.
"""

import dataclasses
import enum
import math
import numbers
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

KINDS = ("float", "number", "int", "bool", "choice", "ints")


@dataclasses.dataclass(frozen=True)
class Tune:
  """How the tuner searches a setting.

  Attributes:
    name: the hyperparameter's name (shared by the defenses that have the
      setting: a window's stride is one hyperparameter for RSW and SWMR).
    low, high: default search range (inclusive), for numeric settings.
    sampling: "linear" or "log".
    step: for integer searches, the grid step (None: 1).
    integer: search integers (`hp.Int`) instead of reals.
    choices: default choices of a "choice" setting (`hp.Choice`).
  """
  name: str
  low: Optional[float] = None
  high: Optional[float] = None
  sampling: str = "linear"
  step: Optional[int] = None
  integer: bool = False
  choices: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Setting:
  """One defense setting.

  Attributes:
    flag: the command-line flag (without dashes); defenses with the same
      setting share the flag.
    help: one line for --help and the docs.
    kind: one of KINDS.
    low, high: valid range (None: unbounded); `low_open`/`high_open` make a
      bound exclusive.
    choices: valid values of a "choice" setting.
    optional: None is a valid value (the setting is off / automatic).
    tune: how the tuner searches it (None: not tuned).
    flag_type: the flag's type when it differs from the kind ("int" for
      window sizes, which are integers on the command line).
    serving_only: the setting changes only what the trained model serves
      (output modification), not training: trained models are shared
      across its values (`Defense.training_config`).
  """
  flag: str
  help: str
  kind: str = "float"
  low: Optional[float] = None
  high: Optional[float] = None
  low_open: bool = False
  high_open: bool = False
  choices: Tuple[str, ...] = ()
  optional: bool = False
  tune: Optional[Tune] = None
  flag_type: Optional[str] = None
  serving_only: bool = False

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Setting {self.flag}: kind must be one of {KINDS}.")

  def range_text(self) -> str:
    """The valid range in words, e.g. "a number in (0, 1]"."""
    if self.kind == "choice":
      return f"one of {list(self.choices)}"
    if self.kind == "bool":
      return "true or false"
    if self.kind == "ints":
      return "a non-empty list of positive integers"
    noun = "an integer" if self.kind == "int" else "a finite number"
    if self.low is not None and self.high is not None:
      return (f"{noun} in {'(' if self.low_open else '['}{self.low:g}, "
              f"{self.high:g}{')' if self.high_open else ']'}")
    if self.low is not None:
      return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
    if self.high is not None:
      return f"{noun} {'<' if self.high_open else '<='} {self.high:g}"
    return noun

  def check(self, owner: str, name: str, value: Any) -> Any:
    """`value` normalized to the kind; ValueError naming the setting."""
    if value is None:
      if self.optional:
        return None
      raise ValueError(f"{owner} {name} must be {self.range_text()}, got None.")
    bad = ValueError(f"{owner} {name} (--{self.flag}) must be "
                     f"{self.range_text()}, got {value!r}.")
    if self.kind == "bool":
      if not isinstance(value, (bool, np.bool_)):
        raise bad
      return bool(value)
    if self.kind == "choice":
      value = value.value if isinstance(value, enum.Enum) else value
      if value not in self.choices:
        raise bad
      return value
    if self.kind == "ints":
      try:
        values = tuple(value)
      except TypeError:
        raise bad from None
      if not values or not all(_is_int(u) and u >= 1 for u in values):
        raise bad
      return tuple(int(u) for u in values)
    if self.kind == "int" and not _is_int(value):
      raise bad
    if not _is_real(value) or not math.isfinite(value):
      raise bad
    if self.low is not None and (value < self.low or
                                 (self.low_open and value == self.low)):
      raise bad
    if self.high is not None and (value > self.high or
                                  (self.high_open and value == self.high)):
      raise bad
    if self.kind == "float":
      return float(value)
    if self.kind == "int":
      return int(value)
    return value.item() if isinstance(value, np.generic) else value


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value,
                                                            (bool, np.bool_))


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(
      value, (bool, np.bool_))


def setting(default: Any, flag: str, help: str, **kwargs) -> Any:  # pylint: disable=redefined-builtin
  """A dataclass field declared as a defense setting (see `Setting`)."""
  return field(Setting(flag=flag, help=help, **kwargs), default)


def field(spec: Setting, default: Any) -> Any:
  """A dataclass field for the already declared setting `spec` (a class
  that changes an inherited setting's default)."""
  return dataclasses.field(default=default, metadata={"setting": spec})


def declared(cls_or_obj) -> Dict[str, Setting]:
  """{field name: Setting} of a defense class, in declaration order.

  A class may narrow the settings it exposes with a class attribute
  `EXPOSED = ("field", ...)`: the other declared fields are fixed by the
  class (e.g. RSW has no risky threshold).
  """
  cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
  found = {f.name: f.metadata["setting"] for f in dataclasses.fields(cls)
           if "setting" in f.metadata}
  exposed = getattr(cls, "EXPOSED", None)
  if exposed is None:
    return found
  return {name: found[name] for name in exposed}


def validate(obj) -> None:
  """Checks and normalizes every declared setting of a frozen defense."""
  owner = getattr(obj, "display_name", type(obj).__name__)
  cls = type(obj)
  all_settings = {f.name: f.metadata["setting"]
                  for f in dataclasses.fields(cls) if "setting" in f.metadata}
  for name, spec in all_settings.items():
    value = spec.check(owner, name, getattr(obj, name))
    object.__setattr__(obj, name, value)


def json_value(value: Any) -> Any:
  """A setting's value as JSON (enums by value, tuples as lists)."""
  if isinstance(value, enum.Enum):
    return value.value
  if isinstance(value, tuple):
    return list(value)
  return value


def tuned(classes: Sequence[type]) -> Dict[str, Tuple[Tune, Setting, Tuple[str, ...]]]:
  """{hyperparameter name: (Tune, Setting, names of the classes using it)}
  over `classes` (defense classes with a `name`), in first-declared order."""
  out: Dict[str, Any] = {}
  for cls in classes:
    for spec in declared(cls).values():
      if spec.tune is None:
        continue
      name = spec.tune.name
      if name in out:
        tune, s, users = out[name]
        out[name] = (tune, s, users + (cls.name,))
      else:
        out[name] = (spec.tune, spec, (cls.name,))
  return out
