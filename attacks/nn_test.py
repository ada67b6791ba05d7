"""Tests of the trained attack models (NN family, SAMIA)."""

import io

import numpy as np
import pytest

from attacks import base
from attacks import inputs
from attacks import nn
from attacks import samia
from wemem_tf import progress


def test_features():
  out = inputs.ModelOutputs.from_probs([[0.2, 0.5, 0.3]], [2],
                                       sensitivity=[[0.0, 1.0, 2.0]])
  np.testing.assert_allclose(nn.posterior_features(out), [[0.2, 0.5, 0.3]])
  np.testing.assert_allclose(nn.top3_features(out), [[0.5, 0.3, 0.2]])
  np.testing.assert_allclose(nn.posterior_label_features(out),
                             [[0.2, 0.5, 0.3, 0, 0, 1]])
  two = inputs.ModelOutputs.from_probs([[0.6, 0.4]], [0])
  np.testing.assert_allclose(nn.top3_features(two), [[0.6, 0.4, 0.0]])
  triples = samia.triples(out)
  assert triples.shape == (1, 3, 3)
  np.testing.assert_allclose(triples[0, :, 1], np.log1p([0.0, 1.0, 2.0]))
  np.testing.assert_allclose(triples[0, :, 2], [0, 0, 1])
  with pytest.raises(ValueError, match="sensitivity"):
    samia.triples(two)


def test_balanced_indices_and_split():
  rng = np.random.default_rng(0)
  is_member = np.array([True] * 30 + [False] * 10 + [True] * 5 + [False] * 20)
  group = np.array([0] * 40 + [1] * 25)
  idx = nn.balanced_indices(is_member, group, rng)
  for g in (0, 1):
    sel = idx[group[idx] == g]
    assert is_member[sel].sum() == (~is_member[sel]).sum()
  assert len(idx) == 2 * (10 + 5)
  train, dev = nn.stratified_split(is_member, idx, 0.2, rng)
  assert not np.intersect1d(train, dev).size
  assert is_member[dev].sum() == (~is_member[dev]).sum() == 3
  with pytest.raises(ValueError, match="too few shadow members"):
    nn.stratified_split(is_member, idx[:1], 0.2, rng)


def test_attack_mlp_shape():
  model = nn.attack_mlp((7,))
  assert model.output_shape == (None, 2)
  widths = [l.units for l in model.layers if hasattr(l, "units")]
  assert widths == [512, 256, 128, 2]


def _separable_data(rng, n=200, classes=5, with_sensitivity=False):
  def outs(confident):
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 6.0 if confident else 0.0
    sens = rng.uniform(0, 1, (n, classes)) if with_sensitivity else None
    return inputs.ModelOutputs.from_logits(logits, labels, sens)
  return inputs.MembershipOutputs(outs(True), outs(False))


@pytest.mark.parametrize("factory", [nn.nn, nn.nn_top3, nn.nn_cls])
def test_nn_attacks_learn_separable_shadows(factory):
  rng = np.random.default_rng(0)
  data = base.AttackerData((_separable_data(rng),))
  attack = factory(base.AttackOptions(max_epochs=6, patience=3))
  with progress.drawn_to(io.StringIO()) as stream:
    calibration = attack.fit(data)
  assert f"{attack.name} attack model" in stream.getvalue()
  assert f"{attack.fit_result.epochs_run}/6" in stream.getvalue()
  assert calibration.choose().balanced_accuracy > 0.9
  assert attack.fit_result.epochs_run <= 6
  target = _separable_data(rng)
  scores = attack.score(base.TargetQuery(target.members))
  scores_out = attack.score(base.TargetQuery(target.non_members))
  assert np.mean(scores[:, None] > scores_out[None]) > 0.9


def test_samia_learns_and_requires_sensitivity():
  rng = np.random.default_rng(1)
  options = base.AttackOptions(max_epochs=6, patience=3, samia_width=16,
                               samia_heads=2, samia_layers=1)
  data = base.AttackerData((_separable_data(rng, with_sensitivity=True),))
  attack = samia.samia(options)
  assert attack.fit(data).choose().balanced_accuracy > 0.9
  with pytest.raises(ValueError, match="sensitivity"):
    attack.score(base.TargetQuery(_separable_data(rng).members))
  with pytest.raises(ValueError, match="sensitivity"):
    samia.samia(options).check(base.AttackerData((_separable_data(rng),)))
