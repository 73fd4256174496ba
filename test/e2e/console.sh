#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name>: set by shim_started (printf -v)
# test/e2e/console.sh: the console's HTTP side (contract section 9, docs/console.md) against
# the real extension: where it listens (and where not), sign-in and the two kinds of key, the
# cookie, CSRF and Origin, idle expiry, failed sign-ins, every API route answering its SQL
# function's JSON, the SQLSTATE mapping, the test lead, health with the database away, the
# page's headers, SIGHUP, TLS. Prints TAP on stdout.
#
# Run by scripts/test.sh (its LEADINTAKE_* and PG* variables), or by hand with nothing set:
# a throwaway cluster of its own. Needs bash, curl, openssl, python3 and psql.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp console
e2e_database e2e_console

ROLE=e2e_console_shim        # li_shim_role_sql's role: leadintake_shim and leadintake_console
OUTSIDER=e2e_console_outsider # a login role in neither
console_cleanup() {
    qpg -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
    qpg -c "DROP ROLE IF EXISTS $OUTSIDER" >/dev/null 2>&1
}
e2e_on_exit console_cleanup

console_cleanup
li_shim_role_sql "$ROLE" | q >/dev/null || bail "cannot create the shim's role $ROLE"
q -c "CREATE ROLE $OUTSIDER LOGIN" >/dev/null || bail "cannot create the role $OUTSIDER"
q -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
      VALUES ('agent1', 'Agent One', '1001') ON CONFLICT DO NOTHING" >/dev/null \
    || bail "cannot seed the agents"

e2e_key dialer # KEY: the dialer's key, in $T/keys
CKEY=console-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'alice:%s\n' "$CKEY" >"$T/ckeys"
chmod 600 "$T/ckeys"
SHIM_ARGS=(--db-wait 0)
CONSOLE_DB="$CONNINFO user=$ROLE"

# console_url NAME: the console's URL from the shim's start-up line ("console on URL/console/").
console_url() {
    local url=""
    for _ in $(seq 1 100); do
        url=$(grep -Eo 'console on https?://[^ ]+/console/' "$T/$1.err" | head -n1 | cut -d' ' -f3)
        [ -n "$url" ] && break
        sleep 0.05
    done
    printf '%s' "${url%/console/}"
}

# req NAME METHOD URL [CURL-ARGS...]: CODE, BODY, and the headers in $T/NAME.h; the cookie
# jar $T/NAME.jar is sent and kept.
req() {
    local name=$1 method=$2 url=$3
    shift 3
    CODE=$(curl -s --max-time 30 -o "$T/$name.b" -D "$T/$name.h" -w '%{http_code}' -X "$method" \
        -b "$T/$name.jar" -c "$T/$name.jar" "$@" "$url")
    BODY=$(cat "$T/$name.b" 2>/dev/null)
}
# header NAME FIELD: a header's value in the last answer of NAME (first one, CR removed).
header() { grep -i "^$2:" "$T/$1.h" | head -n1 | cut -d' ' -f2- | tr -d '\r'; }
# sign_in NAME URL KEY: a session in $T/NAME.jar, its CSRF token in CSRF.
sign_in() {
    req "$1" POST "$2/console/api/sign-in" --data-urlencode "key=$3"
    req "$1" GET "$2/console/api/session"
    CSRF=$(json_get "$BODY" csrf)
}
# post NAME URL PATH JSON [CURL-ARGS...]: a POST of the API with the session's CSRF token.
post() {
    local name=$1 url=$2 path=$3 json=$4
    shift 4
    req "$name" POST "$url/console/api/$path" -H "X-CSRF-Token: $CSRF" \
        -H 'Content-Type: application/json' --data-binary "$json" "$@"
}
# json_get JSON KEY...: the value at the path of keys, as JSON (strings bare).
json_get() {
    python3 - "$@" <<'EOF'
import json, sys
try:
    v = json.loads(sys.argv[1])
    for k in sys.argv[2:]:
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
except Exception as e:
    print("(no value: %s)" % e)
EOF
}
# canon JSON [KEY...]: the same JSON, keys sorted, without the top-level KEYs (a jsonb text
# and its parse compare equal); "(not JSON)" if it is not.
canon() {
    python3 - "$@" <<'EOF'
import json, sys
try:
    v = json.loads(sys.argv[1])
    for k in sys.argv[2:]:
        v.pop(k, None)
    print(json.dumps(v, sort_keys=True))
except Exception:
    print("(not JSON: %s)" % sys.argv[1][:200])
EOF
}
# sql FUNCTION ARGS: leadintake.FUNCTION(ARGS) as the database answers it, canonical.
sql() { canon "$(q -c "SELECT leadintake.$1('$2'::jsonb)" 2>&1)"; }

