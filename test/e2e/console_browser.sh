#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name> is set by shim_started (printf -v)
# test/e2e/console_browser.sh: the console (contract section 9) in a real browser: headless
# Chromium driven by test/e2e/console_browser.py (Selenium), against a shim started here with
# a console key and a dialer key. Prints TAP.
#
# The story, each step an assertion (console_browser.py says each): sign in; a request for
# the unknown agent agent9, sent by curl, appears in the live list; its detail names the
# reason; agent9 is added on the agents page with the keyboard alone (then agent1 is edited,
# deactivated and activated); agent9's failure group is replayed; the replay row shows 201
# and the lead exists; the set-up page's Dispo Call URL, filled in as VICIdial does,
# creates a lead; "send a test lead" shows 201. Then every page
# at 1280 and 390 px: screenshots in test/results/console/, and at 390 px no page scrolls
# sideways. Last: sign-out, and no CSP violation or script error in the browser's log.
#
# Needs chromium, chromium-driver and python3-selenium (scripts/lib.sh LI_PACKAGES; installed
# here when missing and run as root). Run by scripts/test.sh or by hand with nothing set (it
# then starts a throwaway cluster of its own).

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
PLAN=36
e2e_tmp console_browser
e2e_database e2e_console_browser
# shellcheck disable=SC2317  # run by e2e_cleanup
drop_role() { q -c "DROP ROLE IF EXISTS e2e_console_browser" >/dev/null 2>&1; }
e2e_on_exit drop_role
[ -x "$SHIM" ] || bail "the shim is not built ($SHIM)"
li_ensure_packages chromium chromium-driver python3-selenium >/dev/null 2>&1 \
    || bail "chromium, chromium-driver or python3-selenium is missing and cannot be installed"
[ -x /usr/bin/chromedriver ] || bail "no /usr/bin/chromedriver"

q -c "INSERT INTO leadintake.agents (username, display_name) VALUES ('agent1', 'Agent One')
      ON CONFLICT DO NOTHING" >/dev/null || bail "cannot seed"
e2e_key dialer
CONSOLE_KEY=ops-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'ops:%s\n' "$CONSOLE_KEY" >"$T/console-keys"
chmod 600 "$T/console-keys"

# the console's calls as a role of leadintake_console alone (docs/console.md), as deployed;
# a role is the cluster's: dropped at the end
ROLE=e2e_console_browser
q -c "DROP ROLE IF EXISTS $ROLE" -c "CREATE ROLE $ROLE LOGIN IN ROLE leadintake_console" \
    >/dev/null || bail "cannot create the console's role (extension 1.6?)"
must_start_shim main --allow-query-key --console-key-file "$T/console-keys" \
    --console-listen 127.0.0.1:0 --console-db "$CONNINFO user=$ROLE"
# its line "console on URL/console/ (...)" says where the console listens
CONSOLE_URL=""
for _ in $(seq 1 100); do
    CONSOLE_URL=$(grep -Eo 'console on https?://[^ ]+/console/' "$T/main.err" | head -n1 | cut -d' ' -f3)
    [ -n "$CONSOLE_URL" ] && break
    sleep 0.05
done
[ -n "$CONSOLE_URL" ] || bail "the shim did not say where the console listens: $(head -c 500 "$T/main.err")"

# some traffic first, so that the pages (and their screenshots) show what they are for: three
# leads, and a 400 that stays open (a bad e-mail address: its page lists the field's reason)
send() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "X-Dialer-Api-Key: $KEY" \
        --data-urlencode user=agent1 "$@" "${URL_main%/}/api/leads/from-dialer/"
}
for i in 1 2 3; do
    [ "$(send --data-urlencode "lead_id=SEED-$i" --data-urlencode "phone_number=07700 90011$i" \
          --data-urlencode "first_name=Seed $i")" = 201 ] || bail "seed lead $i was not created"
done
[ "$(send --data-urlencode lead_id=SEED-BAD --data-urlencode email=n/a)" = 400 ] \
    || bail "the seed with a bad e-mail address was not a 400"

echo "1..$PLAN"
RESULTS=$ROOT/test/results/console
mkdir -p "$RESULTS"
CONSOLE_URL=$CONSOLE_URL INTAKE_URL=${URL_main%/}/api/leads/from-dialer/ \
    CONSOLE_KEY=$CONSOLE_KEY CONSOLE_KEY_NAME=ops DIALER_KEY=$KEY DIALER_KEY_NAME=dialer \
    RESULTS_DIR=$RESULTS LEADINTAKE_DB=$DB HOME=$T \
    /usr/bin/python3 "$ROOT/test/e2e/console_browser.py"
rc=$?
[ "$rc" -eq 0 ] || diag "console_browser.py exited with $rc; the shim's stderr: $(tail -c 800 "$T/main.err")"
exit "$rc"
