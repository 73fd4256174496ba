#!/usr/bin/env bash
# test/package/run.sh (`make test-deb`): the Debian packages as an administrator meets them, on
# a throwaway Debian 12 root (it installs and purges packages: never on a shared machine).
# Builds them (make deb), installs both, creates the extension in a cluster, starts the shim
# from the installed unit's command, user and environment file, posts a lead; builds a
# higher version, upgrades (ALTER EXTENSION ... UPDATE included), posts again; purges.
# Prints TAP lines and "N passed, N failed".
#
#   FRESH_REF=prod-ha ../shared/fresh/run.sh . 'bash test/package/run.sh'
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/scripts/lib.sh"
PGPORT=${LEADINTAKE_PKGTEST_PGPORT:-55410}
HTTPPORT=${LEADINTAKE_PKGTEST_HTTPPORT:-55411}
T=$(mktemp -d /tmp/leadintake-pkgtest.XXXXXX)
chmod 755 "$T"
UNIT=/lib/systemd/system/leadintake-shim.service
KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
pass=0 fail=0 n=0 shim_pid=

ok() { n=$((n + 1)); if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi; }
check() { local d=$1; shift; "$@" >"$T/out" 2>&1; local rc=$?; ok $rc "$d"; [ $rc = 0 ] || sed 's/^/#   /' "$T/out"; return $rc; }
psql_crm() { (cd / && runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -p "$PGPORT" -d crm "$@"); }

cleanup() {
    [ -n "$shim_pid" ] && kill "$shim_pid" 2>/dev/null
    pg_dropcluster --stop 15 pkgtest 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then li_die "run as root (it installs packages)"; fi
ctl=/usr/share/postgresql/15/extension/leadintake.control
if [ -e "$ctl" ] && ! dpkg -S "$ctl" >/dev/null 2>&1 && [ -z "${LEADINTAKE_PKGTEST_FORCE:-}" ]; then
    li_die "$ctl was installed by make install: this test installs and purges packages, run it on a throwaway root (../shared/fresh/run.sh)"
fi

# -- build: this tree, and the same at a higher version with a no-op extension update
extver=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$here/leadintake.control")
newver="$extver+test1"
LEADINTAKE_DEB_OUT=$T/v1 bash "$here/debian/build-debs.sh" || li_die "make deb failed"
ok 0 "make deb: both packages built, lintian without errors ($extver)"
prepare="sed -i \"s/^default_version *=.*/default_version = '$newver'/\" leadintake.control
printf '%s\n' '-- Test-only (test/package/run.sh): a version with nothing to change, so that' \
    '-- the package upgrade test can run ALTER EXTENSION leadintake UPDATE.' \
    >extension/leadintake--$extver--$newver.sql
{ printf 'leadintake ($newver) bookworm; urgency=medium\n\n  * Test-only rebuild at a higher version (test/package/run.sh).\n\n'
  printf ' -- %s  %s\n\n' \"\$(dpkg-parsechangelog -S Maintainer)\" \"\$(date -R)\"
  cat debian/changelog; } >debian/changelog.new && mv debian/changelog.new debian/changelog"
LEADINTAKE_DEB_OUT=$T/v2 LEADINTAKE_DEB_PREPARE=$prepare bash "$here/debian/build-debs.sh" \
    || li_die "the rebuild at $newver failed"
ok 0 "rebuilt at $newver"

# -- install
export DEBIAN_FRONTEND=noninteractive
check "apt-get install of both packages (dependencies from Debian)" \
    apt-get install -y -q --no-install-recommends "$T"/v1/postgresql-15-leadintake_*.deb "$T"/v1/leadintake-shim_*.deb
check "the leadintake system user exists" id leadintake
check "/etc/leadintake/keys: empty, leadintake:leadintake 0600" \
    test "$(stat -c '%U:%G %a %s' /etc/leadintake/keys)" = "leadintake:leadintake 600 0"
check "/etc/leadintake/shim.env: a conffile, root:leadintake 0640" \
    bash -c 'test "$(stat -c "%U:%G %a" /etc/leadintake/shim.env)" = "root:leadintake 640" && grep -qx /etc/leadintake/shim.env /var/lib/dpkg/info/leadintake-shim.conffiles'
check "/var/lib/leadintake/spool: leadintake 0700" \
    test "$(stat -c '%U %a' /var/lib/leadintake/spool)" = "leadintake 700"
check "leadintake-shim --version is the package's version" \
    test "$(/usr/bin/leadintake-shim --version)" = "leadintake-shim $extver"
check "the extension's files are in PostgreSQL 15's directories" \
    test -e /usr/lib/postgresql/15/lib/leadintake.so -a -e /usr/share/postgresql/15/extension/leadintake.control
check "systemd-analyze verify accepts the unit" systemd-analyze verify "$UNIT"
systemd-analyze security --offline=true "$UNIT" >"$T/security" 2>&1
score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$T/security")
check "systemd-analyze security scores the unit ($score)" test -n "$score"
echo "# systemd-analyze security: $(grep 'Overall exposure' "$T/security")"

# -- a cluster, the database, the extension, the shim's role (peer authentication)
check "a cluster (pg_createcluster) on port $PGPORT" \
    pg_createcluster 15 pkgtest -p "$PGPORT" --start
setup_db() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d postgres -c 'CREATE DATABASE crm') &&
    psql_crm -c 'CREATE EXTENSION leadintake' &&
    psql_crm -c "$(li_shim_role_sql leadintake)" &&
    psql_crm -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES ('agent1', 'Agent One', '1001')"
}
check "CREATE EXTENSION leadintake from the package, the shim's role, an agent" setup_db

