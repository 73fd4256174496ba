# shellcheck shell=bash disable=SC2034  # OWN_TMP, OWN_CLUSTER, port, SHIM_*: read by the scripts
# test/e2e/tap.sh: what the end-to-end scripts (test/e2e/*.sh) share, sourced by each after
# scripts/lib.sh:
#   . "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
# (test/fuzz/run.sh sources it too, for its TAP output only.)
# Not a test itself: scripts/test.sh runs only the *executable* test/e2e/*.sh, and this file
# is not executable (keep it so).
#
# It owns
#   - the TAP output: the counters N (assertions so far) and FAILED (failed ones), which it
#     sets to 0, and ok, not_ok, is, like, check, skip, diag, bail;
#   - the temporary directory of a script (e2e_tmp) and the throwaway cluster of a script
#     run by hand with nothing set (e2e_own_cluster);
#   - starting and stopping shims: shim_url (wait for "listening on URL"), shim_started
#     (its bookkeeping: SHIM_PIDS, PID_<name>, URL_<name>), stop_pid;
#   - the rest of a script's set-up: e2e_database (DB, CONNINFO, q, qpg), e2e_key (KEY in
#     $T/keys), start_shim and must_start_shim, and e2e_cleanup with e2e_on_exit.
# Each script keeps its own plan line (`1..N`) and what only it needs.

N=0
FAILED=0
SHIM_PIDS=()     # every shim started (shim_started); e2e_cleanup stops them
OWN_CLUSTER=""   # the script's own cluster, if it started one (e2e_own_cluster)
SHIM_ARGS=()     # arguments start_shim gives every shim of the script

# ok DESC; not_ok DESC [DIAGNOSTIC-LINE...]: one assertion each.
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
    N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"
    shift
    local line
    for line in "$@"; do printf '#   %s\n' "$line"; done
}
# is DESC GOT EXPECTED: ok when GOT = EXPECTED; otherwise not ok, both shown as they are, or
# with TAP_IS_ONE_LINE=1 (cron.sh, notify.sh) each on one line, its newlines shown as '|'.
is() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    elif [ "${TAP_IS_ONE_LINE:-0}" = 1 ]; then
        not_ok "$1" "got:      $(printf '%s' "$2" | tr '\n' '|')" \
            "expected: $(printf '%s' "$3" | tr '\n' '|')"
    else
        not_ok "$1" "got:      $2" "expected: $3"
    fi
}
# like DESC GOT EXTENDED-REGEX
like() {
    if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1" "got:      $2" "expected: /$3/"; fi
}
# check DESC COMMAND...: ok when the command succeeds.
check() {
    local desc=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$desc"; else not_ok "$desc" "failed: $*"; fi
}
# skip WHY: one skipped assertion.
skip() { N=$((N + 1)); echo "ok $N # SKIP $1"; }
diag() { printf '# %s\n' "$*"; }
bail() { echo "Bail out! $*"; exit 1; }

# e2e_tmp NAME: T = the scratch directory, $LEADINTAKE_TEST_TMP when scripts/test.sh gives one
# (OWN_TMP=0), else a new /tmp/leadintake-e2e-NAME.XXXXXX that the script removes (OWN_TMP=1);
# mode 755 (the postgres user reads files in it).
e2e_tmp() {
    OWN_TMP=0
    if [ -n "${LEADINTAKE_TEST_TMP:-}" ]; then
        T=$LEADINTAKE_TEST_TMP
    else
        T=$(mktemp -d "/tmp/leadintake-e2e-$1.XXXXXX")
        OWN_TMP=1
    fi
    chmod 755 "$T"
}

