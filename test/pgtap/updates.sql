-- test/pgtap/updates.sql: a lead that exists is updated by a statement that sets only the
-- fields the call sent, so what a DBA adds to leads applies as to any UPDATE: CHECK
-- constraints, domains, foreign keys, indexes, BEFORE and AFTER ROW triggers (UPDATE OF a
-- column only when the call sends it), statement triggers, row-level security, column
-- privileges, generated columns.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/updates.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1'), ('agent2');

SELECT plan(41);

CREATE FUNCTION pg_temp.call(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT leadintake_from_dialer(jsonb_build_object('user', 'agent1') || payload) $$;
CREATE FUNCTION pg_temp.lead(lead text) RETURNS leadintake.leads LANGUAGE sql AS $$
    SELECT * FROM leadintake.leads WHERE dialer_lead_id = lead $$;

-- 1. The update the contract asks for: a field sent overwrites, one not sent stays, extra
-- merges, status and agent stay, updated_at is the call's now(); the answer is the row.
SELECT pg_temp.call('{"lead_id": "U-1", "first_name": "Ann", "last_name": "Lee",
    "city": "York", "email": "ann@example.com", "colour": "red", "size": "M"}') IS NOT NULL AS made \gset
UPDATE leadintake.leads SET status = 'callback', created_at = now() - interval '1 day',
                            updated_at = now() - interval '1 day'
 WHERE dialer_lead_id = 'U-1';
BEGIN;
SELECT pg_temp.call('{"user": "agent2", "lead_id": "U-1", "city": "Leeds", "colour": "blue",
    "shape": "round"}') AS r \gset
SELECT is((SELECT first_name || ' ' || last_name || ' ' || full_name || ' ' || city || ' ' || email
                  || ' ' || status || ' ' || assigned_agent_id || ' ' || (updated_at = now())
                  || ' ' || (created_at < now()) || ' ' || extra::text
             FROM pg_temp.lead('U-1')),
    'Ann Lee Ann Lee Leeds ann@example.com callback 1 true true {"size": "M", "shape": "round", "colour": "blue"}',
    'an update: fields sent overwrite, others stay, extra merges, status and agent stay, updated_at is now()');
COMMIT;
SELECT is((:'r'::jsonb ->> 'created') || ' ' || (:'r'::jsonb -> 'lead' ->> 'city') || ' '
          || (:'r'::jsonb -> 'lead' ->> 'first_name') || ' ' || (:'r'::jsonb -> 'lead' ->> 'status')
          || ' ' || (:'r'::jsonb -> 'lead' -> 'extra')::text || ' '
          || (:'r'::jsonb -> 'lead' ->> 'updated_at'),
    (SELECT 'false ' || city || ' ' || first_name || ' ' || status || ' ' || extra::text || ' '
            || to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
       FROM pg_temp.lead('U-1')),
    '... and the answer shows the row as stored');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'U-1'), 1::bigint, '... one lead');

-- 1b. Found by phone under another lead id: the stored lead id stays (coalesce), a lead
-- without one takes the call's.
SELECT pg_temp.call('{"lead_id": "P-1", "phone_number": "07700900999", "phone_code": "44"}') IS NOT NULL AS made \gset
SELECT is(pg_temp.call('{"lead_id": "P-2", "phone_number": "07700900999", "phone_code": "44",
    "city": "Ross"}') -> 'lead' ->> 'dialer_lead_id', 'P-1',
    'a lead found by phone keeps its own lead id');
SELECT is((SELECT string_agg(dialer_lead_id || ' ' || city, ',') FROM leadintake.leads
            WHERE phone_e164 = '+447700900999'), 'P-1 Ross', '... and is the one updated');
INSERT INTO leadintake.leads (phone, phone_e164) VALUES ('07700900888', '+447700900888');
SELECT is(pg_temp.call('{"lead_id": "P-3", "phone_number": "07700900888", "phone_code": "44"}')
          -> 'lead' ->> 'dialer_lead_id', 'P-3', 'a lead found by phone with no lead id takes the call''s');

