#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name> are set by shim_started (printf -v)
# test/e2e/vicidial.sh: what VICIdial (and people testing by hand) really send (issue 14).
# Prints TAP.
#
#   1. Form and query values that are not valid UTF-8 are Windows-1252 (VICIdial on a
#      latin1 database): Jos%E9 is stored as José; valid UTF-8 is left as it is.
#   2. `curl -d '{...}'` (a JSON object sent with the form content type) is read as JSON.
#   3. redirect (1, true, yes, any case) gives the 303; redirect is never stored in extra.
#   4. The redirect's notes is the lead's notes, else its comments.
#   5. A 401 names the header and says whether api_key in the URL is enabled here.
#   6. The Dispo Call URL scripts/demo.sh prints (li_vicidial_url) is one the shim takes.
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
e2e_tmp vicidial

e2e_database e2e_vicidial
e2e_on_exit
[ -x "$SHIM" ] || bail "the shim is not built ($SHIM)"
q -c "INSERT INTO leadintake.agents (username) VALUES ('agent1') ON CONFLICT DO NOTHING" \
    >/dev/null || bail "cannot seed"
e2e_key vici
H="X-Dialer-Api-Key: $KEY"
API=/api/leads/from-dialer/
DASH=https://crm.example.test/dashboard

echo "1..27"

