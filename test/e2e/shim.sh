#!/usr/bin/env bash
# test/e2e/shim.sh: end-to-end tests of leadintake-shim against the real extension: every
# HTTP row of contract section 6 and every bullet of section 7. Prints TAP on stdout.
#
# Run by scripts/test.sh (which sets LEADINTAKE_TEST_DB, LEADINTAKE_TEST_CONNINFO,
# LEADINTAKE_CLUSTER_DIR, LEADINTAKE_SHIM, LEADINTAKE_TEST_TMP, PGHOST/PGPORT/PGUSER), or
# by hand with nothing set: it then starts a throwaway cluster of its own (scripts/lib.sh).
# Needs bash, curl, openssl, python3 (standard library only) and psql.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp shim

NOEXEC_ROLE=e2e_shim_noexec
MIN_ROLE=e2e_shim_min

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- database

# it stops the database: scripts/test.sh's cluster only when it says which one it is
[ -n "${LEADINTAKE_CLUSTER_DIR:-}" ] || unset LEADINTAKE_TEST_DB
e2e_database e2e_shim
CLUSTER=${OWN_CLUSTER:-$LEADINTAKE_CLUSTER_DIR}
db_stop() { li_cluster_ctl "$CLUSTER" stop; }
db_start() { li_cluster_ctl "$CLUSTER" start; }
db_up() { qpg -c 'SELECT 1' >/dev/null 2>&1; }

# ---------------------------------------------------------------- shim instances

# start_shim (tap.sh) with --db-wait 0: this suite tests the answer once any wait is over
# (nolost.sh tests the wait).
SHIM_ARGS=(--db-wait 0)

# start_shim_env NAME VAR=VALUE...: the same, configured by environment variables only.
start_shim_env() {
    local name=$1
    shift
    env LEADINTAKE_DB_WAIT=0 "$@" "$SHIM" >"$T/$name.out" 2>"$T/$name.err" &
    shim_started "$name" $!
}

shim_cleanup() {
    jobs -p | xargs -r kill 2>/dev/null
    db_up || db_start >/dev/null 2>&1
    qpg -c "DROP ROLE IF EXISTS $MIN_ROLE" >/dev/null 2>&1
    qpg -c "DROP ROLE IF EXISTS $NOEXEC_ROLE" >/dev/null 2>&1 \
        || { q -c "DROP OWNED BY $NOEXEC_ROLE" >/dev/null 2>&1; \
             qpg -c "DROP ROLE IF EXISTS $NOEXEC_ROLE" >/dev/null 2>&1; }
}
e2e_on_exit shim_cleanup

# ---------------------------------------------------------------- HTTP helpers

# http NAME CURL-ARGS...: runs curl; sets CODE, BODY, HDRS (headers of the last answer).
http() {
    local name=$1
    shift
    CODE=$(curl -s -S --max-time 20 -o "$T/$name.body" -D "$T/$name.hdr" -w '%{http_code}' \
        "$@" 2>"$T/$name.curlerr")
    BODY=$(cat "$T/$name.body" 2>/dev/null)
    HDRS=$(tr -d '\r' <"$T/$name.hdr" 2>/dev/null)
}
# header NAME: the value of a header of the last answer (case-insensitive).
header() {
    printf '%s\n' "$HDRS" | awk -v h="$(printf '%s' "$1" | tr 'A-Z' 'a-z')" -F': ' \
        'tolower($1) == h { sub(/^[^:]*: /, ""); v = $0 } END { print v }'
}
# jget JSON PATH: a value of a JSON text (a.b.c; lists by index); "null" for null/missing.
jget() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    v = json.loads(sys.argv[1])
    for part in sys.argv[2].split('.'):
        if isinstance(v, list):
            v = v[int(part)]
        elif isinstance(v, dict):
            v = v.get(part)
        else:
            v = None
        if v is None:
            break
    if v is None:
        print("null")
    elif isinstance(v, (dict, list)):
        print(json.dumps(v, sort_keys=True))
    elif isinstance(v, bool):
        print("true" if v else "false")
    else:
        print(v)
except Exception as e:
    print("<not json: %s>" % e)
EOF
}

J='Content-Type: application/json'
F='Content-Type: application/x-www-form-urlencoded'
API=/api/leads/from-dialer/

# ---------------------------------------------------------------- setup

if [ ! -x "$SHIM" ]; then
    echo "1..1"
    not_ok "the shim is built ($SHIM)" "build it with make (shim/Makefile)"
    exit 1
fi
q -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id, active) VALUES
        ('agent1', 'Agent One', '1001', true),
        ('agent2', 'Agent Two', '1002', true),
        ('agent3', 'Agent Three', '1003', false)" >/dev/null \
    || { echo "Bail out! cannot seed agents"; exit 1; }

SECRET1=e2e-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET2=e2e-other-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET3=e2e-later-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEYS=$T/keys
printf '# e2e keys\ndialer:%s\nother:%s\n' "$SECRET1" "$SECRET2" >"$KEYS"
chmod 600 "$KEYS"
K1="X-Dialer-Api-Key: $SECRET1"
K2="X-Dialer-Api-Key: $SECRET2"
DASH=https://crm.example.test/dashboard

# the main instance
if ! start_shim main --allow-query-key --dashboard-url "$DASH"; then
    echo "1..1"
    not_ok "the shim starts" "$(cat "$T/main.err")"
    exit 1
fi
U=$URL_main
diag "shim at $U, database $DB"

# ================================================================ section 6: results

http create -H "$K1" -H "$J" --data-binary \
    '{"user": "agent1", "lead_id": "E2E-1", "phone_number": "07700 900101",
      "first_name": "John", "middle_initial": "A", "last_name": "Smith",
      "email": "john@example.com", "pass": "dialer-password"}' "$U$API"
