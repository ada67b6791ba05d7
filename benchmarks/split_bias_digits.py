"""Class-aware attacks on digits under unstratified vs stratified splits.

  python benchmarks/split_bias_digits.py [--seeds=0,1,2]
      [--work=/tmp/wemem_split_bias]

For each --split (unstratified = the authors' random cuts, stratified = our
default, docs/method.md §2) and seed, runs `wemem attack --dataset=digits
--attacks=all` (base configuration: iterative pruning, no defense, digits'
default settings) and records every attack's AUC and balanced accuracy,
plus the correlation between the victim's and the shadows' per-class
member-share differences (members' class share - non-members'), the
mechanism of the bias. Writes benchmarks/results/split_bias_digits.json and
.md. Resumable: a finished attack directory is not redone.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from wemem_tf.data import datasets  # pylint: disable=g-import-not-at-top
from wemem_tf.data import splits as splits_lib  # pylint: disable=g-import-not-at-top

SPLITS = ("unstratified", "stratified")
SHOWN = ("nn", "nn_cls", "nn_top3", "samia", "conf", "lira_online", "rmia")
OUT = "benchmarks/results/split_bias_digits"


def _share_difference(y: np.ndarray, part: splits_lib.ModelSplit
                      ) -> np.ndarray:
  members = np.bincount(y[part.train], minlength=10) / len(part.train)
  non = np.bincount(y[part.test], minlength=10) / len(part.test)
  return members - non


def class_prior(dataset, seed: int, split: str) -> dict:
  """The victim's largest per-class share difference (percentage points)
  and the Pearson r between its per-class differences and the shadows'
  mean ones (5 shadows)."""
  s = splits_lib.splits_for(dataset, seed, num_shadows=5,
                            config=splits_lib.SplitConfig(
                                stratified=split == "stratified"))
  victim = _share_difference(dataset.y, s.victim)
  shadows = np.mean([_share_difference(dataset.y, p) for p in s.shadows], 0)
  return {"victim_max_abs_pp": float(100 * np.abs(victim).max()),
          "r": float(np.corrcoef(victim, shadows)[0, 1])}


def _attack(split: str, seed: int, work: str) -> dict:
  out = os.path.join(work, f"{split}_seed{seed}")
  path = os.path.join(out, "attacks.json")
  if not os.path.isfile(path):
    cmd = [os.path.join(os.path.dirname(sys.executable), "wemem"), "attack",
           "--dataset=digits", f"--seed={seed}", f"--split={split}",
           "--attacks=all", f"--output_dir={out}"]
    with open(out + ".log", "w") as log:
      subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True,
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  with open(path) as f:
    doc = json.load(f)
  return {r["attack"]: {"auc": r["auc"],
                        "balanced_accuracy": r["balanced_accuracy"]}
          for r in doc["attacks"]}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--work", default="/tmp/wemem_split_bias")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  os.makedirs(args.work, exist_ok=True)
  dataset = datasets.load_dataset("digits")
  rows = []
  for split in SPLITS:
    for seed in seeds:
      rows.append({"split": split, "seed": seed,
                   "class_prior": class_prior(dataset, seed, split),
                   "attacks": _attack(split, seed, args.work)})
  with open(OUT + ".json", "w") as f:
    json.dump({"command": "python " + " ".join(sys.argv), "rows": rows}, f,
              indent=2)
  lines = [
      "# Class-aware attacks on digits: unstratified vs stratified splits",
      "", f"`python {' '.join(sys.argv)}` — `wemem attack --dataset=digits "
      "--attacks=all --seed=S --split=SPLIT` (base: iterative pruning, no "
      "defense). AUC in %. Δ = members' class share − non-members' class "
      "share; max |Δ| is the victim's largest (percentage points), r the "
      "correlation of the victim's per-class Δ with the shadows' mean Δ "
      "(under stratified splits Δ is rounding, below 1 point, and r means "
      "nothing).", "",
      "| split | seed | max abs Δ (pp) | r | " + " | ".join(SHOWN) + " |",
      "|---|---:|---:|---:|" + "---:|" * len(SHOWN)]
  for row in rows:
    prior = row["class_prior"]
    lines.append(f"| {row['split']} | {row['seed']} | "
                 f"{prior['victim_max_abs_pp']:.1f} | {prior['r']:+.2f} | "
                 + " | ".join(
                     f"{100 * row['attacks'][a]['auc']:.1f}" for a in SHOWN)
                 + " |")
  for split in SPLITS:
    chosen = [r for r in rows if r["split"] == split]
    means = [np.mean([100 * r["attacks"][a]["auc"] for r in chosen])
             for a in SHOWN]
    lines.append(f"| **{split} mean** | | | | " + " | ".join(
        f"**{m:.1f}**" for m in means) + " |")
  with open(OUT + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
