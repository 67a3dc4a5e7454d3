#!/usr/bin/env bash
# Disk use per LLM call at a light, steady rate (docs/performance.md, "Disk
# use at a light, steady rate"): a log-server on its defaults, loadgen
# writing RATE events a second from one client (a call is two events, its
# request and its response, 1 KiB payloads) for DUR seconds, and every STEP
# seconds the bytes (du -sb) of the data directory and of its log directory,
# the partial tiles and bundles the tree no longer needs (every partial of a
# tile whose full one exists, and every partial narrower than the widest of
# its tile), and the log's size; once loadgen is done, the data directory
# again after the server has stopped (SQLite's write-ahead logs folded into
# the databases).
#
#   DATA=/mnt/jfs/disk tools/bench/disk-per-call.sh            # this tree
#   DATA=/mnt/jfs/disk BIN=/path/to/log-server tools/bench/disk-per-call.sh
#
# One line per sample: seconds, calls, data and log directory bytes, stale
# partial files and bytes, and the log directory's bytes per call with them
# and without them ("settled").
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/mnt/jfs/disk}
DUR=${DUR:-600}
RATE=${RATE:-2}
STEP=${STEP:-30}
PORT=${PORT:-18451}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/loadgen" ./cmd/loadgen
if [ -z "${BIN:-}" ]; then
  go build -o "$bin/log-server" ./cmd/log-server
  BIN=$bin/log-server
fi

rm -rf "$DATA"
start() {
  "$BIN" --data "$DATA" --listen 127.0.0.1:$PORT --log-level warn "$@" >>"$DATA.log" 2>&1 &
  srv=$!
  for _ in $(seq 100); do [ -s "$DATA/keys/admin.token" ] && curl -s -o /dev/null "http://127.0.0.1:$PORT/checkpoint" && return; sleep 0.1; done
}
# A first start creates the keys and databases; stopped, the directory is
# the baseline of the whole data directory.
start "$@"; kill $srv; wait $srv || true
stopped0=$(du -sb "$DATA" | cut -f1)
start "$@"

size() { sed -n 2p "$DATA/log/checkpoint"; }
# stale: the number and bytes of partial files the tree no longer needs.
stale() {
  local n=0 bytes=0 d f w widest full
  while IFS= read -r d; do
    full=0; [ -e "${d%.p}" ] && full=1
    # (a directory may be removed while it is read)
    widest=$(find "$d" -maxdepth 1 -type f -regex '.*/[0-9]+' -printf '%f\n' 2>/dev/null | sort -n | tail -1 || true)
    for f in "$d"/*; do
      w=${f##*/}
      [[ $w =~ ^[0-9]+$ ]] && [ -f "$f" ] || continue
      if [ $full = 1 ] || [ "$w" != "$widest" ]; then
        n=$((n + 1)); bytes=$((bytes + $(stat -c %s "$f" 2>/dev/null || echo 0)))
      fi
    done
  done < <(find "$DATA/log/tile" -type d -name '*.p' 2>/dev/null)
  echo "$n $bytes"
}
# bytes: du -sb of a directory whose files may be removed while it is read.
bytes() { du -sb "$1" 2>/dev/null | cut -f1 || true; }
sample() { # SECONDS
  local du lg s n b calls
  du=$(bytes "$DATA"); lg=$(bytes "$DATA/log"); read -r n b < <(stale); s=$(size)
  calls=$(( (s - size0) / 2 ))
  [ $calls -gt 0 ] || calls=1
  printf '%5ds calls=%-5d data=%-9d log=%-9d stale-partials=%-4d stale-bytes=%-9d log-per-call=%-6d settled-log-per-call=%d\n' \
    "$1" "$(( (s - size0) / 2 ))" "$du" "$lg" "$n" "$b" $(( (lg - lg0) / calls )) $(( (lg - b - lg0) / calls ))
}

sleep 2
lg0=$(bytes "$DATA/log"); size0=$(size)
"$bin/loadgen" --url "http://127.0.0.1:$PORT" --token-file "$DATA/keys/admin.token" -c 1 --rate "$RATE" -d "${DUR}s" \
  --checkpoint-sample 0 --progress 1h >"$DATA.loadgen" 2>&1 &
lg=$!
t0=$(date +%s)
while kill -0 $lg 2>/dev/null; do
  sleep "$STEP"
  sample $(( $(date +%s) - t0 ))
done
wait $lg
sleep 3 # the last checkpoint and collection
sample $(( $(date +%s) - t0 ))
tail -3 "$DATA.loadgen"
kill $srv; wait $srv || true
calls=$(( ($(size) - size0) / 2 ))
echo "stopped: calls=$calls data=$(du -sb "$DATA" | cut -f1) data-per-call=$(( ($(du -sb "$DATA" | cut -f1) - stopped0) / calls ))"
