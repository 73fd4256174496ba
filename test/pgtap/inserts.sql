-- test/pgtap/inserts.sql: the intake_log row and a new lead are inserted by statements (kept
-- plans), so what a DBA adds to the tables applies as to any INSERT: column defaults, CHECK
-- constraints, domains, foreign keys, BEFORE and AFTER ROW triggers, the serialization
-- failure of REPEATABLE READ, row-level security, table and column privileges.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/inserts.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');

SELECT plan(33);

CREATE FUNCTION pg_temp.call(lead text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT leadintake_from_dialer(jsonb_build_object('user', 'agent1', 'lead_id', lead,
                                                     'city', 'York', 'api_key', 'secret')) $$;
CREATE FUNCTION pg_temp.logged(lead text) RETURNS SETOF leadintake.intake_log LANGUAGE sql AS $$
    SELECT g.* FROM leadintake.intake_log g JOIN leadintake.leads l ON l.id = g.lead_id
     WHERE l.dialer_lead_id = lead ORDER BY g.id $$;

-- 1. The row as the statement stored it: every column, the payload without its secret, the
-- id from the identity, received_at and duration_ms set.
SELECT pg_temp.call('R-1') IS NOT NULL AS made \gset
SELECT is((SELECT source || ' ' || status || ' ' || created || ' ' || (payload ->> 'city')
                  || ' ' || (payload ? 'api_key') || ' ' || (key_name IS NULL)
                  || ' ' || (error IS NULL) || ' ' || (raw_body IS NULL)
             FROM pg_temp.logged('R-1')),
    'sql 201 true York false true true true', 'one log row with every column as the contract says');
SELECT ok((SELECT id = (SELECT max(id) FROM leadintake.intake_log) AND received_at <= now()
                  AND duration_ms >= 0 FROM pg_temp.logged('R-1')),
    'its id comes from the identity, received_at and duration_ms are set');

-- 2. A column a DBA adds, with a default: the row gets the default.
ALTER TABLE leadintake.intake_log ADD COLUMN site text DEFAULT 'leeds',
                                  ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
SELECT pg_temp.call('R-2') IS NOT NULL AS made \gset
SELECT is((SELECT site || ' ' || (seq > 0) FROM pg_temp.logged('R-2')), 'leeds true',
    'a column added with a default, and an identity column, get their values');

-- 3. A CHECK constraint a DBA adds is enforced: the call fails and nothing is stored.
ALTER TABLE leadintake.intake_log ADD CONSTRAINT no_york CHECK (payload ->> 'city' <> 'York') NOT VALID;
SELECT throws_ok($$SELECT pg_temp.call('R-3')$$, '23514', NULL,
    'a CHECK constraint on intake_log refuses the row (23514)');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'R-3'), 0::bigint,
    '... and the lead of that call is not stored either');
ALTER TABLE leadintake.intake_log DROP CONSTRAINT no_york;

-- 4. The domain of source is checked, as the cast to it would be.
ALTER DOMAIN leadintake.intake_source DROP CONSTRAINT intake_source_check;
ALTER DOMAIN leadintake.intake_source ADD CONSTRAINT intake_source_check CHECK (VALUE IN ('http')) NOT VALID;
SELECT throws_ok($$SELECT pg_temp.call('R-4')$$, '23514', NULL,
    'a domain constraint on source that refuses ''sql'' refuses the row (23514)');
ALTER DOMAIN leadintake.intake_source DROP CONSTRAINT intake_source_check;
ALTER DOMAIN leadintake.intake_source ADD CONSTRAINT intake_source_check
    CHECK (VALUE IN ('http', 'sql', 'inbox', 'replay'));

-- 4b. What a CHECK runs sees the call's earlier writes (a snapshot of its own, as each
-- statement gets), and reads tableoid as the table's.
CREATE FUNCTION public.li_test_lead_exists(bigint) RETURNS boolean STABLE LANGUAGE sql AS
    'SELECT EXISTS (SELECT 1 FROM leadintake.leads WHERE id = $1)';
ALTER TABLE leadintake.intake_log
    ADD CONSTRAINT lead_seen CHECK (lead_id IS NULL OR public.li_test_lead_exists(lead_id)) NOT VALID,
    ADD CONSTRAINT own_table CHECK (tableoid = 'leadintake.intake_log'::regclass) NOT VALID;
SELECT lives_ok($$SELECT pg_temp.call('R-4b')$$,
    'a CHECK on intake_log that looks up the new lead, and one on tableoid, let the row through');
