"""Datasets, fingerprints and the victim/shadow split protocol."""

from wemem_tf.data.datasets import Dataset
from wemem_tf.data.datasets import fingerprint_arrays
from wemem_tf.data.datasets import load_dataset
from wemem_tf.data.datasets import LOADERS
from wemem_tf.data.datasets import validate_examples
from wemem_tf.data.splits import make_splits
from wemem_tf.data.splits import ModelSplit
from wemem_tf.data.splits import SplitConfig
from wemem_tf.data.splits import Splits
from wemem_tf.data.splits import splits_for
