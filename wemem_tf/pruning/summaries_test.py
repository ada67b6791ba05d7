"""`IterationSummaries`: the documented tags, read back from event files."""

import json

import numpy as np
import pytest
import tensorflow as tf

import wemem_tf
from wemem_tf import defenses
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.pruning import callbacks as callbacks_lib
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.pruning import summaries
from wemem_tf.training import loop as loop_lib

CONFIG = iterative.PruningConfig(target_sparsity=0.5, num_iterations=2,
                                 epochs_per_iteration=2, patience=2)
ITERATION_TAGS = {f"iteration/{f}" for f in summaries.ITERATION_FACTS}
EPOCH_TAGS = {"epoch/train_loss", "epoch/dev_accuracy",
              "epoch/pruning_iteration"}


@pytest.fixture(scope="module")
def digits():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  return ds.take(split.train), ds.take(split.dev), ds.take(split.test)


def _mlp(num_features, num_classes):
  keras.utils.set_random_seed(0)
  inputs = keras.Input((num_features,))
  h = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
  return keras.Model(inputs, keras.layers.Dense(num_classes,
                                                name="classifier")(h))


def _wrapped(data, defense):
  (x, _), _, _ = data
  return prune_lib.prune_low_memorization(_mlp(x.shape[1], 10),
                                          CONFIG.schedule(), defense=defense)


def test_hook_of_the_iterative_pruner_writes_every_documented_tag(
    digits, tmp_path):
  train, dev, test = digits
  model = _wrapped(digits, defenses.RandomWindow(width=40, stride=20))
  pruner = iterative.IterativePruner(model, CONFIG,
                                     loop_lib.TrainConfig(batch_size=64))
  with summaries.IterationSummaries(str(tmp_path)) as hook:
    history = pruner.run(train, dev, test, seed=0, on_iteration=hook)
  scalars = summaries.read_scalars(str(tmp_path))
  sparsity = "prune_low_magnitude_fc1/mask:0/sparsity"
  expected = ITERATION_TAGS | EPOCH_TAGS | {
      sparsity, "prune_low_magnitude_fc1/threshold:0/threshold",
      "defense/records_used_per_iteration", "defense/width",
      "defense/stride", "defense/max_epochs_per_record"}
  assert expected <= set(scalars), sorted(expected - set(scalars))
  assert not any(t.startswith("prune_low_magnitude_classifier")
                 for t in scalars)  # not pruned: no TFMOT tag
  for tag in ITERATION_TAGS | {sparsity}:
    assert set(scalars[tag]) == {0, 1}, tag
  for record in history:
    k = record.iteration
    assert scalars[sparsity][k] == pytest.approx(
        record.layer_sparsity["fc1"])
    assert scalars["iteration/target_sparsity"][k] == pytest.approx(
        record.target_sparsity)
    assert scalars["iteration/test_accuracy"][k] == pytest.approx(
        record.test_accuracy)
    assert scalars["iteration/epochs_run"][k] == record.epochs_run
    assert len(record.epoch_train_loss) == record.epochs_run
    assert "epoch_train_loss" not in record.to_json()  # JSON unchanged
  assert scalars[sparsity][1] == pytest.approx(0.5, abs=0.01)
  epochs = sum(r.epochs_run for r in history)
  assert set(scalars["epoch/train_loss"]) == set(range(epochs))
  assert scalars["epoch/pruning_iteration"][epochs - 1] == 1
  assert scalars["epoch/dev_accuracy"][history[0].epochs_run - 1] == (
      pytest.approx(history[0].epoch_dev_accuracy[-1]))
  assert scalars["defense/width"] == {0: 40.0, 1: 40.0}
  used = pruner.defense_run.report()["records_used_per_iteration"]
  assert scalars["defense/records_used_per_iteration"] == {
      int(k): float(v) for k, v in used.items()}


