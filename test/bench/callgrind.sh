#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # lib.sh's optional arguments; cleanup runs from the trap
# test/bench/callgrind.sh: instructions per call of the extension's SQL entries, counted by
# callgrind, for comparing builds on a shared machine where timings drift.
#
#   bash test/bench/callgrind.sh [LEADINTAKE.SO ...]    (as root; default: the installed one)
#
# The last build should be the installed one (its SQL scripts create the extension); older
# builds run on that schema.
#
# Starts a throwaway cluster, creates the bench database (setup.sql, 100,000 leads stored,
# fillfactor as the extension sets it) and 1,050 payloads (bench.payload: half new leads,
# half among the stored ones), stops it and keeps a copy of its data directory. Then for each
# build, on a fresh copy of that directory, `postgres --single` under callgrind runs 50
# warm-up calls of each entry the bench's lines use (plans kept, caches filled), then 1,000
# calls of each in one statement, each in a transaction rolled back:
#   from_dialer   leadintake_from_dialer(p)      (function, database CPU, bulk, growth lines)
#   http_intake   leadintake.http_intake(...)    (what the shim calls: one request)
#   inbox         process_inbox(1000) over 1,000 rows put in the inbox (their insert is not
#                 counted)
# Counted: the instructions inside each entry's C function during the 1,000 calls, inclusive
# (everything it calls: validation, look-up, every statement it runs through SPI, the
# response, the log row); not the executor around it nor the commit. The counts repeat to
# a few instructions a call. (test/bench/FIXES.md's figures up to issue 15 counted li_process
# + li_log of from_dialer only, warm-up included.) Each build is measured twice, alternately.
# Prints instructions per call.
#
# The whole script runs in a private mount namespace: each build is bind-mounted over the
# server's leadintake.so there, never copied over it. CALLGRIND_PKGLIB and CALLGRIND_EXTDIR
# (directories, as `pg_config --pkglibdir` and `--sharedir`/extension) are mounted over the
# server's first when set: run.sh passes its copies of the build. CALLGRIND_TSV=FILE also
# writes "build-index<TAB>round<TAB>measure<TAB>instructions per call" lines there;
# CALLGRIND_OPTS adds server settings to every session (e.g. "-c leadintake.invalid_fields=keep");
# CALLGRIND_KEEP=1 keeps the scratch directory. Needs valgrind and unshare.

set -uo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$BENCH/../../scripts/lib.sh"

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }
LIB=$(pg_config --pkglibdir)
EXTDIR=$(pg_config --sharedir)/extension
if [ -z "${LI_CALLGRIND_NS:-}" ]; then
    unshare -m --propagation private true 2>/dev/null \
        || { echo "callgrind.sh: needs a private mount namespace (unshare -m, as root)" >&2; exit 2; }
    LI_CALLGRIND_NS=1 exec unshare -m --propagation private bash "${BASH_SOURCE[0]}" "$@"
fi
if [ -n "${CALLGRIND_PKGLIB:-}" ]; then mount --bind "$CALLGRIND_PKGLIB" "$LIB" || exit 2; fi
if [ -n "${CALLGRIND_EXTDIR:-}" ]; then mount --bind "$CALLGRIND_EXTDIR" "$EXTDIR" || exit 2; fi

builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("$LIB/leadintake.so")
WORK=$(mktemp -d /tmp/leadintake-callgrind.XXXXXX)
chmod 755 "$WORK"
for i in "${!builds[@]}"; do
    cp "${builds[$i]}" "$WORK/build$i.so" || exit 2
    chmod 755 "$WORK/build$i.so"
done
cleanup() {
    umount "$LIB/leadintake.so" 2>/dev/null
    li_remove_cluster "$WORK/pg" >/dev/null 2>&1
    if [ "${CALLGRIND_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf -- "$WORK"; fi
}
trap cleanup EXIT

# The cluster runs the last build, the one the installed SQL scripts come with (CREATE
# EXTENSION and the setup only; nothing measured).
mount --bind "$WORK/build$((${#builds[@]} - 1)).so" "$LIB/leadintake.so" || exit 2
port=$(li_free_port) || exit 2
li_start_cluster "$WORK/pg" "$port" >/dev/null || { echo "callgrind.sh: no cluster" >&2; exit 2; }
P() { li_psql "$WORK/pg" "$port" -d bench -q -At "$@"; }
li_psql "$WORK/pg" "$port" -d postgres -c 'CREATE DATABASE bench' >/dev/null
P -c 'CREATE EXTENSION leadintake' -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
    >/dev/null || { echo "callgrind.sh: CREATE EXTENSION failed" >&2; exit 2; }
P -f "$BENCH/setup.sql" >/dev/null || { echo "callgrind.sh: setup.sql failed" >&2; exit 2; }
P -c 'SELECT bench.load(100000)' -c 'VACUUM ANALYZE' >/dev/null
P -c "CREATE TABLE stg AS SELECT i, bench.payload(CASE WHEN i % 2 = 0
          THEN 1 + (i * 7919) % 100000 ELSE 900000000 + i END, 1 + i % 50) AS p
        FROM generate_series(1, 1050) i" >/dev/null
li_cluster_ctl "$WORK/pg" stop >/dev/null
umount "$LIB/leadintake.so"
# Every session starts from these very files: what one leaves behind (the space its
# rolled-back rows took, sequence values) would shift the next one's count.
cp -a "$WORK/pg/data" "$WORK/pristine" || exit 2