echo "1..65"

# ---------------------------------------------------------------- where it listens
read -r first last <<<"${LEADINTAKE_HTTP_PORTS:-}"
CPORT=$(li_free_port ${first:+"$first" "$last"}) || bail "no free port"
must_start_shim plain --console-listen "127.0.0.1:$CPORT"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$CPORT/console/"
is "without --console-key-file nothing listens on --console-listen (curl: connection refused)" "$?" 7
req plain GET "$URL_plain/console/"
is "without the console, /console/ on the dialer's address is 404" "$CODE" 404
stop_pid "$PID_plain"

must_start_shim c --console-key-file "$T/ckeys" --console-listen 127.0.0.1:0 --console-db "$CONSOLE_DB"
C=$(console_url c)
like "the console says where it listens, on an address of its own" "$C" '^http://127\.0\.0\.1:[0-9]+$'
if [ -z "$C" ] || [ "$C" = "$URL_c" ]; then bail "no console URL: $(head -c 500 "$T/c.err")"; fi
req c GET "$URL_c/console/"
is "with the console, /console/ on the dialer's address is still 404" "$CODE" 404

# ---------------------------------------------------------------- the page
req c GET "$C/console/"
is "GET /console/: the page, text/html" "$CODE $(header c Content-Type)" "200 text/html; charset=utf-8"
is "... with CSP default-src 'self', X-Frame-Options DENY, Referrer-Policy same-origin, nosniff" \
    "$(header c Content-Security-Policy)|$(header c X-Frame-Options)|$(header c Referrer-Policy)|$(header c X-Content-Type-Options)" \
    "default-src 'self'|DENY|same-origin|nosniff"
req c GET "$C/console/console.css"
css="$CODE $(header c Content-Type)"
req c GET "$C/console/console.js"
is "console.css and console.js: compiled in, with their types" \
    "$css; $CODE $(header c Content-Type)" \
    "200 text/css; charset=utf-8; 200 text/javascript; charset=utf-8"
req c GET "$C/console/nothing.js"
is "an unknown file under /console/ is 404" "$CODE" 404
req c GET "$C/console/api/nothing"
is "an unknown API route is 404" "$CODE" 404

# ---------------------------------------------------------------- keys and sign-in
req anon POST "$C/console/api/sign-in" --data-urlencode "key=$KEY"
is "a dialer key cannot sign in to the console: 401" "$CODE" 401
req anon POST "$URL_c/api/leads/from-dialer/" -H "X-Dialer-Api-Key: $CKEY" \
    -H 'Content-Type: application/json' --data-binary '{"user": "agent1", "lead_id": "E2E-C0"}'
is "a console key cannot post a lead: the dialer's 401" "$CODE" 401
req anon GET "$C/console/api/agents"
is "no session: the API answers 401" "$CODE" 401

req s POST "$C/console/api/sign-in" --data-urlencode "key=$CKEY"
cookie=$(header s Set-Cookie)
is "sign-in with the console key (form): 204" "$CODE" 204
like "... cookie li_console: 64 hex digits; Path=/console/; HttpOnly; SameSite=Strict; no Secure on HTTP" \
    "$cookie" '^li_console=[0-9a-f]{64}; Path=/console/; HttpOnly; SameSite=Strict$'
