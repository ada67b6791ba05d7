#!/usr/bin/env bash
# Reference models trained one at a time vs in a cohort (issue 16): the
# LiRA/RMIA audit of Location's base configuration (configs/location_base.cfg,
# seed 0, no shadows, `wemem attack --attacks=lira_online,lira_offline,rmia`)
# with 6 reference models one at a time (today's default audit), and with 6,
# 16 and 64 reference models in cohorts (--cohorts), back to back on the
# local executor. Prints and writes benchmarks/results/reference_cohort_location.md:
# wall time, reference-model training time, AUC, TPR at 1% and 0.1% FPR.
#
# Usage: bash benchmarks/reference_cohort_location.sh [DATA_DIR] [OUT]
set -euo pipefail
DATA_DIR="${1:-../shared/data}"
OUT="${2:-/tmp/wemem_reference_cohort}"
WEMEM="${WEMEM:-.venv/bin/wemem}"
rm -rf "$OUT"; mkdir -p "$OUT"
run() {  # name, flags...
  local name=$1; shift
  local start=$SECONDS
  "$WEMEM" attack --flagfile=configs/location_base.cfg "--data_dir=$DATA_DIR" \
    --seed=0 --num_shadows=0 --attacks=lira_online,lira_offline,rmia \
    --executor=local --noprogress "--output_dir=$OUT/$name" "$@" \
    > "$OUT/$name.log" 2>&1
  echo "$name $((SECONDS - start)) $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)" >> "$OUT/wall.txt"
}
run loop_6 --num_reference_models=6
run cohort_6 --num_reference_models=6 --cohorts
run cohort_16 --num_reference_models=16 --cohorts
run cohort_64 --num_reference_models=64 --cohorts
.venv/bin/python - "$OUT" <<'PY'
import json, os, platform, sys
out = sys.argv[1]
rows = [line.split() for line in open(os.path.join(out, "wall.txt"))]
lines = [
    "# Reference models one at a time vs in a cohort: LiRA/RMIA on Location",
    "",
    "Command: `bash benchmarks/reference_cohort_location.sh` "
    "(configs/location_base.cfg: no defense, s = 0.6, 5 pruning iterations; "
    "seed 0, no shadows, random-halves reference models; local executor, "
    "one process on this 2-core machine). `loop`: every model trained one "
    "at a time (today's default); `cohort`: `--cohorts` (the victim, a "
    "cohort of one, and the reference models together). TPR at 0.1% FPR is "
    "n/a where the victim's non-members are too few to resolve it (the "
    "FPR resolution column).", "",
    "| run | reference models | wall (s) | reference training (s) | victim "
    "training (s) | load (1/5/15 min) | AUC lira_online | AUC lira_offline "
    "| AUC rmia | TPR@1% lira_online | TPR@1% rmia | TPR@0.1% lira_online | "
    "FPR resolution |",
    "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}"
for name, wall, load in rows:
  doc = json.load(open(os.path.join(out, name, "attacks.json")))
  t = doc["timing_seconds"]
  by = {r["attack"]: r for r in doc["attacks"]}
  lines.append(
      f"| {name} | {doc['num_reference_models']} | {wall} | "
      f"{t['reference_training']:.1f} | {t['victim_training']:.1f} | {load} | "
      f"{pct(by['lira_online']['auc'])} | {pct(by['lira_offline']['auc'])} | "
      f"{pct(by['rmia']['auc'])} | {pct(by['lira_online']['tpr_at_1pct_fpr'])} | "
      f"{pct(by['rmia']['tpr_at_1pct_fpr'])} | "
      f"{pct(by['lira_online']['tpr_at_0.1pct_fpr'])} | "
      f"{pct(by['lira_online']['fpr_resolution'])} |")
text = "\n".join(lines) + "\n"
open("benchmarks/results/reference_cohort_location.md", "w").write(text)
print(text)
PY
