#!/usr/bin/env bash
# test/bench/run.sh: the leadintake benchmark (`make bench`; not part of scripts/test.sh).
#
# The machine is small and shared, so every target but two (the shim's peak memory and the
# bulk rates) is a ratio of two things measured side by side in the same round: the product
# against a floor that does less than the product must (test/bench/RESULTS.md, "Floors").
# What it does, as root from any directory:
#   1. installs what it needs (scripts/lib.sh: LI_PACKAGES and LI_BENCH_PACKAGES: wrk,
#      linux-perf, postgresql-contrib), builds and installs (`make && make install`);
#   2. starts its own throwaway cluster, durable (fsync and synchronous_commit on),
#      shared_buffers 256MB, max_connections 200, pg_stat_statements; defaults otherwise; in
#      a private mount namespace on a copy of the build (other sessions' `make install` during
#      the bench cannot change what it measures); creates the extension, 50 agents,
#      bench.leads (a plain copy of leadintake.leads) and loads $BENCH_LEADS leads into both
#      (setup.sql); starts a copy of the shim;
#   3. ROUNDS rounds of, each for SECS seconds, c=32: pgbench baseline.sql (a bare prepared
#      upsert, a diagnostic), baseline_notify.sql (the same and a pg_notify: a diagnostic),
#      baseline_log.sql (the upsert and the intake_log row, a diagnostic), the same into
#      bench.leads_fk (with leadintake.leads's foreign key to the agents: the floor of a call,
#      which the function's rate and database CPU are held to), function.sql
#      (leadintake_from_dialer), wrk shim.lua against the shim (--pool-size POOL); half the
#      calls name an existing lead, half a new one; then wrk against floor.c, libmicrohttpd
#      alone: with the shim's hand-off at the shim's rate in that round (the floor the
#      shim's CPU is held to), with a thread per connection and inline (diagnostics);
#   4. profiles (perf, cpu-clock, call graphs) of the database during the function run and of
#      the shim and its backends during the wrk run, with the backends' wait events and the
#      nested statements' times (pg_stat_statements.track = all, for this phase only), the
#      shim's system calls (perf trace -s), later one of process_inbox;
#   5. one statement over 10,000 payloads; process_inbox(1000) draining 50,000 rows;
#   6. growth: per-call cost with 1k, 100k and 1M leads stored (one statement over 10,000
#      payloads, beside the same rows through the bare upsert in a PL/pgSQL loop);
#   7. with BENCH_BEFORE_SO=OLD.so (make bench BEFORE=OLD.so): callgrind.sh counts the
#      instructions per call of the extension's entries in OLD.so and in this build;
#   8. report.py writes test/bench/RESULTS.md, prints the figures and the targets (each
#      ratio target a median of ratios taken within a round); the exit status is 1 when a
#      target is missed, naming each (2 when the bench itself could not run).
#
# Environment: BENCH_ROUNDS (5), BENCH_SECONDS (10, at least 5), BENCH_LEADS (100000),
# BENCH_POOL (2 x cores), BENCH_GROWTH ("1000 100000 1000000"), BENCH_KEEP=1 keeps the
# scratch directory (cluster log, raw outputs, perf.data files), BENCH_RESULTS (where to
# write RESULTS.md), BENCH_BEFORE_SO (an older leadintake.so to count against, step 7).
# About 9-10 minutes on 2 cores with the defaults, two or three more with BENCH_BEFORE_SO.

set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$BENCH/../../scripts/lib.sh"
# shellcheck source=test/bench/lib.sh
. "$BENCH/lib.sh"
cd "$LI_ROOT" || exit 2

ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-10}
LEADS=${BENCH_LEADS:-100000}
POOL=${BENCH_POOL:-$((2 * $(nproc)))}
GROWTH=${BENCH_GROWTH:-1000 100000 1000000}
CLIENTS=32
THREADS=2
OUT=${BENCH_RESULTS:-$BENCH/RESULTS.md}
START=$SECONDS
RUN=0        # runs so far: run k draws its new lead ids above k * 10^9 (BASE), never drawn before

