"""TensorBoard summaries of iterative pruning: `IterationSummaries`.

One writer (`tf.summary.create_file_writer(log_dir)`) serves three uses:

* the `on_iteration` hook of `IterativePruner.run` /
  `pretrain_and_prune` (live: each iteration is written when it ends):

    summaries = IterationSummaries("logs/victim")
    wemem_tf.pretrain_and_prune(..., on_iteration=summaries)
    summaries.close()

* a Keras callback in `model.fit` of a model from `prune_low_memorization`
  (live; it reads the rounds that `IterativePruning` records):

    pruned.fit(x, y, validation_data=(x_dev, y_dev),
               callbacks=[IterationSummaries("logs/victim")])

* after the fact, from records or their JSON (`write_history`,
  `write_pretraining`): what `wemem prune` and `wemem run` do.

Then `tensorboard --logdir=logs`. Tags (every value a scalar):

Per pruning iteration k (step = k):
  prune_low_magnitude_<layer>/mask:0/sparsity
      fraction of zero kernel weights of each pruned layer at the
      iteration's checkpoint: TFMOT's `PruningSummaries` tag (the mask
      variable's name + "/sparsity"). Live: the wrapped layers; after the
      fact: the layers given as `pruned_layers` (default: those with a
      sparsity above 0 at some iteration).
  prune_low_magnitude_<layer>/threshold:0/threshold
      the layer's magnitude threshold (TFMOT's tag); as the `on_iteration`
      hook only.
  iteration/target_sparsity     the schedule's sparsity for iteration k
  iteration/train_accuracy      accuracy on the fine-tuning records
  iteration/dev_accuracy        accuracy on the dev records
  iteration/test_accuracy       accuracy on the test records (when given)
  iteration/epochs_run          fine-tuning epochs trained
  iteration/best_epoch          0-based epoch of the kept checkpoint
  iteration/seconds             wall time of the iteration
  defense/<fact>                each numeric fact of the defense run's
      `report()`: live, its value when iteration k ends (e.g. DP-SGD's
      `epsilon`, `epsilon_poisson`, `steps`, `epochs` so far; AdvReg's
      `final_attack_loss`, `reference_records`; WeMem's `risky_share`,
      `risky_records`, `max_epochs_per_record`; the settings, e.g. `width`,
      `stride`, `lambda_mem`, `noise_multiplier`); after the fact, the final
      report's values at the last iteration. Facts given per iteration
      ({"0": v0, "1": v1, ...}, e.g. WeMem's `records_used_per_iteration`)
      are written at their iteration's step. Text, booleans, lists and
      missing values are skipped.

Per fine-tuning epoch (step = the epoch's index counted over all
iterations, from 0):
  epoch/train_loss              the epoch's mean batch loss
  epoch/dev_accuracy            dev accuracy after the epoch
  epoch/dev_loss                Keras' `val_loss` (model.fit with a compiled
                                loss only)
  epoch/pruning_iteration       the iteration the epoch belongs to

Pre-training (`write_pretraining`, step = pre-training epoch):
  pretrain/train_loss, pretrain/dev_accuracy

Non-finite values (e.g. a test accuracy without test data) are not
written. The `wemem` commands add their own tags (README "TensorBoard").
"""

import glob
import math
import numbers
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from wemem_tf._keras import keras
from wemem_tf.pruning import iterative
from wemem_tf.pruning import prune as prune_lib

Record = Union[iterative.IterationRecord, Mapping[str, Any]]

ITERATION_FACTS = ("target_sparsity", "train_accuracy", "dev_accuracy",
                   "test_accuracy", "epochs_run", "best_epoch", "seconds")
WRAPPER_PREFIX = "prune_low_magnitude_"  # TFMOT's wrapper names


def sparsity_tag(layer: str) -> str:
  """TFMOT's `PruningSummaries` tag of a pruned layer's sparsity."""
  return f"{WRAPPER_PREFIX}{layer}/mask:0/sparsity"


def _number(value: Any) -> Optional[float]:
  """`value` as a finite float, or None (text, booleans, None, NaN)."""
  if isinstance(value, (np.ndarray, tf.Tensor)) and np.ndim(value) == 0:
    value = np.asarray(value).item()  # Keras logs may hold 0-d values
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    return None
  value = float(value)
  return value if math.isfinite(value) else None


def _as_dict(record: Record) -> Dict[str, Any]:
  if isinstance(record, iterative.IterationRecord):
    return {**record.to_json(),
            "epoch_train_loss": record.epoch_train_loss,
            "epoch_dev_accuracy": record.epoch_dev_accuracy}
  return dict(record)


