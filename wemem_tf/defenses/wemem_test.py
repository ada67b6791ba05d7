"""Tests of RSW / RMR / SWMR / RandomWindow and of P3's procedure."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.defenses import catalog
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import risky
from wemem_tf.defenses import wemem
from wemem_tf.memorization import scores as scores_lib
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative
from wemem_tf.pruning import pipeline
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib


@pytest.fixture(scope="module")
def digits():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  scores = np.random.default_rng(0).uniform(-0.1, 1.0, len(split.train))
  return ds, split, scores


def _bind(defense, ds, split, epochs=21, seed=0):
  """The run of `defense` on the victim's fine-tuning records."""
  x, y = ds.take(split.train)
  return defense.bind(
      defense_lib.TrainingRecords(x, y, split.train, ds.num_classes),
      loop_lib.TrainConfig(), 5, epochs, seed=seed)


def _no_dropout_model(ds):
  inputs = keras.Input(ds.input_shape)
  h = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
  h = keras.layers.Dense(16, activation="relu", name="fc2")(h)
  return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(h))


def _prune_weights(ds, split, defense, seed=3):
  keras.utils.set_random_seed(seed)
  model = _no_dropout_model(ds)
  result = pipeline.pretrain_and_prune(
      ds, split, seed, pretrained=model, defense=defense,
      pruning_config=iterative.PruningConfig(0.5, 3, epochs_per_iteration=3,
                                             patience=10))
  return result.pruned.get_weights()


def test_rmr_without_risky_records_trains_exactly_like_plain(digits):
  ds, split, scores = digits
  plain = _prune_weights(ds, split, None)
  with pytest.warns(UserWarning, match="no training record is risky"):
    rmr = _prune_weights(ds, split, wemem.RMR(scores=scores * 0.5, tau=0.9))
  for a, b in zip(plain, rmr):
    np.testing.assert_array_equal(a, b)


def test_only_risky_batches_get_lambda_mem(digits):
  ds, split, scores = digits
  run = _bind(wemem.RMR(scores=scores, tau=0.6, lambda_mem=0.1), ds, split)
  risky_mask = scores >= 0.6
  plan = run.epoch_plan(0, 0, np.random.default_rng(0))
  assert sorted(plan.order) == list(range(len(scores)))
  for b in range(plan.num_batches):
    idx = plan.order[plan.batch_bounds[b]:plan.batch_bounds[b + 1]]
    if plan.batch_kind[b] == risky.RISKY:
      assert risky_mask[idx].all() and plan.batch_weight_decay[b] == pytest.approx(0.1)
    else:
      assert plan.batch_kind[b] == loop_lib.BatchKind.ORDINARY
      assert not risky_mask[idx].any()
      assert plan.batch_weight_decay[b] == pytest.approx(5e-4)
  # Risky batches come first, as in the authors' code.
  kinds = list(plan.batch_kind)
  assert kinds == sorted(kinds, reverse=True)
  assert set(kinds) == {int(risky.RISKY), int(loop_lib.BatchKind.ORDINARY)}
  assert run.report()["risky_share"] == pytest.approx(risky_mask.mean())


