"""Property tests of the sliding window (P1 + P2)."""

import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from wemem_tf.defenses import window


@st.composite
def _window_case(draw):
  class_sizes = draw(st.lists(st.integers(0, 40), min_size=1, max_size=6))
  labels = np.repeat(np.arange(len(class_sizes)), class_sizes)
  perm = np.random.default_rng(draw(st.integers(0, 10**6))).permutation(
      len(labels))
  labels = labels[perm]
  scores = np.array(draw(st.lists(
      st.floats(-1, 1, allow_nan=False), min_size=len(labels),
      max_size=len(labels))), np.float64)
  stride = draw(st.integers(1, 10))
  width = draw(st.integers(1, 25))
  order = draw(st.sampled_from(list(window.Order)))
  epochs = draw(st.integers(1, 25))
  return labels, scores, stride, width, order, epochs, len(class_sizes)


@settings(max_examples=150, deadline=None)
@given(_window_case())
def test_each_epoch_window_has_the_right_records_in_order(case):
  labels, scores, stride, width, order, epochs, classes = case
  rng = np.random.default_rng(0)
  orders = window.class_orders(labels, scores, order, classes, rng)
  seen = np.zeros(len(labels), int)
  for epoch in range(epochs):
    per_class = window.window(orders, epoch, stride, width)
    for c in range(classes):
      members = np.flatnonzero(labels == c)
      got = per_class[c]
      start = epoch * stride
      expected_count = max(0, min(width, len(members) - start))
      assert len(got) == expected_count
      assert np.all(labels[got] == c)
      if order is window.Order.HIGH_TO_LOW:
        assert np.all(np.diff(scores[got]) <= 0)
        # The window holds exactly the ranks [start, start + width).
        ranked = np.sort(scores[members])[::-1]
        np.testing.assert_array_equal(scores[got], ranked[start:start + width])
      elif order is window.Order.LOW_TO_HIGH:
        assert np.all(np.diff(scores[got]) >= 0)
        ranked = np.sort(scores[members])
        np.testing.assert_array_equal(scores[got], ranked[start:start + width])
    seen[window.epoch_positions(orders, epoch, stride, width)] += 1
  assert seen.max(initial=0) <= math.ceil(width / stride)
  assert int((seen > 0).sum()) == window.records_ever_used(orders, epochs,
                                                           stride, width)


def test_random_order_is_a_permutation_per_class():
  labels = np.array([0, 1, 0, 1, 0, 2])
  orders = window.class_orders(labels, np.zeros(6), "random", 3,
                               np.random.default_rng(1))
  assert sorted(orders[0]) == [0, 2, 4] and list(orders[2]) == [5]


def test_fractional_windows_scale_the_integer_ones():
  """Half the records per class, half the stride and width: each epoch's
  window covers the same share of the class (a scaled-down rehearsal)."""
  full = {0: np.arange(60)}
  half = {0: np.arange(30)}
  for epoch in range(21):
    big = window.window(full, epoch, 1, 15)[0]
    small = window.window(half, epoch, 0.5, 7.5)[0]
    assert abs(len(small) - len(big) / 2) <= 1
    if big.size:
      assert abs(small[0] - big[0] / 2) <= 1
  used = window.records_ever_used(half, 21, 0.5, 7.5)
  assert used == 17 and window.records_ever_used(full, 21, 1, 15) == 35
  # Integral values keep the method's windows exactly.
  np.testing.assert_array_equal(window.window(full, 3, 2.0, 5.0)[0],
                                np.arange(6, 11))


def test_bad_settings():
  with pytest.raises(ValueError, match="stride"):
    window.validate_window(0, 3)
  with pytest.raises(ValueError, match="width"):
    window.validate_window(1, 0)
  with pytest.raises(ValueError, match="stride"):
    window.validate_window(True, 3)
  with pytest.raises(ValueError, match="width"):
    window.validate_window(1, "15")
  with pytest.raises(ValueError, match="align"):
    window.class_orders(np.zeros(3, int), np.zeros(2), "h2l", 1)
  with pytest.raises(ValueError, match="rng"):
    window.class_orders(np.zeros(3, int), np.zeros(3), "random", 1)
