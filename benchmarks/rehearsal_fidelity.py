"""Does the tuning rehearsal rank defense settings like the real protocol?

`wemem tune` scores a setting on a *rehearsal* (a held-out shadow plays the
victim; wemem_eval/tuning/tuner.py). A search is only as good as that
proxy, so this script measures settings exactly like tuning trials
(`evaluate_choice`, on one or more held-out shadows) and sets them beside
what the full evaluation (`wemem run`, aggregated over seeds) measured for
the same settings:

* per setting: rehearsed strongest attack (mean over held-out shadows) and
  dev accuracy; real strongest attack over the same attacks (per seed, then
  the mean) and test accuracy;
* over settings: Spearman's rank correlation of the attack numbers, the
  share of setting pairs ordered alike, and the mean absolute error.

Results are cached per (setting, held-out shadow) in --fidelity_output
(JSON, rewritten atomically after each measurement), so a rerun resumes.
It takes `wemem tune`'s flags (and flagfiles), e.g.:

  python benchmarks/rehearsal_fidelity.py \\
    --flagfile=configs/location_base.cfg --data_dir=../shared/data --seed=0 \\
    --cache_dir=runs/location_seed0 --num_shadows=5 \\
    --fidelity_defenses=base,rsw,rmr,swmr,random \\
    --fidelity_trials=tuned=runs/loc_tune/best.json \\
    --fidelity_real=results/location_3seeds/aggregate.json \\
    --fidelity_real=tuned=results/location_tuning/evaluation/aggregate.json:swmr \\
    --fidelity_output=benchmarks/results/rehearsal_fidelity_location.json
"""

import dataclasses
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags

import wemem_tf  # first: Keras 2
from wemem_cli import common_flags as cf
from wemem_cli import flag_utils
from wemem_cli import main as cli_main
from wemem_cli import tune_cmd
from wemem_eval import experiment
from wemem_eval.tuning import tuner as tuner_lib
from wemem_tf import io_utils
import numpy as np
from scipy import stats

DEFENSES = flags.DEFINE_list(
    "fidelity_defenses", ["base", "rsw", "rmr", "swmr", "random"],
    "Settings to measure by name: 'base' (no defense) or a WeMem method at "
    "the dataset's preset.")
TRIALS = flags.DEFINE_multi_string(
    "fidelity_trials", [], "LABEL=PATH: also measure the setting in PATH "
    "(a tuner's best.json or a trial's wemem_trial.json).")
STREAMS = flags.DEFINE_list(
    "fidelity_streams", ["0"], "Held-out shadows (rehearsal streams) each "
    "setting is measured on.")
REAL = flags.DEFINE_multi_string(
    "fidelity_real", [], "Real-protocol numbers: an aggregate.json (its "
    "configurations by name), or LABEL=AGGREGATE.json:NAME for one setting.")
OUTPUT = flags.DEFINE_string(
    "fidelity_output", None, "JSON file for the results (resumable); a "
    ".md table is written beside it.")


def _choice_from_file(path: str) -> tuner_lib.DefenseChoice:
  with open(path) as f:
    record = json.load(f)
  choice = record.get("defense") or record.get("choice")
  if not choice:
    raise ValueError(f"{path} holds no 'defense' or 'choice' entry; pass a "
                     "tuner's best.json or a trial's wemem_trial.json.")
  return tuner_lib.DefenseChoice(choice["name"], choice["settings"])


def _choices(dataset_name: str) -> Dict[str, tuner_lib.DefenseChoice]:
  presets = {c.name: c for c in tuner_lib.preset_choices(
      dataset_name, [d for d in DEFENSES.value if d != "base"])}
  choices = {}
  for name in DEFENSES.value:
    if name == "base":
      choices[name] = tuner_lib.DefenseChoice("none", {})
    elif name in presets:
      choices[name] = presets[name]
    else:
      raise ValueError(f"no preset for {name!r} on {dataset_name}.")
  for entry in TRIALS.value:
    label, sep, path = entry.partition("=")
    if not sep:
      raise ValueError(f"--fidelity_trials wants LABEL=PATH, got {entry!r}.")
    choices[label] = _choice_from_file(path)
  return choices