-- 2. Typed fields are stored typed, as the statement's casts store them.
SELECT pg_temp.call('{"lead_id": "U-1", "date_of_birth": "1980-02-29",
    "SQLdate": "2024-01-15 10:30:00", "epoch": "1705314600", "server_ip": "10.0.0.1",
    "gmt_offset_now": "-5.00"}') IS NOT NULL AS made \gset
SELECT is((SELECT date_of_birth || ' ' || sql_date || ' ' || epoch || ' ' || host(server_ip)
                  || ' ' || gmt_offset_now || ' ' || city FROM pg_temp.lead('U-1')),
    '1980-02-29 2024-01-15 10:30:00 1705314600 10.0.0.1 -5.00 Leeds', 'typed fields updated, the rest kept');

-- 3. The same lead twice in one statement: the second update merges into the first's row.
SELECT count(*) AS n FROM (SELECT pg_temp.call(p) FROM (VALUES
    ('{"lead_id": "U-1", "city": "Bath", "k1": "1"}'::jsonb),
    ('{"lead_id": "U-1", "title": "Dr", "k2": "2"}'::jsonb)) v (p)) c \gset
SELECT is((SELECT city || ' ' || title || ' ' || (extra ->> 'k1') || (extra ->> 'k2') || ' ' || first_name
             FROM pg_temp.lead('U-1')), 'Bath Dr 12 Ann',
    'two updates of one lead in one statement: the second sees the first');

-- 4. Indexes follow an update that moves an indexed value (not a heap-only update).
SELECT pg_temp.call('{"lead_id": "U-1", "phone_number": "07700900123", "phone_code": "44"}') IS NOT NULL AS made \gset
SELECT pg_temp.call('{"lead_id": "U-1", "phone_number": "07700900456"}') IS NOT NULL AS made \gset
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT is((SELECT dialer_lead_id FROM leadintake.leads WHERE phone_e164 = '+447700900456'), 'U-1',
    'the phone_e164 index finds the lead by its new number');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE phone_e164 = '+447700900123'),
    0::bigint, '... and no longer by its old one');
RESET enable_seqscan;
RESET enable_bitmapscan;

-- 5. A DBA's column with a default keeps its stored value on an update.
ALTER TABLE leadintake.leads ADD COLUMN region text DEFAULT 'north';
UPDATE leadintake.leads SET region = 'south' WHERE dialer_lead_id = 'U-1';
SELECT pg_temp.call('{"lead_id": "U-1", "city": "Hull"}') IS NOT NULL AS made \gset
SELECT is((SELECT region || ' ' || city FROM pg_temp.lead('U-1')), 'south Hull',
    'a column the call does not set keeps its value, not its default');

-- 6. A CHECK constraint, a domain and a foreign key a DBA adds refuse an update, and the
-- lead stays as it was.
ALTER TABLE leadintake.leads ADD CONSTRAINT no_ely CHECK (city <> 'Ely') NOT VALID;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "city": "Ely"}')$$, '23514', NULL,
    'a CHECK constraint on leads refuses an update (23514)');
ALTER TABLE leadintake.leads DROP CONSTRAINT no_ely;
CREATE DOMAIN public.li_test_town AS text CHECK (VALUE <> 'Ely');
ALTER TABLE leadintake.leads ALTER COLUMN city TYPE public.li_test_town;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "city": "Ely"}')$$, '23514', NULL,
    'a domain on a column refuses an update''s value (23514)');
SELECT is(pg_temp.call('{"lead_id": "U-1", "city": "Wick"}') -> 'lead' ->> 'city', 'Wick',
    '... and lets another through');
ALTER TABLE leadintake.leads ALTER COLUMN city TYPE text;
DROP DOMAIN public.li_test_town;
CREATE TABLE public.lists (id text PRIMARY KEY);
INSERT INTO public.lists VALUES ('1001');
ALTER TABLE leadintake.leads ADD FOREIGN KEY (list_id) REFERENCES public.lists (id) NOT VALID;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "list_id": "9999"}')$$, '23503', NULL,
    'a foreign key a DBA adds to leads refuses an update to a list that does not exist (23503)');
