#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name> are set by shim_started (printf -v)
# test/e2e/faults.sh: faults under load, with nothing lost. Prints TAP.
#
# A load generator (python3, standard library; 8 clients) creates leads with unique lead
# ids against the shim and retries each one on 503 and on connection errors (both are
# safe to retry: the upsert is by lead id) until it gets its 201. While it runs, a fault:
#   1. the database restarts (pg_ctl restart, fast);
#   2. the shim's database sessions are killed (pg_terminate_backend), five times;
#   3. the shim gets SIGTERM (a new shim takes over the port; clients reconnect);
#   4. the database turns read-only (ALTER SYSTEM default_transaction_read_only, reload):
#      every request is answered 503 with Retry-After, never 500, until it is writable again;
#   5. slow clients take every connection (--max-connections) and send nothing more:
#      --timeout frees them, and a normal request then gets its 201. Clients that trickle a
#      byte every 0.5 s (headers, body, a keep-alive connection's next request) are closed
#      by the whole-request deadline (--timeout) while a slow but timely client, an idle
#      keep-alive connection (closed by the idle limit) and a normal request are served;
#   6. the disk is full: a throwaway cluster of its own, its server loaded with the
#      LD_PRELOAD library test/fault/enospc.c, which makes every write that would grow a
#      relation file under base/ fail with ENOSPC while a flag file exists (the WAL is left
#      alone): PostgreSQL raises 53100, every request is 201 (its rows fitted in pages already
#      there) or 503 with Retry-After, never 500; the 503s stored nothing; with the flag
#      gone, the same shim stores them.
# After each, row by row: every 201 a client received is a stored lead (the lead id it
# answered, with that dialer lead id), every lead was eventually stored, none was answered
# 500. Loopback only; every loop is bounded in time. Phase 6 builds its library with gcc.
#
# Run by scripts/test.sh (LEADINTAKE_TEST_DB, LEADINTAKE_TEST_CONNINFO, LEADINTAKE_SHIM,
# LEADINTAKE_CLUSTER_DIR, LEADINTAKE_TEST_TMP, LEADINTAKE_HTTP_PORTS, PG* variables) or by
# hand with nothing set: it then starts a throwaway cluster of its own (it restarts the
# cluster and changes its settings: never point it at a database you care about).

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp faults

DF_CLUSTER=""
LOAD_PID=""

# ---------------------------------------------------------------- the cluster and database
# it restarts the database: scripts/test.sh's cluster only when it says which one it is
[ -n "${LEADINTAKE_CLUSTER_DIR:-}" ] || unset LEADINTAKE_TEST_DB
e2e_database e2e_faults
CLUSTER=${OWN_CLUSTER:-$LEADINTAKE_CLUSTER_DIR}
# Our own sessions must be able to write while the database is read-only (phase 4).
Q_OPTIONS="-c default_transaction_read_only=off"
db_up() { qpg -c 'SELECT 1' >/dev/null 2>&1; }

faults_cleanup() {
    [ -n "$LOAD_PID" ] && { touch "$T/stop"; stop_pid "$LOAD_PID"; }
    db_up || li_cluster_ctl "$CLUSTER" start >/dev/null 2>&1
    qpg -c "ALTER SYSTEM RESET default_transaction_read_only" -c "SELECT pg_reload_conf()" \
        >/dev/null 2>&1
    [ -n "$DF_CLUSTER" ] && li_remove_cluster "$DF_CLUSTER" >/dev/null 2>&1
}
e2e_on_exit faults_cleanup

q -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
      VALUES ('agent1', 'Agent One', '1001')" >/dev/null || bail "cannot seed"

e2e_key faults
# Each shim's stdout (one JSON line per request) is $T/NAME.out (start_shim). --db-wait 0: a
# call the database cannot serve is answered 503 at once (nolost.sh: the wait).
SHIM_ARGS=(--db-wait 0)

# A port of LEADINTAKE_HTTP_PORTS ("FIRST LAST") free now, for a shim that must come back
# on the same address.
read -r PFIRST PLAST <<<"${LEADINTAKE_HTTP_PORTS:-18080 18199}"
FIXED_PORT=$(li_free_port "$PFIRST" "$PLAST") || { echo "Bail out! no free HTTP port"; exit 1; }