def test_compiled_p3_matches_the_authors_two_optimizer_procedure(digits):
  ds, split, scores = digits
  x, y = ds.take(split.train)
  run = _bind(wemem.RMR(scores=scores, tau=0.6, lambda_mem=0.1), ds, split)
  plan = run.epoch_plan(0, 0, np.random.default_rng(5))
  keras.utils.set_random_seed(0)
  model = _no_dropout_model(ds)
  start = model.get_weights()
  loop = loop_lib.TrainingLoop(model, loop_lib.TrainConfig(), run.train_step())
  loop.train_epoch(tf.constant(x), tf.constant(y), plan)
  compiled = model.get_weights()
  # Reference: eager loop, one Adam for risky batches and one for the rest.
  model.set_weights(start)
  opt_ordinary, opt_risky = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
  for b in range(plan.num_batches):
    idx = plan.order[plan.batch_bounds[b]:plan.batch_bounds[b + 1]]
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          y[idx], model(x[idx], training=True)))
    decay = 0.1 if plan.batch_kind[b] == risky.RISKY else 5e-4
    grads = [g + decay * v for g, v in zip(
        tape.gradient(loss, model.trainable_variables), model.trainable_variables)]
    opt = opt_risky if plan.batch_kind[b] == risky.RISKY else opt_ordinary
    opt.apply_gradients(zip(grads, model.trainable_variables))
  for a, b in zip(compiled, model.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_window_defenses_visit_the_window(digits):
  ds, split, scores = digits
  run = _bind(wemem.RSW(scores=scores, stride=2, width=5), ds, split)
  x, y = ds.take(split.train)
  positions = run.epoch_positions(0, 1)
  for c in range(10):
    in_class = positions[y[positions] == c]
    members = np.flatnonzero(y == c)
    expected = members[np.argsort(scores[members], kind="stable")][2:7]
    assert sorted(in_class) == sorted(expected)
  assert run.report()["records_used_per_iteration"]["0"] == min(
      len(y), 10 * (20 * 2 + 5))


def test_swmr_splits_the_window_into_risky_and_ordinary(digits):
  ds, split, scores = digits
  run = _bind(wemem.SWMR(scores=scores, tau_share=0.2), ds, split)
  plan = run.epoch_plan(0, 0, np.random.default_rng(0))
  window_positions = run.epoch_positions(0, 0)
  assert sorted(plan.order) == sorted(window_positions)
  risky_mask = run.risky
  for b in range(plan.num_batches):
    idx = plan.order[plan.batch_bounds[b]:plan.batch_bounds[b + 1]]
    assert (risky_mask[idx] == (plan.batch_kind[b] == risky.RISKY)).all()


def test_exhausted_windows_end_the_iteration(digits):
  ds, split, scores = digits
  defense = wemem.RSW(scores=scores, stride=40, width=40)
  keras.utils.set_random_seed(0)
  pruned = prune_lib.prune_low_memorization(
      zoo.column_fc(ds.input_shape, 10), defense=defense,
      pruning_schedule=iterative.PruningConfig(0.5, 2).schedule())
  pruner = iterative.IterativePruner(
      pruned, iterative.PruningConfig(0.5, 2, epochs_per_iteration=21,
                                      patience=30))
  history = pruner.run(ds.take(split.train), ds.take(split.dev), seed=0,
                       train_index=split.train)
  # Classes have ~65 records: windows at 0 and 40 only, then nothing.
  assert all(r.epochs_run == 2 for r in history)


def test_random_window_needs_no_scores_and_all_others_do(digits):
  ds, split, scores = digits
  _bind(wemem.RandomWindow(), ds, split)
  for cls in (wemem.RSW, wemem.SWMR, wemem.RMR):
    with pytest.raises(ValueError, match="needs memorization scores"):
      _bind(cls(), ds, split)
  with pytest.raises(ValueError, match="needs settings"):
    catalog.resolve("rsw")
  with pytest.raises(ValueError, match="needs memorization scores"):
    prune_lib.prune_low_memorization(zoo.column_fc((4,), 2),
                                     defense=wemem.SWMR())


def test_random_window_keeps_one_order_for_every_iteration(digits):
  """The authors draw the random order once: every iteration's windows run
  over the same order (so only its first records are ever fine-tuned), as
  RSW's windows run over the same score order."""
  ds, split, _ = digits
  run = _bind(wemem.RandomWindow(stride=1, width=5), ds, split)
  first = run.class_orders(0)
  for iteration in range(1, 5):
    for c, order in run.class_orders(iteration).items():
      np.testing.assert_array_equal(order, first[c])
  assert any(len(o) > 1 and not np.array_equal(o, np.sort(o))
             for o in first.values())  # a random order, not the records'
  other = _bind(wemem.RandomWindow(stride=1, width=5), ds, split, seed=1)
  assert any(not np.array_equal(other.class_orders(0)[c], o)
             for c, o in first.items())


def test_edge_cases_are_refused_before_training(digits):
  ds, split, scores = digits
  with pytest.raises(ValueError, match=r"RMR tau \(--tau\) must be a finite "
                     r"number in \[-1, 1\], got 1\.5"):
    wemem.RMR(scores=scores, tau=1.5)
  with pytest.raises(ValueError, match="exactly one of tau"):
    wemem.RMR(scores=scores, tau=0.5, tau_share=0.1)
  with pytest.raises(ValueError, match="stride"):
    wemem.RSW(scores=scores, stride=0)
  with pytest.raises(ValueError, match="one score per training record"):
    _bind(wemem.RSW(scores=scores[:-1]), ds, split)
  bad = scores.copy()
  bad[3] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    _bind(wemem.RMR(scores=bad), ds, split)


def test_every_record_risky_makes_every_batch_risky(digits):
  ds, split, scores = digits
  run = _bind(wemem.RMR(scores=scores, tau=-1.0), ds, split)
  plan = run.epoch_plan(0, 0, np.random.default_rng(0))
  assert (plan.batch_kind == risky.RISKY).all()


def test_presets_are_the_authors_settings(digits):
  _, _, scores = digits
  swmr = wemem.from_preset("swmr", "location", scores)
  assert (swmr.order, swmr.stride, swmr.width, swmr.lambda_mem, swmr.tau) == (
      wemem.Order.HIGH_TO_LOW, 1, 15, 0.1, 0.6)
  rsw = wemem.from_preset("rsw", "cifar10", scores)
  assert (rsw.order, rsw.stride, rsw.width) == (wemem.Order.LOW_TO_HIGH, 50, 500)
  assert wemem.from_preset("rmr", "cifar10", scores).tau == 0.5
  with pytest.raises(ValueError, match="no preset"):
    wemem.from_preset("rsw", "texas100", scores)


def test_cifar10_presets_scale_to_the_subsets_classes(digits):
  _, _, scores = digits
  # The 5,000-image subset's victim trains on 180 records per class, the
  # preset was set for 2,250: every window is 0.08 times as large, so the
  # share of a class each epoch visits and the epochs per record stay.
  rsw = wemem.from_preset("rsw", "cifar10", scores, records_per_class=180)
  swmr = wemem.from_preset("swmr", "cifar10", scores, records_per_class=180)
  assert (rsw.stride, rsw.width) == (4, 40)
  assert (swmr.stride, swmr.width, swmr.tau, swmr.lambda_mem) == (
      8, 40, 0.5, 0.1)
  assert swmr.width / swmr.stride == 500 / 100
  # Full CIFAR-10 (2,250 per class) keeps the authors' numbers; a given
  # window is records per class and is not scaled; Location never scales.
  full = wemem.from_preset("rsw", "cifar10", scores, records_per_class=2250)
  assert (full.stride, full.width) == (50, 500)
  given = wemem.from_preset("rsw", "cifar10", scores, records_per_class=180,
                            width=60)
  assert (given.stride, given.width) == (4, 60)
  loc = wemem.from_preset("swmr", "location", scores, records_per_class=20)
  assert (loc.stride, loc.width) == (1, 15)
  assert wemem.from_preset("rmr", "cifar10", scores,
                           records_per_class=180).tau == 0.5
  for bad in (0, -1.0, float("nan"), float("inf"), True, "2"):
    with pytest.raises(ValueError, match="scale"):
      wemem.scaled_window(rsw, bad)
  # MNIST (not in the paper) takes the CIFAR-10 image presets, scaled alike.
  mnist = wemem.from_preset("swmr", "mnist", scores, records_per_class=180)
  assert (mnist.stride, mnist.width, mnist.tau) == (8, 40, 0.5)


def _settings_only(defense):
  """The frozen defense holds its declared fields and nothing else."""
  return set(vars(defense)) == {f.name for f in dataclasses.fields(defense)}


def test_one_defense_binds_into_independent_runs(digits):
  """The victim, shadows and reference models bind one frozen defense: each
  run draws its own class orders and risky set; the defense keeps none."""
  ds, split, scores = digits
  window = wemem.RandomWindow(stride=2, width=5)
  first = _bind(window, ds, split, seed=0)
  second = _bind(window, ds, split, seed=1)
  assert first is not second
  assert first.defense is window and second.defense is window
  orders = first.class_orders(0)
  # Drawing the first run's orders left the second run untouched.
  assert "records_used_per_iteration" in first.report()
  assert "records_used_per_iteration" not in second.report()
  other = second.class_orders(0)
  assert any(not np.array_equal(orders[c], other[c]) for c in orders)
  # The same seed draws the same orders, in a run of its own.
  again = _bind(window, ds, split, seed=0)
  for c in orders:
    np.testing.assert_array_equal(again.class_orders(0)[c], orders[c])
    assert again.class_orders(0)[c] is not orders[c]
  np.testing.assert_array_equal(first.epoch_positions(0, 3),
                                again.epoch_positions(0, 3))
  assert window == wemem.RandomWindow(stride=2, width=5)
  assert window.get_config() == wemem.RandomWindow(stride=2,
                                                   width=5).get_config()
  assert _settings_only(window)

  # Two record sets (victim and shadow): each run aligns its own scores.
  x, y = ds.take(split.train)
  mem = scores_lib.MemScores(scores.clip(-1, 1), split.train, "digits",
                             np.full(len(scores), -1), np.full(len(scores), -1))
  swmr = wemem.SWMR(scores=mem, tau_share=0.2, stride=2, width=5)
  config = swmr.get_config()
  half = len(y) // 2
  victim = swmr.bind(defense_lib.TrainingRecords(x, y, split.train,
                                                 ds.num_classes))
  shadow = swmr.bind(defense_lib.TrainingRecords(
      x[half:], y[half:], split.train[half:], ds.num_classes))
  np.testing.assert_array_equal(victim.scores, scores)
  np.testing.assert_array_equal(shadow.scores, scores[half:])
  np.testing.assert_array_equal(victim.risky,
                                risky.risky_mask(scores, tau_share=0.2))
  np.testing.assert_array_equal(shadow.risky,
                                risky.risky_mask(scores[half:],
                                                 tau_share=0.2))
  assert victim.report()["risky_records"] == round(0.2 * len(y))
  assert shadow.report()["risky_records"] == round(0.2 * (len(y) - half))
  assert victim.class_orders(0)[0].max() < len(y)
  assert shadow.class_orders(0)[0].max() < len(y) - half
  assert swmr.get_config() == config and _settings_only(swmr)


def test_settings_are_frozen(digits):
  _, _, scores = digits
  for defense in (wemem.RSW(scores=scores), wemem.RMR(scores=scores),
                  wemem.SWMR(scores=scores), wemem.RandomWindow()):
    with pytest.raises(dataclasses.FrozenInstanceError):
      defense.width = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
      defense.tau = 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
      defense.records = None  # no run state on the defense


def test_config_round_trip_keeps_scores_out(digits):
  _, _, scores = digits
  swmr = wemem.SWMR(scores=scores, order="l2h", stride=3, width=20,
                    tau_share=0.25, lambda_mem=0.3, shared_optimizer=True)
  config = swmr.get_config()
  assert "scores" not in config
  assert config["order"] == "l2h" and config["tau"] is None
  rebuilt = wemem.SWMR.from_config(config, scores=scores)
  assert rebuilt == swmr and rebuilt.scores is scores
  assert rebuilt.order is wemem.Order.LOW_TO_HIGH
  # Presets fill τ from the authors' setting; it is part of the settings.
  assert wemem.RMR(scores=scores).get_config()["tau"] == 0.6
  with pytest.raises(ValueError, match=r"RSW: unknown settings \['lenght'\]"):
    wemem.RSW.from_config({**wemem.RSW().get_config(), "lenght": 3})


def test_a_window_covering_every_record_warns_that_it_does_nothing(digits):
  ds, split, scores = digits
  with pytest.warns(UserWarning, match=r"window width 1e\+09 covers every "
                    r"record of every class .* does nothing"):
    _bind(wemem.RSW(scores=scores, width=1_000_000_000), ds, split)
  import warnings  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    _bind(wemem.RSW(scores=scores, width=15), ds, split)


def test_output_modification_serves_the_labels_and_not_the_scores(digits):
  ds, split, scores = digits
  model = zoo.column_fc(ds.input_shape, ds.num_classes)
  plain = _bind(wemem.SWMR(scores=scores), ds, split)
  assert not plain.modifies_output
  assert plain.inference_model(model) is model
  run = _bind(wemem.SWMR(scores=scores, modify_output=True), ds, split)
  assert run.modifies_output and run.report()["modify_output"] is True
  served = run.inference_model(model)
  x, _ = ds.take(split.test)
  answers, logits = served(x).numpy(), model(x).numpy()
  np.testing.assert_array_equal(np.argmax(answers, -1),
                                np.argmax(logits, -1))
  # Each row holds the scores of a random input, not the query's.
  assert not np.allclose(np.sort(answers, -1), np.sort(logits, -1))
  # The same setting for every WeMem method; the paper's defaults keep it off.
  for cls in wemem.METHODS.values():
    assert not cls().modify_output
    assert "modify_output" in cls.EXPOSED
