#!/usr/bin/env bash
# Does it matter which member a node talks to? Three etcd members on loopback, one node at a
# time with 64 writers creating keys (perf/create_key.lua) for $DURATION, its --etcd list
# starting with the leader (L) or with a follower (F), in the order of $ORDERS: writes/s
# and p99 of each run. A follower forwards every transaction to the leader.
#
#   perf/bench_cluster_leader.sh [ORDERS="L F L F"] [DURATION=8s] [KEYGATE_BIN=...]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/keygate-bench}/cluster_leader
rm -rf "$work" && mkdir -p "$work"
bin=${KEYGATE_BIN:-build/bench/keygate}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
initial=""
for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:2480$i"; done
for i in 0 1 2; do
  etcd --name m$i --data-dir "$work/etcd$i" --listen-client-urls http://127.0.0.1:2379$i \
    --advertise-client-urls http://127.0.0.1:2379$i --listen-peer-urls http://127.0.0.1:2480$i \
    --initial-advertise-peer-urls http://127.0.0.1:2480$i --initial-cluster "$initial" \
    --initial-cluster-state new --log-level warn > "$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
member_and_leader() {  # member_and_leader I: "<member id> <leader id>", or nothing yet
  curl -s -X POST http://127.0.0.1:2379$1/v3/maintenance/status -d '{}' | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(d["header"]["member_id"], d.get("leader", "0"))
except Exception:
    pass'
}
leader="" follower=""
for attempt in $(seq 100); do
  leader="" follower=""
  for i in 0 1 2; do
    read -r member lead <<< "$(member_and_leader $i)" || true
    [ -z "${lead:-}" ] || [ "$lead" = 0 ] && continue
    if [ "$member" = "$lead" ]; then leader=$i; elif [ -z "$follower" ]; then follower=$i; fi
  done
  [ -n "$leader" ] && [ -n "$follower" ] && break
  sleep 0.2
done
[ -n "$leader" ] && [ -n "$follower" ] || { echo "no leader elected" >&2; exit 1; }
echo "leader: 127.0.0.1:2379$leader; follower: 127.0.0.1:2379$follower"
run=0
for order in ${ORDERS:-L F L F}; do
  run=$((run + 1))
  first=$([ "$order" = L ] && echo "$leader" || echo "$follower")
  endpoints="http://127.0.0.1:2379$first"
  for i in 0 1 2; do [ "$i" = "$first" ] || endpoints+=",http://127.0.0.1:2379$i"; done
  key=()
  [ $run -gt 1 ] && key=(--root-key-file "$work/node1/root.key")
  $bin serve --listen 127.0.0.1:18391 --data-dir "$work/node$run" --threads 1 \
    --etcd "$endpoints" "${key[@]}" > "$work/node$run.log" 2>&1 &
  node=$!
  pids+=($node)
  until grep -q '"event":"ready"' "$work/node$run.log"; do
    grep -q refusing_to_start "$work/node$run.log" && { cat "$work/node$run.log" >&2; exit 1; }
    sleep 0.1
  done
  root=$(cat "$work/node1/root.key")
  org=$(curl -s -X POST localhost:18391/v1/organizations -H "Authorization: Bearer $root" \
    -d "{\"name\":\"leader-$run\"}" | sed -E 's/.*"data":\{"id":"([^"]+)".*/\1/')
  ORG=$org ROOT=$root wrk -t1 -c64 -d"${DURATION:-8s}" --latency -s perf/create_key.lua \
    http://127.0.0.1:18391 |
    awk -v o="$order" '/Requests\/sec/ {rate = $2} /^ +99%/ {p99 = $2} /Non-2xx/ {bad = $NF}
         END {print o "  writes/s=" rate "  p99=" p99 (bad ? "  NOT 2xx: " bad : "")}'
  kill $node
  wait $node 2>/dev/null || true
done
