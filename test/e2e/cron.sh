#!/usr/bin/env bash
# test/e2e/cron.sh: the inbox drained by pg_cron alone (issue 4). Prints TAP on stdout.
#
# Starts its OWN throwaway cluster (scripts/lib.sh) with shared_preload_libraries = pg_cron
# and cron.database_name = the test database (pg_cron connects to it over libpq, cron.host
# localhost by default, trust authentication), creates pg_cron and leadintake, an agent,
# runs the README's scheduling statement (read from README.md), enqueues rows and waits, with
# no other caller, until they are processed; then checks their outcome, that the job keeps
# draining rows enqueued while it runs, and unschedules it. The cluster is removed on exit.
#
# Debian's pg_cron 1.4 schedules by the minute: the first run starts at the next minute
# boundary, so this test takes from a few seconds to a minute (bounded: 130 s for the first
# rows). Run by scripts/test.sh or by hand: `bash test/e2e/cron.sh` (as root, like the
# suite, with the extension installed).
# A failed run of the job (cron.job_run_details) ends the wait at once, with the run's error
# and the server log as diagnostics.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
TAP_IS_ONE_LINE=1   # is: multi-line values on one line, newlines as '|'

PLAN=24
DB=leadintake_cron   # q's database
FIRST_WAIT=130
SECOND_WAIT=75

e2e_tmp cron
e2e_on_exit

echo "1..$PLAN"

# always a cluster of its own: pg_cron must be preloaded (the database is created below)
e2e_own_cluster "" -c shared_preload_libraries=pg_cron -c cron.database_name=$DB
ok "a throwaway cluster with shared_preload_libraries = pg_cron started on port $port"

is "pg_cron is preloaded, cron.database_name is $DB" \
    "$(qpg -c 'SHOW shared_preload_libraries' -c 'SHOW cron.database_name')" \
    "pg_cron
$DB"
qpg -c "CREATE DATABASE $DB" >/dev/null 2>"$T/err" \
    || bail "CREATE DATABASE: $(cat "$T/err")"
if q -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION leadintake" \
     -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
         VALUES ('agent1', 'Agent One', '1001'), ('agent2', 'Agent Two', '1002')" \
     >/dev/null 2>"$T/err"; then
    ok "extensions pg_cron and leadintake created, agents seeded"
else
    not_ok "extensions pg_cron and leadintake created, agents seeded" "$(cat "$T/err")"
    bail "no extensions"
fi
diag "pg_cron $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'"), leadintake $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'leadintake'")"

# The README's statement, as documented.
stmt=$(grep -E "^[[:space:]]+SELECT cron\.schedule\('leadintake-inbox'" "$ROOT/README.md" | head -n1 \
       | sed 's/^[[:space:]]*//')
is "README.md shows the statement that schedules the inbox job" "$stmt" \
    "SELECT cron.schedule('leadintake-inbox', '* * * * *', \$\$CALL leadintake.drain_inbox()\$\$);"
[ -n "$stmt" ] || stmt="SELECT cron.schedule('leadintake-inbox', '* * * * *', \$\$CALL leadintake.drain_inbox()\$\$);"
jobid=$(q -c "$stmt" 2>"$T/err")
if [[ $jobid =~ ^[0-9]+$ ]]; then ok "the README's statement schedules job $jobid"
else not_ok "the README's statement schedules a job" "$jobid $(cat "$T/err")"; fi
is "cron.job: every minute, CALL leadintake.drain_inbox(), in $DB, active" \
    "$(q -c "SELECT jobname, schedule, command, database, active FROM cron.job")" \
    "leadintake-inbox|* * * * *|CALL leadintake.drain_inbox()|$DB|t"

# Enqueue right away, as an application would; then wait, calling nothing.
t0=$(date +%s)
q >/dev/null 2>"$T/err" <<'EOF' || bail "enqueue: $(cat "$T/err")"
INSERT INTO leadintake.inbox (payload) VALUES
    ('{"user":"agent1","lead_id":"CRON-1","first_name":"Carl","last_name":"Cron","phone_number":"07700 900501"}'),
    ('{"user":"agent1","lead_id":"CRON-1","comments":"called back"}'),
    ('{"user":"agent1","lead_id":"CRON-3","email":"not an address"}'),
    ('{"user":"nobody","lead_id":"CRON-4"}'),
    ('{"dialer_user_id":"1002","lead_id":"CRON-5","full_name":"Cora Cron","api_key":"k","pass":"p"}');
EOF
diag "5 rows enqueued at $(date -u +%H:%M:%S); pg_cron starts the job at the next minute"

# Until every row is processed, a run of the job fails, or FIRST_WAIT seconds.
pending=5
failed_runs=0
while :; do
    pending=$(q -c "SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NULL" 2>/dev/null)
    [ "$pending" = 0 ] && break
    failed_runs=$(q -c "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'" 2>/dev/null)
    [ "${failed_runs:-0}" -gt 0 ] && break
    [ $(($(date +%s) - t0)) -ge $FIRST_WAIT ] && break
    sleep 2
done
waited=$(($(date +%s) - t0))
if [ "$pending" = 0 ]; then
    ok "pg_cron alone processed the 5 rows (after ${waited} s)"
