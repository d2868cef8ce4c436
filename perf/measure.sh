# Sourced by perf/bench_vs_nginx.sh and perf/ab_builds.sh, from the repository's root:
# the performance protocol's (docs/architecture.md) data set and one measured wrk run. Uses KEYS (how many keys),
# DURATION (wrk's -d) and work (a scratch directory); SCOPES (optional, comma separated)
# gives the keys those scopes instead of the default set (all of them, as a key created
# without `scopes` gets), and with them a shorter X-Keygate-Scopes header in every answer.

# One data set per key count and scope set: $work/pristine-$DATASET, $work/keys-$DATASET.txt.
SCOPES=${SCOPES:-}
DATASET=$KEYS${SCOPES:+-$(printf %s "$SCOPES" | tr ',:' '+_')}

# Builds keygate, the data set generator and the floor (Release, build/bench) and, once
# per data set, writes $work/pristine-$DATASET with the key values in $work/keys-$DATASET.txt.
prepare_dataset() {
  mkdir -p "$work"
  scripts/setup test
  cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
  cmake --build build/bench --target keygate keygate_dataset keygate_floor keygate_paced >/dev/null
  if [ ! -d "$work/pristine-$DATASET" ]; then
    build/bench/perf/keygate_dataset --data-dir "$work/pristine-$DATASET" --keys "$KEYS" \
      --values "$work/keys-$DATASET.txt" ${SCOPES:+--scopes "$SCOPES"}
  fi
  # The generator writes a log only. Past --snapshot-bytes (64 MiB, ~330 k keys), the first
  # server to open it writes a snapshot at once, on the measured core, in the first round
  # (0.23 s of CPU and a p99 spike at 1 M keys). Let a server do that here, once.
  local log_bytes
  log_bytes=$(cat "$work/pristine-$DATASET"/log-*.kgl | wc -c)
  if [ "$log_bytes" -gt $((64 << 20)) ] && ! compgen -G "$work/pristine-$DATASET/snapshot-*" >/dev/null; then
    build/bench/keygate serve --listen 127.0.0.1:0 --data-dir "$work/pristine-$DATASET" > "$work/compact.log" 2>&1 &
    local pid=$!
    until grep -q '"event":"snapshot.written"' "$work/compact.log"; do
      kill -0 "$pid" 2>/dev/null || { cat "$work/compact.log" >&2; echo "the compacting server stopped" >&2; exit 1; }
      sleep 0.2
    done
    kill "$pid" && wait "$pid" || true
  fi
}

# fresh_copy NAME: $work/NAME-$DATASET, a copy of the pristine directory (a server
# snapshots the directory it serves; the generated one stays as it was).
fresh_copy() {
  rm -rf "$work/$1-$DATASET" && cp -r "$work/pristine-$DATASET" "$work/$1-$DATASET"
}

# start_on_cpu1 NAME PORT ARGS...: keygate (build/bench) with one reactor thread on CPU 1,
# logging to $work/NAME.log; waits until it is ready (or fails with its log); sets PID and
# appends it to the array `pids` (the caller's trap stops them).
start_on_cpu1() {
  local name=$1 port=$2
  shift 2
  taskset -c 1 build/bench/keygate serve --listen 127.0.0.1:$port --threads 1 "$@" > "$work/$name.log" 2>&1 &
  PID=$!
  pids+=($PID)
  until grep -q '"event":"ready"' "$work/$name.log" 2>/dev/null; do
    kill -0 $PID 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.2
  done
}

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }  # user, system
. perf/busy.sh

# measure_wrk PID PORT PIPELINE: wrk -t1 -c64 on CPU 0 against 127.0.0.1:PORT, every
# request with the next key; prints "reqs_per_s p50 p99 cpu_us_per_req user_us_per_req
# wrk_busy_percent": the CPU time is PID's (all its threads) over the run, the last field
# how busy wrk kept its own core (near 100: wrk, not the server, set the rate).
measure_wrk() {
  local pid=$1 port=$2 depth=$3
  local before after out
  before=$(cpu_ticks "$pid")
  KEYS="$work/keys-$DATASET.txt" PIPELINE=$depth taskset -c 0 wrk -t1 -c64 -d"$DURATION" --latency \
    -s perf/auth.lua "${SCHEME:-http}://127.0.0.1:$port" > "$work/wrk.out" &
  local wrk_busy
  wrk_busy=$(sample_busy $!)
  wait $!
  after=$(cpu_ticks "$pid")
  out=$(cat "$work/wrk.out")
  if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "non-2xx responses: the setup is wrong" >&2; exit 1; fi
  local rps reqs p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  # CPU time per request, all of it (user + system) and the user-space part alone.
  awk -v b="$before" -v a="$after" -v hz="$tick_hz" -v n="$reqs" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v w="$wrk_busy" \
    'BEGIN {split(b, x, " "); split(a, y, " ");
            printf "%s %s %s %.2f %.2f %s\n", rps, p50, p99, (y[1]+y[2]-x[1]-x[2]) / hz * 1e6 / n, (y[1]-x[1]) / hz * 1e6 / n, w}'
}

# measure_paced PID PORT RATE: perf/paced.cpp at RATE requests/s (open loop, 64 connections)
# on CPU 0 for DURATION, every request with the next key; prints the same fields as
# measure_wrk (the rate achieved, p50, p99, CPU per request, user part, and "-"). At one
# rate for both sides of an A/B, the CPU per request compares like with like: a server
# answering fewer requests a turn spends more on each (less batching), whatever it does.
measure_paced() {
  local pid=$1 port=$2 rate=$3
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 0 build/bench/perf/keygate_paced --port "$port" --rate "$rate" \
    --seconds "${DURATION%s}" --keys "$work/keys-$DATASET.txt" --connections 64)
  after=$(cpu_ticks "$pid")
  local sent got p50 p99 errors
  sent=$(echo "$out" | sed -n 's/.*sent=\([0-9]*\).*/\1/p')
  got=$(echo "$out" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
  errors=$(echo "$out" | sed -n 's/.*errors=\([0-9]*\).*/\1/p')
  p50=$(echo "$out" | sed -n 's/.*p50=\([0-9.]*\).*/\1/p')
  p99=$(echo "$out" | sed -n 's/.*p99=\([0-9.]*\).*/\1/p')
  if [ "${errors:-1}" != 0 ]; then echo "$out" >&2; echo "errors: the setup is wrong" >&2; exit 1; fi
  awk -v b="$before" -v a="$after" -v hz="$tick_hz" -v n="$sent" -v r="$got" -v p50="$p50" -v p99="$p99" \
    'BEGIN {split(b, x, " "); split(a, y, " ");
            printf "%s %sus %sus %.2f %.2f -\n", r, p50, p99, (y[1]+y[2]-x[1]-x[2]) / hz * 1e6 / n, (y[1]-x[1]) / hz * 1e6 / n}'
}
