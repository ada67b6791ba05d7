"""A disk cache of trained models keyed by everything that determines them.

Pre-trained dense models are keyed by (dataset fingerprint, split records,
seed, architecture key, training settings), so the victim's and every shadow's
pre-training is shared by all defenses of a run. Pruned models add the
pruning settings and the defense's settings (and a digest of its
memorization scores). Weights are written atomically as `.npz` (no pickle)
with a JSON sidecar of the model's training facts, written last; a reload
rebuilds the architecture (the stripped pruned model has the dense model's
layers) and sets the weights, so an interrupted run reloads what is done.
"""

import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from wemem_tf import io_utils
from wemem_tf._keras import keras
from wemem_tf.data import datasets
from wemem_tf.data import splits as splits_lib
from wemem_tf.models import architecture as arch_lib


def digest(*parts: Any) -> str:
  """16 hex chars of SHA-256 over the JSON of `parts` (arrays by content)."""
  h = hashlib.sha256()
  for part in parts:
    if isinstance(part, np.ndarray):
      h.update(np.ascontiguousarray(part).tobytes())
    else:
      h.update(json.dumps(part, sort_keys=True, default=str).encode())
  return h.hexdigest()[:16]


def defense_digest(defense, training_only: bool = False) -> str:
  """Identifies a defense's settings, including its scores' content; with
  `training_only`, just what determines the trained weights (a serving-only
  setting such as output modification does not: such models are shared)."""
  if defense is None or isinstance(defense, str):
    return digest(defense or "none")
  scores = getattr(defense, "scores", None)
  score_part = None
  if scores is not None:
    values = getattr(scores, "score", scores)
    index = getattr(scores, "index", None)
    score_part = digest(np.asarray(values, np.float64),
                        *(() if index is None else (np.asarray(index),)))
  settings = defense.training_config() if training_only else defense.config()
  return digest(defense.name, settings, score_part)


# A stored model: its weights (`model.get_weights()` order) and its facts.
Entry = Tuple[List[np.ndarray], Dict[str, Any]]


def split_digest(split: splits_lib.ModelSplit) -> str:
  return digest(split.train, split.dev, split.test)


class ModelStore:
  """Keras models on disk under `root`, built on first request.

  `kinds` limits what is cached (None: every kind); other kinds are built
  on every request and never written (e.g. defense tuning caches only the
  "pretrained" models its trials share).
  """

  def __init__(self, root: str, kinds: Optional[Tuple[str, ...]] = None):
    self.root = root
    self.kinds = None if kinds is None else tuple(kinds)
    os.makedirs(root, exist_ok=True)
    self.hits = 0
    self.misses = 0

  def _paths(self, kind: str, key: str) -> Tuple[str, str]:
    base = os.path.join(self.root, f"{kind}-{key}")
    return base + ".npz", base + ".json"

  def get_or_build(self, kind: str, key: str,
                   build: Callable[[], Tuple[keras.Model, Dict[str, Any]]],
                   architecture: Callable[[], keras.Model]
                   ) -> Tuple[keras.Model, Dict[str, Any]]:
    """(model, facts) from disk, or from `build()` and then saved.

    Args:
      kind, key: identify the model.
      build: trains it; returns (model, JSON-ready facts).
      architecture: builds an untrained model of the same architecture
        (weights are loaded into it).
    """
    if not self.caches(kind):
      return build()
    if self.has(kind, key):
      self.hits += 1
      weights, facts = self.entry(kind, key)
      model = architecture()
      model.set_weights(weights)
      return model, facts
    self.misses += 1
    model, facts = build()
    self.put(kind, key, model.get_weights(), facts)
    return model, facts

  def caches(self, kind: str) -> bool:
    """Whether models of `kind` are kept (see `kinds`)."""
    return self.kinds is None or kind in self.kinds

  def has(self, kind: str, key: str) -> bool:
    """Whether the model is on disk (facts are written last)."""
    return all(os.path.isfile(p) for p in self._paths(kind, key))

  def entry(self, kind: str, key: str) -> Entry:
    """(weights, facts) of a stored model."""
    weights_path, facts_path = self._paths(kind, key)
    with open(facts_path) as f:
      facts = json.load(f)
    arrays = io_utils.load_npz(weights_path)
    return [arrays[f"w{i}"] for i in range(len(arrays))], facts

  def put(self, kind: str, key: str, weights: List[np.ndarray],
          facts: Dict[str, Any]) -> None:
    """Writes a model's weights, then its facts (which mark completion),
    each atomically."""
    weights_path, facts_path = self._paths(kind, key)
    io_utils.atomic_save_npz(weights_path, **{
        f"w{i}": w for i, w in enumerate(weights)})
    io_utils.atomic_write_json(facts_path, facts)

  @staticmethod
  def pretrained_key(dataset: datasets.Dataset, split: splits_lib.ModelSplit,
                     seed: int, architecture: arch_lib.ArchitectureLike,
                     train_config, cohort: bool = False) -> str:
    """Key of a pre-trained model; the architecture enters by its
    `Architecture.key` (a zoo name's key is the name itself). A model
    trained in a cohort (`ModelRecipe.cohort`: another dropout stream) has
    its own key, and so have the pruned models made from it; keys of models
    trained one at a time are unchanged."""
    return digest("pretrained", dataset.fingerprint, split_digest(split),
                  int(seed), arch_lib.resolve_architecture(architecture).key,
                  dataclasses.asdict(train_config),
                  *(["cohort"] if cohort else []))

  @staticmethod
  def pruned_key(pretrained_key: str, seed: int, pruning_config,
                 defense) -> str:
    return digest("pruned", pretrained_key, int(seed),
                  dataclasses.asdict(pruning_config),
                  defense_digest(defense, training_only=True))