SELECT is(pg_temp.call('{"lead_id": "U-1", "list_id": "1001"}') -> 'lead' ->> 'list_id', '1001',
    '... and lets a list that exists through');
SELECT is((SELECT city FROM pg_temp.lead('U-1')), 'Wick', 'the refused updates changed nothing');

-- 7. AFTER ROW triggers: one on UPDATE fires once with the old and the new row; one on
-- UPDATE OF city fires only when the call sends a city.
CREATE TABLE pg_temp.seen (old_city text, new_city text, what text);
CREATE FUNCTION pg_temp.after_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO pg_temp.seen VALUES (OLD.city, NEW.city, TG_ARGV[0]); RETURN NULL; END $$;
CREATE TRIGGER after_lead AFTER UPDATE ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION pg_temp.after_lead('any');
CREATE TRIGGER after_city AFTER UPDATE OF city ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION pg_temp.after_lead('city');
SELECT pg_temp.call('{"lead_id": "U-1", "city": "Troon"}') IS NOT NULL AS made \gset
SELECT pg_temp.call('{"lead_id": "U-1", "title": "Ms"}') IS NOT NULL AS made \gset
SELECT is((SELECT string_agg(what || ':' || old_city || '>' || new_city, ' ' ORDER BY what, old_city)
             FROM pg_temp.seen),
    'any:Troon>Troon any:Wick>Troon city:Wick>Troon',
    'AFTER UPDATE fires for each update, AFTER UPDATE OF city only for the one that sent a city');
SELECT count(*) AS n FROM (SELECT pg_temp.call(jsonb_build_object('lead_id', 'U-1', k, 'x'))
                            FROM unnest(ARRAY['title', 'first_name', 'middle_initial', 'last_name',
                                 'address1', 'address2', 'address3', 'state', 'province',
                                 'postal_code', 'country_code', 'gender', 'fronter', 'closer',
                                 'comments', 'vendor_id', 'security_phrase', 'owner', 'rank']) k) c \gset
SELECT is((SELECT count(*) FROM pg_temp.seen WHERE what = 'city'), 1::bigint,
    '... however many sets of fields a session sends (19 more, none with a city)');
DROP TRIGGER after_lead ON leadintake.leads;
DROP TRIGGER after_city ON leadintake.leads;
UPDATE leadintake.leads SET title = 'Dr', first_name = 'Ann', middle_initial = NULL, last_name = 'Lee',
       full_name = 'Ann Lee' WHERE dialer_lead_id = 'U-1';

-- 8. A BEFORE ROW trigger may change the row: stored and answered.
CREATE FUNCTION pg_temp.before_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.city := upper(NEW.city); RETURN NEW; END $$;
CREATE TRIGGER before_lead BEFORE UPDATE ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION pg_temp.before_lead();
SELECT is(pg_temp.call('{"lead_id": "U-1", "city": "Oban"}') -> 'lead' ->> 'city', 'OBAN',
    'a BEFORE UPDATE trigger''s change is stored and answered');
DROP TRIGGER before_lead ON leadintake.leads;

-- 9. A statement trigger fires.
CREATE TABLE pg_temp.statements (n int);
CREATE FUNCTION pg_temp.per_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO pg_temp.statements VALUES (1); RETURN NULL; END $$;
CREATE TRIGGER per_statement AFTER UPDATE ON leadintake.leads
    FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.per_statement();
SELECT pg_temp.call('{"lead_id": "U-1", "city": "Ayr"}') IS NOT NULL AS made \gset
SELECT is((SELECT count(*) FROM pg_temp.statements), 1::bigint,
    'a FOR EACH STATEMENT UPDATE trigger on leads fires for the call''s update');
DROP TRIGGER per_statement ON leadintake.leads;

-- 10. A stored generated column follows the update.
ALTER TABLE leadintake.leads ADD COLUMN city_upper text GENERATED ALWAYS AS (upper(city)) STORED;
SELECT pg_temp.call('{"lead_id": "U-1", "city": "Perth"}') IS NOT NULL AS made \gset
SELECT is((SELECT city_upper FROM pg_temp.lead('U-1')), 'PERTH', 'a generated column follows the update');
ALTER TABLE leadintake.leads DROP COLUMN city_upper;

