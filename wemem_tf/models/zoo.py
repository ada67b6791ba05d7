"""Model builders of the paper's architectures, in Keras 2 (tf_keras).

Every builder takes `input_shape` (without the batch axis) and `num_classes`
and returns an uncompiled functional model whose output is **logits**, shape
(batch, num_classes); apply softmax for probabilities. The final Dense layer is
named "classifier" (not pruned by default).
"""

from typing import Callable, Dict, Sequence

from wemem_tf._keras import keras

layers = keras.layers


def _check(input_shape: Sequence[int], num_classes: int, min_rank: int = 1,
           max_rank: int = 3) -> tuple:
  shape = tuple(int(d) for d in input_shape)
  if not min_rank <= len(shape) <= max_rank or any(d <= 0 for d in shape):
    raise ValueError(f"input_shape must have {min_rank}..{max_rank} positive "
                     f"dimensions (no batch axis), got {tuple(input_shape)}.")
  if int(num_classes) < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
  return shape


def column_fc(input_shape: Sequence[int], num_classes: int,
              dropout: float = 0.1) -> keras.Model:
  """ColumnFC: Dense(256)-Dropout-Dense(128)-Dropout-Dense(classes)."""
  shape = _check(input_shape, num_classes)
  inputs = keras.Input(shape)
  h = layers.Flatten()(inputs) if len(shape) > 1 else inputs
  h = layers.Dense(256, activation="relu", name="fc1")(h)
  h = layers.Dropout(dropout)(h)
  h = layers.Dense(128, activation="relu", name="fc2")(h)
  h = layers.Dropout(dropout)(h)
  outputs = layers.Dense(num_classes, name="classifier")(h)
  return keras.Model(inputs, outputs, name="column_fc")


def _image_shape(input_shape, num_classes):
  shape = _check(input_shape, num_classes, 2, 3)
  return shape if len(shape) == 3 else shape + (1,)


def small_cnn(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """Two conv blocks and a dense layer, for 28×28 or 32×32 images."""
  shape = _image_shape(input_shape, num_classes)
  inputs = keras.Input(shape)
  h = layers.Reshape(shape)(inputs) if len(input_shape) == 2 else inputs
  h = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(h)
  h = layers.MaxPooling2D()(h)
  h = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(h)
  h = layers.MaxPooling2D()(h)
  h = layers.Flatten()(h)
  h = layers.Dense(128, activation="relu", name="fc1")(h)
  outputs = layers.Dense(num_classes, name="classifier")(h)
  return keras.Model(inputs, outputs, name="small_cnn")


def _conv_bn_relu(h, filters, stride=1, name=None, relu=True):
  h = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                    name=name)(h)
  h = layers.BatchNormalization()(h)
  return layers.ReLU()(h) if relu else h


def _basic_block(h, filters, stride, name):
  shortcut = h
  out = _conv_bn_relu(h, filters, stride, name=f"{name}_conv1")
  out = _conv_bn_relu(out, filters, 1, name=f"{name}_conv2", relu=False)
  if stride != 1 or h.shape[-1] != filters:
    shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                             name=f"{name}_shortcut")(h)
    shortcut = layers.BatchNormalization()(shortcut)
  return layers.ReLU()(layers.Add()([out, shortcut]))


def resnet18(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """ResNet-18, CIFAR variant (3×3 stem, no max-pool)."""
  shape = _image_shape(input_shape, num_classes)
  inputs = keras.Input(shape)
  h = _conv_bn_relu(inputs, 64, name="stem_conv")
  for stage, filters in enumerate((64, 128, 256, 512)):
    for block in range(2):
      stride = 2 if stage > 0 and block == 0 else 1
      h = _basic_block(h, filters, stride, f"stage{stage + 1}_block{block + 1}")
  h = layers.GlobalAveragePooling2D()(h)
  outputs = layers.Dense(num_classes, name="classifier")(h)
  return keras.Model(inputs, outputs, name="resnet18")


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M")


def vgg16_bn(input_shape: Sequence[int], num_classes: int) -> keras.Model:
  """VGG-16 with batch norm, CIFAR variant (one Dense classifier)."""
  shape = _image_shape(input_shape, num_classes)
  inputs = keras.Input(shape)
  h = inputs
  conv = 0
  for item in _VGG16:
    if item == "M":
      if h.shape[1] > 1:
        h = layers.MaxPooling2D()(h)
    else:
      conv += 1
      h = _conv_bn_relu(h, item, name=f"conv{conv}")
  h = layers.Flatten()(h)
  outputs = layers.Dense(num_classes, name="classifier")(h)
  return keras.Model(inputs, outputs, name="vgg16_bn")


BUILDERS: Dict[str, Callable[..., keras.Model]] = {
    "column_fc": column_fc,
    "small_cnn": small_cnn,
    "resnet18": resnet18,
    "vgg16_bn": vgg16_bn,
}

DEFAULT_ARCHITECTURE = {"digits": "column_fc", "location": "column_fc",
                        "purchase100": "column_fc", "texas100": "column_fc",
                        "mnist": "small_cnn", "cifar10": "resnet18"}


def build_model(name: str, input_shape: Sequence[int],
                num_classes: int) -> keras.Model:
  """Builds a registered architecture by name (see `BUILDERS`)."""
  if name not in BUILDERS:
    raise ValueError(f"unknown architecture {name!r}; choose one of "
                     f"{sorted(BUILDERS)}.")
  return BUILDERS[name](input_shape, num_classes)
