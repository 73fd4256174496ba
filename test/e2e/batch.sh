#!/usr/bin/env bash
# shellcheck disable=SC2154  # URL_<name>, PID_<name> are set by shim_started (printf -v)
# test/e2e/batch.sh: requests queued together share one transaction (--batch-max), and each
# still gets its own answer. Prints TAP.
#   1. 40 concurrent requests through one database connection: every one 201, batches were
#      made (/metrics), ten of them for one lead made exactly one lead, every log row there.
#   2. A request that fails inside a batch (lock timeout on a lead another session holds)
#      gets its own 503; the others of its batch are rolled back with it, run again alone
#      and get their 201, each stored and logged once.
#   3. --batch-max 1: no batch at all.
#   4. Two batches that lock two leads in opposite orders deadlock (a BEFORE trigger of the
#      test makes each update last 0.4 s): the victim and its batch-mate are run again alone,
#      and all four calls get their 201.
#   5. A batch whose calls together outlast one call's --query-timeout (+2 s): its running
#      call is cancelled and answered 503, the others are run again alone: 201.
#   6. A batch whose commit fails (a test-only deferred trigger refuses one of its leads):
#      each call runs again alone, so only the refused one fails.
#   7. Query-key and header-key requests in the same batches (--allow-query-key): each gets
#      its own body, minimal for the key from the URL (contract section 7).
#
# Run by scripts/test.sh (LEADINTAKE_TEST_DB, LEADINTAKE_TEST_CONNINFO, LEADINTAKE_SHIM,
# LEADINTAKE_TEST_TMP, PG* variables) or by hand with nothing set: it then starts a
# throwaway cluster of its own.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

SHIM=${LEADINTAKE_SHIM:-$ROOT/shim/leadintake-shim}
e2e_tmp batch
HOLDER=""

e2e_database e2e_batch
stop_holder() { [ -n "$HOLDER" ] && stop_pid "$HOLDER"; }
e2e_on_exit stop_holder

[ -x "$SHIM" ] || { echo "1..0 # SKIP no shim binary at $SHIM"; exit 0; }
q -c "INSERT INTO leadintake.agents (username) VALUES ('agent1')" >/dev/null \
    || bail "cannot seed"
e2e_key batch

echo "1..32"

# --db-wait 0: a call the database cannot serve is answered 503 at once (nolost.sh: the wait)
SHIM_ARGS=(--db-wait 0)
# post URL OUTFILE JSON: one request; OUTFILE gets the status code, OUTFILE.body the body,
# OUTFILE.hdr the headers. bg URL OUTFILE JSON: the same in the background (its pid in BG).
BG=()
post() {
    curl -s --max-time 30 -o "$2.body" -D "$2.hdr" -w '%{http_code}' \
        -H "X-Dialer-Api-Key: $KEY" -H 'Content-Type: application/json' \
        --data-binary "$3" "$1/api/leads/from-dialer/" >"$2" 2>/dev/null
}
bg() { post "$@" & BG+=($!); }
wait_bg() { local p; for p in "${BG[@]}"; do wait "$p"; done; BG=(); }
code() { cat "$1" 2>/dev/null; }
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# ================================================================ 1. batches under load
if ! start_shim one --pool-size 1 --batch-max 16; then
    bail "the shim does not start: $(cat "$T/one.err")"
fi
U=$URL_one
# The log table held for 1.5 s: the first request waits there on the one connection, so the
# others queue behind it and go in batches however the machine schedules the 40 curls.
q -c "BEGIN" -c "LOCK TABLE leadintake.intake_log IN SHARE MODE" -c "SELECT pg_sleep(1.5)" \
  -c "COMMIT" >/dev/null 2>&1 &
HOLDER=$!
sleep 0.3
for i in $(seq 1 30); do
    bg "$U" "$T/l$i" "{\"user\": \"agent1\", \"lead_id\": \"B-$i\", \"phone_number\": \"07700 9$(printf %05d "$i")\", \"city\": \"c$i\"}"
done
for i in $(seq 1 10); do
    bg "$U" "$T/d$i" "{\"user\": \"agent1\", \"lead_id\": \"B-DUP\", \"phone_number\": \"07700 800000\", \"notes\": \"n$i\"}"