class MemoryStore(ModelStore):
  """A `ModelStore` in memory: the same hits and misses, no files.

  A worker of a remote executor trains through one (pre-filled with what
  the driver's store already holds) and hands back `new_entries()`; the
  driver then writes them to its own store.
  """

  def __init__(self, entries: Optional[Dict[Tuple[str, str], Entry]] = None):
    # pylint: disable=super-init-not-called  (no root folder)
    self.root = None
    self.kinds = None
    self.hits = 0
    self.misses = 0
    self._entries = dict(entries or {})
    self._new = []

  def has(self, kind: str, key: str) -> bool:
    return (kind, key) in self._entries

  def entry(self, kind: str, key: str) -> Entry:
    return self._entries[(kind, key)]

  def put(self, kind: str, key: str, weights: List[np.ndarray],
          facts: Dict[str, Any]) -> None:
    self._entries[(kind, key)] = ([np.asarray(w) for w in weights],
                                  json.loads(json.dumps(
                                      facts, default=io_utils.json_default)))
    self._new.append((kind, key))

  def new_entries(self) -> Dict[Tuple[str, str], Entry]:
    """The models built here (not given at construction), by (kind, key)."""
    return {k: self._entries[k] for k in self._new}


class TieredStore(MemoryStore):
  """`store` for the kinds it keeps, memory for the others.

  A remote executor's results must reach the driver's store before the
  models are rebuilt from it; a store that keeps only some kinds (defense
  tuning keeps only "pretrained") is wrapped in one so that its other kinds
  live in memory for the call, as `ModelStore.kinds` promises (built on
  every request, never written).
  """

  def __init__(self, store: ModelStore):
    super().__init__()
    self.inner = store

  def has(self, kind: str, key: str) -> bool:
    if self.inner.caches(kind):
      return self.inner.has(kind, key)
    return super().has(kind, key)

  def entry(self, kind: str, key: str) -> Entry:
    if self.inner.caches(kind):
      return self.inner.entry(kind, key)
    return super().entry(kind, key)

  def put(self, kind: str, key: str, weights: List[np.ndarray],
          facts: Dict[str, Any]) -> None:
    if self.inner.caches(kind):
      self.inner.put(kind, key, weights, facts)
    else:
      super().put(kind, key, weights, facts)
