#!/usr/bin/env bash
# Durability figures (issue 4): durable writes per second with --fsync=always at 1, 16 and
# 64 concurrent writers; then, at KEYS keys, recovery time from the log alone, snapshot
# write time, size and the writers' pause, recovery time from the snapshot (warm and cold)
# with the peak resident memory during it, and resident memory per key.
#
#   perf/bench_storage.sh [KEYS=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
PORT=18183
work=${WORK:-/tmp/keygate-bench}
mkdir -p "$work"
scripts/setup test
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
cmake --build build/bench --target keygate keygate_dataset >/dev/null
bin=build/bench/keygate

start() {  # start DIR [ARGS...]: sets PID, waits until ready
  local dir=$1; shift
  : > "$work/storage.log"
  $bin serve --listen 127.0.0.1:$PORT --data-dir "$dir" --threads 2 "$@" >> "$work/storage.log" 2>&1 &
  PID=$!
  until grep -q '"event":"ready"' "$work/storage.log" 2>/dev/null; do sleep 0.1; done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
field() { grep "\"event\":\"$1\"" "$work/storage.log" | tail -1 | sed -E "s/.*\"$2\":([0-9.e+-]+).*/\1/"; }

echo "== durable writes (--fsync=always), POST api-keys, 5 s each"
rm -rf "$work/writes"
start "$work/writes"
ROOT=$(cat "$work/writes/root.key")
ORG=$(curl -s -X POST localhost:$PORT/v1/organizations -H "Authorization: Bearer $ROOT" -d '{"name":"bench"}' |
      sed -E 's/.*"data":\{"id":"([^"]+)".*/\1/')
for c in 1 16 64; do
  rps=$(ORG=$ORG ROOT=$ROOT wrk -t1 -c$c -d5s -s perf/create_key.lua "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ {print $2}')
  echo "writers=$c  durable writes/s=$rps"
done
fsyncs=$(curl -s localhost:$PORT/metrics | awk '/^keygate_fsync_duration_seconds_count/ {print $2}')
records=$(curl -s localhost:$PORT/metrics | awk '/^keygate_log_records_total/ {print $2}')
echo "records=$records fdatasyncs=$fsyncs (group commit: $(awk -v r="$records" -v f="$fsyncs" 'BEGIN{printf "%.1f", r/f}') records per fdatasync)"
stop

echo "== $KEYS keys"
# The generated directory stays pristine (a server would snapshot it); runs use copies.
if [ ! -d "$work/pristine-$KEYS" ]; then
  build/bench/perf/keygate_dataset --data-dir "$work/pristine-$KEYS" --keys "$KEYS" --values "$work/keys-$KEYS.txt"
fi
rm -rf "$work/storage-$KEYS" && cp -r "$work/pristine-$KEYS" "$work/storage-$KEYS"
rm -rf "$work/empty" && start "$work/empty" && base_kb=$(awk '/VmRSS/ {print $2}' /proc/$PID/status) && stop
# No size-triggered snapshot on this start: the one asked for below is the one measured.
start "$work/storage-$KEYS" --snapshot-bytes 1099511627776
echo "recovery from the log only: $(field recovered seconds) s"
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "resident: $((rss_kb / 1024)) MiB; $(awk -v r="$rss_kb" -v b="$base_kb" -v n="$KEYS" 'BEGIN{printf "%.0f", (r-b)*1024/n}') bytes per key (over an empty server's $((base_kb / 1024)) MiB)"
kill -USR1 "$PID"
until grep -q '"event":"snapshot.written"' "$work/storage.log"; do sleep 0.2; done
echo "snapshot: $(field snapshot.written seconds) s to write, $(field snapshot.written bytes) bytes, writers paused $(field snapshot.written write_pause_seconds) s"
stop
# From the snapshot, warm (the file in the page cache) and then cold (caches dropped, when
# this runs as root); peak resident memory during recovery against the steady state after.
for cache in warm cold; do
  if [ $cache = cold ]; then
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || { echo "(not root: no cold run)"; break; }
  fi
  start "$work/storage-$KEYS"
  sleep 1
  peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
  rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  echo "recovery from the snapshot ($cache): $(field recovered seconds) s for $(field recovered snapshot_records) records;" \
    "peak resident $((peak_kb / 1024)) MiB, steady $((rss_kb / 1024)) MiB ($(awk -v p="$peak_kb" -v r="$rss_kb" 'BEGIN{printf "%.2f", p/r}')x)"
  stop
done
