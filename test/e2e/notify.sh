#!/usr/bin/env bash
# test/e2e/notify.sh: NOTIFY leadintake_lead (issue 4): one notification per successful call,
# payload {"id": N, "created": true|false, "agent": "<username>", "log_id": L}, on commit only,
# never for a rolled-back call nor for a 400/404; from every entry (leadintake_from_dialer,
# http_intake, process_inbox, replay). Prints TAP on stdout.
#
# How: one psql session LISTENs and runs the calls; psql prints
#   Asynchronous notification "leadintake_lead" with payload "..." received from server ...
# after the command that delivered it, so `\echo ==MARK` lines cut its output into
# segments, and each segment's notifications are counted and their payloads checked
# (python3 parses the JSON). A second session (a dblink connection) LISTENs too, to show
# that nothing reaches another listener while the caller's transaction is open.
#
# PostgreSQL folds identical notifications of one transaction into one; the payload's
# log_id (the call's intake_log row) keeps calls for one lead in one transaction apart.
#
# Run by scripts/test.sh (LEADINTAKE_TEST_DB with the extension created, PGHOST, PGPORT,
# PGUSER); by hand without LEADINTAKE_TEST_DB it starts a throwaway cluster of its own
# (scripts/lib.sh) with the installed extension. Needs psql, python3, dblink (contrib).

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
TAP_IS_ONE_LINE=1   # is: multi-line values (lists of payloads) on one line, newlines as '|'

e2e_tmp notify
e2e_database e2e_notify
e2e_on_exit

echo "1..47"

if ! q >"$T/setup.out" 2>&1 <<'EOF'
CREATE EXTENSION IF NOT EXISTS dblink;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'),
    ('agent2', 'Agent Two', '1002');
EOF
then
    echo "Bail out! setup failed: $(tr '\n' ' ' <"$T/setup.out")"
    exit 1
fi

# ---------------------------------------------------------------- the listening session
# Every segment starts at "\echo ==NAME"; statements that must fail do (ON_ERROR_STOP off).
cat >"$T/session.sql" <<'EOF'
LISTEN leadintake_lead;
CREATE TEMP TABLE heard (n serial, payload text);
SELECT 'SESSION-PID:' || pg_backend_pid();
SELECT 'MODE:' || mode FROM leadintake.notify_status();
-- Batched, a call's notification comes from the notifier shortly after commit: each segment
-- waits until nothing is left to send, then a query collects what arrived meanwhile.
\set settle 'DO $d$ BEGIN FOR i IN 1..1000 LOOP EXIT WHEN (SELECT waiting FROM leadintake.notify_status()) = 0; PERFORM pg_sleep(0.01); END LOOP; END $d$'

\echo ==create
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-1","first_name":"Nora"}'::jsonb);
:settle;
SELECT 1 WHERE false;
\echo ==update
SELECT 1 FROM leadintake_from_dialer('{"dialer_user_id":"1001","lead_id":"N-1","last_name":"North"}'::jsonb);
:settle;
SELECT 1 WHERE false;
\echo ==agent2
SELECT 1 FROM leadintake_from_dialer('{"dialer_user_id":"1002","lead_id":"N-2"}'::jsonb);
:settle;
SELECT 1 WHERE false;
\echo ==rollback
BEGIN;
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-RB"}'::jsonb);
ROLLBACK;
:settle;
SELECT 1 WHERE false;
\echo ==rollback-http
BEGIN;
SELECT status FROM leadintake.http_intake(convert_to('{"user":"agent1","lead_id":"N-RBH"}', 'UTF8'), 'k', NULL);
ROLLBACK;
:settle;
SELECT 1 WHERE false;
\echo ==error-in-tx
BEGIN;
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-ERR"}'::jsonb);
SELECT 1 FROM leadintake_from_dialer('{"user":"nobody"}'::jsonb);
COMMIT;
:settle;
SELECT 1 WHERE false;
\echo ==tx-listener
-- The second session starts listening now: it hears only what commits from here on.
SELECT dblink_connect('listener', format('host=%s port=%s dbname=%s user=%s',
    trim(split_part(current_setting('unix_socket_directories'), ',', 1)),
    current_setting('port'), current_database(), current_user)) IS NOT NULL AS connected;
