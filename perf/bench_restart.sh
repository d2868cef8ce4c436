#!/usr/bin/env bash
# A restart under load with the listening socket held the way keygate.socket holds it:
# a small holder (python3, standing in for systemd) owns the socket and starts keygate
# with it as fd 3 (LISTEN_FDS=1), then, a few seconds into a wrk run against /v1/auth,
# stops it (SIGTERM: drain, exit) and starts it again on the same data, as
# `systemctl restart keygate` does. Prints wrk's request count, errors (connect, read,
# write, timeout, non-2xx) and latency distribution: its max is the longest wait, the
# requests that arrived while the new process recovered.
#
#   perf/bench_restart.sh [KEYS=1000000] [DURATION=12]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-12}
PORT=18394
work=${WORK:-/tmp/keygate-bench}

. perf/measure.sh
prepare_dataset
fresh_copy restart
command -v python3 >/dev/null || { echo "needs python3 (the socket holder)" >&2; exit 1; }

go="$work/restart.go" done="$work/restart.done"
rm -f "$go" "$done"
: > "$work/restart.log"  # not an earlier run's "ready"
python3 - "$PORT" "$work/restart-$DATASET" "$work/restart.log" "$go" "$done" <<'PY' &
import os, signal, socket, subprocess, sys, time
port, data, log, go, done = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4096)  # systemd's Backlog= default: SOMAXCONN
open(log, "w").close()

def readies():
    with open(log) as f:
        return f.read().count('"event":"ready"')

def start():  # keygate with the socket as fd 3, as systemd passes it; waits until ready
    seen = readies()
    def child():
        os.dup2(s.fileno(), 3)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
    p = subprocess.Popen(["build/bench/keygate", "serve", "--listen", f"127.0.0.1:{port}",
                          "--data-dir", data, "--threads", "1"], stdout=open(log, "a"),
                         stderr=subprocess.STDOUT, preexec_fn=child, pass_fds=(s.fileno(),))
    while readies() == seen:
        if p.poll() is not None:
            sys.exit("keygate stopped: see " + log)
        time.sleep(0.01)
    return p

def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)

p = start()
wait_for(go)  # the load has run for a third of its time
t0 = time.time()
p.send_signal(signal.SIGTERM)
p.wait()
t1 = time.time()
p = start()
t2 = time.time()
print(f"restart: the old process drained and exited in {t1 - t0:.3f} s; "
      f"the new one was ready {t2 - t1:.3f} s later", flush=True)
wait_for(done)  # the load is over: stopping earlier would fail its last requests
p.send_signal(signal.SIGTERM)
p.wait()
PY
holder=$!
trap 'kill $holder 2>/dev/null || true' EXIT
until grep -q '"event":"ready"' "$work/restart.log" 2>/dev/null; do sleep 0.1; done
KEYS="$work/keys-$DATASET.txt" taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" --latency -s perf/auth.lua \
  "http://127.0.0.1:$PORT" > "$work/restart-wrk.out" &
wrk=$!
# The restart comes a third of the way into the load, timed from when wrk has its
# connections open: its init builds every request first, seconds at 1 M keys (a restart
# timed from wrk's launch came before the load, and the final stop during it).
until [ "$(ss -Htn state established "( dport = :$PORT )" | wc -l)" -ge 64 ]; do sleep 0.05; done
sleep "$(awk -v d="$DURATION" 'BEGIN {print d / 3}')"
touch "$go"
wait $wrk || true
touch "$done"
grep -E "Latency|requests in|Socket errors|Non-2xx|50%|99%|Requests/sec" "$work/restart-wrk.out" || true
wait $holder || true
grep -o '"event":"recovered"[^}]*' "$work/restart.log" | tail -1
