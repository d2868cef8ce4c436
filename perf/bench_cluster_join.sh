#!/usr/bin/env bash
# How fast a node joins a cluster that holds KEYS keys: one etcd member on loopback filled by
# keygate_dataset, a first node that loads everything from etcd (and writes its snapshot at
# once), then a fresh node that starts from the first node's snapshot (GET
# /v1/cluster/snapshot) and one that is told to read etcd instead (--join-from-peer false).
# Wall time from exec to the "ready" line, and what each node's log says.
#
#   KEYS=1000000 perf/bench_cluster_join.sh
#   KEYS=10000000 FROM_ETCD=0 perf/bench_cluster_join.sh   (no second full read of etcd: ~12 min
#                                                          at 10 M on a 2-core machine)
#   KEYS=10000000 IN_ETCD=0 perf/bench_cluster_join.sh     (the keys only in the first node's
#     snapshot, written by keygate_dataset --snapshot-seq at etcd's revision: a join from a
#     peer reads nothing but the changes from etcd, and a one-member etcd holding 10 M keys
#     needs more memory than this machine has while a node reads them all)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
work=${WORK:-/tmp/keygate-bench}/join
rm -rf "$work" && mkdir -p "$work"
scripts/setup test
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
cmake --build build/bench --target keygate keygate_dataset >/dev/null
bin=build/bench/keygate
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

etcd --name solo --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:23790 \
  --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
  --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster solo=http://127.0.0.1:23800 \
  --quota-backend-bytes $((8 << 30)) --log-level warn > "$work/etcd.log" 2>&1 &
pids+=($!)
until curl -s http://127.0.0.1:23790/health | grep -q '"true"'; do sleep 0.2; done
since() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }
if [ "${IN_ETCD:-1}" = 1 ]; then
  t0=$(date +%s%N)
  build/bench/perf/keygate_dataset --etcd http://127.0.0.1:23790 --keys "$KEYS" --values "$work/values"
  echo "dataset written to etcd in $(since "$t0") s"
fi

node() {  # node NAME PORT ARGS...: starts it, waits for ready, prints the wall time
  local name=$1 port=$2; shift 2
  local t0; t0=$(date +%s%N)
  $bin serve --listen 127.0.0.1:$port --data-dir "$work/$name" --threads 1 \
    --etcd http://127.0.0.1:23790 "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  until grep -q '"event":"ready"' "$work/$name.log" 2>/dev/null; do sleep 0.05; done
  echo "$name: ready after $(since "$t0") s"
  grep -E '"event":"cluster\.(loaded|peer_snapshot|peer_snapshot_failed|resumed|full_reload)"' "$work/$name.log" |
    sed 's/^/  /'
}
node first 18401
cp "$work/first/root.key" "$work/root.key"
until grep -q '"event":"cluster.snapshot_written"' "$work/first.log"; do sleep 0.2; done
grep '"event":"cluster.snapshot_written"' "$work/first.log" | sed 's/^/  /'
if [ "${IN_ETCD:-1}" = 0 ]; then
  # The keys only in the first node's snapshot: it stops, its snapshot at etcd's revision R
  # is replaced by one of $KEYS keys at the same R, and it starts again from it.
  first_pid=${pids[-1]}
  kill "$first_pid" && wait "$first_pid" 2>/dev/null || true
  snapshot=$(ls "$work/first"/snapshot-*.kgs | tail -1)
  seq=$((10#$(basename "$snapshot" .kgs | sed 's/snapshot-//')))
  rm -f "$work/first"/snapshot-*.kgs
  t0=$(date +%s%N)
  build/bench/perf/keygate_dataset --data-dir "$work/first" --keys "$KEYS" --values "$work/values" \
    --snapshot-seq "$seq"
  echo "dataset written as the first node's snapshot in $(since "$t0") s"
  node first 18401
  FROM_ETCD=0  # etcd holds none of the keys
fi
node from-peer 18402 --root-key-file "$work/root.key"
[ "${FROM_ETCD:-1}" = 1 ] && node from-etcd 18403 --root-key-file "$work/root.key" --join-from-peer false
du -sh "$work/etcd" | sed 's/^/etcd on disk: /'