req s GET "$C/console/api/session"
CSRF=$(json_get "$BODY" csrf)
own=$([ "$CSRF" != "${cookie:11:64}" ] && echo "not the cookie's")
like "GET session: the key's name and a CSRF token of its own (not the cookie's)" \
    "$CODE $(json_get "$BODY" key_name) $CSRF $own" "^200 alice [0-9a-f]{64} not the cookie's\$"
req json POST "$C/console/api/sign-in" -H 'Content-Type: application/json' \
    --data-binary "{\"key\": \"$CKEY\"}"
is "sign-in with JSON {\"key\": ...}: 204" "$CODE" 204

req s POST "$C/console/api/agent-add" -H 'Content-Type: application/json' \
    --data-binary '{"username": "agent2", "display_name": "Agent Two", "dialer_user_id": "1002"}'
is "a POST without the X-CSRF-Token header: 403" "$CODE" 403
wrong=${CSRF%?}$([ "${CSRF: -1}" = 0 ] && echo 1 || echo 0) # its last digit changed
req s POST "$C/console/api/agent-add" -H "X-CSRF-Token: $wrong" -H 'Content-Type: application/json' \
    --data-binary '{"username": "agent2", "display_name": "Agent Two", "dialer_user_id": "1002"}'
is "a POST with a wrong CSRF token: 403" "$CODE" 403
post s "$C" agent-add '{"username": "agent2", "display_name": "Agent Two", "dialer_user_id": "1002"}' \
    -H 'Origin: http://evil.example'
