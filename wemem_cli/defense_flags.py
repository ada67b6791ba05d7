"""`--defense` and its settings, shared by `wemem prune`, `attack` and `run`.

WeMem methods (rsw, rmr, swmr, random) start from the authors' preset for
the dataset when one exists (location, cifar10; METHOD.md §5), else from the
class defaults; any setting flag given overrides it. They need memorization
scores: `--memscores=FILE.npz`, or computed on the fly over every record of
the dataset and cached in the run directory (keyed by dataset fingerprint,
seed and estimator settings).
"""

from typing import Optional

from absl import flags
from absl import logging

import wemem_tf
from wemem_tf import defenses as defenses_lib
from wemem_tf import memorization
from wemem_tf.defenses import existing  # pylint: disable=unused-import  (registers)

WEMEM_METHODS = defenses_lib.WEMEM_METHODS
DEFENSE_NAMES = ("none",) + WEMEM_METHODS + ("ppb", "advreg", "dp",
                                             "relaxloss", "hamp")

DEFENSE = flags.DEFINE_enum("defense", "none", list(DEFENSE_NAMES),
                            "Defense applied while fine-tuning during pruning.")
MEMSCORES = flags.DEFINE_string(
    "memscores", None, "Memorization scores (.npz from `wemem memscore`) for "
    "rsw/rmr/swmr; computed on the fly and cached when absent.")
MEMSCORE_MODELS = flags.DEFINE_integer(
    "memscore_models", 128, "Models of the on-the-fly memorization estimate.")
MEMSCORE_EPOCHS = flags.DEFINE_integer(
    "memscore_epochs", 30, "Epochs per model of the on-the-fly estimate.")
WINDOW_ORDER = flags.DEFINE_enum(
    "window_order", None, ["h2l", "l2h", "random"],
    "Sliding-window order (rsw, swmr); default: the method's preset.")
WINDOW_STRIDE = flags.DEFINE_integer("window_stride", None,
                                     "Sliding-window stride per epoch.")
WINDOW_WIDTH = flags.DEFINE_integer("window_width", None,
                                    "Sliding-window width per class.")
LAMBDA_MEM = flags.DEFINE_float("lambda_mem", None,
                                "L2 weight decay of risky batches (rmr, swmr).")
TAU = flags.DEFINE_float("tau", None, "Risky threshold as a score in [-1, 1].")
TAU_SHARE = flags.DEFINE_float(
    "tau_share", None, "Risky threshold as a share of records (instead of tau).")
PPB_ALPHA = flags.DEFINE_float("ppb_alpha", None, "PPB's KL weight α.")
ADVREG_WEIGHT = flags.DEFINE_float("advreg_weight", None,
                                   "AdvReg's adversarial weight.")
ADVREG_STEPS = flags.DEFINE_integer(
    "advreg_attack_steps", None, "AdvReg inner attack steps per model step.")
DP_DELTA = flags.DEFINE_float("dp_delta", None, "DP-SGD δ (default 1/n).")
RELAXLOSS_UPPER = flags.DEFINE_float("relaxloss_upper", None,
                                     "RelaxLoss flattening upper bound.")
HAMP_MODIFY = flags.DEFINE_boolean(
    "hamp_modify_output", None, "HAMP's output modification at inference.")
DP_NOISE = flags.DEFINE_float("dp_noise_multiplier", None,
                              "DP-SGD noise multiplier.")
DP_CLIP = flags.DEFINE_float("dp_l2_norm_clip", None, "DP-SGD clipping norm.")
RELAXLOSS_ALPHA = flags.DEFINE_float("relaxloss_alpha", None,
                                     "RelaxLoss target loss α.")
HAMP_ENTROPY = flags.DEFINE_float("hamp_entropy_threshold", None,
                                  "HAMP's entropy threshold γ in (0, 1).")
HAMP_ALPHA = flags.DEFINE_float("hamp_alpha", None,
                                "HAMP's entropy-regularization weight.")

_SETTINGS = {  # defense -> {constructor argument: flag}
    "rsw": {"order": WINDOW_ORDER, "stride": WINDOW_STRIDE,
            "width": WINDOW_WIDTH},
    "random": {"stride": WINDOW_STRIDE, "width": WINDOW_WIDTH},
    "rmr": {"lambda_mem": LAMBDA_MEM, "tau": TAU, "tau_share": TAU_SHARE},
    "swmr": {"order": WINDOW_ORDER, "stride": WINDOW_STRIDE,
             "width": WINDOW_WIDTH, "lambda_mem": LAMBDA_MEM, "tau": TAU,
             "tau_share": TAU_SHARE},
    "ppb": {"alpha": PPB_ALPHA},
    "advreg": {"weight": ADVREG_WEIGHT, "attack_steps": ADVREG_STEPS},
    "dp": {"noise_multiplier": DP_NOISE, "l2_norm_clip": DP_CLIP,
           "delta": DP_DELTA},
    "relaxloss": {"alpha": RELAXLOSS_ALPHA, "upper": RELAXLOSS_UPPER},
    "hamp": {"entropy_threshold": HAMP_ENTROPY, "alpha": HAMP_ALPHA,
             "modify_output": HAMP_MODIFY},
}


def defense_settings(name: str) -> dict:
  """The settings flags given for defense `name` ({argument: value})."""
  settings = {arg: flag.value for arg, flag in _SETTINGS.get(name, {}).items()
              if flag.value is not None}
  if settings.get("tau_share") is not None and name in ("rmr", "swmr"):
    settings.setdefault("tau", None)
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


def scores_for(dataset: wemem_tf.data.Dataset, seed: int, architecture: str,
               cache_dir: str, path: Optional[str] = None
               ) -> memorization.MemScores:
  """Scores from `path` (checked against the dataset), else the cached
  on-the-fly estimate over every record (`memorization.cached_estimate`)."""
  if path:
    return memorization.MemScores.load(path, fingerprint=dataset.fingerprint)
  logging.info("memorization scores: %d models x %d epochs on %d records "
               "(cached in %s)", MEMSCORE_MODELS.value, MEMSCORE_EPOCHS.value,
               len(dataset), cache_dir)
  return memorization.cached_estimate(
      dataset, cache_dir, seed, architecture,
      num_models=MEMSCORE_MODELS.value, epochs=MEMSCORE_EPOCHS.value)


def build_defense(name: str, dataset_name: str, scores_fn=None,
                  settings: Optional[dict] = None) -> defenses_lib.Defense:
  """A configured defense from `name` and the setting flags (or `settings`)."""
  if name not in DEFENSE_NAMES:
    raise ValueError(f"unknown defense {name!r}; choose one of "
                     f"{list(DEFENSE_NAMES)}.")
  settings = defense_settings(name) if settings is None else dict(settings)
  return defenses_lib.build(name, dataset_name, scores_fn, **settings)


def defense_from_flags(dataset: wemem_tf.data.Dataset, seed: int,
                       architecture: str, cache_dir: str
                       ) -> defenses_lib.Defense:
  """The defense the command line describes."""
  return build_defense(
      DEFENSE.value, dataset.name,
      lambda: scores_for(dataset, seed, architecture, cache_dir,
                         MEMSCORES.value))
