"""Tests of the five existing defenses (PPB, AdvReg, DP-SGD, RelaxLoss, HAMP).

The "does its job" tests fine-tune one small overfit digits model (150
members, trained 30 epochs without defense) for a few more epochs with each
defense and with no defense, same seed, and compare the member/non-member
separation. The pipeline tests run every defense through the library's
iterative pruner on digits with tiny settings. The settings tests cover
every registered defense (the catalog's ten): frozen settings, their
`get_config` / `from_config` round trip, and runs that share no state.
"""

import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from wemem_tf._keras import keras  # first: Keras 2 behind tf.keras
import tensorflow as tf  # pylint: disable=g-bad-import-order

from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.defenses import advreg
from wemem_tf.defenses import catalog
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import dp_sgd
from wemem_tf.defenses import existing
from wemem_tf.defenses import hamp
from wemem_tf.defenses import ppb
from wemem_tf.defenses import relaxloss
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.defenses import wemem
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib

NAMES = ("ppb", "advreg", "dp", "relaxloss", "hamp")
SMALL_ADVREG = dict(attack_hidden=(64, 32, 16))
FT_CONFIG = loop_lib.TrainConfig(batch_size=32)


# ---------------------------------------------------------------- settings


def test_registered_by_name_with_defaults():
  for name in NAMES:
    assert name in catalog.available_defenses()
    defense = catalog.get_defense(name)
    assert isinstance(defense, existing.EXISTING[name])
    assert catalog.defense_class(name) is existing.EXISTING[name]
    assert defense.name == name
    json.dumps(defense.get_config())
    # Cache keys leave out serving-only settings at their default (HAMP's
    # output modification), so adding one keeps every earlier key.
    serving = defense.serving_config()
    assert defense.config() == {k: v for k, v in defense.get_config().items()
                                if k not in serving}
    assert defense.training_config() == defense.config()
  assert catalog.get_defense("hamp").serving_config() == {
      "modify_output": True}
  assert catalog.get_defense("hamp").__class__(
      modify_output=False).config()["modify_output"] is False
  assert catalog.get_defense("ppb").alpha == 4.0
  assert catalog.get_defense("advreg").attack_steps == 7
  assert catalog.get_defense("dp").l2_norm_clip == 1.0
  assert catalog.get_defense("relaxloss").alpha == 1.0
  assert catalog.get_defense("hamp").entropy_threshold == 0.5


@pytest.mark.parametrize("cls,kwargs,match", [
    (ppb.PPB, dict(alpha=-1.0), "alpha"),
    (ppb.PPB, dict(alpha=float("nan")), "alpha"),
    (advreg.AdvReg, dict(weight=-2.0), "weight"),
    (advreg.AdvReg, dict(attack_steps=0), "attack_steps"),
    (advreg.AdvReg, dict(attack_hidden=()), "attack_hidden"),
    (advreg.AdvReg, dict(attack_learning_rate=0.0), "attack_learning_rate"),
    (dp_sgd.DPSGD, dict(noise_multiplier=0.0), "noise_multiplier"),
    (dp_sgd.DPSGD, dict(noise_multiplier=-0.1), "noise_multiplier"),
    (dp_sgd.DPSGD, dict(l2_norm_clip=0.0), "l2_norm_clip"),
    (dp_sgd.DPSGD, dict(l2_norm_clip=-1.0), "l2_norm_clip"),
    (dp_sgd.DPSGD, dict(delta=1.5), "delta"),
    (relaxloss.RelaxLoss, dict(alpha=-1.0), "alpha"),
    (relaxloss.RelaxLoss, dict(alpha=0.0), "alpha"),
    (relaxloss.RelaxLoss, dict(upper=1.5), "upper"),
    (hamp.HAMP, dict(entropy_threshold=1.0), "entropy_threshold"),
    (hamp.HAMP, dict(entropy_threshold=0.0), "entropy_threshold"),
    (hamp.HAMP, dict(alpha=-0.001), "alpha"),
    (hamp.HAMP, dict(random_inputs="gaussian"), "random_inputs"),
])
def test_bad_settings_are_rejected(cls, kwargs, match):
  with pytest.raises(ValueError, match=match):
    cls(**kwargs)


