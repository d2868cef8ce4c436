#!/usr/bin/env bash
# What a Prometheus scrape costs verification: keygate with one reactor thread on CPU 1 and
# KEYS keys; wrk (-t1 -c64, CPU 0) drives GET /v1/auth with a different key per request,
# first alone, then while a second wrk (perf/scrape.lua, one keep-alive connection, also
# on CPU 0) fetches /metrics every 100 ms (SCRAPE_MS), A B A B. A scrape is served on the
# same reactor thread as the verifications, so whatever it costs shows in their latency.
# Prints req/s, p50, p99 and max latency of each run, and the scrapes' own latency.
#
#   perf/bench_scrape.sh [KEYS=1000000] [ROUNDS=2] [DURATION=10s] [SCRAPE_MS=100] [BIN=build/bench/keygate]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
SCRAPE_MS=${SCRAPE_MS:-100}
PORT=18184
work=${WORK:-/tmp/keygate-bench}

. perf/measure.sh
prepare_dataset
fresh_copy scrape

BIN=${BIN:-build/bench/keygate}
taskset -c 1 "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$work/scrape-$DATASET" --threads 1 \
  --secret-rate 0 > "$work/scrape.log" 2>&1 &
PID=$!
SCRAPER=
trap 'kill $PID 2>/dev/null || true; [ -z "$SCRAPER" ] || kill $SCRAPER 2>/dev/null || true' EXIT
until grep -q '"event":"ready"' "$work/scrape.log"; do sleep 0.1; done


run() {  # run LABEL: one wrk run; prints LABEL req/s p50 p99 max
  KEYS="$work/keys-$DATASET.txt" PIPELINE=1 taskset -c 0 wrk -t1 -c64 -d"$DURATION" --latency \
    -s perf/auth.lua "http://127.0.0.1:$PORT" > "$work/wrk.out"
  awk -v label="$1" '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
                     $1=="Latency" && NF>=4 {max=$4} END {printf "%-14s %10s req/s  p50 %8s  p99 %8s  max %8s\n", label, rps, p50, p99, max}' "$work/wrk.out"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round"
  run "no scrape"
  SCRAPE_MS=$SCRAPE_MS taskset -c 0 wrk -t1 -c1 -d"$DURATION" --latency -s perf/scrape.lua \
    "http://127.0.0.1:$PORT" > "$work/scrape-wrk.out" &
  SCRAPER=$!
  run "scrape/${SCRAPE_MS}ms"
  wait $SCRAPER; SCRAPER=
  awk '/requests in/ {n=$1} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
       END {printf "%-14s %10s scrapes   p50 %8s  p99 %8s\n", "  the scrapes", n, p50, p99}' "$work/scrape-wrk.out"
done
