#!/usr/bin/env bash
# Does it matter which member a node talks to? Three etcd members on loopback, one node at a
# time with $WRITERS (64) writers creating keys (perf/create_key.lua) for $DURATION, its --etcd list
# starting with the leader (L) or with a follower (F), in the order of $ORDERS: writes/s
# and p99 of each run, and where the 2 cores went per write: the three members' CPU (the
# leader's apart), the node's, and what stayed idle. A follower forwards every transaction
# to the leader.
#
# BINS="a b" runs each order with each build in turn (an A/B of two keygates). FRESH=1
# starts three fresh members for every run: etcd's CPU per write grows with what it holds
# (260 us at 35 k keys, 380-520 us at 300 k here), which otherwise favours the early runs.
#
# `floor` as a build in BINS sends the same transactions straight to etcd instead
# (perf/etcd_floor.cpp, as in perf/etcd_cost.sh: FLOOR_THREADS=1, FLOOR_BATCH=32): what
# the three members themselves give here; its node= is the tool's own CPU.
#
#   perf/bench_cluster_leader.sh [ORDERS="L F L F"] [DURATION=8s] [WRITERS=64] [ORGS=1] [KEYGATE_BIN=...] [BINS=...]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/keygate-bench}/cluster_leader
rm -rf "$work" && mkdir -p "$work"
bin=${KEYGATE_BIN:-build/bench/keygate}
pids=()
etcd_pids=()
ticks() { awk '{t += $14 + $15} END {print t}' "${@/#//proc/}"; }  # ticks PID/stat ...
idle() { awk '/^cpu / {print $5 + $6; exit}' /proc/stat; }
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
. perf/orgs.sh
member_and_leader() {  # member_and_leader I: "<member id> <leader id>", or nothing yet
  curl -s -X POST http://127.0.0.1:2379$1/v3/maintenance/status -d '{}' | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(d["header"]["member_id"], d.get("leader", "0"))
except Exception:
    pass'
}
start_cluster() {  # three fresh members; sets leader and follower
  initial=""
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:2480$i"; done
  for i in 0 1 2; do
    rm -rf "$work/etcd$i"
    etcd --name m$i --data-dir "$work/etcd$i" --listen-client-urls http://127.0.0.1:2379$i \
      --advertise-client-urls http://127.0.0.1:2379$i --listen-peer-urls http://127.0.0.1:2480$i \
      --initial-advertise-peer-urls http://127.0.0.1:2480$i --initial-cluster "$initial" \
      --initial-cluster-state new --log-level warn > "$work/etcd$i.log" 2>&1 &
    pids+=($!)
    etcd_pids[$i]=$!
  done
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
}
stop_cluster() {
  kill "${etcd_pids[@]}" 2>/dev/null || true
  for p in "${etcd_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
start_cluster
run=0
for order in ${ORDERS:-L F L F}; do
for bin in ${BINS:-$bin}; do
  run=$((run + 1))
  if [ -n "${FRESH:-}" ] && [ $run -gt 1 ]; then stop_cluster; start_cluster; fi
  first=$([ "$order" = L ] && echo "$leader" || echo "$follower")
  endpoints="http://127.0.0.1:2379$first"
  for i in 0 1 2; do [ "$i" = "$first" ] || endpoints+=",http://127.0.0.1:2379$i"; done
  if [ "$bin" = floor ]; then
    stats=("${etcd_pids[@]/%//stat}")
    e0=$(ticks "${stats[@]}") l0=$(ticks "${etcd_pids[$leader]}/stat") i0=$(idle)
    d8=${DURATION:-8s}
    build/bench/perf/keygate_etcd_floor --etcd "http://127.0.0.1:2379$leader" --seconds "${d8%s}" \
      --threads "${FLOOR_THREADS:-1}" --batch "${FLOOR_BATCH:-32}" > "$work/floor$run.log"
    e1=$(ticks "${stats[@]}") l1=$(ticks "${etcd_pids[$leader]}/stat") i1=$(idle)
    tr ' ' '\n' < "$work/floor$run.log" | awk -F= -v e="$((e1 - e0))" -v l="$((l1 - l0))" \
        -v i="$((i1 - i0))" -v tick="$(getconf CLK_TCK)" \
        -v o="floor(${FLOOR_THREADS:-1}x${FLOOR_BATCH:-32}) at the leader" '
      $1 == "writes" {w = $2} $1 == "writes/s" {rate = $2} $1 == "client_us_per_write" {c = $2}
      END {us = 1e6 / tick / w
           printf "%s  writes/s=%s  us_per_write: etcd=%.0f (leader %.0f) node=%s idle=%.0f\n",
                  o, rate, e * us, l * us, c, i * us}'
    continue
  fi
  key=()
  [ -n "${root_file:-}" ] && key=(--root-key-file "$root_file")  # the first node's
  $bin serve --listen 127.0.0.1:18391 --data-dir "$work/node$run" --threads 1 \
    --etcd "$endpoints" "${key[@]}" > "$work/node$run.log" 2>&1 &
  node=$!
  pids+=($node)
  until grep -q '"event":"ready"' "$work/node$run.log"; do
    grep -q refusing_to_start "$work/node$run.log" && { cat "$work/node$run.log" >&2; exit 1; }
    sleep 0.1
  done
  root_file=${root_file:-$work/node$run/root.key}
  root=$(cat "$root_file")
  org=$(new_orgs 18391 "$root" "leader-$run" "${ORGS:-1}")  # ORGS=N: keys in N, each in turn
  stats=("${etcd_pids[@]/%//stat}")
  e0=$(ticks "${stats[@]}") l0=$(ticks "${etcd_pids[$leader]}/stat") n0=$(ticks "$node/stat")
  i0=$(idle)
  ORG=$org ROOT=$root wrk -t1 -c"${WRITERS:-64}" -d"${DURATION:-8s}" --latency -s perf/create_key.lua \
    http://127.0.0.1:18391 > "$work/wrk$run.log"
  e1=$(ticks "${stats[@]}") l1=$(ticks "${etcd_pids[$leader]}/stat") n1=$(ticks "$node/stat")
  i1=$(idle)
  awk -v o="$order${BINS:+ $bin}" -v e="$((e1 - e0))" -v l="$((l1 - l0))" -v n="$((n1 - n0))" \
      -v i="$((i1 - i0))" -v tick="$(getconf CLK_TCK)" '
    /requests in/ {w = $1} /Requests\/sec/ {rate = $2} /^ +99%/ {p99 = $2} /Non-2xx/ {bad = $NF}
    END {us = 1e6 / tick / w
         printf "%s  writes/s=%s  p99=%s  us_per_write: etcd=%.0f (leader %.0f) node=%.0f idle=%.0f%s\n",
                o, rate, p99, e * us, l * us, n * us, i * us, bad ? "  NOT 2xx: " bad : ""}' \
    "$work/wrk$run.log"
  kill $node
  wait $node 2>/dev/null || true
done
done
