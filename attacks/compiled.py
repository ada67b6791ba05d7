"""Attack-model trainers compiled once per process and reused.

The trained attacks (NN, NN-top3, NN-cls, SAMIA) fit a fresh attack model on
every configuration of a run. Building and tracing its compiled epoch costs
more than training it for the NN attacks and about a third of SAMIA's time
(docs/method.md §7), and it is the same graph every time: same architecture,
input shape and optimizer settings. `AttackTrainers` keeps one compiled
`TrainingLoop` per such key and, for each new fit, resets it to the state a
fresh build would have:

* the model's weights (including batch-norm statistics) to those built
  right after `keras.utils.set_random_seed(seed)`;
* the optimizer's variables (step count, moments) to their values at build;
* every `GeneratorDropout` layer's random generator to a seed derived from
  the fit's seed and the layer's position.

So a fit's result depends only on its inputs and seed, never on what the
process fitted before (a resumed run gives the numbers of an uninterrupted
one). The dropout layers of the attack models are `GeneratorDropout`, whose
random state can be reset; Keras' default dropout draws from stateful
kernels that a reused graph cannot rewind.

Several fitted attacks may share one trainer (e.g. the `nn` attacks of two
configurations). Each keeps its fitted weights (`Lease.weights`), and
`Lease.activate` loads them before it scores, so an attack always scores
with its own model. Fits share state, so one process fits and scores its
attacks one at a time (as the suite does); parallel studies use processes
(Ray workers), each with its own trainers.
"""

import collections
import dataclasses
from typing import Callable, Hashable, List, Optional

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.training import loop as loop_lib

# Trainers kept per process; each holds a small model and its traced graphs.
MAX_TRAINERS = 8


class GeneratorDropout(keras.layers.Layer):
  """Inverted dropout drawing its mask from a resettable generator.

  Same semantics as `keras.layers.Dropout(rate)`: in training, each input
  is zeroed with probability `rate` and the rest scaled by 1 / (1 − rate);
  otherwise the identity. The mask comes from a `tf.random.Generator`
  that `reset(seed)` rewinds, also inside a compiled function.
  """

  def __init__(self, rate: float, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"dropout rate must lie in [0, 1), got {rate}.")
    self.rate = float(rate)
    self.seed = int(seed)
    with tf.init_scope():
      self.generator = tf.random.Generator.from_seed(self.seed)

  def reset(self, seed: int) -> None:
    """Restarts the mask sequence from `seed`."""
    self.generator.reset_from_seed(seed)

  def call(self, inputs, training=None):
    if not training or self.rate == 0.0:
      return inputs
    keep = self.generator.uniform(tf.shape(inputs)) >= self.rate
    return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

  def get_config(self):
    return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class AttentionWithGeneratorDropout(keras.layers.MultiHeadAttention):
  """Keras `MultiHeadAttention` whose attention-weight dropout is a
  `GeneratorDropout` (same rate, same place)."""

  def _build_attention(self, rank):
    super()._build_attention(rank)
    self._dropout_layer = GeneratorDropout(self._dropout,
                                           name="attention_dropout")


def dropout_layers(model: keras.Model) -> List[GeneratorDropout]:
  """The model's `GeneratorDropout` layers, in a fixed order."""
  return [m for m in model.submodules if isinstance(m, GeneratorDropout)]


def reset_dropout(model: keras.Model, seed: int) -> None:
  """Resets each `GeneratorDropout` of `model` to its own stream of `seed`
  (layer i: the generator seeded with SeedSequence([seed, i]))."""
  for i, layer in enumerate(dropout_layers(model)):
    layer.reset(int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))


@dataclasses.dataclass
class Lease:
  """One fit's use of a shared trainer.

  Attributes:
    loop: the trainer's compiled loop (its model is shared).
    trainer: the shared trainer; its `owner` is the lease whose weights
      the model holds now.
    weights: the fitted weights (set by `keep`), loaded by `activate`.
  """
  loop: loop_lib.TrainingLoop
  trainer: "_Trainer"
  weights: Optional[List[np.ndarray]] = None

  def keep(self) -> None:
    """Records the model's current weights as this fit's result."""
    self.weights = self.loop.model.get_weights()
    self.trainer.owner = self

  def activate(self) -> loop_lib.TrainingLoop:
    """The loop, its model holding this lease's fitted weights."""
    if self.trainer.owner is not self:
      if self.weights is None:
        raise ValueError("the attack model was refitted or never fitted.")
      self.loop.model.set_weights(self.weights)
      self.trainer.owner = self
    return self.loop


@dataclasses.dataclass
class _Trainer:
  loop: loop_lib.TrainingLoop
  initial_weights: List[np.ndarray]
  initial_optimizer: List[np.ndarray]
  owner: Optional[Lease] = None

  def reset(self, seed: int) -> None:
    self.loop.model.set_weights(self.initial_weights)
    for variable, value in zip(self.loop.train_step.optimizer.variables,
                               self.initial_optimizer):
      variable.assign(value)
    reset_dropout(self.loop.model, seed)
    self.owner = None


class AttackTrainers:
  """Compiled attack-model trainers, one per key (least recently used
  dropped beyond `max_trainers`)."""

  def __init__(self, max_trainers: int = MAX_TRAINERS):
    self.max_trainers = max_trainers
    self._trainers: "collections.OrderedDict[Hashable, _Trainer]" = (
        collections.OrderedDict())
    self.builds = 0

  def lease(self, key: Hashable, build: Callable[[], keras.Model],
            config: loop_lib.TrainConfig, seed: int) -> Lease:
    """A compiled loop at the state of a fresh `build()` under `seed`.

    Args:
      key: identifies the graph: everything `build` and `config` depend on
        (architecture, input shape, settings), and the seed.
      build: makes the attack model (called after
        `keras.utils.set_random_seed(seed)`, only on a new key).
      config: the loop's optimizer settings.
      seed: the fit's seed (weights at build, dropout streams).
    """
    keras.utils.set_random_seed(seed)
    trainer = self._trainers.pop(key, None)
    if trainer is None:
      loop = loop_lib.TrainingLoop(build(), config)
      trainer = _Trainer(
          loop, loop.model.get_weights(),
          [v.numpy() for v in loop.train_step.optimizer.variables])
      self.builds += 1
    self._trainers[key] = trainer
    while len(self._trainers) > self.max_trainers:
      self._trainers.popitem(last=False)
    trainer.reset(seed)
    return Lease(trainer.loop, trainer)

  def clear(self) -> None:
    self._trainers.clear()


# The process's trainers (used by `attacks.nn.TrainedAttackModel`).
TRAINERS = AttackTrainers()