done
wait_bg
wait "$HOLDER" 2>/dev/null
HOLDER=""
codes=$(for f in "$T"/l* "$T"/d*; do case $f in *.body | *.hdr) ;; *) code "$f"; echo ;; esac; done | sort | uniq -c | tr -s ' ' | sed 's/^ //')
is "40 concurrent requests over one database connection: all 201" "$codes" "40 201"
like "they went in batches (leadintake_db_batches_total > 0)" "$(metric "$U" leadintake_db_batches_total)" '^[1-9][0-9]*$'
is "the 30 distinct leads are stored, each once, with its own city" \
    "$(q -c "SELECT count(*), count(DISTINCT dialer_lead_id) FROM leadintake.leads
              WHERE dialer_lead_id ~ '^B-[0-9]+\$' AND city = 'c' || substr(dialer_lead_id, 3)")" "30|30"
is "ten requests for one lead, some in one batch: exactly one lead" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'B-DUP'")" 1
is "... and it holds one of their notes" \
    "$(q -c "SELECT notes ~ '^n([1-9]|10)\$' FROM leadintake.leads WHERE dialer_lead_id = 'B-DUP'")" t
is "every request has its log row, status 201" \
    "$(q -c "SELECT count(*) FILTER (WHERE status = 201), count(*) FROM leadintake.intake_log WHERE source = 'http'")" "40|40"

# ================================================================ 2. a failure inside a batch
# The lead B-LOCKED, locked by another session for 8 s; the shim's sessions wait 1.5 s.
post "$U" "$T/mk" '{"user": "agent1", "lead_id": "B-LOCKED", "phone_number": "07700 700000", "city": "Before"}'
stop_pid "$PID_one"
if ! CONNINFO="$CONNINFO options='-c lock_timeout=1500'" start_shim two --pool-size 1 --batch-max 16; then
    bail "the second shim does not start: $(cat "$T/two.err")"
fi
U=$URL_two
q -c "BEGIN" -c "SELECT 1 FROM leadintake.leads WHERE dialer_lead_id = 'B-LOCKED' FOR UPDATE" \
  -c "SELECT pg_sleep(8)" -c "COMMIT" >/dev/null 2>&1 &
HOLDER=$!
sleep 0.5
# X takes the one connection and waits on the lock; the next four queue behind it and then
# go as one batch, in which C waits on the lock again.
bg "$U" "$T/x" '{"user": "agent1", "lead_id": "B-LOCKED", "city": "X"}'
sleep 0.3
bg "$U" "$T/b1" '{"user": "agent1", "lead_id": "B-R1", "phone_number": "07700 600001"}'
sleep 0.1
bg "$U" "$T/b2" '{"user": "agent1", "lead_id": "B-R2", "phone_number": "07700 600002"}'
sleep 0.1
bg "$U" "$T/c" '{"user": "agent1", "lead_id": "B-LOCKED", "city": "C"}'
sleep 0.1
bg "$U" "$T/b3" '{"user": "agent1", "lead_id": "B-R3", "phone_number": "07700 600003"}'
wait_bg
is "X, alone, waited for the lock past lock_timeout: 503" "$(code "$T/x")" 503
is "C, inside the batch, did the same: its own 503" "$(code "$T/c")" 503
like "... with Retry-After" "$(tr -d '\r' <"$T/c.hdr" | grep -i '^retry-after:')" '^[Rr]etry-[Aa]fter: [0-9]+'
is "the three others of C's batch: 201 each" "$(code "$T/b1") $(code "$T/b2") $(code "$T/b3")" "201 201 201"
like "they were run again alone (leadintake_db_batch_retries_total >= 3)" \
    "$(metric "$U" leadintake_db_batch_retries_total)" '^([3-9]|[1-9][0-9]+)$'
is "each of them stored once" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id IN ('B-R1', 'B-R2', 'B-R3')")" 3
is "each logged once (the rolled-back attempt left no row)" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE payload ->> 'lead_id' IN ('B-R1', 'B-R2', 'B-R3')")" 3
is "the locked lead was changed by neither X nor C" \
    "$(q -c "SELECT city FROM leadintake.leads WHERE dialer_lead_id = 'B-LOCKED'")" Before
