#!/usr/bin/env bash
# shellcheck disable=SC2119  # lib.sh functions take optional arguments of their own
# scripts/demo.sh: try leadintake on a throwaway database (README: `bash scripts/demo.sh`).
#
# Installs the Debian packages it needs, builds and installs the extension (and the shim),
# starts a throwaway PostgreSQL 15 cluster in a temporary directory, creates the database
# `leadintake` with the extension and three agents (agent1..agent3, dialer user ids
# 1001..1003), the shim's login role `crm_shim` as docs/shim.md sets it up (scripts/lib.sh
# li_shim_role_sql), writes a demo API key file and, when shim/leadintake-shim was built,
# starts the HTTP shim as crm_shim, with --allow-query-key (on the demo only: a key in a URL
# is known to every agent; docs/vicidial.md) and the console (a generated console key;
# docs/console.md). It prints how to send a lead with psql, with
# curl and as a ready VICIdial Dispo Call URL (scripts/lib.sh li_vicidial_url), then waits: Ctrl-C (or SIGTERM) stops the shim and the cluster and deletes the temporary
# directory.
#
# Environment:
#   LEADINTAKE_DEMO_PORT       PostgreSQL port (default 5433)
#   LEADINTAKE_DEMO_HTTP_PORT  the shim's port on 127.0.0.1 (default 8080)
#   LEADINTAKE_DEMO_CONSOLE_PORT  the console's port on 127.0.0.1 (default 8081)
# Must run as root (it installs packages, and runs the server as the user postgres).

set -uo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LI_ROOT" || exit 1

PG_PORT=${LEADINTAKE_DEMO_PORT:-5433}
HTTP_PORT=${LEADINTAKE_DEMO_HTTP_PORT:-8080}
CONSOLE_PORT=${LEADINTAKE_DEMO_CONSOLE_PORT:-8081}
WORK=""
SHIM_PID=""
SLEEP_PID=""
STOPPING=0

wait_forever() {
    while :; do
        sleep 3600 &
        SLEEP_PID=$!
        wait "$SLEEP_PID"
    done
}

stop() {
    [ "$STOPPING" = 1 ] && return
    STOPPING=1
    trap - EXIT INT TERM
    [ -n "$SLEEP_PID" ] && kill "$SLEEP_PID" 2>/dev/null
    if [ -n "$SHIM_PID" ] && kill -0 "$SHIM_PID" 2>/dev/null; then
        echo "stopping the shim (pid $SHIM_PID)"
        kill -TERM "$SHIM_PID" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$SHIM_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SHIM_PID" 2>/dev/null
        wait "$SHIM_PID" 2>/dev/null
    fi
    if [ -n "$WORK" ]; then
        echo "stopping the cluster and removing $WORK"
        li_remove_cluster "$WORK/pg"
        rm -rf -- "$WORK"
    fi
}
trap stop EXIT
trap 'echo; stop; exit 0' INT TERM

[ "$(id -u)" -eq 0 ] || li_die "run as root (it installs packages and runs PostgreSQL as postgres)"

echo "== packages"
li_ensure_packages || li_die "could not install the packages"

echo "== build"
li_build
case $? in
    0) ;;
    2) li_log "warning: the shim did not build (see above): SQL only" ;;
    *) li_die "the extension did not build (see above)" ;;
esac

echo "== cluster"
li_port_in_use "$PG_PORT" \
    && li_die "port $PG_PORT is in use: set LEADINTAKE_DEMO_PORT to a free port"
WORK=$(mktemp -d /tmp/leadintake-demo.XXXXXX) || li_die "mktemp failed"
chmod 755 "$WORK"
# Preloaded, as in production: lead notifications are sent in batches (README, "Notifications").
li_start_cluster "$WORK/pg" "$PG_PORT" -c shared_preload_libraries=leadintake \
    || li_die "could not start PostgreSQL on port $PG_PORT"
SOCK=$(li_sockdir "$WORK/pg")

li_psql "$WORK/pg" "$PG_PORT" -d postgres -c 'CREATE DATABASE leadintake' \
    || li_die "CREATE DATABASE failed"
li_psql "$WORK/pg" "$PG_PORT" -d leadintake <<'SQL' || li_die "setting up the database failed"
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'),
    ('agent2', 'Agent Two', '1002'),
    ('agent3', 'Agent Three', '1003');
SQL
# The shim's role: leadintake_shim only, and its parameter (the body) never in the server log.
li_shim_role_sql crm_shim | li_psql "$WORK/pg" "$PG_PORT" -d leadintake \
    || li_die "creating the shim's role crm_shim failed"

KEY_FILE="$WORK/api-keys"
KEY=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
(umask 077 && printf 'demo:%s\n' "$KEY" >"$KEY_FILE")
chmod 600 "$KEY_FILE"
# the console's key: a file of its own (a dialer key never opens the console)
CONSOLE_KEY_FILE="$WORK/console-keys"
CONSOLE_KEY=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
(umask 077 && printf 'demo-admin:%s\n' "$CONSOLE_KEY" >"$CONSOLE_KEY_FILE")

