"""SAMIA (Yuan & Zhang 2022): a small transformer encoder over per-class
triples.

Each record becomes a sequence of c tokens, one per class c:
(posterior p_c, log(1 + sensitivity_c), one-hot label [c == y]), where the
sensitivity is `ModelQuery.sensitivity` (mean |Δ posterior| / ε over m = 10
Gaussian input perturbations of scale ε = 1e-3); log1p tames its range.
Tokens are embedded by one Dense layer plus a learned per-class embedding,
pass through `samia_layers` post-norm encoder blocks (multi-head
self-attention, feed-forward 2d, dropout 0.1), are mean-pooled and mapped to
2 logits. Training, balancing, dev split and threshold choice are those of
`nn.TrainedAttackModel`.
"""

from typing import Tuple

import numpy as np

from attacks import base
from attacks import inputs as inputs_lib
from attacks import nn
from wemem_tf._keras import keras

layers = keras.layers

DROPOUT = 0.1


def triples(outputs: inputs_lib.ModelOutputs) -> np.ndarray:
  """Per-class (p_c, log1p(sensitivity_c), [c == y]), float32 (n, c, 3)."""
  if outputs.sensitivity is None:
    raise ValueError("SAMIA needs sensitivity; query the model with "
                     "with_sensitivity=True.")
  onehot = np.eye(outputs.num_classes)[outputs.labels]
  return np.stack([outputs.probs, np.log1p(outputs.sensitivity), onehot],
                  axis=-1).astype(np.float32)


class ClassEmbedding(layers.Layer):
  """Adds a learned vector per token position (class), (b, c, d) -> same."""

  def build(self, input_shape):
    self.table = self.add_weight(
        name="table", shape=(int(input_shape[1]), int(input_shape[2])),
        initializer=keras.initializers.RandomNormal(stddev=0.02))
    super().build(input_shape)

  def call(self, inputs):
    return inputs + self.table[None]


def samia_model(input_shape: Tuple[int, ...], width: int = 32,
                heads: int = 4, num_layers: int = 2) -> keras.Model:
  """Transformer encoder over (classes, 3) tokens → 2 logits."""
  inputs = keras.Input(input_shape)
  h = layers.Dense(width, name="token_embedding")(inputs)
  h = ClassEmbedding(name="class_embedding")(h)
  for i in range(num_layers):
    attended = layers.MultiHeadAttention(
        heads, key_dim=width // heads, dropout=DROPOUT,
        name=f"block{i + 1}_attention")(h, h)
    h = layers.LayerNormalization(name=f"block{i + 1}_norm1")(
        layers.Add()([h, layers.Dropout(DROPOUT)(attended)]))
    ff = layers.Dense(2 * width, activation="relu",
                      name=f"block{i + 1}_ff1")(h)
    ff = layers.Dense(width, name=f"block{i + 1}_ff2")(ff)
    h = layers.LayerNormalization(name=f"block{i + 1}_norm2")(
        layers.Add()([h, layers.Dropout(DROPOUT)(ff)]))
  h = layers.GlobalAveragePooling1D()(h)
  outputs = layers.Dense(2, name="attack_logits")(h)
  return keras.Model(inputs, outputs, name="samia")


class SamiaAttack(nn.TrainedAttackModel):
  """SAMIA on shadow outputs with sensitivity."""
  name = "samia"
  needs_sensitivity = True

  def features(self, outputs: inputs_lib.ModelOutputs) -> np.ndarray:
    return triples(outputs)

  def build_model(self, input_shape: Tuple[int, ...]) -> keras.Model:
    return samia_model(input_shape, self.options.samia_width,
                       self.options.samia_heads, self.options.samia_layers)

  def score(self, query: base.TargetQuery) -> np.ndarray:
    if query.records.sensitivity is None:
      raise ValueError("SAMIA needs the target's sensitivity; query it with "
                       "with_sensitivity=True.")
    return super().score(query)


def samia(options: base.AttackOptions = base.AttackOptions()) -> SamiaAttack:
  return SamiaAttack(options)
