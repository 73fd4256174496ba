-- test/pgtap/roles.sql: the three roles of version 1.1 (issue 4, README "Roles"): each can do
-- what it is for and cannot do what it must not.
--
--   leadintake_shim     executes leadintake.http_intake (SECURITY DEFINER), nothing else:
--                       no table access, no other entry
--   leadintake_enqueue  inserts into leadintake.inbox, reads its rows' outcome columns
--                       (not payload), nothing else
--   leadintake_reader   reads agents, leads, intake_log, inbox; writes nothing, calls no
--                       entry that writes
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind: this one runs in one
-- transaction that it rolls back (the test roles, and the leadintake roles when this
-- transaction created them, vanish with it). Run alone:
--   pg_prove -d DB test/pgtap/roles.sql       (DB with CREATE EXTENSION pgtap, dblink)
--
-- Each role is exercised through a fresh login-less role granted it (as an administrator
-- would grant it to a login role), with SET ROLE; "cannot" means SQLSTATE 42501.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(148);

DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
VALUES ('agent1', 'Agent One', '1001');
-- Something in every table, so that a successful read or write would show.
DO $$ BEGIN
    PERFORM leadintake_from_dialer('{"user":"agent1","lead_id":"ROLES-0","first_name":"Zero",
                                     "phone_number":"07700 900000"}'::jsonb);
END $$;
INSERT INTO leadintake.inbox (payload) VALUES ('{"user":"agent1","lead_id":"ROLES-Q"}');

-- ---------------------------------------------------------------- the roles themselves
SELECT has_role(r, 'role ' || r || ' exists')
  FROM unnest(ARRAY['leadintake_shim', 'leadintake_enqueue', 'leadintake_reader']) AS r;
SELECT is((SELECT format('login=%s super=%s createdb=%s createrole=%s replication=%s bypassrls=%s',
                         rolcanlogin::text, rolsuper::text, rolcreatedb::text,
                         rolcreaterole::text, rolreplication::text, rolbypassrls::text)
             FROM pg_roles WHERE rolname = r),
          'login=false super=false createdb=false createrole=false replication=false bypassrls=false',
          'role ' || r || ' is NOLOGIN and has no special attribute')
  FROM unnest(ARRAY['leadintake_shim', 'leadintake_enqueue', 'leadintake_reader']) AS r;
SELECT is_empty(
    $$SELECT r.rolname, m.rolname FROM pg_auth_members a
        JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
       WHERE m.rolname IN ('leadintake_shim', 'leadintake_enqueue', 'leadintake_reader')$$,
    'none of the three roles is a member of another role');

-- The test roles: login-less, each granted one leadintake role.
CREATE ROLE leadintake_pgtap_shim NOLOGIN IN ROLE leadintake_shim;
CREATE ROLE leadintake_pgtap_enqueue NOLOGIN IN ROLE leadintake_enqueue;
CREATE ROLE leadintake_pgtap_reader NOLOGIN IN ROLE leadintake_reader;

CREATE TABLE pg_temp.tables (t text, c text);
INSERT INTO tables VALUES ('agents', 'id'), ('leads', 'id'), ('intake_log', 'id'),
                          ('inbox', 'id'), ('phone_claims', 'phone_e164');
GRANT SELECT ON pg_temp.tables TO PUBLIC;

