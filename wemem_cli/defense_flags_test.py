"""The records tuning's memorization scores cover: every record a trial
trains a model on, and no victim dev or test record."""

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from wemem_cli import defense_flags
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib

FLAGS = flags.FLAGS


@pytest.mark.parametrize("split", ["stratified", "unstratified"])
def test_rehearsal_records_cover_every_trial_and_no_victim_test_record(
    split):
  if not FLAGS.is_parsed():
    FLAGS(["wemem"])
  dataset = datasets.load_dataset("digits")
  with flagsaver.flagsaver(split=split):
    records = defense_flags.rehearsal_records(dataset, seed=3)
    config = splits_lib.SplitConfig(stratified=split == "stratified")
    protocol = splits_lib.splits_for(dataset, 3, num_shadows=3, config=config)
  victim = protocol.victim
  assert np.isin(victim.train, records).all()  # the pruned victim's
  assert not np.intersect1d(records, np.concatenate(
      [victim.dev, victim.test])).size
  for stream in range(4):
    rehearsal = splits_lib.scaled_rehearsal_splits(
        protocol, config, stream=stream, labels=dataset.y)
    # The rehearsal's models train on its pool (victim and shadows) and its
    # reference models on pool and held-out records alike.
    used = np.union1d(rehearsal.pool, rehearsal.heldout)
    assert np.isin(used, records).all(), stream