is "POST JSON, new lead: 201" "$CODE" 201
is "create: success true, created true" \
    "$(jget "$BODY" success) $(jget "$BODY" created)" "true true"
is "create: message" "$(jget "$BODY" message)" "Lead created successfully"
is "create: lead assigned to agent1, dialer_lead_id echoed" \
    "$(jget "$BODY" lead.assigned_agent_username) $(jget "$BODY" lead.dialer_lead_id)" \
    "agent1 E2E-1"
is "create: Content-Type application/json" "$(header Content-Type)" "application/json"
LEAD1=$(jget "$BODY" lead.id)

http update -H "$K1" -H "$J" --data-binary \
    '{"user": "agent1", "lead_id": "E2E-1", "city": "Leeds"}' \
    "$U/api/leads/from-dialer"
is "POST again, same lead, path without trailing slash: 201 (no redirect)" "$CODE" 201
is "update: created false, message, same id" \
    "$(jget "$BODY" created)|$(jget "$BODY" message)|$(jget "$BODY" lead.id)" \
    "false|Lead updated successfully|$LEAD1"
is "one row for lead E2E-1" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'E2E-1'")" 1
is "intake_log: source http, key name (not the secret), client address" \
    "$(q -c "SELECT source, key_name, host(client_addr), status FROM leadintake.intake_log
             WHERE lead_id = $LEAD1 ORDER BY id LIMIT 1")" "http|dialer|127.0.0.1|201"

http notobj -H "$K1" -H "$J" --data-binary '[1, 2, 3]' "$U$API"
is "body not a JSON object: 400" "$CODE" 400
like "400 body is {\"error\": ...}" "$(jget "$BODY" error)" '.+'

BROKEN='{"user": "agent1", "lead_id": '
http badjson -H "$K1" -H "$J" --data-binary "$BROKEN" "$U$API"
is "invalid JSON: 400" "$CODE" 400
is "invalid JSON reached the database byte for byte (intake_log.raw_body)" \
    "$(q -c "SELECT raw_body FROM leadintake.intake_log WHERE status = 400
             ORDER BY id DESC LIMIT 1")" "$BROKEN"

printf '{"user": "agent1", "first_name": "\xff\xfe"}' >"$T/badutf8"
http badutf8 -H "$K1" -H "$J" --data-binary @"$T/badutf8" "$U$API"
is "invalid UTF-8 in a JSON body: 400" "$CODE" 400

http badfield -H "$K1" -H "$J" --data-binary \
    '{"user": "agent1", "email": "not-an-email", "date_of_birth": "1990-02-31"}' "$U$API"
is "bad fields: 400" "$CODE" 400
check "bad fields: details name email" test "$(jget "$BODY" details.email)" != null
check "bad fields: details name date_of_birth" test "$(jget "$BODY" details.date_of_birth)" != null

http noident -H "$K1" -H "$J" --data-binary '{"phone_number": "07700 900102"}' "$U$API"
is "missing identity: 400 with the contract's message" \
    "$CODE $(jget "$BODY" error)" "400 Missing required fields: dialer_user_id or user"

http noagent -H "$K1" -H "$J" --data-binary '{"user": "agent9"}' "$U$API"
is "unknown agent: 404 with the contract's message" \
    "$CODE $(jget "$BODY" error)" "404 Agent with username 'agent9' not found"

http nokey -H "$J" --data-binary '{"user": "agent1"}' "$U$API"
is "no API key: 401" "$CODE" 401
like "401 body is {\"error\": ...}" "$(jget "$BODY" error)" '.+'
http wrongkey -H "X-Dialer-Api-Key: ${SECRET1}x" -H "$J" --data-binary '{"user": "agent1"}' \
    "$U$API"
is "wrong API key: 401" "$CODE" 401
http wrongkey2 -H "X-Dialer-Api-Key: ${SECRET1:0:10}" -H "$J" \
    --data-binary '{"user": "agent1"}' "$U$API"
is "a prefix of a key: 401" "$CODE" 401

http put -X PUT -H "$K1" -H "$J" --data-binary '{"user": "agent1"}' "$U$API"
is "PUT: 405 with Allow: GET, POST" "$CODE $(header Allow)" "405 GET, POST"
http delete -X DELETE -H "$K1" "$U$API"
is "DELETE: 405" "$CODE" 405
http head -I -H "$K1" "$U$API"
is "HEAD on the intake path: 405 (GET there creates leads)" "$CODE" 405
http unknown -H "$K1" "$U/api/leads/"
is "unknown path: 404" "$CODE" 404
http unknown2 -H "$K1" "$U/api/leads/from-dialer//"
is "two trailing slashes: 404" "$CODE" 404

head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big"
http big -H "$K1" -H "$J" --data-binary @"$T/big" "$U$API"
is "body over 64 KiB (Content-Length): 413" "$CODE" 413
http bigchunked -H "$K1" -H "$J" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" \
    "$U$API"
is "body over 64 KiB (chunked): 413" "$CODE" 413
http smallchunked -H "$K1" -H "$J" -H 'Transfer-Encoding: chunked' \
    --data-binary '{"user": "agent1", "lead_id": "E2E-CHUNK"}' "$U$API"
is "a small chunked body: 201" "$CODE" 201

http ctype -H "$K1" -H 'Content-Type: text/plain' --data-binary '{"user": "agent1"}' "$U$API"
is "Content-Type text/plain: 415" "$CODE" 415
http ctype2 -H "$K1" -H 'Content-Type: multipart/form-data; boundary=x' --data-binary 'x' \
    "$U$API"
is "Content-Type multipart/form-data: 415" "$CODE" 415
http noctype -H "$K1" -H 'Content-Type:' --data-binary '{"user": "agent1", "lead_id": "E2E-NOCT"}' \
    "$U$API"
