#!/usr/bin/env bash
# test/e2e/sanitize.sh: the shim under AddressSanitizer + UndefinedBehaviorSanitizer, and
# under valgrind memcheck. Prints TAP.
#
#   1. builds the shim with ASan+UBSan (make sanitize-shim: a copy of shim/ built in
#      build/sanitize, so shim/leadintake-shim is untouched), unless LEADINTAKE_ASAN_SHIM
#      names one already built;
#   2. runs the shim's whole end-to-end suite (test/e2e/shim.sh), the console's
#      (test/e2e/console.sh), then test/e2e/batch.sh (in a throwaway cluster of its own),
#      against it: one assertion for each (its failures shown), one for "no sanitizer report"
#      (ASan errors, leaks at exit, UBSan), from the sanitizers' log files and the shims' stderr;
#   3. runs the normal shim under valgrind memcheck over a short mix of requests (every
#      answer of the contract: 201, 303, 400, 401, 404, 405, 413, 415, healthz, metrics; the
#      console's sign-in, API calls, test lead, 403, 413, clients that leave mid-request,
#      sign-out; a SIGHUP, SIGTERM): no error, nothing definitely or indirectly lost;
#   4. with LEADINTAKE_SANITIZE_EXTENSION=1 (make check-sanitize, which installs the
#      extension built with UBSan first): pg_regress and test/e2e/hostile.sh (5,000 SQL
#      payloads, 1,000 HTTP requests) too, and no "runtime error" in the server's log.
#
# Run by scripts/test.sh (its usual LEADINTAKE_* and PG* variables; the cluster must be
# restartable: shim.sh restarts it), or by hand with nothing set: a throwaway cluster.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

NORMAL_SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp sanitize

OWN_CLUSTER=""
VG_PID=""

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$VG_PID" ] && kill -0 "$VG_PID" 2>/dev/null; then
        kill -KILL "$VG_PID" 2>/dev/null
    fi
    [ -n "$OWN_CLUSTER" ] && li_remove_cluster "$OWN_CLUSTER" >/dev/null 2>&1
    [ "$OWN_TMP" = 1 ] && rm -rf -- "$T"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# ---------------------------------------------------------------- the database
if [ -z "${LEADINTAKE_TEST_DB:-}" ]; then
    e2e_own_cluster e2e_sanitize
    export LEADINTAKE_TEST_DB=e2e_sanitize LEADINTAKE_CLUSTER_DIR=$OWN_CLUSTER
    export LEADINTAKE_TEST_CONNINFO="host=$PGHOST port=$PGPORT dbname=e2e_sanitize user=postgres"
fi
DB=$LEADINTAKE_TEST_DB
CONNINFO=${LEADINTAKE_TEST_CONNINFO:-"dbname=$DB"}
export PGUSER=${PGUSER:-postgres}
unset PGDATABASE
server_log() {
    local dir=${LEADINTAKE_CLUSTER_DIR:-$OWN_CLUSTER}
    [ -n "$dir" ] && cat "$dir/log" 2>/dev/null
}

# ---------------------------------------------------------------- 4a. pg_regress (UBSan)
if [ "${LEADINTAKE_SANITIZE_EXTENSION:-0}" = 1 ]; then
    if [ "$(ldd "$(pg_config --pkglibdir)/leadintake.so" | grep -c libubsan)" -gt 0 ]; then
        ok "the installed extension is the UBSan build"
    else
        not_ok "the installed extension is the UBSan build" "run it through: make check-sanitize"
    fi
    (cd "$ROOT" && make -s --no-print-directory -o shim installcheck) >"$T/regress.out" 2>&1
    r_ok=$(grep -Ec '\.\.\. +ok( |$)' "$T/regress.out")
    r_bad=$(grep -Ec '\.\.\. +(FAILED|failed)' "$T/regress.out")
    is "pg_regress with the UBSan extension: every test passes ($r_ok passed)" "$r_bad" 0
    # the hostile payloads too (fewer), in a database of their own (e2e_hostile)
    env -u LEADINTAKE_TEST_DB -u LEADINTAKE_TEST_CONNINFO -u LEADINTAKE_TEST_TMP \
        HOSTILE_SQL=5000 HOSTILE_HTTP=1000 bash "$ROOT/test/e2e/hostile.sh" >"$T/hostile.tap" 2>&1
    h_ok=$(grep -Ec '^ok [0-9]+' "$T/hostile.tap")
    h_bad=$(grep -Ev '# TODO' "$T/hostile.tap" | grep -Ec '^not ok [0-9]+')
    if [ "$h_bad" -eq 0 ] && [ "$h_ok" -gt 0 ]; then
        ok "test/e2e/hostile.sh (5,000 SQL, 1,000 HTTP) passes with the UBSan extension ($h_ok assertions)"
    else
        mapfile -t lines < <(grep -E -A3 '^not ok' "$T/hostile.tap" | grep -v '# TODO' | head -n 20)
        not_ok "test/e2e/hostile.sh passes with the UBSan extension" "${lines[@]}"
    fi
