#!/usr/bin/env bash
# Audits one Location victim three ways, same seed (issue 14's closing note):
#   keras  = `wemem attack` (the victim trained in-process, the Keras model),
#   tflite = `wemem audit` of the model.tflite that `wemem prune` exported,
#   h5     = `wemem audit` of its model.h5,
# then writes benchmarks/results/audit_location.md (three AUC tables side by
# side and each run's wall times). The tflite audit retrains the attacker's
# models from scratch (an honest wall time for reference-model training);
# the h5 audit reuses the attack's model store. Resumable: finished steps
# (their attacks.json) are skipped.
#
# Usage: bash benchmarks/audit_location.sh [DATA_DIR] [OUT]
set -euo pipefail
DATA_DIR="${1:-../shared/data}"
OUT="${2:-/tmp/wemem_audit_location}"
WEMEM="${WEMEM:-.venv/bin/wemem}"
FLAGS=(--flagfile=configs/location_base.cfg "--data_dir=$DATA_DIR" --seed=0)
mkdir -p "$OUT"

step() {  # step NAME OUTPUT_FILE COMMAND...
  local name="$1" done_file="$2"; shift 2
  if [[ -f "$done_file" ]]; then echo "skip $name"; return; fi
  local start=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  echo "$name $((SECONDS - start)) s" | tee -a "$OUT/wall.txt"
}

step prune "$OUT/prune/model.tflite" \
  "$WEMEM" prune "${FLAGS[@]}" "--output_dir=$OUT/prune"
step keras "$OUT/keras/attacks.json" \
  "$WEMEM" attack "${FLAGS[@]}" "--model_store_dir=$OUT/store" \
  "--output_dir=$OUT/keras"
step tflite "$OUT/tflite/attacks.json" \
  "$WEMEM" audit "${FLAGS[@]}" "--model=$OUT/prune/model.tflite" \
  "--members=$OUT/prune/splits.npz" "--output_dir=$OUT/tflite"
step h5 "$OUT/h5/attacks.json" \
  "$WEMEM" audit "${FLAGS[@]}" "--model=$OUT/prune/model.h5" \
  "--members=$OUT/prune/splits.npz" "--model_store_dir=$OUT/store" \
  "--output_dir=$OUT/h5"

.venv/bin/python - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
runs = {k: json.load(open(os.path.join(out, k, "attacks.json")))
        for k in ("keras", "tflite", "h5")}
lines = ["# Location audited as Keras, .tflite and .h5 (seed 0)", "",
         "Command: `bash benchmarks/audit_location.sh` (flags: "
         "configs/location_base.cfg, no defense, pruned to s = 0.6; 5 shadows,"
         " 6 reference models, all 12 attacks). keras = `wemem attack` on the"
         " victim it trains; tflite / h5 = `wemem audit` of the files `wemem "
         "prune` wrote for the same seed, with its splits.npz.", "",
         "| attack | AUC keras | AUC tflite | AUC h5 | bal. acc keras | "
         "bal. acc tflite | bal. acc h5 |", "|---|---:|---:|---:|---:|---:|---:|"]
rows = {k: {r["attack"]: r for r in d["attacks"]} for k, d in runs.items()}
worst = 0.0
for attack in rows["keras"]:
  aucs = [rows[k][attack]["auc"] for k in runs]
  accs = [rows[k][attack]["balanced_accuracy"] for k in runs]
  worst = max(worst, max(aucs) - min(aucs))
  lines.append(f"| {attack} | " + " | ".join(f"{100 * a:.2f}" for a in aucs)
               + " | " + " | ".join(f"{100 * a:.2f}" for a in accs) + " |")
lines += ["", f"Largest AUC difference between the three: {100 * worst:.2g} "
          "points. Victim test accuracy: " + ", ".join(
              f"{k} {100 * d['victim_test_accuracy']:.2f}%"
              for k, d in runs.items()) + ".", "",
          "Wall times (seconds; the tflite audit trains the attacker's models "
          "afresh, the h5 audit reuses the attack's model store):", "",
          "| stage | keras (attack) | tflite (audit) | h5 (audit, cached) |",
          "|---|---:|---:|---:|"]
for key in ("victim_training", "victim_querying", "shadow_training",
            "reference_training", "querying", "attacks", "total"):
  vals = [runs[k]["timing_seconds"].get(key) for k in runs]
  lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(
      "" if v is None else f"{v:.1f}" for v in vals) + " |")
text = "\n".join(lines) + "\n"
open("benchmarks/results/audit_location.md", "w").write(text)
print(text)
EOF
