#!/bin/bash
# Location frontier study (issue 19), part 2: the Pareto search with the fixed
# tune (3e05ed2; code 9a2b98b, run from /work/frozen3), then its overall front
# on 3 seeds. Resumable: `wemem tune` / `wemem run` skip what is finished.
set -e
cd /work/frozen3
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=/work/frozen3
PY=/work/main/.venv/bin/python
EXEC="--executor=ray --ray_workers=2 --cpus_per_model=1"
RUN() { /usr/bin/time -f "%e s wall, %M KB peak" $PY -u -m wemem_cli.main run \
  --flagfile=configs/location_base.cfg --data_dir=/work/shared/data $EXEC "$@"; }
# 1. the Pareto search (seed 0) over WeMem's three methods, PPB and HAMP
/usr/bin/time -f "%e s wall, %M KB peak" $PY -u -m wemem_cli.main tune \
  --flagfile=configs/location_base.cfg --data_dir=/work/shared/data $EXEC \
  --seed=0 --max_trials=12 --num_shadows=3 --oracle=random --objective=pareto \
  --tune_methods=rsw,rmr,swmr,ppb,hamp --confirm_top_k=1 --confirm_repeats=1 --rehearsals_per_trial=2 \
  --noprogress --output_dir=runs/locf/tune --cache_dir=runs/locf/main/seed_0
# 2. the search's overall front (first 3 points with a flagfile) on 3 seeds
for f in $($PY -c "import json; print(' '.join([p['flagfile'] for p in json.load(open('runs/locf/tune/frontier.json'))['fronts']['all'] if p['flagfile']][:3]))"); do
  name=$(basename $f .cfg)
  for S in 0 1 2; do
    RUN --flagfile=runs/locf/tune/$f --baselines= --seed=$S --noprogress \
      --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/front_$name/seed_$S
  done
done
echo ALL DONE