ALTER TABLE leadintake.intake_log DROP CONSTRAINT lead_seen, DROP CONSTRAINT own_table;
DROP FUNCTION public.li_test_lead_exists(bigint);

-- 4c. A domain column left out of the row, with no default: the domain judges the NULL.
CREATE DOMAIN public.li_test_required AS text NOT NULL;
ALTER TABLE leadintake.intake_log ADD COLUMN required public.li_test_required DEFAULT 'x';
ALTER TABLE leadintake.intake_log ALTER COLUMN required DROP DEFAULT;
SELECT throws_ok($$SELECT pg_temp.call('R-4c')$$, '23502', NULL,
    'a NOT NULL domain column with no default refuses the row (23502)');
ALTER TABLE leadintake.intake_log DROP COLUMN required;
DROP DOMAIN public.li_test_required;

-- 4d. A default that fails while the row is first mapped: the next call maps again.
CREATE FUNCTION public.li_test_site() RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('li_test.fail', true) = 'on' THEN RAISE EXCEPTION 'not now'; END IF;
    RETURN 'york';
END $$;
ALTER TABLE leadintake.intake_log ADD COLUMN site2 text;
ALTER TABLE leadintake.intake_log ALTER COLUMN site2 SET DEFAULT public.li_test_site();
SET li_test.fail = 'on';
SELECT throws_ok($$SELECT pg_temp.call('R-4d')$$, 'P0001', 'not now',
    'a default that raises while the row is mapped: the call fails');
SET li_test.fail = 'off';
SELECT is(pg_temp.call('R-4e') ->> 'created', 'true', 'the next call maps again and succeeds');
SELECT is((SELECT site2 || ' ' || (id > 0) FROM pg_temp.logged('R-4e')), 'york true',
    '... with every default');
ALTER TABLE leadintake.intake_log DROP COLUMN site2;
DROP FUNCTION public.li_test_site();

-- 5. An AFTER ROW trigger fires once per row, and sees the row stored.
CREATE TABLE pg_temp.seen (log_id bigint, city text);
CREATE FUNCTION pg_temp.after_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO pg_temp.seen VALUES (NEW.id, NEW.payload ->> 'city'); RETURN NULL; END $$;
CREATE TRIGGER after_log AFTER INSERT ON leadintake.intake_log
    FOR EACH ROW EXECUTE FUNCTION pg_temp.after_log();
SELECT pg_temp.call('R-5') IS NOT NULL AS made \gset
SELECT is((SELECT count(*) || ' ' || min(city) FROM pg_temp.seen
            WHERE log_id = (SELECT id FROM pg_temp.logged('R-5'))), '1 York',
    'an AFTER ROW trigger on intake_log fires once, with the row');
DROP TRIGGER after_log ON leadintake.intake_log;

-- 6. A BEFORE ROW trigger may change the row: the change is stored.
CREATE FUNCTION pg_temp.before_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.key_name := 'set by trigger'; RETURN NEW; END $$;
CREATE TRIGGER before_log BEFORE INSERT ON leadintake.intake_log
    FOR EACH ROW EXECUTE FUNCTION pg_temp.before_log();
SELECT pg_temp.call('R-6') IS NOT NULL AS made \gset
SELECT is((SELECT key_name FROM pg_temp.logged('R-6')), 'set by trigger',
    'a BEFORE ROW trigger''s change is stored');
DROP TRIGGER before_log ON leadintake.intake_log;

-- 7. A statement trigger fires.
CREATE TABLE pg_temp.statements (n int);
CREATE FUNCTION pg_temp.per_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO pg_temp.statements VALUES (1); RETURN NULL; END $$;
CREATE TRIGGER per_statement AFTER INSERT ON leadintake.intake_log
    FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.per_statement();
SELECT pg_temp.call('R-7') IS NOT NULL AS made \gset
SELECT is((SELECT count(*) FROM pg_temp.statements), 1::bigint,
    'a FOR EACH STATEMENT trigger on intake_log fires for the call''s row');
DROP TRIGGER per_statement ON leadintake.intake_log;

-- 8. Privileges and row-level security, as for the statement.
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'li_insert_caller') THEN
        DROP OWNED BY li_insert_caller;
        DROP ROLE li_insert_caller;
    END IF;
