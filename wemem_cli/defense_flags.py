"""`--defense` and its settings, shared by `wemem prune`, `attack` and `run`.

WeMem methods (rsw, rmr, swmr, random) start from the authors' preset for
the dataset when one exists (location, cifar10; docs/method.md §5), else from the
class defaults; any setting flag given overrides it. They need memorization
scores: `--memscores=FILE.npz`, or computed on the fly over every record of
the dataset and cached in the run directory (keyed by dataset fingerprint,
seed and estimator settings).

Every setting flag is derived from the defenses' declarations
(`wemem_tf.defenses.settings`): its name, type, help and valid range.
"""

from typing import Dict, Optional

from absl import flags
from absl import logging
import numpy as np

import wemem_tf
from wemem_cli import flag_utils
from wemem_eval import model_training
from wemem_tf import defenses as defenses_lib
from wemem_tf import memorization
from wemem_tf.defenses import settings as settings_lib

WEMEM_METHODS = defenses_lib.WEMEM_METHODS
DEFENSE_NAMES = tuple(defenses_lib.available_defenses())

DEFENSE = flags.DEFINE_enum("defense", "none", list(DEFENSE_NAMES),
                            "Defense applied while fine-tuning during pruning.")
BASELINE_SETTINGS = flags.DEFINE_enum(
    "baseline_settings", "ours", list(defenses_lib.BASELINE_SETTINGS),
    "Settings the existing defenses start from: ours (the documented "
    "defaults) or paper (the WeMem authors' scripts; docs/fidelity.md). "
    "Setting flags override either.")
MEMSCORES = flags.DEFINE_string(
    "memscores", None, "Memorization scores (.npz from `wemem memscore`) for "
    "rsw/rmr/swmr; computed on the fly and cached when absent.")
MEMSCORE_MODELS = flags.DEFINE_integer(
    "memscore_models", 128, "Models of the on-the-fly memorization estimate.")
MEMSCORE_EPOCHS = flags.DEFINE_integer(
    "memscore_epochs", 30, "Epochs per model of the on-the-fly estimate.")
MEMSCORE_DESIGN = flags.DEFINE_enum(
    "memscore_design", "random", list(memorization.DESIGNS),
    "Memorization models' training sets: random (each a random subset; "
    "with few models some records are never left out and get no score) or "
    "balanced (each record in the same number of models; models train one "
    "at a time).")


def _define(spec: settings_lib.Setting, users) -> flags.FlagHolder:
  """The flag of a declared setting (default None: the preset/default)."""
  text = f"{spec.help} ({', '.join(users)}; {spec.range_text()})"
  kind = spec.flag_type or spec.kind
  if kind == "choice":
    return flags.DEFINE_enum(spec.flag, None, list(spec.choices), text)
  if kind == "bool":
    return flags.DEFINE_boolean(spec.flag, None, text)
  if kind == "int":
    return flags.DEFINE_integer(spec.flag, None, text)
  if kind == "ints":
    return flags.DEFINE_list(spec.flag, None, text)
  return flags.DEFINE_float(spec.flag, None, text)


def _define_setting_flags():
  """{defense: {setting: flag}} for every registered defense's exposed
  settings; a flag is defined once and shared by the defenses that have
  the same setting."""
  users: Dict[str, list] = {}
  specs: Dict[str, settings_lib.Setting] = {}
  for name in DEFENSE_NAMES:
    for spec in settings_lib.declared(defenses_lib.defense_class(name)).values():
      specs.setdefault(spec.flag, spec)
      users.setdefault(spec.flag, []).append(name)
  holders = {flag: _define(spec, users[flag]) for flag, spec in specs.items()}
  return {name: {arg: holders[spec.flag] for arg, spec in settings_lib.declared(
      defenses_lib.defense_class(name)).items()} for name in DEFENSE_NAMES}


_SETTINGS = _define_setting_flags()  # defense -> {constructor argument: flag}


def defense_settings(name: str) -> dict:
  """The settings flags given for defense `name` ({argument: value})."""
  settings = {arg: flag.value for arg, flag in _SETTINGS.get(name, {}).items()
              if flag.value is not None}
  if settings.get("tau_share") is not None and "tau" in _SETTINGS.get(name, {}):
    settings.setdefault("tau", None)  # instead of the preset's score
  return settings


def flag_lines(name: str, settings: dict) -> list:
  """Flagfile lines that select defense `name` with `settings` (for both
  `--defense` and `wemem run`'s `--defenses`); None settings are skipped."""
  if name not in DEFENSE_NAMES:
    raise ValueError(f"unknown defense {name!r}; choose one of "
                     f"{list(DEFENSE_NAMES)}.")
  lines = [f"--defense={name}", f"--defenses={name}"]
  known = _SETTINGS.get(name, {})
  for setting, value in settings.items():
    if value is None:
      continue
    if setting not in known:
      raise ValueError(f"defense {name!r} has no setting flag for "
                       f"{setting!r}; known: {sorted(known)}.")
    if isinstance(value, bool):
      lines.append(f"--{known[setting].name}={str(value).lower()}")
    else:
      lines.append(f"--{known[setting].name}={getattr(value, 'value', value)}")
  return lines


