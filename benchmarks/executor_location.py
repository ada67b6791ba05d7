"""A full Location seed under the local and the Ray executor, back to back.

  python benchmarks/executor_location.py [--data_dir=../shared/data]
      [--work=/tmp/wemem_executor_location] [--executors=local,ray]

Runs `wemem run --flagfile=configs/location_base.cfg` with all ten defenses
(12 configurations x 12 attacks) once per executor (Ray: a local Ray with
2 workers, 1 CPU each), each into a fresh directory, sampling every 0.5 s
the resident memory of the command and of every Ray process (raylet, GCS,
workers). Records the wall time and the peak total memory of each and
whether the two reports hold the same numbers (tools/compare_runs.py).
Writes benchmarks/results/executor_location.json and prints a summary.
Resumable per executor: a finished run (its report.json) is not redone
(its recorded figures are kept).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import psutil

DEFENSES = "none,rsw,rmr,swmr,random,ppb,advreg,dp,relaxloss,hamp"
RAY_NAMES = ("raylet", "gcs_server", "ray::", "default_worker",
             "dashboard", "log_monitor", "monitor.py")
OUT = "benchmarks/results/executor_location.json"


def _tree_rss(proc: psutil.Process) -> int:
  total = 0
  seen = set()
  procs = [proc]
  try:
    procs += proc.children(recursive=True)
  except psutil.Error:
    pass
  for p in psutil.process_iter(["cmdline", "name"]):
    text = " ".join(p.info["cmdline"] or []) + " " + (p.info["name"] or "")
    if any(n in text for n in RAY_NAMES):
      procs.append(p)
  for p in procs:
    if p.pid in seen:
      continue
    seen.add(p.pid)
    try:
      total += p.memory_info().rss
    except psutil.Error:
      pass
  return total


def _run(executor: str, data_dir: str, work: str) -> dict:
  out = os.path.join(work, executor)
  cmd = [os.path.join(os.path.dirname(sys.executable), "wemem"), "run",
         "--flagfile=configs/location_base.cfg", f"--data_dir={data_dir}",
         f"--defenses={DEFENSES}", f"--executor={executor}",
         "--ray_workers=2", "--cpus_per_model=1", f"--output_dir={out}"]
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  start = time.perf_counter()
  load = os.getloadavg()
  with open(os.path.join(work, f"{executor}.log"), "w") as log:
    proc = psutil.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    peak = 0
    while proc.poll() is None:
      peak = max(peak, _tree_rss(proc))
      time.sleep(0.5)
  if proc.returncode:
    raise SystemExit(f"{executor} run failed; see {work}/{executor}.log")
  return {"command": " ".join(cmd[1:]), "wall_s": time.perf_counter() - start,
          "peak_rss_gb": peak / 2**30, "load_before": load}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--work", default="/tmp/wemem_executor_location")
  parser.add_argument("--executors", default="local,ray")
  args = parser.parse_args()
  os.makedirs(args.work, exist_ok=True)
  record = {}
  if os.path.isfile(OUT):
    with open(OUT) as f:
      record = json.load(f)
  for executor in args.executors.split(","):
    done = os.path.join(args.work, executor, "report.json")
    if executor in record and os.path.isfile(done):
      continue
    record[executor] = _run(executor, args.data_dir, args.work)
    with open(OUT, "w") as f:
      json.dump(record, f, indent=2, sort_keys=True)
  compare = subprocess.run(
      [sys.executable, "tools/compare_runs.py",
       os.path.join(args.work, "local"), os.path.join(args.work, "ray")],
      capture_output=True, text=True)
  record["same_numbers"] = compare.returncode == 0
  record["compare_output_tail"] = compare.stdout[-2000:]
  record["cpus"] = os.cpu_count()
  with open(OUT, "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  for executor in args.executors.split(","):
    r = record[executor]
    print(f"{executor}: {r['wall_s'] / 60:.1f} min, peak {r['peak_rss_gb']:.2f}"
          " GB")
  print("same numbers:", record["same_numbers"])


if __name__ == "__main__":
  main()