-- 11. Column privileges and row-level security, as for the statement.
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'li_update_caller') THEN
        DROP OWNED BY li_update_caller;
        DROP ROLE li_update_caller;
    END IF;
END $$;
CREATE ROLE li_update_caller;
GRANT USAGE ON SCHEMA leadintake TO li_update_caller;
GRANT SELECT ON leadintake.agents, public.lists TO li_update_caller;
GRANT SELECT, INSERT ON leadintake.leads, leadintake.phone_claims, leadintake.intake_log
   TO li_update_caller;
GRANT UPDATE (title, updated_at, extra, dialer_lead_id, full_name) ON leadintake.leads
   TO li_update_caller;
SET ROLE li_update_caller;
SELECT is(pg_temp.call('{"lead_id": "U-1", "title": "Mx"}') -> 'lead' ->> 'title', 'Mx',
    'UPDATE granted on the columns a call sets: the update is made');
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "city": "Nairn"}')$$, '42501', NULL,
    'a call setting a column the caller may not update is refused (42501)');
RESET ROLE;
GRANT UPDATE ON leadintake.leads TO li_update_caller;
ALTER TABLE leadintake.leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON leadintake.leads FOR SELECT USING (true);
CREATE POLICY add_all ON leadintake.leads FOR INSERT WITH CHECK (true);
CREATE POLICY no_hull ON leadintake.leads FOR UPDATE USING (true) WITH CHECK (city <> 'Hull');
SET ROLE li_update_caller;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "city": "Hull"}')$$, '42501', NULL,
    'a row-level security policy that refuses the new row refuses the update (42501)');
SELECT is(pg_temp.call('{"lead_id": "U-1", "city": "Kelso"}') -> 'lead' ->> 'city', 'Kelso',
    '... and lets one it allows through');
RESET ROLE;
ALTER TABLE leadintake.leads DISABLE ROW LEVEL SECURITY;
SELECT is((SELECT city || ' ' || title FROM pg_temp.lead('U-1')), 'Kelso Mx',
    'the refused calls changed nothing');

-- 12. An identity column GENERATED ALWAYS takes no value from a call, as the statement says
-- (428C9), for a new lead and for an update.
UPDATE leadintake.leads SET epoch = 0 WHERE epoch IS NULL;
ALTER TABLE leadintake.leads ALTER COLUMN epoch SET NOT NULL,
                             ALTER COLUMN epoch ADD GENERATED ALWAYS AS IDENTITY;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "epoch": "7"}')$$, '428C9', NULL,
    'an update giving a GENERATED ALWAYS identity column a value is refused (428C9)');
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-NEW", "epoch": "7"}')$$, '428C9', NULL,
    '... and so is a new lead');
ALTER TABLE leadintake.leads ALTER COLUMN epoch DROP IDENTITY, ALTER COLUMN epoch DROP NOT NULL;

-- 13. A domain on dialer_lead_id judges the stored lead id the update keeps (the statement
-- assigns coalesce(stored, sent)).
CREATE DOMAIN public.li_test_lead_id AS text;
ALTER TABLE leadintake.leads ALTER COLUMN dialer_lead_id TYPE public.li_test_lead_id;
ALTER DOMAIN public.li_test_lead_id ADD CONSTRAINT not_p1 CHECK (VALUE <> 'P-1') NOT VALID;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "P-9", "phone_number": "07700900999", "phone_code": "44"}')$$,
    '23514', NULL, 'the domain refuses the kept lead id of a lead found by phone (23514)');
ALTER TABLE leadintake.leads ALTER COLUMN dialer_lead_id TYPE text;
DROP DOMAIN public.li_test_lead_id;