-- enqueue_returning(payload): INSERT ... RETURNING id as the current role.
CREATE FUNCTION pg_temp.enqueue_returning(p jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO leadintake.inbox (payload) VALUES (p) RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- The statements no role of the three may run: every write on every table.
CREATE TABLE pg_temp.writes (what text, stmt text);
INSERT INTO writes
SELECT 'INSERT INTO ' || t, format('INSERT INTO leadintake.%I DEFAULT VALUES', t) FROM tables
UNION ALL
SELECT 'UPDATE ' || t, format('UPDATE leadintake.%I SET %I = %I', t, c, c) FROM tables
UNION ALL
SELECT 'DELETE FROM ' || t, format('DELETE FROM leadintake.%I', t) FROM tables
UNION ALL
SELECT 'TRUNCATE ' || t, format('TRUNCATE leadintake.%I', t) FROM tables;
GRANT SELECT ON pg_temp.writes TO PUBLIC;

-- The entries that write, other than http_intake and inbox inserts.
CREATE TABLE pg_temp.entries (what text, stmt text);
INSERT INTO entries VALUES
    ('leadintake.process_inbox', 'SELECT * FROM leadintake.process_inbox(10)'),
    ('leadintake.replay', 'SELECT leadintake.replay(1)'),
    ('leadintake.purge_log', $$SELECT leadintake.purge_log('1 day')$$),
    ('leadintake.drain_inbox', $$CALL leadintake.drain_inbox(10, '0 seconds', '0 seconds')$$);
GRANT SELECT ON pg_temp.entries TO PUBLIC;

-- ---------------------------------------------------------------- leadintake_shim
SET ROLE leadintake_pgtap_shim;

SELECT results_eq(
    $$SELECT status, response ->> 'success', response ->> 'created',
             response -> 'lead' ->> 'assigned_agent_username'
        FROM leadintake.http_intake(convert_to('{"user":"agent1","lead_id":"ROLES-SHIM",
                                                 "first_name":"Sam","last_name":"Shim"}', 'UTF8'),
                                    'shimkey', '10.0.0.1')$$,
    $$VALUES (201, 'true', 'true', 'agent1')$$,
    'shim: http_intake with a seeded agent gives 201 and creates the lead');
SELECT results_eq(
    $$SELECT status, response ->> 'error'
        FROM leadintake.http_intake(convert_to('{"user":"agent1","email":"not an address"}',
                                               'UTF8'), 'shimkey', '10.0.0.1')$$,
    $$VALUES (400, 'Invalid fields: email')$$,
    'shim: http_intake with a bad field gives 400');
SELECT results_eq(
    $$SELECT status FROM leadintake.http_intake(convert_to('{not json', 'UTF8'), 'shimkey',
                                                         '10.0.0.1')$$,
    $$VALUES (400)$$,
    'shim: http_intake with a body that is not JSON gives 400');
SELECT results_eq(
    $$SELECT status FROM leadintake.http_intake(convert_to('{"user":"nobody"}', 'UTF8'),
                                                'shimkey', '10.0.0.1')$$,
    $$VALUES (404)$$,
    'shim: http_intake with an unknown agent gives 404');

SELECT throws_ok(format('SELECT 1 FROM leadintake.%I LIMIT 1', t), '42501', NULL,
                 'shim: cannot SELECT from leadintake.' || t)
  FROM tables;
SELECT throws_ok(stmt, '42501', NULL, 'shim: cannot ' || what) FROM writes;
SELECT throws_ok($$SELECT leadintake_from_dialer('{"user":"agent1","lead_id":"ROLES-SHIM-SQL"}'::jsonb)$$,
                 '42501', NULL, 'shim: cannot call leadintake_from_dialer successfully');
SELECT throws_ok(stmt, '42501', NULL, 'shim: cannot call ' || what) FROM entries;

RESET ROLE;
SELECT results_eq(
    $$SELECT l.full_name, a.username FROM leadintake.leads l
        JOIN leadintake.agents a ON a.id = l.assigned_agent_id
       WHERE l.dialer_lead_id = 'ROLES-SHIM'$$,
    $$VALUES ('Sam Shim', 'agent1')$$,
    'shim: the lead its 201 created is stored (as the superuser sees it)');
SELECT results_eq(
    $$SELECT status, key_name, client_addr FROM leadintake.intake_log
       WHERE source = 'http' ORDER BY id$$,
    $$VALUES (201, 'shimkey', '10.0.0.1'::inet), (400, 'shimkey', '10.0.0.1'::inet),
             (400, 'shimkey', '10.0.0.1'::inet), (404, 'shimkey', '10.0.0.1'::inet)$$,
    'shim: each of its calls is logged, with its key name and address');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'ROLES-SHIM-SQL'),
    0::bigint, 'shim: its leadintake_from_dialer call stored nothing');

-- ---------------------------------------------------------------- leadintake_enqueue
SET ROLE leadintake_pgtap_enqueue;

SELECT lives_ok(
    $$INSERT INTO leadintake.inbox (payload)
      VALUES ('{"user":"agent1","lead_id":"ROLES-ENQ-1","api_key":"s3cret","Pass":"pw"}')$$,
    'enqueue: can INSERT into leadintake.inbox');
SELECT lives_ok(
    $$INSERT INTO leadintake.inbox (payload) VALUES ('{"lead_id":"ROLES-ENQ-NOID"}') RETURNING id$$,
    'enqueue: can INSERT ... RETURNING id');
CREATE TEMP TABLE enq_id AS
SELECT pg_temp.enqueue_returning('{"user":"agent1","lead_id":"ROLES-ENQ-2"}') AS id;
SELECT ok((SELECT id FROM enq_id) IS NOT NULL, 'enqueue: INSERT ... RETURNING id returns the id');
SELECT results_eq(
    $$SELECT id, processed_at, status, error, lead_id FROM leadintake.inbox
       WHERE id = (SELECT id FROM enq_id)$$,
    $$SELECT (SELECT id FROM enq_id), NULL::timestamptz, NULL::integer, NULL::text, NULL::bigint$$,
    'enqueue: can read id, processed_at, status, error, lead_id of the inbox (pending row)');
