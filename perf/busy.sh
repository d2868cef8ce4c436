# Sourced by perf/measure.sh and scripts/loadtest: is the load generator the bottleneck?
# A wrk thread whose core is busy all the time cannot send more: the rate it reports is
# then wrk's ceiling, whatever the server could do.

tick_hz=$(getconf CLK_TCK)

# sample_busy WRK_PID [THREADS=1]: how busy (percent) wrk kept its THREADS cores while its
# load threads ran. wrk reads the key file on its main thread and then starts one thread
# per -t: sampling starts once they all exist, so loading a million keys does not count,
# and ends at the last sample before they exit. Builtins only (read, EPOCHREALTIME): the
# sampler forks nothing that could steal the cores it measures.
sample_busy() {
  local wpid=$1 threads=${2:-1} tasks line f first_t="" first_c="" last_t="" last_c="" nap
  exec {nap}<> <(:)
  while read -r line 2>/dev/null < "/proc/$wpid/stat"; do
    read -ra f <<<"${line##*) }"  # fields from the 3rd on: state, ..., utime 12, stime 13
    [ "${f[0]}" = Z ] && break
    tasks=(/proc/"$wpid"/task/*)
    if [ "${#tasks[@]}" -gt "$threads" ]; then
      last_t=$EPOCHREALTIME last_c=$((f[11] + f[12]))
      [ -z "$first_t" ] && first_t=$last_t first_c=$last_c
    elif [ -n "$first_t" ]; then
      break
    fi
    read -rt 0.25 -u "$nap" || :
  done
  exec {nap}>&-
  awk -v t0="$first_t" -v t1="$last_t" -v c0="$first_c" -v c1="$last_c" -v hz="$tick_hz" -v n="$threads" \
    'BEGIN {print (t1 > t0) ? sprintf("%.0f", (c1 - c0) / hz / (t1 - t0) / n * 100) : "-"}'
}