is "no Content-Type at all: read as JSON, 201" "$CODE" 201
http jsoncharset -H "$K1" -H 'Content-Type: application/json; charset=utf-8' \
    --data-binary '{"user": "agent1", "lead_id": "E2E-CHARSET"}' "$U$API"
is "application/json; charset=utf-8: 201" "$CODE" 201

# 500: a role that can prepare the call but may not execute it (a real database error)
q -c "DROP ROLE IF EXISTS $NOEXEC_ROLE" >/dev/null 2>&1
qpg -c "CREATE ROLE $NOEXEC_ROLE LOGIN" >/dev/null
q -c "GRANT USAGE ON SCHEMA leadintake TO $NOEXEC_ROLE" >/dev/null
if CONNINFO="$CONNINFO user=$NOEXEC_ROLE" start_shim noexec; then
    http err500 -H "$K1" -H "$J" --data-binary '{"user": "agent1"}' "$URL_noexec$API"
    is "an unexpected database error: 500 with generic text" \
        "$CODE $BODY" '500 {"error": "Internal server error"}'
    check "the 500 shows no database text" test -z "$(grep -i 'permission' "$T/err500.body")"
    check "the database error is in the operator's log (stderr)" grep -q 'SQLSTATE 42501' \
        "$T/noexec.err"
else
    not_ok "shim as $NOEXEC_ROLE starts" "$(cat "$T/noexec.err")"
fi
stop_pid "$PID_noexec"
q -c "REVOKE USAGE ON SCHEMA leadintake FROM $NOEXEC_ROLE" >/dev/null 2>&1
qpg -c "DROP ROLE IF EXISTS $NOEXEC_ROLE" >/dev/null 2>&1

# least privilege: a login role that holds only the extension's role leadintake_shim
if [ "$(qpg -c "SELECT count(*) FROM pg_roles WHERE rolname = 'leadintake_shim'")" = 1 ]; then
    qpg -c "DROP ROLE IF EXISTS $MIN_ROLE" -c "CREATE ROLE $MIN_ROLE LOGIN IN ROLE leadintake_shim" \
        >/dev/null
    if CONNINFO="$CONNINFO user=$MIN_ROLE" start_shim minrole; then
        http minrole -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-MINROLE"}' \
            "$URL_minrole$API"
        is "the shim as a login role IN ROLE leadintake_shim (nothing else): 201" "$CODE" 201
    else
        not_ok "shim as $MIN_ROLE starts" "$(cat "$T/minrole.err")"
    fi
    stop_pid "$PID_minrole"
    qpg -c "DROP ROLE IF EXISTS $MIN_ROLE" >/dev/null 2>&1
else
    skip "no role leadintake_shim (extension 1.0)"
fi

# ================================================================ section 7: bodies

FIELDS_FORM='user=agent2&first_name=Mary+Ann&last_name=O%27Neil&city=Leeds&comments=call+back+later%21&phone_code=%2B44'
http sameJ -H "$K1" -H "$J" --data-binary \
    '{"user": "agent2", "first_name": "Mary Ann", "last_name": "O'"'"'Neil", "city": "Leeds",
      "comments": "call back later!", "phone_code": "+44", "lead_id": "E2E-SAME-J",
      "phone_number": "07700 900201"}' "$U$API"
is "same fields as JSON: 201" "$CODE" 201
http sameF -H "$K1" -H "$F" --data-binary \
    "$FIELDS_FORM&lead_id=E2E-SAME-F&phone_number=07700+900202" "$U$API"
is "same fields as a form body: 201" "$CODE" 201
is "form body: + is a space, %XX decoded" \
    "$(jget "$BODY" lead.full_name)|$(jget "$BODY" lead.comments)" \
    "Mary Ann O'Neil|call back later!"
http sameG -H "$K1" "$U$API?$FIELDS_FORM&lead_id=E2E-SAME-G&phone_number=07700%20900203"
is "same fields as a GET query string: 201" "$CODE" 201
is "JSON, form and query string become the same payload (intake_log.payload)" \
    "$(q -c "SELECT count(DISTINCT payload - 'lead_id' - 'phone_number')
             FROM leadintake.intake_log WHERE payload->>'lead_id' LIKE 'E2E-SAME-_'")" 1
is "... and the same stored lead fields" \
    "$(q -c "SELECT count(DISTINCT (full_name, first_name, last_name, city, comments, phone_code,
                                    assigned_agent_id))
             FROM leadintake.leads WHERE dialer_lead_id LIKE 'E2E-SAME-_'")" 1

http repeated -H "$K1" -H "$F" --data-binary 'user=agent1&city=Leeds&city=York' "$U$API"
is "a known field repeated in a form: 400" "$CODE" 400
check "... naming it in details" test "$(jget "$BODY" details.city)" != null
http repeatedx -H "$K1" -H "$F" --data-binary \
    'user=agent1&lead_id=E2E-REPX&tag=a&tag=b' "$U$API"
is "an unknown key repeated: 201, kept as a list in extra" \
    "$CODE $(q -c "SELECT extra->'tag' FROM leadintake.leads WHERE dialer_lead_id = 'E2E-REPX'")" \
    '201 ["a", "b"]'
http nul -H "$K1" -H "$F" --data-binary 'user=agent1&first_name=Jo%00hn' "$U$API"
is "%00 in a form value: 400, not 500" "$CODE" 400
http nulq -H "$K1" "$U$API?user=agent1&first_name=Jo%00hn"
is "%00 in a query value: 400, not 500" "$CODE" 400
http latin1 -H "$K1" -H "$F" --data-binary 'user=agent1&lead_id=E2E-LATIN1&first_name=Ren%E9' "$U$API"
is "invalid UTF-8 from a form (%E9) is Windows-1252: 201, René" \
    "$CODE $(q -c "SELECT first_name FROM leadintake.leads WHERE dialer_lead_id = 'E2E-LATIN1'")" \
    "201 René"