wait "$HOLDER" 2>/dev/null
HOLDER=""
post "$U" "$T/c2" '{"user": "agent1", "lead_id": "B-LOCKED", "city": "C"}'
is "C sent again once the lock is gone: 201, stored" \
    "$(code "$T/c2") $(q -c "SELECT city FROM leadintake.leads WHERE dialer_lead_id = 'B-LOCKED'")" "201 C"

# ================================================================ 3. --batch-max 1
stop_pid "$PID_two"
if ! start_shim three --pool-size 1 --batch-max 1; then
    bail "the third shim does not start: $(cat "$T/three.err")"
fi
U=$URL_three
for i in $(seq 1 12); do
    bg "$U" "$T/s$i" "{\"user\": \"agent1\", \"lead_id\": \"B-S$i\"}"
done
wait_bg
codes=$(for i in $(seq 1 12); do code "$T/s$i"; echo; done | sort | uniq -c | tr -s ' ' | sed 's/^ //')
is "--batch-max 1: 12 concurrent requests, all 201" "$codes" "12 201"
is "... and no batch was made" "$(metric "$U" leadintake_db_batches_total)" 0

# ================================================================ 4. a deadlock between batches
stop_pid "$PID_three"
# Updates and inserts of a lead whose city is 'slowN' take N seconds (this test's only).
q -c "CREATE FUNCTION public.batch_slow() RETURNS trigger LANGUAGE plpgsql AS \$\$
      BEGIN
          IF NEW.city LIKE 'slow%' THEN PERFORM pg_sleep(substr(NEW.city, 5)::float8); END IF;
          RETURN NEW;
      END \$\$" \
  -c "CREATE TRIGGER batch_slow BEFORE INSERT OR UPDATE ON leadintake.leads
      FOR EACH ROW EXECUTE FUNCTION public.batch_slow()" >/dev/null || bail "cannot make the trigger"
q -c "SELECT count(leadintake_from_dialer(jsonb_build_object('user', 'agent1', 'lead_id', l)))
        FROM unnest(ARRAY['B-X', 'B-Y']) l" >/dev/null || bail "cannot make the leads"
if ! start_shim four --pool-size 2 --batch-max 2; then
    bail "the fourth shim does not start: $(cat "$T/four.err")"
fi
U=$URL_four
# Both workers busy for 0.5 s with a gate call each; then one takes X-then-Y, the other
# Y-then-X, within 0.05 s of each other.
for n in g1 g2 x1 y1 y2 x2; do
    case $n in g*) l=B-$n city=slow0.5 ;; x*) l=B-X city=slow0.4 ;; y*) l=B-Y city=slow0.4 ;; esac
    bg "$U" "$T/dl$n" "{\"user\": \"agent1\", \"lead_id\": \"$l\", \"city\": \"$city\", \"notes\": \"$n\"}"
    sleep 0.05
done
wait_bg
codes=$(for n in g1 g2 x1 y1 y2 x2; do code "$T/dl$n"; echo; done | sort | uniq -c | tr -s ' ' | sed 's/^ //')
is "two batches locking B-X and B-Y in opposite orders: all six calls 201" "$codes" "6 201"
like "... the database did report the deadlock (40P01)" "$(grep -c '40P01' "$T/four.err")" '^[1-9]'
like "... and the victim and its batch-mate were run again alone (batch_retries_total >= 2)" \
    "$(metric "$U" leadintake_db_batch_retries_total)" '^([2-9]|[1-9][0-9]+)$'
is "each of the six calls logged once, 201" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE status = 201 AND payload ->> 'city' IN ('slow0.4', 'slow0.5')")" 6

# ================================================================ 5. a batch too slow as a whole
stop_pid "$PID_four"
if ! start_shim five --pool-size 1 --batch-max 8 --query-timeout 1000; then
    bail "the fifth shim does not start: $(cat "$T/five.err")"
fi
U=$URL_five
# the one worker busy for 0.6 s with a gate call while five calls queue behind it
bg "$U" "$T/cg" '{"user": "agent1", "lead_id": "B-G", "city": "slow0.6"}'
sleep 0.2
# five calls of 0.7 s each (under the 1 s statement_timeout) go as one batch of 3.5 s
for i in 1 2 3 4 5; do
    bg "$U" "$T/cs$i" "{\"user\": \"agent1\", \"lead_id\": \"B-C$i\", \"city\": \"slow0.7\"}"
    sleep 0.05
