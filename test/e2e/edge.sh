#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name> are set by shim_started (printf -v)
# test/e2e/edge.sh: the shim's network edge against hostile clients (issue 13). Prints TAP.
#
#   1. A query too big for libmicrohttpd's per-connection memory is answered (not dropped),
#      and whatever any request allocated is freed when its connection ends: the in-flight
#      gauge comes back, memory stays flat over 300 such requests.
#   2. A burst of connections that send one byte and close does not stall the next client,
#      and leaves no socket in CLOSE-WAIT; half-sent requests over the connection cap do not
#      keep a client with a request waiting; the floods do not flood stderr.
#   3. --allow-ip refuses at accept (a refused address holds no slot), and
#      --max-connections-per-ip caps one address.
#   4. Request framing a proxy could read otherwise (RFC 9112 section 6): 400 and close.
#   5. The path is matched as sent: encoded slashes or a NUL are 404, the log shows it.
#   6. Strict HTTP where the shim can see it: Host, bare CR in a value, a NUL in the key.
# Raw requests go through test/e2e/rawhttp.py ("<status> <responses> <closed|open>").
#
# Run by scripts/test.sh (LEADINTAKE_TEST_DB, LEADINTAKE_TEST_CONNINFO, LEADINTAKE_SHIM,
# LEADINTAKE_TEST_TMP, PG* variables) or by hand with nothing set: it then starts a
# throwaway cluster of its own.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
RAW=$ROOT/test/e2e/rawhttp.py
FLOOD=$ROOT/test/bench/flood.py
PY=/usr/bin/python3
e2e_tmp edge
HOLDERS=()

e2e_database e2e_edge
stop_holders() {
    local pid
    for pid in "${HOLDERS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
}
e2e_on_exit stop_holders

q -c "INSERT INTO leadintake.agents (username) VALUES ('agent1') ON CONFLICT DO NOTHING" \
    >/dev/null || bail "cannot seed"
e2e_key edge

echo "1..34"