http jsonq -H "$K1" -H "$J" --data-binary '{"user": "agent1"}' "$U$API?lead_id=E2E-Q"
is "JSON body with other query parameters: 400" "$CODE" 400
like "... saying why" "$(jget "$BODY" error)" 'not accepted with a JSON body'
http emptypost -X POST -H "$K1" "$U$API?user=agent1&lead_id=E2E-EMPTYPOST"
is "POST with no body and no Content-Type: the query string is the payload, 201" "$CODE" 201

# ---------------------------------------------------------------- query key
http qkey "$U$API?user=agent1&lead_id=E2E-QKEY&api_key=$SECRET1&phone_number=07700900301"
is "--allow-query-key: api_key in the query: 201" "$CODE" 201
http fkey -H "$F" --data-binary "user=agent1&lead_id=E2E-FKEY&api_key=$SECRET2" "$U$API"
is "--allow-query-key: api_key in a form body: 201, under the key's name" \
    "$CODE $(q -c "SELECT key_name FROM leadintake.intake_log WHERE lead_id =
                   (SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'E2E-FKEY')")" \
    "201 other"
http qkeybad "$U$API?user=agent1&api_key=wrong-$SECRET1"
is "wrong api_key in the query: 401" "$CODE" 401
http qkeytwice "$U$API?user=agent1&api_key=$SECRET1&api_key=$SECRET2"
is "api_key twice: 401" "$CODE" 401
http qkeyhdr -H "X-Dialer-Api-Key: wrong" "$U$API?user=agent1&api_key=$SECRET1"
is "a wrong header is not rescued by a right query key: 401" "$CODE" 401
http jkey -H "$J" --data-binary "{\"user\": \"agent1\", \"api_key\": \"$SECRET1\"}" "$U$API"
is "api_key inside a JSON body is not a credential: 401" "$CODE" 401

http jsecret -H "$K1" -H "$J" --data-binary \
    "{\"user\": \"agent1\", \"lead_id\": \"E2E-JSECRET\", \"api_key\": \"$SECRET2\",
      \"Phone_Pass\": \"$SECRET2\"}" "$U$API"
is "secrets inside a JSON body (with a header key): 201 (dropped by the extension)" "$CODE" 201
http fsecret -H "$K1" -H "$F" --data-binary \
    "user=agent1&lead_id=E2E-FSECRET&API_KEY=$SECRET2&orig_pass=$SECRET2" "$U$API"
is "secrets inside a form body (with a header key): 201" "$CODE" 201

# ---------------------------------------------------------------- query key: the minimal body
# Section 7: a key in the URL is known to every agent's browser, so such a request sees only
# id, status, the agent's username and what it sent itself; the header key sees the lead.
http minseed -H "$K1" -H "$J" --data-binary \
    '{"user": "agent2", "lead_id": "E2E-MIN", "first_name": "Priv", "last_name": "Ate",
      "phone_number": "07700 900556", "email": "priv@example.com", "date_of_birth": "1970-05-06",
      "address1": "1 Private Road", "comments": "private comment", "custom": "private extra"}' "$U$API"
MIN_ID=$(jget "$BODY" lead.id)
PRIVATE='priv@example|1970-05-06|Private|private|Priv|Ate|900556'
lead_keys() { python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["lead"])))' <<<"$1"; }
http minq "$U$API?user=agent1&lead_id=E2E-MIN&api_key=$SECRET1"
is "GET ?api_key= with someone else's lead id: 201 with success, created, message, lead" \
    "$CODE $(python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin))))' <<<"$BODY")" \
    "201 created,lead,message,success"
is "... the lead: only id, status, assigned_agent_username and the dialer_lead_id it sent" \
    "$(lead_keys "$BODY") $(jget "$BODY" lead.id)" \
    "assigned_agent_username,dialer_lead_id,id,status $MIN_ID"
is "... no stored personal data anywhere in the body" "$(grep -Ec "$PRIVATE" <<<"$BODY")" 0
http minform -H "$F" --data-binary "user=agent1&lead_id=E2E-MIN&api_key=$SECRET1&city=York" "$U$API"
is "form body with api_key: the field it sent (city), nothing stored" \
    "$CODE $(lead_keys "$BODY") $(jget "$BODY" lead.city) $(grep -Ec "$PRIVATE" <<<"$BODY")" \
    "201 assigned_agent_username,city,dialer_lead_id,id,status York 0"
http minredir "$U$API?user=agent1&lead_id=E2E-MIN&api_key=$SECRET1&first_name=Eve&redirect=1"
is "?api_key= with redirect=1: 303, Location with the lead id and only what it sent" \
    "$CODE $(header Location)" \
    "303 $DASH?from_dialer=true&lead_id=$MIN_ID&full_name=Eve&phone=&email=&notes="
http minhdr -H "$K1" "$U$API?user=agent1&lead_id=E2E-MIN"
is "the same GET with the header key: the whole lead" \
    "$CODE $(jget "$BODY" lead.email) $(jget "$BODY" lead.date_of_birth) $(jget "$BODY" lead.comments)" \
    "201 priv@example.com 1970-05-06 private comment"
http minhdrredir -H "$K1" "$U$API?user=agent1&lead_id=E2E-MIN&redirect=1"
is "... and its 303 carries the stored name, phone, e-mail and comments (as notes)" "$CODE $(header Location)" \
    "303 $DASH?from_dialer=true&lead_id=$MIN_ID&full_name=Eve%20Ate&phone=07700%20900556&email=priv%40example.com&notes=private%20comment"

