"""Our results in tensorflow-privacy's privacy report: the metadata rules,
losses from the queried outputs, results rebuilt from saved JSON and scores
equal to the suite's, and tensorflow-privacy's own plot functions on them
(synthetic scores; fast)."""

import json

import matplotlib
import numpy as np
import pytest
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import data_structures as tfp_ds
from tensorflow_privacy.privacy.privacy_tests.membership_inference_attack import privacy_report as tfp_report

from attacks import base
from attacks import inputs
from attacks import metrics
from attacks import privacy_report
from attacks import registry
from wemem_tf import io_utils

PNG = b"\x89PNG\r\n\x1a\n"
ATTACKS = ("conf", "nn", "lira_online")


def test_epoch_num_rule():
  # Per-iteration results: the pruning iteration.
  assert [privacy_report.epoch_num("pruned", 5, k) for k in range(5)] == [
      0, 1, 2, 3, 4]
  # Otherwise the final iteration of a pruned model, 0 for the unpruned one.
  assert privacy_report.epoch_num("pruned", 5) == 4
  assert privacy_report.epoch_num("unpruned", 5) == 0
  with pytest.raises(ValueError, match="no pruning iteration"):
    privacy_report.epoch_num("pruned", 5, 5)
  with pytest.raises(ValueError, match="no pruning iteration"):
    privacy_report.epoch_num("unpruned", 5, 1)
  with pytest.raises(ValueError, match="target"):
    privacy_report.epoch_num("dense", 5)


def test_variant_label_rule():
  label = privacy_report.variant_label
  assert label("unpruned", "swmr") == "unpruned"
  assert label("pruned", None) == "base"
  assert label("pruned", "none") == "base"
  assert label("pruned", "swmr") == "swmr"
  assert label("pruned", {"name": "hamp", "entropy": 0.9}) == "hamp"

  class Defense:
    name = "rsw"
  assert label("pruned", Defense()) == "rsw"


def _outputs(rng, n, shift):
  logits = rng.normal(0, 1, (n, 3))
  labels = rng.integers(0, 3, n)
  logits[np.arange(n), labels] += shift
  return inputs.ModelOutputs.from_logits(logits, labels)


def test_losses_are_the_victims_mean_cross_entropy():
  rng = np.random.default_rng(0)
  members, non_members = _outputs(rng, 40, 3.0), _outputs(rng, 30, 1.0)
  target = base.TargetData(members, non_members)
  metadata = privacy_report.victim_metadata(target, 0.95, 0.7, "base", 4)
  for loss, outputs in ((metadata.loss_train, members),
                        (metadata.loss_test, non_members)):
    p = np.exp(outputs.logits) / np.exp(outputs.logits).sum(1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(len(outputs)), outputs.labels]))
    assert loss == pytest.approx(expected, rel=1e-12)
  assert metadata.loss_train < metadata.loss_test
  assert (metadata.accuracy_train, metadata.accuracy_test,
          metadata.model_variant_label, metadata.epoch_num) == (
              0.95, 0.7, "base", 4)
  doc = json.loads(json.dumps(privacy_report.metadata_to_json(metadata)))
  assert set(doc) == {"accuracy_train", "accuracy_test", "loss_train",
                      "loss_test", "model_variant_label", "epoch_num"}
  assert privacy_report.metadata_from_json(doc) == metadata
  # From the outputs alone (suite.run_attacks without metadata).
  alone = privacy_report.target_metadata(target)
  assert alone.accuracy_train == np.mean(members.correct())
  assert alone.accuracy_test == np.mean(non_members.correct())
  assert (alone.loss_train, alone.loss_test) == (metadata.loss_train,
                                                 metadata.loss_test)
  assert (alone.model_variant_label, alone.epoch_num) == (
      "Default model variant", 0)


def _suite(rng, shift, with_ids=True):
  out = []
  for i, name in enumerate(ATTACKS):
    out.append(metrics.evaluate(
        name, rng.normal(shift * (i + 1), 1, 60), rng.normal(0, 1, 50), 0.5,
        attack_type=registry.make_attack(name).attack_type,
        member_ids=np.arange(60) if with_ids else None,
        non_member_ids=np.arange(60, 110) if with_ids else None,
        bootstrap_resamples=0))
  return out


def _metadata(label, epoch, accuracy):
  return tfp_ds.PrivacyReportMetadata(
      accuracy_train=accuracy, accuracy_test=accuracy - 0.2, loss_train=0.1,
      loss_test=0.9, model_variant_label=label, epoch_num=epoch)


def test_results_rebuilt_from_scores_equal_the_suites(tmp_path):
  rng = np.random.default_rng(1)
  suite = _suite(rng, 0.4)
  original = metrics.to_attack_results(suite, _metadata("base", 2, 0.9))
  path = str(tmp_path / "scores.npz")
  io_utils.atomic_save_npz(path, **privacy_report.score_arrays(suite, "it2_"))
  arrays = io_utils.load_npz(path)
  rebuilt = privacy_report.attack_results_from_scores(
      ATTACKS, arrays, _metadata("base", 2, 0.9), prefix="it2_")
  a, b = original.calculate_pd_dataframe(), rebuilt.calculate_pd_dataframe()
  assert a.equals(b)
  for x, y in zip(original.single_attack_results,
                  rebuilt.single_attack_results):
    assert str(x.attack_type) == str(y.attack_type)
    assert x.attack_type.is_trained_attack == y.attack_type.is_trained_attack
    np.testing.assert_array_equal(x.train_indices, y.train_indices)
  # nn trains a model (tensorflow-privacy's notion), conf does not.
  trained = {str(r.attack_type): r.attack_type.is_trained_attack
             for r in rebuilt.single_attack_results}
  assert trained == {"CONF": False, "NN": True, "LIRA_ONLINE": False}
  with pytest.raises(KeyError, match="gap"):
    privacy_report.attack_results_from_scores(("gap",), arrays, None)