def test_errors_name_the_setting_and_its_flag():
  with pytest.raises(ValueError, match=r"^PPB alpha \(--ppb_alpha\) must be a "
                     r"finite number >= 0, got -1\.$"):
    ppb.PPB(alpha=-1)
  with pytest.raises(ValueError, match=r"^DP-SGD noise_multiplier "
                     r"\(--dp_noise_multiplier\) must be a finite number > 0, "
                     r"got 0\.0\.$"):
    dp_sgd.DPSGD(noise_multiplier=0.0)
  with pytest.raises(ValueError, match=r"^AdvReg attack_steps "
                     r"\(--advreg_attack_steps\) must be an integer >= 1"):
    advreg.AdvReg(attack_steps=2.5)
  with pytest.raises(ValueError, match="unknown defense 'magic'"):
    catalog.get_defense("magic")
  with pytest.raises(ValueError, match="its settings are"):
    catalog.get_defense("ppb", beta=1.0)


# Every registered defense with settings other than its defaults (WeMem's
# scores are data: passed to the constructor, not part of the settings).
_SCORES = np.linspace(0.0, 1.0, 40)
CONFIGURED = {
    "none": lambda: defense_lib.Defense(),
    "rsw": lambda: wemem.RSW(scores=_SCORES, order="h2l", stride=2, width=7),
    "rmr": lambda: wemem.RMR(scores=_SCORES, tau_share=0.2, lambda_mem=0.05,
                             shared_optimizer=True),
    "swmr": lambda: wemem.SWMR(scores=_SCORES, order="l2h", stride=3,
                               width=20, tau=0.4, lambda_mem=0.3,
                               shuffle_within_epoch=False),
    "random": lambda: wemem.RandomWindow(stride=0.5, width=7.5),
    "ppb": lambda: ppb.PPB(alpha=8.0),
    "advreg": lambda: advreg.AdvReg(weight=2.0, attack_steps=3,
                                    attack_hidden=(32, 16),
                                    attack_learning_rate=1e-4),
    "dp": lambda: dp_sgd.DPSGD(noise_multiplier=0.1, l2_norm_clip=2.0,
                               delta=1e-5),
    "relaxloss": lambda: relaxloss.RelaxLoss(alpha=0.5, upper=0.9),
    "hamp": lambda: hamp.HAMP(entropy_threshold=0.7, alpha=0.01,
                              random_inputs="bits", modify_output=False),
}


def test_the_catalog_holds_ten_defenses():
  assert catalog.available_defenses() == list(CONFIGURED)
  assert all(catalog.defense_class(name).name == name for name in CONFIGURED)


def _rebuild(defense):
  """`from_config` of the JSON text of `get_config` (scores passed again)."""
  config = json.loads(json.dumps(defense.get_config()))
  data = {"scores": defense.scores} if hasattr(defense, "scores") else {}
  return type(defense).from_config(config, **data)


def _defaults(name):
  """The registered defense `name` with its default settings."""
  cls = catalog.defense_class(name)
  return cls(scores=_SCORES) if name in ("rsw", "rmr", "swmr") else cls()


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_config_round_trip(name):
  cls = catalog.defense_class(name)
  for defense in (CONFIGURED[name](), _defaults(name)):
    assert type(defense) is cls
    config = defense.get_config()
    assert set(config) == {f.name for f in dataclasses.fields(cls)
                           if "setting" in f.metadata}
    assert set(settings_lib.declared(cls)) <= set(config)
    assert "scores" not in config
    rebuilt = _rebuild(defense)
    assert type(rebuilt) is cls
    assert rebuilt == defense
    assert rebuilt.get_config() == config
    assert json.loads(json.dumps(config)) == config
    for field in dataclasses.fields(cls):
      if "setting" in field.metadata:
        assert getattr(rebuilt, field.name) == getattr(defense, field.name)
      else:  # data, not a setting: WeMem's scores
        assert getattr(rebuilt, field.name) is getattr(defense, field.name)
  # The configured settings are not the defaults: the round trip kept them.
  if name != "none":
    assert CONFIGURED[name]().get_config() != _defaults(name).get_config()
  with pytest.raises(ValueError, match="unknown settings"):
    cls.from_config({"no_such_setting": 1})
  if "scores" in {f.name for f in dataclasses.fields(cls)}:
    # Data is not a setting: scores come as an argument, not in the config.
    with pytest.raises(ValueError, match="unknown settings"):
      cls.from_config({**defense.get_config(), "scores": None})


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_settings_are_frozen(name):
  defense = CONFIGURED[name]()
  before = defense.get_config()
  settings = list(settings_lib.declared(defense))
  assert bool(settings) == (name != "none")
  for setting in settings:
    with pytest.raises(dataclasses.FrozenInstanceError):
      setattr(defense, setting, getattr(defense, setting))
  with pytest.raises(dataclasses.FrozenInstanceError):
    defense.records = None  # run state lives in the run, not here
  assert defense.get_config() == before