def defense_scalars(report: Optional[Mapping[str, Any]],
                    iteration: Optional[int] = None
                    ) -> Dict[int, Dict[str, float]]:
  """The numeric facts of a defense report as {step: {tag: value}}.

  Args:
    report: `DefenseRun.report()` (or its JSON).
    iteration: the step of the plain facts; facts given per iteration
      ({"0": v0, ...}) go to their own steps, and with `iteration` set only
      that iteration's entry is kept (a live snapshot).
  """
  out: Dict[int, Dict[str, float]] = {}
  for key, value in (report or {}).items():
    if isinstance(value, Mapping):
      for k, v in value.items():
        if not str(k).isdigit() or _number(v) is None:
          continue
        if iteration is not None and int(k) != iteration:
          continue
        out.setdefault(int(k), {})[f"defense/{key}"] = _number(v)
    elif _number(value) is not None and iteration is not None:
      out.setdefault(iteration, {})[f"defense/{key}"] = _number(value)
  return out


def _defense_run(model: Optional[keras.Model]):
  """The defense `IterativePruner.run` bound for `model`, else the one of
  its last `model.fit`, if any."""
  run = getattr(model, "wemem_defense_run", None)
  if run is not None:
    return run
  fitted = getattr(model, "wemem_fit", None)
  return fitted.run if fitted is not None else None


