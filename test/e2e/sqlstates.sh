#!/usr/bin/env bash
# test/e2e/sqlstates.sh: the extension and the shim agree on which SQLSTATEs mean "the
# database cannot serve now" (the extension raises them to its caller instead of answering;
# the shim then waits, spools or answers 503). Each keeps the list as one table,
# unavailable_sqlstates (extension/leadintake.c, shim/db.c); this reads both tables and
# compares them. Prints TAP; needs no database.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

# codes FILE: the quoted codes of the unavailable_sqlstates initializer in FILE, sorted.
codes() {
    tr '\n' ' ' <"$1" | grep -o 'unavailable_sqlstates\[\] = {[^}]*}' \
        | grep -o '"[0-9A-Z]*"' | tr -d '"' | sort | tr '\n' ' '
}

echo "1..3"
EXT=$(codes "$ROOT/extension/leadintake.c")
SHIM=$(codes "$ROOT/shim/db.c")
like "the extension's table is found" "$EXT" "^08 .*55P03"
like "the shim's table is found" "$SHIM" "^08 .*55P03"
is "the two lists are equal" "$SHIM" "$EXT"
