# shellcheck shell=bash disable=SC2034  # the B_* figures are read by run.sh
# test/bench/lib.sh: helpers of test/bench/run.sh (sourced after scripts/lib.sh).
#
# They use the globals run.sh sets: BENCH (this directory), WORK (scratch), PG (the cluster's
# directory), PORT, PGDATA_DIR, RESULTS (the figures file), CLIENTS, THREADS, SHIM_PID.
#
#   b_psql [psql args]          psql -At on database bench, as postgres, ON_ERROR_STOP
#   b_record KEY ROUND VALUE    append one figure to $RESULTS (read by report.py)
#   b_settle                    CHECKPOINT, so that every run starts from a clean slate
#   b_log_mark                  the highest intake_log id (where a run's log rows start)
#   b_log_mix SINCE             "NEW_PERCENT NOT_201" of the log rows after SINCE
#   b_snap, b_delta S0 S1       CPU readings around a measure (see below)
#   b_pgbench SCRIPT N BASE SECS
#                               pgbench -M prepared -c CLIENTS -j THREADS (SCRIPT in BENCH,
#                               or an absolute path); sets B_TPS, B_TXNS,
#                               B_FAILED and b_delta's figures
#   b_wrk URL KEY N BASE SECS   wrk -c CLIENTS -t THREADS with shim.lua; sets B_RPS, B_REQS,
#                               B_BAD (non-2xx answers and socket errors) and b_delta's figures
#   b_floor MODE DELAY_US N BASE SECS
#                               wrk as b_wrk against a fresh floor server (floor.c, built in
#                               $WORK/floor): sets B_RPS, B_REQS, B_FLOOR_CPU (its CPU per
#                               request, µs) and B_FLOOR_HWM (its peak RSS, KiB)
#   b_calc EXPR                 python3 arithmetic, e.g. b_calc "1e6 * $cpu / $n"

b_psql() { li_psql "$PG" "$PORT" -d bench -At "$@"; }

b_record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

b_settle() { b_psql -c 'CHECKPOINT' >/dev/null; }

b_log_mark() { b_psql -c 'SELECT coalesce(max(id), 0) FROM leadintake.intake_log'; }

b_log_mix() {
    b_psql -F ' ' -c "SELECT round(100.0 * count(*) FILTER (WHERE created) / greatest(count(*), 1), 1),
                             count(*) FILTER (WHERE status <> 201)
                        FROM leadintake.intake_log WHERE id > $1"
}

b_calc() { python3 -c "print(round($1, 3))"; }

# b_snap: one procstat reading (machine busy, server, load generators, shim, wall clock).
# b_delta S0 S1: sets B_SECS (wall), B_CPU (server), B_CLIENT (pgbench or wrk), B_SHIM_CPU,
# B_OTHERS (% of the machine used by processes that are not part of the bench).
b_snap() { python3 "$BENCH/procstat.py" snap "$PGDATA_DIR" "$$" "${SHIM_PID:-0}"; }
b_delta() {
    read -r B_SECS B_CPU B_CLIENT B_SHIM_CPU B_OTHERS < <(python3 -c "
import sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
m, srv, cli, shim, wall = (y - x for x, y in zip(a, b))
print(f'{wall:.3f} {srv:.2f} {cli:.2f} {shim:.2f} {max(0.0, 100 * (m - srv - cli - shim) / (wall * $(nproc))):.0f}')
" "$1" "$2")
}

b_pgbench() {
    local script=$1 n=$2 base=$3 secs=$4 out=$WORK/pgbench.out s0 s1 rc
    [[ $script = /* ]] || script=$BENCH/$script
    s0=$(b_snap)
    pgbench -n -M prepared -h "$(li_sockdir "$PG")" -p "$PORT" -U postgres \
        -c "$CLIENTS" -j "$THREADS" -T "$secs" -D n="$n" -D base="$base" \
        -f "$script" bench >"$out" 2>&1
    rc=$?
    sleep 0.3   # let the postmaster reap pgbench's backends, so that their CPU is counted
    s1=$(b_snap)
    b_delta "$s0" "$s1"
    B_TPS=$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$out")
    B_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    B_FAILED=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    if [ "$rc" != 0 ] || [ -z "$B_TPS" ] || [ -z "$B_TXNS" ] || [ "${B_FAILED:-0}" != 0 ]; then
        li_log "pgbench $script did not run cleanly (exit $rc):"
        grep -m 3 -e 'error' -e 'DETAIL' "$out" | cut -c 1-300 >&2
        tail -n 3 "$out" >&2
        B_TPS=${B_TPS:-0} B_TXNS=${B_TXNS:-0} B_FAILED=${B_FAILED:-1}
        return 1
    fi
}

b_wrk() {
    local url=$1 key=$2 n=$3 base=$4 secs=$5 out=$WORK/wrk.out s0 s1 non2xx sockerr
    s0=$(b_snap)
    wrk -t "$THREADS" -c "$CLIENTS" -d "${secs}s" -s "$BENCH/shim.lua" "$url" \
        -- "$n" "$base" "$key" >"$out" 2>&1
    s1=$(b_snap)
    b_delta "$s0" "$s1"
    B_RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out")
    B_REQS=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
    sockerr=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1+\2+\3+\4/p' "$out")
    B_BAD=$(( ${non2xx:-0} + ${sockerr:-0} ))
    if [ -z "$B_RPS" ] || [ -z "$B_REQS" ] || [ "$B_BAD" != 0 ]; then
        li_log "wrk did not run cleanly:"; cat "$out" >&2
        B_RPS=${B_RPS:-0} B_REQS=${B_REQS:-0}
        return 1
    fi
}

b_floor() {
    local mode=$1 delay=$2 n=$3 base=$4 secs=$5 out=$WORK/floor.out pid port t0 t1
    "$WORK/floor" "$mode" "$FLOOR_BYTES" "$delay" >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        port=$(sed -n 's/^listening on //p' "$out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then li_log "the floor server did not start:"; cat "$out" >&2; return 1; fi
    t0=$(python3 "$BENCH/procstat.py" ticks "$pid")
    wrk -t "$THREADS" -c "$CLIENTS" -d "${secs}s" -s "$BENCH/shim.lua" \
        "http://127.0.0.1:$port/api/leads/from-dialer/" -- "$n" "$base" floor >"$WORK/wrk.out" 2>&1
    t1=$(python3 "$BENCH/procstat.py" ticks "$pid")
    B_FLOOR_HWM=$(python3 "$BENCH/procstat.py" hwm "$pid")
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    B_RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$WORK/wrk.out")
    B_REQS=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$WORK/wrk.out")
    if [ -z "$B_RPS" ] || [ -z "$B_REQS" ] || [ "$B_REQS" = 0 ]; then
        li_log "wrk against the floor server did not run cleanly:"; cat "$WORK/wrk.out" >&2
        return 1
    fi
    B_FLOOR_CPU=$(b_calc "1e6 * ($t1 - $t0) / $B_REQS")
}
