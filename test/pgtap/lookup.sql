-- test/pgtap/lookup.sql: the look-up of the lead a call merges into (extension/lookup.c), one
-- SELECT ... FOR UPDATE: the lead by lead id, else the oldest by phone; its waits, errors and
-- privileges, under row-level security and with unusual indexes.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/lookup.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');

SELECT plan(19);

\ir sessions.inc
SELECT pg_temp.connect('a') AS a, pg_temp.connect('b') AS b \gset
CREATE FUNCTION pg_temp.call(p text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT leadintake_from_dialer(p::jsonb) $$;

-- 1. READ COMMITTED: a call waits for a concurrent writer of its lead, then merges into the
-- newest version (B's first name with A's last name).
SELECT pg_temp.call('{"user": "agent1", "lead_id": "L-1", "phone_number": "07700 900001", "first_name": "Ann", "last_name": "Old"}') IS NOT NULL AS made \gset
SELECT dblink_exec('b', 'BEGIN') AS begun \gset
SELECT is((SELECT r FROM dblink('b', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "L-1", "first_name": "Beth"}'::jsonb) ->> 'created'$$) AS t (r text)),
    'false', 'B updates lead L-1 (first name Beth), transaction open');
SELECT dblink_send_query('a', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "L-1", "last_name": "New"}'::jsonb) -> 'lead' ->> 'full_name'$$) AS sent \gset
SELECT ok(pg_temp.wait_for_waiter(), 'A waits for B''s lock on the lead');
SELECT dblink_exec('b', 'COMMIT') AS committed \gset
SELECT is((SELECT r FROM dblink_get_result('a', false) AS t (r text)), 'Beth New',
    'A merged into B''s committed version: full name from B''s first and A''s last name');
SELECT count(*) AS drained FROM dblink_get_result('a') AS t (r text) \gset
SELECT is((SELECT first_name || ' ' || last_name FROM leadintake.leads WHERE dialer_lead_id = 'L-1'),
    'Beth New', 'the stored lead has both changes');

-- 2. REPEATABLE READ: a lead changed since the caller's snapshot is a serialization failure,
-- as for UPDATE or SELECT ... FOR UPDATE.
SELECT dblink_exec('a', 'BEGIN ISOLATION LEVEL REPEATABLE READ') AS begun \gset
SELECT count(*) AS snap FROM dblink('a', 'SELECT 1') AS t (x int) \gset
SELECT pg_temp.call('{"user": "agent1", "lead_id": "L-1", "first_name": "Cleo"}') IS NOT NULL AS changed \gset
SELECT is((SELECT dblink_send_query('a', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "L-1", "city": "Leeds"}'::jsonb)::text$$)), 1, 'A (repeatable read) calls for lead L-1');
SELECT throws_ok($$SELECT * FROM dblink_get_result('a') AS t (r text)$$, '40001', NULL,
    'A''s call is refused with 40001: the lead changed after A''s snapshot');
SELECT count(*) AS drained FROM dblink_get_result('a', false) AS t (r text) \gset
SELECT dblink_exec('a', 'ROLLBACK') AS rolled \gset
SELECT is((SELECT first_name || coalesce(city, '-') FROM leadintake.leads WHERE dialer_lead_id = 'L-1'),
    'Cleo-', 'the lead has the committed change only');

-- 3. Matching by phone takes the oldest lead (created_at, then id), whatever the physical order
-- and whichever indexes exist. The newer lead is stored first, so heap order is wrong.
INSERT INTO leadintake.leads (full_name, phone, phone_e164, created_at)
VALUES ('Newer', '07700 900009', '+447700900009', now()),
       ('Older', '07700 900009', '+447700900009', now() - interval '1 day');
SELECT is(pg_temp.call('{"user": "agent1", "phone_number": "07700 900009", "city": "York"}') -> 'lead' ->> 'full_name',
    'Older', 'with the shipped index: merged into the oldest lead with the phone');
DROP INDEX leadintake.leads_phone_e164_idx;
CREATE INDEX leads_phone_only_idx ON leadintake.leads (phone_e164);
SELECT is(pg_temp.call('{"user": "agent1", "phone_number": "07700 900009", "city": "Hull"}') -> 'lead' ->> 'full_name',
    'Older', 'with an index on the phone alone (not in age order): still the oldest lead');
DROP INDEX leadintake.leads_phone_only_idx;
SELECT is(pg_temp.call('{"user": "agent1", "phone_number": "07700 900009", "city": "Bath"}') -> 'lead' ->> 'full_name',
    'Older', 'with no index on the phone: still the oldest lead');
CREATE INDEX leads_phone_e164_idx ON leadintake.leads (phone_e164, created_at, id);
SELECT is((SELECT city FROM leadintake.leads WHERE full_name = 'Newer'), NULL,
    'the newer lead was never touched');

-- 4. Privileges and row-level security apply as to the statement.
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'li_lookup_caller') THEN
        DROP OWNED BY li_lookup_caller;
        DROP ROLE li_lookup_caller;
    END IF;
END $$;
CREATE ROLE li_lookup_caller;
GRANT USAGE ON SCHEMA leadintake TO li_lookup_caller;
GRANT SELECT ON leadintake.agents TO li_lookup_caller;
GRANT SELECT, INSERT ON leadintake.leads, leadintake.phone_claims TO li_lookup_caller;
GRANT SELECT, INSERT ON leadintake.intake_log TO li_lookup_caller;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA leadintake TO li_lookup_caller;
SET ROLE li_lookup_caller;
SELECT throws_ok($$SELECT pg_temp.call('{"user": "agent1", "lead_id": "L-NEW", "phone_number": "07700 900077"}')$$,
    '42501', NULL, 'a caller without UPDATE on leads is refused (42501), even for a new lead');
RESET ROLE;
-- Column grants: UPDATE of every column a call may write, but not status or the agent (a
-- DBA's way to keep an intake role from moving leads on). The statement decides, as ever.
GRANT UPDATE ON leadintake.phone_claims TO li_lookup_caller;
SELECT format('GRANT UPDATE (%s) ON leadintake.leads TO li_lookup_caller',
              string_agg(quote_ident(attname), ', '))
  FROM pg_attribute
 WHERE attrelid = 'leadintake.leads'::regclass AND attnum > 0 AND NOT attisdropped
   AND attname NOT IN ('id', 'status', 'assigned_agent_id', 'created_at') \gexec
SET ROLE li_lookup_caller;
SELECT is(pg_temp.call('{"user": "agent1", "lead_id": "L-1", "city": "Hull"}') -> 'lead' ->> 'city',
    'Hull', 'UPDATE granted on the written columns only (not status, not the agent): the lead is updated');
SELECT is(pg_temp.call('{"user": "agent1", "phone_number": "07700 900001", "city": "Leeds"}') -> 'lead' ->> 'dialer_lead_id',
    'L-1', '... and found by phone too');
RESET ROLE;
REVOKE UPDATE ON leadintake.leads FROM li_lookup_caller;
GRANT UPDATE (notes) ON leadintake.leads TO li_lookup_caller;
SET ROLE li_lookup_caller;
SELECT throws_ok($$SELECT pg_temp.call('{"user": "agent1", "lead_id": "L-1", "city": "Hull"}')$$,
    '42501', NULL, 'UPDATE granted on notes only: a call that writes city is refused (42501)');
RESET ROLE;
REVOKE UPDATE ON leadintake.leads FROM li_lookup_caller;
GRANT UPDATE ON leadintake.leads, leadintake.phone_claims TO li_lookup_caller;
ALTER TABLE leadintake.leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY not_hidden ON leadintake.leads USING (coalesce(full_name, '') <> 'Hidden');
SELECT pg_temp.call('{"user": "agent1", "phone_number": "07700 900088", "full_name": "Hidden"}') IS NOT NULL AS hidden \gset
SET ROLE li_lookup_caller;
SELECT is(pg_temp.call('{"user": "agent1", "phone_number": "07700 900088", "last_name": "Seen"}') ->> 'created',
    'true', 'a lead the caller''s policy hides is not merged into: a new lead is created');
RESET ROLE;
SELECT is((SELECT count(*) FROM leadintake.leads WHERE phone_e164 = '+447700900088'), 2::bigint,
    'two leads with that phone: the hidden one unchanged, the caller''s own');

-- 5. A column dropped and added again in this session: the look-up and the response read
-- the new column, not the dropped one (whose old values are still in the rows).
SELECT pg_temp.call('{"user": "agent1", "lead_id": "L-5", "first_name": "Eve", "middle_initial": "A", "last_name": "Old"}') IS NOT NULL AS made5 \gset
ALTER TABLE leadintake.leads DROP COLUMN middle_initial;
ALTER TABLE leadintake.leads ADD COLUMN middle_initial text;
UPDATE leadintake.leads SET middle_initial = 'B' WHERE dialer_lead_id = 'L-5';
SELECT is(pg_temp.call('{"user": "agent1", "lead_id": "L-5", "last_name": "New"}') -> 'lead' ->> 'full_name',
    'Eve B New', 'after DROP and ADD COLUMN middle_initial: the merge reads the new column');
SELECT is(pg_temp.call('{"user": "agent1", "lead_id": "L-5", "city": "Ely"}') -> 'lead' ->> 'middle_initial',
    'B', '... and so does the response');

SELECT * FROM finish();
SELECT dblink_disconnect('a'), dblink_disconnect('b');
DROP POLICY not_hidden ON leadintake.leads;
DROP EXTENSION leadintake CASCADE;
DROP OWNED BY li_lookup_caller;
DROP ROLE li_lookup_caller;