step() { li_log "== [$((SECONDS - START))s] $*"; }
fail() { li_log "bench: $*"; exit 2; }
new_base() { RUN=$((RUN + 1)); BASE=$((RUN * 1000000000)); }   # not in $(...): sets globals

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages and runs the cluster as postgres)"
[ "$SECS" -ge 5 ] || fail "BENCH_SECONDS must be 5 or more"
BEFORE_SO=${BENCH_BEFORE_SO:-}
[ -z "$BEFORE_SO" ] || [ -r "$BEFORE_SO" ] || fail "BENCH_BEFORE_SO: no file $BEFORE_SO"

WORK=$(mktemp -d /tmp/leadintake-bench.XXXXXX) || fail "mktemp failed"
chmod 755 "$WORK"
PG=$WORK/pg
RESULTS=$WORK/results.tsv
SHIM_PID=""
PERF_PID=""
mkdir -p "$WORK/prof"
: >"$RESULTS"

cleanup() {
    trap - EXIT INT TERM
    [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null
    [ -n "$SHIM_PID" ] && kill -TERM "$SHIM_PID" 2>/dev/null && wait "$SHIM_PID" 2>/dev/null
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        li_stop_cluster "$PG" >/dev/null 2>&1
        li_log "kept: $WORK"
    else
        li_remove_cluster "$PG" >/dev/null 2>&1
        rm -rf -- "$WORK"
    fi
}
trap cleanup EXIT
trap 'li_log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------------------------------
step "packages, build, install"
li_ensure_packages "${LI_PACKAGES[@]}" "${LI_BENCH_PACKAGES[@]}" || fail "packages missing"
[ -z "$BEFORE_SO" ] || li_ensure_packages valgrind || fail "valgrind missing"
li_build || fail "the build failed"
# Other sessions on this machine may build and `make install` while the bench runs. What we
# measure is the build just made: copies of the shim, of the server's library directory and
# of its extension directory, taken now; the cluster runs in a private mount namespace in
# which these copies hide the installed ones (where unshare is not allowed: no isolation, said
# in RESULTS.md). perf finds the library's symbols through its build-id cache.
PKGLIB=$(pg_config --pkglibdir)
EXTDIR=$(pg_config --sharedir)/extension
[ -x "$LI_ROOT/shim/leadintake-shim" ] || fail "no shim binary in shim/"
if ! { cp "$LI_ROOT/shim/leadintake-shim" "$WORK/leadintake-shim" \
        && cp -a "$PKGLIB" "$WORK/pkglib" && cp -a "$EXTDIR" "$WORK/extension"; }; then
    fail "cannot copy the build"
fi
if nm -D "$WORK/pkglib/leadintake.so" 2>/dev/null | grep -q __ubsan; then
    fail "the installed leadintake.so is a sanitizer build (make SANITIZE=1 install ran meanwhile?)"
fi
SHIM=$WORK/leadintake-shim
# The floor server (floor.c): libmicrohttpd with the shim's flags and nothing of the shim.
# shellcheck disable=SC2046  # pkg-config's flags are words
gcc -O2 -std=c11 -Wall -Wextra -Werror -o "$WORK/floor" "$BENCH/floor.c" \
    $(pkg-config --cflags --libs libmicrohttpd) -lpthread || fail "floor.c did not build"
perf buildid-cache -a "$WORK/pkglib/leadintake.so" >/dev/null 2>&1

step "machine"
b_record meta.date - "$(date -u '+%Y-%m-%d %H:%M UTC')"
b_record meta.commit - "$(git -C "$LI_ROOT" describe --always --dirty 2>/dev/null || echo '?') \
($(git -C "$LI_ROOT" status --short -- extension shim Makefile 2>/dev/null | wc -l) files of \
extension/, shim/, Makefile changed from it)"
b_record meta.nproc - "$(nproc)"
b_record meta.cpu - "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
b_record meta.mem - "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
b_record meta.kernel - "$(uname -r)"
b_record meta.load_before - "$(cut -d' ' -f1-3 /proc/loadavg); $(python3 "$BENCH/procstat.py" busy 3)"
b_record meta.versions - "$(pgbench --version | head -n1); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2); $(perf --version)"

# ---------------------------------------------------------------------------------------
step "cluster"
PORT=$(li_free_port 54320 54399) || fail "no free port"
SETTINGS=(-c fsync=on -c synchronous_commit=on -c shared_buffers=256MB
          -c max_connections=200 -c shared_preload_libraries=pg_stat_statements,leadintake)
if unshare -m --propagation private true 2>/dev/null; then
    # shellcheck disable=SC2016  # expanded by the inner bash
    unshare -m --propagation private bash -c '
        mount --bind "$1" "$2" && mount --bind "$3" "$4" || exit 1
        . "$5"; shift 5; li_start_cluster "$@"' _ "$WORK/pkglib" "$PKGLIB" \
        "$WORK/extension" "$EXTDIR" "$LI_ROOT/scripts/lib.sh" "$PG" "$PORT" "${SETTINGS[@]}" \
        || fail "the cluster did not start"
    b_record meta.isolation - "the cluster ran in a private mount namespace on copies of \
$PKGLIB and $EXTDIR taken right after the build (leadintake.so build-id \
$(readelf -n "$WORK/pkglib/leadintake.so" | sed -n 's/.*Build ID: //p'))"
else
    li_start_cluster "$PG" "$PORT" "${SETTINGS[@]}" || fail "the cluster did not start"
    b_record meta.isolation - "none (unshare not allowed): another session's make install \
during the run would have changed what the backends loaded"
fi
PGDATA_DIR=$PG/data
b_record meta.settings - "$(li_psql "$PG" "$PORT" -At -c "SELECT string_agg(name || '=' ||
    setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN
    ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers',
     'max_connections', 'max_locks_per_transaction', 'max_wal_size', 'checkpoint_timeout',
     'work_mem', 'shared_preload_libraries')")"
b_record meta.server - "$(li_psql "$PG" "$PORT" -At -c 'SHOW server_version')"
li_psql "$PG" "$PORT" -c 'CREATE DATABASE bench' || fail "CREATE DATABASE"
b_psql -c 'CREATE EXTENSION leadintake' -c 'CREATE EXTENSION pg_stat_statements' >/dev/null \
    || fail "CREATE EXTENSION failed"
b_psql -f "$BENCH/setup.sql" >/dev/null || fail "setup.sql failed"
b_record meta.extension - "$(b_psql -c "SELECT extversion FROM pg_extension WHERE extname = 'leadintake'")"

step "loading $LEADS leads"
b_psql -c "SELECT bench.load($LEADS, fk => true)" >/dev/null || fail "bench.load failed"
# baseline_log.sql on bench.leads_fk: the two writes with the lead table's foreign key
sed 's/^INSERT INTO bench\.leads AS l /INSERT INTO bench.leads_fk AS l /' \
    "$BENCH/baseline_log.sql" >"$WORK/baseline_log_fk.sql"
grep -q 'bench\.leads_fk AS l' "$WORK/baseline_log_fk.sql" || fail "baseline_log_fk.sql not made"

step "shim (pool $POOL)"
KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf 'bench:%s\n' "$KEY" >"$WORK/keys"
chmod 600 "$WORK/keys"
"$SHIM" --db "host=$(li_sockdir "$PG") port=$PORT dbname=bench user=crm_shim" \
    --api-key-file "$WORK/keys" --listen 127.0.0.1:0 --pool-size "$POOL" \
    >"$WORK/shim.out" 2>"$WORK/shim.err" &
SHIM_PID=$!
URL=""
for _ in $(seq 50); do
    URL=$(grep -Eo 'listening on http://[^ ]+' "$WORK/shim.err" | head -n1 | cut -d' ' -f3)
    [ -n "$URL" ] && break
    kill -0 "$SHIM_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/shim.err" >&2; fail "the shim did not start"; }
