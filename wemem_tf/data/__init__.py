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
# Also registers the "npz:PATH" / "csv:PATH" datasets of `load_dataset`.
from wemem_tf.data.user_data import dataset_name
from wemem_tf.data.user_data import from_arrays
from wemem_tf.data.user_data import load_csv_dataset
from wemem_tf.data.user_data import load_npz_dataset
