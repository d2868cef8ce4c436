#!/usr/bin/env bash
# Cluster writes per second as the number of organizations grows: one etcd member and one
# node on loopback; organizations are created (wrk, perf/create_org.lua) up to each count in
# COUNTS, and at each, key creations in one organization are measured (perf/create_key.lua,
# 16 connections). The issue 34 figure: the write path has no step over all organizations.
#
#   COUNTS="1000 100000" DURATION=10s KEYGATE_BIN=build/bench/keygate perf/bench_cluster_orgs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-1000 100000}
DURATION=${DURATION:-10s}
bin=${KEYGATE_BIN:-build/bench/keygate}
work=${WORK:-/tmp/keygate-bench}/cluster-orgs
rm -rf "$work" && mkdir -p "$work"
if [ -z "${KEYGATE_BIN:-}" ]; then
  cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
  cmake --build build/bench --target keygate >/dev/null
fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
etcd --name s --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:23790 \
  --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
  --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster s=http://127.0.0.1:23800 \
  --quota-backend-bytes 8589934592 --log-level warn > "$work/etcd.log" 2>&1 &
pids+=($!)
until curl -s localhost:23790/health | grep -q true; do sleep 0.1; done
$bin serve --listen 127.0.0.1:18395 --data-dir "$work/node" --threads 1 --etcd http://127.0.0.1:23790 \
  --secret-rate 0 > "$work/node.log" 2>&1 &
pids+=($!)
until grep -q '"event":"ready"' "$work/node.log" 2>/dev/null; do sleep 0.1; done
root=$(cat "$work/node/root.key")
orgs() { curl -s localhost:18395/metrics | awk '/^keygate_organizations\{/ {s += $2} END {print s + 0}'; }
org=$(curl -s -X POST localhost:18395/v1/organizations -H "Authorization: Bearer $root" \
  -d '{"name":"measured"}' | sed -E 's/.*"data":\{"id":"([^"]+)".*/\1/')
for count in $COUNTS; do
  while [ "$(orgs)" -lt "$count" ]; do
    ROOT=$root wrk -t1 -c16 -d2s -s perf/create_org.lua http://127.0.0.1:18395 > /dev/null
  done
  rate=$(ORG=$org ROOT=$root wrk -t1 -c16 -d"$DURATION" -s perf/create_key.lua http://127.0.0.1:18395 |
    awk '/Requests\/sec/ {print $2}')
  echo "organizations=$(orgs)  key creations/s (16 writers)=$rate"
done
