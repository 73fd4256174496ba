#!/usr/bin/env bash
# test/bench/callgrind.sh: instructions per call of the extension's core, counted by
# callgrind, for comparing builds on a shared machine where timings drift (the figures of
# test/bench/FIXES.md). Not part of `make bench` nor of the test command.
#
#   bash test/bench/callgrind.sh [LEADINTAKE.SO ...]    (as root; default: the installed one)
#
# Starts a throwaway cluster, creates the bench database (setup.sql, 100,000 leads stored,
# fillfactor as the extension sets it) and 1,050 payloads (bench.payload: half new leads,
# half among the stored ones), stops it, then for each build runs `postgres --single` under
# callgrind on: VACUUM; 50 warm-up calls; 1,000 calls in one statement; each statement
# rolled back, so every build sees the same data. Only li_process and li_log are counted
# (the validation, the look-up, the writes, the response and the log row); each build is
# measured twice, alternately. Prints instructions per call. Needs valgrind.

set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$BENCH/../../scripts/lib.sh"

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }
LIB=$(pg_config --pkglibdir)
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("$LIB/leadintake.so")
WORK=$(mktemp -d /tmp/leadintake-callgrind.XXXXXX)
chmod 755 "$WORK"
for i in "${!builds[@]}"; do cp "${builds[$i]}" "$WORK/build$i.so"; done
cp "$LIB/leadintake.so" "$WORK/installed.so"
cleanup() {
    cp "$WORK/installed.so" "$LIB/leadintake.so"
    li_remove_cluster "$WORK/pg" >/dev/null 2>&1
    [ "${CALLGRIND_KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf -- "$WORK"
}
trap cleanup EXIT

port=$(li_free_port) || exit 2
li_start_cluster "$WORK/pg" "$port" >/dev/null || { echo "callgrind.sh: no cluster" >&2; exit 2; }
P() { li_psql "$WORK/pg" "$port" -d bench -q -At "$@"; }
li_psql "$WORK/pg" "$port" -d postgres -c 'CREATE DATABASE bench' >/dev/null
P -c 'CREATE EXTENSION leadintake' -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
    >/dev/null 2>&1
P -f "$BENCH/setup.sql" >/dev/null
P -c 'SELECT bench.load(100000)' -c 'VACUUM ANALYZE' >/dev/null
P -c "CREATE TABLE stg AS SELECT bench.payload(CASE WHEN i % 2 = 0
          THEN 1 + (i * 7919) % 100000 ELSE 900000000 + i END, 1 + i % 50) AS p
        FROM generate_series(1, 1050) i" >/dev/null
li_cluster_ctl "$WORK/pg" stop >/dev/null

cat >"$WORK/in.sql" <<'EOF'
VACUUM leadintake.leads, leadintake.intake_log, leadintake.phone_claims;
BEGIN; SELECT count(leadintake_from_dialer(p)) FROM (SELECT p FROM stg LIMIT 50) s; ROLLBACK;
BEGIN; SELECT count(leadintake_from_dialer(p)) FROM (SELECT p FROM stg OFFSET 50) s; ROLLBACK;
EOF
chmod 644 "$WORK/in.sql"
mkdir "$WORK/out" && chown postgres "$WORK/out"   # callgrind writes as the server's user
for round in 1 2; do
    for i in "${!builds[@]}"; do
        cp "$WORK/build$i.so" "$LIB/leadintake.so"
        rm -f "$WORK"/out/cg.out.*
        (cd / && runuser -u postgres -- valgrind --tool=callgrind \
            --callgrind-out-file="$WORK/out/cg.out.%p" --toggle-collect=li_process --toggle-collect=li_log \
            "$(li_pg_bindir)/postgres" --single -D "$WORK/pg/data" -c shared_preload_libraries=leadintake bench <"$WORK/in.sql" \
            >"$WORK/cg.log" 2>&1)
        total=$(callgrind_annotate "$WORK"/out/cg.out.* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
        printf '%s (round %d): %s instructions per call\n' "${builds[$i]}" "$round" \
            "$(( ${total:-0} / 1050 ))"
    done
done
