#!/usr/bin/env bash
# A/B of two keygate builds under the performance protocol's (docs/architecture.md) plain load: both serve a copy of
# the same 1,000,000-key data set with one reactor thread on CPU 1; wrk on CPU 0 drives
# them in turn (A B A B ...), and each run prints req/s, p50, p99 and the server's CPU per
# request. Both servers idle on the same core while the other is measured, so the VM's
# drift hits both alike: this is how a change to the hot path is judged here.
#
#   perf/ab_builds.sh OLD_KEYGATE NEW_KEYGATE [PAIRS=5] [KEYS=1000000] [DURATION=8s] [PIPELINE=1]
#
# e.g. build the previous commit in a second checkout:
#   git worktree add /tmp/prev HEAD~1 && cmake -S /tmp/prev -B /tmp/prev/build -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/prev/build --target keygate
#   perf/ab_builds.sh /tmp/prev/build/keygate build/bench/keygate
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
PAIRS=${PAIRS:-5}
DURATION=${DURATION:-8s}
PIPELINE=${PIPELINE:-1}
work=${WORK:-/tmp/keygate-bench}
. perf/measure.sh
prepare_dataset
fresh_copy ab-old
fresh_copy ab-new

start() {  # start BINARY DATA PORT LOG -> PID
  taskset -c 1 "$1" serve --listen "127.0.0.1:$3" --data-dir "$2" --threads 1 > "$4" 2>&1 &
  echo $!
}
A=$(start "$old" "$work/ab-old-$DATASET" 18191 "$work/ab-old.log")
B=$(start "$new" "$work/ab-new-$DATASET" 18192 "$work/ab-new.log")
trap 'kill $A $B 2>/dev/null || true' EXIT
until grep -q '"event":"ready"' "$work/ab-old.log" 2>/dev/null && grep -q '"event":"ready"' "$work/ab-new.log" 2>/dev/null; do
  kill -0 $A && kill -0 $B || { echo "a server did not start: see $work/ab-*.log" >&2; exit 1; }
  sleep 0.2
done

printf "%-5s %-4s %12s %9s %9s %12s %9s\n" pair build "req/s" p50 p99 "cpu us/req" "wrk busy"
sum_old=0 sum_new=0 wins=0 rps_old=0 rps_new=0 faster=0
for i in $(seq 1 "$PAIRS"); do
  read -r r_old p50 p99 cpu_old _ busy <<<"$(measure_wrk "$A" 18191 "$PIPELINE")"
  printf "%-5s %-4s %12s %9s %9s %12s %8s%%\n" "$i" old "$r_old" "$p50" "$p99" "$cpu_old" "$busy"
  read -r r_new p50 p99 cpu_new _ busy <<<"$(measure_wrk "$B" 18192 "$PIPELINE")"
  printf "%-5s %-4s %12s %9s %9s %12s %8s%%\n" "$i" new "$r_new" "$p50" "$p99" "$cpu_new" "$busy"
  sum_old=$(awk -v a="$sum_old" -v b="$cpu_old" 'BEGIN{print a+b}')
  sum_new=$(awk -v a="$sum_new" -v b="$cpu_new" 'BEGIN{print a+b}')
  rps_old=$(awk -v a="$rps_old" -v b="$r_old" 'BEGIN{print a+b}')
  rps_new=$(awk -v a="$rps_new" -v b="$r_new" 'BEGIN{print a+b}')
  wins=$((wins + $(awk -v o="$cpu_old" -v n="$cpu_new" 'BEGIN{print (n < o) ? 1 : 0}')))
  faster=$((faster + $(awk -v o="$r_old" -v n="$r_new" 'BEGIN{print (n > o) ? 1 : 0}')))
done
awk -v o="$sum_old" -v n="$sum_new" -v p="$PAIRS" -v w="$wins" \
  'BEGIN {printf "CPU per request: old %.2f us, new %.2f us (%+.1f %%); new lower in %d of %d pairs\n",
          o/p, n/p, (n/o - 1) * 100, w, p}'
# When wrk's core is busy near 100 % (last column), the rate is what wrk can drive: a
# higher rate then means answers that cost the load generator less.
awk -v o="$rps_old" -v n="$rps_new" -v p="$PAIRS" -v f="$faster" \
  'BEGIN {printf "requests/s: old %.0f, new %.0f (%+.1f %%); new faster in %d of %d pairs\n",
          o/p, n/p, (n/o - 1) * 100, f, p}'
