#!/usr/bin/env bash
# Measures the write path of docs/performance.md in one sitting: ingest and
# time to acknowledge over HTTP (log-server against Tessera's own
# conformance servers, the baseline), CPU per event of the server process,
# and on s3 the database round trips per event.
#
#   DATA=/mnt/jfs/perf tools/bench/write-path.sh [posix] [s3]
#
# DATA should be on a journaled file system (see docs/performance.md). The
# s3 rows need MariaDB on 127.0.0.1:3306 (root, no password) and an
# S3-compatible store on $S3_ENDPOINT (default http://127.0.0.1:8333) with
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set, as .ci/run starts them.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/mnt/jfs/perf}
DUR=${DUR:-20s}
S3_ENDPOINT=${S3_ENDPOINT:-http://127.0.0.1:8333}
what=${*:-posix s3}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/log-server" ./cmd/log-server
go build -o "$bin/loadgen" ./cmd/loadgen
posix_conf=$(go -C tools/tessera tool -n posix)
aws_conf=$(go -C tools/tessera tool -n aws)
ticks=$(getconf CLK_TCK)

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }
waitport() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1/checkpoint" && return; sleep 0.1; done; }
questions() { mariadb --no-defaults -h127.0.0.1 -uroot -N -e "SHOW GLOBAL STATUS LIKE 'Questions'" | awk '{print $2}'; }

# row NAME PID LOADGEN-ARGS...: one loadgen run, and the server's CPU per event.
row() {
  local name=$1 pid=$2; shift 2
  local c0 q0 out events cpu_us rt=""
  c0=$(cpu "$pid"); [ "${S3ROW:-}" ] && q0=$(questions)
  out=$("$bin/loadgen" --checkpoint-sample 0 --progress 1h -d "$DUR" "$@" 2>&1 || true) # 503s (pushback) fail loadgen; the row says how many
  events=$(grep -o 'acked=[0-9]*' <<<"$out" | cut -d= -f2)
  cpu_us=$(( ( $(cpu "$pid") - c0 ) * 1000000 / ticks / (events > 0 ? events : 1) ))
  [ "${S3ROW:-}" ] && rt=" db-round-trips/event=$(awk -v q="$(( $(questions) - q0 ))" -v e="$events" 'BEGIN{printf "%.2f", q/e}')"
  printf '%-48s %s %s cpu-us/event=%s%s\n' "$name" "$(grep -o 'throughput=[0-9]* events/s' <<<"$out") $(grep -o 'p50=[^ ]* p90=[^ ]* p99=[^ ]*' <<<"$out" | head -1)" "$(grep -o 'failed=[0-9]*' <<<"$out")" "$cpu_us" "$rt"
}

ours() { # DIR ARGS...: start a log-server, print its pid
  local dir=$1; shift
  rm -rf "$dir"
  "$bin/log-server" --data "$dir" --listen 127.0.0.1:18401 --log-level warn --max-conns-per-client 0 "$@" >"$dir.log" 2>&1 &
  echo $! >"$dir.pid"
  waitfile "$dir/keys/admin.token"; waitport 127.0.0.1:18401
}

if [[ " $what " == *" posix "* ]]; then
  mkdir -p "$DATA"
  for c in 8 64 512; do
    rm -rf "$DATA/conf" && mkdir -p "$DATA/conf"
    ours "$DATA/key" && kill "$(cat "$DATA/key.pid")" && wait 2>/dev/null || true
    "$posix_conf" --storage_dir "$DATA/conf" --private_key "$DATA/key/keys/log.key" --listen 127.0.0.1:18402 >"$DATA/conf.log" 2>&1 &
    cp=$!; waitport 127.0.0.1:18402; sleep 1
    row "posix c=$c tessera-conformance" $cp --url http://127.0.0.1:18402 --tessera-add --token-file "$DATA/key/keys/admin.token" -c $c
    kill $cp; wait $cp 2>/dev/null || true
    for w in index durable; do
      ours "$DATA/ours"
      row "posix c=$c log-server wait=$w" "$(cat "$DATA/ours.pid")" --url http://127.0.0.1:18401 --token-file "$DATA/ours/keys/admin.token" -c $c --wait $w
      kill "$(cat "$DATA/ours.pid")"; wait 2>/dev/null || true
    done
  done
  # The sequencer's linger (--sequence-linger, default 10ms) against none,
  # at 8 clients acknowledged at durability.
  ours "$DATA/ours" --sequence-linger 0
  row "posix c=8 log-server wait=durable linger=0" "$(cat "$DATA/ours.pid")" --url http://127.0.0.1:18401 --token-file "$DATA/ours/keys/admin.token" -c 8 --wait durable
  kill "$(cat "$DATA/ours.pid")"; wait 2>/dev/null || true
  # Light load, paced: 8 clients at a rate the two cores serve without
  # queueing (open loop; latency from each event's scheduled time).
  for w in durable index; do
    ours "$DATA/ours"
    row "posix c=8 rate=${LIGHT_RATE:-200}/s log-server wait=$w" "$(cat "$DATA/ours.pid")" --url http://127.0.0.1:18401 --token-file "$DATA/ours/keys/admin.token" -c 8 --rate "${LIGHT_RATE:-200}" --wait $w
    kill "$(cat "$DATA/ours.pid")"; wait 2>/dev/null || true
  done
fi

if [[ " $what " == *" s3 "* ]]; then
  export S3ROW=1
  for c in 64 512; do
    db=perf$RANDOM
    mariadb --no-defaults -h127.0.0.1 -uroot -e "CREATE DATABASE ${db}c; CREATE DATABASE ${db}o; CREATE USER IF NOT EXISTS bench IDENTIFIED BY 'bench'; GRANT ALL ON *.* TO bench"
    ours "$DATA/key" && kill "$(cat "$DATA/key.pid")" && wait 2>/dev/null || true
    curl -sf -X PUT --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$S3_ENDPOINT/${db}c" >/dev/null
    "$aws_conf" --bucket "${db}c" --s3_endpoint "$S3_ENDPOINT" --s3_access_key "$AWS_ACCESS_KEY_ID" --s3_secret "$AWS_SECRET_ACCESS_KEY" --db_host 127.0.0.1 --db_user bench --db_password bench --db_name "${db}c" \
      --signer "$(cat "$DATA/key/keys/log.key")" --publish_interval 1s --listen 127.0.0.1:18402 >"$DATA/aws.log" 2>&1 &
    cp=$!; waitport 127.0.0.1:18402; sleep 2
    row "s3 c=$c tessera-conformance (aws)" $cp --url http://127.0.0.1:18402 --tessera-add --token-file "$DATA/key/keys/admin.token" -c $c
    kill $cp; wait $cp 2>/dev/null || true
    for w in index durable; do
      ours "$DATA/ours" --storage s3 --db-dsn "root@tcp(127.0.0.1:3306)/${db}o" --s3-endpoint "$S3_ENDPOINT" --s3-bucket "${db}o$w"
      row "s3 c=$c log-server wait=$w" "$(cat "$DATA/ours.pid")" --url http://127.0.0.1:18401 --token-file "$DATA/ours/keys/admin.token" -c $c --wait $w
      kill "$(cat "$DATA/ours.pid")"; wait 2>/dev/null || true
      mariadb --no-defaults -h127.0.0.1 -uroot -e "DROP DATABASE ${db}o; CREATE DATABASE ${db}o"
    done
  done
fi