URL=${URL%/}/api/leads/from-dialer/
b_record meta.shim - "--pool-size $POOL, --threads 2 (default), stdout to a file"

# ---------------------------------------------------------------------------------------
step "warm-up"
new_base
b_pgbench baseline.sql "$LEADS" "$BASE" 3 || fail "baseline warm-up failed"
new_base
b_pgbench function.sql "$LEADS" "$BASE" 3 || fail "function warm-up failed"
new_base
b_wrk "$URL" "$KEY" "$LEADS" "$BASE" 3 || fail "shim warm-up failed"
b_psql -c 'SELECT pg_stat_statements_reset()' >/dev/null
# The floor server answers with a body as long as the shim's 201 for the bench payload.
FLOOR_BYTES=$(b_psql -q -c 'BEGIN' \
    -c 'SELECT octet_length(leadintake_from_dialer(bench.payload(1, 1))::text)' -c 'ROLLBACK')
FLOOR_SECS=$(( SECS / 2 > 5 ? SECS / 2 : 5 ))
b_record meta.floor - "$FLOOR_BYTES-byte answers, $FLOOR_SECS s a run"

# Each figure is recorded with its round; report.py takes the ratios within a round.
for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS: baseline (diagnostic)"
    b_settle
    before=$(b_psql -c 'SELECT count(*) FROM bench.leads')
    new_base
    b_pgbench baseline.sql "$LEADS" "$BASE" "$SECS" || fail "baseline run failed"
    after=$(b_psql -c 'SELECT count(*) FROM bench.leads')
    b_record base.tps "$r" "$B_TPS"
    b_record base.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / $B_TXNS")"
    b_record base.new_pct "$r" "$(b_calc "100.0 * ($after - $before) / $B_TXNS")"
    b_record base.others_pct "$r" "$B_OTHERS"

    step "round $r/$ROUNDS: baseline + pg_notify (diagnostic)"
    b_settle
    new_base
    b_pgbench baseline_notify.sql "$LEADS" "$BASE" "$SECS" || fail "baseline_notify run failed"
    b_record notify.tps "$r" "$B_TPS"
    b_record notify.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / $B_TXNS")"
    b_record notify.others_pct "$r" "$B_OTHERS"

    step "round $r/$ROUNDS: baseline + the log row (diagnostic)"
    b_settle
    new_base
    b_pgbench baseline_log.sql "$LEADS" "$BASE" "$SECS" || fail "baseline_log run failed"
    b_record log.tps "$r" "$B_TPS"
    b_record log.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / $B_TXNS")"
    b_record log.others_pct "$r" "$B_OTHERS"

    step "round $r/$ROUNDS: the same with the foreign key (the floor of a call)"
    b_settle
    new_base
    b_pgbench "$WORK/baseline_log_fk.sql" "$LEADS" "$BASE" "$SECS" \
        || fail "baseline_log_fk run failed"
    b_record logfk.tps "$r" "$B_TPS"
    b_record logfk.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / $B_TXNS")"
    b_record logfk.others_pct "$r" "$B_OTHERS"

    step "round $r/$ROUNDS: leadintake_from_dialer"
    b_settle
    mark=$(b_log_mark)
    new_base
    b_pgbench function.sql "$LEADS" "$BASE" "$SECS" || fail "function run failed"
    read -r new bad < <(b_log_mix "$mark")
    [ "$bad" = 0 ] || fail "$bad function calls did not answer 201"
    b_record func.tps "$r" "$B_TPS"
    b_record func.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / $B_TXNS")"
    b_record func.new_pct "$r" "$new"
    b_record func.others_pct "$r" "$B_OTHERS"

    step "round $r/$ROUNDS: the shim under wrk"
    b_settle
    mark=$(b_log_mark)
    new_base
    b_wrk "$URL" "$KEY" "$LEADS" "$BASE" "$SECS" || fail "wrk run failed"
    read -r new bad < <(b_log_mix "$mark")
    [ "$bad" = 0 ] || fail "$bad shim requests did not answer 201"
    b_record shim.rps "$r" "$B_RPS"
    b_record shim.cpu_us "$r" "$(b_calc "1e6 * $B_SHIM_CPU / $B_REQS")"
    b_record shim.db_cpu_us "$r" "$(b_calc "1e6 * $B_CPU / $B_REQS")"
    b_record shim.new_pct "$r" "$new"
    b_record shim.others_pct "$r" "$B_OTHERS"
    # the shim's time per request (a closed loop of CLIENTS): the floor's delay, for its rate
    delay=$(python3 -c "print(int(1e6 * $CLIENTS / $B_RPS))")

    step "round $r/$ROUNDS: the floor server, hand-off and thread after ${delay} µs, inline"
    b_floor handoff "$delay" "$LEADS" "$BASE" "$FLOOR_SECS" || fail "floor run failed"
    b_record floor.handoff_rps "$r" "$B_RPS"
    b_record floor.handoff_cpu_us "$r" "$B_FLOOR_CPU"
    b_record floor.hwm_kib "$r" "$B_FLOOR_HWM"
    b_floor thread "$delay" "$LEADS" "$BASE" "$FLOOR_SECS" || fail "floor run failed"
    b_record floor.thread_rps "$r" "$B_RPS"
    b_record floor.thread_cpu_us "$r" "$B_FLOOR_CPU"
    b_floor inline 0 "$LEADS" "$BASE" "$FLOOR_SECS" || fail "floor run failed"
    b_record floor.inline_rps "$r" "$B_RPS"
    b_record floor.inline_cpu_us "$r" "$B_FLOOR_CPU"
