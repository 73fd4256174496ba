#!/usr/bin/env bash
# test/e2e/secrets_log.sh: the dialer's secrets (contract section 3: api_key, dialer_api_key,
# pass, orig_pass, phone_pass, any case) never reach PostgreSQL's server log through the
# shim's statement parameter (issue 13, item 7). Prints TAP.
#
# The database runs with log_min_duration_statement = 0, so every call of the shim's prepared
# statement is logged with its parameters (the body is bytea: logged as hex, which is
# searched too).
#   - GET query strings and form bodies (the shim parses them): the shim drops every secret
#     key, so no secret is in the log whatever the role's settings.
#   - JSON bodies go byte for byte: with the login role scripts/demo.sh creates
#     (scripts/lib.sh li_shim_role_sql: log_parameter_max_length = 0 and
#     log_parameter_max_length_on_error = 0) no parameter is logged, even where the database
#     asks for them (ALTER DATABASE ... SET ... = -1), on success and on error. The same
#     requests through a superuser's shim do reach the log: the control that the search
#     would see a leak.
#
# Run by scripts/test.sh (server log: $LEADINTAKE_CLUSTER_DIR/log), or by hand with nothing
# set (a throwaway cluster of its own, log in it).

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp secrets_log

ROLE=e2e_secrets_shim
LOCKER=""

# the server log must be one we can read: scripts/test.sh's when it says where, else a
# cluster of our own
[ -n "${LEADINTAKE_CLUSTER_DIR:-}" ] || unset LEADINTAKE_TEST_DB
e2e_database e2e_secrets_log
LOG=${OWN_CLUSTER:-$LEADINTAKE_CLUSTER_DIR}/log

secrets_cleanup() {
    [ -n "$LOCKER" ] && stop_pid "$LOCKER"
    q -c "ALTER DATABASE \"$DB\" RESET ALL" >/dev/null 2>&1
    q -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
}
e2e_on_exit secrets_cleanup

echo "1..13"
[ -x "$SHIM" ] || bail "the shim is not built ($SHIM)"
[ -r "$LOG" ] || bail "cannot read the server log $LOG"

# ---------------------------------------------------------------- set-up

R=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
e2e_key dialer
K="X-Dialer-Api-Key: $KEY"
J='Content-Type: application/json'
F='Content-Type: application/x-www-form-urlencoded'
API=/api/leads/from-dialer/

q -c "INSERT INTO leadintake.agents (username, dialer_user_id) VALUES ('agent1', '1001')" \
    >/dev/null || bail "cannot seed the agent"
# every call logged with its parameters, whatever postgresql.conf says
q -c "ALTER DATABASE \"$DB\" SET log_min_duration_statement = 0" \
  -c "ALTER DATABASE \"$DB\" SET log_parameter_max_length = -1" \
  -c "ALTER DATABASE \"$DB\" SET log_parameter_max_length_on_error = -1" >/dev/null \
    || bail "cannot set the logging of the database"
q -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
li_shim_role_sql "$ROLE" | q >/dev/null || bail "cannot create the shim's role $ROLE"

SHIM_ARGS=(--db-wait 0)
must_start_shim super
CONNINFO="$CONNINFO user=$ROLE" must_start_shim role

# code CURL-ARGS...: the HTTP status of one request.
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$@"; }

# The log written since mark_log, in NEW.
mark_log() { MARK=$(stat -c %s "$LOG"); }
read_log() { NEW=$(tail -c +"$((MARK + 1))" "$LOG"); }
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
# in_log TEXT: TEXT is in NEW, as itself or as the hex of a logged bytea.
in_log() { grep -qF -e "$1" -e "$(hex "$1")" <<<"$NEW"; }
# wait_log TEXT: up to 5 s for TEXT to be written; then NEW holds the log since the mark.
wait_log() {
    for _ in $(seq 1 50); do
        read_log
        in_log "$1" && return 0
        sleep 0.1
    done
    return 1
}
# found TEXT...: those of TEXT that are in NEW.
found() {
    local s out=()
    for s in "$@"; do in_log "$s" && out+=("$s"); done
    printf '%s' "${out[*]}"
}
# executes: how many times the shim's statement was logged in NEW.
executes() { grep -c 'execute leadintake_http_intake' <<<"$NEW"; }

# Secret values, each under one of the keys of contract section 3, in mixed case too.
P1=SECRETP1-$R P2=SECRETP2-$R P3=SECRETP3-$R P4=SECRETP4-$R P5=SECRETP5-$R P6=SECRETP6-$R

# ---------------------------------------------------------------- query strings and forms

mark_log
c1=$(code -H "$K" "$URL_super$API?user=agent1&lead_id=GET-$R&pass=$P1&phone_pass=$P2&orig_pass=$P3&dialer_api_key=$P4&PASS=$P5&Phone_Pass=$P6")
c2=$(code -H "$K" -H "$F" --data-binary \
    "user=agent1&lead_id=FORM-$R&pass=$P1&phone_pass=$P2&orig_pass=$P3&Dialer_Api_Key=$P4" \
    "$URL_super$API?ORIG_PASS=$P5&api_key=$P6")
