#!/usr/bin/env bash
# test/bench/flood.sh: the flood benchmark (`make bench-flood`; not part of scripts/test.sh).
#
# Starts a throwaway cluster and the shim (or $FLOOD_SHIM, to measure another build side by
# side), then test/bench/flood.py bench: a legitimate client's p50/p99/max latency of
# GET /healthz (one new connection each, from 127.0.0.1) during and after each flood (from
# 127.0.0.2 and up), and the shim's VmRSS before and after. Prints a Markdown table; exits 1
# when a p99 is over FLOOD_TARGET_MS (100), a legitimate request failed, or memory grew
# from the first round of floods to the second (over 512 KiB).
# Environment: FLOOD_SHIM, FLOOD_SECONDS (how long each held flood lasts, 5),
# FLOOD_TARGET_MS (100).

set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
. "$ROOT/scripts/lib.sh"

SHIM=${FLOOD_SHIM:-$ROOT/shim/leadintake-shim}
WORK=$(mktemp -d /tmp/leadintake-flood.XXXXXX)
chmod 755 "$WORK"
SHIM_PID=""
cleanup() {
    [ -n "$SHIM_PID" ] && kill -TERM "$SHIM_PID" 2>/dev/null && wait "$SHIM_PID" 2>/dev/null
    li_remove_cluster "$WORK/pg" >/dev/null 2>&1
    rm -rf -- "$WORK"
}
trap cleanup EXIT

li_ensure_packages >/dev/null || li_die "cannot install the packages"
[ -n "${FLOOD_SHIM:-}" ] || (cd "$ROOT" && make -s all install >/dev/null) || li_die "build failed"
PORT=$(li_free_port) || li_die "no free port"
li_start_cluster "$WORK/pg" "$PORT" || li_die "the cluster did not start"
li_psql "$WORK/pg" "$PORT" -d postgres -c "CREATE DATABASE flood" >/dev/null
li_psql "$WORK/pg" "$PORT" -d flood -c "CREATE EXTENSION leadintake" >/dev/null
printf 'flood:%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/keys"
chmod 600 "$WORK/keys"

"$SHIM" --listen 127.0.0.1:0 --db "host=$(li_sockdir "$WORK/pg") port=$PORT dbname=flood user=postgres" \
    --api-key-file "$WORK/keys" >"$WORK/shim.out" 2>"$WORK/shim.err" &
SHIM_PID=$!
URL=""
for _ in $(seq 1 100); do
    URL=$(grep -Eo 'listening on http://[^ ]+' "$WORK/shim.err" | head -n1 | cut -d' ' -f3)
    [ -n "$URL" ] && break
    sleep 0.05
done
[ -n "$URL" ] || li_die "the shim did not start: $(cat "$WORK/shim.err")"

echo "shim: $SHIM ($("$SHIM" --version 2>&1 | head -n1))"
/usr/bin/python3 "$BENCH/flood.py" 127.0.0.1 "${URL##*:}" bench --pid "$SHIM_PID" \
    --seconds "${FLOOD_SECONDS:-5}" --target-ms "${FLOOD_TARGET_MS:-100}"