SELECT dblink_exec('listener', 'LISTEN leadintake_lead');
:settle;
SELECT 1 WHERE false;
\echo ==tx-begin
BEGIN;
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-TX"}'::jsonb);
SELECT pg_sleep(0.3);
INSERT INTO heard (payload) SELECT extra FROM dblink_get_notify('listener') WHERE notify_name = 'leadintake_lead';
SELECT 'OPEN-HEARD:' || count(*) FROM heard;
:settle;
SELECT 1 WHERE false;
\echo ==tx-commit
COMMIT;
:settle;
SELECT 1 WHERE false;
\echo ==tx-after
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '10 seconds';
BEGIN
    LOOP
        INSERT INTO heard (payload)
        SELECT extra FROM dblink_get_notify('listener') WHERE notify_name = 'leadintake_lead';
        EXIT WHEN EXISTS (SELECT 1 FROM heard) OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.05);
    END LOOP;
    PERFORM pg_sleep(0.3);
    INSERT INTO heard (payload)
    SELECT extra FROM dblink_get_notify('listener') WHERE notify_name = 'leadintake_lead';
END $$;
SELECT 'COMMITTED-HEARD:' || payload FROM heard ORDER BY n;
:settle;
SELECT 1 WHERE false;
\echo ==sql-400
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-400","email":"not an address"}'::jsonb);
:settle;
SELECT 1 WHERE false;
\echo ==sql-404
SELECT 1 FROM leadintake_from_dialer('{"user":"nobody","lead_id":"N-404"}'::jsonb);
:settle;
SELECT 1 WHERE false;
\echo ==sql-identity
SELECT 1 FROM leadintake_from_dialer('{"lead_id":"N-NOID"}'::jsonb);
:settle;
SELECT 1 WHERE false;
\echo ==http-201
SELECT status FROM leadintake.http_intake(convert_to('{"user":"agent2","lead_id":"N-H","first_name":"Hugo"}', 'UTF8'), 'k', '10.0.0.9');
:settle;
SELECT 1 WHERE false;
\echo ==http-400
SELECT status FROM leadintake.http_intake(convert_to('{"user":"agent2","email":"x"}', 'UTF8'), 'k', NULL);
:settle;
SELECT 1 WHERE false;
\echo ==http-404
SELECT status FROM leadintake.http_intake(convert_to('{"user":"nobody"}', 'UTF8'), 'k', NULL);
:settle;
SELECT 1 WHERE false;
\echo ==http-notjson
SELECT status FROM leadintake.http_intake(convert_to('{"user":', 'UTF8'), 'k', NULL);
:settle;
SELECT 1 WHERE false;
\echo ==bulk
SELECT count(leadintake_from_dialer(p)) FROM (VALUES
    ('{"user":"agent1","lead_id":"N-B1"}'::jsonb),
    ('{"user":"agent2","lead_id":"N-B2"}'),
    ('{"dialer_user_id":"1001","lead_id":"N-B3"}')) AS v (p);
:settle;
SELECT 1 WHERE false;
\echo ==bulk-same
SELECT count(leadintake_from_dialer(p)) FROM (VALUES
    ('{"user":"agent1","lead_id":"N-S","comments":"one"}'::jsonb),
    ('{"user":"agent1","lead_id":"N-S","comments":"one"}'),
    ('{"user":"agent1","lead_id":"N-S","comments":"one"}')) AS v (p);