# http CURL-ARGS...: sets CODE, BODY and LOC (the Location header, "" when none).
http() {
    CODE=$(curl -s --max-time 20 -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$@")
    BODY=$(cat "$T/body")
    LOC=$(tr -d '\r' <"$T/hdr" | sed -n 's/^[Ll]ocation: //p')
}
# col LEAD_ID SQL-EXPRESSION: a value of the stored lead.
col() { q -c "SELECT $2 FROM leadintake.leads WHERE dialer_lead_id = '$1'"; }

start_shim main --allow-query-key --dashboard-url "$DASH" || bail "the shim did not start"
start_shim nokey --dashboard-url "$DASH" || bail "the second shim did not start"
U=$URL_main

# ---------------------------------------------------------------- 1. text encoding
http -H "$H" "$U$API?user=agent1&lead_id=V-LAT1&first_name=Jos%E9&last_name=M%FCller"
is "latin1 query (Jos%E9, M%FCller): 201" "$CODE" 201
is "... stored as UTF-8 José Müller" "$(col V-LAT1 "first_name || ' ' || last_name")" "José Müller"
http -H "$H" "$U$API?user=agent1&lead_id=V-UTF1&first_name=Jos%C3%A9"
is "valid UTF-8 query (Jos%C3%A9): stored as José, not converted again" \
    "$CODE $(col V-UTF1 first_name)" "201 José"
http -H "$H" --data-binary 'user=agent1&lead_id=V-LAT2&first_name=Ren%E9&comments=%93quoted%94+%80+5%85' \
    "$U$API"
is "latin1 form body: cp1252's 0x80-0x9F too (quotes, euro, ellipsis)" \
    "$CODE $(col V-LAT2 "first_name || '|' || comments")" "201 René|“quoted” € 5…"
http -H "$H" --data-binary 'user=agent1&lead_id=V-LAT3&city=K%C3%B6ln&state=K%F6ln' "$U$API"
is "decided per value: one UTF-8 value and one latin1 value in one form" \
    "$CODE $(col V-LAT3 "city || '|' || state")" "201 Köln|Köln"
http -H "$H" "$U$API?user=agent1&lead_id=V-LAT4&x%E9=1&odd=%81"
is "a latin1 key is converted too; cp1252's undefined 0x81 stays U+0081 (as MySQL's latin1)" \
    "$CODE $(col V-LAT4 "extra->>'xé' || '|' || (extra->>'odd' = U&'\\0081')")" "201 1|true"

# ---------------------------------------------------------------- 2. curl -d '{...}'
http -H "$H" -d '{"user": "agent1", "lead_id": "V-CURLD", "first_name": "Ann"}' "$U$API"
is "curl -d '{...}' without a Content-Type: read as JSON, 201" \
    "$CODE $(col V-CURLD "first_name || '|' || (extra = '{}')")" "201 Ann|true"
http -H "$H" -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-binary $' \n{"user": "agent1", "lead_id": "V-CURLD2", "city": "a=b&c"}\r\n' "$U$API"
is "... whitespace around the object is allowed; = and & inside it are JSON text" \
    "$CODE $(col V-CURLD2 city)" "201 a=b&c"
http -H "$H" -d '{"user": "agent1", "lead_id": "V-CURLD3"}' "$U$API?first_name=Q"
is "... and is a JSON body: other query parameters are a 400" \
    "$CODE $(grep -c 'not accepted with a JSON body' <<<"$BODY")" "400 1"
http -H "$H" -d '{"user": "agent1", "lead_id": "V-CURLD4", "first_name": }' "$U$API"
is "... an invalid JSON object is the extension's 400, kept in raw_body" \
    "$CODE $(q -c "SELECT count(*) FROM leadintake.intake_log WHERE raw_body LIKE '%V-CURLD4%'")" \
    "400 1"
http -H "$H" -d 'user=agent1&lead_id=V-FORM&first_name={x}' "$U$API"
is "a plain form is still a form" "$CODE $(col V-FORM first_name)" "201 {x}"

# ---------------------------------------------------------------- 3. redirect
for v in true yes TRUE Yes 1; do
    http -H "$H" "$U$API?user=agent1&lead_id=V-R-$v&redirect=$v"
    is "redirect=$v: 303 to the dashboard" "$CODE ${LOC%%\?*}" "303 $DASH"
done
http -H "$H" --data-binary 'user=agent1&lead_id=V-R-F&redirect=yes' "$U$API"
is "redirect=yes in a form body: 303" "$CODE" 303
http -H "$H" "$U$API?user=agent1&lead_id=V-R-0&redirect=0"
is "redirect=0: 201, no redirect" "$CODE$LOC" 201
is "redirect is stored in no lead's extra, whatever its value" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE extra ? 'redirect'")
$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE payload ? 'redirect'")" "0
0"

# ---------------------------------------------------------------- 4. the redirect's notes
http -H "$H" "$U$API?user=agent1&lead_id=V-N1&comments=call+back+after+5&redirect=1"
is "redirect: notes from comments when the lead has no notes" "$CODE ${LOC##*&}" \
    "303 notes=call%20back%20after%205"
http -H "$H" "$U$API?user=agent1&lead_id=V-N2&comments=C&notes=N&redirect=1"
is "... and the lead's notes when it has them" "$CODE ${LOC##*&}" "303 notes=N"

# ---------------------------------------------------------------- 5. the 401
http "$U$API?user=agent1"
is "401 without a key" "$CODE" 401
like "... names the header and says api_key in the URL is enabled here" "$BODY" \
    'X-Dialer-Api-Key.*api_key.*enabled'
NOKEY_BODY=$BODY
http -H "X-Dialer-Api-Key: wrong-$KEY" "$U$API?user=agent1"
is "... a wrong key gets the very same answer (nothing says whether a key exists)" \
    "$CODE $BODY" "401 $NOKEY_BODY"
http "$URL_nokey$API?user=agent1&api_key=$KEY"
like "without --allow-query-key: the 401 says api_key in the URL is not accepted here" \
    "$CODE $BODY" '^401 .*X-Dialer-Api-Key.*api_key.*not (enabled|accepted)'

# ---------------------------------------------------------------- 6. the demo's dispo URL
DEMO_URL=$(li_vicidial_url "$U$API" "$KEY" 2>/dev/null)
is "li_vicidial_url: every field of docs/vicidial.md's URL as --A--field--B--, the key as api_key" \
    "$(grep -o -- '--A--[A-Za-z_]*--B--' <<<"$DEMO_URL" | wc -l) $(grep -c "^$U$API?api_key=$KEY&" <<<"$DEMO_URL")" \
    "$(grep -m1 '^https://crm.example.com/api/leads/from-dialer/?api_key=KEY&' "$ROOT/docs/vicidial.md" \
        | grep -o -- '--A--[A-Za-z_]*--B--' | wc -l) 1"
# as VICIdial sends it: user and lead_id filled in, every other variable left unexpanded
http "$(sed 's/--A--user--B--/agent1/; s/--A--lead_id--B--/V-DEMO/' <<<"$DEMO_URL")"
is "... and, filled in as VICIdial would, it creates the lead (201)" \
    "$CODE $(col V-DEMO "coalesce(first_name, 'none')")" "201 none"

exit $((FAILED > 0))