# ---------------------------------------------------------------- the load generator
cat >"$T/load.py" <<'EOF'
"""load.py URL KEY PREFIX OUT STOPFILE [close]: 8 clients create leads PREFIX-<n> (each
with a phone of its own: a shared phone would merge two leads, by the contract) until
STOPFILE exists (at most 60 s), each retried on 503 and connection errors until its 201
(for at most 30 s). One line per lead in OUT: lead_id status lead_pk attempts n503 nconn."""
import http.client, json, os, sys, threading, time, urllib.parse
url, key, prefix, out, stopfile = sys.argv[1:6]
close = len(sys.argv) > 6 and sys.argv[6] == "close"
u = urllib.parse.urlsplit(url)
lock = threading.Lock()
counter = [0]
results = []
start = time.time()

def next_id():
    with lock:
        counter[0] += 1
        return counter[0]

def client(tid):
    c = None
    while not os.path.exists(stopfile) and time.time() - start < 60:
        n = next_id()
        lead = "%s-%d" % (prefix, n)
        body = json.dumps({"user": "agent1", "lead_id": lead, "first_name": "Fault",
                           "last_name": prefix, "phone_number": "079%s%07d" % (prefix[-1], n)})
        hdrs = {"X-Dialer-Api-Key": key, "Content-Type": "application/json"}
        if close:
            hdrs["Connection"] = "close"
        status, pk, attempts, n503, nconn = None, "", 0, 0, 0
        t0 = time.time()
        while time.time() - t0 < 30:
            attempts += 1
            try:
                if c is None:
                    c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
                c.request("POST", "/api/leads/from-dialer/", body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                if close or r.getheader("Connection", "").lower() == "close":
                    c.close(); c = None
            except Exception:
                if c is not None:
                    c.close()
                c = None
                nconn += 1
                time.sleep(0.05)
                continue
            if r.status == 503:
                n503 += 1
                time.sleep(0.1)
                continue
            status = r.status
            if status == 201:
                pk = json.loads(data)["lead"]["id"]
            break
        with lock:
            results.append("%s\t%s\t%s\t%d\t%d\t%d" % (lead, status if status else "gaveup",
                                                      pk if pk != "" else "\\N", attempts, n503, nconn))
        time.sleep(0.005)

threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
with open(out, "w") as f:
    f.write("\n".join(results) + ("\n" if results else ""))
EOF

q >/dev/null <<'EOF'
DROP TABLE IF EXISTS public.fault_results;
CREATE TABLE public.fault_results (phase text, dialer_lead_id text, status text, lead_pk bigint,
                                   attempts int, n503 int, nconn int);
EOF

# load_start PHASE URL [close]; load_stop: the generator in the background.
load_start() {
    rm -f "$T/stop" "$T/load-$1.txt"
    python3 "$T/load.py" "$2" "$KEY" "F$1" "$T/load-$1.txt" "$T/stop" "${3:-}" \
        >"$T/load-$1.err" 2>&1 &
    LOAD_PID=$!
}
load_stop() {
    touch "$T/stop"
    for _ in $(seq 1 900); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$LOAD_PID" 2>/dev/null
    LOAD_PID=""
}

# check_phase PHASE WHAT: the row-by-row checks of the results of PHASE.
check_phase() {
    local phase=$1 what=$2 total faults missing
    if [ ! -s "$T/load-$phase.txt" ]; then
        not_ok "$what: the load ran" "$(tail -n 5 "$T/load-$phase.err")"
        return
    fi
    sed "s/^/$phase\t/" "$T/load-$phase.txt" >"$T/load-$phase.copy"
    q -c "\\copy public.fault_results FROM '$T/load-$phase.copy'" >/dev/null
    read -r total faults <<<"$(q -F ' ' -c "SELECT count(*), sum(n503 + nconn) FROM public.fault_results
                                            WHERE phase = '$phase'")"
    diag "$what: $total leads sent; $faults answers were 503 or connection errors (retried)"
    is "$what: every lead was answered 201 in the end (none 500, none given up)" \
        "$(q -c "SELECT string_agg(DISTINCT status, ',') FROM public.fault_results WHERE phase = '$phase'")" \
        201
    missing=$(q -c "SELECT count(*) FROM public.fault_results r
                    WHERE r.phase = '$phase' AND r.status = '201' AND NOT EXISTS (
                        SELECT 1 FROM leadintake.leads l
                        WHERE l.id = r.lead_pk AND l.dialer_lead_id = r.dialer_lead_id)")
    is "$what: every 201 a client received is a stored lead (row by row: its id and lead id)" \
        "$missing" 0
    is "$what: one lead per lead id, none extra" \
        "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'F$phase-%'")" "$total"
    if [ "${faults:-0}" -gt 0 ]; then ok "$what: the fault was seen by the clients (${faults} retries)"
    else not_ok "$what: the fault was seen by the clients" "no 503 and no connection error: the fault came after the load?"; fi
}

# wait_for_201 URL: up to 20 s for the shim to store again.
wait_for_201() {
    local code
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Dialer-Api-Key: $KEY" \
            -H 'Content-Type: application/json' --data-binary '{"user": "agent1", "lead_id": "F-probe"}' \
            "$1/api/leads/from-dialer/")
        [ "$code" = 201 ] && return 0
        sleep 0.2
    done
    return 1
}

if ! start_shim main --pool-size 4; then
    echo "1..1"; not_ok "the shim starts" "$(cat "$T/main.err")"; exit 1
fi
U=$URL_main

# ---------------------------------------------------------------- 1. database restart
load_start 1 "$U"
sleep 1.5
t0=$(date +%s%3N)
if li_cluster_ctl "$CLUSTER" restart; then
    diag "database restarted under load in $(($(date +%s%3N) - t0)) ms"
else
    diag "pg_ctl restart failed: $(cat "$CLUSTER/pg_ctl.log" 2>/dev/null)"
    li_cluster_ctl "$CLUSTER" start
fi
wait_for_201 "$U" || diag "the shim did not store again within 20 s"
sleep 1
load_stop
check_phase 1 "database restart under load"
check_phase_ok=$(grep -c '"status":500' "$T/main.out")
is "database restart: no request was answered 500 (the shim's request log)" "$check_phase_ok" 0

# ---------------------------------------------------------------- 2. backends killed
load_start 2 "$U"
sleep 1
killed=0
for _ in 1 2 3 4 5; do
    n=$(qpg -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE application_name = 'leadintake-shim' AND datname = '$DB'")
    killed=$((killed + ${n:-0}))
    sleep 0.4
done
diag "terminated $killed shim sessions"
sleep 1
load_stop
check_phase 2 "the shim's database sessions killed under load"
is "sessions killed: no request was answered 500" "$(grep -c '"status":500' "$T/main.out")" 0

# ---------------------------------------------------------------- 3. SIGTERM of the shim
if SHIM_LISTEN=127.0.0.1:$FIXED_PORT start_shim a --pool-size 4 --drain-timeout 10; then
    load_start 3 "$URL_a" close
    sleep 1.5
    kill -TERM "$PID_a"
    # the port is free as soon as the old shim stops listening: the new one takes over
    started=0
    for _ in $(seq 1 50); do
        if SHIM_LISTEN=127.0.0.1:$FIXED_PORT start_shim b --pool-size 4; then started=1; break; fi
        sleep 0.1
    done
    for _ in $(seq 1 300); do kill -0 "$PID_a" 2>/dev/null || break; sleep 0.05; done
    wait "$PID_a"
    rc=$?
    is "SIGTERM under load: the old shim drained and exited 0" "$rc" 0
    is "SIGTERM under load: a new shim took the same port" "$started" 1
    sleep 1.5
    load_stop
    check_phase 3 "SIGTERM of the shim under load"
    is "SIGTERM: every request the old shim took was answered (no status 0 in its log)" \
        "$(grep -c '"status":0' "$T/a.out")" 0
    is "SIGTERM: no request was answered 500" "$(cat "$T/a.out" "$T/b.out" | grep -c '"status":500')" 0
    diag "old shim answered $(wc -l <"$T/a.out") requests, the new one $(wc -l <"$T/b.out")"
else
    not_ok "a shim on port $FIXED_PORT starts" "$(cat "$T/a.err")"
fi

# ---------------------------------------------------------------- 4. read-only database
logged=$(q -c "SELECT count(*) FROM leadintake.intake_log")
qpg -c "ALTER SYSTEM SET default_transaction_read_only = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
python3 - "$U" "$KEY" >"$T/ro.txt" 2>&1 <<'EOF'
import http.client, json, sys, threading, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
res, lock = [], threading.Lock()
def run(i):
    for j in range(10):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
        try:
            c.request("POST", "/api/leads/from-dialer/", headers={"X-Dialer-Api-Key": sys.argv[2],
                      "Content-Type": "application/json"},
                      body=json.dumps({"user": "agent1", "lead_id": "F4-%d-%d" % (i, j)}))
            r = c.getresponse(); r.read()
            s = "%d/%s" % (r.status, r.getheader("Retry-After"))
        except Exception as e:
            s = "error:" + type(e).__name__
        with lock: res.append(s)
t = [threading.Thread(target=run, args=(i,)) for i in range(4)]
[x.start() for x in t]; [x.join() for x in t]
print(" ".join("%s=%d" % (k, res.count(k)) for k in sorted(set(res))))
EOF
is "read-only database: 40 requests, all 503 with Retry-After: 1 (none 500)" "$(cat "$T/ro.txt")" "503/1=40"
health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$U/healthz")
diag "read-only database: /healthz says $health (SELECT 1 still works)"
is "read-only database: nothing was stored, not even a log row" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log")" "$logged"
# under load: read-only for a second more, then writable; every lead ends stored
load_start 4 "$U"
sleep 1
qpg -c "ALTER SYSTEM RESET default_transaction_read_only" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1.5
load_stop
check_phase 4 "read-only database, then writable, under load"
if wait_for_201 "$U"; then ok "writable again: the same shim stores again"
else not_ok "writable again: the same shim stores again"; fi
# the leads the 503s asked for, sent again: stored
sent_again=$(python3 - "$U" "$KEY" <<'EOF'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
n = 0
for i in range(4):
    for j in range(10):
        c.request("POST", "/api/leads/from-dialer/", headers={"X-Dialer-Api-Key": sys.argv[2],
                  "Content-Type": "application/json"},
                  body=json.dumps({"user": "agent1", "lead_id": "F4-%d-%d" % (i, j)}))
        r = c.getresponse(); r.read()
        n += r.status == 201
print(n)
EOF
)
is "writable again: the 40 requests answered 503, sent again, are 201 and stored" \
    "$sent_again $(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id ~ '^F4-[0-9]+-[0-9]+$'")" \
    "40 40"
is "read-only database: no request was answered 500" "$(grep -c '"status":500' "$T/main.out")" 0

# ---------------------------------------------------------------- 5. slow clients
if start_shim slow --timeout 2 --max-connections 8 --threads 1; then
    res=$(python3 - "$URL_slow" "$KEY" <<'EOF'
import http.client, json, socket, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
socks = []
t0 = time.time()
for i in range(8):          # every connection the shim allows, each stuck in its headers
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(b"POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\n")
    socks.append(s)
time.sleep(0.3)
def normal(lead):
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=1.5)
        c.request("POST", "/api/leads/from-dialer/", headers={"X-Dialer-Api-Key": sys.argv[2],
                  "Content-Type": "application/json"}, body=json.dumps({"user": "agent1", "lead_id": lead}))
        r = c.getresponse(); r.read()
        return str(r.status)
    except Exception as e:
        return type(e).__name__
during = normal("F5-during")
closed = 0
for s in socks:
    s.settimeout(max(0.1, 8 - (time.time() - t0)))
    try:
        closed += s.recv(100) == b""
    except ConnectionResetError:
        closed += 1
    except socket.timeout:
        pass
took = time.time() - t0
after = normal("F5-after")
print("closed=%d took=%.1f during=%s after=%s" % (closed, took, during, after))
EOF
)
    diag "slow clients: $res"
    [[ $res =~ closed=([0-9]+)\ took=([0-9.]+)\ during=([^ ]+)\ after=([^ ]+) ]]
    is "slow clients: --timeout 2 closes all 8 connections stuck in their headers (--max-connections 8)" "${BASH_REMATCH[1]:-?}" 8
    if [ -n "${BASH_REMATCH[2]:-}" ] && awk -v t="${BASH_REMATCH[2]}" 'BEGIN { exit !(t < 5) }'; then
        ok "slow clients: ... within 5 s of their last byte (${BASH_REMATCH[2]} s)"
    else
        not_ok "slow clients: ... within 5 s" "took ${BASH_REMATCH[2]:-?} s"
    fi
    diag "slow clients: a normal request while all connections were taken: ${BASH_REMATCH[3]:-?}"
    is "slow clients: once they are gone, a normal request is 201" "${BASH_REMATCH[4]:-?}" 201
    # The whole-request deadline (--timeout from the accept, or from the request line on a
    # keep-alive connection): a client trickling a byte every 0.5 s is never idle, so the idle
    # limit alone would never end it. All at once, each on its own connection: tricklers in
    # the headers, in the body and in a keep-alive connection's next request; a client that is
    # slow but within the deadline (twice on one keep-alive connection older than --timeout,
    # then left idle: the idle limit closes it); a normal request while they run.
    sleep 0.5  # the lines about the connections above are written by now
    err_lines=$(wc -l <"$T/slow.err")
    python3 - "$URL_slow" "$KEY" 2 >"$T/trickle.txt" 2>&1 <<'EOF'
