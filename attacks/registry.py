"""Attack names → factories; `register_attack` adds one.

A factory takes `AttackOptions` and returns a fresh, unfitted `Attack`.
"""

from typing import Callable, Dict, List, Sequence, Union

from attacks import base
from attacks import gap
from attacks import lira
from attacks import nn
from attacks import rmia
from attacks import samia
from attacks import threshold

Factory = Callable[[base.AttackOptions], base.Attack]

# The paper's ten adaptive attacks (docs/method.md §7) and RMIA, in report order.
_ATTACKS: Dict[str, Factory] = {
    "conf": threshold.conf,
    "entr": threshold.entr,
    "mentr": threshold.mentr,
    "hconf": threshold.hconf,
    "nn": nn.nn,
    "nn_top3": nn.nn_top3,
    "nn_cls": nn.nn_cls,
    "samia": samia.samia,
    "lira_online": lira.lira_online,
    "lira_offline": lira.lira_offline,
    "gap": gap.gap,
    "rmia": rmia.rmia,
}


def attack_names() -> List[str]:
  """Registered names, in registration order."""
  return list(_ATTACKS)


def register_attack(name: str, factory: Factory,
                    overwrite: bool = False) -> None:
  """Adds `factory` under `name` (lower-case letters, digits, "_")."""
  if not name or not all(ch.isalnum() or ch == "_" for ch in name) or (
      name != name.lower()):
    raise ValueError(f"attack names are lower-case letters, digits and '_'; "
                     f"got {name!r}.")
  if name == "all":
    raise ValueError("'all' is reserved (it selects every attack).")
  if not callable(factory):
    raise ValueError(f"factory for {name!r} must be callable.")
  if name in _ATTACKS and not overwrite:
    raise ValueError(f"attack {name!r} is already registered; pass "
                     "overwrite=True to replace it.")
  _ATTACKS[name] = factory


def unregister_attack(name: str) -> None:
  """Removes `name` (KeyError if absent)."""
  del _ATTACKS[name]


def make_attack(name: str,
                options: base.AttackOptions = base.AttackOptions()
                ) -> base.Attack:
  """A fresh attack by registry name."""
  if name not in _ATTACKS:
    raise ValueError(f"unknown attack {name!r}; choose from "
                     f"{', '.join(_ATTACKS)} (or 'all').")
  attack = _ATTACKS[name](options)
  if not isinstance(attack, base.Attack):
    raise ValueError(f"factory of {name!r} returned "
                     f"{type(attack).__name__}, not an Attack.")
  attack.name = name
  return attack


def parse_attack_names(spec: Union[str, Sequence[str]]) -> List[str]:
  """"all", "conf,nn" or a list → validated names, duplicates dropped."""
  if isinstance(spec, str):
    parts = [p.strip().lower() for p in spec.split(",") if p.strip()]
  else:
    parts = [str(p).strip().lower() for p in spec]
  if not parts:
    raise ValueError("no attack named; pass 'all' or a comma list of "
                     f"{', '.join(_ATTACKS)}.")
  if "all" in parts:
    return attack_names()
  unknown = [p for p in parts if p not in _ATTACKS]
  if unknown:
    raise ValueError(f"unknown attack(s) {unknown}; choose from "
                     f"{', '.join(_ATTACKS)} (or 'all').")
  return list(dict.fromkeys(parts))