# -- the shim, as the unit starts it: its User=, ExecStart= and EnvironmentFile=
sed -i -e "s|^LEADINTAKE_DB=.*|LEADINTAKE_DB=\"host=/var/run/postgresql port=$PGPORT dbname=crm user=leadintake\"|" \
    -e "s|^LEADINTAKE_LISTEN=.*|LEADINTAKE_LISTEN=127.0.0.1:$HTTPPORT|" /etc/leadintake/shim.env
printf 'dialer:%s\n' "$KEY" >>/etc/leadintake/keys
cp -p /etc/leadintake/keys "$T/keys.before"
start_shim() {
    local user exec envfile
    user=$(sed -n 's/^User=//p' "$UNIT"); exec=$(sed -n 's/^ExecStart=//p' "$UNIT")
    envfile=$(sed -n 's/^EnvironmentFile=//p' "$UNIT")
    # shellcheck disable=SC2086 # ExecStart is a command line
    # shellcheck disable=SC1090 # the unit's EnvironmentFile=
    (set -a; . "$envfile"; set +a; cd / && exec setpriv --reuid="$user" --regid="$user" --init-groups -- $exec) >>"$T/shim.log" 2>&1 &
    shim_pid=$!
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$HTTPPORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    cat "$T/shim.log"; return 1
}
stop_shim() { kill "$shim_pid" 2>/dev/null; wait "$shim_pid" 2>/dev/null; shim_pid=; }
post() {  # post LEAD_ID PHONE: prints the status
    curl -s -o "$T/body" -w '%{http_code}' -H "X-Dialer-Api-Key: $KEY" -H 'Content-Type: application/json' \
        -d "{\"user\": \"agent1\", \"lead_id\": \"$1\", \"first_name\": \"Pat\", \"phone_number\": \"$2\"}" \
        "http://127.0.0.1:$HTTPPORT/api/leads/from-dialer/"
}
check "the installed shim starts as the unit's user with the packaged environment file" start_shim
check "it runs as leadintake" test "$(ps -o user= -p "$shim_pid" | tr -d ' ')" = leadintake
check "a posted lead is answered 201" test "$(post PKG1 '07700 900001')" = 201
check "and is in the database" test "$(psql_crm -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'PKG1'")" = 1

# -- upgrade to the rebuilt packages
check "apt-get install of the $newver packages (upgrade)" \
    apt-get install -y -q --no-install-recommends "$T"/v2/postgresql-15-leadintake_*.deb "$T"/v2/leadintake-shim_*.deb
check "both packages are at $newver" \
    test "$(dpkg-query -W -f='${Version} ' postgresql-15-leadintake leadintake-shim)" = "$newver $newver "
check "the upgraded leadintake-shim --version is $newver" \
    test "$(/usr/bin/leadintake-shim --version)" = "leadintake-shim $newver"
check "the key file is kept as it was" cmp /etc/leadintake/keys "$T/keys.before"
check "the key file keeps leadintake:leadintake 0600" test "$(stat -c '%U:%G %a' /etc/leadintake/keys)" = "leadintake:leadintake 600"
check "the changed environment file is kept, root:leadintake 0640" \
    bash -c "grep -q '^LEADINTAKE_LISTEN=127.0.0.1:$HTTPPORT' /etc/leadintake/shim.env && test \"\$(stat -c '%U:%G %a' /etc/leadintake/shim.env)\" = root:leadintake\ 640"
check "ALTER EXTENSION leadintake UPDATE goes to $newver" \
    test "$(psql_crm -c 'ALTER EXTENSION leadintake UPDATE' -c "SELECT extversion FROM pg_extension WHERE extname = 'leadintake'")" = "$newver"
stop_shim
check "the upgraded shim starts" start_shim
check "a lead posted after the upgrade is answered 201" test "$(post PKG2 '07700 900002')" = 201
check "both leads are in the database" \
    test "$(psql_crm -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id IN ('PKG1', 'PKG2')")" = 2

# -- purge
stop_shim
pg_dropcluster --stop 15 pkgtest
check "apt-get purge of both packages" apt-get purge -y -q leadintake-shim postgresql-15-leadintake
check "nothing of them is left in dpkg" bash -c '! dpkg-query -W -f="\${Status}\n" leadintake-shim postgresql-15-leadintake 2>/dev/null | grep -q installed'
check "/etc/leadintake is gone" test ! -e /etc/leadintake
check "/var/lib/leadintake is gone" test ! -e /var/lib/leadintake
check "the extension's files are gone" test ! -e /usr/lib/postgresql/15/lib/leadintake.so -a ! -e /usr/share/postgresql/15/extension/leadintake.control

echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