is "a POST from a foreign Origin (right token): 403" "$CODE" 403
is "... and it changed nothing" "$(q -c "SELECT count(*) FROM leadintake.agents WHERE username = 'agent2'")" 0
post s "$C" agent-add '{"username": "agent2", "display_name": "Agent Two", "dialer_user_id": "1002"}' \
    -H "Origin: http://evil.$(printf '%s' "${C#http://}")"
is "a POST from an Origin that only ends with the console's host: 403" "$CODE" 403

# ---------------------------------------------------------------- the API: one SQL call each
post s "$C" agent-add '{"username": "agent2", "display_name": "Agent Two", "dialer_user_id": "1002"}' \
    -H "Origin: $C"
AGENT2=$(json_get "$BODY" agent id)
is "agent-add (own Origin): 200, the new agent" \
    "$CODE $(json_get "$BODY" agent username) $(q -c "SELECT id FROM leadintake.agents WHERE username = 'agent2'")" \
    "200 agent2 $AGENT2"
post s "$C" agent-edit "{\"id\": $AGENT2, \"display_name\": \"Agent Deux\"}" \
    -H "Origin: https://${C#http://}"
is "agent-edit from https://HOST (a proxy that ends TLS, Host passed through): 200, the agent as changed" \
    "$CODE $(json_get "$BODY" agent display_name)" "200 Agent Deux"
post s "$C" agent-active "{\"id\": $AGENT2, \"active\": false}"
is "agent-active: 200, deactivated" "$CODE $(json_get "$BODY" agent active) $(q -c "SELECT active FROM leadintake.agents WHERE id = $AGENT2")" \
    "200 false f"
post s "$C" agent-add '{"username": "agent2", "display_name": "Twin", "dialer_user_id": "1999"}'
like "a username taken (23505): 409 with the function's message" "$CODE $(json_get "$BODY" error)" '^409 .+'
post s "$C" agent-add '{"username": "agent3", "display_name": "Three", "dialer_user_id": "1003", "nope": 1}'
like "an unknown argument (class 22): 400 with the function's message" "$CODE $(json_get "$BODY" error)" '^400 .+'
req s GET "$C/console/api/request?id=999999999"
like "an unknown request id (P0002): 404 with the function's message" "$CODE $(json_get "$BODY" error)" '^404 .+'
req s GET "$C/console/api/requests?limit=abc"
is "a GET argument the function refuses: 400" "$CODE" 400

# failures for the replays: agent9 and agent8 do not exist yet
for id in 1 2; do
    curl -s -o /dev/null -H "X-Dialer-Api-Key: $KEY" "$URL_c/api/leads/from-dialer/?user=agent9&lead_id=E2E-F$id"
    curl -s -o /dev/null -H "X-Dialer-Api-Key: $KEY" "$URL_c/api/leads/from-dialer/?user=agent8&lead_id=E2E-G$id"
done
FAILED9=$(q -c "SELECT max(id) FROM leadintake.intake_log WHERE payload->>'user' = 'agent9'")

# the reads: exactly what the function returns for the same arguments (GET: strings)
for route in "requests|console_requests|{}" "requests?status=failed&limit=2|console_requests|{\"status\": \"failed\", \"limit\": \"2\"}" \
    "request?id=$FAILED9|console_request|{\"id\": \"$FAILED9\"}" "failures|console_failures|{}" \
    "agents|console_agents|{}"; do
    IFS='|' read -r path fn args <<<"$route"
    req s GET "$C/console/api/$path"
    is "GET $path: 200, leadintake.$fn's JSON as it is" "$CODE $(canon "$BODY")" "200 $(sql "$fn" "$args")"
done
like "... a GET's answer is never cached (Cache-Control: no-store)" "$(header s Cache-Control)" '^no-store$'
BASE=https://crm.example.com/api/leads/from-dialer/
req s GET "$C/console/api/setup?base_url=$BASE"
is "GET setup: console_setup's JSON, and the dialer keys' names (never a secret)" \
    "$CODE $(canon "$BODY" key_names) $(json_get "$BODY" key_names)" \
    "200 $(sql console_setup "{\"base_url\": \"$BASE\"}") [\"dialer\"]"
req s GET "$C/console/api/setup"
is "GET setup without base_url: this shim's own dialer endpoint" "$CODE $(canon "$BODY" key_names)" \
    "200 $(sql console_setup "{\"base_url\": \"$URL_c/api/leads/from-dialer/\"}")"

req s GET "$C/console/api/health"
health_keys=$(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(sys.argv[1]))))' "$BODY" 2>&1)
sql_keys=$(q -c "SELECT string_agg(k, ' ' ORDER BY k) FROM jsonb_object_keys(leadintake.console_health('{}') || '{\"database\": 1, \"pool\": 1, \"spool\": 1}') k")
is "GET health: console_health's members and the shim's database, pool, spool" "$CODE $health_keys" "200 $sql_keys"
is "... database reachable, the pool's size, the spool's depth" \
    "$(json_get "$BODY" database) $(json_get "$BODY" pool size) $(json_get "$BODY" spool depth)" "true 8 0"

# replays: the cause fixed first
post s "$C" agent-add '{"username": "agent9", "display_name": "Agent Nine", "dialer_user_id": "1009"}'
post s "$C" replay "{\"id\": $FAILED9}"
is "replay: 200, a new log row with its status" \
    "$CODE $(json_get "$BODY" status) $(q -c "SELECT replayed_by = $(json_get "$BODY" id) FROM leadintake.intake_log WHERE id = $FAILED9")" \
    "200 201 t"
post s "$C" replay "{\"id\": $FAILED9}"
like "replaying it again (55000): 409 with the function's message" "$CODE $(json_get "$BODY" error)" '^409 .+'
GROUP_ERR=$(q -c "SELECT error FROM leadintake.intake_log WHERE payload->>'user' = 'agent8' LIMIT 1")
post s "$C" agent-add '{"username": "agent8", "display_name": "Agent Eight", "dialer_user_id": "1008"}'
post s "$C" replay-group "$(python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1], "agent": "agent8"}))' "$GROUP_ERR")"
is "replay-group: 200, both of agent8's failures replayed, both ok" \
    "$CODE $(json_get "$BODY" replayed) $(json_get "$BODY" ok)" "200 2 2"