:settle;
SELECT 1 WHERE false;
\echo ==savepoint
BEGIN;
SAVEPOINT s;
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-SP1"}'::jsonb);
ROLLBACK TO SAVEPOINT s;
SELECT 1 FROM leadintake_from_dialer('{"user":"agent1","lead_id":"N-SP2"}'::jsonb);
COMMIT;
:settle;
SELECT 1 WHERE false;
\echo ==enqueue
INSERT INTO leadintake.inbox (payload) VALUES
    ('{"user":"agent1","lead_id":"N-Q1"}'),
    ('{"user":"agent1","lead_id":"N-Q2","email":"bad"}'),
    ('{"user":"agent2","lead_id":"N-Q3"}'),
    ('{"user":"nobody","lead_id":"N-Q4"}'),
    ('{"dialer_user_id":"1002","lead_id":"N-Q5"}');
:settle;
SELECT 1 WHERE false;
\echo ==inbox-rollback
BEGIN;
SELECT count(*) FROM leadintake.process_inbox(100);
ROLLBACK;
:settle;
SELECT 1 WHERE false;
\echo ==inbox
SELECT count(*) FROM leadintake.process_inbox(100);
:settle;
SELECT 1 WHERE false;
\echo ==replay
SELECT leadintake.replay((SELECT max(id) FROM leadintake.intake_log WHERE source = 'http' AND status = 201)) ->> 'created';
:settle;
SELECT 1 WHERE false;
\echo ==end
EOF

q -v ON_ERROR_STOP=0 -f "$T/session.sql" >"$T/session.out" 2>"$T/session.err"
diag "session: $(grep -c '^Asynchronous notification' "$T/session.out") notifications in all"

# payloads SEGMENT: the payloads of the leadintake_lead notifications printed in SEGMENT.
payloads() {
    awk -v seg="==$1" '/^==/ { on = ($0 == seg); next } on' "$T/session.out" \
        | sed -n 's/^Asynchronous notification "leadintake_lead" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p'
}
# all_notes SEGMENT: every notification line of SEGMENT (any channel).
all_notes() {
    awk -v seg="==$1" '/^==/ { on = ($0 == seg); next } on' "$T/session.out" \
        | grep -c '^Asynchronous notification'
}
# norm: each JSON payload on stdin as "keys=... id=... created=... agent=...".
norm() {
    python3 -c '
import json, sys
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    try:
        d = json.loads(line)
    except ValueError:
        print("not JSON: " + line)
        continue
    if not isinstance(d, dict):
        print("not an object: " + line)
        continue
    print("keys=%s id=%s created=%s agent=%s" % (",".join(sorted(d)), json.dumps(d.get("id")),
          json.dumps(d.get("created")), json.dumps(d.get("agent"))))
'
}
lead_id() { q -c "SELECT id FROM leadintake.leads WHERE dialer_lead_id = '$1'"; }
# expect ID CREATED AGENT: the normalised payload expected.
expect() { printf 'keys=agent,created,id,log_id id=%s created=%s agent="%s"' "$1" "$2" "$3"; }
count() { payloads "$1" | grep -c .; }

id1=$(lead_id N-1)
is "one successful call (created): one notification" "$(count create)" 1
is "... payload {\"id\": N, \"created\": true, \"agent\": \"agent1\"} for that lead" \
    "$(payloads create | norm)" "$(expect "$id1" true agent1)"
is "... its log_id is that call's intake_log row" \
    "$(q -c "SELECT lead_id || ' ' || status FROM leadintake.intake_log WHERE id = $(payloads create | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["log_id"])')")" \
    "$id1 201"
is "an update of that lead: one notification" "$(count update)" 1
is "... payload with \"created\": false and the same id" \
    "$(payloads update | norm)" "$(expect "$id1" false agent1)"
is "agent is the username of the agent resolved by dialer_user_id" \
    "$(payloads agent2 | norm)" "$(expect "$(lead_id N-2)" true agent2)"

is "a call rolled back: no notification" "$(all_notes rollback)" 0
is "... and no lead" "$(lead_id N-RB)" ""
is "an http_intake 201 rolled back: no notification" "$(all_notes rollback-http)" 0
is "a successful call in a transaction that then fails: no notification" \
    "$(all_notes error-in-tx)" 0
is "... and no lead" "$(lead_id N-ERR)" ""