CONNINFO="host=$SOCK port=$PG_PORT dbname=leadintake user=postgres"
SHIM_CONNINFO="host=$SOCK port=$PG_PORT dbname=leadintake user=crm_shim"
SHIM=$LI_ROOT/shim/leadintake-shim
URL="http://127.0.0.1:$HTTP_PORT/api/leads/from-dialer/"
if [ -x "$SHIM" ]; then
    if li_port_in_use "$HTTP_PORT"; then
        li_log "warning: port $HTTP_PORT is in use (set LEADINTAKE_DEMO_HTTP_PORT): shim not started"
    elif li_port_in_use "$CONSOLE_PORT"; then
        li_log "warning: port $CONSOLE_PORT is in use (set LEADINTAKE_DEMO_CONSOLE_PORT): shim not started"
    else
        echo "== shim"
        # --allow-query-key for the demo's VICIdial URL only: see the warning printed below
        "$SHIM" --db "$SHIM_CONNINFO" --listen "127.0.0.1:$HTTP_PORT" --api-key-file "$KEY_FILE" \
            --allow-query-key --spool-dir "$WORK/spool" \
            --console-key-file "$CONSOLE_KEY_FILE" --console-listen "127.0.0.1:$CONSOLE_PORT" &
        SHIM_PID=$!
        up=0
        for _ in $(seq 1 100); do
            kill -0 "$SHIM_PID" 2>/dev/null || break
            if li_port_in_use "$HTTP_PORT"; then up=1; break; fi
            sleep 0.1
        done
        if [ "$up" != 1 ]; then
            li_log "warning: the shim did not start listening on 127.0.0.1:$HTTP_PORT: SQL only"
            kill -TERM "$SHIM_PID" 2>/dev/null
            wait "$SHIM_PID" 2>/dev/null
            SHIM_PID=""
        fi
    fi
else
    echo "(shim/leadintake-shim not built: SQL only)"
fi

cat <<EOF

leadintake demo is running.
  PostgreSQL $PG_PORT, socket directory $SOCK, database leadintake (user postgres)
  agents: agent1 'Agent One' (1001), agent2 'Agent Two' (1002), agent3 'Agent Three' (1003)

Send a lead from SQL:
  psql "$CONNINFO" -c "SELECT leadintake_from_dialer('{\"user\":\"agent1\",\"lead_id\":\"DEMO1\",\"first_name\":\"John\",\"last_name\":\"Smith\",\"phone_number\":\"07700 900123\"}'::jsonb);"

See what was stored:
  psql "$CONNINFO" -c "SELECT id, full_name, phone_e164, status, dialer_lead_id FROM leadintake.leads" -c "SELECT id, source, status, error FROM leadintake.intake_log"
EOF

if [ -n "$SHIM_PID" ]; then
    cat <<EOF

HTTP shim: $URL   (database role crm_shim)
  API key (header X-Dialer-Api-Key): $KEY   (key file $KEY_FILE, name 'demo')

Create a lead over HTTP:
  curl -sS -X POST '$URL' -H 'X-Dialer-Api-Key: $KEY' -H 'Content-Type: application/json' -d '{"user":"agent2","lead_id":"DEMO2","first_name":"Jane","last_name":"Doe","phone_number":"07700 900456"}'

The same as a VICIdial web form / dispo URL would send it (GET with query parameters):
  curl -sS -H 'X-Dialer-Api-Key: $KEY' '$URL?user=agent3&lead_id=DEMO3&first_name=Ann&last_name=Lee&phone_number=07700+900789'

VICIdial Dispo Call URL for this demo (paste it in the campaign's Dispo Call URL; VICIdial
fills in every --A--field--B--; the shim runs with --allow-query-key for it):
  $(li_vicidial_url "$URL" "$KEY")
RISK: a key in a URL is known to every agent (browsers, VICIdial's and proxies' logs): docs/vicidial.md.

Console: http://127.0.0.1:$CONSOLE_PORT/console/   (sign in with the console key below)
  console key: $CONSOLE_KEY   (key file $CONSOLE_KEY_FILE, name 'demo-admin')

Health: curl -sS http://127.0.0.1:$HTTP_PORT/healthz    Metrics: curl -sS http://127.0.0.1:$HTTP_PORT/metrics
While PostgreSQL is away, requests wait up to 10 s (--db-wait), then go to the spool in
$WORK/spool (answered 202, sent when it is back).
The shim logs one JSON line per request below.
EOF
fi

echo
echo "Press Ctrl-C to stop (the database and everything in $WORK are deleted)."
if [ -n "$SHIM_PID" ]; then
    wait "$SHIM_PID"
    rc=$?
    if [ "$STOPPING" != 1 ]; then
        li_log "the shim exited (status $rc); PostgreSQL still runs. Ctrl-C to stop."
        SHIM_PID=""
        wait_forever
    fi
else
    wait_forever
fi
