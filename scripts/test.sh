#!/usr/bin/env bash
# shellcheck disable=SC2119  # lib.sh functions take optional arguments of their own
# scripts/test.sh: the whole leadintake test suite (README: `bash scripts/test.sh`; CI: .ci/run).
#
# What it does
#   1. installs the Debian packages it needs (nothing when they are there: see scripts/lib.sh);
#   2. builds and installs the extension (`make`, `make install`), then builds the shim
#      (`make shim`; a shim/ without a Makefile yet is reported and skipped, a shim that does
#      not build counts as one failure);
#   3. starts a throwaway PostgreSQL 15 cluster in a mktemp directory, on a free port in
#      54320-54399 (socket in the temporary directory, also 127.0.0.1), default settings;
#   4. runs the suites, printing each one's output:
#        pg_regress   `make installcheck` (the Makefile's REGRESS list: sql/ vs expected/,
#                     output in test/results/, head of regression.diffs shown on failure);
#        pgTAP        every test/pgtap/*.sql through pg_prove, each file in a fresh database
#                     that has the extensions pgtap and dblink (the file creates and drops
#                     leadintake itself);
#        end-to-end   every executable test/e2e/*.sh, each in a fresh database that already
#                     has `CREATE EXTENSION leadintake` (no agents: the script seeds them);
#        fuzz         test/fuzz/run.sh: each libFuzzer harness for FUZZ_SECONDS (15) seconds,
#                     one per CPU at a time, one TAP assertion per harness (known open
#                     findings as TODO);
#        HA           test/ha/run.sh (`make test-ha`): a pg_auto_failover formation of its
#                     own, the shim under load while the primary dies (about two minutes);
#   5. counts, removes the cluster, and ends with exactly one line `N passed, N failed`.
#
# Counting
#   pg_regress: one per test file (`... ok` / `... FAILED` lines); a test of REGRESS that did
#   not report counts as failed. pgTAP and end-to-end: one per TAP assertion (`ok N` /
#   `not ok N`; `# SKIP` and `# TODO` lines count in neither column). A file or script
#   whose plan (`1..N`) was not completed counts the missing assertions as failed; one that
#   exits non-zero with no failed assertion, or reports none at all, counts one failure.
#   A suite that cannot run (build failed, no cluster) counts one failure: never a silent skip.
#   Exit status: 0 only when nothing failed.
#
# Environment of each test/e2e/*.sh (run as `bash FILE`, cwd = repository root, no stdin):
#   LEADINTAKE_ROOT         the repository root (absolute)
#   LEADINTAKE_TEST_DB      a database made for this script alone, extension leadintake created
#   PGHOST PGPORT PGUSER PGDATABASE
#                           libpq settings for it: PGHOST is the cluster's socket directory,
#                           PGUSER=postgres (superuser, trust), PGDATABASE=$LEADINTAKE_TEST_DB
#   LEADINTAKE_TEST_CONNINFO
#                           the same as one conninfo string, for `leadintake-shim --db`
#   LEADINTAKE_SHIM         path of the shim binary (shim/leadintake-shim; may be absent)
#   LEADINTAKE_TEST_TMP     a scratch directory for this script, removed afterwards
#   LEADINTAKE_CLUSTER_DIR  the cluster's directory: a script that stops the database (to test
#                           reconnection) uses `. scripts/lib.sh; li_cluster_ctl
#                           "$LEADINTAKE_CLUSTER_DIR" stop|start` and must leave it running;
#                           the server's log is $LEADINTAKE_CLUSTER_DIR/log (secrets_log.sh)
#   LEADINTAKE_HTTP_PORTS   "FIRST LAST": the range to pick HTTP ports from
#                           (`li_free_port $LEADINTAKE_HTTP_PORTS`)
# An e2e script prints TAP on stdout (`1..N` optional, `ok N - ...`, `not ok N - ...`) and
# must stop whatever it started (the runner also ends the script's process group
# afterwards). It is killed after LEADINTAKE_TEST_TIMEOUT seconds (default 300).
#
# Other variables: LEADINTAKE_TEST_PORT forces the cluster's port; LEADINTAKE_KEEP=1 keeps
# the cluster's directory (its log is DIR/log) and prints where it is; LEADINTAKE_TEST_ONLY=RE
# (an extended regular expression, for a developer's quick run) runs pg_regress and only the
# suites whose path matches RE (test/pgtap/x.sql, test/e2e/x.sh, test/fuzz/run.sh,
# test/ha/run.sh): its summary is not the whole suite's.