# ---------------------------------------------------------------- browser flow
http redir -H "$K1" \
    "$U$API?user=agent1&lead_id=E2E-REDIR&first_name=Ann&last_name=Lee&phone_number=07700900401&redirect=1"
REDIR_ID=$(q -c "SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'E2E-REDIR'")
is "redirect=1 with --dashboard-url: 303 See Other" "$CODE" 303
like "Location is the dashboard with from_dialer, the lead id and the URL-encoded fields" \
    "$(header Location)" "^$DASH\\?from_dialer=true&lead_id=$REDIR_ID&full_name=Ann(%20|\\+)Lee&phone="
http redirform -H "$K1" -H "$F" --data-binary \
    "user=agent1&lead_id=E2E-REDIRF&redirect=1" "$U$API"
is "redirect=1 in a form body: 303" "$CODE" 303
http redirerr -H "$K1" "$U$API?user=agent9&redirect=1"
is "redirect=1 on an error: the error itself (404), no redirect" \
    "$CODE $(header Location)" "404 "
http redirjson -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-REDIRJ"}' \
    "$U$API?redirect=1"
is "JSON body with ?redirect=1: 303" "$CODE" 303

# ---------------------------------------------------------------- the URL of docs/vicidial.md
# As VICIdial sends it: its variables filled in (spaces as +), some left unexpanded.
VICI_URL=$(grep -m1 '^https://crm.example.com/api/leads/from-dialer/?api_key=KEY&user=' \
    "$ROOT/docs/vicidial.md")
if [ -n "$VICI_URL" ]; then
    VICI_FILLED=$(python3 - "$VICI_URL" "$U" "$SECRET1" <<'EOF2'
import sys
url, base, key = sys.argv[1:4]
url = url.replace("https://crm.example.com", base).replace("api_key=KEY", "api_key=" + key)
values = {"user": "agent2", "lead_id": "E2E-VICI", "phone_code": "44",
          "phone_number": "7700900999", "first_name": "Ann", "last_name": "Lee",
          "comments": "call+back+after+5", "SQLdate": "2024-01-15+10:30:00",
          "epoch": "1705314600", "server_ip": "10.0.0.5", "date_of_birth": "0000-00-00",
          "gmt_offset_now": "0.00", "email": "", "dispo": "INTRST"}
for name, value in values.items():
    url = url.replace("--A--%s--B--" % name, value)
print(url)
EOF2
)
    http vici "$VICI_FILLED"
    is "the dispo URL of docs/vicidial.md, as VICIdial fills it in: 201" "$CODE" 201
    is "... name, phone, comments, SQLdate, server_ip stored; unexpanded and zero values absent" \
        "$(q -c "SELECT concat_ws('|', full_name, phone_e164, comments, sql_date, host(server_ip),
                                  coalesce(vendor_id, 'none'), coalesce(date_of_birth::text, 'none'),
                                  extra->>'dispo', a.username)
                 FROM leadintake.leads l JOIN leadintake.agents a ON a.id = l.assigned_agent_id
                 WHERE dialer_lead_id = 'E2E-VICI'")" \
        "Ann Lee|+447700900999|call back after 5|2024-01-15 10:30:00|10.0.0.5|none|none|INTRST|agent2"
    http viciweb "$VICI_FILLED&redirect=1"
    is "... and as the web form URL (&redirect=1): 303 to the dashboard" \
        "$CODE $(header Location | cut -d'?' -f1)" "303 $DASH"
else
    not_ok "docs/vicidial.md has the dispo URL" "no line starting with the URL"
fi

# ---------------------------------------------------------------- healthz, metrics
http health "$U/healthz"
is "GET /healthz: 200" "$CODE" 200
http health2 "$U/healthz/"
is "GET /healthz/: 200" "$CODE" 200
http healthpost -X POST "$U/healthz"
is "POST /healthz: 405 with Allow" "$CODE $(header Allow)" "405 GET, HEAD"
http metrics "$U/metrics"
is "GET /metrics: 200" "$CODE" 200
like "metrics: Prometheus text" "$(header Content-Type)" '^text/plain'
check "metrics: requests by status" grep -Eq '^leadintake_http_requests_total\{code="201"\} [0-9]+' \
    "$T/metrics.body"
check "metrics: latency histogram" grep -Eq \
    '^leadintake_http_request_duration_seconds_bucket\{le="\+Inf"\} [0-9]+' "$T/metrics.body"
check "metrics: pool state" grep -Eq '^leadintake_db_pool_connections\{state="idle"\} [0-9]+' \
    "$T/metrics.body"

# ---------------------------------------------------------------- 64 concurrent posts
python3 - "$U" "$SECRET1" >"$T/concurrent.txt" 2>&1 <<'EOF'
import http.client, json, sys, threading, urllib.parse
url, key = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(url)
n = 64
body = json.dumps({"user": "agent1", "lead_id": "E2E-CONC", "phone_number": "07700 900555",
                   "first_name": "Con", "last_name": "Current"})
