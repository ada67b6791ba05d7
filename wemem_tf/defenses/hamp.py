"""HAMP (Chen & Pattabiraman, NDSS 2024), applied while fine-tuning.

"Overconfidence is a Dangerous Thing: Mitigating Membership Inference Attacks
by Enforcing Less Confident Prediction." HAMP has three parts, all here:

1. **High-entropy soft labels.** Every training label y becomes the vector
   with probability p* on y and (1 − p*) / (C − 1) on each other class, where
   p* is chosen so that the label's entropy equals γ · log C (γ is the
   "entropy threshold", a fraction of the largest possible entropy). The
   authors find p* by lowering it in steps of 0.01 until the entropy reaches
   the threshold; we solve for it exactly (bisection), so p* may differ from
   theirs by < 0.01.
2. **Entropy regularization.** The training loss is
   KL(soft label ‖ prediction) − α' · H(prediction), averaged over the batch.
   The authors' code takes PyTorch's `kl_div` with its default element-wise
   mean, i.e. the KL divided by C; we keep the KL per record and scale the
   entropy weight instead, α' = α · C, so `alpha` means the same as the
   `--alpha` of their scripts (the objective differs from theirs by the
   constant factor C only).
3. **Output modification at inference** (`inference_model`): the served
   scores are the model's scores on a random input, ranked like its scores
   on the query (`output_modification.py`, which also says how the random
   inputs are drawn; `random_inputs` overrides the choice).

Defaults: γ = 0.5 and α = 0.001, the authors' Location settings (their
CIFAR-10 run uses γ = 0.5, α = 0.005; Texas γ = 0.6, α = 0.01). L2
`weight_decay · w` is added to the gradients; Adam as elsewhere.
"""

import dataclasses
import math
from typing import Any, ClassVar, Dict

import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import output_modification
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib


def soft_label_entropy(p_true: float, num_classes: int) -> float:
  """Entropy (nats) of the label with p_true on one class, the rest even."""
  rest = (1.0 - p_true) / (num_classes - 1)
  terms = [p_true, *([rest] * (num_classes - 1))]
  return float(-sum(p * math.log(p) for p in terms if p > 0))


def top1_probability(num_classes: int, entropy_threshold: float) -> float:
  """p* in [1/C, 1] whose soft label has entropy γ · log C."""
  if num_classes < 2:
    raise ValueError(f"HAMP needs >= 2 classes, got {num_classes}.")
  target = entropy_threshold * math.log(num_classes)
  lo, hi = 1.0 / num_classes, 1.0  # entropy falls from log C to 0 on [lo, hi]
  for _ in range(100):
    mid = 0.5 * (lo + hi)
    if soft_label_entropy(mid, num_classes) >= target:
      lo = mid
    else:
      hi = mid
  return lo


class HAMPStep(loop_lib.TrainStep):
  """KL to the high-entropy soft labels − α·C · prediction entropy, + L2.

  Returns the batch's mean cross-entropy to the hard labels.
  """

  def __init__(self, entropy_threshold: float, alpha: float):
    super().__init__()
    self.entropy_threshold = float(entropy_threshold)
    self.alpha = float(alpha)
    self.p_true = None
    self.num_classes = None

  def build(self, model, config, optimizer=None):
    super().build(model, config, optimizer)
    self.num_classes = int(model.output_shape[-1])
    self.p_true = top1_probability(self.num_classes, self.entropy_threshold)

  def __call__(self, model, xb, yb, weight_decay, kind):
    del kind
    c = self.num_classes
    onehot = tf.one_hot(yb, c)
    soft = onehot * self.p_true + (1.0 - onehot) * ((1.0 - self.p_true) /
                                                    (c - 1))
    log_soft = tf.math.log(soft)

    def objective():
      logits = model(xb, training=True)
      log_p = tf.nn.log_softmax(logits, axis=-1)
      kl = tf.reduce_sum(soft * (log_soft - log_p), axis=-1)
      entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
      loss = tf.reduce_mean(kl) - self.alpha * c * tf.reduce_mean(entropy)
      return loss, tf.reduce_mean(self.loss_fn(yb, logits))

    return self.descend(model, objective, weight_decay)


class HAMPRun(defense_lib.DefenseRun):
  """HAMP on one model's records: the soft labels' top-1 probability and
  the feature domain of the inference-time random inputs."""

  def __init__(self, defense: "HAMP", records, tuning):
    super().__init__(defense, records, tuning)
    self.p_true = top1_probability(records.num_classes,
                                   defense.entropy_threshold)
    self.domain = output_modification.RandomInputDomain.of(
        records.x, defense.random_inputs)

  def train_step(self) -> loop_lib.TrainStep:
    return HAMPStep(self.defense.entropy_threshold, self.defense.alpha)

  def inference_model(self, model: keras.Model) -> keras.Model:
    """`model` behind HAMP's output modification (a new functional model that
    shares `model`'s weights and outputs logits)."""
    if not self.defense.modify_output:
      return model
    return output_modification.serve(model, self.domain, self.seed, "hamp")

  def report(self) -> Dict[str, Any]:
    out = super().report()
    out["soft_label_top1"] = self.p_true
    out["random_inputs_drawn"] = "bits" if self.domain.bits else "uniform"
    return out


@dataclasses.dataclass(frozen=True)
class HAMP(defense_lib.Defense):
  """HAMP (Chen & Pattabiraman 2024): high-entropy soft labels, entropy
  regularization and output modification.

  Attributes:
    entropy_threshold: γ in (0, 1): the soft labels' entropy as a fraction
      of log C (default 0.5).
    alpha: entropy-regularization weight α >= 0 in the authors' convention
      (default 0.001); see the module docstring.
    random_inputs: "auto", "bits" or "uniform": how the inference-time random
      inputs are drawn (see the module docstring).
    modify_output: serve the output-modified model (True, HAMP) or the
      trained model itself (False: training-time parts only, an ablation).
  """
  entropy_threshold: float = settings_lib.setting(
      0.5, "hamp_entropy_threshold",
      "HAMP's entropy threshold γ in (0, 1) (a fraction of log C).",
      low=0, high=1, low_open=True, high_open=True,
      tune=settings_lib.Tune("hamp_entropy_threshold", 0.5, 0.95))
  alpha: float = settings_lib.setting(
      0.001, "hamp_alpha", "HAMP's entropy-regularization weight.", low=0,
      tune=settings_lib.Tune("hamp_alpha", 1e-4, 1e-2, "log"))
  random_inputs: str = settings_lib.setting(
      "auto", "hamp_random_inputs", "How HAMP draws its inference-time "
      "random inputs: auto, bits or uniform.", kind="choice",
      choices=output_modification.RANDOM_INPUTS)
  modify_output: bool = settings_lib.setting(
      True, "hamp_modify_output", "HAMP's output modification at inference.",
      kind="bool", serving_only=True)

  name: ClassVar[str] = "hamp"
  display_name: ClassVar[str] = "HAMP"
  RUN: ClassVar[type] = HAMPRun
  EXPOSED: ClassVar = ("entropy_threshold", "alpha", "modify_output")

  def check_records(self, records, train_config):
    if records.num_classes < 2:
      raise ValueError(f"HAMP needs >= 2 classes, got {records.num_classes}.")
    if len(records.y) == 0:
      raise ValueError("HAMP needs training records (the random inputs of "
                       "output modification span their feature range).")