END $$;
CREATE ROLE li_insert_caller;
GRANT USAGE ON SCHEMA leadintake TO li_insert_caller;
GRANT SELECT ON leadintake.agents TO li_insert_caller;
GRANT SELECT, INSERT, UPDATE ON leadintake.leads, leadintake.phone_claims TO li_insert_caller;
GRANT SELECT ON leadintake.intake_log TO li_insert_caller;
SET ROLE li_insert_caller;
SELECT throws_ok($$SELECT pg_temp.call('R-8')$$, '42501', NULL,
    'a caller without INSERT on intake_log is refused (42501)');
RESET ROLE;
GRANT INSERT (received_at, source, key_name, client_addr, status, error, lead_id, created,
              duration_ms, payload, raw_body) ON leadintake.intake_log TO li_insert_caller;
SET ROLE li_insert_caller;
SELECT is(pg_temp.call('R-9') ->> 'created', 'true',
    'INSERT granted on the columns a call writes: the row is logged');
RESET ROLE;
SELECT is((SELECT count(*) FROM pg_temp.logged('R-9')), 1::bigint, '... once');
GRANT INSERT ON leadintake.intake_log TO li_insert_caller;
ALTER TABLE leadintake.intake_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_http ON leadintake.intake_log FOR INSERT WITH CHECK (source = 'http');
CREATE POLICY read_all ON leadintake.intake_log FOR SELECT USING (true);
SET ROLE li_insert_caller;
SELECT throws_ok($$SELECT pg_temp.call('R-10')$$, '42501', NULL,
    'a row-level security policy that refuses source ''sql'' refuses the row (42501)');
RESET ROLE;
ALTER TABLE leadintake.intake_log DISABLE ROW LEVEL SECURITY;
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id IN ('R-8', 'R-10')), 0::bigint,
    'the refused calls stored no lead');

-- 9. New leads. Defaults and the identity, as the statement gives them.
ALTER TABLE leadintake.leads ADD COLUMN region text DEFAULT 'north';
SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-1",
    "date_of_birth": "1980-02-29", "SQLdate": "2024-01-15 10:30:00", "epoch": "1705314600",
    "server_ip": "10.0.0.1", "gmt_offset_now": "-5.00"}'::jsonb) -> 'lead' ->> 'id' AS n1 \gset
SELECT is((SELECT status || ' ' || region || ' ' || (extra = '{}') || ' ' || (id = :n1)
                  || ' ' || (created_at = updated_at) || ' ' || date_of_birth || ' ' || sql_date
                  || ' ' || epoch || ' ' || host(server_ip) || ' ' || gmt_offset_now
             FROM leadintake.leads WHERE dialer_lead_id = 'N-1'),
    'interested north true true true 1980-02-29 2024-01-15 10:30:00 1705314600 10.0.0.1 -5.00',
    'a new lead: status, a DBA''s default, extra, id, timestamps and the typed fields stored');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'N-1'), 1::bigint,
    '... once');

-- 9a. The INSERT names only the columns the call sent: a dialer field it did not send takes
-- the column's default (a DBA's), one it sent overrides it.
ALTER TABLE leadintake.leads ALTER COLUMN campaign SET DEFAULT 'INBOUND';
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "N-1a"}'::jsonb) -> 'lead' ->> 'campaign',
    'INBOUND', 'a new lead without campaign gets the column''s default');
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "N-1c", "campaign": "UKSALES"}'::jsonb) -> 'lead' ->> 'campaign',
    'UKSALES', '... and one that sends it keeps its own');
ALTER TABLE leadintake.leads ALTER COLUMN campaign DROP DEFAULT;

-- 9b. A column made a domain with a typmod (numeric(3,1)): the value is cast as the
-- statement casts it.
CREATE DOMAIN public.li_test_offset AS numeric(3,1);
ALTER TABLE leadintake.leads ALTER COLUMN gmt_offset_now TYPE public.li_test_offset;
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "N-1b", "gmt_offset_now": "5.25"}'::jsonb) -> 'lead' ->> 'gmt_offset_now',
    '5.3', 'a domain over numeric(3,1): the new lead''s offset is rounded as the cast rounds it');
ALTER TABLE leadintake.leads ALTER COLUMN gmt_offset_now TYPE numeric;
DROP DOMAIN public.li_test_offset;

-- 10. A CHECK constraint and a foreign key a DBA adds to leads are enforced on a new lead.
ALTER TABLE leadintake.leads ADD CONSTRAINT no_hull CHECK (city <> 'Hull') NOT VALID;
SELECT throws_ok($$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-2", "city": "Hull"}'::jsonb)$$,
    '23514', NULL, 'a CHECK constraint on leads refuses a new lead (23514)');