# ---------------------------------------------------------------- the test lead
post s "$C" test-lead '{"key_name": "dialer", "query": "user=agent1&lead_id=E2E-TEST1&phone_number=07700+900123&first_name=Test"}'
is "test-lead: 200 {status, body}: the dialer endpoint's 201 and its lead" \
    "$CODE $(json_get "$BODY" status) $(json_get "$BODY" body lead dialer_lead_id)" "200 201 E2E-TEST1"
is "... the lead is stored, logged with the dialer key's name" \
    "$(q -c "SELECT l.first_name || ' ' || g.key_name || ' ' || g.source FROM leadintake.leads l JOIN leadintake.intake_log g ON g.lead_id = l.id WHERE l.dialer_lead_id = 'E2E-TEST1'")" \
    "Test dialer http"
post s "$C" test-lead '{"key_name": "nobody", "query": "user=agent1&lead_id=E2E-TEST2"}'
is "test-lead with a key_name no dialer key has: 400" "$CODE" 400
post s "$C" test-lead '{"key_name": "alice", "query": "user=agent1&lead_id=E2E-TEST3"}'
is "... a console key's name is no dialer key's either: 400" "$CODE" 400

# ---------------------------------------------------------------- bounds and broken clients
head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big"
req s POST "$C/console/api/agent-add" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json' \
    --data-binary @"$T/big"
is "a body over 64 KiB: 413" "$CODE" 413
# a client that leaves mid-body, and one mid-headers (sanitize.sh runs this file under ASan)
python3 - "${C#http://}" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
for data in (b"POST /console/api/sign-in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nkey=abc",
             b"GET /console/api/session HTTP/1.1\r\nHost: x\r\nCook"):
    s = socket.create_connection((host, int(port)))
    s.sendall(data)
    s.close()
EOF
req s GET "$C/console/api/session"
is "after clients that left mid-request, the console still answers" "$CODE" 200

# ---------------------------------------------------------------- sign-out, SIGHUP
post s "$C" sign-out '{}'
is "sign-out: 204, the cookie cleared" "$CODE $(header s Set-Cookie)" \
    "204 li_console=; Path=/console/; HttpOnly; SameSite=Strict; Max-Age=0"
req s GET "$C/console/api/session"
is "... and the session is gone" "$CODE" 401

CKEY2=console2-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'bob:%s\n' "$CKEY2" >"$T/ckeys"
kill -HUP "$PID_c"
for _ in $(seq 1 100); do grep -q 'reloaded the console key file' "$T/c.err" && break; sleep 0.05; done
req hup POST "$C/console/api/sign-in" --data-urlencode "key=$CKEY"
old=$CODE
req hup POST "$C/console/api/sign-in" --data-urlencode "key=$CKEY2"
is "SIGHUP reloads the console key file: the old key 401, the new one 204" "$old $CODE" "401 204"

# ---------------------------------------------------------------- the log
stop_pid "$PID_c"
signins=$(grep -c '"event":"console_sign_in"' "$T/c.out")
like "one JSON line per sign-in attempt, with the key's name or null" \
    "$signins $(grep -c '"event":"console_sign_in","key":"alice","ok":true' "$T/c.out") $(grep -c '"event":"console_sign_in","key":null,"ok":false' "$T/c.out")" \
    '^[0-9]+ [1-9] [1-9]'
is "the test lead's dialer request is logged like any dialer request" \
    "$(grep -c '"method":"GET","path":"/api/leads/from-dialer/","status":201,"duration_ms":[0-9.]*,"key":"dialer"' "$T/c.out")" 1
if grep -qF -e "$CKEY" -e "$CKEY2" -e "$KEY" "$T/c.out" "$T/c.err"; then
    not_ok "no key's secret in the shim's output"
else
    ok "no key's secret in the shim's output"
fi

# ---------------------------------------------------------------- failed sign-ins, idle, TLS
must_start_shim lim --console-key-file "$T/ckeys" --console-listen 127.0.0.1:0 --console-db "$CONSOLE_DB"
L=$(console_url lim)
codes=""
for _ in 1 2 3 4 5 6; do
    req lim POST "$L/console/api/sign-in" --data-urlencode "key=wrong-key"
    codes+="$CODE "
