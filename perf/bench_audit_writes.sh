#!/usr/bin/env bash
# The cost of the audit log on a durable write (docs/api.md §8): POST api-keys at 1, 16 and
# 64 writers with auditing on (every write is a key and its event, one log record group)
# and off (--audit-retention 0), alternated A B A B on fresh data directories, 5 s each.
#
#   perf/bench_audit_writes.sh              with --fsync=always (the disk's latency rules)
#   FSYNC=everysec perf/bench_audit_writes.sh   CPU-bound: the write path's own cost
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18184
work=${WORK:-/tmp/keygate-bench}/audit-writes
scripts/setup test
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
cmake --build build/bench --target keygate >/dev/null
bin=build/bench/keygate
for round in 1 2; do
  for audit in 90d 0; do
    rm -rf "$work"; mkdir -p "$work"
    $bin serve --listen 127.0.0.1:$PORT --data-dir "$work/d" --threads 2 --audit-retention "$audit" \
      --fsync "${FSYNC:-always}" > "$work/log" 2>&1 &
    pid=$!
    until grep -q '"event":"ready"' "$work/log" 2>/dev/null; do sleep 0.1; done
    ROOT=$(cat "$work/d/root.key")
    ORG=$(curl -s -X POST localhost:$PORT/v1/organizations -H "Authorization: Bearer $ROOT" -d '{"name":"bench"}' |
          sed -E 's/.*"data":\{"id":"([^"]+)".*/\1/')
    for c in ${WRITERS:-1 16 64}; do
      rps=$(ORG=$ORG ROOT=$ROOT wrk -t1 -c"$c" -d5s -s perf/create_key.lua "http://127.0.0.1:$PORT" |
            awk '/Requests\/sec/ {print $2}')
      echo "round=$round audit-retention=$audit fsync=${FSYNC:-always} writers=$c writes/s=$rps"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
