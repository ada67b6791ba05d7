"""Architectures a user might write (not in the zoo), for the tests.

Named on the command line as
`--architecture=wemem_tf/models/testdata/user_models.py:FUNCTION` (or the
dotted module name); each FUNCTION(input_shape, num_classes) returns a
tf_keras model. The good ones output logits; the others are each wrong in
one way that `wemem_tf.models.check_model` refuses.
"""

from typing import Sequence

import tf_keras as keras

layers = keras.layers


def conv_net(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """Not a plain MLP: Conv1D over the features, BatchNorm, Dense (logits).

  Memorization scores train it one model at a time.
  """
  inputs = keras.Input(tuple(input_shape))
  h = layers.Reshape((-1, 1))(inputs)
  h = layers.Conv1D(4, 5, strides=2, activation="relu", name="conv")(h)
  h = layers.BatchNormalization()(h)
  h = layers.Flatten()(h)
  h = layers.Dense(16, activation="relu", name="fc")(h)
  outputs = layers.Dense(num_classes, name="classifier")(h)
  return keras.Model(inputs, outputs, name="user_conv_net")


def small_mlp(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """A plain MLP (Sequential): memorization scores train it vectorized."""
  return keras.Sequential([
      keras.Input(tuple(input_shape)),
      layers.Flatten(),
      layers.Dense(32, activation="relu", name="hidden"),
      layers.Dropout(0.1),
      layers.Dense(num_classes, name="classifier"),
  ], name="user_mlp")


def softmax_net(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """Wrong: probabilities instead of logits."""
  inputs = keras.Input(tuple(input_shape))
  h = layers.Dense(8, activation="relu")(layers.Flatten()(inputs))
  return keras.Model(inputs, layers.Dense(num_classes,
                                          activation="softmax")(h))


class _Subclassed(keras.Model):

  def __init__(self, num_classes):
    super().__init__()
    self.hidden = layers.Dense(8, activation="relu")
    self.out = layers.Dense(num_classes)

  def call(self, x):  # pylint: disable=arguments-differ
    return self.out(self.hidden(x))


def subclassed_net(input_shape: Sequence[int],
                   num_classes: int) -> keras.Model:
  """Wrong: a subclassed model (TFMOT cannot wrap its layers)."""
  model = _Subclassed(num_classes)
  model.build((None, *input_shape))
  return model


def wide_net(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """Wrong: one output more than there are classes."""
  inputs = keras.Input(tuple(input_shape))
  h = layers.Dense(8, activation="relu")(layers.Flatten()(inputs))
  return keras.Model(inputs, layers.Dense(num_classes + 1)(h))


def not_a_model(input_shape: Sequence[int], num_classes: int):
  """Wrong: not a model at all."""
  return [input_shape, num_classes]


NOT_A_FUNCTION = 42