set -uo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$LI_ROOT" || exit 1

TIMEOUT=${LEADINTAKE_TEST_TIMEOUT:-300}
ONLY=${LEADINTAKE_TEST_ONLY:-}
PASSED=0
FAILED=0
FAILURES=()   # one line per suite that failed, repeated above the summary line
WORK=""
SUITE_PGID=""

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$SUITE_PGID" ]; then kill -TERM -- "-$SUITE_PGID" 2>/dev/null; fi
    if [ -n "$WORK" ]; then
        if [ "${LEADINTAKE_KEEP:-0}" = 1 ]; then
            li_stop_cluster "$WORK/pg" >/dev/null 2>&1
        else
            li_remove_cluster "$WORK/pg" >/dev/null 2>&1
            rm -rf -- "$WORK"
        fi
    fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; cleanup; exit 130' INT TERM

SECTION_START=$SECONDS
section() {
    printf '\n==================== %s ====================\n' "$*"
}
pass() { PASSED=$((PASSED + $1)); }
fail() { FAILED=$((FAILED + $1)); }
# A failure that is not an assertion of a suite: say why, count one.
fail_because() { printf 'FAILED: %s\n' "$*"; fail 1; FAILURES+=("$*"); }

finish() {
    if [ "${LEADINTAKE_KEEP:-0}" = 1 ] && [ -n "$WORK" ]; then
        echo "kept: $WORK (cluster stopped; server log $WORK/pg/log)"
    fi
    cleanup
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo "-- what failed (details above, in each suite's section):"
        printf '   %s\n' "${FAILURES[@]}"
    fi
    echo "-- total time: $((SECONDS - SECTION_START)) s"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit
}