done
b_record shim.hwm_kib - "$(python3 "$BENCH/procstat.py" hwm "$SHIM_PID")"
b_psql -F $'\t' -c "SELECT CASE WHEN query LIKE 'INSERT INTO bench.leads%' THEN 'baseline'
                               WHEN query LIKE '%leadintake_from_dialer%' THEN 'function'
                               WHEN query LIKE '%http_intake%' THEN 'shim' END,
                          round(mean_exec_time::numeric * 1000)
                     FROM pg_stat_statements
                    WHERE query LIKE 'INSERT INTO bench.leads%'
                       OR query LIKE 'SELECT leadintake_from_dialer%'
                       OR query LIKE '%leadintake.http_intake%'" |
    while IFS=$'\t' read -r what us; do b_record "pgss.$what" - "$us"; done

# ---------------------------------------------------------------------------------------
# Profiles: perf record (cpu-clock, frame-pointer call graphs: Debian builds PostgreSQL, and
# PGXS the extension, with -fno-omit-frame-pointer) of this cluster's processes, by pid (other
# sessions may run PostgreSQL on this machine too), and of the shim, while the load runs.
profile() {   # profile NAME COMMAND...: COMMAND in the background; once every client has
    local name=$1 load pids perfs=() p   # connected, perf on the server's processes (and
    shift                                # the shim's, if running) and the wait sampler
    b_settle
    "$@" >/dev/null 2>&1 &
    load=$!
    sleep 1
    pids=$(python3 "$BENCH/procstat.py" children "$PGDATA_DIR")
    timeout -s INT "$((SECS - 2))" perf record -g -F 499 -p "$pids" -o "$WORK/prof/$name.data" \
        >/dev/null 2>"$WORK/prof/$name.perf.err" &
    perfs+=($!)
    if [ -n "$SHIM_PID" ]; then   # built without frame pointers: DWARF call graphs
        timeout -s INT "$((SECS - 2))" perf record --call-graph dwarf,8192 -F 499 \
            -p "$SHIM_PID" -o "$WORK/prof/$name-shim.data" \
            >/dev/null 2>"$WORK/prof/$name-shim.perf.err" &
        perfs+=($!)
    fi
    b_psql -F ' | ' -c "SELECT * FROM bench.sample_waits($SECS - 3)" >"$WORK/prof/$name.waits.txt"
    for p in "${perfs[@]}"; do wait "$p"; done
    wait "$load"
}
perf_top() {   # perf_top NAME [REGEX]: shares by thread and binary, top 15 symbols (self),
    local data=$WORK/prof/$1.data ext named=${2:-'\] [A-Za-z_]'}   # then inclusive: the
    # extension's functions and the top 25 named symbols (matching REGEX)
    echo "-- $(grep -o '[0-9]* samples' "$WORK/prof/$1.perf.err" || echo '? samples'); by thread name and binary (self):"
    perf report -i "$data" --no-children --sort comm,dso --percentage relative -g none \
        --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -n 6
    echo "-- top symbols (self):"
    perf report -i "$data" --no-children --sort dso,sym --percentage relative -g none \
        --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -n 15
    ext=$(perf report -i "$data" --children --sort dso,sym --percentage relative -g none \
        --stdio 2>/dev/null | grep ' leadintake\.so ' | head -n 20)
    [ -z "$ext" ] || printf '%s\n%s\n' "-- inclusive (children), leadintake.so:" "$ext"
    echo "-- inclusive (children), top named symbols:"
    perf report -i "$data" --children --sort sym --percentage relative -g none --stdio \
        2>/dev/null | grep -E "$named" \
        | grep -Ev '\] (main|PostmasterMain|__libc_start_call_main|clone3|start_thread)$' \
        | head -n 25
}
step "profiles (perf, wait events, nested statements)"
PERF_OK=0
if perf record -e cpu-clock -o "$WORK/prof/probe.data" -- true >/dev/null 2>&1; then
    PERF_OK=1
    b_psql -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c 'SELECT pg_reload_conf()' \
        -c 'SELECT pg_stat_statements_reset()' >/dev/null
    SHIM_SAVED=$SHIM_PID SHIM_PID=""   # the shim idles meanwhile: not profiled
    new_base
    profile function b_pgbench function.sql "$LEADS" "$BASE" "$SECS"
    SHIM_PID=$SHIM_SAVED
    b_psql -F ' | ' -c "SELECT calls, round(mean_exec_time::numeric * 1000) AS mean_us,
                               round(100 * total_exec_time / sum(total_exec_time) OVER ()) AS pct,
                               left(regexp_replace(query, '\s+', ' ', 'g'), 110)
                          FROM pg_stat_statements
                         WHERE query ~* '(leadintake|bench\.leads)'
                         ORDER BY total_exec_time DESC LIMIT 12" >"$WORK/prof/function.stmts.txt"
    b_psql -c "ALTER SYSTEM RESET pg_stat_statements.track" -c 'SELECT pg_reload_conf()' >/dev/null
    perf_top function >"$WORK/prof/function.top.txt"
    new_base
    profile shim b_wrk "$URL" "$KEY" "$LEADS" "$BASE" "$SECS"
    perf_top shim-shim '\[\.\] [A-Za-z_]' >"$WORK/prof/shim.top.txt"   # user space
    perf_top shim >"$WORK/prof/shim-db.top.txt"
    # the shim's system calls, by thread, over 3 s of another wrk run (perf trace -s)
    new_base
    b_wrk "$URL" "$KEY" "$LEADS" "$BASE" 5 >/dev/null 2>&1 &
    load=$!
    sleep 1
    # requests answered meanwhile, from /metrics (a batch makes one sendto() for many)
    answered() { curl -s "${URL%%/api/*}/metrics" | awk '/^leadintake_http_requests_total/ {s += $2} END {print s + 0}'; }
    r0=$(answered)
    timeout -s INT 3 perf trace -s -p "$SHIM_PID" -o "$WORK/prof/shim.trace.txt" >/dev/null 2>&1
    echo $(( $(answered) - r0 )) >"$WORK/prof/shim.trace.requests"
    wait "$load"
