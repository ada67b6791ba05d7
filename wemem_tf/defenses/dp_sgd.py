"""DP-SGD (Abadi et al. 2016): clipped, noised gradients while fine-tuning.

Each fine-tuning step splits the batch into microbatches of
`microbatch_size` records (1: every record on its own, the default), clips
the gradient of each microbatch's mean loss to L2 norm `l2_norm_clip` = C
over all trainable variables, sums the clipped gradients, adds Gaussian
noise of standard deviation `noise_multiplier · C` to every coordinate and
divides by the number of microbatches: tensorflow-privacy's DP Keras
optimizers' semantics (`DPKerasAdamOptimizer`, `DPKerasSGDOptimizer`). The
result feeds `optimizer` (Adam or plain SGD at the configured learning
rate); the library's L2 term `weight_decay · w` is added to the
*privatized* gradient (data-independent post-processing, no privacy cost).

The clipped sum comes from `wemem_tf.training.clipping`: for models whose
trainable layers are all Dense (the tabular MLPs, pruned or not) in one
backward pass from the layers' inputs and output gradients, otherwise from
the per-microbatch Jacobian (slower; the reason is logged once). A test
checks both against tensorflow-privacy's own optimizer. A model compiled
with a tensorflow-privacy DP Keras optimizer (in `model.fit`) trains with
that optimizer's own gradient path instead. The noise comes from the
step's own generator, seeded with the run's seed: the same seed gives the
same model in any process.

`report()` gives ε at δ = 1/n (n = fine-tuning records) for the steps that
actually ran (early stopping included), with RDP accounting
(`dp_accounting`, as tensorflow-privacy's `compute_dp_sgd_privacy_statement`
does, whose text is included):

* `epsilon`: each record is used once per epoch (true of the shuffled epochs
  run here), composed over the epochs run — a guarantee for this training.
* `epsilon_poisson`: the customary figure that assumes Poisson sampling with
  rate batch/n over the steps run; it is not a proven bound for shuffled
  batches, but it is what DP-SGD papers usually quote.

With microbatches of more than one record, one record can change its
microbatch's clipped gradient by up to 2C under add-or-remove adjacency, so
both figures use the noise multiplier halved (as tensorflow-privacy's
statement does with `used_microbatching=True`).

Both protect every checkpoint, not just the final model. They cover the
defended fine-tuning only: the model that was pre-trained before pruning saw
the same records without DP, so the pipeline as a whole has no formal DP
guarantee (the same holds for the other defenses compared here).

Settings: noise multiplier ∈ {0.01, 0.1, 1} in WeMem (docs/method.md §6;
default 1.0), clip 1.0, Adam, one record per microbatch (our baseline
setting); the WeMem authors' scripts ran plain SGD with σ = 0.1 and
microbatches of 64 (`--baseline_settings=paper`, docs/fidelity.md).
"""

import dataclasses
import logging
import math
from typing import Any, ClassVar, Dict, List, Optional

import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.defenses import defense as defense_lib
from wemem_tf.defenses import settings as settings_lib
from wemem_tf.training import clipping
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


OPTIMIZERS = ("adam", "sgd")


def _is_dp_optimizer(optimizer) -> bool:
  """A tensorflow-privacy DP Keras optimizer (it clips and noises itself)."""
  return hasattr(optimizer, "_compute_gradients") and hasattr(
      optimizer, "_noise_multiplier")


def _plain_optimizer(name: str, learning_rate: float, compiled=None):
  """The optimizer a DP step feeds: `compiled` when it is of kind `name`
  (model.fit keeps the user's optimizer), else a new one."""
  kinds = {"adam": (keras.optimizers.Adam, keras.optimizers.legacy.Adam),
           "sgd": (keras.optimizers.SGD, keras.optimizers.legacy.SGD)}
  if compiled is None:
    return (keras.optimizers.Adam(learning_rate) if name == "adam"
            else keras.optimizers.SGD(learning_rate))
  if isinstance(compiled, kinds[name]):
    return compiled
  raise ValueError(
      f"DP-SGD here trains with {'DP Adam' if name == 'adam' else 'DP SGD'} "
      f"(--dp_optimizer={name}); the model was compiled with "
      f"{type(compiled).__name__}. Compile with "
      f"{'Adam' if name == 'adam' else 'SGD'} (its learning rate is kept), "
      "set DPSGD(optimizer=...) to match, or compile with a "
      "tensorflow_privacy DP Keras optimizer.")