else
    not_ok "pg_cron alone processed the 5 rows within $FIRST_WAIT s" \
        "$pending still pending after ${waited} s, $failed_runs failed run(s)"
    diag "cron.job_run_details:"
    q -c "SELECT runid, status, return_message, start_time FROM cron.job_run_details ORDER BY runid" 2>&1 | sed 's/^/#   /'
    diag "server log (tail):"
    tail -n 20 "$OWN_CLUSTER/log" | sed 's/^/#   /'
fi

is "statuses in order: 201, 201, 400, 404, 201" \
    "$(q -c "SELECT string_agg(coalesce(status::text, 'pending'), ' ' ORDER BY id) FROM leadintake.inbox")" \
    "201 201 400 404 201"
is "each 201 row names its lead; the update names the lead of the first row" \
    "$(q -c "SELECT string_agg(coalesce(l.dialer_lead_id, '-'), ' ' ORDER BY i.id)
               FROM leadintake.inbox i LEFT JOIN leadintake.leads l ON l.id = i.lead_id")" \
    "CRON-1 CRON-1 - - CRON-5"
is "the failed rows record their error" \
    "$(q -c "SELECT string_agg(split_part(error, ' (', 1), ' | ' ORDER BY id)
               FROM leadintake.inbox WHERE status <> 201")" \
    "Invalid fields: email | Agent with username 'nobody' not found"
is "every row has processed_at" \
    "$(q -c "SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NOT NULL")" 5
is "the leads: CRON-1 updated (comments kept with the name), CRON-5 for agent2" \
    "$(q -c "SELECT l.dialer_lead_id || ':' || l.full_name || ':' || coalesce(l.comments, '-') || ':' || a.username
               FROM leadintake.leads l JOIN leadintake.agents a ON a.id = l.assigned_agent_id
              ORDER BY l.dialer_lead_id")" \
    "CRON-1:Carl Cron:called back:agent1
CRON-5:Cora Cron:-:agent2"
is "intake_log: 5 rows with source inbox" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE source = 'inbox'")" 5
is "intake_log: no other source (nothing else called the entries)" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE source <> 'inbox'")" 0
is "no secret stored" \
    "$(q -c "SELECT count(*) FROM leadintake.inbox WHERE payload ?| ARRAY['api_key', 'pass']")" 0
runs=$(q -c "SELECT count(*) FROM cron.job_run_details
              WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = 'leadintake-inbox')
                AND command = 'CALL leadintake.drain_inbox()'
                AND status IN ('starting', 'running', 'succeeded')")
if [ "${runs:-0}" -ge 1 ]; then ok "cron.job_run_details: the job ran ($runs run(s))"
else
    not_ok "cron.job_run_details: the job ran"
    q -c "SELECT runid, status, return_message FROM cron.job_run_details" 2>&1 | sed 's/^/#   /'
fi
is "no job run failed" \
    "$(q -c "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'")" 0

# The job keeps draining within its minute: rows enqueued now wait seconds, not a minute.
t1=$(date +%s)
q -c "INSERT INTO leadintake.inbox (payload) VALUES
          ('{\"user\":\"agent2\",\"lead_id\":\"CRON-6\"}'),
          ('{\"dialer_user_id\":\"1001\",\"lead_id\":\"CRON-1\",\"notes\":\"third call\"}')" \
    >/dev/null 2>"$T/err" || bail "enqueue: $(cat "$T/err")"
while :; do
    pending=$(q -c "SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NULL" 2>/dev/null)
    [ "$pending" = 0 ] && break
    failed_runs=$(q -c "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'" 2>/dev/null)
    [ "${failed_runs:-0}" -gt 0 ] && break      # the job fails: no point in waiting
    [ $(($(date +%s) - t1)) -ge $SECOND_WAIT ] && break
    sleep 1
done
waited2=$(($(date +%s) - t1))
if [ "$pending" = 0 ]; then ok "2 more rows enqueued later: processed by the job (after ${waited2} s)"
else not_ok "2 more rows enqueued later: processed within $SECOND_WAIT s" "$pending still pending"; fi
is "... 201 and 201, the second an update of CRON-1" \
    "$(q -c "SELECT string_agg(i.status || ':' || l.dialer_lead_id, ' ' ORDER BY i.id)
               FROM leadintake.inbox i JOIN leadintake.leads l ON l.id = i.lead_id
              WHERE i.id > 5")" \
    "201:CRON-6 201:CRON-1"
is "... CRON-1 has the notes of the third call" \
    "$(q -c "SELECT notes FROM leadintake.leads WHERE dialer_lead_id = 'CRON-1'")" "third call"
is "intake_log: 7 rows, all with source inbox" \
    "$(q -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE source = 'inbox') FROM leadintake.intake_log")" \
    "7 7"
is "cron.unschedule('leadintake-inbox')" \
    "$(q -c "SELECT cron.unschedule('leadintake-inbox')")" "t"
is "cron.job is empty again" "$(q -c "SELECT count(*) FROM cron.job")" 0
qpg -c "SELECT 1" >/dev/null 2>&1 \
    && ok "the cluster still answers (it is removed on exit)" \
    || not_ok "the cluster still answers"

[ "$N" -eq "$PLAN" ] || diag "ran $N assertions, planned $PLAN"
