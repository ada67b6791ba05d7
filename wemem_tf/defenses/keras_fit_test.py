"""WeMem defenses through a plain `model.fit`."""

import numpy as np
import pytest

from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.defenses import keras_fit
from wemem_tf.defenses import wemem
from wemem_tf.models import zoo


@pytest.fixture(scope="module")
def digits():
  ds = datasets.load_dataset("digits")
  split = splits_lib.splits_for(ds, seed=0, num_shadows=0).victim
  x, y = ds.take(split.train)
  scores = np.random.default_rng(1).uniform(0, 1, len(y))
  return x, y, split.train, scores


def test_fit_visits_each_epochs_window(digits):
  x, y, index, scores = digits
  feed = keras_fit.DefenseFeed(wemem.RSW(scores=scores, stride=3, width=4),
                               x, y, index=index, num_classes=10)
  for epoch in range(3):
    served = np.concatenate([yb for _, yb in feed.dataset().as_numpy_iterator()])
    assert len(served) == len(feed.defense.epoch_positions(0, epoch)) == 40
    feed.callback().on_epoch_end(epoch)


def test_fit_trains_with_swmr_and_sets_lambda_on_risky_batches(digits):
  x, y, index, scores = digits
  feed = keras_fit.DefenseFeed(wemem.SWMR(scores=scores, width=30, tau=0.5),
                               x, y, index=index, num_classes=10)
  model = zoo.column_fc((64,), 10)
  feed.add_weight_decay_loss(model)
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
  seen = []

  class Probe(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      seen.append((feed.epoch, batch, float(feed.weight_decay.numpy())))

  history = model.fit(feed.dataset(), epochs=2, verbose=0,
                      callbacks=[feed.callback(), Probe()])
  assert np.isfinite(history.history["loss"]).all()
  plan_groups = feed.defense.epoch_plan(0, 0, np.random.default_rng(0))
  assert {round(d, 4) for _, _, d in seen} == {0.1, 0.0005}
  assert any(g == 1 for g in plan_groups.batch_group)
