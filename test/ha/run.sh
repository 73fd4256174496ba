#!/usr/bin/env bash
# test/ha/run.sh (`make test-ha`, as root): the shim in front of a pg_auto_failover formation
# (test/ha/formation.sh) while the primary dies. Under a bounded load of distinct leads it
# kills the primary's keeper, postmaster and backends at once (its host dies), waits for the
# secondary's promotion, brings the old primary back as the new secondary; then checks that
# every request answered 201 or 202 is a lead on the new primary, that nothing got a 500 or a
# 503, that the shim never restarted, and what runs inside the database on each node (the
# NOTIFY worker, pg_cron's drain job, a LISTEN client that reconnects). Prints the failover
# window the clients saw. Kills everything it started, also on failure; the logs are kept in
# test/results/ha/. About two minutes. TAP lines, then "N passed, N failed".
set -uo pipefail
# pg_autoctl reads libpq's environment: a PGHOST left by the caller (scripts/test.sh points it
# at its own cluster) would send the formation's nodes to the wrong server.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/scripts/lib.sh"
. "$here/test/ha/formation.sh"

[ "$(id -u)" = 0 ] || li_die "run as root (PostgreSQL and pg_autoctl run as postgres)"
li_ensure_packages make gcc libc6-dev postgresql-15 postgresql-server-dev-15 postgresql-15-cron \
    libmicrohttpd-dev libpq-dev libgnutls28-dev pkg-config curl python3 \
    postgresql-15-auto-failover pg-auto-failover-cli || li_die "packages"
li_build || li_die "the build failed"

HA_PORTS=${LEADINTAKE_HA_PORTS:-"55420 55421 55422"}
HTTP_PORT=${LEADINTAKE_HA_HTTP_PORT:-55423}
RATE=${LEADINTAKE_HA_RATE:-20}          # requests a second
DB_WAIT=${LEADINTAKE_HA_DB_WAIT:-30}    # the shim's --db-wait, longer than a failover here
for p in $HA_PORTS $HTTP_PORT; do  # listening (a TIME-WAIT left by a last run is no matter)
    li_tcp_sockets "$p" 0A | grep -q . && li_die "port $p is in use (LEADINTAKE_HA_PORTS, LEADINTAKE_HA_HTTP_PORT)"
done
read -r _ P_N1 P_N2 <<<"$HA_PORTS"
HA_DIR=$(mktemp -d /tmp/leadintake-ha.XXXXXX)
chown postgres: "$HA_DIR"; chmod 700 "$HA_DIR"
RESULTS=$here/test/results/ha
rm -rf "$RESULTS"; mkdir -p "$RESULTS"
SHIM=$here/shim/leadintake-shim
KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
shim_pid="" load_pid="" listen_pid=""
pass=0 fail=0 n=0

ok() { n=$((n + 1)); if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi; }
check() { local d=$1; shift; "$@" >"$HA_DIR/check.out" 2>&1; local rc=$?; ok $rc "$d"; [ $rc = 0 ] || sed 's/^/#   /' "$HA_DIR/check.out"; return $rc; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }  # secs LATER EARLIER
port_of() { _ha_port_of "$1"; }

