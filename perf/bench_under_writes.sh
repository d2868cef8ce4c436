#!/usr/bin/env bash
# Verification latency while the writer works (issue 21): /v1/auth at a fixed rate
# (perf/paced.cpp: open loop, latency from each request's due time, so a stall is counted
# in full for every request it delays) in three phases against one keygate with KEYS keys:
#   1. no writes;
#   2. 64 writers creating, rotating and revoking keys as fast as the log allows
#      (wrk -c64, perf/churn.lua, --fsync=always);
#   3. during a snapshot of the whole data set (SIGUSR1 a second into the phase).
# keygate runs one reactor thread (kg-reactor-0) on CPU 1. THREADS=split (the default)
# moves its other threads (kg-journal, whose kg-snapshot inherits the placement, and the
# main thread) to CPU 0, beside the paced generator and the writers' wrk: the reactor has
# a core of its own, as on a machine with cores to spare. THREADS=shared leaves every
# thread of keygate on CPU 1. ADMIN=1 (the default) starts keygate with --admin-listen and
# sends the writers there: the management API's reactor (kg-admin-0) then goes to CPU 0 with
# the others, and the reactor on CPU 1 serves verification only. ADMIN=0: the writers share
# the one reactor with verification, as without --admin-listen.
#
#   perf/bench_under_writes.sh [KEYS=1000000] [RATE=20000] [PHASE_SECONDS=10] [ROUNDS=2] [THREADS=split] [ADMIN=1]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
RATE=${RATE:-20000}
SECONDS_PER_PHASE=${PHASE_SECONDS:-10}  # not SECONDS: bash keeps its own
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-split}
ADMIN=${ADMIN:-1}
PORT=18393
WRITE_PORT=$PORT
admin_args=()
if [ "$ADMIN" = 1 ]; then WRITE_PORT=$((PORT + 1)); admin_args=(--admin-listen 127.0.0.1:$WRITE_PORT); fi
work=${WORK:-/tmp/keygate-bench}

. perf/measure.sh
prepare_dataset
cmake --build build/bench --target keygate_paced >/dev/null
fresh_copy writes
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
start_on_cpu1 writes $PORT --data-dir "$work/writes-$DATASET" --fsync always "${admin_args[@]}"
kg=$PID
if [ "$THREADS" = split ]; then
  for task in /proc/$kg/task/*; do
    case $(cat "$task/comm") in kg-reactor-*) ;; *) taskset -p -c 0 "${task##*/}" >/dev/null ;; esac
  done
fi
for task in /proc/$kg/task/*; do echo "$(cat "$task/comm") on CPUs $(taskset -p -c "${task##*/}" | awk '{print $NF}')"; done
root=$(cat "$work/writes-$DATASET/root.key")
org=$(curl -s -X POST localhost:$WRITE_PORT/v1/organizations -H "Authorization: Bearer $root" \
  -d '{"name":"churn"}' | sed -E 's/.*"data":\{"id":"([^"]+)".*/\1/')

paced() {
  taskset -c 0 build/bench/perf/keygate_paced --port $PORT --rate "$RATE" --seconds "$SECONDS_PER_PHASE" \
    --connections 32 --keys "$work/keys-$DATASET.txt"
}
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

printf "%-6s %-10s %8s %8s %8s %8s %8s %8s %10s\n" round phase "rate" errors "p50 us" "p99 us" "p99.9 us" "max us" "writes/s"
for round in $(seq 1 "$ROUNDS"); do
  for phase in none writes snapshot; do
    writes=-
    case $phase in
      none) out=$(paced) ;;
      writes)
        # At nice 19: the writers take what CPU is left, and the paced generator, on the same
        # core, is not held up by them (it would count its own wait as keygate's latency).
        ORG=$org ROOT=$root nice -n 19 wrk -t1 -c64 -d$((SECONDS_PER_PHASE + 2))s -s perf/churn.lua \
          "http://127.0.0.1:$WRITE_PORT" > "$work/churn.out" &
        churn=$!
        sleep 1
        out=$(paced)
        wait $churn
        writes=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/churn.out")
        ;;
      snapshot)
        before=$(grep -c '"event":"snapshot.written"' "$work/writes.log" || true)
        (sleep 1 && kill -USR1 $kg) &
        signaller=$!
        out=$(paced)
        wait $signaller
        after=$(grep -c '"event":"snapshot.written"' "$work/writes.log" || true)
        [ "$after" -gt "$before" ] || { echo "no snapshot was written during the phase" >&2; exit 1; }
        ;;
    esac
    printf "%-6s %-10s %8s %8s %8s %8s %8s %8s %10s\n" "$round" $phase "$(field "$out" rate)" \
      "$(field "$out" errors)" "$(field "$out" p50)" "$(field "$out" p99)" "$(field "$out" p999)" \
      "$(field "$out" max)" "$writes"
  done
done
grep '"event":"snapshot.written"' "$work/writes.log" | tail -1
