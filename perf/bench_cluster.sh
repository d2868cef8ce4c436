#!/usr/bin/env bash
# Cluster mode's figures: the example cluster of scripts/cluster (three etcd members and
# three nodes on loopback, state under $WORK), durable writes per second (POST api-keys, perf/create_key.lua) at
# 1, 16 and 64 writers through one node, then through three nodes at once (each node its
# own organization), against the single-node log in the same run; and the revocation
# propagation figure is in the cluster integration test's output. After each etcd section,
# etcd's floor: the same transactions sent straight to it (perf/etcd_floor.cpp), so that a
# run on a slow spell of this VM says so.
#
#   perf/bench_cluster.sh [DURATION=5s] [KEYGATE_BIN=<another build's keygate>]
#                         [MAX_TXN_OPS=128: etcd's --max-txn-ops, and keygate told it; not
#                          ETCD_MAX_TXN_OPS, which etcd reads from the environment itself]
#                         [SOLO_ONLY=1: the one-member section alone, for an A/B]
#                         [JOIN_KEYS=1000000: then how fast a node joins that many keys,
#                          perf/bench_cluster_join.sh]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
work=${WORK:-/tmp/keygate-bench}/cluster
rm -rf "$work" && mkdir -p "$work"
scripts/setup test
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
cmake --build build/bench --target keygate keygate_etcd_floor >/dev/null
bin=${KEYGATE_BIN:-build/bench/keygate}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

start() {  # start NAME PORT ARGS...: waits until ready
  local name=$1 port=$2; shift 2
  $bin serve --listen 127.0.0.1:$port --data-dir "$work/$name" --threads 1 "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  until grep -q '"event":"ready"' "$work/$name.log" 2>/dev/null; do sleep 0.1; done
}
. perf/orgs.sh
writes() {  # writes PORT ROOT ORG CONNECTIONS: "durable writes/s  p99 latency"
  # Each run in an organization of its own (at most 100,000 keys an organization: beyond,
  # every write is a fast 4xx that wrk would count as a request); any answer that is not a
  # 2xx is printed, since it is not a durable write.
  local org; org=$(new_orgs $1 "$2" "bench-$1-$4-$RANDOM")
  ORG=$org ROOT=$2 wrk -t1 -c$4 -d"$DURATION" --latency -s perf/create_key.lua "http://127.0.0.1:$1" |
    awk '/Requests\/sec/ {rate = $2} /^ +99%/ {p99 = $2} /Non-2xx/ {bad = $NF}
         END {print rate "  p99=" p99 (bad ? "  NOT 2xx: " bad : "")}'
}

floor() {  # floor ENDPOINT: what etcd gives for the same transactions with no node in the way
  echo "etcd's floor (perf/etcd_floor.cpp: 32 key creations a transaction, one in flight):" \
    "$(build/bench/perf/keygate_etcd_floor --etcd "$1" --seconds "${DURATION%s}" |
         tr ' ' '\n' | grep -E '^writes/s=')"
}
leader_of() {  # leader_of URL,URL,...: the one that is etcd's leader
  local url
  for url in ${1//,/ }; do
    curl -s -X POST "$url/v3/maintenance/status" -d '{}' |
      python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["header"]["member_id"] != d.get("leader"))' &&
      { echo "$url"; return; }
  done
  echo "${1%%,*}"
}

if [ -z "${SOLO_ONLY:-}" ]; then
  echo "== single node, local log (--fsync=always)"
  # A run's organization would pass 100,000 keys within seconds here: a higher limit.
  start single 18390 --max-keys-per-org 10000000
  root=$(cat "$work/single/root.key")
  org=$(new_orgs 18390 "$root" single)
  for c in 1 16 64; do echo "writers=$c  writes/s=$(writes 18390 "$root" "$org" $c)"; done
fi

echo "== cluster on one etcd member, one node writing"
etcd --name solo --data-dir "$work/etcd-solo" --listen-client-urls http://127.0.0.1:23790 \
  --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
  --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster solo=http://127.0.0.1:23800 \
  --max-txn-ops "${MAX_TXN_OPS:-128}" --log-level warn > "$work/etcd-solo.log" 2>&1 &
pids+=($!)
until curl -s http://127.0.0.1:23790/health | grep -q '"true"'; do sleep 0.2; done
start solo-node 18391 --etcd http://127.0.0.1:23790 --etcd-max-txn-ops "${MAX_TXN_OPS:-128}"
root=$(cat "$work/solo-node/root.key")
org=$(new_orgs 18391 "$root" solo)
for c in 1 16 64; do echo "writers=$c  writes/s=$(writes 18391 "$root" "$org" $c)"; done
curl -s localhost:18391/metrics | grep -E '^keygate_cluster_(txns|conflicts)_total'
floor http://127.0.0.1:23790
[ -n "${SOLO_ONLY:-}" ] && exit 0

echo "== cluster (scripts/cluster: three etcd members, three nodes): one node writing"
CLUSTER_READY_FILE="$work/ready" scripts/cluster "$work/cluster" > "$work/cluster.log" 2>&1 &
pids+=($!)
until [ -s "$work/ready" ]; do kill -0 "${pids[-1]}" || { cat "$work/cluster.log" >&2; exit 1; }; sleep 0.2; done
. "$work/ready"
root=$(cat "$ROOT_KEY_FILE")
orgs=()
for p in 8081 8082 8083; do orgs+=("$(new_orgs $p "$root" "node-$p")"); done
sleep 1
for c in 1 16 64; do echo "writers=$c  writes/s=$(writes 8081 "$root" "${orgs[0]}" $c)"; done
floor "$(leader_of "$ETCD")"

echo "== cluster: three nodes writing at once (each its own organization)"
for c in 1 16 64; do
  i=0
  rm -f "$work"/w808[123]
  for p in 8081 8082 8083; do
    writes $p "$root" "${orgs[$i]}" $c > "$work/w$p" &
    i=$((i + 1))
  done
  sleep 0.5
  while [ "$(cat "$work"/w808[123] 2>/dev/null | wc -l)" -lt 3 ]; do sleep 0.2; done
  total=$(cat "$work"/w808[123] | awk '{s += $1} END {printf "%.0f", s}')
  echo "writers=$c per node  writes/s per node: $(cat "$work"/w808[123] | tr '\n' ' ') total=$total"
done
curl -s localhost:8081/metrics | grep -E '^keygate_cluster_(txns|conflicts)_total'
if [ -n "${JOIN_KEYS:-}" ]; then
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
  KEYS=$JOIN_KEYS perf/bench_cluster_join.sh
fi