done
is "failed sign-ins: 5 times 401, then 429" "$codes" "401 401 401 401 401 429 "
req lim POST "$L/console/api/sign-in" --data-urlencode "key=$CKEY2"
like "... even with the right key, with Retry-After" "$CODE $(header lim Retry-After)" '^429 [1-9][0-9]*$'

# (configured by its LEADINTAKE_CONSOLE_* variables alone)
LEADINTAKE_CONSOLE_KEY_FILE=$T/ckeys LEADINTAKE_CONSOLE_LISTEN=127.0.0.1:0 \
    LEADINTAKE_CONSOLE_DB=$CONSOLE_DB LEADINTAKE_CONSOLE_IDLE=2 must_start_shim idle
I=$(console_url idle)
sign_in idle "$I" "$CKEY2"
first=$CODE
sleep 3
req idle GET "$I/console/api/session"
is "LEADINTAKE_CONSOLE_IDLE=2 (and the other variables): a session unused for 3 s has ended" \
    "$first $CODE" "200 401"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
chmod 600 "$T/tls.key"
must_start_shim tls --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" --console-key-file "$T/ckeys" \
    --console-listen 127.0.0.1:0 --console-db "$CONSOLE_DB"
S=$(console_url tls)
req tls POST "$S/console/api/sign-in" --cacert "$T/tls.crt" --data-urlencode "key=$CKEY2"
like "under TLS the console is HTTPS and its cookie is Secure" "$S $CODE $(header tls Set-Cookie)" \
    '^https://127\.0\.0\.1:[0-9]+ 204 li_console=[0-9a-f]{64}; Path=/console/; HttpOnly; SameSite=Strict; Secure$'

# ---------------------------------------------------------------- configuration
HELP=$("$SHIM" --help 2>&1)
unlisted=""
for flag in console-key-file console-listen console-db console-idle; do
    var=LEADINTAKE_$(printf '%s' "$flag" | tr 'a-z-' 'A-Z_')
    if ! grep -q -- "--$flag" <<<"$HELP" || ! grep -q "$var" <<<"$HELP"; then unlisted+="$flag "; fi
done
is "--help lists the console's flags with their variables" "$unlisted" ""
rc() { "$SHIM" --db "$CONNINFO" --api-key-file "$T/keys" --listen 127.0.0.1:0 "$@" >/dev/null 2>"$T/badcfg.err"; echo $?; }
is "the API key file as the console key file: exit 2" "$(rc --console-key-file "$T/keys")" 2
is "a console key file that cannot be read: exit 2, named" \
    "$(rc --console-key-file "$T/none") $(grep -c 'console key file' "$T/badcfg.err")" "2 1"
printf 'ops:%s\n' "$KEY" >"$T/shared"
chmod 600 "$T/shared"
is "a console key with a dialer key's secret: exit 2, said" \
    "$(rc --console-key-file "$T/shared") $(grep -c 'also a key of the API key file' "$T/badcfg.err")" "2 1"
is "a bad --console-listen: exit 2" "$(rc --console-key-file "$T/ckeys" --console-listen nowhere)" 2

# ---------------------------------------------------------------- the database away
must_start_shim out --console-key-file "$T/ckeys" --console-listen 127.0.0.1:0 \
    --console-db "$CONNINFO user=$OUTSIDER"
O=$(console_url out)
sign_in out "$O" "$CKEY2"
req out GET "$O/console/api/agents"
is "a console role outside leadintake_console: the API answers 503" "$CODE" 503
check "... and the operator reads why on stderr" grep -q "not a member of leadintake_console" "$T/out.err"
req out GET "$O/console/api/health"
is "health without the database: 200, database false, the shim's pool and spool" \
    "$CODE $(json_get "$BODY" database) $(json_get "$BODY" pool size) $(json_get "$BODY" spool depth)" \
    "200 false 8 0"

[ "$FAILED" -eq 0 ]