# e2e_own_cluster [DB [-c name=value ...]]: starts a throwaway cluster in $T/pg (OWN_CLUSTER,
# its port in $port; the -c settings go to li_start_cluster) and exports PGHOST, PGPORT and
# PGUSER=postgres for it; with DB (may be ""), creates that database with the extension
# leadintake. Ends the script ("1..0 # SKIP" or "Bail out!") when it cannot.
e2e_own_cluster() {
    local db=${1:-} try
    [ $# -gt 0 ] && shift
    li_ensure_packages >/dev/null 2>&1 || true
    OWN_CLUSTER=$T/pg
    # three tries: another run may take the port between li_free_port and the start
    for try in 1 2 3; do
        port=$(li_free_port) || { echo "1..0 # SKIP no free port for a cluster"; exit 0; }
        li_start_cluster "$OWN_CLUSTER" "$port" "$@" 2>"$T/cluster-start.err" && break
        li_remove_cluster "$OWN_CLUSTER"
        if [ "$try" = 3 ]; then
            sed 's/^/# /' "$T/cluster-start.err"
            bail "cannot start a cluster"
        fi
    done
    PGHOST=$(li_sockdir "$OWN_CLUSTER")
    export PGHOST PGPORT=$port PGUSER=postgres
    if [ -n "$db" ]; then
        { li_psql "$OWN_CLUSTER" "$port" -d postgres -c "CREATE DATABASE $db" >/dev/null \
              && li_psql "$OWN_CLUSTER" "$port" -d "$db" -c 'CREATE EXTENSION leadintake' >/dev/null; } \
            || bail "cannot create the database"
    fi
}

# shim_url ERRFILE PID [SCHEME [TRIES [PAUSE]]]: waits, while PID runs, for the shim's
# "listening on SCHEME://..." line in ERRFILE (SCHEME an extended regex, https? by default;
# TRIES times PAUSE seconds, 100 x 0.05 by default) and prints its URL (nothing if none came).
shim_url() {
    local err=$1 pid=$2 scheme=${3:-https?} tries=${4:-100} pause=${5:-0.05} url=""
    for _ in $(seq 1 "$tries"); do
        url=$(grep -Eo "listening on $scheme://[^ ]+" "$err" | head -n1 | cut -d' ' -f3)
        [ -n "$url" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep "$pause"
    done
    printf '%s' "$url"
}

# shim_started NAME PID [SCHEME]: the bookkeeping of a shim just started in the background
# with its stderr in $T/NAME.err: adds PID to SHIM_PIDS, sets PID_<NAME>, waits for its URL
# (shim_url) and sets URL_<NAME>; fails when the shim never said where it listens.
shim_started() {
    local name=$1 pid=$2 url
    SHIM_PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    url=$(shim_url "$T/$name.err" "$pid" "${3:-https?}")
    printf -v "URL_$name" '%s' "$url"
    [ -n "$url" ]
}

# stop_pid PID: SIGTERM, up to 5 s to end, then SIGKILL; reaps it. Always succeeds.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- a script's set-up

# e2e_database NAME [-c name=value ...]: DB and CONNINFO: scripts/test.sh's database, or with
# nothing set NAME in a throwaway cluster of the script's own (e2e_own_cluster, with the
# settings given); PGUSER postgres. q runs psql on DB, qpg on the database postgres, both with
# the settings of Q_OPTIONS too ("-c name=value ...", for psql only: not the shims').
e2e_database() {
    if [ -n "${LEADINTAKE_TEST_DB:-}" ]; then
        DB=$LEADINTAKE_TEST_DB
        CONNINFO=${LEADINTAKE_TEST_CONNINFO:-"dbname=$DB"}
    else
        DB=$1
        e2e_own_cluster "$@"
        CONNINFO="host=$PGHOST port=$PGPORT dbname=$DB user=postgres"
    fi
    export PGUSER=${PGUSER:-postgres}
    unset PGDATABASE
}
q() {
    PGOPTIONS="-c client_min_messages=warning${Q_OPTIONS:+ $Q_OPTIONS}" \
        psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"
}
qpg() { DB=postgres q "$@"; }

# e2e_key NAME: a new key NAME:<random> in $T/keys (mode 600); its secret in KEY (exported,
# for test/e2e/rawhttp.py's {KEY}).
e2e_key() {
    KEY=$1-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export KEY
    printf '%s:%s\n' "$1" "$KEY" >"$T/keys"
    chmod 600 "$T/keys"
}

# start_shim NAME ARGS...: $SHIM listening on $SHIM_LISTEN (default a free loopback port) with
# --db $CONNINFO, --api-key-file $T/keys, SHIM_ARGS and ARGS; stdout and stderr in $T/NAME.out
# and .err (shim_started's bookkeeping). A call may set CONNINFO or SHIM_LISTEN for one shim:
#   CONNINFO="$CONNINFO user=r" start_shim r ...
start_shim() {
    local name=$1
    shift
    "$SHIM" --listen "${SHIM_LISTEN:-127.0.0.1:0}" --db "$CONNINFO" --api-key-file "$T/keys" \
        "${SHIM_ARGS[@]}" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    shim_started "$name" $!
}

# must_start_shim NAME ARGS...: start_shim, or bail out with the head of its stderr.
must_start_shim() {
    start_shim "$@" || bail "the shim $1 did not start: $(head -c 500 "$T/$1.err")"
}

# e2e_on_exit [FUNCTION]: at exit (or INT/TERM) stop SHIM_PIDS, run FUNCTION (the script's own
# clean-up, if any), remove the script's own cluster and scratch directory.
e2e_on_exit() {
    E2E_EXTRA_CLEANUP=${1:-}
    trap e2e_cleanup EXIT
    trap 'e2e_cleanup; exit 130' INT TERM
}
e2e_cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${SHIM_PIDS[@]}"; do stop_pid "$pid"; done
    [ -n "${E2E_EXTRA_CLEANUP:-}" ] && "$E2E_EXTRA_CLEANUP"
    [ -n "${OWN_CLUSTER:-}" ] && li_remove_cluster "$OWN_CLUSTER" >/dev/null 2>&1
    [ "${OWN_TMP:-0}" = 1 ] && rm -rf -- "$T"
}
