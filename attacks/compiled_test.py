"""Tests of the reused attack-model trainers."""

import numpy as np
import pytest
import tensorflow as tf

from attacks import base
from attacks import compiled
from attacks import inputs
from attacks import nn
from attacks import samia
from wemem_tf._keras import keras


def test_generator_dropout_semantics_and_reset():
  layer = compiled.GeneratorDropout(0.25)
  x = tf.ones((400, 50))
  np.testing.assert_array_equal(layer(x, training=False), x)
  step = tf.function(lambda v: layer(v, training=True))
  layer.reset(7)
  first = step(x).numpy()
  kept = first != 0
  assert abs(kept.mean() - 0.75) < 0.01
  np.testing.assert_allclose(first[kept], 1 / 0.75, rtol=1e-6)
  second = step(x).numpy()
  assert (second != first).any()  # the stream advances between calls
  layer.reset(7)  # and rewinds, also through the compiled function
  np.testing.assert_array_equal(step(x).numpy(), first)
  with pytest.raises(ValueError, match="dropout rate"):
    compiled.GeneratorDropout(1.0)


def test_attack_models_draw_dropout_only_from_resettable_layers():
  model = samia.samia_model((5, 3), width=8, heads=2, num_layers=2)
  # Two blocks: attention weights, attention output, feed-forward hidden and
  # output dropout each.
  assert len(compiled.dropout_layers(model)) == 8
  assert not [l for l in model.submodules
              if isinstance(l, keras.layers.Dropout)]
  assert len(compiled.dropout_layers(nn.attack_mlp((4,)))) == 3


def _data(seed, n=120, classes=4):
  rng = np.random.default_rng(seed)

  def outs(member):
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 3.0 if member else 0.0
    return inputs.ModelOutputs.from_logits(
        logits, labels, rng.gamma(1.0, 0.5, (n, classes)))
  return inputs.MembershipOutputs(outs(True), outs(False))


OPTIONS = base.AttackOptions(max_epochs=3, patience=3, batch_size=32,
                             samia_width=8, samia_heads=2, samia_layers=1,
                             seed=5)


@pytest.mark.parametrize("factory", [nn.nn_cls, samia.samia])
def test_a_fit_does_not_depend_on_earlier_fits(factory):
  """Fitting A, then B, then A again on a reused trainer gives exactly the
  scores of A fitted on a freshly built one."""
  first, second = _data(1), _data(2)
  query = base.TargetQuery(_data(3).members)
  trainers = compiled.TRAINERS
  trainers.clear()
  builds = trainers.builds

  def fit_and_score(data):
    attack = factory(OPTIONS)
    calibration = attack.fit(base.AttackerData((data,)))
    return attack, calibration, attack.score(query)

  _, cal_a, scores_a = fit_and_score(first)
  _, _, scores_b = fit_and_score(second)
  _, cal_again, scores_again = fit_and_score(first)
  assert trainers.builds == builds + 1  # one build, reused twice
  assert not np.array_equal(scores_a, scores_b)
  np.testing.assert_array_equal(scores_again, scores_a)
  np.testing.assert_array_equal(cal_again.member_scores, cal_a.member_scores)
  trainers.clear()  # a fresh build gives the same numbers
  np.testing.assert_array_equal(fit_and_score(first)[2], scores_a)
  assert trainers.builds == builds + 2


def test_attacks_sharing_a_trainer_score_with_their_own_model():
  query = base.TargetQuery(_data(3).members)
  one = nn.nn(OPTIONS)
  one.fit(base.AttackerData((_data(1),)))
  scores_one = one.score(query)
  other = nn.nn(OPTIONS)
  other.fit(base.AttackerData((_data(2),)))
  assert one.loop is other.loop  # the same compiled trainer ...
  scores_other = other.score(query)
  np.testing.assert_array_equal(one.score(query), scores_one)  # ... swapped
  np.testing.assert_array_equal(other.score(query), scores_other)
  assert not np.array_equal(scores_one, scores_other)


def test_least_recently_used_trainers_are_dropped():
  trainers = compiled.AttackTrainers(max_trainers=2)
  config = nn.loop_lib.TrainConfig()
  for width in (3, 4, 5, 3):
    trainers.lease(("mlp", width), lambda w=width: nn.attack_mlp((w,)),
                   config, seed=0)
  assert trainers.builds == 4  # (3,) was dropped before its second use
  trainers.lease(("mlp", 3), lambda: nn.attack_mlp((3,)), config, seed=0)
  assert trainers.builds == 4