ALTER TABLE leadintake.leads DROP CONSTRAINT no_hull;
CREATE TABLE public.lists (id text PRIMARY KEY);
INSERT INTO public.lists VALUES ('1001');
ALTER TABLE leadintake.leads ADD FOREIGN KEY (list_id) REFERENCES public.lists (id) NOT VALID;
SELECT throws_ok($$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-3", "list_id": "9999"}'::jsonb)$$,
    '23503', NULL, 'a foreign key a DBA adds to leads refuses a list that does not exist (23503)');
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "N-4", "list_id": "1001"}'::jsonb) ->> 'created',
    'true', '... and lets a list that exists through');

-- 11. An AFTER ROW trigger on leads fires once for a new lead; a BEFORE ROW one may change
-- the row, and the response shows the lead as stored.
CREATE TABLE pg_temp.leads_seen (dialer_lead_id text);
CREATE FUNCTION pg_temp.after_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO pg_temp.leads_seen VALUES (NEW.dialer_lead_id); RETURN NULL; END $$;
CREATE TRIGGER after_lead AFTER INSERT ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION pg_temp.after_lead();
SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-5"}'::jsonb) IS NOT NULL AS made \gset
SELECT is((SELECT count(*) FROM pg_temp.leads_seen WHERE dialer_lead_id = 'N-5'), 1::bigint,
    'an AFTER ROW trigger on leads fires once for a new lead');
DROP TRIGGER after_lead ON leadintake.leads;
CREATE FUNCTION pg_temp.before_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.city := upper(NEW.city); RETURN NEW; END $$;
CREATE TRIGGER before_lead BEFORE INSERT ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION pg_temp.before_lead();
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "N-6", "city": "Ely"}'::jsonb) -> 'lead' ->> 'city',
    'ELY', 'a BEFORE ROW trigger''s change to a new lead is stored and answered');
DROP TRIGGER before_lead ON leadintake.leads;

-- 12. Two sessions creating one lead id: the second waits for the first, then updates its lead.
\ir sessions.inc
SELECT pg_temp.connect('a') AS a, pg_temp.connect('b') AS b \gset
SELECT dblink_exec('b', 'BEGIN') AS begun \gset
SELECT is((SELECT r FROM dblink('b', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-7", "first_name": "Bo"}'::jsonb) ->> 'created'$$) AS t (r text)),
    'true', 'B creates lead N-7, transaction open');
SELECT dblink_send_query('a', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-7", "last_name": "Ash"}'::jsonb)::text$$) AS sent \gset
SELECT ok(pg_temp.wait_for_waiter(), 'A, creating N-7 too, waits for B');
SELECT dblink_exec('b', 'COMMIT') AS committed \gset
SELECT is((SELECT (r::jsonb ->> 'created') || ' ' || (r::jsonb -> 'lead' ->> 'full_name')
             FROM dblink_get_result('a') AS t (r text)), 'false Bo Ash',
    'A then updates B''s lead: one lead, both names');
SELECT count(*) AS drained FROM dblink_get_result('a', false) AS t (r text) \gset

-- 13. REPEATABLE READ: a lead id created after the caller's snapshot is a serialization
-- failure, as for the statement's ON CONFLICT DO NOTHING.
SELECT dblink_exec('a', 'BEGIN ISOLATION LEVEL REPEATABLE READ') AS begun \gset
SELECT count(*) AS snap FROM dblink('a', 'SELECT 1') AS t (x int) \gset
SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-8"}'::jsonb) IS NOT NULL AS made \gset
SELECT dblink_send_query('a', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "N-8", "city": "Bath"}'::jsonb)::text$$) AS sent \gset
SELECT throws_ok($$SELECT * FROM dblink_get_result('a') AS t (r text)$$, '40001',
    'could not serialize access due to concurrent update',
    'A (repeatable read) creating a lead id made after its snapshot gets 40001, at once');
SELECT count(*) AS drained FROM dblink_get_result('a', false) AS t (r text) \gset
SELECT dblink_exec('a', 'ROLLBACK') AS rolled \gset

SELECT * FROM finish();
SELECT dblink_disconnect('a'), dblink_disconnect('b');
DROP EXTENSION leadintake CASCADE;
DROP TABLE public.lists;
DROP OWNED BY li_insert_caller;
DROP ROLE li_insert_caller;