class DPSGDStep(loop_lib.TrainStep):
  """A DP update: clipped microbatch gradients, Gaussian noise, then the
  optimizer (see the module docstring).

  Counts its steps in `steps` (a variable) for privacy accounting. Returns
  the batch's mean cross-entropy.

  Args:
    l2_norm_clip: C > 0.
    noise_multiplier: σ >= 0 (noise standard deviation / C).
    microbatch_size: records per microbatch (1: per record).
    optimizer: "adam" or "sgd".
    seed: seeds the noise.
  """

  def __init__(self, l2_norm_clip: float, noise_multiplier: float,
               microbatch_size: int = 1, optimizer: str = "adam",
               seed: int = 0):
    super().__init__()
    self.l2_norm_clip = float(l2_norm_clip)
    self.noise_multiplier = float(noise_multiplier)
    self.microbatch_size = int(microbatch_size)
    self.optimizer_name = optimizer
    self.seed = int(seed)
    self.method = "fast"
    self.steps: Optional[tf.Variable] = None
    self._noise: Optional[tf.random.Generator] = None

  def build(self, model, config, optimizer=None):
    """Builds the optimizer at `config.learning_rate` and the noise stream.

    In `model.fit`, `optimizer` is the compiled one: a tensorflow-privacy
    DP Keras optimizer is used as it is; an optimizer of this step's kind
    (Adam / SGD) is kept; any other is refused.
    """
    if optimizer is not None and _is_dp_optimizer(optimizer):
      self.optimizer = optimizer
      self.method = "tensorflow_privacy"
    else:
      self.optimizer = _plain_optimizer(self.optimizer_name,
                                        config.learning_rate, optimizer)
      reason = clipping.fast_clipping_unsupported(model)
      if reason is not None:
        self.method = "jacobian"
        _log_slow_path_once(reason)
    # Slots and hyperparameter variables now, not while tracing.
    if isinstance(self.optimizer, keras.optimizers.legacy.Optimizer):
      self.optimizer._create_all_weights(model.trainable_variables)  # pylint: disable=protected-access
    else:
      self.optimizer.build(model.trainable_variables)
    self.steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                             name="dp_sgd_steps")
    self._noise = tf.random.Generator.from_seed(self.seed)

  def _tensorflow_privacy_gradients(self, model, xb, yb):
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
      per_record = self.loss_fn(yb, model(xb, training=True))
    grads_and_vars = self.optimizer._compute_gradients(  # pylint: disable=protected-access
        per_record, variables, tape=tape)
    return per_record, [g for g, _ in grads_and_vars]

  def _private_gradients(self, model, xb, yb):
    out = clipping.clipped_gradient_sum(
        model, xb, yb, self.loss_fn, self.l2_norm_clip, self.microbatch_size,
        method=self.method)
    stddev = self.noise_multiplier * self.l2_norm_clip
    count = tf.cast(out.num_microbatches, tf.float32)
    return out.per_record_loss, [
        (g + self._noise.normal(tf.shape(g), stddev=stddev)) / count
        for g in out.grads]

  def __call__(self, model, xb, yb, weight_decay, kind):
    del kind
    variables = model.trainable_variables
    if self.method == "tensorflow_privacy":
      per_record, grads = self._tensorflow_privacy_gradients(model, xb, yb)
    else:
      per_record, grads = self._private_gradients(model, xb, yb)
    grads = [g + weight_decay * v for g, v in zip(grads, variables)]
    loop_lib.apply_gradients(self.optimizer, zip(grads, variables))
    # Counted after the batch exists: in `model.fit`, the call that finds
    # the epoch's data exhausted must not count a step.
    with tf.control_dependencies(grads):
      self.steps.assign_add(1)
    return tf.reduce_mean(per_record)


_LOGGED: set = set()


def _log_slow_path_once(reason: str) -> None:
  if reason not in _LOGGED:
    _LOGGED.add(reason)
    logging.info("DP-SGD clips per-microbatch Jacobians (slower): %s.",
                 reason)