# The shim's call, as shim/db.c makes it (a JSON body as sent, the key's name, the
# client's address, minimal false). pg_backend_pid(), called nowhere else, ends a part:
# callgrind writes what it counted so far to a file of its own and starts again from zero
# (--dump-before), so that each part holds one entry's 1,000 calls and nothing else.
sed -e 's/^ *//' >"$WORK/in.sql" <<'EOF'
    BEGIN; SELECT count(leadintake_from_dialer(p)) FROM (SELECT p FROM stg ORDER BY i LIMIT 50) s; ROLLBACK;
    BEGIN; SELECT count(r.status) FROM (SELECT p FROM stg ORDER BY i LIMIT 50) s, LATERAL leadintake.http_intake(convert_to(p::text, 'UTF8'), 'bench', '127.0.0.1', false) r; ROLLBACK;
    BEGIN; INSERT INTO leadintake.inbox (payload) SELECT p FROM stg ORDER BY i LIMIT 50; SELECT count(*) FROM leadintake.process_inbox(50); ROLLBACK;
    SELECT pg_backend_pid() > 0;
    BEGIN; SELECT count(leadintake_from_dialer(p)) FROM (SELECT p FROM stg ORDER BY i OFFSET 50) s; ROLLBACK;
    SELECT pg_backend_pid() > 0;
    BEGIN; SELECT count(r.status) FROM (SELECT p FROM stg ORDER BY i OFFSET 50) s, LATERAL leadintake.http_intake(convert_to(p::text, 'UTF8'), 'bench', '127.0.0.1', false) r; ROLLBACK;
    SELECT pg_backend_pid() > 0;
    BEGIN; INSERT INTO leadintake.inbox (payload) SELECT p FROM stg ORDER BY i OFFSET 50; SELECT count(*) FROM leadintake.process_inbox(1000); SELECT 'inbox pending ' || count(*) FILTER (WHERE processed_at IS NULL) || ', not 201 ' || count(*) FILTER (WHERE status <> 201) FROM leadintake.inbox; ROLLBACK;
EOF
chmod 644 "$WORK/in.sql"
mkdir "$WORK/out" && chown postgres "$WORK/out"   # callgrind writes as the server's user
[ -z "${CALLGRIND_TSV:-}" ] || : >"$CALLGRIND_TSV"
# the parts, in the order of in.sql (the warm-up first, not reported)
measures=(warm-up from_dialer http_intake inbox)
status=0
for round in 1 2; do
    for i in "${!builds[@]}"; do
        rm -rf "$WORK/pg/data" && cp -a "$WORK/pristine" "$WORK/pg/data" || exit 2
        mount --bind "$WORK/build$i.so" "$LIB/leadintake.so" || exit 2
        rm -f "$WORK"/out/cg.out.*
        # shellcheck disable=SC2086  # CALLGRIND_OPTS: words
        (cd / && runuser -u postgres -- valgrind --tool=callgrind \
            --callgrind-out-file="$WORK/out/cg.out.%p" \
            --toggle-collect=leadintake_from_dialer --toggle-collect=leadintake_http_intake \
            --toggle-collect=leadintake_process_inbox --dump-before=pg_backend_pid \
            "$(li_pg_bindir)/postgres" --single -D "$WORK/pg/data" \
            -c shared_preload_libraries=leadintake ${CALLGRIND_OPTS:-} bench <"$WORK/in.sql" \
            >"$WORK/cg$i.$round.log" 2>&1)
        umount "$LIB/leadintake.so"
        if ! grep -q 'inbox pending 0, not 201 0' "$WORK/cg$i.$round.log" \
                || grep -q 'ERROR' "$WORK/cg$i.$round.log"; then
            echo "callgrind.sh: ${builds[$i]}: the session did not run cleanly:" >&2
            grep -m 5 -e ERROR -e FATAL -e 'inbox pending' "$WORK/cg$i.$round.log" >&2
            status=1
            continue
        fi
        # each part's total (callgrind's "totals:" line): 1,000 calls (the inbox: 1,000 rows)
        line="${builds[$i]} (round $round):"
        k=0
        # in the order of their "part:" lines (the last part's file has no number)
        while read -r f; do
            name=${measures[$k]:-?}
            k=$((k + 1))
            [ "$name" = warm-up ] && continue
            total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f")
            per=$(( ${total:-0} / 1000 ))
            line+=" $name $per"
            [ -z "${CALLGRIND_TSV:-}" ] || printf '%s\t%s\t%s\t%s\n' "$i" "$round" "$name" "$per" \
                >>"$CALLGRIND_TSV"
        done < <(grep -H '^part:' "$WORK"/out/cg.out.* | sort -t' ' -k2n | cut -d: -f1)
        if [ "$k" != "${#measures[@]}" ]; then
            echo "callgrind.sh: ${builds[$i]}: $k parts counted, not ${#measures[@]}" >&2
            status=1
        fi
        echo "$line (instructions per call)"
        printf '%s\n' "$line" >>"$WORK/lines"
    done
done
# the mean of the two rounds per build, and each build against the first
[ -s "$WORK/lines" ] && python3 - "$WORK/lines" <<'EOF'
import statistics, sys
from collections import defaultdict
per = defaultdict(list)                     # (build, measure) -> counts
names = []
for line in open(sys.argv[1]):
    build, rest = line.split(" (round ", 1)
    words = rest.split("):", 1)[1].split()
    for name, n in zip(words[::2], words[1::2]):
        per[(build, name)].append(int(n))
        if name not in names:
            names.append(name)
builds = list(dict.fromkeys(b for b, _ in per))
print("instructions per call, mean of the rounds" + (", change against the first build"
                                                      if len(builds) > 1 else ""))
for name in names:
    first = None
    for b in builds:
        if not per[(b, name)]:
            continue
        m = statistics.mean(per[(b, name)])
        first = m if first is None else first
        change = f" ({100 * (m - first) / first:+.1f} %)" if b != builds[0] else ""
        print(f"  {name:<12} {m:>10,.0f}{change}  {b}")
EOF
exit "$status"
