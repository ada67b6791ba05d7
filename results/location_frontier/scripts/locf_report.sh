#!/bin/bash
# Aggregates every finished 3-seed group of runs/locf into
# results/location_frontier/aggregates/<group>/ and draws the frontier.
cd /work/main
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3
PY=/work/main/.venv/bin/python
OUT=results/location_frontier
mkdir -p $OUT/aggregates
specs=""
for d in runs/locf/*/; do
  g=$(basename $d)
  [ -f $d/seed_0/report.json ] && [ -f $d/seed_1/report.json ] && [ -f $d/seed_2/report.json ] || continue
  $PY -m wemem_cli.main report --runs=$d/seed_0,$d/seed_1,$d/seed_2 \
    --output_dir=$OUT/aggregates/$g --noprogress > /dev/null 2>&1 || echo "report failed: $g"
done
# The frontier: today's base/RSW/RMR/SWMR and their output-modified twins,
# the existing defenses' defaults (and the paper's settings) from issue 22,
# their further strengths, and the search's evaluated front points.
A=$OUT/aggregates
I22=results/location_issue22
args="$A/main/aggregate.json $A/om/aggregate.json:+om"
args="$args $I22/aggregate/aggregate.json:default:random,ppb,hamp,relaxloss,dp,advreg"
args="$args $I22/aggregate_paper/aggregate.json:paper"
for g in weaker stronger paper_third; do
  [ -f $A/$g/aggregate.json ] && args="$args $A/$g/aggregate.json:$g"
done
for d in $A/front_*; do
  [ -f $d/aggregate.json ] && args="$args $d/aggregate.json:$(basename $d | sed 's/^front_/search/')"
done
$PY tools/evaluated_frontier.py --output=$OUT/frontier $args > /dev/null && echo "frontier: $args"
