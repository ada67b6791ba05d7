#!/usr/bin/env bash
# The configurations of a Location seed whose models cohorts can train
# (issue 16): `wemem run --flagfile=configs/location_base.cfg` with
# --defenses=none,rsw,random and the unpruned and one-shot baselines (5
# configurations x 12 attacks, 5 shadows and 6 reference models each, seed
# 0, local executor), once one model at a time and once with --cohorts,
# back to back in fresh directories. Prints the wall time, peak RSS and
# each configuration's seconds (from the run's log), and writes
# benchmarks/results/cohort_run_location.md.
#
# Usage: bash benchmarks/cohort_run_location.sh [DATA_DIR] [OUT]
set -euo pipefail
DATA_DIR="${1:-../shared/data}"
OUT="${2:-/tmp/wemem_cohort_run}"
WEMEM="${WEMEM:-.venv/bin/wemem}"
rm -rf "$OUT"; mkdir -p "$OUT"
for mode in loop cohort; do
  flags=()
  [ "$mode" = cohort ] && flags=(--cohorts)
  start=$SECONDS
  /usr/bin/time -f "%M" -o "$OUT/$mode.rss" "$WEMEM" run \
    --flagfile=configs/location_base.cfg "--data_dir=$DATA_DIR" --seed=0 \
    --defenses=none,rsw,random --baselines=unpruned,one_shot \
    --executor=local --noprogress "--output_dir=$OUT/$mode" "${flags[@]}" \
    > "$OUT/$mode.log" 2>&1
  echo "$mode $((SECONDS - start)) $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)" >> "$OUT/wall.txt"
done
.venv/bin/python - "$OUT" <<'PY'
import json, os, re, sys
out = sys.argv[1]
rows = {l.split()[0]: l.split()[1:] for l in open(os.path.join(out, "wall.txt"))}
steps = {}
for mode in rows:
  for line in open(os.path.join(out, mode + ".log")):
    m = re.match(r"\[\d+/\d+\] (\S+)\s+(\d+)s", line.strip())
    if m:
      steps.setdefault(m.group(1), {})[mode] = int(m.group(2))
lines = ["# Cohorts in a Location run: the configurations they can train", "",
         "Command: `bash benchmarks/cohort_run_location.sh` (`wemem run "
         "--flagfile=configs/location_base.cfg --defenses=none,rsw,random "
         "--baselines=unpruned,one_shot`, seed 0, 5 shadows and 6 reference "
         "models per configuration, local executor, 2 cores), one model at a "
         "time and with `--cohorts`, back to back.", "",
         "| | one at a time | cohorts |", "|---|---:|---:|"]
rss = {m: int(open(os.path.join(out, m + ".rss")).read().split()[-1]) / 1e6
       for m in rows}
lines.append(f"| wall (s) | {rows['loop'][0]} | {rows['cohort'][0]} |")
lines.append(f"| peak RSS (GB) | {rss['loop']:.2f} | {rss['cohort']:.2f} |")
lines.append(f"| load at the end (1/5/15 min) | {rows['loop'][1]} | {rows['cohort'][1]} |")
for name, secs in steps.items():
  lines.append(f"| {name} (s) | {secs.get('loop', '')} | {secs.get('cohort', '')} |")
lines += ["", "Best attack (victim-side balanced accuracy, %) and test accuracy (%):", "",
          "| configuration | one at a time | cohorts |", "|---|---|---|"]
reports = {m: json.load(open(os.path.join(out, m, "report.json")))["defenses"]
           for m in rows}
cell = lambda e: (f"{100 * e['best_attack']['balanced_accuracy']:.1f} / "
                  f"{100 * e['test_accuracy']:.1f}")
for name in reports["loop"]:
  lines.append(f"| {name} | {cell(reports['loop'][name])} | "
               f"{cell(reports['cohort'][name])} |")
print("\n".join(lines))
open("benchmarks/results/cohort_run_location.md", "w").write("\n".join(lines) + "\n")
PY