def _estimate(dataset, seed, architecture, cache_dir, indices, whose,
              executor=None) -> memorization.MemScores:
  """The cached on-the-fly estimate over `indices` (None: every record)."""
  count = len(dataset) if indices is None else len(indices)
  logging.info("%s memorization scores: %d models x %d epochs on %d records "
               "(cached in %s)", whose, MEMSCORE_MODELS.value,
               MEMSCORE_EPOCHS.value, count, cache_dir)
  return memorization.cached_estimate(
      dataset, cache_dir, seed, architecture,
      num_models=MEMSCORE_MODELS.value, epochs=MEMSCORE_EPOCHS.value,
      executor=executor, indices=indices, design=MEMSCORE_DESIGN.value)


def scores_for(dataset: wemem_tf.data.Dataset, seed: int,
               architecture: wemem_tf.models.ArchitectureLike,
               cache_dir: str, path: Optional[str] = None,
               executor=None) -> memorization.MemScores:
  """Scores from `path` (checked against the dataset), else the cached
  on-the-fly estimate over the training pool of the `seed`'s splits, as
  `wemem memscore` scores it (`memorization.cached_estimate`; a remote
  `executor` trains its chunks)."""
  if path:
    return memorization.MemScores.load(path, fingerprint=dataset.fingerprint)
  return _estimate(dataset, seed, architecture, cache_dir,
                   flag_utils.victim_splits(dataset, seed).pool,
                   "defender's (training pool)", executor)


def rehearsal_records(dataset: wemem_tf.data.Dataset, seed: int
                      ) -> np.ndarray:
  """Every record a tuning trial trains a model on: the victim's training
  records (a trial prunes the victim with its defense) and the shadows'
  side of the protocol, pool and held-out records (a rehearsal's reference
  models train on its held-out records too); no victim dev or test
  record."""
  splits = flag_utils.victim_splits(dataset, seed)
  return np.union1d(np.union1d(splits.victim.train, splits.shadow_pool),
                    wemem_tf.data.splits.shadow_heldout(splits)).astype(
                        np.int64)


def rehearsal_scores_for(dataset: wemem_tf.data.Dataset, seed: int,
                         architecture: wemem_tf.models.ArchitectureLike,
                         cache_dir: str, path: Optional[str] = None,
                         executor=None) -> memorization.MemScores:
  """Scores for `wemem tune`'s rehearsals: from `path`, else the cached
  estimate over `rehearsal_records` (the defender's estimate over the pool
  lacks the shadows' held-out records that rehearsal models train on, and
  holds victim records no trial may read)."""
  if path:
    return memorization.MemScores.load(path, fingerprint=dataset.fingerprint)
  return _estimate(dataset, seed, architecture, cache_dir,
                   rehearsal_records(dataset, seed),
                   "tuning rehearsals' (the shadows' side)",
                   executor)


def build_defense(name: str, dataset_name: str, scores_fn=None,
                  settings: Optional[dict] = None,
                  records_per_class: Optional[float] = None
                  ) -> defenses_lib.Defense:
  """A configured defense from `name` and the setting flags (or `settings`);
  `records_per_class` (the victim's) scales a preset window made for
  another size of the dataset."""
  if name not in DEFENSE_NAMES:
    raise ValueError(f"unknown defense {name!r}; choose one of "
                     f"{list(DEFENSE_NAMES)}.")
  settings = defense_settings(name) if settings is None else dict(settings)
  return defenses_lib.build(name, dataset_name, scores_fn,
                            baseline=BASELINE_SETTINGS.value,
                            records_per_class=records_per_class, **settings)


def attacker_defense_from_flags(defense, dataset: wemem_tf.data.Dataset,
                                seed: int,
                                architecture: wemem_tf.models.ArchitectureLike,
                                cache_dir: str, executor=None):
  """An adaptive attacker's copy of `defense` with its own memorization
  scores, estimated on the fly over every record it may train on (its
  reference models train on the target's held-out records too); None (the
  victim's defense) when the defense uses no scores or --memscores names a
  file (used by both)."""
  if MEMSCORES.value:
    return None
  return model_training.attacker_variant(defense, lambda: _estimate(
      dataset, seed, architecture, cache_dir, None, "attacker's (every record)",
      executor))


def defense_from_flags(dataset: wemem_tf.data.Dataset, seed: int,
                       architecture: wemem_tf.models.ArchitectureLike,
                       cache_dir: str) -> defenses_lib.Defense:
  """The defense the command line describes."""
  return build_defense(
      DEFENSE.value, dataset.name,
      lambda: scores_for(dataset, seed, architecture, cache_dir,
                         MEMSCORES.value),
      records_per_class=(flag_utils.victim_splits(dataset, seed).victim.train
                         .size / dataset.num_classes))