import http.client, json, re, select, socket, sys, threading, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
key, T = sys.argv[2], float(sys.argv[3])
res, lock = {}, threading.Lock()

def put(name, value):
    with lock:
        res[name] = value

def conn():
    return socket.create_connection((u.hostname, u.port), timeout=10)

def lead_request(lead, pad=0):
    body = json.dumps({"user": "agent1", "lead_id": lead}).encode() + b" " * pad
    head = ("POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (key, len(body))).encode()
    return head + body

def answer(s):
    """Reads one answer; returns (status, lead pk or None), or (None, None) at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            return None, None
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    n = int((re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head) or [0, b"0"])[1])
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            break
        body += d
    status = int(head.split()[1])
    pk = json.loads(body)["lead"]["id"] if status == 201 else None
    return status, pk

def closed_after(s, t0, limit):
    """Seconds from t0 until the peer closes s (end of stream or reset), or None past limit."""
    while time.time() - t0 < limit:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                if s.recv(4096) == b"":
                    return time.time() - t0
            except OSError:
                return time.time() - t0
    return None

def trickle(s, data, t0, limit=T + 4):
    """Sends data a byte every 0.5 s; seconds from t0 until the shim closed s, or a word."""
    for b in data:
        try:
            s.send(bytes([b]))
        except OSError:
            return "%.1f" % (time.time() - t0)
        t = closed_after(s, time.time(), 0.5)
        if t is not None:
            return "%.1f" % (time.time() - t0)
        if time.time() - t0 > limit:
            return "open"
    return "sent"

PAD = b"X-Padding: " + b"x" * 200

def trickle_headers():
    s = conn()
    put("headers", trickle(s, b"POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\n" + PAD, time.time()))

def trickle_body():
    s = conn()
    t0 = time.time()
    head, _, body = lead_request("F5-trickled-body", 200).partition(b"\r\n\r\n")
    s.sendall(head + b"\r\n\r\n")  # the headers at once, the body a byte at a time
    put("body", trickle(s, body, t0))

def trickle_next():
    s = conn()
    s.sendall(lead_request("F5-keepalive-first"))
    status, pk = answer(s)
    put("next_first", "%s/%s" % (status, pk))
    put("next", trickle(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + PAD, time.time()))

def slow_but_in_time():
    s = conn()
    t_open = time.time()
    out = []
    for n in (1, 2):
        req = lead_request("F5-slow-%d" % n)
        step = len(req) // 4 + 1
        for i in range(0, len(req), step):  # 4 pieces over 1.2 s
            if i > 0:
                time.sleep(0.4)
            s.sendall(req[i:i + step])
        status, pk = answer(s)
        out.append("%s/%s" % (status, pk))
        if n == 1:
            time.sleep(1.5)  # idle, under --timeout
    put("slow", " ".join(out))
    put("slow_age", "%.1f" % (time.time() - t_open))
    t = closed_after(s, time.time(), T + 4)
    put("idle", "%.1f" % t if t is not None else "open")

threads = [threading.Thread(target=f) for f in (trickle_headers, trickle_body, trickle_next, slow_but_in_time)]
[t.start() for t in threads]
time.sleep(1)
t0 = time.time()
try:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.request("POST", "/api/leads/from-dialer/", body=json.dumps({"user": "agent1", "lead_id": "F5-meanwhile"}),
              headers={"X-Dialer-Api-Key": key, "Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    put("meanwhile", "%d in %.2f s" % (r.status, time.time() - t0))
except Exception as e:
    put("meanwhile", type(e).__name__)
[t.join() for t in threads]
for k in sorted(res):
    print("%s=%s" % (k, res[k]))
EOF
    sed 's/^/# trickle: /' "$T/trickle.txt"
    val() { sed -n "s/^$1=//p" "$T/trickle.txt" | head -n1; }
    # within(SECONDS, LOW, HIGH): a number of seconds in [LOW, HIGH]
    within() { awk -v t="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(t ~ /^[0-9.]+$/ && t >= lo && t <= hi) }'; }
    # (between keep-alive requests the deadline is 1 s later than the idle limit: docs/shim.md)
    for what in "headers|1.5|3.5|its headers (from the accept)" "body|1.5|3.5|its body (headers sent at once)" \
                "next|2.5|4.5|the next request on a keep-alive connection (from the previous answer)"; do
        IFS='|' read -r name lo hi text <<<"$what"
        t=$(val "$name")
        if within "$t" "$lo" "$hi"; then
            ok "slow clients: a client trickling $text a byte every 0.5 s is closed by --timeout 2 (after $t s)"
        else
            not_ok "slow clients: a client trickling $text a byte every 0.5 s is closed by --timeout 2 ($lo to $hi s)" \
                "it was: ${t:-?} (open: never closed; the idle limit alone does not end it)"
        fi
    done
    is "slow clients: the keep-alive connection's first request, sent at once, was 201" \
        "$(val next_first | cut -d/ -f1)" 201
    slow=$(val slow)
    is "slow clients: a client sending each request in 4 pieces over 1.2 s, twice on one keep-alive connection ($(val slow_age) s old, over --timeout), gets 201 both times" \
        "$(sed 's#/[0-9]*##g' <<<"$slow")" "201 201"
    t=$(val idle)
    if within "$t" 1.5 3.5; then ok "slow clients: that connection, left idle, is closed by the idle limit (after $t s)"
    else not_ok "slow clients: that connection, left idle, is closed by the idle limit (1.5 to 3.5 s)" "it was: ${t:-?}"; fi
    meanwhile=$(val meanwhile)
    if [[ $meanwhile =~ ^201\ in\ 0\. ]]; then
        ok "slow clients: a normal request while they trickle is 201 at once ($meanwhile)"
    else
        not_ok "slow clients: a normal request while they trickle is 201 at once" "it was: ${meanwhile:-?}"
    fi
    # row by row: each 201 is the stored lead it named (LEAD/STATUS/PK); the cut-off body
    # stored nothing
    missing=0
    for pair in "F5-keepalive-first/$(val next_first)" \
                $(awk '{ print "F5-slow-1/" $1; print "F5-slow-2/" $2 }' <<<"$slow"); do
        lead=${pair%%/*} pk=${pair##*/}
        [[ $pk =~ ^[0-9]+$ ]] || { missing=$((missing + 1)); continue; }
        n=$(q -c "SELECT count(*) FROM leadintake.leads WHERE id = $pk AND dialer_lead_id = '$lead'")
        [ "$n" = 1 ] || missing=$((missing + 1))
    done
    is "slow clients: every 201 of theirs is the stored lead it named (row by row)" "$missing" 0
    is "slow clients: the lead whose body was cut off was not stored" \
        "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'F5-trickled-body'")" 0
    is "slow clients: each of the 3 trickling connections is reported on stderr, the idle one not" \
        "$(tail -n +$((err_lines + 1)) "$T/slow.err" | grep -c 'its request was not received within --timeout (2 s)')" 3
    if kill -0 "$PID_slow" 2>/dev/null; then ok "slow clients: the shim still runs"
    else not_ok "slow clients: the shim still runs" "$(tail -n 5 "$T/slow.err")"; fi
    stop_pid "$PID_slow"
else
    not_ok "the shim with --timeout 2 starts" "$(cat "$T/slow.err")"
fi

# ---------------------------------------------------------------- 6. disk full
# df_post PREFIX FIRST LAST [LEAD...]: one keep-alive client posts the leads PREFIX-FIRST ..
# PREFIX-LAST (or the given lead ids); one line a lead: lead_id status retry_after lead_pk.
df_post() {
    python3 - "$URL_df" "$KEY" "$@" <<'EOF'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
key, prefix, first, last = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
leads = sys.argv[6:] or ["%s-%d" % (prefix, n) for n in range(first, last + 1)]
c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
for lead in leads:
    try:
        c.request("POST", "/api/leads/from-dialer/", headers={"X-Dialer-Api-Key": key,
                  "Content-Type": "application/json"},
                  body=json.dumps({"user": "agent1", "lead_id": lead, "first_name": "Disk",
                                   "last_name": "Full", "comments": "n" * 200}))
        r = c.getresponse(); data = r.read()
        pk = json.loads(data)["lead"]["id"] if r.status == 201 else "-"
        print(lead, r.status, r.getheader("Retry-After") or "-", pk)
    except Exception as e:
        c.close(); c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
        print(lead, "error:" + type(e).__name__, "-", "-")
EOF
}
# df_check FILE (lines of df_post): the lead ids answered 201 that are not that stored lead
# (row by row), and those answered otherwise that are stored anyway; "" when none.
df_check() {
    local lead status pk bad=""
    while read -r lead status _ pk; do
        if [ "$status" = 201 ]; then
            [ "$(df_q -c "SELECT count(*) FROM leadintake.leads WHERE id = $pk AND dialer_lead_id = '$lead'")" = 1 ] \
                || bad+="$lead(201 not stored) "
        elif [ "$(df_q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = '$lead'")" != 0 ]; then
            bad+="$lead($status but stored) "
        fi
    done <"$1"
    printf '%s' "$bad"
}
DF=$T/diskfull
FLAG=$T/enospc.flag
DF_PORT=""
df_q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$DF/sock" -p "$DF_PORT" -U postgres -d df "$@"; }
rm -f "$FLAG"
if ! gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$T/enospc.so" "$ROOT/test/fault/enospc.c" \
        -ldl >"$T/enospc.build" 2>&1; then
    not_ok "disk full: the fault library builds" "$(cat "$T/enospc.build")"
elif ! DF_PORT=$(li_free_port) || ! { DF_CLUSTER=$DF; li_start_cluster "$DF" "$DF_PORT"; } >"$T/df-start.log" 2>&1 \
        || ! df_q -d postgres -c "CREATE DATABASE df" >>"$T/df-start.log" 2>&1 \
        || ! df_q -c "CREATE EXTENSION leadintake" -c "INSERT INTO leadintake.agents
                (username, display_name, dialer_user_id) VALUES ('agent1', 'Agent One', '1001')" \
                >>"$T/df-start.log" 2>&1; then
    not_ok "disk full: a throwaway cluster starts" "$(tail -n 5 "$T/df-start.log")"
else
    # the same server again, with the library preloaded (a backend is a fork: it inherits it)
    li_cluster_ctl "$DF" stop
    (cd / && runuser -u postgres -- env LD_PRELOAD="$T/enospc.so" LEADINTAKE_ENOSPC_FLAG="$FLAG" \
        LEADINTAKE_ENOSPC_BASE="$(realpath "$DF/data/base")" "$(li_pg_bindir)/pg_ctl" -D "$DF/data" \
        -l "$DF/log" -w -t 60 start) >"$DF/pg_ctl.log" 2>&1
    pm=$(head -n1 "$DF/data/postmaster.pid" 2>/dev/null)
    if [ -n "$pm" ] && grep -q enospc.so "/proc/$pm/maps" 2>/dev/null; then
        ok "disk full: the throwaway server runs with the fault library preloaded"
    else
        not_ok "disk full: the throwaway server runs with the fault library preloaded" \
            "$(cat "$DF/pg_ctl.log")" "$(tail -n 5 "$DF/log")"
    fi
    if CONNINFO="host=$DF/sock port=$DF_PORT dbname=df user=postgres" start_shim df --pool-size 2; then
        # one lead stored first: its pages have room left, so with the disk full the next
        # leads are stored until a relation must grow, then every one is refused
        df_post F6 0 0 >"$T/df-0.txt"
        touch "$FLAG"
        logged=$(df_q -c "SELECT count(*) FROM leadintake.intake_log")
        df_post F6 1 150 >"$T/df-1.txt"
        health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL_df/healthz")
        n201=$(grep -c ' 201 ' "$T/df-1.txt")
        n503=$(grep -c ' 503 1 ' "$T/df-1.txt")
        diag "disk full: of 150 leads, $n201 were stored (room in the pages there), $n503 answered 503"
        is "disk full: every answer is 201 or 503 with Retry-After: 1 (none 500, no error)" \
            "$(awk '$2 != 201 && !($2 == 503 && $3 == 1)' "$T/df-1.txt" | head -n 3 | tr '\n' ' ')" ""
        is "disk full: once a relation must grow, every lead is refused: the last 50 are 503" \
            "$(tail -n 50 "$T/df-1.txt" | awk '$2 == 503' | wc -l)" 50
        is "disk full: every 201 is the stored lead it named, no 503 stored anything (row by row)" \
            "$(df_check "$T/df-1.txt")" ""
        is "disk full: the 503s wrote nothing, not even a log row (one intake_log row a 201)" \
            "$(df_q -c "SELECT count(*) FROM leadintake.intake_log")" "$((logged + n201))"
        if grep -q 'SQLSTATE 53100' "$T/df.err"; then ok "disk full: the database said 53100 (disk_full) to the shim"
        else not_ok "disk full: the database said 53100 (disk_full) to the shim" "$(tail -n 3 "$T/df.err")"; fi
        is "disk full: the shim still runs and /healthz answers (the database is up)" \
            "$(kill -0 "$PID_df" 2>/dev/null && echo running) $health" "running 200"
        # space again: the same leads, sent again, are stored
        rm -f "$FLAG"
        mapfile -t again < <(awk '$2 != 201 { print $1 }' "$T/df-1.txt")
        if [ ${#again[@]} -gt 0 ]; then df_post F6 0 0 "${again[@]}" >"$T/df-2.txt"; else : >"$T/df-2.txt"; fi
        is "space again: the ${#again[@]} refused leads, sent again, are all 201" \
            "$(awk '$2 != 201' "$T/df-2.txt" | wc -l) $(wc -l <"$T/df-2.txt")" "0 ${#again[@]}"
        is "space again: every 201 is the stored lead it named (row by row)" "$(df_check "$T/df-2.txt")" ""
        is "space again: one lead per lead id, none missing, none extra" \
            "$(df_q -c "SELECT count(*) || ' ' || count(DISTINCT dialer_lead_id) FROM leadintake.leads
                        WHERE dialer_lead_id LIKE 'F6-%'")" "151 151"
        is "disk full: no request was answered 500 (the shim's request log)" "$(grep -c '"status":500' "$T/df.out")" 0
        is "disk full: the server did not PANIC (the WAL was never refused)" "$(grep -c 'PANIC' "$DF/log")" 0
        stop_pid "$PID_df"
    else
        not_ok "disk full: the shim starts on the throwaway cluster" "$(cat "$T/df.err")"
    fi
    rm -f "$FLAG"
fi

leaks=$(cat "$T"/*.out "$T"/*.err | grep -c -- "$KEY")
is "no API key in any shim output" "$leaks" 0
q -c "DROP TABLE public.fault_results" >/dev/null 2>&1
echo "1..$N"
[ "$FAILED" -eq 0 ]