port_of() { printf '%s' "${1##*:}"; }
raw() { "$PY" "$RAW" 127.0.0.1 "$PORT" "$@"; }
metric() { curl -s --max-time 5 "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
healthz_code() { curl -s --max-time "$2" -o /dev/null -w '%{http_code}' "$1/healthz"; }
big_query() { "$PY" -c "print('&'.join('k%d=' % i + 'v' * 50 for i in range(1000)))"; }

if ! start_shim main --timeout 30 --max-connections 64 --allow-query-key; then
    bail "the shim does not start: $(cat "$T/main.err")"
fi
U=$URL_main
PORT=$(port_of "$U")
PID=$PID_main

# ================================================================ 1. too big, and freed
Q=$(big_query)
is "1000 query parameters of 50 bytes, no key: answered 401, not dropped" \
    "$(raw "GET /api/leads/from-dialer/?$Q HTTP/1.1\r\nHost: x\r\n\r\n")" "401 1 closed"
is "... with the key: the lead is made (201)" \
    "$(raw "GET /api/leads/from-dialer/?user=agent1&$Q HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\n\r\n" | cut -d' ' -f1)" 201
like "a request line longer than the connection's memory: 414" \
    "$("$PY" -c "import sys; sys.stdout.write('GET /healthz?a=' + 'v' * 70000 + ' HTTP/1.1\r\nHost: x\r\n\r\n')" | raw -)" "^414 1 "
like "8,000 header lines: 431" \
    "$("$PY" -c "import sys; sys.stdout.write('GET /healthz HTTP/1.1\r\nHost: x\r\n' + 'a: b\r\n' * 8000 + '\r\n')" | raw -)" "^431 1 "
RSS0=$(rss_kib "$PID")
for _ in $(seq 1 15); do
    BATCH=()
    for _ in $(seq 1 20); do
        raw "GET /api/leads/from-dialer/?$Q HTTP/1.1\r\nHost: x\r\n\r\n" >/dev/null &
        BATCH+=($!)
    done
    wait "${BATCH[@]}"
done
is "after 300 such requests the in-flight gauge is back to 1 (this /metrics request)" \
    "$(metric "$U" leadintake_http_requests_in_flight)" 1
RSS1=$(rss_kib "$PID")
like "... and the shim's memory stayed flat (VmRSS $RSS0 -> $RSS1 KiB, under 2 MiB more)" \
    "$((RSS1 - RSS0 < 2048))" "^1$"

# ================================================================ 2. one-byte floods
"$PY" "$FLOOD" 127.0.0.1 "$PORT" onebyte 1000 --per-ip 1000
is "after 1,000 connections that sent one byte and closed, /healthz answers at once (5 s bound; --timeout is 30 s)" \
    "$(healthz_code "$U" 5)" 200
sleep 0.5
is "... and no socket of the shim is left in CLOSE-WAIT" \
    "$(li_tcp_sockets "$PORT" 08 | wc -l)" 0
"$PY" "$FLOOD" 127.0.0.1 "$PORT" halfheaders 80 3 --per-ip 80 &
HOLDERS+=($!)
sleep 1
is "while 80 half-sent requests hold more than the 64 slots, /healthz answers (5 s bound)" \
    "$(healthz_code "$U" 5)" 200
is "... every legitimate request of 20 in a row answers" \
    "$(for _ in $(seq 1 20); do healthz_code "$U" 5; echo; done | grep -c '^200$')" 20
like "... and the shim said why it closed them" "$(cat "$T/main.err")" "connection slots in use: closed [0-9]+ connections"
like "... in few lines: stderr has under 300 after some 2,400 hostile connections ($(wc -l <"$T/main.err"))" \
    "$(($(wc -l <"$T/main.err") < 300))" "^1$"

# ================================================================ 3. --allow-ip at accept
if start_shim acl --allow-ip 127.0.0.2/32 --max-connections 16 --max-connections-per-ip 4 \
        --timeout 30; then
    A=$URL_acl
    APORT=$(port_of "$A")
    is "a refused address is closed at accept, unanswered" \
        "$(RAWHTTP_SRC=127.0.0.1 "$PY" "$RAW" 127.0.0.1 "$APORT" 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')" "none 0 closed"
    is "40 idle sockets from a refused address: all closed at once" \
        "$(RAWHTTP_SRC=127.0.0.1 timeout 10 "$PY" "$RAW" 127.0.0.1 "$APORT" hold 40 0)" 40
    RAWHTTP_SRC=127.0.0.1 "$PY" - 127.0.0.1 "$APORT" <<'EOF' &
import socket, sys, time
held = []
for _ in range(40):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.connect((sys.argv[1], int(sys.argv[2]))); held.append(s)
time.sleep(5)
EOF
    HOLDERS+=($!)
    sleep 0.5
    is "... while it keeps trying, an allowed client (127.0.0.2) is served: 200" \
        "$(RAWHTTP_SRC=127.0.0.2 "$PY" "$RAW" 127.0.0.1 "$APORT" 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' | cut -d' ' -f1)" 200
    like "/metrics counts the refused connections" \
        "$(curl -s --interface 127.0.0.2 "$A/metrics" | awk '$1 == "leadintake_http_connections_refused_total" {print $2}')" "^[0-9]{2,}$"
    is "--max-connections-per-ip 4: of 8 idle sockets from one address, 4 are closed at accept" \
        "$(RAWHTTP_SRC=127.0.0.2 timeout 10 "$PY" "$RAW" 127.0.0.1 "$APORT" hold 8 0)" 4
    like "the refusal is on stderr, once a second at most" "$(cat "$T/acl.err")" \
        "refusing connections from 127.0.0.1: not in --allow-ip"
else
    for _ in 1 2 3 4 5 6; do not_ok "the shim starts with --max-connections-per-ip" "$(cat "$T/acl.err")"; done
fi

# ================================================================ 4. framing
is "Content-Length and Transfer-Encoding together: 400, closed" \
    "$(raw 'POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')" "400 1 closed"
is "two different Content-Length headers: 400, closed" \
    "$(raw 'POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}')" "400 1 closed"
is "'Transfer-Encoding : chunked' (space before the colon): 400, closed, the chunks never read as a request" \
    "$(raw 'POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding : chunked\r\n\r\n26\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n')" "400 1 closed"
is "Transfer-Encoding other than chunked: 400, closed" \
    "$(raw 'POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n')" "400 1 closed"
is "a sound chunked POST still makes its lead, and the connection stays open" \
    "$(raw 'POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{"user": "agent1"\r\n1\r\n}\r\n0\r\n\r\n')" "201 1 open"

# ================================================================ 5. the path as sent
is "/api/leads/from-dialer/%00: 404" \
    "$(raw 'GET /api/leads/from-dialer/%00?user=agent1 HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\n\r\n' | cut -d' ' -f1)" 404
is "/api%2Fleads%2Ffrom-dialer/: 404" \
    "$(raw 'GET /api%2Fleads%2Ffrom-dialer/?user=agent1 HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\n\r\n' | cut -d' ' -f1)" 404
sleep 0.3 # the request log is written every 100 ms
like "the log shows the path as sent" "$(cat "$T/main.out")" \
    '"path":"/api%2Fleads%2Ffrom-dialer/","status":404'

# ================================================================ 6. strict where it can see
is "HTTP/1.1 without Host: 400" \
    "$(raw 'GET /healthz HTTP/1.1\r\n\r\n')" "400 1 closed"
is "two Host headers: 400" \
    "$(raw 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')" "400 1 closed"
is "HTTP/1.0 without Host is still served" \
    "$(raw 'GET /healthz HTTP/1.0\r\n\r\n' | cut -d' ' -f1)" 200
is "a bare CR in a header value: 400" \
    "$(raw 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n')" "400 1 closed"
is "an api_key parameter with a NUL after the key: 401" \
    "$(raw "GET /api/leads/from-dialer/?user=agent1&api_key=$KEY%00 HTTP/1.1\r\nHost: x\r\n\r\n" | cut -d' ' -f1)" 401
is "a plain keyed GET keeps its connection open (nothing above broke keep-alive)" \
    "$(raw 'GET /api/leads/from-dialer/?user=agent1&lead_id=EDGE-1 HTTP/1.1\r\nHost: x\r\nX-Dialer-Api-Key: {KEY}\r\n\r\n')" "201 1 open"
check "the shim still runs" kill -0 "$PID"
is "no request was answered 500" "$(grep -c '"status":500' "$T/main.out")" 0
