"""Known answers of the audit: a model that never saw the audited records
leaks nothing; membership files are validated."""

import numpy as np
import pytest

import wemem_tf
from wemem_eval import audit
from wemem_eval import experiment
from wemem_eval import model_training
from wemem_tf.data import splits as splits_lib
from wemem_tf.pruning import pipeline

ATTACKS = ("conf", "entr", "mentr", "hconf", "nn", "lira_offline",
           "lira_online", "rmia", "gap")


@pytest.fixture(scope="module")
def digits():
  return wemem_tf.data.load_dataset("digits")


def _membership(digits):
  """500 members, 500 non-members, 400 records the model trains on."""
  order = np.random.default_rng(5).permutation(len(digits))
  return order[:500], order[500:1000], order[1000:1400]


def test_model_that_never_saw_the_members_is_at_chance(digits, tmp_path):
  members, non_members, trained = _membership(digits)
  train_config = wemem_tf.TrainConfig(max_epochs=8, patience=2)
  split = splits_lib.ModelSplit(np.sort(trained[:340]), np.sort(trained[340:]),
                                np.sort(trained[340:]))
  model, _, _ = pipeline.pretrain_model(digits, split, 3, "column_fc",
                                        train_config)
  path = str(tmp_path / "never.h5")
  wemem_tf.io_utils.atomic_save_model(model, path)
  config = experiment.ExperimentConfig(
      recipe=model_training.ModelRecipe(train_config=train_config,
                                        target="unpruned"),
      attacks=ATTACKS, num_shadows=1, num_reference_models=4, seed=0)
  membership = audit.Membership(members, non_members, trained)
  result = audit.run_audit(digits, path, membership, config)
  assert result.victim.test_accuracy > 0.8  # a useful model, yet
  for row in result.suite.rows():
    assert abs(row["auc"] - 0.5) <= 0.05, row
  doc = result.to_json()
  assert doc["audit"]["format"] == "keras"
  assert doc["audit"]["output_kind"] == "logits"
  assert doc["audit"]["membership"]["members"] == 500
  # The attacker never gets a record the model saw or is audited on.
  for shadow in result.shadow_models:
    used = np.concatenate([shadow.split.train, shadow.split.dev,
                           shadow.split.test])
    assert not np.intersect1d(used, np.concatenate(
        [members, non_members, trained])).size
  assert set(result.timing) >= {"victim_querying", "shadow_training",
                                "reference_training", "attacks"}


def test_membership_files_are_validated(digits, tmp_path):
  members, non_members, _ = _membership(digits)
  path = str(tmp_path / "m.npz")
  np.savez(path, member=members, nonmember=non_members)
  with pytest.raises(ValueError, match="has arrays .*'member' and "
                     "'non_member'"):
    audit.load_membership(path, digits)
  np.savez(path, member=members, non_member=members[:10])
  membership = audit.load_membership(path, digits)
  with pytest.raises(ValueError, match="10 records .* both members and "
                     "non_members"):
    audit.audit_splits(digits, membership, 0, 2)
  np.savez(path, member=np.array([0, 5000]), non_member=non_members)
  with pytest.raises(ValueError, match=r"members must lie in \[0, 1797\)"):
    audit.audit_splits(digits, audit.load_membership(path, digits), 0, 2)
  np.savez(path, member=np.arange(900), non_member=np.arange(900, 1790))
  with pytest.raises(ValueError, match="the attacker needs >= 20 pool"):
    audit.audit_splits(digits, audit.load_membership(path, digits), 0, 2)
  with pytest.raises(FileNotFoundError):
    audit.load_membership(str(tmp_path / "absent.npz"), digits)
  other = splits_lib.make_splits(len(digits), "f" * 64, 0, 0,
                                 labels=digits.y)
  other.save(str(tmp_path / "splits.npz"))
  with pytest.raises(ValueError, match="belong to dataset fingerprint"):
    audit.load_membership(str(tmp_path / "splits.npz"), digits)


def test_splits_file_gives_the_protocol_splits(digits, tmp_path):
  splits = wemem_tf.data.splits_for(digits, 4, num_shadows=0)
  splits.save(str(tmp_path / "splits.npz"))
  membership = audit.load_membership(str(tmp_path / "splits.npz"), digits)
  got = audit.audit_splits(digits, membership, 0, 3)
  want = wemem_tf.data.splits_for(digits, 4, num_shadows=3)
  for a, b in zip((got.victim,) + got.shadows, (want.victim,) + want.shadows):
    for part in ("train", "dev", "test"):
      np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
