#!/bin/bash
# DP-SGD and AdvReg at a third strength (the paper's recipes, σ 0.1 -> 2 and
# λ 2 -> 1), code 98ac191 from /work/frozen2.
set -e
cd /work/frozen2
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=/work/frozen2
PY=/work/main/.venv/bin/python
for S in 0 1 2; do
  /usr/bin/time -f "%e s wall, %M KB peak" $PY -u -m wemem_cli.main run \
    --flagfile=configs/location_base.cfg --data_dir=/work/shared/data \
    --executor=ray --ray_workers=2 --cpus_per_model=1 \
    --defenses=dp,advreg --baseline_settings=paper --dp_noise_multiplier=2 --advreg_weight=1 \
    --baselines= --seed=$S --cache_dir=runs/locf/main/seed_$S --output_dir=runs/locf/paper_third/seed_$S
done
echo ALL DONE