idtx=$(lead_id N-TX)
is "inside an open transaction: nothing delivered to the caller's own session" \
    "$(all_notes tx-begin)" 0
is "inside an open transaction: nothing delivered to a listener in a second session" \
    "$(grep -o '^OPEN-HEARD:.*' "$T/session.out")" "OPEN-HEARD:0"
is "on COMMIT: one notification to the caller's session" "$(count tx-commit)" 1
is "... for that lead" "$(payloads tx-commit | norm)" "$(expect "$idtx" true agent1)"
is "after COMMIT: the second session's listener received exactly one, the same" \
    "$(sed -n 's/^COMMITTED-HEARD://p' "$T/session.out" | norm)" "$(expect "$idtx" true agent1)"

is "SQL 400 (bad field): no notification" "$(all_notes sql-400)" 0
is "SQL 404 (unknown agent): no notification" "$(all_notes sql-404)" 0
is "SQL 400 (missing identity): no notification" "$(all_notes sql-identity)" 0
grep -q 'ERROR:.*agent with username .nobody. not found' "$T/session.err" \
    && ok "... (those calls did raise)" \
    || not_ok "... (those calls did raise)" "stderr: $(tr '\n' ' ' <"$T/session.err")"

is "http_intake 201: one notification" "$(payloads http-201 | norm)" \
    "$(expect "$(lead_id N-H)" true agent2)"
is "http_intake 400 (bad field): no notification" "$(all_notes http-400)" 0
is "http_intake 404: no notification" "$(all_notes http-404)" 0
is "http_intake 400 (not JSON): no notification" "$(all_notes http-notjson)" 0
is "the http_intake calls answered 201, 400, 404, 400" \
    "$(awk '/^==/ { on = ($0 ~ /^==http-/); next } on && /^[0-9]+$/' "$T/session.out" | tr '\n' ' ')" \
    "201 400 404 400 "

is "one statement, 3 calls for 3 leads: 3 notifications" "$(count bulk)" 3
is "... one for each lead, each created, with its agent" \
    "$(payloads bulk | norm | sort)" \
    "$(for l in "N-B1 agent1" "N-B2 agent2" "N-B3 agent1"; do
           set -- $l; expect "$(lead_id "$1")" true "$2"; echo; done | sort | sed '/^$/d')"
ids=$(q -c "SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'N-S'")
is "one statement, 3 calls for one lead: the first says created" \
    "$(payloads bulk-same | head -n1 | norm)" "$(expect "$ids" true agent1)"
is "one statement, 3 calls for one lead: 3 notifications (once per call)" \
    "$(count bulk-same)" 3

is "savepoint: the call rolled back to the savepoint is not notified, the next one is" \
    "$(payloads savepoint | norm)" "$(expect "$(lead_id N-SP2)" true agent1)"
is "... and the rolled-back one stored nothing" "$(lead_id N-SP1)" ""

is "enqueueing notifies nothing" "$(all_notes enqueue)" 0
is "process_inbox in a transaction rolled back: no notification" "$(all_notes inbox-rollback)" 0
is "process_inbox over 5 rows (3 good, a 400, a 404): 3 notifications" "$(count inbox)" 3
is "... one per stored row, with its lead id and agent" \
    "$(payloads inbox | norm | sort)" \
    "$(for l in "N-Q1 agent1" "N-Q3 agent2" "N-Q5 agent2"; do
           set -- $l; expect "$(lead_id "$1")" true "$2"; echo; done | sort | sed '/^$/d')"
is "... the ids are the inbox rows' lead_id" \
    "$(payloads inbox | python3 -c 'import json,sys; print(" ".join(sorted(str(json.loads(l)["id"]) for l in sys.stdin if l.strip())))')" \
    "$(q -c "SELECT string_agg(lead_id::text, ' ' ORDER BY lead_id::text) FROM leadintake.inbox WHERE status = 201")"
is "replay of the http 201: one notification (\"created\": false)" \
    "$(payloads replay | norm)" "$(expect "$(lead_id N-H)" false agent2)"