# tap_count FILE EXIT_STATUS LABEL: count the TAP lines of FILE into PASSED/FAILED.
tap_count() {
    local file=$1 rc=$2 label=$3 ok notok skipped plan ran before=$FAILED
    ok=$(grep -Ec '^[[:space:]]*ok [0-9]+' "$file")
    notok=$(grep -Ec '^[[:space:]]*not ok [0-9]+' "$file")
    skipped=$(grep -Eic '^[[:space:]]*(not )?ok [0-9]+.*# *(skip|todo)' "$file")
    # TODO / SKIP lines count in neither column.
    local ok_s notok_s
    ok_s=$(grep -Eic '^[[:space:]]*ok [0-9]+.*# *(skip|todo)' "$file")
    notok_s=$(grep -Eic '^[[:space:]]*not ok [0-9]+.*# *(skip|todo)' "$file")
    ok=$((ok - ok_s)); notok=$((notok - notok_s))
    plan=$(grep -Eo '^[[:space:]]*1\.\.[0-9]+' "$file" | head -n1 | sed 's/.*\.\.//')
    ran=$((ok + notok + skipped))
    pass "$ok"; fail "$notok"
    local summary="$label (${ELAPSED:-?} s): $ok passed, $notok failed"
    [ "$skipped" -gt 0 ] && summary+=", $skipped skipped/todo"
    if [ -n "$plan" ] && [ "$ran" -lt "$plan" ]; then
        fail $((plan - ran))
        summary+="; planned $plan but ran $ran: $((plan - ran)) missing counted as failed"
    elif [ "$ran" -eq 0 ]; then
        fail 1
        summary+="; no assertion at all: counted as 1 failed"
    elif [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
        fail 1
        summary+="; exited with status $rc: counted as 1 failed"
    fi
    echo "-- $summary"
    if [ "$FAILED" -gt "$before" ]; then
        FAILURES+=("$summary$(grep -E -m 3 '^[[:space:]]*not ok [0-9]+' "$file" | sed 's/^[[:space:]]*/ | /' | tr -d '\n')")
    fi
}

# ---------------------------------------------------------------- packages and build
section "packages"
if li_ensure_packages; then
    echo "all packages present"
else
    fail_because "could not install the packages"
    finish
fi

section "build"
BUILD_LOG=$(mktemp)
jobs=$(nproc 2>/dev/null || echo 2)
if make -s -j"$jobs" -o shim >"$BUILD_LOG" 2>&1 && make -s -o shim install >>"$BUILD_LOG" 2>&1; then
    echo "extension built and installed"
    cat "$BUILD_LOG"
else
    cat "$BUILD_LOG"
    rm -f "$BUILD_LOG"
    fail_because "the extension did not build or install: no suite can run"
    finish
fi
if [ -f shim/Makefile ]; then
    if make -s -j"$jobs" shim >"$BUILD_LOG" 2>&1; then
        echo "shim built"
        cat "$BUILD_LOG"
    else
        cat "$BUILD_LOG"
        fail_because "the shim did not build"
    fi
else
    echo "note: shim/Makefile does not exist yet: shim not built"
fi
rm -f "$BUILD_LOG"

# ---------------------------------------------------------------- cluster
section "cluster"
WORK=$(mktemp -d /tmp/leadintake-test.XXXXXX) || { fail_because "mktemp"; finish; }
chmod 755 "$WORK"
started=0
for _ in 1 2 3; do
    PORT=${LEADINTAKE_TEST_PORT:-$(li_free_port)} || break
    # Preloaded as the README advises for production: notifications are batched (notifier.c);
    # test/e2e/notify_per_call.sh covers a cluster without it.
    if li_start_cluster "$WORK/pg" "$PORT" -c shared_preload_libraries=leadintake; then
        started=1; break
    fi
    li_remove_cluster "$WORK/pg"
    [ -n "${LEADINTAKE_TEST_PORT:-}" ] && break
done
if [ "$started" -ne 1 ]; then
    fail_because "could not start a PostgreSQL cluster: no suite can run"
    finish
fi
SOCK=$(li_sockdir "$WORK/pg")
export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres
unset PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD
echo "PostgreSQL $(li_psql "$WORK/pg" "$PORT" -d postgres -Atc 'SHOW server_version') on port $PORT, socket $SOCK"

# selected PATH: whether LEADINTAKE_TEST_ONLY lets the suite PATH run.
selected() { [ -z "$ONLY" ] || [[ $1 =~ $ONLY ]]; }

# psql on the test cluster, database $1.
q() { local db=$1; shift; li_psql "$WORK/pg" "$PORT" -d "$db" "$@"; }

# fresh_db NAME [EXTENSION...]: drop and create database NAME with the given extensions.
fresh_db() {
    local db=$1 ext
    shift
    q postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" \
        || return 1
    for ext in "$@"; do
        q "$db" -c "CREATE EXTENSION \"$ext\"" || return 1
    done
}

# Make sure the cluster answers (a test may have stopped it); restart it if not.
ensure_cluster_up() {
    if ! q postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
        echo "the cluster is down: restarting it"
        li_cluster_ctl "$WORK/pg" start >/dev/null 2>&1
        return 1
    fi
}

# Run "$@" in its own process group with a time limit; output to $OUT. Sets RC.
run_limited() {
    local t0=$SECONDS
    timeout --kill-after=10 "$TIMEOUT" "$@" >"$OUT" 2>&1 </dev/null &
    SUITE_PGID=$!
    wait "$SUITE_PGID"
    RC=$?
    kill -TERM -- "-$SUITE_PGID" 2>/dev/null
    SUITE_PGID=""
    ELAPSED=$((SECONDS - t0))
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        echo "!! timed out after ${TIMEOUT}s" >>"$OUT"
    fi
}

OUT="$WORK/out"

# ---------------------------------------------------------------- pg_regress
section "pg_regress (make installcheck)"
regress_list=$(make -s --no-print-directory -f Makefile -f - print-regress <<'EOF' 2>/dev/null
print-regress:
	@echo $(REGRESS)
EOF
)
mkdir -p test/results
rm -f test/results/regression.diffs test/results/regression.out
run_limited make -s --no-print-directory -o shim installcheck
cat "$OUT"
r_ok=$(grep -Ec '\.\.\. +ok( |$)' "$OUT")
r_failed=$(grep -Ec '\.\.\. +(FAILED|failed)' "$OUT")
r_expected=$(wc -w <<<"$regress_list")
pass "$r_ok"; fail "$r_failed"
summary="pg_regress (${ELAPSED} s): $r_ok passed, $r_failed failed"
if [ $((r_ok + r_failed)) -lt "$r_expected" ]; then
    fail $((r_expected - r_ok - r_failed))
    summary+="; $((r_expected - r_ok - r_failed)) of the $r_expected tests did not report: counted as failed"
elif [ "$RC" -ne 0 ] && [ "$r_failed" -eq 0 ]; then
    fail 1
    summary+="; make installcheck exited with status $RC: counted as 1 failed"
fi
if [ -s test/results/regression.diffs ]; then
    echo "---- head of test/results/regression.diffs ----"
    head -n 80 test/results/regression.diffs
    echo "---- (full file: test/results/regression.diffs)"
fi
echo "-- $summary"
[ "$r_failed" -eq 0 ] && [ $((r_ok + r_failed)) -ge "$r_expected" ] && [ "$RC" -eq 0 ] \
    || FAILURES+=("$summary$(grep -E -m 3 '\.\.\. +(FAILED|failed)' "$OUT" | sed 's/^/ | /' | tr -d '\n')")
ensure_cluster_up || fail_because "pg_regress left the cluster down"

# ---------------------------------------------------------------- pgTAP
section "pgTAP (pg_prove test/pgtap/*.sql)"
shopt -s nullglob
pgtap_files=(test/pgtap/*.sql)
if [ ${#pgtap_files[@]} -eq 0 ]; then
    fail_because "no pgTAP file in test/pgtap"
fi
for f in "${pgtap_files[@]}"; do
    selected "$f" || continue
    echo "---- $f"
    if ! fresh_db leadintake_pgtap pgtap dblink >"$OUT" 2>&1; then
        cat "$OUT"
        fail_because "$f: could not create its database"
        continue
    fi
    run_limited pg_prove --verbose --failures -d leadintake_pgtap "$f"
    cat "$OUT"
    tap_count "$OUT" "$RC" "$f"
    ensure_cluster_up || fail_because "$f left the cluster down"
done

# ---------------------------------------------------------------- end-to-end
section "end-to-end (test/e2e/*.sh)"
e2e_files=()
for f in test/e2e/*.sh; do
    [ -x "$f" ] && e2e_files+=("$f")
done
if [ ${#e2e_files[@]} -eq 0 ]; then
    echo "note: no executable test/e2e/*.sh yet"
fi
n=0
for f in "${e2e_files[@]}"; do
    n=$((n + 1))
    selected "$f" || continue
    echo "---- $f"
    db="leadintake_e2e_$n"
    if ! fresh_db "$db" leadintake >"$OUT" 2>&1; then
        cat "$OUT"
        fail_because "$f: could not create its database"
        continue
    fi
    mkdir -p "$WORK/e2e-$n"
    run_limited env LEADINTAKE_ROOT="$LI_ROOT" LEADINTAKE_TEST_DB="$db" PGDATABASE="$db" \
        LEADINTAKE_TEST_CONNINFO="host=$SOCK port=$PORT dbname=$db user=postgres" \
        LEADINTAKE_SHIM="$LI_ROOT/shim/leadintake-shim" LEADINTAKE_TEST_TMP="$WORK/e2e-$n" \
        LEADINTAKE_CLUSTER_DIR="$WORK/pg" LEADINTAKE_HTTP_PORTS="18080 18199" \
        bash "$f"
    cat "$OUT"
    tap_count "$OUT" "$RC" "$f"
    rm -rf -- "$WORK/e2e-$n"
    ensure_cluster_up || fail_because "$f left the cluster down"
done

# ---------------------------------------------------------------- fuzzing
# Short runs of the libFuzzer harnesses (test/fuzz/run.sh: one assertion per harness; known
# open findings as TODO). No database needed. A crash is kept in the directory it names.
section "fuzz (test/fuzz/run.sh, ${FUZZ_SECONDS:-15} s per harness)"
if ! selected test/fuzz/run.sh; then
    echo "not selected by LEADINTAKE_TEST_ONLY"
elif [ -f test/fuzz/run.sh ]; then
    run_limited env FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash test/fuzz/run.sh
    cat "$OUT"
    tap_count "$OUT" "$RC" "test/fuzz/run.sh"
else
    fail_because "test/fuzz/run.sh is missing"
fi

# ---------------------------------------------------------------- high availability
# test/ha/run.sh (`make test-ha`): a pg_auto_failover formation of its own on loopback ports
# 55420-55423, the shim under load while the primary dies (README, "High availability").
# About two minutes; it waits for pg_cron's next minute once.
section "high availability (test/ha/run.sh)"
if selected test/ha/run.sh; then
    TIMEOUT=${LEADINTAKE_HA_TIMEOUT:-600} run_limited bash test/ha/run.sh
    cat "$OUT"
    tap_count "$OUT" "$RC" "test/ha/run.sh"
else
    echo "not selected by LEADINTAKE_TEST_ONLY"
fi

finish
