#!/usr/bin/env bash
# shellcheck disable=SC2119  # e2e_on_exit takes an optional function: none here
# test/e2e/audit.sh: what a DBA's own controls on leadintake.leads see of a call's lead writes
# (issue 15, item 1): each is a statement, so pgaudit, a BEFORE trigger and row-level security
# treat them as they treat the DBA's own INSERT and UPDATE. Prints TAP.
#
#   1. pgaudit object auditing (pgaudit.role granted INSERT and UPDATE on leads) logs an
#      `AUDIT: OBJECT` line for every INSERT and UPDATE of leads a call makes: by lead id, by
#      phone, through the shim's entry and the inbox job; a plain INSERT and UPDATE first, as
#      the control that the lines are there to be found.
#   2. A BEFORE INSERT OR UPDATE trigger on leads changes what a call stores and answers.
#   3. Row-level security on leads, for a role that calls with the grants it needs: a policy's
#      WITH CHECK refuses a new lead and an update (42501), a lead its USING hides is not
#      merged into nor changed.
#
# pgaudit must be preloaded, so this always starts a throwaway cluster of its own (in $T/pg,
# shared_preload_libraries = 'pgaudit,leadintake'), whatever scripts/test.sh gives; it reads
# that cluster's log.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$ROOT/scripts/lib.sh"
# shellcheck source=test/e2e/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

e2e_tmp audit
unset LEADINTAKE_TEST_DB
e2e_database e2e_audit -c shared_preload_libraries=pgaudit,leadintake \
    -c pgaudit.role=auditor
e2e_on_exit
LOG=$OWN_CLUSTER/log

q >/dev/null <<'SQL' || bail "cannot set up the database"
CREATE EXTENSION pgaudit;
CREATE ROLE auditor NOLOGIN;
GRANT INSERT, UPDATE ON leadintake.leads TO auditor;
INSERT INTO leadintake.agents (username) VALUES ('agent1');
SQL

echo "1..24"

# audited SQL...: runs the statements (one psql -c each), RESULT = their output (and errors),
# AUDIT = the distinct "CLASS,COMMAND,TYPE,OBJECT" of the AUDIT: OBJECT lines they logged.
audited() {
    local at arg args=()
    at=$(stat -c %s "$LOG")
    for arg in "$@"; do args+=(-c "$arg"); done
    RESULT=$(q "${args[@]}" 2>&1)
    AUDIT=$(tail -c +$((at + 1)) "$LOG" | grep -o 'AUDIT: OBJECT,[0-9]*,[0-9]*,[^,]*,[^,]*,[^,]*,[^,]*' \
        | cut -d, -f4-7 | sort -u | tr '\n' ' ')
    AUDIT=${AUDIT:-"(no AUDIT: OBJECT line)"}
}
INS="WRITE,INSERT,TABLE,leadintake.leads"
UPD="WRITE,UPDATE,TABLE,leadintake.leads"
call() { printf "SELECT leadintake_from_dialer('%s'::jsonb) ->> 'created'" "$1"; }
# col LEAD_ID COLUMN: the stored value.
col() { q -c "SELECT $2 FROM leadintake.leads WHERE dialer_lead_id = '$1'"; }

# ---------------------------------------------------------------- 1. pgaudit
audited "INSERT INTO leadintake.leads (full_name, dialer_lead_id) VALUES ('Plain', 'A-PLAIN')"
like "control: a plain INSERT into leads logs AUDIT: OBJECT ... INSERT" "$AUDIT" "$INS"
audited "UPDATE leadintake.leads SET city = 'Hull' WHERE dialer_lead_id = 'A-PLAIN'"
like "control: a plain UPDATE of leads logs AUDIT: OBJECT ... UPDATE" "$AUDIT" "$UPD"

audited "$(call '{"user": "agent1", "lead_id": "A-1", "first_name": "Ann", "phone_number": "07700 900101"}')"
is "a call with a new lead id creates the lead" "$RESULT" true
like "... and its INSERT into leads is in the audit log" "$AUDIT" "$INS"
audited "$(call '{"user": "agent1", "lead_id": "A-1", "city": "York"}')"
is "a second call with that lead id updates it" "$RESULT $(col A-1 city)" "false York"
like "... and its UPDATE of leads is in the audit log" "$AUDIT" "$UPD"

audited "$(call '{"user": "agent1", "first_name": "Bea", "phone_number": "07700 900102"}')"
is "a call with a new phone and no lead id creates a lead" "$RESULT" true
like "... and its INSERT into leads is in the audit log" "$AUDIT" "$INS"
audited "$(call '{"user": "agent1", "city": "Ely", "phone_number": "07700 900102"}')"
is "a call with that phone updates it" "$RESULT" false
like "... and its UPDATE of leads is in the audit log" "$AUDIT" "$UPD"