def _records(n=40, num_classes=3, reference=True, dim=5):
  rng = np.random.default_rng(0)
  x = rng.random((n, dim)).astype(np.float32)
  y = np.arange(n) % num_classes
  ref = (x[:10], y[:10]) if reference else (None, None)
  return defense_lib.TrainingRecords(x, y, np.arange(n), num_classes, *ref)


def _bind(defense, records, config=loop_lib.TrainConfig(batch_size=8)):
  """The run of `defense` on `records`."""
  return defense.bind(records, config, 2, 3, 0)


def test_bind_rejects_impossible_settings():
  with pytest.raises(ValueError, match="reference non-member"):
    _bind(advreg.AdvReg(), _records(reference=False))
  bad_shape = _records()
  bad_shape = defense_lib.TrainingRecords(bad_shape.x, bad_shape.y, bad_shape.index,
                                   3, bad_shape.x[:4, :2], bad_shape.y[:4])
  with pytest.raises(ValueError, match="feature shape"):
    _bind(advreg.AdvReg(), bad_shape)
  bad_labels = _records()
  bad_labels = defense_lib.TrainingRecords(bad_labels.x, bad_labels.y,
                                    bad_labels.index, 3, bad_labels.x[:4],
                                    np.array([0, 1, 2, 3]))
  with pytest.raises(ValueError, match="reference labels"):
    _bind(advreg.AdvReg(), bad_labels)
  with pytest.raises(ValueError, match="batch_size"):
    _bind(ppb.PPB(), _records(), loop_lib.TrainConfig(batch_size=1))
  with pytest.raises(ValueError, match="classes"):
    _bind(relaxloss.RelaxLoss(), _records(num_classes=1))
  with pytest.raises(ValueError, match="classes"):
    _bind(hamp.HAMP(), _records(num_classes=1))
  with pytest.raises(ValueError, match="DP-SGD needs >= 2"):
    _bind(dp_sgd.DPSGD(), _records(n=1, num_classes=1))
  # What needs the records exists only on a bound run, never on the defense.
  for defense, state in ((hamp.HAMP(), "inference_model"),
                         (dp_sgd.DPSGD(), "privacy"),
                         (dp_sgd.DPSGD(), "steps_run"),
                         (advreg.AdvReg(), "report"),
                         (relaxloss.RelaxLoss(), "epoch_plan"),
                         (ppb.PPB(), "train_step"),
                         (hamp.HAMP(), "records")):
    assert not hasattr(defense, state), state
  assert hamp.HAMP().modifies_output and not hamp.HAMP(
      modify_output=False).modifies_output


def _train(run, records, epochs):
  """Trains a fresh small model `epochs` epochs with `run`'s step and plans."""
  keras.utils.set_random_seed(0)
  config = loop_lib.TrainConfig(batch_size=8)
  loop = loop_lib.TrainingLoop(zoo.column_fc((5,), 3), config,
                               run.train_step())
  x, y = tf.constant(records.x), tf.constant(records.y)
  rng = np.random.default_rng(0)
  for epoch in range(epochs):
    loop.train_epoch(x, y, run.epoch_plan(0, epoch, rng))


def test_two_binds_of_one_defense_are_independent_runs():
  """Victim, shadows and reference models bind one frozen defense: what a
  run counts (DP steps, AdvReg's attack) is its own."""
  records = _records()
  fewer_references = defense_lib.TrainingRecords(
      records.x, records.y, records.index, 3, records.x[:4], records.y[:4])

  dp = dp_sgd.DPSGD(noise_multiplier=1.0)
  first, second = _bind(dp, records), _bind(dp, records)
  assert first is not second and first.defense is dp and second.defense is dp
  _train(first, records, 1)
  assert first.steps_run() == 5  # 40 records, batches of 8
  assert second.steps_run() == 0 and second.privacy()["steps"] == 0
  _train(second, records, 2)
  assert (first.steps_run(), second.steps_run()) == (5, 10)
  assert first.report()["epochs"] == 1 and second.report()["epochs"] == 2
  assert dp == dp_sgd.DPSGD(noise_multiplier=1.0)
  assert set(vars(dp)) == {"noise_multiplier", "l2_norm_clip", "delta",
                           "microbatch_size", "optimizer"}

  adv = advreg.AdvReg(attack_hidden=(8, 4))
  first, second = _bind(adv, records), _bind(adv, fewer_references)
  assert first.report()["reference_records"] == 10
  assert second.report()["reference_records"] == 4
  _train(first, records, 1)
  assert math.isfinite(first.report()["final_attack_loss"])
  assert "final_attack_loss" not in second.report()
  assert first.train_step() is not second.train_step()
  assert adv == advreg.AdvReg(attack_hidden=(8, 4))
  assert set(vars(adv)) == {"weight", "attack_steps", "attack_hidden",
                            "attack_learning_rate", "gain",
                            "classifier_steps_per_epoch"}


