"""Every defense through `model.fit` agrees with the library's loop."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import wemem_tf
from wemem_tf import defenses
from wemem_tf._keras import keras
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.models import evaluate
from wemem_tf.pruning import callbacks as callbacks_lib
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib

N, D, C = 240, 16, 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, D)).astype(np.float32)
Y = RNG.integers(0, C, N)
DEV_X = RNG.normal(size=(80, D)).astype(np.float32)
DEV_Y = RNG.integers(0, C, 80)
SCORES = RNG.uniform(0, 1, N)

DEFENSES = {
    "none": lambda: None,
    "rsw": lambda: defenses.RSW(scores=SCORES, width=20),
    "rmr": lambda: defenses.RMR(scores=SCORES, tau=0.5),
    "swmr": lambda: defenses.SWMR(scores=SCORES, width=20, tau=0.5),
    "random": lambda: defenses.RandomWindow(width=20),
    "ppb": defenses.PPB,
    "advreg": lambda: defenses.AdvReg(attack_hidden=(32, 16)),
    "dp": defenses.DPSGD,
    "relaxloss": defenses.RelaxLoss,
    "hamp": defenses.HAMP,
}
# Defenses whose updates draw random numbers inside the step (DP noise,
# AdvReg's reference batches): the two paths draw different streams.
RANDOM_STEPS = ("dp", "advreg")


def _mlp(seed=0, width=32):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((D,))
  h = keras.layers.Dense(width, activation="relu", name="fc1")(inputs)
  h = keras.layers.Dense(width // 2, activation="relu", name="fc2")(h)
  return keras.Model(inputs, keras.layers.Dense(C, name="classifier")(h))


def _compile(model):
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  return model


@pytest.fixture
def plan_log(monkeypatch):
  """Records every plan any DefenseRun draws: (positions, decay, kind)."""
  log = []
  runs = {type(defenses.resolve(make())).RUN for make in DEFENSES.values()}
  # Patch each class that defines epoch_plan once (others inherit it).
  for run_cls in {cls for run in runs for cls in run.__mro__
                  if "epoch_plan" in vars(cls)}:
    original = run_cls.epoch_plan

    def recording(self, iteration, epoch, rng, original=original):
      if getattr(self, "_recording", False):  # a subclass calls its parent
        return original(self, iteration, epoch, rng)
      self._recording = True
      try:
        plan = original(self, iteration, epoch, rng)
      finally:
        self._recording = False
      log.append((plan.order.copy(), plan.batch_weight_decay.copy(),
                  plan.batch_kind.copy()))
      return plan

    monkeypatch.setattr(run_cls, "epoch_plan", recording)
  return log


def _library(name, config, seed=3):
  model = prune_lib.prune_low_memorization(_mlp(), config.schedule(),
                                           defense=DEFENSES[name]())
  pruner = iterative.IterativePruner(model, config,
                                     loop_lib.TrainConfig(batch_size=32))
  history = pruner.run((X, Y), (DEV_X, DEV_Y), seed=seed)
  return model, history, pruner.defense_run


def _keras_fit(name, config, seed=3):
  model = _compile(prune_lib.prune_low_memorization(
      _mlp(), config.schedule(), defense=DEFENSES[name]()))
  model.fit(X, Y, batch_size=32, validation_data=(DEV_X, DEV_Y), verbose=0,
            seed=seed, callbacks=[
                tfmot.sparsity.keras.UpdatePruningStep(),
                callbacks_lib.IterativePruning(patience=config.patience)])
  return model, model.wemem_fit.history, model.wemem_fit.run


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_fit_and_loop_agree(name, plan_log):
  # One epoch per round: no checkpoint choice can differ between the paths.
  config = iterative.PruningConfig(0.5, 3, epochs_per_iteration=1,
                                   patience=1)
  lib_model, lib_history, lib_run = _library(name, config)
  lib_plans = list(plan_log)
  del plan_log[:]
  fit_model, fit_history, fit_run = _keras_fit(name, config)
  fit_plans = list(plan_log)
  # Records visited per epoch, their batches, coefficients and kinds.
  assert len(lib_plans) == len(fit_plans) == 3
  for (o1, d1, k1), (o2, d2, k2) in zip(lib_plans, fit_plans):
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(k1, k2)
  assert [r.epochs_run for r in lib_history] == [
      r.epochs_run for r in fit_history]
  assert [r.layer_sparsity for r in lib_history] == pytest.approx(
      [r.layer_sparsity for r in fit_history], abs=1e-3)
  # The same losses and updates (DP noise and AdvReg's reference draws
  # are random streams: there only the facts they report must agree).
  lib_report, fit_report = lib_run.report(), fit_run.report()
  if name not in RANDOM_STEPS:
    for a, b in zip(lib_model.get_weights(), fit_model.get_weights()):
      np.testing.assert_allclose(a, b, atol=2e-3)
    assert lib_report == fit_report
  else:
    assert set(lib_report) == set(fit_report)
  if name == "dp":  # the same steps, so the same ε
    for key in ("steps", "epochs", "epsilon", "epsilon_poisson"):
      assert lib_report[key] == fit_report[key]
    assert lib_report["steps"] == 3 * 8
  if name == "advreg":
    assert np.isfinite(fit_report["final_attack_loss"])
  # The served model: HAMP's output modification after strip_pruning.
  served = wemem_tf.strip_pruning(fit_model)
  modified = any("hamp" in layer.name for layer in served.layers)
  assert modified == (name == "hamp")


def _confidence_gap(model, x, y, x_out, y_out):
  """Mean true-class probability on training records minus held-out."""
  def conf(xs, ys):
    probs = keras.activations.softmax(model(xs, training=False)).numpy()
    return float(np.mean(probs[np.arange(len(ys)), ys]))
  return conf(x, y) - conf(x_out, y_out)


@pytest.fixture(scope="module")
def overfit_gaps():
  """Random labels on 96 records: whatever the model learns is memorized.

  Returns {defense: confidence gap of the served model after fit}.
  """
  x, y = X[:96], Y[:96]
  scores = np.random.default_rng(1).uniform(0, 1, 96)
  makers = dict(DEFENSES)
  makers.update({
      "rsw": lambda: defenses.RSW(scores=scores, width=6),
      "rmr": lambda: defenses.RMR(scores=scores, tau_share=0.5,
                                  lambda_mem=1.0),
      "swmr": lambda: defenses.SWMR(scores=scores, width=6, tau_share=0.5,
                                    lambda_mem=1.0),
      "random": lambda: defenses.RandomWindow(width=6),
      "ppb": lambda: defenses.PPB(alpha=16),
      "advreg": lambda: defenses.AdvReg(attack_hidden=(32, 16), weight=8),
  })
  gaps = {}
  for name, make in makers.items():
    model = prune_lib.prune_low_memorization(
        _mlp(width=64), wemem_tf.IterativeSparsity(0.3, 2,
                                                    epochs_per_iteration=12),
        defense=make())
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(x, y, batch_size=8, validation_data=(DEV_X, DEV_Y),
              verbose=0, callbacks=[callbacks_lib.IterativePruning(
                  patience=None)])
    gaps[name] = _confidence_gap(wemem_tf.strip_pruning(model), x, y,
                                 DEV_X, DEV_Y)
  return gaps


@pytest.mark.parametrize("name", sorted(set(DEFENSES) - {"none"}))
def test_each_defense_acts_in_fit_on_an_overfit_case(name, overfit_gaps):
  assert overfit_gaps["none"] > 0.2  # the undefended model memorizes
  assert overfit_gaps[name] < 0.8 * overfit_gaps["none"], overfit_gaps


def test_rounds_are_epochs_not_steps_with_update_pruning_step():
  """The TFMOT guide's workflow: masks change only at round starts, so
  every round fine-tunes (not one-shot pruning within four steps)."""
  model = _compile(prune_lib.prune_low_memorization(
      _mlp(), wemem_tf.IterativeSparsity(0.6, 3, epochs_per_iteration=3)))
  sparsities = []

  class Probe(keras.callbacks.Callback):

    def on_epoch_end(self, epoch, logs=None):
      sparsities.append(prune_lib.layer_sparsity(self.model)["fc1"])

  model.fit(X, Y, batch_size=32, verbose=0, validation_data=(DEV_X, DEV_Y),
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), Probe(),
                       callbacks_lib.IterativePruning(patience=None)])
  history = model.wemem_fit.history
  assert [r.epochs_run for r in history] == [3, 3, 3]
  assert sparsities[:3] == [0.0] * 3
  assert sparsities[3:6] == pytest.approx([1 - 0.4 ** 0.5] * 3, abs=1e-3)
  assert sparsities[6:] == pytest.approx([0.6] * 3, abs=1e-3)


def test_fit_refuses_what_would_change_the_defense():
  model = _compile(prune_lib.prune_low_memorization(
      _mlp(), wemem_tf.IterativeSparsity(0.5, 2, epochs_per_iteration=2)))
  with pytest.raises(ValueError, match="epochs=3 cannot hold"):
    model.fit(X, Y, epochs=3, validation_data=(DEV_X, DEV_Y), verbose=0)
  with pytest.raises(ValueError, match="needs dev data"):
    model.fit(X, Y, verbose=0)
  with pytest.raises(ValueError, match="sample_weight"):
    model.fit(X, Y, sample_weight=np.ones(N), verbose=0)
  with pytest.raises(ValueError, match="as arrays"):
    model.fit(keras.utils.timeseries_dataset_from_array(X, Y, 4), verbose=0)
  model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match="cross-entropy on logits"):
    model.fit(X, Y, validation_data=(DEV_X, DEV_Y), verbose=0)
  dp = prune_lib.prune_low_memorization(
      _mlp(), wemem_tf.IterativeSparsity(0.5, 2, epochs_per_iteration=1),
      defense=defenses.DPSGD())
  dp.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  with pytest.raises(ValueError, match="DP Adam"):
    dp.fit(X, Y, validation_data=(DEV_X, DEV_Y), verbose=0)
  advreg = _compile(prune_lib.prune_low_memorization(
      _mlp(), wemem_tf.IterativeSparsity(0.5, 2, epochs_per_iteration=1),
      defense=defenses.AdvReg()))
  with pytest.raises(ValueError, match="reference non-member"):
    advreg.fit(X, Y, verbose=0,
               callbacks=[callbacks_lib.IterativePruning(patience=None)])


def test_fit_history_reports_dev_accuracy_and_the_best_checkpoint():
  model = _compile(prune_lib.prune_low_memorization(
      _mlp(), wemem_tf.IterativeSparsity(0.5, 2, epochs_per_iteration=4)))
  logs = model.fit(X, Y, batch_size=32, validation_data=(DEV_X, DEV_Y),
                   verbose=0, callbacks=[callbacks_lib.IterativePruning(
                       patience=2)]).history
  assert "dev_accuracy" in logs and "val_loss" in logs
  assert logs["pruning_iteration"][0] == 0 and logs["pruning_iteration"][-1] == 1
  last = model.wemem_fit.history[-1]
  assert last.dev_accuracy == pytest.approx(
      evaluate.accuracy(model, DEV_X, DEV_Y))
  assert isinstance(model.wemem_fit.run, defense_lib.DefenseRun)
