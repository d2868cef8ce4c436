#!/usr/bin/env bash
# Verification on a cluster node against a single node: the same wrk run (perf/measure.sh:
# -t1 -c64 on CPU 0, each request with the next key) against a node of a one-member etcd
# cluster and a single node on its local log, both with one reactor thread on CPU 1, A B A B
# over ROUNDS rounds. Prints req/s, p50, p99 and the CPU per request of each process (all
# its threads: the cluster node's watch and committer threads included).
#
# REDIS=1 measures the cost of --redis instead (issue 35's A/B): "single" is then a second
# node of the same cluster without Redis (its fair share of two), "cluster" one with
# --redis (a redis-server on CPU 0), its exchange thread (every key used in an interval,
# one script call each) counted in its CPU.
#
# PACED=R loads both at R requests/s (perf/paced.cpp) instead of as fast as wrk can: the
# CPU per request at one rate, for an A/B where one side would otherwise run slower (Redis
# shares wrk's core).
#
#   perf/bench_cluster_verify.sh [KEYS=100000] [ROUNDS=3] [DURATION=10s] [REDIS=0] [PACED=]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-100000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
work=${WORK:-/tmp/keygate-bench}
ETCD_PORT=24500
REDIS=${REDIS:-0}
REDIS_PORT=24600
SINGLE_PORT=18391
CLUSTER_PORT=18392

. perf/measure.sh
prepare_dataset
fresh_copy data
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# The cluster's data: its own etcd, filled with as many keys by the same generator.
etcd_dir="$work/etcd-verify-$KEYS"
rm -rf "$etcd_dir" && mkdir -p "$etcd_dir"
taskset -c 0 etcd --name verify --data-dir "$etcd_dir/data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "verify=http://127.0.0.1:$((ETCD_PORT + 1))" \
  --quota-backend-bytes 8589934592 > "$etcd_dir/etcd.log" 2>&1 &
pids+=($!)
until curl -s "http://127.0.0.1:$ETCD_PORT/health" | grep -q true; do sleep 0.2; done
build/bench/perf/keygate_dataset --etcd "http://127.0.0.1:$ETCD_PORT" --keys "$KEYS" \
  --values "$work/keys-etcd-$KEYS.txt" > "$etcd_dir/dataset.log"

if [ "$REDIS" = 1 ]; then
  taskset -c 0 redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no \
    > "$etcd_dir/redis.log" 2>&1 &
  pids+=($!)
  until redis-cli -p $REDIS_PORT ping 2>/dev/null | grep -q PONG; do sleep 0.2; done
  start_on_cpu1 single $SINGLE_PORT --data-dir "$etcd_dir/plain" --etcd "http://127.0.0.1:$ETCD_PORT"
  single_pid=$PID
  single_dataset=etcd-$KEYS
  start_on_cpu1 cluster $CLUSTER_PORT --data-dir "$etcd_dir/node" --etcd "http://127.0.0.1:$ETCD_PORT" \
    --root-key-file "$etcd_dir/plain/root.key" --redis "redis://127.0.0.1:$REDIS_PORT"
  cluster_pid=$PID
  until curl -s "http://127.0.0.1:$CLUSTER_PORT/metrics" | grep -q '^keygate_redis_up 1'; do sleep 0.2; done
else
  start_on_cpu1 single $SINGLE_PORT --data-dir "$work/data-$DATASET"
  single_pid=$PID
  single_dataset=$DATASET
  start_on_cpu1 cluster $CLUSTER_PORT --data-dir "$etcd_dir/node" --etcd "http://127.0.0.1:$ETCD_PORT"
  cluster_pid=$PID
fi
grep -h '"event":"cluster.loaded"' "$work/cluster.log" || true

printf "%-6s %-8s %12s %9s %9s %12s %9s\n" round node "req/s" p50 p99 "cpu us/req" "wrk busy"
declare -A sum
for round in $(seq 1 "$ROUNDS"); do
  for node in single cluster; do
    if [ $node = single ]; then
      pid=$single_pid port=$SINGLE_PORT dataset=$single_dataset
    else
      pid=$cluster_pid port=$CLUSTER_PORT dataset=etcd-$KEYS
    fi
    if [ -n "${PACED:-}" ]; then
      result=$(DATASET=$dataset measure_paced "$pid" "$port" "$PACED")
    else
      result=$(DATASET=$dataset measure_wrk "$pid" "$port" 1)
    fi
    read -r rps p50 p99 cpu user busy <<<"$result"
    printf "%-6s %-8s %12s %9s %9s %12s %8s%%\n" "$round" $node "$rps" "$p50" "$p99" "$cpu" "$busy"
    sum[$node-rps]=$(awk -v a="${sum[$node-rps]:-0}" -v b="$rps" 'BEGIN{print a+b}')
    sum[$node-cpu]=$(awk -v a="${sum[$node-cpu]:-0}" -v b="$cpu" 'BEGIN{print a+b}')
  done
done
[ "$REDIS" = 1 ] && curl -s "http://127.0.0.1:$CLUSTER_PORT/metrics" | grep '^keygate_redis' || true
awk -v sr="${sum[single-rps]}" -v cr="${sum[cluster-rps]}" -v sc="${sum[single-cpu]}" \
  -v cc="${sum[cluster-cpu]}" -v r="$ROUNDS" \
  -v what="$([ "$REDIS" = 1 ] && echo redis/plain || echo cluster/single)" \
  'BEGIN {printf what ": req/s %.0f / %.0f = %.3fx; CPU per request %.2f / %.2f us = %.3fx\n",
          cr/r, sr/r, cr/sr, cc/r, sc/r, cc/sc}'
