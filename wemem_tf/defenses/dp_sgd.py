"""DP-SGD (Abadi et al. 2016) through tensorflow-privacy's Keras DP optimizer.

Fine-tuning steps use `tensorflow_privacy.DPKerasAdamOptimizer` (Adam on
privatized gradients): each record's gradient is clipped to L2 norm
`l2_norm_clip` (microbatches = batch size, i.e. one record per microbatch),
the clipped gradients are summed, Gaussian noise of standard deviation
`noise_multiplier · l2_norm_clip` is added, and the sum is divided by the
batch size. The per-record gradients come from the optimizer's own
vectorized Jacobian inside the compiled step. The library's L2 term
`weight_decay · w` is added to the *privatized* gradient (a data-independent
post-processing step, so it costs no privacy).

`report()` gives ε at δ = 1/n (n = fine-tuning records) for the steps that
actually ran (early stopping included), with RDP accounting
(`dp_accounting`, as tensorflow-privacy's `compute_dp_sgd_privacy_statement`
does, whose text is included):

* `epsilon`: each record is used once per epoch (true of the shuffled epochs
  run here), composed over the epochs run — a guarantee for this training.
* `epsilon_poisson`: the customary figure that assumes Poisson sampling with
  rate batch/n over the steps run; it is not a proven bound for shuffled
  batches, but it is what DP-SGD papers usually quote.

Both protect every checkpoint, not just the final model. They cover the
defended fine-tuning only: the model that was pre-trained before pruning saw
the same records without DP, so the pipeline as a whole has no formal DP
guarantee (the same holds for the other defenses compared here).

Settings: noise multiplier ∈ {0.01, 0.1, 1} in WeMem (docs/method.md §6; default
1.0), clip 1.0.
"""

import dataclasses
import math
from typing import Any, ClassVar, Dict, List, Optional

import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import loop as loop_lib


def epsilon_per_epoch(noise_multiplier: float, epochs: int,
                      delta: float) -> float:
  """ε when every record is in exactly one batch per epoch, over `epochs`."""
  import dp_accounting  # pylint: disable=g-import-not-at-top
  if epochs <= 0:
    return 0.0
  event = dp_accounting.SelfComposedDpEvent(
      dp_accounting.GaussianDpEvent(noise_multiplier), int(epochs))
  return float(dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(
      delta))


def epsilon_poisson(noise_multiplier: float, sampling_rate: float, steps: int,
                    delta: float) -> float:
  """ε assuming Poisson sampling at `sampling_rate` for `steps` steps."""
  import dp_accounting  # pylint: disable=g-import-not-at-top
  if steps <= 0:
    return 0.0
  event = dp_accounting.SelfComposedDpEvent(
      dp_accounting.PoissonSampledDpEvent(
          min(1.0, sampling_rate),
          dp_accounting.GaussianDpEvent(noise_multiplier)), int(steps))
  return float(dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(
      delta))


class DPSGDStep(loop_lib.TrainStep):
  """A DP-Adam update with per-record clipping and Gaussian noise.

  Counts its steps in `steps` (a variable) for privacy accounting. Returns
  the batch's mean cross-entropy.
  """

  def __init__(self, l2_norm_clip: float, noise_multiplier: float):
    super().__init__()
    self.l2_norm_clip = float(l2_norm_clip)
    self.noise_multiplier = float(noise_multiplier)
    self.steps: Optional[tf.Variable] = None

  def build(self, model, config, optimizer=None):
    """Builds tensorflow-privacy's DP Adam at `config.learning_rate`.

    In `model.fit`, `optimizer` is the compiled one: a tensorflow-privacy
    DP Keras optimizer is used as it is; a plain Adam is replaced by DP Adam
    with the same learning rate; any other optimizer is refused.
    """
    # Imported here: tensorflow-privacy takes seconds to import.
    import tensorflow_privacy  # pylint: disable=g-import-not-at-top
    if optimizer is not None and hasattr(optimizer, "_compute_gradients") \
        and hasattr(optimizer, "_noise_multiplier"):
      self.optimizer = optimizer
    elif optimizer is None or isinstance(optimizer, (
        keras.optimizers.Adam, keras.optimizers.legacy.Adam)):
      self.optimizer = tensorflow_privacy.DPKerasAdamOptimizer(
          l2_norm_clip=self.l2_norm_clip,
          noise_multiplier=self.noise_multiplier,
          num_microbatches=None,  # one record per microbatch
          learning_rate=config.learning_rate)
    else:
      raise ValueError(
          f"DP-SGD trains with tensorflow-privacy's DP Adam; the model was "
          f"compiled with {type(optimizer).__name__}. Compile with Adam (its "
          "learning rate is kept) or a tensorflow_privacy DP Keras "
          "optimizer.")
    # Slots and hyperparameter variables now, not while tracing.
    self.optimizer._create_all_weights(model.trainable_variables)  # pylint: disable=protected-access
    self.steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                             name="dp_sgd_steps")

  def __call__(self, model, xb, yb, weight_decay, kind):
    del kind
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
      per_record = self.loss_fn(yb, model(xb, training=True))
    # The DP optimizer's gradient path (what `minimize` calls): per-record
    # Jacobian, clipping, noise. Called directly so that the weight decay can
    # be added to the privatized gradient before it is applied.
    grads_and_vars = self.optimizer._compute_gradients(  # pylint: disable=protected-access
        per_record, variables, tape=tape)
    grads = [g + weight_decay * v for g, v in grads_and_vars]
    loop_lib.apply_gradients(self.optimizer, zip(grads, variables))
    # Counted after the batch exists: in `model.fit`, the call that finds
    # the epoch's data exhausted must not count a step.
    with tf.control_dependencies(grads):
      self.steps.assign_add(1)
    return tf.reduce_mean(per_record)