barrier = threading.Barrier(n)
results = []
lock = threading.Lock()
def run():
    status, created = 0, None
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.connect()
        barrier.wait(timeout=30)
        c.request("POST", "/api/leads/from-dialer/", body=body,
                  headers={"X-Dialer-Api-Key": key, "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        status = r.status
        created = json.loads(data).get("created")
    except Exception as e:
        status = repr(e)[:200]
    with lock:
        results.append((status, created))
threads = [threading.Thread(target=run) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print("201s=%d created=%d" % (sum(1 for s, _ in results if s == 201),
                              sum(1 for _, c in results if c is True)))
others = [s for s, _ in results if s != 201]
if others: print("others=%r" % others[:5])
EOF
is "64 concurrent posts of one lead: all 201, one created" "$(head -n1 "$T/concurrent.txt")" \
    "201s=64 created=1"
is "... and one row" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'E2E-CONC'
             OR phone_e164 = leadintake.phone_e164('07700 900555')")" 1

# ---------------------------------------------------------------- SIGHUP
printf 'dialer:%s\nother:%s\nlater:%s\n' "$SECRET1" "$SECRET2" "$SECRET3" >"$KEYS"
kill -HUP "$PID_main"
sleep 0.3
http hup -H "X-Dialer-Api-Key: $SECRET3" -H "$J" \
    --data-binary '{"user": "agent1", "lead_id": "E2E-HUP"}' "$U$API"
is "SIGHUP reloads the key file: a new key works" "$CODE" 201
printf 'broken line without colon\n' >"$KEYS"
kill -HUP "$PID_main"
sleep 0.3
http hup2 -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-HUP"}' "$U$API"
is "a bad key file on SIGHUP keeps the keys loaded before" "$CODE" 201
printf 'dialer:%s\nother:%s\n' "$SECRET1" "$SECRET2" >"$KEYS"
kill -HUP "$PID_main"
sleep 0.3

# ---------------------------------------------------------------- rate limit, allowlist
if start_shim limited --rate-limit 2 \
        --allow-ip 127.0.0.1/32 --allow-ip ::1 --dashboard-url "$DASH?src=dialer"; then
    # four at once on one connection, so that no token comes back in between
    codes=$(curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -D "$T/rl.hdr" \
        -w '%{http_code} ' -H "$K1" -H "$J" \
        --data-binary '{"user": "agent1", "lead_id": "E2E-RL"}' \
        "$URL_limited$API" "$URL_limited$API" "$URL_limited$API" "$URL_limited$API")
    HDRS=$(tr -d '\r' <"$T/rl.hdr")
    is "--rate-limit 2: a burst of 2, then 429" "$codes" "201 201 429 429 "
    like "429 has Retry-After" "$(header Retry-After)" '^[1-9][0-9]*$'
    http rlother -H "$K2" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-RL"}' \
        "$URL_limited$API"
    is "another key has its own bucket" "$CODE" 201
    sleep 1.1
    http rlagain -H "$K1" "$URL_limited$API?user=agent1&lead_id=E2E-RL2&redirect=1"
    is "after a second the key may send again (and --allow-ip 127.0.0.1/32 lets us in)" \
        "$CODE" 303
    like "a dashboard URL with a ? gets &" "$(header Location)" \
        "^$DASH\\?src=dialer&from_dialer=true&lead_id="
    http nqk -H "$J" "$URL_limited$API?user=agent1&api_key=$SECRET2"
    is "without --allow-query-key, api_key in the query: 401" "$CODE" 401
else
    not_ok "shim with --rate-limit starts" "$(cat "$T/limited.err")"
fi

if start_shim acl --allow-ip 10.0.0.0/8 --allow-ip fd00::/8; then
    http acl1 -H "$K1" -H "$J" -H 'X-Forwarded-For: 10.1.2.3' \
        --data-binary '{"user": "agent1"}' "$URL_acl$API"
    is "client not in --allow-ip: closed at accept, no answer (X-Forwarded-For ignored)" "$CODE" 000
    http acl2 "$URL_acl/healthz"
    is "... on every path" "$CODE" 000
else
    not_ok "shim with --allow-ip starts" "$(cat "$T/acl.err")"
fi

if [ -e /proc/net/if_inet6 ] && grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null \
    && SHIM_LISTEN='[::1]:0' start_shim v6 --allow-ip ::1/128; then
    http v6 -g "$URL_v6/healthz"
    is "IPv6: --listen [::1]:0 and --allow-ip ::1/128" "$CODE" 200
else
    skip "IPv6 loopback not available"
fi

# ---------------------------------------------------------------- connection timeout
if start_shim slow --timeout 1; then
    res=$(python3 - "$URL_slow" <<'EOF'
import socket, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
s = socket.create_connection((u.hostname, u.port), timeout=10)
s.sendall(b"POST /api/leads/from-dialer/ HTTP/1.1\r\nHost: x\r\n")   # and then nothing
t = time.time()
try:
    data = s.recv(1024)
    print("closed" if data == b"" else "answered")
except ConnectionResetError:
    print("closed")
except socket.timeout:
    print("still open")
print("%.1f" % (time.time() - t))
EOF
)
    is "--timeout 1: a client that stops sending is disconnected" "$(echo "$res" | head -n1)" \
        closed
else
    not_ok "shim with --timeout starts" "$(cat "$T/slow.err")"
fi

# ---------------------------------------------------------------- TLS
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 1 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
chmod 600 "$T/tls.key"
if start_shim tls --tls-cert "$T/tls.crt" --tls-key "$T/tls.key"; then
    like "TLS: the shim says https://" "$URL_tls" '^https://127\.0\.0\.1:[0-9]+$'
    http tls --cacert "$T/tls.crt" -H "$K1" -H "$J" \
        --data-binary '{"user": "agent1", "lead_id": "E2E-TLS"}' "$URL_tls$API"
    is "TLS: POST over HTTPS with the self-signed certificate: 201" "$CODE" 201
    http tlsplain "http://${URL_tls#https://}/healthz"
    check "TLS: plain HTTP on the TLS port gets no answer" test "$CODE" != 200
else
    not_ok "shim with TLS starts" "$(cat "$T/tls.err")"
fi

# ---------------------------------------------------------------- environment only
if start_shim_env envonly LEADINTAKE_DB="$CONNINFO" LEADINTAKE_LISTEN=127.0.0.1:0 \
        LEADINTAKE_API_KEY_FILE="$KEYS" LEADINTAKE_ALLOW_QUERY_KEY=true \
        LEADINTAKE_MAX_BODY=200 LEADINTAKE_DASHBOARD_URL="$DASH"; then
    http env1 "$URL_envonly$API?user=agent1&lead_id=E2E-ENV&api_key=$SECRET1&redirect=1"
    is "configured by LEADINTAKE_* variables only: query key and dashboard work (303)" \
        "$CODE" 303
    head -c 300 /dev/zero | tr '\0' 'b' >"$T/300"
    http env2 -H "$K1" -H "$J" --data-binary @"$T/300" "$URL_envonly$API"
    is "LEADINTAKE_MAX_BODY=200: a 300-byte body is 413" "$CODE" 413
else
    not_ok "shim configured by environment starts" "$(cat "$T/envonly.err")"
fi
HELP=$("$SHIM" --help 2>&1)
missing=""
for flag in db listen api-key-file allow-query-key dashboard-url max-body rate-limit allow-ip \
        tls-cert tls-key timeout; do
    var=LEADINTAKE_$(printf '%s' "$flag" | tr 'a-z-' 'A-Z_')
    grep -q -- "--$flag" <<<"$HELP" && grep -q "$var" <<<"$HELP" || missing+="$flag "
done
is "--help lists every flag with its LEADINTAKE_* variable" "$missing" ""

# ---------------------------------------------------------------- bad configuration
rc() { "$SHIM" "$@" >/dev/null 2>"$T/badcfg.err"; echo $?; }
is "missing key file: exit 2" "$(rc --db "$CONNINFO" --api-key-file "$T/nope")" 2
check "... with a clear message" grep -q 'cannot read API key file' "$T/badcfg.err"
is "no --api-key-file at all: exit 2" "$(env -u LEADINTAKE_API_KEY_FILE "$SHIM" >/dev/null 2>&1; echo $?)" 2
is "bad CIDR: exit 2" "$(rc --api-key-file "$KEYS" --allow-ip 10.0.0.0/33)" 2
check "... with a clear message" grep -q 'allow-ip' "$T/badcfg.err"
is "not an address: exit 2" "$(rc --api-key-file "$KEYS" --allow-ip example.com)" 2
is "unreadable certificate: exit 2" \
    "$(rc --api-key-file "$KEYS" --tls-cert "$T/nope.crt" --tls-key "$T/tls.key")" 2
check "... with a clear message" grep -q 'tls-cert' "$T/badcfg.err"
is "a certificate that is not PEM: exit 2" \
    "$(rc --api-key-file "$KEYS" --tls-cert "$KEYS" --tls-key "$T/tls.key")" 2
is "--tls-cert without --tls-key: exit 2" "$(rc --api-key-file "$KEYS" --tls-cert "$T/tls.crt")" 2
is "bad --listen: exit 2" "$(rc --api-key-file "$KEYS" --listen nowhere)" 2
is "bad --max-body: exit 2" "$(rc --api-key-file "$KEYS" --max-body lots)" 2
is "unknown option: exit 2" "$(rc --api-key-file "$KEYS" --frobnicate)" 2

# ---------------------------------------------------------------- a call that cannot finish
# A lock held elsewhere: the call waits, statement_timeout (--query-timeout) ends it, 503.
if start_shim qt --query-timeout 300; then
    coproc QT_LOCKER { PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -d "$DB" 2>&1; }
    qt_locker_pid=$QT_LOCKER_PID
    echo "BEGIN; LOCK TABLE leadintake.leads IN EXCLUSIVE MODE; SELECT 'locked';" \
        >&"${QT_LOCKER[1]}"
    locked=""
    read -r -t 10 locked <&"${QT_LOCKER[0]}"
    t0=$(now_ms)
    http qt -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-QT"}' \
        "$URL_qt$API"
    took=$(($(now_ms) - t0))
    echo "ROLLBACK;" >&"${QT_LOCKER[1]}"
    echo '\q' >&"${QT_LOCKER[1]}"
    wait "$qt_locker_pid" 2>/dev/null
    is "a call stuck on a lock past --query-timeout 300: 503 with Retry-After (${took} ms)" \
        "$locked $CODE $(header Retry-After)" "locked 503 1"
    check "... answered within 3 s" test "$took" -lt 3000
    http qt2 -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-QT"}' \
        "$URL_qt$API"
    is "... and the next call, lock gone, is 201" "$CODE" 201
    stop_pid "$PID_qt"
else
    not_ok "shim with --query-timeout starts" "$(cat "$T/qt.err")"
fi

# ---------------------------------------------------------------- database restart
# (-m fast: sessions end at once) 503 with Retry-After while it is down, then 201 again
# from the same shim process.
if db_stop >/dev/null 2>&1; then
    t0=$(now_ms)
    got=""
    while :; do
        http down -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-DOWN"}' \
            "$U$API"
        if [ "$CODE" = 503 ]; then got=503; break; fi
        [ $(($(now_ms) - t0)) -gt 6000 ] && break
        sleep 0.2
    done
    is "database down: 503 within 6 s (took $(($(now_ms) - t0)) ms)" "$got" 503
    is "503 has Retry-After: 1" "$(header Retry-After)" 1
    like "503 body is {\"error\": ...}" "$(jget "$BODY" error)" '.+'
    http downhealth "$U/healthz"
    is "database down: /healthz 503" "$CODE" 503
    db_start >/dev/null 2>&1
    t0=$(now_ms)
    got=""
    while :; do
        http up -H "$K1" -H "$J" --data-binary '{"user": "agent1", "lead_id": "E2E-DOWN"}' \
            "$U$API"
        if [ "$CODE" = 201 ]; then got=201; break; fi
        [ $(($(now_ms) - t0)) -gt 15000 ] && break
        sleep 0.2
    done
    is "database back: 201 again from the same shim (after $(($(now_ms) - t0)) ms)" "$got" 201
    check "... the shim was not restarted" kill -0 "$PID_main"
    http uphealth "$U/healthz"
    is "database back: /healthz 200" "$CODE" 200
else
    not_ok "stop the database" "could not stop it"
    db_start >/dev/null 2>&1
fi

# ---------------------------------------------------------------- SIGTERM drain
# metric NAME URL: the value of a metric of the shim at URL.
metric() {
    curl -s --max-time 5 "$2/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
if start_shim drain; then
    # in flight two ways: bodies still arriving (2 KB/s), and calls waiting on a lock that a
    # psql session (a coprocess) holds until after the SIGTERM
    coproc LOCKER { PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -d "$DB" 2>&1; }
    locker_pid=$LOCKER_PID    # bash unsets LOCKER_PID when the coprocess ends
    echo "BEGIN; LOCK TABLE leadintake.leads IN SHARE ROW EXCLUSIVE MODE; SELECT 'locked';" \
        >&"${LOCKER[1]}"
    locked=""
    read -r -t 10 locked <&"${LOCKER[0]}"
    is "a psql session holds a lock on leadintake.leads" "$locked" locked
    python3 -c 'import json; print(json.dumps({"user": "agent1", "padding": "x" * 3000}))' \
        >"$T/slowbody.tmpl"
    pids=()
    for i in 1 2 3 4; do
        sed "s/\"padding\"/\"lead_id\": \"E2E-TERM-S$i\", \"padding\"/" "$T/slowbody.tmpl" \
            >"$T/slow$i.json"
        curl -s -o /dev/null -w '%{http_code}' --max-time 60 --limit-rate 2k -H "$K1" -H "$J" \
            --data-binary @"$T/slow$i.json" "$URL_drain$API" >"$T/term-s$i.code" &
        pids+=($!)
        curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H "$K1" -H "$J" \
            --data-binary "{\"user\": \"agent1\", \"lead_id\": \"E2E-TERM-L$i\"}" \
            "$URL_drain$API" >"$T/term-l$i.code" &
        pids+=($!)
    done
    # wait until all 8 are in (the /metrics request itself makes 9)
    for i in $(seq 1 100); do
        [ "$(metric leadintake_http_requests_in_flight "$URL_drain")" = 9 ] && break
        sleep 0.05
    done
    is "8 requests in flight before SIGTERM (4 uploading, 4 waiting on the database)" \
        "$(metric leadintake_http_requests_in_flight "$URL_drain")" 9
    kill -TERM "$PID_drain"
    sleep 0.3
    http afterterm --max-time 3 "$URL_drain/healthz"
    is "after SIGTERM: no new connections" "$CODE" 000
    echo "COMMIT;" >&"${LOCKER[1]}"
    echo '\q' >&"${LOCKER[1]}"
    for p in "${pids[@]}"; do wait "$p"; done
    wait "$locker_pid" 2>/dev/null
    codes=""
    for f in "$T"/term-s*.code "$T"/term-l*.code; do codes+="$(cat "$f") "; done
    is "SIGTERM with 8 requests in flight: all answered 201" "$codes" \
        "201 201 201 201 201 201 201 201 "
    is "... and every 201 is a stored lead" \
        "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'E2E-TERM-%'")" 8
    for i in $(seq 1 200); do kill -0 "$PID_drain" 2>/dev/null || break; sleep 0.05; done
    wait "$PID_drain"
    is "the shim exits 0 after draining" "$?" 0
else
    not_ok "shim for the SIGTERM test starts" "$(cat "$T/drain.err")"
fi

# ---------------------------------------------------------------- logs and secrets
python3 - "$T/main.out" >"$T/logcheck.txt" 2>&1 <<'EOF'
import json, sys
bad, n = [], 0
need = {"time", "method", "path", "status", "duration_ms", "key", "client"}
for line in open(sys.argv[1]):
    n += 1
    try:
        d = json.loads(line)
    except Exception:
        bad.append("not JSON: " + line[:80]); continue
    if not need <= set(d):
        bad.append("missing %s" % (need - set(d)))
    if "?" in d.get("path", ""):
        bad.append("query string in path: " + d["path"])
print("lines=%d bad=%d" % (n, len(bad)))
for b in bad[:5]: print(b)
EOF
like "one JSON line per request on stdout (time, method, path, status, duration_ms, key, client)" \
    "$(head -n1 "$T/logcheck.txt")" '^lines=[1-9][0-9]* bad=0$'
check "the log line names the key, not the secret" grep -q '"key":"dialer"' "$T/main.out"
leaks=$(grep -l -e "$SECRET1" -e "$SECRET2" -e "$SECRET3" "$T"/*.out "$T"/*.err 2>/dev/null)
is "no secret in any shim output (stdout or stderr)" "$leaks" ""
check "no api_key in any request log" test -z "$(grep -l 'api_key' "$T"/*.out)"
# every row of every table of the extension (pg_dump would skip extension tables)
: >"$T/dump.txt"
for t in $(q -c "SELECT tablename FROM pg_tables WHERE schemaname = 'leadintake'"); do
    q -c "COPY leadintake.\"$t\" TO STDOUT" >>"$T/dump.txt"
done
check "the tables hold the test's data" grep -q 'E2E-QKEY' "$T/dump.txt"
is "no secret anywhere in the database: api_key redacted, pass dropped" \
    "$(grep -c -e "$SECRET1" -e "$SECRET2" -e "$SECRET3" -e 'dialer-password' "$T/dump.txt")" 0
is "redirect=1 is the shim's instruction, not lead data: not in extra" \
    "$(q -c "SELECT extra ? 'redirect' FROM leadintake.leads WHERE dialer_lead_id = 'E2E-REDIR'")" f

echo "1..$N"
[ "$FAILED" -eq 0 ]