def _best_per_seed(config: Dict[str, Any], attacks: Sequence[str]
                   ) -> np.ndarray:
  values = [config["attacks"][a]["balanced_accuracy"]["values"]
            for a in attacks if a in config["attacks"]]
  return np.max(np.asarray(values), axis=0)


def real_numbers(attacks: Sequence[str]) -> Dict[str, Dict[str, float]]:
  """{label: {"attack": mean over seeds of the best of `attacks`,
  "test_accuracy": mean}} from --fidelity_real."""
  real = {}
  for entry in REAL.value:
    label, sep, rest = entry.partition("=")
    path, name = entry, None
    if sep:
      path, colon, name = rest.rpartition(":")
      if not colon:
        raise ValueError(f"--fidelity_real wants AGGREGATE.json or "
                         f"LABEL=AGGREGATE.json:NAME, got {entry!r}.")
    with open(path) as f:
      configs = json.load(f)["defenses"]
    wanted = {label: name} if name else {k: k for k in configs}
    for out_label, config_name in wanted.items():
      config = configs[config_name]
      best = _best_per_seed(config, attacks)
      real[out_label] = {"attack": float(best.mean()),
                         "attack_std": float(best.std(ddof=1))
                         if best.size > 1 else 0.0,
                         "test_accuracy": config["test_accuracy"]["mean"],
                         "seeds": int(best.size)}
  return real


def _load(path: str) -> Dict[str, Any]:
  if path and os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  return {"measurements": {}}


def measure(setup: tuner_lib.TuningSetup,
            choices: Dict[str, tuner_lib.DefenseChoice],
            streams: Sequence[int], state: Dict[str, Any],
            path: Optional[str]) -> None:
  """Fills state["measurements"]["label/stream"] (saved after each)."""
  for label, choice in choices.items():
    for stream in streams:
      key = f"{label}/{stream}"
      if key in state["measurements"]:
        continue
      start = time.perf_counter()
      metrics = tuner_lib.evaluate_choice(
          dataclasses.replace(setup, rehearsal_stream=stream,
                              rehearsals_per_trial=1), choice)
      state["measurements"][key] = {
          "choice": choice.to_json(), "stream": stream,
          "dev_accuracy": metrics.dev_accuracy,
          "attack_accuracy": metrics.attack_accuracy,
          "strongest_attack": metrics.strongest_attack,
          "attacks": dict(metrics.attacks),
          "seconds": time.perf_counter() - start}
      print(f"{key}: dev {100 * metrics.dev_accuracy:.1f}%, attack "
            f"{100 * metrics.attack_accuracy:.1f}% "
            f"({metrics.strongest_attack}), "
            f"{state['measurements'][key]['seconds']:.0f} s", flush=True)
      if path:
        io_utils.atomic_write_json(path, state)


def summarize(state: Dict[str, Any], real: Dict[str, Dict[str, float]]
              ) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
  """Per-label rows and rank-agreement statistics."""
  by_label: Dict[str, List[Dict[str, Any]]] = {}
  for key, m in state["measurements"].items():
    by_label.setdefault(key.rsplit("/", 1)[0], []).append(m)
  rows = []
  for label, ms in by_label.items():
    row = {"label": label, "streams": len(ms),
           "rehearsal_attack": float(np.mean([m["attack_accuracy"]
                                              for m in ms])),
           "rehearsal_dev_accuracy": float(np.mean([m["dev_accuracy"]
                                                    for m in ms])),
           "strongest": sorted({m["strongest_attack"] for m in ms})}
    if label in real:
      row.update(real_attack=real[label]["attack"],
                 real_attack_std=real[label]["attack_std"],
                 real_test_accuracy=real[label]["test_accuracy"])
    rows.append(row)
  paired = [r for r in rows if "real_attack" in r]
  summary: Dict[str, Any] = {"settings_compared": len(paired)}
  if len(paired) >= 3:
    a = np.array([r["rehearsal_attack"] for r in paired])
    b = np.array([r["real_attack"] for r in paired])
    i, j = np.triu_indices(len(paired), 1)
    summary.update(
        spearman=float(stats.spearmanr(a, b).statistic),
        pairs_ordered_alike=float(np.mean(np.sign(a[i] - a[j])
                                          == np.sign(b[i] - b[j]))),
        mean_abs_error=float(np.mean(np.abs(a - b))),
        mean_error=float(np.mean(a - b)))
  return rows, summary