def _write_experiment(folder, suite, metadata, old=False):
  folder.mkdir(parents=True)
  doc = {"attacks": [r.to_json() for r in suite], "target": "pruned",
         "defense": None, "victim_train_accuracy": 0.9,
         "victim_test_accuracy": 0.7,
         "settings": {"pruning": {"num_iterations": 5}}}
  if not old:
    doc[privacy_report.METADATA_KEY] = privacy_report.metadata_to_json(
        metadata)
  io_utils.atomic_write_json(str(folder / "attacks.json"), doc)
  io_utils.atomic_save_npz(str(folder / "attack_scores.npz"),
                           **privacy_report.score_arrays(suite))


def test_load_attack_results_from_an_experiment_directory(tmp_path):
  rng = np.random.default_rng(2)
  suite = _suite(rng, 0.3)
  metadata = _metadata("swmr", 4, 0.8)
  _write_experiment(tmp_path / "new", suite, metadata)
  loaded = privacy_report.load_attack_results(str(tmp_path / "new"))
  assert loaded.privacy_report_metadata == metadata
  assert loaded.calculate_pd_dataframe().equals(
      metrics.to_attack_results(suite, metadata).calculate_pd_dataframe())
  relabelled = privacy_report.load_attack_results(str(tmp_path / "new"),
                                                  "other")
  assert relabelled.privacy_report_metadata.model_variant_label == "other"
  # attacks.json written before the metadata was stored: what it says.
  _write_experiment(tmp_path / "old", suite, metadata, old=True)
  old = privacy_report.load_attack_results(str(tmp_path / "old"))
  assert old.privacy_report_metadata == tfp_ds.PrivacyReportMetadata(
      accuracy_train=0.9, accuracy_test=0.7, model_variant_label="base",
      epoch_num=4)


def test_tf_privacy_plots_run_on_our_results(tmp_path):
  rng = np.random.default_rng(3)
  by_epochs, across = [], []
  for label, shift in (("base", 0.5), ("swmr", 0.1)):
    for epoch in range(3):
      by_epochs.append(metrics.to_attack_results(
          _suite(rng, shift * (epoch + 1), with_ids=False),
          _metadata(label, epoch, 0.7 + 0.1 * epoch)))
    across.append(by_epochs[-1])
  for results in (by_epochs, across):
    for r in results:
      meta = r.privacy_report_metadata
      assert all(getattr(meta, f) is not None
                 for f in privacy_report.METADATA_FIELDS)
  # tensorflow-privacy's own functions accept them ...
  collection = tfp_ds.AttackResultsCollection(by_epochs)
  backend = matplotlib.get_backend()
  with privacy_report._agg_pyplot() as plt:  # pylint: disable=protected-access
    for plot in (tfp_report.plot_by_epochs,
                 tfp_report.plot_privacy_vs_accuracy):
      fig = plot(collection, list(privacy_report.PRIVACY_METRICS))
      assert len(fig.axes) == 3
      plt.close(fig)
  # ... and ours write them as PNGs: one line per label and attack.
  path = tmp_path / "plots" / "privacy_report.png"
  fig = privacy_report.plot_by_epochs(by_epochs, str(path))
  assert path.read_bytes()[:8] == PNG
  assert [ax.get_title() for ax in fig.axes] == [
      "AUC for Entire dataset", "Attacker advantage for Entire dataset",
      "Positive predictive value for Entire dataset"]
  first = fig.axes[0].lines
  assert len(first) == 2 * len(ATTACKS)
  np.testing.assert_array_equal(first[0].get_xdata(), [0, 1, 2])
  np.testing.assert_allclose(
      first[0].get_ydata(),
      [r.single_attack_results[0].get_auc() for r in by_epochs[:3]])
  legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
  assert legend[0] == "base - CONF" and legend[-1] == "swmr - LIRA_ONLINE"
  path = tmp_path / "plots" / "privacy_vs_accuracy.png"
  fig = privacy_report.plot_privacy_vs_accuracy(
      tfp_ds.AttackResultsCollection(across), str(path))
  assert path.read_bytes()[:8] == PNG
  # One result per label: single points, drawn with markers.
  line = fig.axes[0].lines[0]
  assert len(line.get_xdata()) == 1 and line.get_marker() == "o"
  assert matplotlib.get_backend() == backend
  with pytest.raises(ValueError, match="no attack results"):
    privacy_report.plot_by_epochs([])
  # What the issue reported: no epoch_num, tensorflow-privacy refuses.
  bare = metrics.to_attack_results(_suite(rng, 0.2),
                                   tfp_ds.PrivacyReportMetadata())
  with pytest.raises(ValueError, match="epoch_num"):
    privacy_report.plot_by_epochs([bare])
