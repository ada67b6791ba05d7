#!/bin/bash
# Location frontier study (issue 19), code 98ac191, run from /work/frozen2.
# Resumable: every `wemem run` / `wemem tune` skips what is finished.
set -e
cd /work/frozen2
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=/work/frozen2
PY=/work/main/.venv/bin/python
EXEC="--executor=ray --ray_workers=2 --cpus_per_model=1"
RUN() { /usr/bin/time -f "%e s wall, %M KB peak" $PY -u -m wemem_cli.main run \
  --flagfile=configs/location_base.cfg --data_dir=/work/shared/data $EXEC "$@"; }
# 1. base and the paper's methods at their presets, then the same trained
#    models served behind output modification (only the attacks rerun).
for S in 0 1 2; do
  RUN --defenses=none,rsw,rmr,swmr --baselines= --seed=$S --output_dir=runs/locf/main/seed_$S
  RUN --defenses=rsw,rmr,swmr --output_modification=true --baselines= --seed=$S \
    --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/om/seed_$S
done
# 2. the cheap existing defenses at a weaker and a stronger strength each
#    (their defaults are in results/location_issue22): one run per seed and
#    direction, the three defenses side by side
for S in 0 1 2; do
  RUN --defenses=ppb,hamp,relaxloss --ppb_alpha=1 --hamp_entropy_threshold=0.3 --relaxloss_alpha=0.5 \
    --baselines= --seed=$S --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/weaker/seed_$S
  RUN --defenses=ppb,hamp,relaxloss --ppb_alpha=16 --hamp_entropy_threshold=0.8 --relaxloss_alpha=2 \
    --baselines= --seed=$S --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/stronger/seed_$S
done
# 3. the Pareto search (seed 0), then its overall front on 3 seeds
/usr/bin/time -f "%e s wall, %M KB peak" $PY -u -m wemem_cli.main tune \
  --flagfile=configs/location_base.cfg --data_dir=/work/shared/data $EXEC \
  --seed=0 --max_trials=10 --num_shadows=3 --oracle=random --objective=pareto \
  --tune_methods=rsw,rmr,swmr,ppb,hamp --confirm_top_k=1 --confirm_repeats=1 --rehearsals_per_trial=2 \
  --output_dir=runs/locf/tune --cache_dir=runs/locf/main/seed_0
# 5. the search's overall front (first 2 points) on 3 seeds
for f in $($PY -c "import json; print(' '.join([p['flagfile'] for p in json.load(open('runs/locf/tune/frontier.json'))['fronts']['all'] if p['flagfile']][:2]))"); do
  name=$(basename $f .cfg)
  for S in 0 1 2; do
    RUN --flagfile=runs/locf/tune/$f --baselines= --seed=$S --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/front_$name/seed_$S
  done
done
# 4. DP-SGD and AdvReg at a third strength (ours and the paper's are in
#    results/location_issue22): the paper's recipes, σ 0.1 -> 2 and λ 2 -> 1
for S in 0 1 2; do
  RUN --defenses=dp,advreg --baseline_settings=paper --dp_noise_multiplier=2 --advreg_weight=1 \
    --baselines= --seed=$S --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/paper_third/seed_$S
done
echo ALL DONE
