#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name> are set by shim_started (printf -v)
# test/e2e/nolost.sh: no click is lost while the database is away (contract section 8,
# issue 14). Prints TAP.
#
#   1. --db-wait: the database stopped for 8 s, then started, under a bounded load of
#      distinct leads (test/e2e/load.py): every request is answered 201, none 503, and every
#      one is a stored lead, row by row, with exactly one intake_log row.
#   2. --db-wait 0 (the old behaviour, for contrast): the same outage answers 503.
#   3. --spool-dir, an outage longer than --db-wait: every answer is 201 or 202, none 503;
#      once the spool drains every one is a stored lead with one intake_log row, the spooled
#      ones logged with source 'spool' and the time the shim received them; /healthz and
#      /metrics show the spool's depth and age; its files are 0600 and hold no secret.
#   4. kill -9 of the shim while its spool holds requests: the next start sends them all.
#   5. A full spool (--spool-max) and an unwritable one answer 503, never 500, and lose
#      nothing already spooled.
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

# it stops the database: scripts/test.sh's cluster only when it says which one it is
[ -n "${LEADINTAKE_CLUSTER_DIR:-}" ] || unset LEADINTAKE_TEST_DB
e2e_database e2e_nolost
CLUSTER=${LEADINTAKE_CLUSTER_DIR:-$OWN_CLUSTER}
db_up() { li_cluster_ctl "$CLUSTER" status >/dev/null 2>&1; }
restart_db() { db_up || li_cluster_ctl "$CLUSTER" start >/dev/null 2>&1; }
e2e_on_exit restart_db

q -c "INSERT INTO leadintake.agents (username) VALUES ('agent1') ON CONFLICT DO NOTHING" \
    >/dev/null || bail "cannot seed"
e2e_key nolost

echo "1..27"

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

# ================================================================ 3. the spool
SPOOL=$T/spool
if start_shim spool --db-wait 2 --spool-dir "$SPOOL"; then
    "$PY" "$LOAD" "$URL_spool" "$KEY" S 30 0.1 >"$T/S" &
    LOADPID=$!
    sleep 0.5
    li_cluster_ctl "$CLUSTER" stop >/dev/null || bail "cannot stop the database"
    # a JSON body with secrets, while the database is away
    SECRETBODY=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H "X-Dialer-Api-Key: $KEY" \
        -H 'Content-Type: application/json' \
        --data-binary '{"user": "agent1", "lead_id": "S-SECRET", "pass": "SPOOLSECRET1", "Phone_Pass": "SPOOLSECRET2", "note\u0073": "kept"}' \
        "$URL_spool/api/leads/from-dialer/")
    is "a JSON body with secrets while the database is away: 202" "$SECRETBODY" 202
    sleep 4
    HEALTH=$(curl -s --max-time 5 "$URL_spool/healthz")
    like "/healthz shows the spool's depth and oldest age" "$HEALTH" \
        '"database": "down", "spool": \{"depth": [1-9][0-9]*, "oldest_age_seconds": [0-9.]+\}'
    like "/metrics too" "$(curl -s --max-time 5 "$URL_spool/metrics" | grep '^leadintake_spool_depth ')" \
        '^leadintake_spool_depth [1-9]'
    is "every spool file is mode 0600" \
        "$(find "$SPOOL/new" -type f ! -perm 0600 | wc -l) $(find "$SPOOL/new" -type f | wc -l | sed 's/^0$/none/')" \
        "0 $(find "$SPOOL/new" -type f | wc -l)"
    is "no secret is in the spool" "$(grep -rl 'SPOOLSECRET' "$SPOOL" | wc -l)" 0
    UP_AT=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
    li_cluster_ctl "$CLUSTER" start >/dev/null || bail "cannot start the database"
    wait "$LOADPID"
    for _ in $(seq 1 100); do
        [ -z "$(ls -A "$SPOOL/new")" ] && break
        sleep 0.1
    done
    is "outage longer than --db-wait with a spool: every answer 201 or 202 ($(statuses S))" \
        "$(awk '$2 != 201 && $2 != 202' "$T/S" | wc -l)" 0
    like "... some were spooled (202)" "$(awk '$2 == 202' "$T/S" | wc -l)" "^[1-9]"
    is "the spool drained once the database answered" "$(ls -A "$SPOOL/new" | wc -l)" 0
    N202=$(grep -c ' 202$' "$T/S")
    sed -i 's/ 202$/ 201/' "$T/S"
    is "... every request is one stored lead with one intake_log row (row by row)" "$(not_stored S)" ""
    is "... the spooled ones are logged with source spool, received before the database came back" \
        "$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE source = 'spool'
                   AND received_at < '$UP_AT'::timestamptz
                   AND key_name = 'nolost' AND client_addr = '127.0.0.1'")" \
        "$((N202 + 1))" # the 202s of the load, and the JSON body with secrets
    is "the JSON body was stored without its secrets" \
        "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'S-SECRET' AND notes = 'kept'
                 AND NOT extra::text LIKE '%SPOOLSECRET%'")/$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE payload::text LIKE '%SPOOLSECRET%'")" "1/0"