audited "SELECT status FROM leadintake.http_intake(convert_to('{\"user\": \"agent1\", \"lead_id\": \"A-2\"}', 'UTF8'), 'dialer', '127.0.0.1', false)"
is "the shim's entry (http_intake) creates a lead: 201" "$RESULT" 201
like "... and its INSERT into leads is in the audit log" "$AUDIT" "$INS"

audited "INSERT INTO leadintake.inbox (payload) VALUES ('{\"user\": \"agent1\", \"lead_id\": \"A-2\", \"city\": \"Bath\"}')" \
    "SELECT leadintake.process_inbox(10)"
is "the inbox job updates that lead" "$(col A-2 city)" Bath
like "... and its UPDATE of leads is in the audit log" "$AUDIT" "$UPD"

# ---------------------------------------------------------------- 2. a BEFORE trigger
q >/dev/null <<'SQL' || bail "cannot create the trigger"
CREATE FUNCTION public.upper_city() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.city := upper(NEW.city); RETURN NEW; END $$;
CREATE TRIGGER upper_city BEFORE INSERT OR UPDATE ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION public.upper_city();
SQL
answer() { printf "SELECT leadintake_from_dialer('%s'::jsonb) -> 'lead' ->> 'city'" "$1"; }
is "BEFORE INSERT trigger: a new lead's city is stored and answered as the trigger set it" \
    "$(q -c "$(answer '{"user": "agent1", "lead_id": "T-1", "city": "york"}')") $(col T-1 city)" \
    "YORK YORK"
is "BEFORE UPDATE trigger: an updated lead's city too" \
    "$(q -c "$(answer '{"user": "agent1", "lead_id": "T-1", "city": "leeds"}')") $(col T-1 city)" \
    "LEEDS LEEDS"
is "... and found by phone" \
    "$(q -c "$(answer '{"user": "agent1", "phone_number": "07700 900101", "city": "ayr"}')") $(col A-1 city)" \
    "AYR AYR"
q -c "DROP TRIGGER upper_city ON leadintake.leads" || bail "cannot drop the trigger"

# ---------------------------------------------------------------- 3. row-level security
q >/dev/null <<'SQL' || bail "cannot set up row-level security"
CREATE ROLE li_caller NOLOGIN;
GRANT USAGE ON SCHEMA leadintake TO li_caller;
GRANT SELECT ON leadintake.agents TO li_caller;
GRANT SELECT, INSERT, UPDATE ON leadintake.leads, leadintake.phone_claims TO li_caller;
GRANT SELECT, INSERT ON leadintake.intake_log TO li_caller;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA leadintake TO li_caller;
INSERT INTO leadintake.leads (full_name, dialer_lead_id, phone, phone_e164, city)
    VALUES ('Secret', 'R-HID', '07700 900199', '+447700900199', 'Hidden');
ALTER TABLE leadintake.leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY see ON leadintake.leads FOR SELECT USING (coalesce(city, '') <> 'Hidden');
CREATE POLICY add ON leadintake.leads FOR INSERT WITH CHECK (coalesce(city, '') <> 'Forbidden');
CREATE POLICY change ON leadintake.leads FOR UPDATE
    USING (coalesce(city, '') <> 'Hidden') WITH CHECK (coalesce(city, '') <> 'Forbidden');
SQL
# as_caller SQL: SQL as li_caller; prints its output, or the SQLSTATE of its error.
as_caller() { q -v VERBOSITY=sqlstate -c "SET ROLE li_caller" -c "$1" 2>&1 | sed 's/^.*ERROR: *//'; }
is "under row-level security the caller creates a lead the policies allow" \
    "$(as_caller "$(call '{"user": "agent1", "lead_id": "R-1", "city": "Leeds"}')")" true
is "... and updates it" "$(as_caller "$(call '{"user": "agent1", "lead_id": "R-1", "city": "Wells"}')")" false
is "a new lead the INSERT policy forbids is refused (42501), not stored" \
    "$(as_caller "$(call '{"user": "agent1", "lead_id": "R-2", "city": "Forbidden"}')") $(col R-2 "count(*)")" \
    "42501 0"
is "an update the UPDATE policy forbids is refused (42501), the lead unchanged" \
    "$(as_caller "$(call '{"user": "agent1", "lead_id": "R-1", "city": "Forbidden"}')") $(col R-1 city)" \
    "42501 Wells"
is "a lead the policy hides is not merged into by phone: the caller gets a new lead" \
    "$(as_caller "$(call '{"user": "agent1", "phone_number": "07700 900199", "city": "Hove"}')")" true
is "a call naming the hidden lead's id is refused as a privilege error (42501), not a retryable 40001" \
    "$(as_caller "$(call '{"user": "agent1", "lead_id": "R-HID", "notes": "seen"}')")" 42501
is "... and leaves it unchanged" \
    "$(col R-HID "full_name || ' ' || city || ' ' || coalesce(notes, '-')")" "Secret Hidden -"

[ "$FAILED" -eq 0 ]
