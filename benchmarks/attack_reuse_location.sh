#!/usr/bin/env bash
# What the attacks of a Location run cost, before and after the trained
# attack models are compiled once per process (issue 16, attacks/compiled.py).
#
# 1. Trains every model of five configurations once (`wemem run
#    --flagfile=configs/location_base.cfg --defenses=none,rsw,random
#    --baselines=unpruned,one_shot --cohorts`, seed 0) into a shared cache.
# 2. Runs the same command from two checkouts, BEFORE (a git revision,
#    default 456dccd, the last without attacks/compiled.py) and this one,
#    back to back in fresh output directories reading that cache: every
#    model is loaded, so the runs spend their time querying and attacking.
#
# Prints and writes benchmarks/results/attack_reuse_location.md: wall time,
# each configuration's attack seconds and the trained attacks' seconds (from
# each configuration's attacks.json), and the best attack per configuration.
#
# Usage: bash benchmarks/attack_reuse_location.sh [DATA_DIR] [OUT] [BEFORE]
set -euo pipefail
DATA_DIR="$(realpath "${1:-../shared/data}")"
OUT="$(realpath -m "${2:-/tmp/wemem_attack_reuse}")"
BEFORE="${3:-456dccd}"
PY="$PWD/.venv/bin/python"  # not realpath: that would leave the venv
rm -rf "$OUT"; mkdir -p "$OUT"
git worktree add -f --detach "$OUT/before_src" "$BEFORE" >/dev/null
run() {  # run NAME SRC: wemem run from checkout SRC into $OUT/NAME
  local start=$SECONDS
  (cd "$2" && PYTHONPATH="$2" /usr/bin/time -f "%M" -o "$OUT/$1.rss" \
     "$PY" -m wemem_cli.main run --flagfile=configs/location_base.cfg \
     "--data_dir=$DATA_DIR" --seed=0 --defenses=none,rsw,random \
     --baselines=unpruned,one_shot --cohorts --executor=local --noprogress \
     "--cache_dir=$OUT/cache" "--output_dir=$OUT/$1" > "$OUT/$1.log" 2>&1)
  echo "$1 $((SECONDS - start)) $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)" \
    >> "$OUT/wall.txt"
}
run prepare "$PWD"
run before "$OUT/before_src"
run after "$PWD"
git worktree remove --force "$OUT/before_src"
"$PY" - "$OUT" "$BEFORE" "$(git rev-parse --short HEAD)" <<'PY'
import glob, json, os, sys
out, before, after = sys.argv[1:]
wall = {l.split()[0]: l.split()[1:] for l in open(os.path.join(out, "wall.txt"))}
TRAINED = ("nn", "nn_top3", "nn_cls", "samia")
def load(mode):
  rows = {}
  for path in sorted(glob.glob(os.path.join(out, mode, "experiments", "*",
                                            "attacks.json"))):
    d = json.load(open(path))
    secs = {r["attack"]: r["seconds"] for r in d["attacks"]}
    best = max(d["attacks"], key=lambda r: r["balanced_accuracy"])
    rows[os.path.basename(os.path.dirname(path))] = dict(
        attacks=d["timing_seconds"]["attacks"],
        trained=sum(secs[a] for a in TRAINED),
        samia=secs["samia"], best=(best["attack"], best["balanced_accuracy"]))
  return rows
b, a = load("before"), load("after")
lines = [
    "# Attacks of a Location run: compiled attack models reused", "",
    f"Command: `bash benchmarks/attack_reuse_location.sh` (before = {before}, "
    f"after = {after}; 5 configurations, seed 0, every model read from a "
    "cache the `prepare` run filled, local executor, 2 cores).", "",
    "| run | wall (s) | load at the end (1/5/15 min) |", "|---|---:|---|"]
lines += [f"| {m} | {w[0]} | {w[1]} |" for m, w in wall.items()]
lines += ["", "Seconds per configuration (attacks = the 12 attacks with their "
          "intervals; trained = nn + nn_top3 + nn_cls + samia); the runs "
          "take the configurations in the order unpruned, one_shot, base, "
          "rsw, random:", "",
          "| configuration | attacks before | attacks after | trained before "
          "| trained after | samia before | samia after | best attack before "
          "| best attack after |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
for name in b:
  x, y = b[name], a.get(name)
  if y is None:
    continue
  lines.append(
      f"| {name} | {x['attacks']:.1f} | {y['attacks']:.1f} | "
      f"{x['trained']:.1f} | {y['trained']:.1f} | {x['samia']:.1f} | "
      f"{y['samia']:.1f} | {x['best'][0]} {100 * x['best'][1]:.1f} | "
      f"{y['best'][0]} {100 * y['best'][1]:.1f} |")
tb = sum(r["attacks"] for r in b.values()); ta = sum(r["attacks"] for r in a.values())
lines += ["", f"Total attack seconds: before {tb:.0f}, after {ta:.0f} "
          f"({tb / ta:.2f}x)."]
text = "\n".join(lines) + "\n"
print(text)
open("benchmarks/results/attack_reuse_location.md", "w").write(text)
PY