else
    echo "perf record does not work here" >"$WORK/prof/function.top.txt"
fi
kill -TERM "$SHIM_PID" 2>/dev/null && wait "$SHIM_PID" 2>/dev/null
SHIM_PID=""

# ---------------------------------------------------------------------------------------
# Bulk: one statement over 10,000 payloads, and the inbox job; same mix of new and existing.
staging_sql() {   # staging_sql ROWS BASE [N]: a SELECT of ROWS (id, agent, p the payload),
                  # half of them new, half among the leads 1..N (default LEADS)
    echo "SELECT id, agent, bench.payload(id, agent) AS p
            FROM (SELECT CASE WHEN i % 2 = 0 THEN 1 + (random() * (${3:-$LEADS} - 1))::bigint
                              ELSE $2 + 10000000 + i END AS id, 1 + i % 50 AS agent
                    FROM generate_series(1, $1) i) s"
}
timed() {   # timed COMMAND...: b_delta's figures (B_SECS wall, B_CPU server...) of COMMAND
    local s0 s1
    s0=$(b_snap)
    "$@" >/dev/null || return 1
    s1=$(b_snap)
    b_delta "$s0" "$s1"
}
for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS: one statement over 10,000 payloads"
    new_base
    b_psql -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS bench.staging" \
        -c "CREATE TABLE bench.staging AS $(staging_sql 10000 "$BASE")" >/dev/null
    b_settle
    mark=$(b_log_mark)
    timed b_psql -c 'SELECT count(leadintake_from_dialer(p)) FROM bench.staging' \
        || fail "the bulk statement failed"
    read -r new bad < <(b_log_mix "$mark")
    [ "$bad" = 0 ] || fail "$bad bulk rows did not answer 201"
    b_record bulk.rows_s "$r" "$(b_calc "10000 / $B_SECS")"
    b_record bulk.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / 10000")"
    b_record bulk.new_pct "$r" "$new"
    b_record bulk.others_pct "$r" "$B_OTHERS"

    step "round $r/$ROUNDS: process_inbox(1000) draining 50,000 rows"
    new_base
    b_psql -c 'TRUNCATE leadintake.inbox' \
        -c "INSERT INTO leadintake.inbox (payload) SELECT p FROM ($(staging_sql 50000 "$BASE")) s" \
        >/dev/null
    b_settle
    mark=$(b_log_mark)
    for _ in $(seq 51); do echo 'SELECT count(*) FROM leadintake.process_inbox(1000);'; done \
        >"$WORK/drain.sql"
    timed b_psql -f "$WORK/drain.sql" || fail "process_inbox failed"
    read -r pending bad < <(b_psql -F ' ' -c "SELECT count(*) FILTER (WHERE processed_at IS NULL),
        count(*) FILTER (WHERE status <> 201) FROM leadintake.inbox")
    if [ "$pending" != 0 ] || [ "$bad" != 0 ]; then fail "inbox: $pending pending, $bad not 201"; fi
    read -r new bad < <(b_log_mix "$mark")
    b_record inbox.rows_s "$r" "$(b_calc "50000 / $B_SECS")"
    b_record inbox.cpu_us "$r" "$(b_calc "1e6 * $B_CPU / 50000")"
    b_record inbox.new_pct "$r" "$new"
    b_record inbox.others_pct "$r" "$B_OTHERS"
done
if [ "$PERF_OK" = 1 ]; then
    step "profile: process_inbox(1000), one session"
    new_base
    b_psql -c 'TRUNCATE leadintake.inbox' \
        -c "INSERT INTO leadintake.inbox (payload) SELECT p FROM ($(staging_sql 50000 "$BASE")) s" \
        >/dev/null
    profile inbox b_psql -f "$WORK/drain.sql"
    perf_top inbox >"$WORK/prof/inbox.top.txt"
fi

# ---------------------------------------------------------------------------------------
# Growth: with 1k, 100k and 1M leads stored (both tables loaded alike), one statement over
# 10,000 payloads (half new, half among the stored leads), and the same rows through the bare
# upsert of baseline.sql, one statement each, in a PL/pgSQL loop (bench.baseline_loop): the
# cost of a call, without commits or client round trips, on one core: what stays when 32
# clients on 1,000 leads would mostly measure row-lock queues.
for size in $GROWTH; do
    step "growth: $size leads stored"
    b_psql -c "SELECT bench.load($size)" >/dev/null || fail "bench.load($size) failed"
    b_record "growth.$size.load" - "$(b_psql -c "SELECT pg_size_pretty(pg_total_relation_size('leadintake.leads'))")"
    for r in $(seq "$ROUNDS"); do
        new_base
        b_psql -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS bench.staging" \
            -c "CREATE TABLE bench.staging AS $(staging_sql 10000 "$BASE" "$size")" >/dev/null
        b_settle
        timed b_psql -c 'SELECT count(leadintake_from_dialer(p)) FROM bench.staging' \
            || fail "growth: the bulk statement failed"
        b_record "growth.$size.func_rows_s" "$r" "$(b_calc "10000 / $B_SECS")"
        b_record "growth.$size.func_cpu_us" "$r" "$(b_calc "1e6 * $B_CPU / 10000")"
        b_record "growth.$size.others_pct" "$r.f" "$B_OTHERS"
        b_settle
        timed b_psql -c 'SELECT bench.baseline_loop()' || fail "growth: the baseline loop failed"
        b_record "growth.$size.base_rows_s" "$r" "$(b_calc "10000 / $B_SECS")"
        b_record "growth.$size.base_cpu_us" "$r" "$(b_calc "1e6 * $B_CPU / 10000")"
        b_record "growth.$size.others_pct" "$r.b" "$B_OTHERS"
    done
done

# ---------------------------------------------------------------------------------------
# Instructions per call (callgrind.sh), the older build against this one: what a change
# cost or saved, which the drifting speed of a shared machine does not blur.
if [ -n "$BEFORE_SO" ]; then
    step "callgrind: $BEFORE_SO against this build"
    buildid() { readelf -n "$1" | sed -n 's/.*Build ID: //p'; }
    b_record meta.cg_builds - "before: $BEFORE_SO (build-id $(buildid "$BEFORE_SO")); after: \
this build (build-id $(buildid "$WORK/pkglib/leadintake.so"))"
    if CALLGRIND_PKGLIB=$WORK/pkglib CALLGRIND_EXTDIR=$WORK/extension \
            CALLGRIND_TSV=$WORK/callgrind.tsv \
            bash "$BENCH/callgrind.sh" "$BEFORE_SO" "$WORK/pkglib/leadintake.so" \
            >"$WORK/callgrind.out" 2>&1; then
        while IFS=$'\t' read -r build round name per; do
            if [ "$build" = 0 ]; then build=before; else build=after; fi
            b_record "cg.$build.$name" "$round" "$per"
        done <"$WORK/callgrind.tsv"
    else   # the timed figures stand without it
        li_log "callgrind.sh failed:"; cat "$WORK/callgrind.out" >&2
        b_record meta.cg_error - "callgrind.sh failed: $(grep -m 3 -e callgrind.sh -e ERROR \
"$WORK/callgrind.out" | tr '\n' ' ')"
    fi
fi

b_record meta.load_after - "$(cut -d' ' -f1-3 /proc/loadavg); $(python3 "$BENCH/procstat.py" busy 3)"
b_record meta.duration - "$((SECONDS - START)) s"
b_record meta.params - "rounds $ROUNDS x ${SECS}s, c=$CLIENTS, j/t=$THREADS, $LEADS leads stored, shim pool $POOL"

step "report"
python3 "$BENCH/report.py" "$RESULTS" "$WORK/prof" "$OUT"
