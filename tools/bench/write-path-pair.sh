#!/usr/bin/env bash
# Compares two log-server binaries on the posix write path in one sitting:
# for each round and client count, Tessera's conformance POSIX server (the
# baseline), then BASE and BIN alternately, each on a fresh data directory,
# with loadgen (1 KiB payloads, one session per client) and the server
# process's CPU time per event.
#
#   BASE=/path/to/log-server-main BIN=/path/to/log-server DATA=/mnt/jfs/pair \
#     ROUNDS=1 CLIENTS="512 64 8" WAITS="durable index" DUR=15s tools/bench/write-path-pair.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${BASE:?BASE=log-server binary to compare against}" "${BIN:?BIN=log-server binary}"
DATA=${DATA:-/mnt/jfs/pair}
DUR=${DUR:-15s}
mkdir -p "$DATA"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/loadgen" ./cmd/loadgen
conf=$(go -C tools/tessera tool -n posix)
LOADGEN=$tmp/loadgen
# shellcheck source=tools/bench/lib.sh
. tools/bench/lib.sh
start() { # BIN DIR: start a log-server, its pid in DIR.pid
  rm -rf "$2"
  "$1" --data "$2" --listen 127.0.0.1:18471 --log-level warn --max-conns-per-client 0 >"$2.log" 2>&1 &
  echo $! >"$2.pid"
  for _ in $(seq 150); do [ -s "$2/keys/admin.token" ] && break; sleep 0.1; done
  waitport 127.0.0.1:18471
}
for round in $(seq "${ROUNDS:-1}"); do
  for c in ${CLIENTS:-512 64 8}; do
    rm -rf "$DATA/conf" && mkdir -p "$DATA/conf"
    start "$BIN" "$DATA/key"; kill "$(cat "$DATA/key.pid")"; wait 2>/dev/null
    "$conf" --storage_dir "$DATA/conf" --private_key "$DATA/key/keys/log.key" --listen 127.0.0.1:18472 >"$DATA/conf.log" 2>&1 &
    cp=$!; waitport 127.0.0.1:18472; sleep 1
    row "r$round c=$c tessera-conformance" $cp --url http://127.0.0.1:18472 --tessera-add --token-file "$DATA/key/keys/admin.token" -c "$c"
    kill $cp; wait $cp 2>/dev/null
    for w in ${WAITS:-durable index}; do
      for which in base bin; do
        b=$BIN; [ $which = base ] && b=$BASE
        start "$b" "$DATA/$which"
        row "r$round c=$c $which wait=$w" "$(cat "$DATA/$which.pid")" --url http://127.0.0.1:18471 --token-file "$DATA/$which/keys/admin.token" -c "$c" --wait "$w"
        kill "$(cat "$DATA/$which.pid")"; wait 2>/dev/null
      done
    done
  done
done
