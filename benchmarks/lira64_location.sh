#!/usr/bin/env bash
# The cost of a 64-reference-model LiRA audit of Location under each
# executor (issue 15's closing note): `wemem attack` with LiRA (online and
# offline) and RMIA only, no shadows, 64 reference models (random halves),
# once with --executor=local and once with --executor=ray (2 workers, 1 CPU
# each), fresh directories. Prints each run's wall time and its
# reference-model training time, and writes
# benchmarks/results/lira64_location.md.
#
# Usage: bash benchmarks/lira64_location.sh [DATA_DIR] [OUT]
set -euo pipefail
DATA_DIR="${1:-../shared/data}"
OUT="${2:-/tmp/wemem_lira64}"
WEMEM="${WEMEM:-.venv/bin/wemem}"
rm -rf "$OUT"; mkdir -p "$OUT"
for executor in local ray; do
  start=$SECONDS
  "$WEMEM" attack --flagfile=configs/location_base.cfg "--data_dir=$DATA_DIR" \
    --seed=0 --num_shadows=0 --attacks=lira_online,lira_offline,rmia \
    --num_reference_models=64 "--executor=$executor" --ray_workers=2 \
    --cpus_per_model=1 "--output_dir=$OUT/$executor" > "$OUT/$executor.log" 2>&1
  echo "$executor $((SECONDS - start))" >> "$OUT/wall.txt"
done
.venv/bin/python - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
wall = dict(line.split() for line in open(os.path.join(out, "wall.txt")))
lines = ["# LiRA / RMIA with 64 reference models on Location (seed 0)", "",
         "Command: `bash benchmarks/lira64_location.sh` (configs/location_base."
         "cfg, no defense, s = 0.6; 64 random-halves reference models, no "
         "shadows). Ray: a local Ray with 2 workers, 1 CPU each, on this "
         "2-core machine.", "",
         "| executor | wall (s) | reference training (s) | attacks (s) | "
         "AUC lira_online | AUC lira_offline | AUC rmia |",
         "|---|---:|---:|---:|---:|---:|---:|"]
for ex in ("local", "ray"):
  doc = json.load(open(os.path.join(out, ex, "attacks.json")))
  t = doc["timing_seconds"]
  auc = {r["attack"]: r["auc"] for r in doc["attacks"]}
  lines.append(f"| {ex} | {wall[ex]} | {t.get('model_training', t['reference_training']):.0f} | "
               f"{t['attacks']:.1f} | {100 * auc['lira_online']:.2f} | "
               f"{100 * auc['lira_offline']:.2f} | {100 * auc['rmia']:.2f} |")
text = "\n".join(lines) + "\n"
open("benchmarks/results/lira64_location.md", "w").write(text)
print(text)
PY