done
wait_bg
codes=$(for i in 1 2 3 4 5; do code "$T/cs$i"; echo; done | sort | uniq -c | tr -s ' ' | sed 's/^ //' | tr '\n' ',')
is "a batch of five 0.7 s calls (1 s timeout): the call running at 3 s is cancelled, 503; four 201" \
    "$codes" "4 201,1 503,"
like "... the cancel reached the database (57014)" "$(grep -c '57014' "$T/five.err")" '^[1-9]'
is "... the four stored, the cancelled one not" \
    "$(q -c "SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'B-C_'")" 4
is "the gate call before them: 201" "$(code "$T/cg")" 201

# ================================================================ 6. a commit that fails
q -c "CREATE FUNCTION public.batch_refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$
      BEGIN
          IF NEW.city = 'refused' THEN RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation'; END IF;
          RETURN NULL;
      END \$\$" \
  -c "CREATE CONSTRAINT TRIGGER batch_refuse AFTER INSERT OR UPDATE ON leadintake.leads
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.batch_refuse()" \
    >/dev/null || bail "cannot make the deferred trigger"
retries0=$(metric "$U" leadintake_db_batch_retries_total)
bg "$U" "$T/fg" '{"user": "agent1", "lead_id": "B-G", "city": "slow0.6"}'
sleep 0.2
for n in 1 2 3; do
    city=ok
    [ "$n" = 2 ] && city=refused
    bg "$U" "$T/fc$n" "{\"user\": \"agent1\", \"lead_id\": \"B-F$n\", \"city\": \"$city\"}"
    sleep 0.05
done
wait_bg
is "a batch whose commit a deferred trigger refuses: the refused call 500, the two others 201" \
    "$(code "$T/fc1") $(code "$T/fc2") $(code "$T/fc3")" "201 500 201"
is "... all three were run again alone" \
    "$(( $(metric "$U" leadintake_db_batch_retries_total) - retries0 ))" 3
is "... the two stored, the refused one not" \
    "$(q -c "SELECT string_agg(dialer_lead_id, ' ' ORDER BY dialer_lead_id) FROM leadintake.leads WHERE dialer_lead_id LIKE 'B-F_'")" "B-F1 B-F3"
is "... each of the two logged once" \
    "$(q -c "SELECT count(*) FROM leadintake.intake_log WHERE payload ->> 'lead_id' LIKE 'B-F_'")" 2
q -c "DROP TRIGGER batch_refuse ON leadintake.leads" -c "DROP FUNCTION public.batch_refuse()" \
  -c "DROP TRIGGER batch_slow ON leadintake.leads" -c "DROP FUNCTION public.batch_slow()" >/dev/null

# ================================================================ 7. query keys in a batch
if ! start_shim seven --pool-size 1 --batch-max 16 --allow-query-key; then
    bail "the shim does not start: $(cat "$T/seven.err")"
fi
U=$URL_seven
batches0=$(metric "$U" leadintake_db_batches_total)
for i in $(seq 1 12); do
    curl -s --max-time 30 -o "$T/qk$i.body" \
        "$U/api/leads/from-dialer/?user=agent1&lead_id=B-DUP&city=q$i&api_key=$KEY" &
    BG+=($!)
    bg "$U" "$T/hk$i" '{"user": "agent1", "lead_id": "B-DUP"}'
done
wait_bg
like "query-key and header-key requests together went in batches" \
    "$(( $(metric "$U" leadintake_db_batches_total) - batches0 ))" '^[1-9][0-9]*$'
is "each query-key request: the minimal lead (no phone, no notes), its own city" \
    "$(for i in $(seq 1 12); do python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["lead"]; print(",".join(sorted(l)), l["city"] == sys.argv[2])' "$T/qk$i.body" "q$i"; done | sort | uniq -c | tr -s ' ' | sed 's/^ //')" \
    "12 assigned_agent_username,city,dialer_lead_id,id,status True"
is "each header-key request of the same batches: the whole lead (its stored phone)" \
    "$(for i in $(seq 1 12); do python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lead"]["phone"])' "$T/hk$i.body"; done | sort | uniq -c | tr -s ' ' | sed 's/^ //')" \
    "12 07700 800000"

[ "$FAILED" = 0 ]