class DPSGDRun(defense_lib.DefenseRun):
  """DP-SGD on one model's records: counts the DP steps for accounting.

  Every epoch visits every record once (the inherited shuffled plan): what
  `epsilon` (per-epoch accounting) assumes. Subclasses must keep this.
  """

  def __init__(self, defense: "DPSGD", records, tuning):
    super().__init__(defense, records, tuning)
    self._steps: List[DPSGDStep] = []

  def train_step(self) -> loop_lib.TrainStep:
    d = self.defense
    step = DPSGDStep(d.l2_norm_clip, d.noise_multiplier, d.microbatch_size,
                     d.optimizer, seed=self.seed)
    self._steps.append(step)
    return step

  def _mechanism(self):
    """(σ, records per microbatch) of the most recent step's updates."""
    step = self._steps[-1] if self._steps else None
    if step is not None and step.method == "tensorflow_privacy":
      micro = step.optimizer._num_microbatches  # pylint: disable=protected-access
      batch = self.train_config.batch_size
      return (float(step.optimizer._noise_multiplier),  # pylint: disable=protected-access
              1 if micro is None else max(1, batch // int(micro)))
    return self.defense.noise_multiplier, self.defense.microbatch_size

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
    sigma, micro = self._mechanism()
    # Microbatches of > 1 record: sensitivity 2C (see the module docstring).
    effective = sigma / 2 if micro > 1 else sigma
    out = {
        "epsilon": epsilon_per_epoch(effective, epochs, delta),
        "epsilon_poisson": epsilon_poisson(effective, batch / n, steps,
                                           delta),
        "delta": delta,
        "noise_multiplier": sigma,
        "microbatch_size": micro,
        "steps": steps,
        "epochs": epochs,
        "num_examples": n,
        "batch_size": batch,
        "accounting": "RDP; epsilon: each record once per epoch over the "
                      "epochs run; epsilon_poisson: Poisson sampling at rate "
                      "batch_size/num_examples over the steps run; sigma "
                      "halved for microbatches of more than one record. "
                      "Covers the DP fine-tuning only, not pre-training.",
    }
    if steps > 0:
      import tensorflow_privacy  # pylint: disable=g-import-not-at-top
      out["statement"] = tensorflow_privacy.compute_dp_sgd_privacy_statement(
          number_of_examples=n, batch_size=batch,
          num_epochs=steps * batch / n, noise_multiplier=sigma,
          delta=delta, used_microbatching=micro > 1)
    return out

  def report(self) -> Dict[str, Any]:
    out = super().report()
    out.update(self.privacy())
    return out


@dataclasses.dataclass(frozen=True)
class DPSGD(defense_lib.Defense):
  """DP-SGD fine-tuning (see the module docstring).

  Attributes:
    noise_multiplier: σ > 0: noise standard deviation / clip norm (WeMem's
      grid 0.01, 0.1, 1; default 1.0).
    l2_norm_clip: per-microbatch gradient clip norm C > 0 (default 1.0).
    delta: δ of the reported ε; None: 1/n for n fine-tuning records.
    microbatch_size: records per clipped microbatch (default 1: per record).
    optimizer: "adam" (default) or "sgd", fed the privatized gradients at
      the fine-tuning learning rate.
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
  microbatch_size: int = settings_lib.setting(
      1, "dp_microbatch_size", "DP-SGD records per clipped microbatch (1: "
      "per record).", kind="int", low=1)
  optimizer: str = settings_lib.setting(
      "adam", "dp_optimizer", "Optimizer fed DP-SGD's privatized gradients.",
      kind="choice", choices=OPTIMIZERS)

  name: ClassVar[str] = "dp"
  display_name: ClassVar[str] = "DP-SGD"
  RUN: ClassVar[type] = DPSGDRun
  PAPER_SETTINGS: ClassVar[Dict[str, Any]] = dict(
      noise_multiplier=0.1, optimizer="sgd", microbatch_size=64)

  def check_records(self, records, train_config):
    n = len(records.y)
    if n < 2:
      raise ValueError(f"DP-SGD needs >= 2 training records, got {n}.")