else
    for _ in $(seq 1 11); do not_ok "the shim starts with --spool-dir" "$(cat "$T/spool.err")"; done
fi

# ================================================================ 4. kill -9 with a spool
SPOOL2=$T/spool2
if start_shim killed --db-wait 1 --spool-dir "$SPOOL2"; then
    li_cluster_ctl "$CLUSTER" stop >/dev/null || bail "cannot stop the database"
    "$PY" "$LOAD" "$URL_killed" "$KEY" K 10 0.05 >"$T/K"
    is "database away: 10 requests spooled (202)" "$(grep -c ' 202$' "$T/K")" 10
    kill -KILL "$PID_killed"
    wait "$PID_killed" 2>/dev/null
    is "kill -9: the 10 files are still in the spool" "$(ls -A "$SPOOL2/new" | wc -l)" 10
    li_cluster_ctl "$CLUSTER" start >/dev/null || bail "cannot start the database"
    if start_shim restarted --spool-dir "$SPOOL2"; then
        for _ in $(seq 1 100); do
            [ -z "$(ls -A "$SPOOL2/new")" ] && break
            sleep 0.1
        done
        is "the next start sends them all" "$(ls -A "$SPOOL2/new" | wc -l)" 0
        sed -i 's/ 202$/ 201/' "$T/K"
        is "... each is one stored lead with one intake_log row (row by row)" "$(not_stored K)" ""
        like "... and said so at start" "$(cat "$T/restarted.err")" "the spool holds 10 requests from before"
    else
        for _ in 1 2 3; do not_ok "the shim restarts on its spool" "$(cat "$T/restarted.err")"; done
    fi
else
    for _ in 1 2 3 4 5; do not_ok "the shim starts with --spool-dir" "$(cat "$T/killed.err")"; done
fi

# ================================================================ 5. full, unwritable
SPOOL3=$T/spool3
if start_shim full --db-wait 0 --spool-dir "$SPOOL3" --spool-max 2k; then
    li_cluster_ctl "$CLUSTER" stop >/dev/null || bail "cannot stop the database"
    "$PY" "$LOAD" "$URL_full" "$KEY" F 20 0.02 >"$T/F"
    like "a full spool (--spool-max 2k): 202 until full, then 503, never 500 ($(statuses F))" \
        "$(awk '$2 != 202 && $2 != 503' "$T/F" | wc -l) $(grep -c ' 503$' "$T/F")" "^0 [1-9]"
    rm -rf "$SPOOL3/tmp" && touch "$SPOOL3/tmp" # a spool that cannot be written
    is "an unwritable spool: 503" \
        "$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H "X-Dialer-Api-Key: $KEY" \
            -H 'Content-Type: application/json' --data-binary '{"user": "agent1", "lead_id": "F-X"}' \
            "$URL_full/api/leads/from-dialer/")" 503
    li_cluster_ctl "$CLUSTER" start >/dev/null || bail "cannot start the database"
    for _ in $(seq 1 100); do
        [ -z "$(ls -A "$SPOOL3/new")" ] && break
        sleep 0.1
    done
    sed -i 's/ 202$/ 201/' "$T/F"
    is "... and what was spooled is stored all the same (row by row)" "$(not_stored F)" ""
else
    for _ in 1 2 3; do not_ok "the shim starts with --spool-max" "$(cat "$T/full.err")"; done
fi