fi

# ---------------------------------------------------------------- 1. the ASan shim
if [ -n "${LEADINTAKE_ASAN_SHIM:-}" ]; then
    ASAN_SHIM=$LEADINTAKE_ASAN_SHIM
    [ -x "$ASAN_SHIM" ] && ok "the ASan+UBSan shim is there ($ASAN_SHIM)" \
        || not_ok "the ASan+UBSan shim is there" "$ASAN_SHIM: build it with make SANITIZE=1"
else
    t0=$SECONDS
    if make -s --no-print-directory -C "$ROOT" sanitize-shim >"$T/build.log" 2>&1; then
        ASAN_SHIM=$ROOT/build/sanitize/leadintake-shim
        ok "the shim builds with -fsanitize=address,undefined in build/sanitize ($((SECONDS - t0)) s)"
    else
        ASAN_SHIM=""
        mapfile -t lines < <(tail -n 15 "$T/build.log")
        not_ok "the shim builds with -fsanitize=address,undefined" "${lines[@]}"
    fi
fi
# (grep -c, not -q: with pipefail, grep -q ending early fails the pipeline)
if [ -n "$ASAN_SHIM" ] && [ "$(nm "$ASAN_SHIM" 2>/dev/null | grep -c __asan_init)" -gt 0 ]; then
    ok "... and it is instrumented (__asan_init)"
elif [ -n "$ASAN_SHIM" ]; then
    not_ok "... and it is instrumented (__asan_init)" "$ASAN_SHIM"
fi