is "no notification on any other channel" \
    "$(grep '^Asynchronous notification' "$T/session.out" | grep -vc '^Asynchronous notification "leadintake_lead" ')" 0
log1=$(q -c "SELECT min(id) FROM leadintake.intake_log WHERE lead_id = $id1")
is "the payloads are the exact text {\"id\": N, \"created\": B, \"agent\": \"U\", \"log_id\": L}" \
    "$(payloads create)" "{\"id\": $id1, \"created\": true, \"agent\": \"agent1\", \"log_id\": $log1}"

# Who sends: preloaded, the notifier worker in its own transactions; else each call's own.
preloaded=$(q -c "SELECT current_setting('shared_preload_libraries') ~ '(^|[ ,])leadintake($|[ ,])'")
mode=$(sed -n 's/^MODE://p' "$T/session.out")
if [ "$preloaded" = t ]; then expected_mode=batched; else expected_mode="per call"; fi
is "notify_status reports mode '$expected_mode' (leadintake preloaded: $preloaded)" "$mode" "$expected_mode"
spid=$(sed -n 's/^SESSION-PID://p' "$T/session.out")
senders=$(sed -n 's/^Asynchronous notification "leadintake_lead" .* received from server process with PID \([0-9]*\)\.$/\1/p' "$T/session.out" | sort -u)
if [ "$expected_mode" = batched ]; then
    # (a worker leaves after 2 s idle and the next call starts another, so maybe several)
    is "batched: no notification came from the calling session, all from a notifier" \
        "$(printf '%s\n' "$senders" | grep -c "^$spid\$") $([ -n "$senders" ] && echo some)" "0 some"
    wp=$(q -c "SELECT coalesce(worker_pid::text, '') FROM leadintake.notify_status()")
    is "... the worker notify_status names, if one runs, is the last of them" \
        "$({ [ -z "$wp" ] || [ "$wp" = "$(printf '%s\n' "$senders" | tail -n1)" ]; } && echo yes || echo "no: $wp, not $senders")" yes
else
    is "per call: every notification came from the calling session itself" "$senders" "$spid"
    is "... and nothing waits: waiting is 0, no worker" \
        "$(q -c "SELECT waiting || ' ' || (worker_pid IS NULL) FROM leadintake.notify_status()")" "0 true"
fi

# Totals: every successful, committed call notified once, nothing else did.
committed=$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE status = 201")
all=$(grep -c '^Asynchronous notification "leadintake_lead"' "$T/session.out")
is "in all: exactly one notification per logged 201" "$all" "$committed"
is "the session ran to the end" "$(grep -c '^==end$' "$T/session.out")" 1
is "no unexpected error in the session (only the 400s and 404s of the test)" \
    "$(grep '^ERROR' "$T/session.err" | grep -Evc 'not found|Invalid fields|Missing required|current transaction is aborted')" 0

# A separate check of the dashboard's way of listening: a plain second psql that LISTENs and
# polls, while this script commits one call.
cat >"$T/listener.sql" <<'EOF'
LISTEN leadintake_lead;
\echo ==listening
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
SELECT pg_sleep(0.2);
\echo ==end
EOF
q -f "$T/listener.sql" >"$T/listener.out" 2>&1 &
lpid=$!
for _ in $(seq 50); do grep -q '^==listening' "$T/listener.out" && break; sleep 0.05; done
q -c "SELECT 1 FROM leadintake_from_dialer('{\"user\":\"agent2\",\"lead_id\":\"N-L\"}'::jsonb)" >/dev/null 2>&1
wait "$lpid"
is "a dashboard in another psql session hears the call once" \
    "$(grep -c '^Asynchronous notification "leadintake_lead"' "$T/listener.out")" 1
is "... with its payload" \
    "$(sed -n 's/^Asynchronous notification "leadintake_lead" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p' "$T/listener.out" | norm)" \
    "$(expect "$(lead_id N-L)" true agent2)"

[ "$N" -eq 47 ] || diag "ran $N assertions, planned 47"
