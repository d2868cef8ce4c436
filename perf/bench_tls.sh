#!/usr/bin/env bash
# TLS on the listener against nginx terminating TLS (issue 24), the performance protocol's
# way (docs/architecture.md): each server with one thread on CPU 1, the load on CPU 0, A B
# A B over ROUNDS rounds.
#   1. /v1/auth over TLS on keep-alive connections: wrk -t1 -c64 over https, every request
#      with the next of KEYS keys (nginx answers `return 200`): req/s, p50, p99, server CPU
#      per request.
#   2. New TLS connections per second: `openssl s_time` for 10 s with a full TLS 1.3
#      handshake per connection (-new), then resuming one session with a TLS 1.2 ticket
#      (-reuse -tls1_2: s_time does not resume TLS 1.3 sessions, whose tickets come after
#      the handshake); server CPU per connection. s_time makes one connection at a time, so
#      its own core sets these rates: compare the CPU per connection.
# Both servers use the same P-256 certificate, TLS 1.3 (the clients' choice), tickets on.
#
#   perf/bench_tls.sh [KEYS=1000000] [ROUNDS=2] [DURATION=10s]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
KG_PORT=18191
NGINX_PORT=18192
work=${WORK:-/tmp/keygate-bench}
mkdir -p "$work"

. perf/measure.sh
prepare_dataset
fresh_copy data-tls

# A CA and a server certificate for 127.0.0.1.
pki=$work/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 2 -copy_extensions copy -out "$pki/server.pem" 2>/dev/null

cat > "$work/nginx-tls.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx-tls.pid;
error_log $work/nginx-tls-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl reuseport;
    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    location /v1/auth { return 200; }
  }
}
CONF

pids=()
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
start_on_cpu1 keygate-tls $KG_PORT --data-dir "$work/data-tls-$DATASET" \
  --tls-cert "$pki/server.pem" --tls-key "$pki/server.key"
KG_PID=$PID
taskset -c 1 nginx -c "$work/nginx-tls.conf" -p "$work" &
NGINX_PID=$!
pids+=($NGINX_PID)
until curl -s -o /dev/null --cacert "$pki/ca.pem" "https://127.0.0.1:$NGINX_PORT/v1/auth"; do sleep 0.1; done
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

# s_time_run PID PORT MODE: connections/s and the server's CPU µs per connection.
s_time_run() {
  local pid=$1 port=$2 mode=$3 before after out conns
  before=$(cpu_ticks "$pid")
  local version=()
  [ "$mode" = reuse ] && version=(-tls1_2)
  out=$(taskset -c 0 openssl s_time -connect "127.0.0.1:$port" -CAfile "$pki/ca.pem" "-$mode" \
        "${version[@]}" -time "${DURATION%s}" 2>&1)
  after=$(cpu_ticks "$pid")
  conns=$(echo "$out" | awk '/connections in [0-9.]+ real seconds/ {print $1; exit}')
  local secs
  secs=$(echo "$out" | awk '/connections in [0-9.]+ real seconds/ {print $4; exit}')
  awk -v b="$before" -v a="$after" -v hz="$tick_hz" -v n="$conns" -v s="$secs" \
    'BEGIN {split(b, x, " "); split(a, y, " ");
            printf "%.0f %.1f\n", n / s, (y[1]+y[2]-x[1]-x[2]) / hz * 1e6 / n}'
}

printf "%-6s %-22s %-8s %10s %9s %9s %12s\n" round measure server "rate/s" p50 p99 "cpu us/each"
for round in $(seq 1 "$ROUNDS"); do
  for server in keygate nginx; do
    if [ $server = keygate ]; then pid=$KG_PID port=$KG_PORT; else pid=$NGINX_WORKER port=$NGINX_PORT; fi
    read -r rps p50 p99 cpu _ _ <<<"$(SCHEME=https measure_wrk "$pid" "$port" 1)"
    printf "%-6s %-22s %-8s %10s %9s %9s %12s\n" "$round" "keep-alive /v1/auth" $server "$rps" "$p50" "$p99" "$cpu"
  done
  for mode in new reuse; do
    for server in keygate nginx; do
      if [ $server = keygate ]; then pid=$KG_PID port=$KG_PORT; else pid=$NGINX_WORKER port=$NGINX_PORT; fi
      read -r rate cpu <<<"$(s_time_run "$pid" "$port" $mode)"
      label="connections ($([ $mode = new ] && echo "new, 1.3" || echo "resumed, 1.2"))"
      printf "%-6s %-22s %-8s %10s %9s %9s %12s\n" "$round" "$label" $server "$rate" - - "$cpu"
    done
  done
done