# ---------------------------------------------------------------- 2. shim.sh under ASan
# asan_suite NAME [ENV...]: test/e2e/NAME.sh against the ASan shim, one assertion.
asan_suite() {
    local name=$1 rc s_ok s_bad s_plan t0=$SECONDS
    shift
    mkdir -p "$T/$name"
    env "$@" ASAN_OPTIONS="detect_leaks=1:log_path=$T/san/asan:strict_string_checks=1:detect_stack_use_after_return=1" \
        LSAN_OPTIONS="log_path=$T/san/lsan" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$T/san/ubsan" \
        LEADINTAKE_SHIM=$ASAN_SHIM LEADINTAKE_TEST_TMP=$T/$name \
        bash "$ROOT/test/e2e/$name.sh" >"$T/$name.tap" 2>"$T/$name.stderr"
    rc=$?
    s_ok=$(grep -Ec '^ok [0-9]+' "$T/$name.tap")
    s_bad=$(grep -Ec '^not ok [0-9]+' "$T/$name.tap")
    s_plan=$(grep -Eo '^1\.\.[0-9]+' "$T/$name.tap" | head -n1 | cut -d. -f3)
    diag "test/e2e/$name.sh against the ASan+UBSan shim: $s_ok ok, $s_bad not ok, plan ${s_plan:-?}, exit $rc, $((SECONDS - t0)) s"
    if [ "$s_bad" -eq 0 ] && [ "$rc" -eq 0 ] && [ -n "$s_plan" ] && [ "$s_ok" -ge "$s_plan" ]; then
        ok "test/e2e/$name.sh passes against the ASan+UBSan shim ($s_ok assertions)"
    else
        mapfile -t lines < <(grep -E -A3 '^not ok' "$T/$name.tap" | head -n 30; tail -n 3 "$T/$name.stderr")
        not_ok "test/e2e/$name.sh passes against the ASan+UBSan shim" "${lines[@]}"
    fi
}
if [ -n "$ASAN_SHIM" ] && [ -x "$ASAN_SHIM" ]; then
    mkdir -p "$T/san"
    asan_suite shim
    # the console (its own agents and roles) in a throwaway cluster of its own
    asan_suite console -u LEADINTAKE_TEST_DB -u LEADINTAKE_TEST_CONNINFO
    # the batches (pipelines, re-runs) in a throwaway cluster of its own
    asan_suite batch -u LEADINTAKE_TEST_DB -u LEADINTAKE_TEST_CONNINFO
    # the reports: files of the sanitizers, and anything on the shims' stderr
    reports=$(ls "$T/san" 2>/dev/null)
    if [ -z "$reports" ] && ! grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' \
            "$T/shim"/*.err "$T/console"/*.err "$T/batch"/*.err >/dev/null 2>&1; then
        ok "no AddressSanitizer, LeakSanitizer or UBSan report from any shim of the suite"
    else
        lines=()
        for f in "$T/san"/*; do
            [ -f "$f" ] || continue
            lines+=("$(basename "$f"):")
            while IFS= read -r l; do lines+=("  $l"); done < <(grep -E 'ERROR|SUMMARY|runtime error|#[0-9] ' "$f" | head -n 12)
        done
        not_ok "no AddressSanitizer, LeakSanitizer or UBSan report from any shim of the suite" "${lines[@]}"
        mkdir -p "$ROOT/test/results" && cp -r "$T/san" "$ROOT/test/results/sanitize-reports" 2>/dev/null \
            && diag "reports copied to test/results/sanitize-reports/"
    fi
fi

# ---------------------------------------------------------------- 3. valgrind memcheck
q -c "INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
        ('agent1', 'Agent One', '1001') ON CONFLICT DO NOTHING" >/dev/null 2>&1
if ! command -v valgrind >/dev/null; then
    not_ok "valgrind is installed (scripts/lib.sh LI_PACKAGES)"
else
    KEY=vg-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf 'vg:%s\n' "$KEY" >"$T/vg.keys"
    CKEY=vgc-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf 'vgc:%s\n' "$CKEY" >"$T/vg.ckeys"
    chmod 600 "$T/vg.keys" "$T/vg.ckeys"
    t0=$SECONDS
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=20 \
        --log-file="$T/vg.log" "$NORMAL_SHIM" --listen 127.0.0.1:0 --db "$CONNINFO" \
        --api-key-file "$T/vg.keys" --allow-query-key --pool-size 2 --threads 2 \
        --max-body 4096 --dashboard-url https://crm.example.test/dash \
        --console-key-file "$T/vg.ckeys" --console-listen 127.0.0.1:0 \
        >"$T/vg.out" 2>"$T/vg.err" &
    VG_PID=$!
    U=$(shim_url "$T/vg.err" "$VG_PID" http 600 0.1)
    if [ -z "$U" ]; then
        not_ok "the shim starts under valgrind" "$(tail -n 5 "$T/vg.err")" "$(tail -n 5 "$T/vg.log")"
    else
        K="X-Dialer-Api-Key: $KEY"
        J='Content-Type: application/json'
        F='Content-Type: application/x-www-form-urlencoded'
        A=$U/api/leads/from-dialer/
        c() { curl -s -o /dev/null -w '%{http_code} ' --max-time 30 "$@"; }
        head -c 6000 /dev/zero | tr '\0' 'a' >"$T/big"
        printf '{"user": "agent1", "first_name": "\xff"}' >"$T/badutf8"
        codes=""
        for i in 1 2 3; do
            codes+=$(c -H "$K" -H "$J" --data-binary "{\"user\": \"agent1\", \"lead_id\": \"VG-$i\", \"phone_number\": \"07700 90000$i\", \"pass\": \"x\"}" "$A")
            codes+=$(c -H "$K" -H "$F" --data-binary "user=agent1&lead_id=VG-F$i&first_name=A+B&tag=1&tag=2&API_KEY=zz" "$A")
            codes+=$(c "$A?user=agent1&lead_id=VG-Q$i&api_key=$KEY&redirect=1")
        done
        codes+=$(c -H "$K" -H "$J" --data-binary '{"user": "agent1", "lead_id": ' "$A")
        codes+=$(c -H "$K" -H "$J" --data-binary @"$T/badutf8" "$A")
        codes+=$(c -H "$K" -H "$F" --data-binary 'user=agent1&first_name=a%00b' "$A")
        codes+=$(c -H "$K" -H "$J" --data-binary '{"user": "agent9"}' "$A")
        codes+=$(c -H "X-Dialer-Api-Key: wrong" -H "$J" --data-binary '{}' "$A")
        codes+=$(c -H "$K" "$U/nowhere")
        codes+=$(c -X PUT -H "$K" "$A")
        codes+=$(c -H "$K" -H "$J" --data-binary @"$T/big" "$A")
        codes+=$(c -H "$K" -H "$J" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" "$A")
        codes+=$(c -H "$K" -H 'Content-Type: text/plain' --data-binary 'x' "$A")
        codes+=$(c "$U/healthz")
        codes+=$(c "$U/metrics")
        kill -HUP "$VG_PID"
        sleep 1
        codes+=$(c -H "$K" -H "$J" --data-binary '{"user": "agent1", "lead_id": "VG-HUP"}' "$A")
        is "valgrind: the request mix got the contract's answers" "$codes" \
            "201 201 303 201 201 303 201 201 303 400 400 400 404 401 404 405 413 413 415 200 200 201 "
        # the console: every kind of answer, and clients that leave mid-request
        CU=$(grep -Eo 'console on http://[^ ]+/console/' "$T/vg.err" | head -n1 | cut -d' ' -f3)
        cc() { c -b "$T/vg.jar" -c "$T/vg.jar" "$@"; }
        codes=$(cc -d "key=$CKEY" "${CU}api/sign-in")
        csrf=$(curl -s -b "$T/vg.jar" "${CU}api/session" | sed -n 's/.*"csrf": "\([0-9a-f]*\)".*/\1/p')
        X=(-H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json')
        codes+=$(cc "${CU}api/session")
        codes+=$(cc "${CU}api/agents")
        codes+=$(cc "${CU}api/requests?limit=2")
        codes+=$(cc "${CU}api/health")
        codes+=$(cc "${CU}api/request?id=999999")
        codes+=$(cc "${X[@]}" --data-binary '{"username": "agent1", "display_name": "x", "dialer_user_id": "1"}' "${CU}api/agent-add")
        codes+=$(cc "${X[@]}" --data-binary '{"key_name": "vg", "query": "user=agent1&lead_id=VG-T1"}' "${CU}api/test-lead")
        codes+=$(cc -H 'Content-Type: application/json' --data-binary '{}' "${CU}api/replay")
        head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big70k"
        codes+=$(cc "${X[@]}" --data-binary @"$T/big70k" -H 'Transfer-Encoding: chunked' "${CU}api/replay")
        codes+=$(cc "$CU")
        codes+=$(cc -d "key=wrong" "${CU}api/sign-in")
        python3 - "${CU#http://}" <<'EOF'
import socket, sys
host, port = sys.argv[1].split("/")[0].rsplit(":", 1)
for data in (b"POST /console/api/sign-in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nkey=abc",
             b"GET /console/api/session HTTP/1.1\r\nHost: x\r\nCook"):
    s = socket.create_connection((host, int(port)))
    s.sendall(data)
    s.close()
EOF
        codes+=$(cc "${X[@]}" --data-binary '{}' "${CU}api/sign-out")
        is "valgrind: the console's mix got its answers" "$codes" \
            "204 200 200 200 200 404 409 200 403 413 200 401 204 "
        kill -TERM "$VG_PID"
        for _ in $(seq 1 600); do kill -0 "$VG_PID" 2>/dev/null || break; sleep 0.1; done
        wait "$VG_PID"
        rc=$?
        VG_PID=""
        diag "valgrind run: $((SECONDS - t0)) s, exit status $rc; $(grep -E 'ERROR SUMMARY' "$T/vg.log" | sed 's/^==[0-9]*== //')"
        is "valgrind memcheck: the shim exits 0 after SIGTERM, no error (exit status 99 otherwise)" "$rc" 0
        is "valgrind memcheck: ERROR SUMMARY: 0 errors" \
            "$(grep -Eo 'ERROR SUMMARY: [0-9]+ errors' "$T/vg.log" | tail -n1)" "ERROR SUMMARY: 0 errors"
        lost=$(grep -E 'definitely lost:|indirectly lost:' "$T/vg.log" | sed 's/^==[0-9]*== *//' | tr '\n' ';')
        if [ -z "$lost" ] || ! grep -Eq '(definitely|indirectly) lost: [1-9]' "$T/vg.log"; then
            ok "valgrind memcheck: nothing definitely or indirectly lost ${lost:+($lost)}"
        else
            mapfile -t lines < <(grep -E -A12 'definitely lost in|indirectly lost in' "$T/vg.log" | head -n 40)
            not_ok "valgrind memcheck: nothing definitely or indirectly lost" "$lost" "${lines[@]}"
        fi
        if grep -q -e "$KEY" -e "$CKEY" "$T/vg.out" "$T/vg.err"; then
            not_ok "valgrind run: the API key is in no output of the shim"
        else
            ok "valgrind run: the API key is in no output of the shim"
        fi
    fi
fi

# ---------------------------------------------------------------- 4b. the server log (UBSan)
if [ "${LEADINTAKE_SANITIZE_EXTENSION:-0}" = 1 ]; then
    is "no UBSan report (\"runtime error\") in the server's log" \
        "$(server_log | grep -c 'runtime error:')" 0
fi

echo "1..$N"
[ "$FAILED" -eq 0 ]
