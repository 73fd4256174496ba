#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name> are set by shim_started (printf -v)
# test/e2e/nolost.sh: no click is lost while the database is away (contract section 8,
# issue 14). Prints TAP.
#
#   1. --db-wait: the database stopped for 8 s, then started, under a bounded load of
#      distinct leads (test/e2e/load.py): every request is answered 201, none 503, and every
#      one is a stored lead, row by row, with exactly one intake_log row.
#   2. --db-wait 0 (the old behaviour, for contrast): the same outage answers 503.
#
# It stops and starts the database: the cluster of scripts/test.sh
# (LEADINTAKE_CLUSTER_DIR), left running, or with nothing set a throwaway one of its own.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
LOAD=$ROOT/test/e2e/load.py
PY=/usr/bin/python3
e2e_tmp nolost
SHIM_PIDS=()
OWN_CLUSTER=""

if [ -n "${LEADINTAKE_TEST_DB:-}" ] && [ -n "${LEADINTAKE_CLUSTER_DIR:-}" ]; then
    DB=$LEADINTAKE_TEST_DB
    CONNINFO=${LEADINTAKE_TEST_CONNINFO:-"dbname=$DB"}
    CLUSTER=$LEADINTAKE_CLUSTER_DIR
else
    DB=e2e_nolost
    e2e_own_cluster "$DB"
    CONNINFO="host=$PGHOST port=$PGPORT dbname=$DB user=postgres"
    CLUSTER=$OWN_CLUSTER
fi
export PGUSER=${PGUSER:-postgres}
unset PGDATABASE
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
db_up() { li_cluster_ctl "$CLUSTER" status >/dev/null 2>&1; }

cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${SHIM_PIDS[@]}"; do stop_pid "$pid"; done
    db_up || li_cluster_ctl "$CLUSTER" start >/dev/null 2>&1
    [ -n "$OWN_CLUSTER" ] && li_remove_cluster "$OWN_CLUSTER" >/dev/null 2>&1
    [ "$OWN_TMP" = 1 ] && rm -rf -- "$T"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

q -c "INSERT INTO leadintake.agents (username) VALUES ('agent1') ON CONFLICT DO NOTHING" \
    >/dev/null || bail "cannot seed"
KEY=nolost-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'nolost:%s\n' "$KEY" >"$T/keys"
chmod 600 "$T/keys"

echo "1..8"

start_shim() {
    local name=$1
    shift
    "$SHIM" --listen 127.0.0.1:0 --db "$CONNINFO" --api-key-file "$T/keys" "$@" \
        >"$T/$name.out" 2>"$T/$name.err" &
    shim_started "$name" $! http
}
# outage URL PREFIX N INTERVAL SECONDS: the load in the background, the database stopped
# for SECONDS once it runs, then started; waits for the load; its lines in $T/PREFIX.
outage() {
    local url=$1 prefix=$2 n=$3 interval=$4 seconds=$5 pid
    "$PY" "$LOAD" "$url" "$KEY" "$prefix" "$n" "$interval" >"$T/$prefix" &
    pid=$!
    sleep 1
    li_cluster_ctl "$CLUSTER" stop >/dev/null || bail "cannot stop the database"
    sleep "$seconds"
    li_cluster_ctl "$CLUSTER" start >/dev/null || bail "cannot start the database"
    wait "$pid"
}
statuses() { awk '{print $2}' "$T/$1" | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}'; }
# stored PREFIX: the lead ids answered 201 that are not exactly one lead with one log row.
not_stored() {
    awk '$2 == 201 {print $1}' "$T/$1" | while read -r id; do
        got=$(q -c "SELECT (SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = '$id')
                       || '/' || (SELECT count(*) FROM leadintake.intake_log
                                   WHERE payload->>'lead_id' = '$id')")
        [ "$got" = 1/1 ] || echo "$id:$got"
    done
}

# ================================================================ 1. --db-wait
if start_shim wait --db-wait 15; then
    outage "$URL_wait" W 50 0.2 8
    is "database stopped 8 s under load, --db-wait 15: every answer is 201 ($(statuses W))" \
        "$(awk '$2 != 201' "$T/W" | wc -l)" 0
    is "... none is 503" "$(awk '$2 == 503' "$T/W" | wc -l)" 0
    is "... every 201 is one stored lead with one intake_log row (row by row)" "$(not_stored W)" ""
    like "the shim said the database was away and back" "$(cat "$T/wait.err")" \
        "requests wait up to --db-wait.*the database answers again"
    check "the shim still runs" kill -0 "$PID_wait"
else
    for _ in 1 2 3 4 5; do not_ok "the shim starts with --db-wait" "$(cat "$T/wait.err")"; done
fi

# ================================================================ 2. contrast: no wait
if start_shim nowait --db-wait 0; then
    outage "$URL_nowait" N 20 0.2 3
    like "the same outage with --db-wait 0: 503s ($(statuses N))" "$(awk '$2 == 503' "$T/N" | wc -l)" "^[1-9]"
    is "... and no 500" "$(awk '$2 == 500 || $2 == 0' "$T/N" | wc -l)" 0
    is "... every 201 is one stored lead (row by row)" "$(not_stored N)" ""
else
    for _ in 1 2 3; do not_ok "the shim starts with --db-wait 0" "$(cat "$T/nowait.err")"; done
fi
