#!/usr/bin/env bash
# test/e2e/invalid_keep.sh: VICIdial's Dispo Call URL (a GET, sent once, never retried)
# through the real shim, on a login role with `ALTER ROLE ... SET leadintake.invalid_fields
# = 'keep'` (contract section 8, docs/vicidial.md): a bad field costs the field, not the
# lead. The same request through a role without the setting is the 400 of section 6 (the
# control that the setting, not the request, makes the difference). Prints TAP.
#
# Run by scripts/test.sh, or by hand with nothing set (a throwaway cluster of its own).

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp invalid_keep

KEEP_ROLE=e2e_keep_shim
STRICT_ROLE=e2e_strict_shim

e2e_database e2e_invalid_keep
drop_roles() {
    q -c "DROP ROLE IF EXISTS $KEEP_ROLE" -c "DROP ROLE IF EXISTS $STRICT_ROLE" >/dev/null 2>&1
}
e2e_on_exit drop_roles

echo "1..8"
[ -x "$SHIM" ] || bail "the shim is not built ($SHIM)"

e2e_key vicidial-dispo

q -c "INSERT INTO leadintake.agents (username, dialer_user_id) VALUES ('agent1', '1001')" \
    >/dev/null || bail "cannot seed the agent"
drop_roles
{ li_shim_role_sql "$KEEP_ROLE"; li_shim_role_sql "$STRICT_ROLE"
  echo "ALTER ROLE $KEEP_ROLE SET leadintake.invalid_fields = 'keep';"; } | q >/dev/null \
    || bail "cannot create the shim's roles"

# each logs in as its role
CONNINFO="$CONNINFO user=$KEEP_ROLE" must_start_shim keep --allow-query-key
CONNINFO="$CONNINFO user=$STRICT_ROLE" must_start_shim strict --allow-query-key

# What VICIdial's dispo URL sends: a GET, the key in the URL, a list's bad values.
query() {
    printf 'api_key=%s&user=agent1&lead_id=%s&first_name=Ann&last_name=Lee' "$KEY" "$1"
    printf '&phone_number=07700+900321&email=n%%2Fa&date_of_birth=17%%2F05%%2F1990'
}
get() { curl -s -o "$T/body" -w '%{http_code}' --max-time 20 "$1/api/leads/from-dialer/?$2"; }

status=$(get "$URL_strict" "$(query KEEP-1)")
is "without the setting: a bad field is a 400" "$status" 400
is "... and no lead" "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'KEEP-1'")" 0

status=$(get "$URL_keep" "$(query KEEP-1)")
is "the role set to keep: 201 for the same request" "$status" 201
is "the body's warnings name both fields" \
    "$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1]))["warnings"]))' "$T/body")" \
    "['date_of_birth', 'email']"
is "the lead has the good fields and not the bad ones" \
    "$(q -c "SELECT concat_ws('|', full_name, phone_e164, email, date_of_birth) FROM leadintake.leads
              WHERE dialer_lead_id = 'KEEP-1'")" \
    "Ann Lee|+447700900321"
is "the bad values are in extra._invalid as sent" \
    "$(q -c "SELECT extra->'_invalid'->'email'->>'value' || ' ' ||
                    (extra->'_invalid'->'date_of_birth'->>'value')
               FROM leadintake.leads WHERE dialer_lead_id = 'KEEP-1'")" \
    "n/a 17/05/1990"
like "intake_log.error names them, with the key's name" \
    "$(q -c "SELECT key_name || ' ' || status || ' ' || error FROM leadintake.intake_log
              WHERE payload->>'lead_id' = 'KEEP-1' AND status = 201")" \
    '^vicidial-dispo 201 Invalid fields kept in extra._invalid: date_of_birth, email \(date_of_birth: .*; email: .*\)$'

# A repeated known form key is an array: kept too, and the lead still made.
status=$(get "$URL_keep" "api_key=$KEY&user=agent1&lead_id=KEEP-2&city=Leeds&city=York")
is "a repeated known key: 201, the list kept in extra._invalid" \
    "$status $(q -c "SELECT extra->'_invalid'->'city'->'value' FROM leadintake.leads
                       WHERE dialer_lead_id = 'KEEP-2'")" \
    '201 ["Leeds", "York"]'
