# Helpers of the write-path scripts (floor.sh, write-path-pair.sh): source it
# with LOADGEN (a loadgen binary) and DUR (a run's length) set.

ticks=$(getconf CLK_TCK)

# cpu PID: the process's CPU time so far, in clock ticks.
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

# waitport HOST:PORT: until a log server there answers (15 s at most).
waitport() { for _ in $(seq 150); do curl -s -o /dev/null "http://$1/checkpoint" && return; sleep 0.1; done; }

# row NAME PID LOADGEN-ARGS...: one loadgen run of DUR against the server of
# PID: its rate, latencies and failures (503s of pushback fail loadgen; the
# row says how many), and the server's CPU time per acknowledged event.
row() {
  local name=$1 pid=$2; shift 2
  local c0 out events
  c0=$(cpu "$pid")
  out=$("$LOADGEN" --checkpoint-sample 0 --progress 1h -d "$DUR" "$@" 2>&1 || true)
  events=$(grep -o 'acked=[0-9]*' <<<"$out" | cut -d= -f2)
  events=${events:-0}
  printf '%-40s %s %s %s cpu-us/event=%s\n' "$name" "$(grep -o 'throughput=[0-9]* events/s' <<<"$out")" \
    "$(grep -o 'p50=[^ ]* p90=[^ ]* p99=[^ ]*' <<<"$out" | head -1)" "$(grep -o 'failed=[0-9]*' <<<"$out")" \
    "$(( ( $(cpu "$pid") - c0 ) * 1000000 / ticks / (events > 0 ? events : 1) ))"
}