is "GET and form POST with secret parameters: 201 and 201" "$c1 $c2" "201 201"
wait_log "FORM-$R"
check "control: the superuser's calls are logged with their parameter (the lead ids)" \
    in_log "GET-$R"
is "no secret of a GET query string or a form body in the server log" \
    "$(found "$P1" "$P2" "$P3" "$P4" "$P5" "$P6")" ""
is "nor in the database" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log l, leadintake.leads d
             WHERE (l.payload::text || coalesce(l.raw_body, '') || d.extra::text) ~ 'SECRETP[0-9]-$R'")" 0
is "the lead keeps the other fields (the form's lead id)" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id IN ('GET-$R', 'FORM-$R')")" 2

# ---------------------------------------------------------------- JSON bodies

json() { printf '{"user": "agent1", "lead_id": "%s", "pass": "%s", "Phone_Pass": "%s"}' "$@"; }

mark_log
c=$(code -H "$K" -H "$J" --data-binary "$(json "JS-$R" "SECRETJ1-$R" "SECRETJ2-$R")" "$URL_super$API")
wait_log "JS-$R"
is "control: a superuser's shim: a JSON body's secrets reach the server log (201)" \
    "$c $(found "SECRETJ1-$R" "SECRETJ2-$R")" "201 SECRETJ1-$R SECRETJ2-$R"

mark_log
c=$(code -H "$K" -H "$J" --data-binary "$(json "JR-$R" "SECRETJ3-$R" "SECRETJ4-$R")" "$URL_role$API")
# the statement's own log line comes, without its parameter
for _ in $(seq 1 50); do read_log; [ "$(executes)" -gt 0 ] && break; sleep 0.1; done
is "the demo's shim role: the call is logged (201)" "$c $(executes)" "201 1"
is "the demo's shim role: no JSON secret and no parameter in the server log" \
    "$(found "SECRETJ3-$R" "SECRETJ4-$R" "JR-$R")" ""
is "the role's settings win over the database's" \
    "$(PGUSER=$ROLE q -c 'SHOW log_parameter_max_length' -c 'SHOW log_parameter_max_length_on_error' | tr '\n' ' ')" \
    "0 0 "

# ---------------------------------------------------------------- a call that fails

# fail_call NAME LEAD SECRET: a JSON call through shim NAME (--query-timeout 300) while
# another session holds the lead tables: the statement is cancelled with an error; prints
# the HTTP status.
fail_call() {
    psql -X -q -d "$DB" -c 'BEGIN' \
        -c 'LOCK leadintake.agents, leadintake.leads, leadintake.intake_log' \
        -c 'SELECT pg_sleep(4)' -c 'COMMIT' >/dev/null 2>&1 &
    LOCKER=$!
    for _ in $(seq 1 50); do
        [ "$(q -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                   WHERE c.relname = 'intake_log' AND l.mode = 'AccessExclusiveLock'
                     AND l.granted")" = 1 ] && break
        sleep 0.1
    done
    code -H "$K" -H "$J" --data-binary "$(json "$2" "$3" "$3")" "${!1}$API"
    stop_pid "$LOCKER"
    LOCKER=""
}
stop_pid "$PID_super"
stop_pid "$PID_role"
# only errors are logged now: what is found comes from log_parameter_max_length_on_error
q -c "ALTER DATABASE \"$DB\" SET log_min_duration_statement = -1" >/dev/null
must_start_shim superslow --query-timeout 300 --batch-max 1
CONNINFO="$CONNINFO user=$ROLE" must_start_shim roleslow --query-timeout 300 --batch-max 1

mark_log
c=$(fail_call URL_superslow "JE1-$R" "SECRETJ5-$R")
wait_log "SECRETJ5-$R"
is "control: a superuser's failed call (503) logs its parameter with the error" \
    "$c $(found "SECRETJ5-$R")" "503 SECRETJ5-$R"

mark_log
c=$(fail_call URL_roleslow "JE2-$R" "SECRETJ6-$R")
for _ in $(seq 1 50); do read_log; grep -q 'statement timeout' <<<"$NEW" && break; sleep 0.1; done
like "the demo's shim role: the failed call (503) is logged" \
    "$c $(grep -c 'canceling statement due to statement timeout' <<<"$NEW")" '^503 [1-9]'
is "the demo's shim role: no parameter with the error" "$(found "SECRETJ6-$R" "JE2-$R")" ""

# ---------------------------------------------------------------- the shim's own output
is "no secret in the shims' stdout or stderr" \
    "$(cat "$T"/*.out "$T"/*.err | grep -cE "SECRET(P|J)[0-9]-$R")" 0

exit $((FAILED > 0))