# -------------------------------------------------------- building blocks


def test_sorted_pair_kl_matches_numpy():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(7, 4)).astype(np.float32)
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  s = -np.sort(-p, axis=-1)
  expected = np.mean([np.sum(s[3 + i] * np.log(s[3 + i] / s[i]))
                      for i in range(3)])  # the 7th record is unpaired
  assert float(ppb.sorted_pair_kl(tf.constant(logits))) == pytest.approx(
      expected, rel=1e-5)
  # Only the sorted values count: permuting classes within rows changes
  # nothing, and equal sorted posteriors give 0.
  twin = np.concatenate([logits[:3], logits[:3][:, ::-1]])
  assert float(ppb.sorted_pair_kl(tf.constant(twin))) == pytest.approx(
      0.0, abs=1e-6)
  assert float(ppb.sorted_pair_kl(tf.constant(logits[:1]))) == 0.0


def test_advreg_default_inference_network_is_nasr_et_al():
  net = advreg.inference_network(30, advreg.AdvReg().attack_hidden)
  widths = [l.units for l in net.layers if isinstance(l, keras.layers.Dense)]
  assert sorted(widths) == sorted([1024, 512, 64, 512, 64, 256, 64, 1])
  out = net([tf.zeros((2, 30)), tf.zeros((2, 30))])
  assert out.shape == (2, 1)


def _advreg_step(n=40, features=5, classes=3, **kwargs):
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((features,)),
                            keras.layers.Dense(classes)])
  step = advreg.AdvRegStep(kwargs.pop("weight", 1.0), 4, (8, 4), 1e-3,
                           **kwargs)
  rng = np.random.default_rng(0)
  step.load_members(rng.normal(size=(n, features)), rng.integers(0, classes, n))
  step.load_reference(rng.normal(size=(30, features)),
                      rng.integers(0, classes, 30))
  step.build(model, loop_lib.TrainConfig(batch_size=8))
  return model, step


def test_advreg_inner_steps_draw_fresh_member_batches():
  """Nasr et al.: each inner step sees its own batch of members (no record
  twice within a batch), drawn from all the training records."""
  model, step = _advreg_step()
  xb, yb = tf.zeros((8, 5)), tf.zeros((8,), tf.int64)
  seen = set()
  for _ in range(3):
    step(model, xb, yb, tf.constant(0.0), tf.constant(0))
    draws = step.last_member_draws.numpy()
    assert draws.shape == (4, 8)
    assert len({tuple(sorted(row)) for row in draws}) == 4  # all different
    assert all(len(set(row)) == 8 for row in draws)  # without replacement
    seen.update(draws.ravel().tolist())
  assert len(seen) > 30 and max(seen) < 40
  # The same seed draws the same batches, whatever else drew numbers.
  again_model, again = _advreg_step()
  tf.random.uniform([5])
  again(again_model, xb, yb, tf.constant(0.0), tf.constant(0))
  model, first = _advreg_step()
  first(model, xb, yb, tf.constant(0.0), tf.constant(0))
  np.testing.assert_array_equal(again.last_member_draws.numpy(),
                                first.last_member_draws.numpy())