SELECT lives_ok($$SELECT enqueued_at FROM leadintake.inbox$$,
    'enqueue: can read enqueued_at of the inbox');
SELECT throws_ok($$SELECT payload FROM leadintake.inbox$$, '42501', NULL,
    'enqueue: cannot read inbox.payload');
SELECT throws_ok($$SELECT * FROM leadintake.inbox$$, '42501', NULL,
    'enqueue: cannot SELECT * from the inbox (payload included)');
SELECT throws_ok($$SELECT id FROM leadintake.inbox WHERE payload ->> 'user' = 'agent1'$$,
    '42501', NULL, 'enqueue: cannot filter on inbox.payload either');
SELECT throws_ok($$INSERT INTO leadintake.inbox (payload) VALUES ('{}') RETURNING payload$$,
    '42501', NULL, 'enqueue: cannot read payload back through RETURNING');
SELECT throws_ok(format('SELECT 1 FROM leadintake.%I LIMIT 1', t), '42501', NULL,
                 'enqueue: cannot SELECT from leadintake.' || t)
  FROM tables WHERE t <> 'inbox';
SELECT throws_ok(stmt, '42501', NULL, 'enqueue: cannot ' || what)
  FROM writes WHERE what <> 'INSERT INTO inbox';
SELECT throws_ok(
    $$SELECT * FROM leadintake.http_intake(convert_to('{"user":"agent1"}', 'UTF8'), 'k', NULL)$$,
    '42501', NULL, 'enqueue: cannot call leadintake.http_intake');
SELECT throws_ok($$SELECT leadintake_from_dialer('{"user":"agent1","lead_id":"ROLES-ENQ-SQL"}'::jsonb)$$,
                 '42501', NULL, 'enqueue: cannot call leadintake_from_dialer successfully');
SELECT throws_ok(stmt, '42501', NULL, 'enqueue: cannot call ' || what) FROM entries;

RESET ROLE;
-- A job (here the superuser) processes the queue; the application follows its row.
SELECT is((SELECT count(*) FROM leadintake.process_inbox(100)), 4::bigint,
    'the job processes the four pending rows');
SET ROLE leadintake_pgtap_enqueue;
SELECT results_eq(
    $$SELECT i.status, i.error, i.lead_id IS NOT NULL, i.processed_at IS NOT NULL
        FROM leadintake.inbox i WHERE i.id = (SELECT id FROM enq_id)$$,
    $$VALUES (201, NULL::text, true, true)$$,
    'enqueue: can follow its row: status 201, no error, its lead id, processed_at');
SELECT results_eq(
    $$SELECT status, error LIKE 'Missing required fields: dialer_user_id or user%' FROM leadintake.inbox
       WHERE id = (SELECT max(id) FROM leadintake.inbox WHERE lead_id IS NULL)$$,
    $$VALUES (400, true)$$,
    'enqueue: sees the error of a row that failed');
RESET ROLE;
SELECT is((SELECT count(*) FROM leadintake.inbox
            WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(payload) AS k
                           WHERE lower(k) IN ('api_key', 'pass'))), 0::bigint,
    'enqueue: secrets in the payload it wrote were removed on insert');
SELECT is((SELECT payload FROM leadintake.inbox WHERE payload ->> 'lead_id' = 'ROLES-ENQ-1'),
    '{"user":"agent1","lead_id":"ROLES-ENQ-1"}'::jsonb,
    'enqueue: the rest of that payload is kept');
SELECT is((SELECT status FROM leadintake.inbox WHERE payload ->> 'lead_id' = 'ROLES-ENQ-1'), 201,
    'enqueue: that row was processed like any other (201)');

-- ---------------------------------------------------------------- leadintake_reader
SET ROLE leadintake_pgtap_reader;

SELECT lives_ok(format('SELECT * FROM leadintake.%I', t),
                'reader: can SELECT * from leadintake.' || t)
  FROM tables WHERE t <> 'phone_claims';
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM leadintake.agents), (SELECT count(*) FROM leadintake.leads),
             (SELECT count(*) FROM leadintake.intake_log),
             (SELECT count(*) FROM leadintake.inbox WHERE payload IS NOT NULL)$$,
    $$VALUES (1::bigint, 5::bigint, 9::bigint, 4::bigint)$$,
    'reader: sees every row of agents, leads, intake_log and inbox (payloads included)');
SELECT throws_ok(stmt, '42501', NULL, 'reader: cannot ' || what) FROM writes;
SELECT throws_ok(
    $$SELECT * FROM leadintake.http_intake(convert_to('{"user":"agent1"}', 'UTF8'), 'k', NULL)$$,
    '42501', NULL, 'reader: cannot call leadintake.http_intake');
