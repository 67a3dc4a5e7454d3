#!/usr/bin/env bash
# What the write path's gap to Tessera's conformance server is made of:
# the log server with parts of an event's work turned off (floor.patch, an
# environment variable each; never in a release build) against the
# conformance POSIX server, 512 clients, ?wait=durable, in alternating
# rounds (docs/performance.md, "What the gap is made of").
#
#   DATA=/mnt/jfs/floor ROUNDS=2 tools/bench/floor.sh
#
#   A  the log server as built
#   B  A without the session index (FLOOR_NOINDEX: CatchUp does nothing)
#   C  B without the vault (FLOOR_NOVAULT: payloads neither sealed, carried
#      in the journal nor stored; the leaf keeps its payload commitment)
#   D  C without the field commitment (FLOOR_NOFIELDS: no "sd")
#
# FLOOR_INDEXPOLL (a duration) sets how often the session index catches up
# unasked (100ms in the product); run the patched log-server by hand for it.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/mnt/jfs/floor}
DUR=${DUR:-15s}
ROUNDS=${ROUNDS:-2}
bin=$(mktemp -d)
tree=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; git worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$bin" "$tree"' EXIT
git worktree add --detach "$tree" HEAD >/dev/null
git -C "$tree" apply "$PWD/tools/bench/floor.patch"
go -C "$tree" build -o "$bin/log-server" ./cmd/log-server
go build -o "$bin/loadgen" ./cmd/loadgen
conf=$(go -C tools/tessera tool -n posix)
LOADGEN=$bin/loadgen
# shellcheck source=tools/bench/lib.sh
. tools/bench/lib.sh

rm -rf "$DATA" && mkdir -p "$DATA"
"$bin/log-server" --data "$DATA/key" --listen 127.0.0.1:18401 --log-level warn >/dev/null 2>&1 &
p=$!; waitport 127.0.0.1:18401; kill $p; wait $p 2>/dev/null || true
for _ in $(seq "$ROUNDS"); do
  rm -rf "$DATA/conf" && mkdir -p "$DATA/conf"
  "$conf" --storage_dir "$DATA/conf" --private_key "$DATA/key/keys/log.key" --listen 127.0.0.1:18402 >"$DATA/conf.log" 2>&1 &
  cp=$!; waitport 127.0.0.1:18402; sleep 1
  row "tessera-conformance" $cp --url http://127.0.0.1:18402 --tessera-add --token-file "$DATA/key/keys/admin.token" -c 512
  kill $cp; wait $cp 2>/dev/null || true
  for v in "A:" "B:FLOOR_NOINDEX=1" "C:FLOOR_NOINDEX=1 FLOOR_NOVAULT=1" "D:FLOOR_NOINDEX=1 FLOOR_NOVAULT=1 FLOOR_NOFIELDS=1"; do
    rm -rf "$DATA/ours"
    # shellcheck disable=SC2086
    env ${v#*:} "$bin/log-server" --data "$DATA/ours" --listen 127.0.0.1:18401 --log-level warn --max-conns-per-client 0 >"$DATA/ours.log" 2>&1 &
    op=$!
    for _ in $(seq 100); do [ -s "$DATA/ours/keys/admin.token" ] && break; sleep 0.1; done
    waitport 127.0.0.1:18401
    row "log-server ${v%%:*} durable" $op --url http://127.0.0.1:18401 --token-file "$DATA/ours/keys/admin.token" -c 512 --wait durable
    kill $op; wait $op 2>/dev/null || true
  done
done
