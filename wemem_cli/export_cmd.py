"""`wemem export`: convert a saved (pruned) model to TFLite, checked.

  wemem export --model=RUN/model.h5 --output=model.tflite
  wemem export --model=RUN/model.h5 --output=model.tflite \
      --dataset=location --data_dir=DIR --seed=0

Loads the model (`.h5` or `.keras`; a model that still holds TFMOT pruning
wrappers is stripped first, its masks applied), converts it with
`wemem_tf.export_tflite` (sparsity-aware) and checks the TFLite outputs
against Keras: on the victim test records of --seed when --dataset or
--data_dir is given (then also reporting Keras and TFLite accuracy), else on
standard-normal inputs of the model's input shape. Prints the file size and
the sparsity (fraction of zero kernel weights) of every Dense/Conv layer.
"""

from absl import flags
import numpy as np

import wemem_tf
from wemem_cli import common_flags as cf
from wemem_cli import flag_utils
from wemem_cli import model_files
from wemem_tf.models import evaluate
from wemem_tf.pruning import export as export_lib
from wemem_tf.pruning import prune as prune_lib

MODEL = cf.MODEL
EXPORT_TOLERANCE = flags.DEFINE_float(
    "export_tolerance", 1e-4, "Export: largest allowed |TFLite − Keras| "
    "difference of output probabilities.")
NUM_CHECK_RECORDS = flags.DEFINE_integer(
    "export_check_records", 512, "Export: random inputs to compare Keras and "
    "TFLite on when no --dataset is given.")

# `--output` is the flag `wemem memscore` defines (one flag per name).
OUTPUT = cf.OUTPUT


def sparsity_report(model: wemem_tf.keras.Model) -> dict:
  """{"layers": {name: zero fraction}, "overall": zero fraction over all
  Dense/Conv kernels, "zero_weights": int, "kernel_weights": int}."""
  zeros = total = 0
  for layer in model.layers:
    if isinstance(layer, prune_lib.PRUNABLE_TYPES):
      kernel = layer.kernel.numpy()
      zeros += int(np.count_nonzero(kernel == 0))
      total += kernel.size
  return {"layers": prune_lib.layer_sparsity(model),
          "overall": zeros / total if total else 0.0,
          "zero_weights": zeros, "kernel_weights": total}


def _dataset_given() -> bool:
  """Whether --dataset or --data_dir was set (parsed or assigned)."""
  return not (flags.FLAGS["dataset"].using_default_value
              and flags.FLAGS["data_dir"].using_default_value)


def main(argv) -> None:
  del argv  # extra arguments are refused by the dispatcher
  output = OUTPUT.value
  if not output:
    raise ValueError("--output is required: the .tflite file to write.")
  model = model_files.load_model(MODEL.value, "--model")
  prune_lib.check_model(model)
  wrappers = len(prune_lib.pruned_wrappers(model))
  stripped = prune_lib.strip_pruning(model) if wrappers else model
  labels = None
  if _dataset_given():
    dataset = flag_utils.load_dataset()
    model_files.check_data_shapes(stripped, dataset, "--model")
    test = flag_utils.victim_splits(dataset, cf.SEED.value).victim.test
    inputs, labels = dataset.take(test)
    checked_on = f"{len(test)} {dataset.name} victim test records (seed " \
                 f"{cf.SEED.value})"
  else:
    if NUM_CHECK_RECORDS.value < 1:
      raise ValueError("--export_check_records must be >= 1.")
    rng = np.random.default_rng(cf.SEED.value)
    inputs = rng.standard_normal(
        (NUM_CHECK_RECORDS.value, *stripped.input_shape[1:])).astype(
            np.float32)
    checked_on = f"{len(inputs)} standard-normal inputs"
  export = wemem_tf.export_tflite(stripped, output, inputs,
                                  tolerance=EXPORT_TOLERANCE.value)
  sparsity = sparsity_report(stripped)
  if wrappers:
    print(f"stripped {wrappers} pruning wrapper(s) (masks applied)")
  print(f"wrote {export.path}: {export.size_bytes} bytes "
        f"({export.size_bytes / 1024:.1f} KiB)")
  print(f"sparsity: {100 * sparsity['overall']:.1f}% of "
        f"{sparsity['kernel_weights']} Dense/Conv kernel weights are zero; "
        "per layer: " + ", ".join(f"{name} {100 * s:.1f}%" for name, s in
                                  sparsity["layers"].items()))
  print(f"checked on {checked_on}: max |TFLite - Keras| probability "
        f"difference {export.max_abs_deviation:.2e}")
  if labels is not None:
    with open(export.path, "rb") as f:
      tflite_logits = export_lib.tflite_logits(f.read(), inputs)
    keras_logits = stripped(inputs, training=False).numpy()
    print(f"accuracy: Keras "
          f"{evaluate.logits_accuracy(keras_logits, labels):.4f}, TFLite "
          f"{evaluate.logits_accuracy(tflite_logits, labels):.4f}")
