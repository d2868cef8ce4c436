#!/usr/bin/env bash
# What a durable write costs etcd: one etcd member and one node on loopback, 64 writers
# creating keys in one organization (perf/create_key.lua; ORGS=N: in N, each in turn) for
# $DURATION, per build given,
# alternated: writes/s, p99, and etcd's CPU seconds per write (its process_cpu_seconds_total
# over the writes), the node's CPU per write and the machine's idle CPU per write (where
# the 2 cores went), and the node's turnaround: its own share of each transaction's cycle,
# from etcd's answer to the next transaction sent (keygate_cluster_turnaround_seconds, the
# one figure here this VM's noise does not swamp). PPROF=1 also saves a CPU profile of etcd
# from the middle of each run (etcd --enable-pprof; read with
# `go tool pprof -top -cum /usr/bin/etcd FILE`, golang-go).
#
# `floor` in place of a build runs build/bench/perf/keygate_etcd_floor instead of a node and
# wrk: the same transactions sent straight to etcd (perf/etcd_floor.cpp; FLOOR_THREADS=1
# organizations in flight at once, FLOOR_BATCH=32 key creations a transaction, what a node
# sends at 64 writers), so what etcd itself gives on this machine; its node_us_per_write
# is the tool's own CPU.
#
#   perf/etcd_cost.sh [ROUNDS=2] [DURATION=8s] [ORGS=1] [PIN=1] [PPROF=1] <keygate>|floor [<another> ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: perf/etcd_cost.sh <keygate> [<keygate> ...]" >&2; exit 2; }
work=${WORK:-/tmp/keygate-bench}/etcd_cost
rm -rf "$work" && mkdir -p "$work"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
. perf/orgs.sh
# PIN=1: etcd on CPU 0 alone, the node (or the floor tool) and wrk on CPU 1, so that each
# side's figure is not the other's contention for a core.
on_etcd= on_rest=
[ -n "${PIN:-}" ] && on_etcd="taskset -c 0" on_rest="taskset -c 1"
run=0
for round in $(seq "${ROUNDS:-2}"); do
  for bin in "$@"; do
    run=$((run + 1))
    d=$work/run$run
    mkdir -p "$d"
    $on_etcd etcd --name solo --data-dir "$d/etcd" --listen-client-urls http://127.0.0.1:23790 \
      --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
      --initial-advertise-peer-urls http://127.0.0.1:23800 \
      --initial-cluster solo=http://127.0.0.1:23800 --log-level warn --enable-pprof > "$d/etcd.log" 2>&1 &
    etcd_pid=$!
    pids=($etcd_pid)
    until curl -s http://127.0.0.1:23790/health | grep -q '"true"'; do sleep 0.2; done
    if [ "$bin" = floor ]; then
      cpu0=$(curl -s http://127.0.0.1:23790/metrics | awk '/^process_cpu_seconds_total/ {print $2}')
      idle0=$(awk '/^cpu / {print $5 + $6; exit}' /proc/stat)
      d8=${DURATION:-8s}
      $on_rest build/bench/perf/keygate_etcd_floor --etcd http://127.0.0.1:23790 --seconds "${d8%s}" \
        --threads "${FLOOR_THREADS:-1}" --batch "${FLOOR_BATCH:-32}" > "$d/floor.log"
      cpu1=$(curl -s http://127.0.0.1:23790/metrics | awk '/^process_cpu_seconds_total/ {print $2}')
      idle1=$(awk '/^cpu / {print $5 + $6; exit}' /proc/stat)
      kill $etcd_pid
      wait $etcd_pid 2>/dev/null || true
      tr ' ' '\n' < "$d/floor.log" | awk -F= -v c0="$cpu0" -v c1="$cpu1" -v i0="$idle0" \
          -v i1="$idle1" -v tick="$(getconf CLK_TCK)" -v what="floor(${FLOOR_THREADS:-1}x${FLOOR_BATCH:-32})" '
        $1 == "writes" {n = $2} $1 == "writes/s" {rate = $2} $1 == "client_us_per_write" {c = $2}
        END {printf "%s  writes/s=%s  etcd_us_per_write=%.1f  node_us_per_write=%s" \
                    "  idle_us_per_write=%.1f\n", what, rate, (c1 - c0) / n * 1e6, c,
                    (i1 - i0) / tick / n * 1e6}'
      continue
    fi
    $on_rest "$bin" serve --listen 127.0.0.1:18391 --data-dir "$d/node" --threads 1 \
      --etcd http://127.0.0.1:23790 > "$d/node.log" 2>&1 &
    node_pid=$!
    pids+=($node_pid)
    until grep -q '"event":"ready"' "$d/node.log"; do sleep 0.1; done
    root=$(cat "$d/node/root.key")
    org=$(new_orgs 18391 "$root" cost "${ORGS:-1}")
    cpu0=$(curl -s http://127.0.0.1:23790/metrics | awk '/^process_cpu_seconds_total/ {print $2}')
    node0=$(awk '{print $14 + $15}' /proc/$node_pid/stat)
    idle0=$(awk '/^cpu / {print $5 + $6; exit}' /proc/stat)
    profiler=
    if [ -n "${PPROF:-}" ]; then
      (sleep 2; curl -s "http://127.0.0.1:23790/debug/pprof/profile?seconds=5" -o "$d/etcd.pprof") &
      profiler=$!
    fi
    ORG=$org ROOT=$root $on_rest wrk -t1 -c64 -d"${DURATION:-8s}" --latency -s perf/create_key.lua \
      http://127.0.0.1:18391 > "$d/wrk.log"
    [ -n "$profiler" ] && wait $profiler
    cpu1=$(curl -s http://127.0.0.1:23790/metrics | awk '/^process_cpu_seconds_total/ {print $2}')
    node1=$(awk '{print $14 + $15}' /proc/$node_pid/stat)
    idle1=$(awk '/^cpu / {print $5 + $6; exit}' /proc/stat)
    tick=$(getconf CLK_TCK)
    # The node's own share of each transaction's cycle (keygate_cluster_turnaround_seconds).
    turn=$(curl -s http://127.0.0.1:18391/metrics | awk '
      /^keygate_cluster_turnaround_seconds_sum/ {s = $2} /^keygate_cluster_turnaround_seconds_count/ {n = $2}
      END {if (n) printf "%.0f", s / n * 1e6; else printf "-"}')
    kill $node_pid $etcd_pid
    wait $node_pid $etcd_pid 2>/dev/null || true
    awk -v bin="$bin" -v c0="$cpu0" -v c1="$cpu1" -v n0="$node0" -v n1="$node1" -v tick="$tick" \
        -v i0="$idle0" -v i1="$idle1" -v turn="$turn" '
      /requests in/ {n = $1} /Requests\/sec/ {rate = $2} /^ +99%/ {p99 = $2} /Non-2xx/ {bad = $NF}
      END {printf "%s  writes/s=%s  p99=%s  etcd_us_per_write=%.1f  node_us_per_write=%.1f" \
                  "  idle_us_per_write=%.1f  turnaround_us=%s%s\n", bin, rate, p99,
                  (c1 - c0) / n * 1e6, (n1 - n0) / tick / n * 1e6, (i1 - i0) / tick / n * 1e6, turn,
                  bad ? "  NOT 2xx: " bad : ""}' "$d/wrk.log"
    [ -n "${PPROF:-}" ] && echo "  profile: $d/etcd.pprof"
  done
done
