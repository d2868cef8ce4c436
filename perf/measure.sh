# Sourced by perf/bench_vs_nginx.sh and perf/ab_builds.sh, from the repository's root:
# the DESIGN.md protocol's data set and one measured wrk run. Uses KEYS (how many keys),
# DURATION (wrk's -d) and work (a scratch directory).

# Builds keygate and the data set generator (Release, build/bench) and, once per key
# count, writes $work/pristine-$KEYS with the key values in $work/keys-$KEYS.txt.
prepare_dataset() {
  mkdir -p "$work"
  scripts/setup test
  cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYGATE_BENCHMARKS=ON -DKEYGATE_TESTS=OFF >/dev/null
  cmake --build build/bench --target keygate keygate_dataset >/dev/null
  if [ ! -d "$work/pristine-$KEYS" ]; then
    build/bench/perf/keygate_dataset --data-dir "$work/pristine-$KEYS" --keys "$KEYS" --values "$work/keys-$KEYS.txt"
  fi
  # The generator writes a log only. Past --snapshot-bytes (64 MiB, ~330 k keys), the first
  # server to open it writes a snapshot at once, on the measured core, in the first round
  # (0.23 s of CPU and a p99 spike at 1 M keys). Let a server do that here, once.
  local log_bytes
  log_bytes=$(cat "$work/pristine-$KEYS"/log-*.kgl | wc -c)
  if [ "$log_bytes" -gt $((64 << 20)) ] && ! compgen -G "$work/pristine-$KEYS/snapshot-*" >/dev/null; then
    build/bench/keygate serve --listen 127.0.0.1:0 --data-dir "$work/pristine-$KEYS" > "$work/compact.log" 2>&1 &
    local pid=$!
    until grep -q '"event":"snapshot.written"' "$work/compact.log"; do
      kill -0 "$pid" 2>/dev/null || { cat "$work/compact.log" >&2; echo "the compacting server stopped" >&2; exit 1; }
      sleep 0.2
    done
    kill "$pid" && wait "$pid" || true
  fi
}

# fresh_copy NAME: $work/NAME-$KEYS, a copy of the pristine directory (a server snapshots
# the directory it serves; the generated one stays as it was).
fresh_copy() {
  rm -rf "$work/$1-$KEYS" && cp -r "$work/pristine-$KEYS" "$work/$1-$KEYS"
}

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }  # user, system
tick_hz=$(getconf CLK_TCK)

# measure_wrk PID PORT PIPELINE: wrk -t1 -c64 on CPU 0 against 127.0.0.1:PORT, every
# request with the next key; prints "reqs_per_s p50 p99 cpu_us_per_req user_us_per_req",
# the CPU time being PID's (all its threads) over the run.
measure_wrk() {
  local pid=$1 port=$2 depth=$3
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(KEYS="$work/keys-$KEYS.txt" PIPELINE=$depth taskset -c 0 wrk -t1 -c64 -d"$DURATION" --latency \
        -s perf/auth.lua "http://127.0.0.1:$port")
  after=$(cpu_ticks "$pid")
  if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "non-2xx responses: the setup is wrong" >&2; exit 1; fi
  local rps reqs p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  # CPU time per request, all of it (user + system) and the user-space part alone.
  awk -v b="$before" -v a="$after" -v hz="$tick_hz" -v n="$reqs" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
    'BEGIN {split(b, x, " "); split(a, y, " ");
            printf "%s %s %s %.2f %.2f\n", rps, p50, p99, (y[1]+y[2]-x[1]-x[2]) / hz * 1e6 / n, (y[1]-x[1]) / hz * 1e6 / n}'
}