def test_callback_in_model_fit_writes_rounds_epochs_and_defense_facts(
    digits, tmp_path):
  (x, y), dev, test = digits
  model = _wrapped(digits, defenses.RandomWindow(width=40, stride=20))
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  # Before IterativePruning in the list: the writes wait for its logs.
  model.fit(x, y, batch_size=128, validation_data=dev, verbose=0, callbacks=[
      summaries.IterationSummaries(str(tmp_path)),
      callbacks_lib.IterativePruning(patience=None, test_data=test)])
  history = model.wemem_fit.history
  scalars = summaries.read_scalars(str(tmp_path))
  expected = ITERATION_TAGS | EPOCH_TAGS | {
      "epoch/dev_loss", "prune_low_magnitude_fc1/mask:0/sparsity",
      "defense/records_used_per_iteration", "defense/width"}
  assert expected <= set(scalars), sorted(expected - set(scalars))
  assert set(scalars["iteration/dev_accuracy"]) == {0, 1}
  assert set(scalars["epoch/train_loss"]) == {0, 1, 2, 3}
  assert scalars["epoch/pruning_iteration"] == {0: 0, 1: 0, 2: 1, 3: 1}
  for record in history:
    assert scalars["iteration/dev_accuracy"][record.iteration] == (
        pytest.approx(record.dev_accuracy))
    assert record.epoch_dev_accuracy == pytest.approx(
        [scalars["epoch/dev_accuracy"][2 * record.iteration + e]
         for e in range(2)])
  used = model.wemem_fit.run.report()["records_used_per_iteration"]
  assert scalars["defense/records_used_per_iteration"] == {
      int(k): float(v) for k, v in used.items()}
  assert "prune_low_magnitude_fc1/threshold:0/threshold" not in scalars


def test_history_json_after_the_fact(tmp_path):
  history = [
      {"iteration": 0, "target_sparsity": 0.0, "train_accuracy": 0.9,
       "dev_accuracy": 0.8, "test_accuracy": float("nan"), "epochs_run": 2,
       "best_epoch": 1, "seconds": 1.5,
       "layer_sparsity": {"fc1": 0.0, "classifier": 0.0}},
      {"iteration": 1, "target_sparsity": 0.5, "train_accuracy": 0.85,
       "dev_accuracy": 0.75, "test_accuracy": 0.7, "epochs_run": 1,
       "best_epoch": 0, "seconds": 1.0,
       "layer_sparsity": {"fc1": 0.5, "classifier": 0.0}}]
  report = {"defense": "swmr", "risky_share": 0.3, "tau_mode": "share",
            "records_used_per_iteration": {"0": 100, "1": 80},
            "shuffle_within_epoch": True, "attack_hidden": [4, 2],
            "epsilon": None}
  fit = loop_lib.FitResult(2, 1, 0.8, [1.2, 0.9], [0.7, 0.8], [], 1.0)
  writer = summaries.IterationSummaries(str(tmp_path / "tb"))
  writer.write_pretraining(fit)
  writer.write_history(json.loads(json.dumps(history)), report)
  writer.close()
  scalars = summaries.read_scalars(str(tmp_path / "tb"))
  assert scalars["prune_low_magnitude_fc1/mask:0/sparsity"] == {0: 0, 1: 0.5}
  assert not any("classifier" in t for t in scalars)  # never pruned
  assert scalars["iteration/test_accuracy"] == {1: pytest.approx(0.7)}
  assert scalars["defense/risky_share"] == {1: pytest.approx(0.3)}
  assert scalars["defense/records_used_per_iteration"] == {0: 100, 1: 80}
  assert not {"defense/tau_mode", "defense/shuffle_within_epoch",
              "defense/attack_hidden", "defense/epsilon",
              "defense/defense"} & set(scalars)
  assert scalars["pretrain/train_loss"] == {0: pytest.approx(1.2),
                                            1: pytest.approx(0.9)}
  assert scalars["pretrain/dev_accuracy"][1] == pytest.approx(0.8)
  assert "epoch/train_loss" not in scalars  # JSON holds no curves
  assert isinstance(wemem_tf.pruning.IterationSummaries("x"),
                    keras.callbacks.Callback)
  with pytest.raises(ValueError, match="log_dir"):
    summaries.IterationSummaries("")
  assert tf.io.gfile.exists(str(tmp_path / "tb"))