@pytest.mark.parametrize("gain", advreg.GAINS)
def test_advreg_gain_pushes_membership_down(gain):
  """The classifier's gain term is the mean membership probability − 0.5,
  or its mean log: both fall as the classifier follows their gradient."""
  model, step = _advreg_step(weight=1.0, gain=gain)
  logits = tf.constant([[2.0, -1.0, 0.0]] * 4)
  labels = tf.zeros((4,), tf.int64)
  member_logit = tf.squeeze(step.attack(
      [tf.nn.softmax(logits), tf.one_hot(labels, 3)]), -1)
  value = float(step._gain(member_logit))  # pylint: disable=protected-access
  h = tf.sigmoid(member_logit).numpy()
  expected = np.mean(np.log(h)) if gain == "log" else np.mean(h) - 0.5
  assert value == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_advreg_classifier_steps_per_epoch_trims_the_plan():
  run = _bind(advreg.AdvReg(attack_hidden=(8, 4),
                            classifier_steps_per_epoch=1), _records(n=50),
              loop_lib.TrainConfig(batch_size=8))
  plan = run.epoch_plan(0, 0, np.random.default_rng(0))
  assert plan.num_batches == 1 and len(plan.order) == 8
  full = _bind(advreg.AdvReg(attack_hidden=(8, 4)), _records(n=50),
               loop_lib.TrainConfig(batch_size=8))
  assert full.epoch_plan(0, 0, np.random.default_rng(0)).num_batches == 7


def test_relaxloss_plan_alternates_epoch_parity():
  run = _bind(relaxloss.RelaxLoss(), _records())
  assert relaxloss.ASCENT == loop_lib.BatchKind.EVEN_EPOCH
  assert relaxloss.FLATTEN == loop_lib.BatchKind.ODD_EPOCH
  rng = np.random.default_rng(0)
  for epoch in range(4):
    plan = run.epoch_plan(1, epoch, rng)
    assert np.all(plan.batch_kind == (relaxloss.FLATTEN if epoch % 2
                                      else relaxloss.ASCENT))
    assert sorted(plan.order) == list(range(40))


def test_relaxloss_flattened_targets():
  logits = tf.constant([[3.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
  soft = relaxloss.flattened_targets(logits, tf.constant([0, 0]), 1.0).numpy()
  p = tf.nn.softmax(logits).numpy()
  np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(soft[:, 0], p[:, 0], rtol=1e-6)
  np.testing.assert_allclose(soft[:, 1], soft[:, 2])
  clipped = relaxloss.flattened_targets(logits, tf.constant([0, 0]), 0.5)
  assert float(clipped[0, 0]) == pytest.approx(0.5)


def test_hamp_soft_labels_reach_the_entropy_threshold():
  for c in (2, 10, 30, 100):
    previous = 1.0
    for gamma in (0.1, 0.5, 0.9):
      p = hamp.top1_probability(c, gamma)
      assert 1.0 / c < p < previous
      assert hamp.soft_label_entropy(p, c) == pytest.approx(
          gamma * math.log(c), rel=1e-6)
      previous = p


def test_hamp_random_inputs_follow_the_feature_domain():
  bits = _records()
  bits = defense_lib.TrainingRecords((bits.x > 0.5).astype(np.float32),
                                     bits.y, bits.index, 3)
  defense = hamp.HAMP()
  bits_run = _bind(defense, bits)
  assert bits_run.report()["random_inputs_drawn"] == "bits"
  uniform_run = _bind(defense, _records())
  assert uniform_run.report()["random_inputs_drawn"] == "uniform"
  # Two runs of one defense: the second bind changed nothing of the first.
  assert bits_run.report()["random_inputs_drawn"] == "bits"
  np.testing.assert_array_equal(bits_run.domain.high, np.ones(5))
  np.testing.assert_array_equal(uniform_run.domain.high,
                                _records().x.max(axis=0))
  assert defense == hamp.HAMP()
  model = zoo.column_fc((5,), 3)
  assert _bind(hamp.HAMP(modify_output=False),
               _records()).inference_model(model) is model
  assert not _bind(hamp.HAMP(modify_output=False), _records()).modifies_output
  served = uniform_run.inference_model(model)
  assert served is not model and uniform_run.modifies_output


def test_dp_step_clips_each_record():
  """Without noise the privatized gradient is the mean clipped gradient."""
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  x = tf.constant([[1.0, 2.0, 3.0], [0.1, 0.0, 0.2], [-4.0, 1.0, 0.0]])
  y = tf.constant([0, 1, 1], tf.int64)
  step = dp_sgd.DPSGDStep(l2_norm_clip=0.5, noise_multiplier=0.0)
  step.build(model, loop_lib.TrainConfig())
  assert step.method == "fast"
  variables = model.trainable_variables
  _, got = step._private_gradients(model, x, y)  # pylint: disable=protected-access
  expected = [np.zeros(v.shape) for v in variables]
  for i in range(3):
    with tf.GradientTape() as tape:
      loss = loop_lib.sparse_ce_from_logits(y[i:i + 1], model(x[i:i + 1]))[0]
    grads = [g.numpy() for g in tape.gradient(loss, variables)]
    norm = math.sqrt(sum(float(np.sum(g ** 2)) for g in grads))
    for e, g in zip(expected, grads):
      e += g * min(1.0, 0.5 / norm) / 3
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-6)


def test_dp_noise_is_seeded_and_scaled():
  """The noise has std σ·C / (number of microbatches), from the step's own
  seeded stream: the same seed, the same noise, whatever ran before."""
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(50)])
  x = tf.zeros([4, 20])
  y = tf.zeros([4], tf.int64)

  def noise(seed, micro):
    step = dp_sgd.DPSGDStep(1.0, 2.0, microbatch_size=micro, seed=seed)
    step.build(model, loop_lib.TrainConfig())
    tf.random.uniform([7])  # other draws must not matter
    _, grads = step._private_gradients(model, x, y)  # pylint: disable=protected-access
    return grads[0].numpy()

  a, b, c = noise(1, 1), noise(1, 1), noise(2, 1)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  # Zero inputs: the kernel's gradient is zero, what remains is noise.
  assert np.std(a) == pytest.approx(2.0 / 4, rel=0.1)
  assert np.std(noise(1, 2)) == pytest.approx(2.0 / 2, rel=0.1)