def _reference_count(setup: tuner_lib.TuningSetup) -> int:
  return experiment.ExperimentConfig(
      num_shadows=setup.num_shadows,
      num_reference_models=setup.num_reference_models).reference_count()


def markdown(rows, summary, setup: tuner_lib.TuningSetup,
             state_command: str) -> str:
  lines = [
      f"# Rehearsal fidelity: {setup.dataset.name}, seed {setup.seed}",
      "",
      f"Rehearsal: {setup.rehearsal_kind} (target {setup.scale:.2f}× the "
      f"victim's training size), {setup.num_shadows} shadows, "
      f"{_reference_count(setup)} reference models at inclusion "
      f"{setup.reference_inclusion:.3f}, RMIA p(x): "
      f"{setup.options.rmia_marginal}; attacks: {', '.join(setup.attacks)}.",
      "",
      f"Command: `{state_command}`",
      "",
      "| setting | rehearsals | rehearsal: dev acc | rehearsal: "
      "strongest attack | real: test acc | real: strongest attack |",
      "|---|---|---|---|---|---|"]
  for r in sorted(rows, key=lambda r: r.get("real_attack", 2.0)):
    real = (f"{100 * r['real_test_accuracy']:.1f} | "
            f"{100 * r['real_attack']:.1f} ± {100 * r['real_attack_std']:.1f}"
            if "real_attack" in r else "— | —")
    lines.append(f"| {r['label']} | {r['streams']} | "
                 f"{100 * r['rehearsal_dev_accuracy']:.1f} | "
                 f"{100 * r['rehearsal_attack']:.1f} "
                 f"({', '.join(r['strongest'])}) | {real} |")
  if "spearman" in summary:
    lines += ["", f"Over {summary['settings_compared']} settings: Spearman "
              f"ρ = {summary['spearman']:.2f}; pairs ordered alike "
              f"{100 * summary['pairs_ordered_alike']:.0f}%; mean |rehearsal "
              f"− real| = {100 * summary['mean_abs_error']:.1f} points (mean "
              f"signed {100 * summary['mean_error']:+.1f})."]
  return "\n".join(lines) + "\n"


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  dataset = flag_utils.load_dataset()
  cache_dir = cf.CACHE_DIR.value or flag_utils.output_dir()
  setup = tune_cmd.setup_from_flags(dataset, cache_dir)
  choices = _choices(dataset.name)
  streams = [int(s) for s in STREAMS.value]
  path = OUTPUT.value
  state = _load(path)
  state["setup"] = {
      "dataset": dataset.name, "seed": setup.seed,
      "rehearsal": setup.rehearsal_kind, "scale": setup.scale,
      "num_shadows": setup.num_shadows,
      "num_reference_models": _reference_count(setup),
      "reference_inclusion": setup.reference_inclusion,
      "rmia_marginal": setup.options.rmia_marginal,
      "attacks": list(setup.attacks), "command": " ".join(sys.argv)}
  measure(setup, choices, streams, state, path)
  rows, summary = summarize(state, real_numbers(setup.attacks))
  state.update(rows=rows, summary=summary)
  text = markdown(rows, summary, setup, state["setup"]["command"])
  if path:
    io_utils.atomic_write_json(path, state)
    io_utils.atomic_write_bytes(os.path.splitext(path)[0] + ".md",
                                text.encode())
  print(text)
  return 0


if __name__ == "__main__":
  cli_main._load_entry_points()  # pylint: disable=protected-access  (every flag a flagfile may set)
  app.run(main)
