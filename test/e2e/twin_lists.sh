#!/usr/bin/env bash
# test/e2e/twin_lists.sh: the two lists the extension and the shim must both keep are equal.
# Each side keeps each list as one C initializer; this reads both and compares them:
#   - the SQLSTATEs that mean "the database cannot serve now" (unavailable_sqlstates:
#     extension/leadintake.c, shim/db.c): the extension raises them to its caller, the shim
#     then waits, spools or answers 503;
#   - the dialer's secrets (li_secrets: extension/fields.c; secret_keys: shim/form.c): never
#     stored nor logged; the shim drops them before a payload reaches the database.
# Prints TAP; needs no database.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

# strings FILE NAME: the quoted strings of the initializer of array NAME in FILE, sorted.
strings() {
    tr '\n' ' ' <"$1" | grep -o "$2\[[A-Z_]*\] = {[^}]*}" \
        | grep -o '"[^"]*"' | tr -d '"' | sort | tr '\n' ' '
}

echo "1..6"
EXT=$(strings "$ROOT/extension/leadintake.c" unavailable_sqlstates)
SHIM=$(strings "$ROOT/shim/db.c" unavailable_sqlstates)
like "the extension's SQLSTATE table is found" "$EXT" "^08 .*55P03"
like "the shim's SQLSTATE table is found" "$SHIM" "^08 .*55P03"
is "the two SQLSTATE lists are equal" "$SHIM" "$EXT"

EXT=$(strings "$ROOT/extension/fields.c" li_secrets)
SHIM=$(strings "$ROOT/shim/form.c" secret_keys)
like "the extension's secret keys are found" "$EXT" "api_key .*pass"
like "the shim's secret keys are found" "$SHIM" "api_key .*pass"
is "the two secret-key lists are equal" "$SHIM" "$EXT"