-- 13b. A value stored out of line (TOAST) is kept whole by an update that does not send it,
-- and answered whole.
SELECT string_agg(md5(i::text), '') AS long FROM generate_series(1, 280) i \gset
SELECT pg_temp.call(jsonb_build_object('lead_id', 'U-1', 'comments', :'long')) IS NOT NULL AS made \gset
SELECT is(pg_temp.call('{"lead_id": "U-1", "city": "Largs"}') -> 'lead' ->> 'comments', :'long',
    'a long comment (out of line) is answered whole after an update that does not send it');
SELECT is((SELECT comments = :'long' AND city = 'Largs' FROM pg_temp.lead('U-1')), true, '... and kept whole');

-- 13c. A publication of leads without a replica identity refuses updates (55000), as it
-- refuses the statement's.
ALTER TABLE leadintake.leads REPLICA IDENTITY NOTHING;
CREATE PUBLICATION li_test_pub FOR TABLE leadintake.leads;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "city": "Kelso"}')$$, '55000', NULL,
    'a publication of leads with no replica identity refuses the update (55000)');
DROP PUBLICATION li_test_pub;
ALTER TABLE leadintake.leads REPLICA IDENTITY DEFAULT;
SELECT pg_temp.call('{"lead_id": "U-1", "city": "Kelso"}') IS NOT NULL AS made \gset

-- 14. A read-only transaction stores nothing (25006); the refusal is the first statement's,
-- before anything is locked or written: the UPDATE by lead id that a call with a lead id
-- tries first, the look-up (SELECT ... FOR UPDATE) of one without.
SELECT count(*) AS logged FROM leadintake.intake_log \gset
BEGIN READ ONLY;
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-1", "city": "Dunoon"}')$$, '25006',
    'cannot execute UPDATE in a read-only transaction',
    'in a read-only transaction an update is refused by its first statement (25006)');
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "U-RO"}')$$, '25006',
    'cannot execute UPDATE in a read-only transaction', '... and a new lead');
SELECT throws_ok($$SELECT pg_temp.call('{"phone_number": "07700 900555"}')$$, '25006',
    'cannot execute SELECT FOR UPDATE in a read-only transaction',
    '... and a call without a lead id, by the look-up');
SELECT throws_ok($$SELECT leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "U-1"}', 'UTF8'), NULL, NULL)$$,
    '25006', NULL, '... and so does the shim''s entry (the shim answers 503, test/e2e/faults.sh)');
COMMIT;
SELECT is((SELECT city || ' ' || (SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'U-RO')
                  || ' ' || ((SELECT count(*) FROM leadintake.intake_log) - :logged)
             FROM pg_temp.lead('U-1')), 'Kelso 0 0', '... and nothing was stored, no log row either');
-- 15. The full name rebuilt from the parts sent and the stored ones, as li_build_full_name
-- joins them, also from parts a DBA stored empty: an empty part before the first non-empty
-- one adds no space, one after it does.
INSERT INTO leadintake.leads (dialer_lead_id, first_name, middle_initial, last_name)
VALUES ('U-N1', '', NULL, 'Old'), ('U-N2', 'Ann', '', 'Old'), ('U-N3', NULL, 'B', 'Old');
SELECT is((SELECT string_agg(coalesce(pg_temp.call(jsonb_build_object('lead_id', d, 'last_name', 'Lee'))
                                       -> 'lead' ->> 'full_name', '(null)'), '|' ORDER BY d)
             FROM unnest(ARRAY['U-N1', 'U-N2', 'U-N3']) d),
    'Lee|Ann  Lee|B Lee', 'the name rebuilt over stored parts: empty first part, empty middle, no first');
SELECT is(pg_temp.call('{"lead_id": "U-N3", "first_name": "Cy"}') -> 'lead' ->> 'full_name',
    'Cy B Lee', '... and with the first part sent');
SELECT is(pg_temp.call('{"lead_id": "U-N1", "middle_initial": "Q"}') -> 'lead' ->> 'full_name',
    'Q Lee', '... and with the middle part sent after an empty first one');
SELECT * FROM finish();
DROP EXTENSION leadintake CASCADE;
DROP TABLE public.lists;
DROP OWNED BY li_update_caller;
DROP ROLE li_update_caller;