SELECT throws_ok($$SELECT leadintake_from_dialer('{"user":"agent1","lead_id":"ROLES-READ-SQL"}'::jsonb)$$,
                 '42501', NULL, 'reader: cannot call leadintake_from_dialer successfully');
SELECT throws_ok(stmt, '42501', NULL, 'reader: cannot call ' || what) FROM entries;

RESET ROLE;
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'ROLES-%-SQL'),
    0::bigint, 'no leadintake_from_dialer call of the enqueue or reader role stored a lead');

-- ---------------------------------------------------------------- the grants, exactly
SELECT table_privs_are('leadintake', t, 'leadintake_shim', ARRAY[]::text[],
                       'leadintake_shim has no privilege on leadintake.' || t)
  FROM tables;
SELECT table_privs_are('leadintake', t, 'leadintake_enqueue',
                       CASE t WHEN 'inbox' THEN ARRAY['INSERT'] ELSE ARRAY[]::text[] END,
                       'leadintake_enqueue: ' || CASE t WHEN 'inbox' THEN 'only INSERT' ELSE 'no privilege' END
                       || ' on leadintake.' || t)
  FROM tables;
SELECT column_privs_are('leadintake', 'inbox', c, 'leadintake_enqueue', ARRAY['SELECT', 'INSERT'],
                        'leadintake_enqueue: SELECT and INSERT on inbox.' || c)
  FROM unnest(ARRAY['id', 'enqueued_at', 'processed_at', 'status', 'error', 'lead_id']) AS c;
SELECT ok(NOT has_column_privilege('leadintake_enqueue', 'leadintake.inbox', 'payload', 'SELECT')
          AND has_column_privilege('leadintake_enqueue', 'leadintake.inbox', 'payload', 'INSERT'),
          'leadintake_enqueue: can insert inbox.payload, not select it');
SELECT table_privs_are('leadintake', t, 'leadintake_reader',
                       CASE t WHEN 'phone_claims' THEN ARRAY[]::text[] ELSE ARRAY['SELECT'] END,
                       'leadintake_reader: ' || CASE t WHEN 'phone_claims' THEN 'no privilege' ELSE 'only SELECT' END
                       || ' on leadintake.' || t)
  FROM tables;
SELECT is(
    ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
           WHERE p.pronamespace = 'leadintake'::regnamespace
             AND has_function_privilege(r, p.oid, 'EXECUTE')
             AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
           ORDER BY 1),
    CASE r WHEN 'leadintake_shim'
           THEN ARRAY['leadintake.http_intake(bytea,text,inet)',
                      'leadintake.http_intake(bytea,text,inet,boolean)',
                      'leadintake.spool_intake(bytea,text,inet,boolean,timestamp with time zone)']
           ELSE ARRAY[]::text[] END,
    r || ': the functions it may execute beyond PUBLIC''s: '
      || CASE r WHEN 'leadintake_shim' THEN 'http_intake and spool_intake only' ELSE 'none' END)
  FROM unnest(ARRAY['leadintake_shim', 'leadintake_enqueue', 'leadintake_reader']) AS r;
SELECT ok((SELECT bool_and(prosecdef) AND count(*) = 3 FROM pg_proc
            WHERE oid IN ('leadintake.http_intake(bytea,text,inet)'::regprocedure,
                          'leadintake.http_intake(bytea,text,inet,boolean)'::regprocedure,
                          'leadintake.spool_intake(bytea,text,inet,boolean,timestamptz)'::regprocedure)),
    'http_intake, both signatures, and spool_intake are SECURITY DEFINER (the shim reaches the tables only through them)');
SELECT is(
    ARRAY(SELECT r FROM unnest(ARRAY['leadintake_shim', 'leadintake_enqueue', 'leadintake_reader']) AS r
           WHERE has_schema_privilege(r, 'leadintake', 'USAGE')
             AND NOT has_schema_privilege(r, 'leadintake', 'CREATE')),
    ARRAY['leadintake_shim', 'leadintake_enqueue', 'leadintake_reader'],
    'each role has USAGE on schema leadintake, and not CREATE');

-- Last, as it changes a lead the counts above see: the shim's 1.4 entry, minimal.
SET ROLE leadintake_pgtap_shim;
SELECT results_eq(
    $$SELECT status, response -> 'lead' ->> 'first_name', response -> 'lead' ? 'last_name'
        FROM leadintake.http_intake(convert_to('{"user":"agent1","lead_id":"ROLES-SHIM",
                                                 "first_name":"Sue"}', 'UTF8'),
                                    'shimkey', '10.0.0.1', true)$$,
    $$VALUES (201, 'Sue', false)$$,
    'shim: http_intake(..., minimal => true) updates the lead and shows only what it sent');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