class DPSGDRun(defense_lib.DefenseRun):
  """DP-SGD on one model's records: counts the DP steps for accounting.

  Every epoch visits every record once (the inherited shuffled plan): what
  `epsilon` (per-epoch accounting) assumes. Subclasses must keep this.
  """

  def __init__(self, defense: "DPSGD", records, tuning):
    super().__init__(defense, records, tuning)
    self._steps: List[DPSGDStep] = []

  def train_step(self) -> loop_lib.TrainStep:
    step = DPSGDStep(self.defense.l2_norm_clip, self.defense.noise_multiplier)
    self._steps.append(step)
    return step

  def steps_run(self) -> int:
    """DP steps the most recently created step ran."""
    if not self._steps or self._steps[-1].steps is None:
      return 0
    return int(self._steps[-1].steps.numpy())

  def privacy(self, steps: Optional[int] = None) -> Dict[str, Any]:
    """ε at δ for `steps` DP steps (default: the steps run) on the records."""
    d = self.defense
    n = len(self.records.y)
    batch = min(self.train_config.batch_size, n)
    steps = self.steps_run() if steps is None else int(steps)
    batches_per_epoch = math.ceil(n / batch)
    epochs = math.ceil(steps / batches_per_epoch)
    delta = d.delta if d.delta is not None else 1.0 / n
    out = {
        "epsilon": epsilon_per_epoch(d.noise_multiplier, epochs, delta),
        "epsilon_poisson": epsilon_poisson(d.noise_multiplier, batch / n,
                                           steps, delta),
        "delta": delta,
        "steps": steps,
        "epochs": epochs,
        "num_examples": n,
        "batch_size": batch,
        "accounting": "RDP; epsilon: each record once per epoch over the "
                      "epochs run; epsilon_poisson: Poisson sampling at rate "
                      "batch_size/num_examples over the steps run. Covers "
                      "the DP fine-tuning only, not pre-training.",
    }
    if steps > 0:
      import tensorflow_privacy  # pylint: disable=g-import-not-at-top
      out["statement"] = tensorflow_privacy.compute_dp_sgd_privacy_statement(
          number_of_examples=n, batch_size=batch,
          num_epochs=steps * batch / n, noise_multiplier=d.noise_multiplier,
          delta=delta, used_microbatching=False)
    return out

  def report(self) -> Dict[str, Any]:
    out = super().report()
    out.update(self.privacy())
    return out


@dataclasses.dataclass(frozen=True)
class DPSGD(defense_lib.Defense):
  """DP-SGD fine-tuning with tensorflow-privacy's DP Adam optimizer.

  Attributes:
    noise_multiplier: σ > 0: noise standard deviation / clip norm (WeMem's
      grid 0.01, 0.1, 1; default 1.0).
    l2_norm_clip: per-record gradient clip norm C > 0 (default 1.0).
    delta: δ of the reported ε; None: 1/n for n fine-tuning records.
  """
  noise_multiplier: float = settings_lib.setting(
      1.0, "dp_noise_multiplier", "DP-SGD noise multiplier σ.", low=0,
      low_open=True,
      tune=settings_lib.Tune("dp_noise_multiplier", 0.01, 1.0, "log"))
  l2_norm_clip: float = settings_lib.setting(
      1.0, "dp_l2_norm_clip", "DP-SGD per-record clipping norm.", low=0,
      low_open=True)
  delta: Optional[float] = settings_lib.setting(
      None, "dp_delta", "DP-SGD δ of the reported ε (default 1/n).", low=0,
      high=1, low_open=True, high_open=True, optional=True)

  name: ClassVar[str] = "dp"
  display_name: ClassVar[str] = "DP-SGD"
  RUN: ClassVar[type] = DPSGDRun

  def check_records(self, records, train_config):
    n = len(records.y)
    if n < 2:
      raise ValueError(f"DP-SGD needs >= 2 training records, got {n}.")
