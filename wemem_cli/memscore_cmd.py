"""`wemem memscore`: memorization scores of a dataset's training pool.

  wemem memscore --dataset=location --data_dir=../shared/data \
      --num_models=256 --epochs=30 --seed=0 --output=memscores.npz

Scores every record of the pool of `splits_for(dataset, seed)` (victim and
shadow pools together) with the Feldman & Zhang estimate (docs/method.md §4) and
writes an .npz with arrays `index`, `score`, `included`, `excluded`,
`fingerprint` and `meta` (`wemem_tf.memorization.MemScores.load` reads it
back and checks it against the dataset and record set).
"""

import json

from absl import flags
from absl import logging

import wemem_tf  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
from wemem_cli import common_flags as cf
from wemem_cli import defense_flags
from wemem_cli import executor_flags
from wemem_cli import flag_utils
from wemem_tf import data as data_lib
from wemem_tf import memorization

NUM_MODELS = flags.DEFINE_integer(
    "num_models", 256, "Memorization: models trained on random subsets (K).")
SUBSET_FRACTION = flags.DEFINE_float(
    "subset_fraction", 0.7, "Memorization: share of the pool each model "
    "trains on, in (0, 1).")
EPOCHS = flags.DEFINE_integer(
    "epochs", 30, "Memorization: training epochs of each model.")
OUTPUT = cf.OUTPUT
CHUNK_SIZE = flags.DEFINE_integer(
    "chunk_size", 64, "Memorization: models trained together in one graph.")
METHOD = flags.DEFINE_enum(
    "memscore_method", "auto", ["auto", "vectorized", "sequential"],
    "Memorization: vectorized (plain MLPs), sequential, or auto.")


def main(argv) -> None:
  """Computes and writes the scores; returns nothing."""
  del argv  # extra arguments are refused by the dispatcher
  if not OUTPUT.value:
    raise ValueError("--output=FILE.npz is required.")
  dataset = flag_utils.load_dataset()
  seed = cf.SEED.value
  splits = flag_utils.victim_splits(dataset, seed)
  architecture = flag_utils.architecture(dataset)
  with executor_flags.executor_from_flags() as executor:
    scores = memorization.estimate_dataset(
        dataset, splits.pool, model_fn=architecture,
        num_models=NUM_MODELS.value, subset_fraction=SUBSET_FRACTION.value,
        epochs=EPOCHS.value, seed=seed, batch_size=cf.BATCH_SIZE.value,
        learning_rate=cf.LEARNING_RATE.value,
        weight_decay=cf.WEIGHT_DECAY.value, method=METHOD.value,
        chunk_size=CHUNK_SIZE.value, design=defense_flags.MEMSCORE_DESIGN.value,
        executor=executor)
  scores.save(OUTPUT.value)
  summary = scores.summary()
  logging.info("memorization scores of %d pool records of %s written to %s "
               "(%.1f s): %s", len(scores), dataset.name, OUTPUT.value,
               scores.details.get("total_seconds", float("nan")),
               json.dumps(summary))
  print(json.dumps({"output": OUTPUT.value, "dataset": dataset.name,
                    "fingerprint": dataset.fingerprint,
                    "seconds": scores.details.get("total_seconds"),
                    "architecture": architecture.name,
                    "path": scores.details.get("path"),
                    "seconds_per_model": scores.details.get(
                        "seconds_per_model"),
                    **summary}))