def test_dp_epsilon_is_finite_and_shrinks_as_noise_grows():
  epsilons = []
  for sigma in (0.01, 0.1, 1.0, 2.0):
    run = _bind(dp_sgd.DPSGD(noise_multiplier=sigma), _records(n=400),
                loop_lib.TrainConfig(batch_size=40))
    report = run.privacy(steps=200)  # 20 epochs of 10 batches
    assert report["delta"] == pytest.approx(1 / 400)
    assert report["epochs"] == 20
    assert math.isfinite(report["epsilon"]) and report["epsilon"] > 0
    assert math.isfinite(report["epsilon_poisson"])
    epsilons.append(report["epsilon"])
  assert all(a > b for a, b in zip(epsilons, epsilons[1:]))
  fewer = _bind(dp_sgd.DPSGD(noise_multiplier=1.0), _records(n=400),
                loop_lib.TrainConfig(batch_size=40))
  assert fewer.privacy(steps=50)["epsilon"] < epsilons[2]
  # Microbatches of several records: sensitivity 2C, accounted as σ / 2.
  micro = _bind(dp_sgd.DPSGD(noise_multiplier=2.0, microbatch_size=20),
                _records(n=400), loop_lib.TrainConfig(batch_size=40))
  report = micro.privacy(steps=200)
  assert report["epsilon"] == pytest.approx(epsilons[2])
  assert report["microbatch_size"] == 20 and report["noise_multiplier"] == 2


# --------------------------------------------- a small overfit case (digits)


@pytest.fixture(scope="module")
def overfit():
  """150 digits members, 400 non-members, 200 reference records, and the
  weights of a model trained 30 epochs on the members (no defense)."""
  ds = datasets.load_dataset("digits")
  perm = np.random.default_rng(0).permutation(len(ds.y))
  mem, non, ref = perm[:150], perm[150:550], perm[550:750]
  keras.utils.set_random_seed(3)
  model = zoo.column_fc(ds.input_shape, 10)
  loop = loop_lib.TrainingLoop(model, FT_CONFIG)
  x, y = tf.constant(ds.x[mem]), tf.constant(ds.y[mem])
  rng = np.random.default_rng(1)
  for _ in range(30):
    loop.train_epoch(x, y, loop_lib.shuffled_plan(len(mem), FT_CONFIG, rng))
  return dict(ds=ds, mem=mem, non=non, ref=ref, weights=model.get_weights())


def _finetune(case, defense, epochs=10):
  """Fine-tunes the overfit model with `defense` (None: none); returns
  (trained model, served model, per-epoch mean batch losses, the run)."""
  ds, mem, ref = case["ds"], case["mem"], case["ref"]
  defense = defense or defense_lib.Defense()
  keras.utils.set_random_seed(3)
  model = zoo.column_fc(ds.input_shape, 10)
  model.set_weights(case["weights"])
  run = defense.bind(defense_lib.TrainingRecords(
      ds.x[mem], ds.y[mem], mem, 10, ds.x[ref], ds.y[ref]), FT_CONFIG, 1,
                     epochs, 3)
  loop = loop_lib.TrainingLoop(model, FT_CONFIG, run.train_step())
  x, y = tf.constant(ds.x[mem]), tf.constant(ds.y[mem])
  rng = np.random.default_rng(3)
  losses = [loop.train_epoch(x, y, run.epoch_plan(0, e, rng))
            for e in range(epochs)]
  assert loop.trace_count == 1
  return model, run.inference_model(model), losses, run