class IterationSummaries(keras.callbacks.Callback):
  """Writes pruning iterations (and epochs) as TensorBoard scalars.

  See the module docstring for the tags. Call `close` (or use it as a
  context manager) when done as a hook; as a Keras callback it flushes and
  closes at the end of `fit` (a later write reopens a new event file).

  Args:
    log_dir: folder of the event file (created if needed).
  """

  def __init__(self, log_dir: str):
    super().__init__()
    if not isinstance(log_dir, str) or not log_dir:
      raise ValueError(f"log_dir must be a non-empty path, got {log_dir!r}.")
    self.log_dir = log_dir
    self._writer = None
    self._epochs = 0  # epochs written so far (the next epoch's step)
    self._rounds = 0  # rounds of `model.wemem_fit.history` written
    self._pending = None  # (epoch, logs) of model.fit's last epoch

  # ---- writing -------------------------------------------------------------

  @property
  def writer(self) -> tf.summary.SummaryWriter:
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(self.log_dir)
    return self._writer

  def write_scalars(self, scalars: Mapping[str, Any], step: int) -> None:
    """Writes {tag: value} at `step` (non-numeric / non-finite skipped)."""
    with self.writer.as_default():
      for tag, value in scalars.items():
        value = _number(value)
        if value is not None:
          tf.summary.scalar(tag, value, step=int(step))

  def write_iteration(self, record: Record,
                      model: Optional[keras.Model] = None,
                      defense_report: Optional[Mapping[str, Any]] = None,
                      pruned_layers: Optional[Iterable[str]] = None,
                      epochs: bool = True) -> None:
    """Writes one iteration's facts at step `record.iteration`.

    Args:
      record: an `IterationRecord` or its JSON.
      model: the wrapped model at the iteration's checkpoint (masks and
        thresholds still the iteration's): its pruned layers and their
        thresholds are written.
      defense_report: a live `report()` snapshot taken at this iteration.
      pruned_layers: the layers whose sparsity is written, without `model`
        (default: every layer of the record).
      epochs: also write the record's per-epoch curves (continuing the
        global epoch count).
    """
    doc = _as_dict(record)
    k = int(doc["iteration"])
    scalars = {f"iteration/{f}": doc.get(f) for f in ITERATION_FACTS}
    sparsity = doc.get("layer_sparsity", {})
    if model is not None:
      for wrapper in prune_lib.pruned_wrappers(model):
        _, mask, threshold = wrapper.pruning_vars[0]
        name = wrapper.layer.name
        if name in sparsity:
          scalars[f"{mask.name}/sparsity"] = sparsity[name]
        scalars[f"{threshold.name}/threshold"] = float(threshold.numpy())
    else:
      layers = sparsity if pruned_layers is None else pruned_layers
      scalars.update({sparsity_tag(l): sparsity[l] for l in layers
                      if l in sparsity})
    self.write_scalars(scalars, k)
    for step, facts in defense_scalars(defense_report, k).items():
      self.write_scalars(facts, step)
    if epochs:
      losses = doc.get("epoch_train_loss") or []
      accs = doc.get("epoch_dev_accuracy") or []
      for i in range(max(len(losses), len(accs))):
        self.write_scalars({
            "epoch/train_loss": losses[i] if i < len(losses) else None,
            "epoch/dev_accuracy": accs[i] if i < len(accs) else None,
            "epoch/pruning_iteration": k}, self._epochs + i)
      self._epochs += int(doc.get("epochs_run") or
                          max(len(losses), len(accs)))

  def write_history(self, history: Sequence[Record],
                    defense_report: Optional[Mapping[str, Any]] = None,
                    pruned_layers: Optional[Iterable[str]] = None) -> None:
    """Writes finished iterations after the fact (e.g. from history.json).

    Args:
      history: one record (or its JSON) per iteration, in order.
      defense_report: the run's final `report()`: per-iteration facts at
        their steps, the others at the last iteration.
      pruned_layers: layers whose sparsity is written (default: those with
        a sparsity above 0 in some record).
    """
    docs = [_as_dict(r) for r in history]
    if pruned_layers is None:
      pruned_layers = sorted({l for d in docs for l, s in d.get(
          "layer_sparsity", {}).items() if s > 0})
    pruned_layers = list(pruned_layers)
    for doc in docs:
      self.write_iteration(doc, pruned_layers=pruned_layers)
    if defense_report and docs:
      last = int(docs[-1]["iteration"])
      scalars = defense_scalars(defense_report, last)
      for step, facts in defense_scalars(defense_report).items():
        if step != last:  # every iteration's entry, not only the last's
          scalars.setdefault(step, {}).update(facts)
      for step, facts in scalars.items():
        self.write_scalars(facts, step)
    self.flush()

  def write_pretraining(self, fit) -> None:
    """Writes a pre-training `FitResult`'s curves (step = epoch)."""
    if fit is None:
      return
    for epoch, (loss, acc) in enumerate(zip(fit.train_loss,
                                            fit.dev_accuracy)):
      self.write_scalars({"pretrain/train_loss": loss,
                          "pretrain/dev_accuracy": acc}, epoch)
    self.flush()

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the event file (a later write opens another)."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def __enter__(self) -> "IterationSummaries":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # ---- the `on_iteration` hook ---------------------------------------------

  def __call__(self, record: iterative.IterationRecord,
               model: keras.Model) -> None:
    """`IterativePruner.run`'s `on_iteration` hook: writes the iteration
    (with its epochs and a snapshot of the defense's report)."""
    run = _defense_run(model)
    self.write_iteration(record, model,
                         run.report() if run is not None else None)
    self.flush()

  # ---- Keras hooks (model.fit) ---------------------------------------------

  def on_train_begin(self, logs=None):
    self._epochs, self._rounds, self._pending = 0, 0, None

  def on_epoch_begin(self, epoch, logs=None):
    self._write_pending()

  def on_epoch_end(self, epoch, logs=None):
    # Written at the next epoch's start (or the end of training), when every
    # callback (IterativePruning included, wherever it is in the list) has
    # added its logs and recorded a round that ended with this epoch.
    self._pending = (epoch, logs)

  def on_train_end(self, logs=None):
    self._write_pending()
    self.close()

  def _write_pending(self) -> None:
    if self._pending is not None:
      epoch, logs = self._pending
      self._pending = None
      logs = logs or {}
      self.write_scalars({
          "epoch/train_loss": logs.get("loss"),
          "epoch/dev_accuracy": logs.get("dev_accuracy"),
          "epoch/dev_loss": logs.get("val_loss"),
          "epoch/pruning_iteration": logs.get("pruning_iteration")}, epoch)
    fitted = getattr(self.model, "wemem_fit", None)
    history = fitted.history if fitted is not None else []
    if len(history) > self._rounds:
      # The next round may have started: its masks and thresholds are not
      # this record's, so only the layer names come from the model.
      layers = [w.layer.name for w in prune_lib.pruned_wrappers(self.model)]
      report = fitted.run.report()
    for record in history[self._rounds:]:
      self.write_iteration(record, defense_report=report,
                           pruned_layers=layers, epochs=False)
    self._rounds = len(history)
    self.flush()


def read_scalars(log_dir: str) -> Dict[str, Dict[int, float]]:
  """{tag: {step: value}} of the scalars in `log_dir`'s event files (not
  its subfolders), read back with TensorFlow's event records; a tag written
  twice at one step keeps the last value. For tests and scripts."""
  out: Dict[str, Dict[int, float]] = {}
  for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
    plugins: Dict[str, str] = {}
    for raw in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(raw.numpy())
      for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name
        if plugin:  # (written with a tag's first value only)
          plugins[value.tag] = plugin
        if value.HasField("tensor"):
          if plugins.get(value.tag) != "scalars":
            continue  # e.g. the hparams plugin's records
          number = float(tf.make_ndarray(value.tensor))
        elif value.HasField("simple_value"):
          number = float(value.simple_value)
        else:
          continue
        out.setdefault(value.tag, {})[int(event.step)] = number
  return out
