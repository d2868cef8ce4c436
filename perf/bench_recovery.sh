#!/usr/bin/env bash
# Recovery time (issue 21): how long `keygate serve` takes from start to its data back in
# memory (the `recovered` log line's seconds), with the peak resident memory during it
# against the steady state after, at KEYS keys:
#   - from a snapshot, warm (the file in the page cache) and cold (caches dropped first,
#     when run as root);
#   - from the log alone (every key a record to replay, no snapshot).
# BASE=/path/to/an/older/keygate alternates it with this build (A B A B), each on a
# snapshot it wrote itself, so that a comparison does not span the VM's slow and fast
# phases (perf/RESULTS.md, "Method").
#
#   perf/bench_recovery.sh [KEYS=10000000] [RUNS=3] [BASE=]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-10000000}
RUNS=${RUNS:-3}
BASE=${BASE:-}
work=${WORK:-/tmp/keygate-bench}
. perf/measure.sh
prepare_dataset
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# wait_event EVENT PID: until $work/recovery.log has EVENT; fails with the log if PID ends.
wait_event() {
  until grep -q "\"event\":\"$1\"" "$work/recovery.log"; do
    kill -0 "$2" 2>/dev/null || { cat "$work/recovery.log" >&2; exit 1; }
    sleep 0.05
  done
}

# start BIN DIR: serves DIR until ready; prints seconds, peak and steady MiB.
start() {
  local bin=$1 dir=$2
  : > "$work/recovery.log"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" --threads 1 --snapshot-bytes 1099511627776 \
    > "$work/recovery.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_event ready $pid
  sleep 0.5
  local peak steady seconds
  peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  steady=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  seconds=$(grep '"event":"recovered"' "$work/recovery.log" | sed -E 's/.*"seconds":([0-9.e+-]+).*/\1/')
  kill $pid && wait $pid 2>/dev/null || true
  printf "%8.3f s  peak %6d MiB  steady %6d MiB  (%.2fx)\n" "$seconds" $((peak / 1024)) \
    $((steady / 1024)) "$(awk -v p="$peak" -v s="$steady" 'BEGIN{print p/s}')"
}

# A data set generated as a log of every key, for the log-only runs and as the source of
# each build's snapshot (a build writes its own, in its own format).
logonly="$work/logonly-$DATASET"
[ -d "$logonly" ] || build/bench/perf/keygate_dataset --data-dir "$logonly" --keys "$KEYS" \
  --values "$work/logonly-values.txt" ${SCOPES:+--scopes "$SCOPES"}
rm -f "$logonly/LOCK"

# snapshot_of BIN NAME: $work/NAME-$DATASET, the data set with a snapshot BIN wrote and an
# empty log after it.
snapshot_of() {
  local bin=$1 name=$2 dir="$work/$2-$DATASET"
  rm -rf "$dir" && cp -r "$logonly" "$dir"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" --threads 1 \
    --snapshot-bytes 1099511627776 > "$work/recovery.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_event ready $pid
  kill -USR1 $pid
  wait_event snapshot.written $pid
  kill $pid && wait $pid 2>/dev/null || true
}

builds=("build/bench/keygate")
[ -n "$BASE" ] && builds+=("$BASE")
for i in "${!builds[@]}"; do snapshot_of "${builds[$i]}" "recovery$i"; done
for cache in warm cold; do
  if [ $cache = cold ] && ! { sync && echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
    echo "(not root: no cold runs)"
    break
  fi
  for run in $(seq "$RUNS"); do
    for i in "${!builds[@]}"; do
      [ $cache = cold ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
      printf "%-5s run %d  %-28s snapshot: " $cache "$run" "${builds[$i]}"
      start "${builds[$i]}" "$work/recovery$i-$DATASET"
    done
  done
done
# The log alone: every key a record to replay, each run on a fresh copy.
for run in $(seq "$RUNS"); do
  for i in "${!builds[@]}"; do
    rm -rf "$logonly.$i" && cp -r "$logonly" "$logonly.$i"
    printf "warm  run %d  %-28s log only: " "$run" "${builds[$i]}"
    start "${builds[$i]}" "$logonly.$i"
  done
done