def _true_class(model, x, y):
  """(true-class confidence, logit-scaled confidence z_y − logsumexp z_≠y)."""
  z = model(x).numpy().astype(np.float64)
  rows = np.arange(len(y))
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  others = z.copy()
  others[rows, y] = -np.inf
  top = others.max(-1)
  phi = z[rows, y] - (top + np.log(np.exp(others - top[:, None]).sum(-1)))
  return p[rows, y], phi


def _separation(case, served):
  ds = case["ds"]
  cm, phim = _true_class(served, ds.x[case["mem"]], ds.y[case["mem"]])
  cn, phin = _true_class(served, ds.x[case["non"]], ds.y[case["non"]])
  auc = roc_auc_score(np.r_[np.ones(len(cm)), np.zeros(len(cn))],
                      np.r_[cm, cn])
  return dict(auc=auc, conf_gap=cm.mean() - cn.mean(),
              phi_gap=phim.mean() - phin.mean())


@pytest.fixture(scope="module")
def undefended(overfit):
  model, served, losses, _ = _finetune(overfit, None)
  return dict(model=model, losses=losses, **_separation(overfit, served))


def test_the_case_overfits(undefended):
  assert undefended["auc"] > 0.6
  assert undefended["losses"][-1] < 0.05


def test_ppb_narrows_the_posterior_gap(overfit, undefended):
  _, served, _, _ = _finetune(overfit, ppb.PPB())
  defended = _separation(overfit, served)
  # The member/non-member gap of the logit-scaled true-class confidence (the
  # statistic LiRA models) shrinks; see the report for the plain confidence.
  assert defended["phi_gap"] < 0.85 * undefended["phi_gap"]


# Each official trainer at its authors' `upper` (the default): the tabular
# one clips the kept confidence at 0.3, the image one does not.
@pytest.mark.parametrize("variant", ["tabular", "image"])
def test_relaxloss_holds_the_train_loss_near_alpha(overfit, undefended,
                                                   variant):
  alpha = 1.0
  model, _, losses, run = _finetune(
      overfit, relaxloss.RelaxLoss(alpha=alpha, variant=variant))
  assert run.report()["variant_used"] == variant
  assert run.report()["upper_used"] == {"tabular": 0.3, "image": 1.0}[variant]
  ds, mem = overfit["ds"], overfit["mem"]
  train_ce = float(tf.reduce_mean(loop_lib.sparse_ce_from_logits(
      ds.y[mem], model(ds.x[mem]))))
  assert abs(train_ce - alpha) < 0.3 * alpha
  assert all(abs(l - alpha) < 0.5 * alpha for l in losses[3:])
  assert undefended["losses"][-1] < 0.1 * alpha


def test_advreg_lowers_the_confidence_attack_auc(overfit, undefended):
  # With fresh member batches per inner step (Nasr et al.) λ = 4 moves this
  # small case's AUC by about 0.02; λ = 8 by about 0.06.
  _, served, _, _ = _finetune(overfit,
                              advreg.AdvReg(weight=8.0, **SMALL_ADVREG))
  assert _separation(overfit, served)["auc"] < undefended["auc"] - 0.03


def test_hamp_lowers_the_confidence_attack_auc(overfit, undefended):
  model, served, _, _ = _finetune(overfit, hamp.HAMP())
  assert _separation(overfit, served)["auc"] < undefended["auc"] - 0.03
  # Output modification keeps every prediction.
  x = overfit["ds"].x[overfit["non"]]
  np.testing.assert_array_equal(np.argmax(served(x).numpy(), -1),
                                np.argmax(model(x).numpy(), -1))


def test_dp_counts_its_steps_for_accounting(overfit):
  defense = dp_sgd.DPSGD(noise_multiplier=1.0)
  _, _, _, run = _finetune(overfit, defense, epochs=2)
  report = run.report()
  assert report["steps"] == 2 * math.ceil(150 / 32)
  assert report["epochs"] == 2
  assert math.isfinite(report["epsilon"])


# ------------------------------------------------------- through the pipeline


@pytest.fixture(scope="module")
def digits_pretrained():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  keras.utils.set_random_seed(0)
  model = zoo.column_fc(ds.input_shape, 10)
  iterative.pretrain(model, ds.take(split.train), ds.take(split.dev), 0,
                     loop_lib.TrainConfig(max_epochs=3))
  return ds, split, model


