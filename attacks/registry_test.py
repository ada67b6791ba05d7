"""Tests of the attack registry."""

import pytest

from attacks import base
from attacks import registry

PAPER_AND_RMIA = ["conf", "entr", "mentr", "hconf", "nn", "nn_top3", "nn_cls",
                  "samia", "lira_online", "lira_offline", "gap", "rmia"]


def test_names_and_factories():
  assert registry.attack_names() == PAPER_AND_RMIA
  for name in PAPER_AND_RMIA:
    attack = registry.make_attack(name)
    assert isinstance(attack, base.Attack) and attack.name == name
    assert str(attack.attack_type) == name.upper()
  assert registry.make_attack("nn").attack_type.is_trained_attack
  assert not registry.make_attack("conf").attack_type.is_trained_attack


def test_parse():
  assert registry.parse_attack_names("all") == PAPER_AND_RMIA
  assert registry.parse_attack_names(" Conf, nn,conf ") == ["conf", "nn"]
  assert registry.parse_attack_names(["gap"]) == ["gap"]
  with pytest.raises(ValueError, match="unknown attack"):
    registry.parse_attack_names("conf,bogus")
  with pytest.raises(ValueError, match="no attack named"):
    registry.parse_attack_names(" , ")
  with pytest.raises(ValueError, match="unknown attack 'x'"):
    registry.make_attack("x")


class _Loss(base.Attack):
  name = "loss"

  def fit(self, data):
    outputs, is_member, _ = data.pooled_shadows()
    loss = outputs.loss()
    return base.Calibration(-loss[is_member], -loss[~is_member])

  def score(self, query):
    return -query.records.loss()


def test_register_attack():
  registry.register_attack("loss", _Loss)
  try:
    assert "loss" in registry.attack_names()
    assert isinstance(registry.make_attack("loss"), _Loss)
    with pytest.raises(ValueError, match="already registered"):
      registry.register_attack("loss", _Loss)
    registry.register_attack("loss", _Loss, overwrite=True)
  finally:
    registry.unregister_attack("loss")
  assert "loss" not in registry.attack_names()
  for bad in ("Loss", "a-b", "", "all"):
    with pytest.raises(ValueError):
      registry.register_attack(bad, _Loss)
  registry.register_attack("broken", lambda options: object())
  try:
    with pytest.raises(ValueError, match="not an Attack"):
      registry.make_attack("broken")
  finally:
    registry.unregister_attack("broken")
