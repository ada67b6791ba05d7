"""Output modification at inference (HAMP's third part), for any defense.

For each query x, a random input r is drawn from the feature domain; the
served scores are the model's scores on r, rearranged so that their ranking
over the classes equals the ranking of the model's scores on x. The
predicted label (top-1) is unchanged, and the served values depend on x only
through that ranking of the classes: the confidence levels a score attack
reads come from r. What is left to an attacker is the ranking, nearly what a
label-only attack has; the label-only bound (docs/method.md §7) is what the
gap attack reaches from the top-1 alone.

The random inputs are uniform bits when every training feature is 0 or 1
(the authors' Location/Purchase/Texas setting), otherwise uniform in each
feature's training range [min, max]. A fresh r is drawn per query, so
repeated queries get different scores, as in HAMP's evaluation. The draws
come from the served model's own generator, seeded with the run's seed: the
same queries in the same order get the same answers in any process (a Ray
worker or the driver), whatever else drew random numbers before.

HAMP (`hamp.py`) serves its models this way; the WeMem defenses can too
(`WeMem.modify_output`, an extension beyond the paper, docs/method.md §5).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras

RANDOM_INPUTS = ("auto", "bits", "uniform")


def rearrange_like(scores: tf.Tensor, template: tf.Tensor) -> tf.Tensor:
  """`template`'s values per row, permuted to rank like `scores`' values.

  Row i of the result holds the values of template[i], placed so that the
  k-th smallest goes to the class where scores[i] has its k-th smallest.
  """
  ranks = tf.argsort(tf.argsort(scores, axis=-1, stable=True), axis=-1,
                     stable=True)
  return tf.gather(tf.sort(template, axis=-1), ranks, batch_dims=1)


@dataclasses.dataclass(frozen=True)
class RandomInputDomain:
  """Where the random inputs are drawn.

  Attributes:
    low, high: float32 arrays of one input's shape: each random feature is
      drawn uniformly from [low, high], or, with `bits`, is low or high
      with probability 1/2 each.
    bits: draw two-valued features instead of uniform ones.
  """
  low: np.ndarray
  high: np.ndarray
  bits: bool

  @classmethod
  def of(cls, x: np.ndarray, random_inputs: str = "auto"
         ) -> "RandomInputDomain":
    """The domain of the training features `x` (n, ...): bits for 0/1
    features under "auto" or "bits", else each feature's [min, max]."""
    if random_inputs not in RANDOM_INPUTS:
      raise ValueError(f"random_inputs must be one of {RANDOM_INPUTS}, got "
                       f"{random_inputs!r}.")
    x = np.asarray(x, np.float32)
    if len(x) == 0:
      raise ValueError("output modification needs training records (its "
                       "random inputs span their feature range).")
    if random_inputs == "auto":
      bits = bool(np.all((x == 0) | (x == 1)))
    else:
      bits = random_inputs == "bits"
    if bits:
      return cls(np.zeros(x.shape[1:], np.float32),
                 np.ones(x.shape[1:], np.float32), True)
    return cls(x.min(axis=0), x.max(axis=0), False)


class OutputModification(keras.layers.Layer):
  """Serves `model`'s scores on random inputs, ranked like its scores on x.

  Args:
    model: a logit-output model.
    domain: where the random inputs are drawn.
    seed: seeds this layer's own random stream (a fresh draw per query,
      independent of TensorFlow's global random state).
  """

  def __init__(self, model: keras.Model, domain: RandomInputDomain,
               seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.model = model
    self.low = tf.constant(np.asarray(domain.low, np.float32))
    self.high = tf.constant(np.asarray(domain.high, np.float32))
    self.bits = bool(domain.bits)
    self.generator = tf.random.Generator.from_seed(int(seed))

  def call(self, inputs):
    logits = self.model(inputs, training=False)
    u = self.generator.uniform(tf.shape(inputs), dtype=tf.float32)
    if self.bits:
      u = tf.cast(u < 0.5, tf.float32)
    random_logits = self.model(self.low + u * (self.high - self.low),
                               training=False)
    return rearrange_like(logits, random_logits)

  def compute_output_shape(self, input_shape):
    return self.model.compute_output_shape(input_shape)


def serve(model: keras.Model, domain: RandomInputDomain, seed: int,
          prefix: str) -> keras.Model:
  """`model` behind output modification: a new functional model (named
  `<model>_<prefix>`) that shares `model`'s weights and outputs the
  rearranged logits (softmax of them = the rearranged probabilities); its
  predicted labels are `model`'s."""
  inputs = keras.Input(model.input_shape[1:])
  outputs = OutputModification(model, domain, seed=seed,
                               name=f"{prefix}_output_modification")(inputs)
  return keras.Model(inputs, outputs, name=f"{model.name}_{prefix}")
