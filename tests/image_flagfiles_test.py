"""Every image flagfile's model builds, prunes and trains two steps.

The image flagfiles (configs/cifar10_*.cfg, configs/mnist_*.cfg) name their
dataset and architecture; the GPU ones name ResNet-18, which is too slow to
run here in full, so this checks that each still builds, takes its pruning
wrappers and learns on two batches of its dataset's images (real images when
../shared/data holds them, else random ones of the same shape).
"""

import glob
import os

import numpy as np
import pytest

import wemem_tf  # first: Keras 2
import tensorflow as tf  # pylint: disable=g-bad-import-order
from wemem_tf.data import datasets
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models import zoo
from wemem_tf.pruning import iterative as iterative_lib
from wemem_tf.pruning import prune as prune_lib
from wemem_tf.training import loop as loop_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data")
# (input shape, classes) of each image dataset, checked against the data.
IMAGE_SHAPES = {"cifar10": ((32, 32, 3), 10), "mnist": ((28, 28, 1), 10)}
STEP_BATCH = 8  # records per step: the check is that it trains, not speed


def _flags(path):
  flags = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line.startswith("--") and "=" in line:
        name, value = line[2:].split("=", 1)
        flags[name] = value
  return flags


def _image_flagfiles():
  paths = []
  for name in IMAGE_SHAPES:
    paths += sorted(glob.glob(os.path.join(ROOT, "configs", f"{name}_*.cfg")))
  return paths


def _models_to_check():
  """{(dataset, architecture): [flagfiles]}: each model is checked once."""
  models = {}
  for path in _image_flagfiles():
    flags = _flags(path)
    dataset = flags["dataset"]
    arch = flags.get("architecture", zoo.DEFAULT_ARCHITECTURE[dataset])
    models.setdefault((dataset, arch), []).append(os.path.basename(path))
  return models


def test_there_are_cpu_and_gpu_image_flagfiles():
  models = _models_to_check()
  assert ("cifar10", "resnet18") in models  # the GPU flagfiles stay
  assert {d for d, _ in models} == set(IMAGE_SHAPES)


def _images(dataset, n):
  shape, classes = IMAGE_SHAPES[dataset]
  if os.path.isdir(DATA_DIR):
    ds = datasets.load_dataset(dataset, DATA_DIR)
    assert (ds.input_shape, ds.num_classes) == (shape, classes)
    return ds.x[:n], ds.y[:n], classes
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, *shape)).astype(np.float32),
          rng.integers(0, classes, n), classes)


@pytest.mark.parametrize("dataset,arch", sorted(_models_to_check()))
def test_flagfile_model_prunes_and_trains_two_steps(dataset, arch):
  x, y, classes = _images(dataset, 2 * STEP_BATCH)
  model = arch_lib.build_checked(arch, x.shape[1:], classes)
  pruned = prune_lib.prune_low_memorization(model)
  rounds = iterative_lib.PruningRounds(pruned)
  rounds.start(1)  # the first pruning round: masks computed and fixed
  pruned_layers = set(prune_lib.default_layers_to_prune(model))
  assert pruned_layers and all(  # the classifier stays dense (method.md §3)
      0 < s < 1 for name, s in prune_lib.layer_sparsity(pruned).items()
      if name in pruned_layers)
  # The library's batch update, run eagerly: tracing the compiled epoch of a
  # pruned ResNet-18 costs a minute on 2 cores; the compiled loop is tested on
  # small models in wemem_tf/training/loop_test.py.
  step = loop_lib.TrainStep()
  step.build(pruned, loop_lib.TrainConfig(batch_size=STEP_BATCH))
  sparsity = prune_lib.layer_sparsity(pruned)
  before = [w.copy() for w in pruned.get_weights()]
  for start in (0, STEP_BATCH):
    batch = slice(start, start + STEP_BATCH)
    loss = step(pruned, tf.constant(x[batch], tf.float32),
                tf.constant(y[batch], tf.int64), tf.constant(5e-4),
                tf.constant(int(loop_lib.BatchKind.ORDINARY)))
    assert np.isfinite(float(loss))
  changed = [not np.array_equal(a, b)
             for a, b in zip(before, pruned.get_weights())]
  assert any(changed)
  assert prune_lib.layer_sparsity(pruned) == sparsity  # masks held
  assert pruned(x[:2], training=False).shape == (2, classes)