cleanup() {
    trap - EXIT INT TERM
    for p in $load_pid $listen_pid $shim_pid; do kill "$p" 2>/dev/null; done
    [ -n "$shim_pid" ] && wait "$shim_pid" 2>/dev/null
    ha_destroy
    for f in "$HA_DIR"/*.log "$HA_DIR"/*.txt "$HA_DIR"/node*/log/*.log; do
        [ -f "$f" ] && cp "$f" "$RESULTS/$(echo "${f#"$HA_DIR"/}" | tr / _)"
    done
    rm -rf "$HA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- the formation, the schema's data, the shim's role, the drain job
t=$(now)
if ! ha_create; then
    tail -n 30 "$HA_DIR/create.log"; ok 1 "pg_auto_failover formation: monitor, primary, secondary"
    echo "$pass passed, $fail failed"; exit 1
fi
ok 0 "pg_auto_failover formation: monitor, primary node1, secondary node2 ($(secs "$(now)" "$t") s)"
check "the primary replicates synchronously (synchronous_standby_names)" \
    test -n "$(ha_psql "$P_N1" -c 'SHOW synchronous_standby_names')"
setup_sql() {
    ha_psql "$P_N1" -c "$(li_shim_role_sql crm_shim)" \
        -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES ('agent1', 'Agent One', '1001')" \
        -c "SELECT cron.schedule('leadintake-inbox', '* * * * *', \$\$CALL leadintake.drain_inbox()\$\$)"
}
check "the shim's role, an agent and the inbox drain job (pg_cron), once, on the primary" setup_sql
URI="$(ha_uri)&user=crm_shim&connect_timeout=2"
echo "# the shim's --db: $URI"
check "the formation's URI names both nodes, read-write only" \
    grep -q "127.0.0.1:$P_N1,127.0.0.1:$P_N2/.*target_session_attrs=read-write" <<<"$URI"

# -- the shim, on the formation's URI. During a failover every request waits: the load here
#    comes from one address, so its cap (64) must hold RATE x the window (README).
printf 'ha:%s\n' "$KEY" >"$HA_DIR/keys"
install -d -o postgres -m 700 "$HA_DIR/spool"
chown postgres "$HA_DIR/keys"; chmod 600 "$HA_DIR/keys"
(cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$SHIM" --db "$URI" \
    --listen "127.0.0.1:$HTTP_PORT" --api-key-file "$HA_DIR/keys" --db-wait "$DB_WAIT" \
    --spool-dir "$HA_DIR/spool" --max-connections-per-ip 256 >"$HA_DIR/shim.log" 2>&1) &
shim_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.2; done
check "the shim answers /healthz" curl -fs "http://127.0.0.1:$HTTP_PORT/healthz"

# -- the load, and the primary's host dies
python3 "$here/test/ha/load.py" "http://127.0.0.1:$HTTP_PORT/api/leads/from-dialer/" "$KEY" "$RATE" \
    "$HA_DIR/stop" "$HA_DIR/load.txt" 2>"$HA_DIR/load.log" &
load_pid=$!
sleep 8
check "before the failure node1 is the primary" test "$(ha_primary)" = node1
t_kill=$(now)
ha_kill_node node1
echo "# killed node1 (keeper, postmaster, backends: SIGKILL) at $(date -u +%T.%N -d "@$t_kill" | cut -c1-12)"

t_promoted=
for _ in $(seq 600); do
    [ "$(ha_primary)" = node2 ] && { t_promoted=$(now); break; }
    sleep 0.1
done
check "node2 is promoted" test -n "$t_promoted"
[ -n "$t_promoted" ] && echo "# node2 accepts writes $(secs "$t_promoted" "$t_kill") s after the kill"
# An application's row in the inbox, for the drain job on the new primary.
ha_psql "$P_N2" -c "INSERT INTO leadintake.inbox (payload) VALUES ('{\"user\": \"agent1\", \"lead_id\": \"HAINBOX\", \"phone_number\": \"07700 999999\"}')"

# -- the old primary comes back, as the secondary (pg_autoctl rewinds it)
ha_run node1
t=$(now)
check "node1 rejoins as the secondary of node2" ha_wait_states node2 node1 120
echo "# node1 back as secondary $(secs "$(now)" "$t") s after its restart"
check "node2 replicates synchronously to node1 again" \
    test -n "$(ha_psql "$P_N2" -c 'SHOW synchronous_standby_names')"

# A LISTEN client: its connection died with node1; it connects again with the formation's
# URI (read-write: the primary, where NOTIFY is sent) and LISTENs again.
(cd / && runuser -u postgres -- "$HA_PG_BIN/psql" -X "$(ha_uri)" \
    -c 'LISTEN leadintake_lead' -c 'SELECT pg_sleep(4)' >"$HA_DIR/listen.out" 2>&1) &
listen_pid=$!
sleep 1.5
curl -s -o /dev/null -H "X-Dialer-Api-Key: $KEY" -H 'Content-Type: application/json' \
    -d '{"user": "agent1", "lead_id": "HALISTEN", "phone_number": "07700 888888"}' \
    "http://127.0.0.1:$HTTP_PORT/api/leads/from-dialer/"
wait "$listen_pid"; listen_pid=
check "a LISTEN client reconnected with the formation's URI gets the new primary's NOTIFY" \
    grep -q 'Asynchronous notification "leadintake_lead"' "$HA_DIR/listen.out"

sleep 3
touch "$HA_DIR/stop"
wait "$load_pid"; load_pid=
# The spool (if a request went there) empties into the new primary.
for _ in $(seq 120); do
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep -q '^leadintake_spool_depth 0$' && break
    sleep 0.5
done

# -- what the clients saw
ha_psql "$P_N2" -c "SELECT dialer_lead_id FROM leadintake.leads WHERE dialer_lead_id LIKE 'HA0%'" \
    >"$HA_DIR/stored.txt"
python3 - "$HA_DIR/load.txt" "$HA_DIR/stored.txt" "$t_kill" "$HA_DIR/results.txt" <<'PY'
import sys
load, stored, t_kill, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
rows = [l.split(None, 4) for l in open(load)]
stored = set(l.strip() for l in open(stored) if l.strip())
by = {}
for r in rows:
    by[int(r[3])] = by.get(int(r[3]), 0) + 1
ok = [r for r in rows if r[3] in ("201", "202")]
missing = [r[0] for r in ok if r[0] not in stored]
waited = [r for r in rows if float(r[2]) - float(r[1]) > 0.5]
lines = ["requests %d: %s" % (len(rows), ", ".join("%d x %s" % (v, k if k else "no answer")
                                              for k, v in sorted(by.items())))]
if waited:
    first = min(float(r[1]) for r in waited)
    last = max(float(r[2]) for r in waited)
    lines.append("waited (over 0.5 s): %d requests; the first sent %+.1f s from the kill, the last "
                 "answered %+.1f s from it: a window of %.1f s; longest wait %.1f s"
                 % (len(waited), first - t_kill, last - t_kill, last - first,
                    max(float(r[2]) - float(r[1]) for r in waited)))
else:
    lines.append("waited (over 0.5 s): none")
lines.append("201/202 not on the new primary: %d %s" % (len(missing), " ".join(missing[:10])))
lines.append("count_500=%d count_503=%d count_none=%d count_missing=%d count_ok=%d"
             % (by.get(500, 0), by.get(503, 0), by.get(0, 0), len(missing), len(ok)))
open(out, "w").write("\n".join(lines) + "\n")
PY
sed 's/^/# /' "$HA_DIR/results.txt"
res=$(tail -n 1 "$HA_DIR/results.txt")
val() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$res"; }
check "every request was answered" test "$(val count_none)" = 0
check "no 500" test "$(val count_500)" = 0
check "no 503 (--db-wait $DB_WAIT s is longer than the failover)" test "$(val count_503)" = 0
check "every request answered 201 or 202 ($(val count_ok)) is a lead on the new primary" \
    test "$(val count_missing)" = 0 -a "$(val count_ok)" -gt 0
check "the shim never restarted (same process, alive)" kill -0 "$shim_pid"
check "the shim's log has no 500" bash -c "! grep -q '\"status\":500' '$HA_DIR/shim.log'"

# -- what runs inside the database, on each node
bt() { ha_psql "$1" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = '$2'"; }
check "on the standby (node1): no pg_cron launcher, so no job runs there" test "$(bt "$P_N1" 'pg_cron launcher')" = 0
check "on the standby (node1): no leadintake notifier" test "$(bt "$P_N1" 'leadintake notifier')" = 0
check "on the new primary (node2): the pg_cron launcher started at promotion" test "$(bt "$P_N2" 'pg_cron launcher')" = 1
drained=
for _ in $(seq 150); do
    [ "$(ha_psql "$P_N2" -c "SELECT status FROM leadintake.inbox WHERE payload->>'lead_id' = 'HAINBOX'")" = 201 ] \
        && { drained=$(now); break; }
    sleep 0.5
done
check "the drain job, scheduled on the old primary, processed an inbox row on the new one" test -n "$drained" ||
    ha_psql "$P_N2" -c 'SELECT * FROM cron.job_run_details ORDER BY runid' | sed 's/^/#   /'

check "pg_cron ran it on node2 only (cron.job_run_details on the new primary)" \
    test "$(ha_psql "$P_N2" -c "SELECT count(*) FROM cron.job_run_details WHERE start_time > to_timestamp($t_kill)")" -ge 1

echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