@pytest.mark.parametrize("name", NAMES)
def test_runs_through_the_pipeline(digits_pretrained, name):
  ds, split, pretrained = digits_pretrained
  # Default settings (AdvReg: a smaller inference network, to keep this fast).
  def make():
    return (advreg.AdvReg(**SMALL_ADVREG) if name == "advreg"
            else catalog.get_defense(name))
  defense = make()
  pcfg = iterative.PruningConfig(0.5, 2, epochs_per_iteration=2)
  tcfg = loop_lib.TrainConfig(max_epochs=3)
  train, dev = ds.take(split.train), ds.take(split.dev)
  # The pruner built by hand: its training function is traced once.
  wrapped = prune_lib.prune_low_memorization(
      pipeline.clone_with_weights(pretrained), pcfg.schedule(),
      defense=defense)
  pruner = iterative.IterativePruner(wrapped, pcfg, tcfg)
  assert pruner.loop is None and pruner.defense_run is None
  config = defense.get_config()
  history = pruner.run(train, dev, seed=0, train_index=split.train)
  assert pruner.loop.trace_count == 1
  assert len(history) == 2
  assert pruner.defense is defense and pruner.defense_run.defense is defense
  assert defense.get_config() == config
  # And through pretrain_and_prune (by name, except AdvReg).
  result = pipeline.pretrain_and_prune(
      ds, split, 0, pruning_config=pcfg, train_config=tcfg,
      pretrained=pretrained, defense=make() if name == "advreg" else name)
  report = result.defense_report
  assert report["defense"] == name
  json.dumps(report)
  x_test, y_test = ds.take(split.test)
  scores = result.served(x_test).numpy()
  assert scores.shape == (len(y_test), 10) and np.all(np.isfinite(scores))
  assert np.mean(np.argmax(scores, -1) == y_test) > 0.5
  assert prune_lib.layer_sparsity(result.pruned)["fc1"] == pytest.approx(
      0.5, abs=0.01)
  if name == "dp":
    epochs = sum(r.epochs_run for r in result.history)
    assert report["steps"] == epochs * math.ceil(len(split.train) / 128)
    assert math.isfinite(report["epsilon"])
  if name == "hamp":
    assert result.served is not result.pruned


def test_hamp_answers_depend_on_its_seed_not_on_global_random_state():
  """The served model draws its random inputs from its own seeded stream:
  the same queries give the same answers after any other random draws
  (a Ray driver and a local run), a fresh draw per query all the same."""
  model = zoo.column_fc((5,), 3)
  x = np.random.default_rng(0).uniform(size=(7, 5)).astype(np.float32)

  def answers(seed, noise):
    tf.random.uniform((noise,))  # other draws of the process
    run = hamp.HAMP().bind(_records(), loop_lib.TrainConfig(), 1, 1, seed)
    served = run.inference_model(model)
    return served(x).numpy(), served(x).numpy()

  first, second = answers(3, 1)
  again_first, again_second = answers(3, 50)
  np.testing.assert_array_equal(first, again_first)
  np.testing.assert_array_equal(second, again_second)
  assert not np.array_equal(first, second)  # a fresh draw per query
  assert not np.array_equal(answers(4, 1)[0], first)


# ------------------------------------------------------ baseline settings


def test_paper_baseline_settings_are_the_authors_and_flags_override():
  dp = catalog.build("dp", "location", baseline="paper")
  assert (dp.noise_multiplier, dp.optimizer, dp.microbatch_size) == (
      0.1, "sgd", 64)
  adv = catalog.build("advreg", "location", baseline="paper", weight=8.0)
  assert (adv.weight, adv.gain, adv.classifier_steps_per_epoch) == (
      8.0, "log", 1)
  assert catalog.build("relaxloss", baseline="paper").variant == "image"
  # "ours": the class defaults; defenses without paper settings: the same.
  assert catalog.build("dp", baseline="ours") == dp_sgd.DPSGD()
  assert catalog.build("ppb", baseline="paper") == catalog.build("ppb")
  for name in catalog.available_defenses():  # every declared key is a setting
    paper = catalog.baseline_settings(name, "paper")
    assert set(paper) <= set(settings_lib.declared(
        catalog.defense_class(name))), name
  with pytest.raises(ValueError, match="baseline settings must be one of"):
    catalog.build("dp", baseline="theirs")
