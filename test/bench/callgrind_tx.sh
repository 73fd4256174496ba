#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # lib.sh's optional arguments; cleanup runs from the trap
# test/bench/callgrind_tx.sh: the database-CPU target's ratio (the function's transaction ÷
# the floor's) counted in instructions, for comparing builds on a shared machine.
#
#   bash test/bench/callgrind_tx.sh [LEADINTAKE.SO ...]    (as root; default: the installed one)
#
# make bench measures the server's CPU time per transaction of function.sql and of
# baseline_log.sql on bench.leads_fk (the floor of a call) under pgbench; this counts the
# instructions of the same transactions in `postgres --single` under callgrind: each
# EXECUTE of the two statements, prepared as pgbench -M prepared prepares them, is its own
# transaction (the executor, the function's answer as output, the commit, and in single
# user mode the call's own NOTIFY). 100,000 leads stored (setup.sql, bench.load), 50
# warm-up calls of each, then 500 new leads and 500 stored ones for each statement, every
# build on a fresh copy of the same data directory. Prints instructions per transaction
# and (function new + stored) ÷ (floor new + stored). The last build should be the
# installed one (its SQL scripts create the extension). Needs valgrind and unshare.

set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$BENCH/../../scripts/lib.sh"

command -v valgrind >/dev/null || { echo "callgrind_tx.sh: valgrind is not installed" >&2; exit 2; }
LIB=$(pg_config --pkglibdir)
if [ -z "${LI_CALLGRIND_NS:-}" ]; then
    unshare -m --propagation private true 2>/dev/null \
        || { echo "callgrind_tx.sh: needs a private mount namespace (unshare -m, as root)" >&2; exit 2; }
    LI_CALLGRIND_NS=1 exec unshare -m --propagation private bash "${BASH_SOURCE[0]}" "$@"
fi

builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("$LIB/leadintake.so")
WORK=$(mktemp -d /tmp/leadintake-callgrind-tx.XXXXXX)
chmod 755 "$WORK"
for i in "${!builds[@]}"; do
    cp "${builds[$i]}" "$WORK/build$i.so" && chmod 755 "$WORK/build$i.so" || exit 2
done
cleanup() {
    umount "$LIB/leadintake.so" 2>/dev/null
    li_remove_cluster "$WORK/pg" >/dev/null 2>&1
    rm -rf -- "$WORK"
}
trap cleanup EXIT

mount --bind "$WORK/build$((${#builds[@]} - 1)).so" "$LIB/leadintake.so" || exit 2
port=$(li_free_port) || exit 2
li_start_cluster "$WORK/pg" "$port" >/dev/null || { echo "callgrind_tx.sh: no cluster" >&2; exit 2; }
P() { li_psql "$WORK/pg" "$port" -d bench -q -At "$@"; }
li_psql "$WORK/pg" "$port" -d postgres -c 'CREATE DATABASE bench' >/dev/null
P -c 'CREATE EXTENSION leadintake' >/dev/null || { echo "callgrind_tx.sh: CREATE EXTENSION failed" >&2; exit 2; }
P -f "$BENCH/setup.sql" >/dev/null || { echo "callgrind_tx.sh: setup.sql failed" >&2; exit 2; }
P -c 'SELECT bench.load(100000, fk => true)' -c 'VACUUM ANALYZE' >/dev/null
li_cluster_ctl "$WORK/pg" stop >/dev/null
umount "$LIB/leadintake.so"
cp -a "$WORK/pg/data" "$WORK/pristine" || exit 2

# The two pgbench scripts as prepared statements ($1 agent, $2 lead id, $3 phone digits,
# typed as pgbench's untyped parameters resolve), then the calls; pg_backend_pid(), called
# nowhere else, ends each part (callgrind --dump-before).
python3 - "$BENCH" >"$WORK/in.sql" <<'EOF'
import sys
bench = sys.argv[1]

def statement(name):
    text = "".join(l for l in open(f"{bench}/{name}") if not l.startswith(("--", "\\")))
    for var, param in ((":agent", "$1"), (":id", "$2"), (":p", "$3")):
        text = text.replace(var, param)
    return text.strip().rstrip(";")

floor = statement("baseline_log.sql").replace("INSERT INTO bench.leads AS l ",
                                               "INSERT INTO bench.leads_fk AS l ")
print(f"PREPARE fl(bigint, text, text) AS {floor};\n")
print(f"PREPARE fn(text, text, text) AS {statement('function.sql')};\n")

def calls(name, ids):
    for k, i in enumerate(ids):
        print(f"EXECUTE {name}('{1 + k % 50}', '{i}', '{100000000000 + i}');\n")

def part():
    print("SELECT pg_backend_pid() > 0;\n")

calls("fl", [5000000000 + i for i in range(25)] + [1 + 37 * i for i in range(25)])
calls("fn", [5100000000 + i for i in range(25)] + [2 + 37 * i for i in range(25)])
part()
calls("fl", [6000000000 + i for i in range(500)])
part()
calls("fl", [3 + 97 * i for i in range(500)])
part()
calls("fn", [7000000000 + i for i in range(500)])
part()
calls("fn", [4 + 97 * i for i in range(500)])
part()
EOF
chmod 644 "$WORK/in.sql"
mkdir "$WORK/out" && chown postgres "$WORK/out"
parts=(warm-up floor_new floor_stored function_new function_stored end)
status=0
for i in "${!builds[@]}"; do
    rm -rf "$WORK/pg/data" && cp -a "$WORK/pristine" "$WORK/pg/data" || exit 2
    mount --bind "$WORK/build$i.so" "$LIB/leadintake.so" || exit 2
    rm -f "$WORK"/out/cg.out.*
    (cd / && runuser -u postgres -- valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/out/cg.out.%p" --dump-before=pg_backend_pid \
        "$(li_pg_bindir)/postgres" --single -j -D "$WORK/pg/data" \
        -c shared_preload_libraries=leadintake -c fsync=off bench <"$WORK/in.sql" \
        >"$WORK/log$i" 2>&1)
    umount "$LIB/leadintake.so"
    if grep -q ERROR "$WORK/log$i"; then
        echo "callgrind_tx.sh: ${builds[$i]}: the session did not run cleanly:" >&2
        grep -m 5 ERROR "$WORK/log$i" >&2
        status=1
        continue
    fi
    declare -A per=()
    k=0
    while read -r f; do
        name=${parts[$k]:-?}
        k=$((k + 1))
        per[$name]=$(( $(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f") / 500 ))
    done < <(grep -H '^part:' "$WORK"/out/cg.out.* | sort -t' ' -k2n | cut -d: -f1)
    python3 -c '
import sys
b, fn, fs, gn, gs = sys.argv[1], *map(int, sys.argv[2:])
print(f"{b}: floor new {fn:,} / stored {fs:,}; function new {gn:,} / stored {gs:,};"
      f" function ÷ floor {(gn + gs) / (fn + fs):.3f} (instructions per transaction)")
' "${builds[$i]}" "${per[floor_new]}" "${per[floor_stored]}" "${per[function_new]}" \
        "${per[function_stored]}"
    unset per
done
exit "$status"
