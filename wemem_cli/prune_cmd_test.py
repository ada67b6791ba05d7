"""`wemem prune --trainer=keras_fit` runs every defense through `fit`."""

import json

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

import wemem_tf  # pylint: disable=unused-import
from wemem_cli import defense_flags
from wemem_cli import prune_cmd
from wemem_tf import data as data_lib
from wemem_tf import memorization
from wemem_tf.pruning import summaries


@pytest.fixture(scope="module")
def scores_file(tmp_path_factory):
  """Memorization scores for every digits record (uniform: the CLI path,
  not the estimate, is under test)."""
  ds = data_lib.load_dataset("digits")
  n = len(ds)
  path = str(tmp_path_factory.mktemp("scores") / "scores.npz")
  memorization.MemScores(
      np.random.default_rng(0).uniform(0, 1, n), np.arange(n),
      ds.fingerprint, np.full(n, -1), np.full(n, -1)).save(path)
  return path


@pytest.mark.parametrize("defense", defense_flags.DEFENSE_NAMES)
def test_prune_with_keras_fit_runs_every_defense(defense, scores_file,
                                                 tmp_path):
  out = tmp_path / defense
  with flagsaver.flagsaver():
    flags.FLAGS(["wemem", "--dataset=digits", f"--output_dir={out}",
                 "--trainer=keras_fit", f"--defense={defense}",
                 f"--memscores={scores_file}", "--target_sparsity=0.5",
                 "--prune_iterations=2", "--epochs_per_iteration=2",
                 "--patience=1", "--pretrain_epochs=2", "--seed=1",
                 "--tau_share=0.3" if defense in ("rmr", "swmr") else
                 "--seed=1"])
    prune_cmd.main(["prune"])
  history = json.loads((out / "history.json").read_text())
  assert [h["iteration"] for h in history] == [0, 1]
  assert all(1 <= h["epochs_run"] <= 2 for h in history)
  assert history[-1]["layer_sparsity"]["fc1"] == pytest.approx(0.5, abs=0.01)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["trainer"] == "keras_fit"
  assert summary["defense"]["defense"] == defense
  if defense == "dp":
    assert summary["defense"]["steps"] > 0 and summary["defense"]["epsilon"] > 0
  if defense in ("rmr", "swmr"):
    assert summary["defense"]["risky_share"] == pytest.approx(0.3, abs=0.01)


# The library's loop here; the model.fit path is summaries_test's.
@pytest.mark.parametrize("trainer", ["loop"])
def test_prune_writes_tensorboard_summaries(trainer, tmp_path):
  out, tb = tmp_path / "run", tmp_path / "tb"
  with flagsaver.flagsaver():
    flags.FLAGS(["wemem", "--dataset=digits", f"--output_dir={out}",
                 f"--trainer={trainer}", f"--tensorboard_dir={tb}",
                 "--target_sparsity=0.5", "--prune_iterations=2",
                 "--epochs_per_iteration=1", "--patience=1",
                 "--pretrain_epochs=2", "--seed=1"])
    prune_cmd.main(["prune"])
  history = json.loads((out / "history.json").read_text())
  scalars = summaries.read_scalars(str(tb))
  for tag in ("iteration/target_sparsity", "iteration/test_accuracy",
              "iteration/epochs_run", "prune_low_magnitude_fc1/mask:0/sparsity",
              "prune_low_magnitude_fc2/mask:0/sparsity"):
    assert set(scalars[tag]) == {0, 1}, tag
  assert not any("classifier" in t for t in scalars)
  for h in history:
    assert scalars["iteration/test_accuracy"][h["iteration"]] == (
        pytest.approx(h["test_accuracy"]))
    assert scalars["prune_low_magnitude_fc1/mask:0/sparsity"][
        h["iteration"]] == pytest.approx(h["layer_sparsity"]["fc1"])
  assert set(scalars["epoch/train_loss"]) == {0, 1}
  assert set(scalars["pretrain/train_loss"]) == {0, 1}
  assert ("prune_low_magnitude_fc1/threshold:0/threshold" in scalars) == (
      trainer == "loop")  # written live, with the model at hand
