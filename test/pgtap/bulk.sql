-- test/pgtap/bulk.sql: bulk is normal use (contract section 5). With PostgreSQL's default
-- settings (max_locks_per_transaction = 64, max_connections = 100), one statement over
-- 10,000 payloads and process_inbox(1000) batches over 10,000 queued rows must work.
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind. This one runs in
-- autocommit, as a DBA at psql would (each statement its own transaction: the lock table is
-- what is tested), and ends with DROP EXTENSION leadintake CASCADE. Run alone:
--   pg_prove -d DB test/pgtap/bulk.sql         (DB with CREATE EXTENSION pgtap, dblink)
--
-- The 10,000 payloads (staging):
--   rows     1- 6000  lead_id BULK-A-1..4000 (rows 4001-6000 repeat 1-2000), with a phone
--                     of their own: 4000 leads
--   rows  6001- 9000  no lead_id, phones 07702 000001..002000, the repeats (rows 8001-9000)
--                     spelled +44 7702 ...: 2000 leads, found again by phone
--   rows  9001-10000  lead_id BULK-C-9001..10000, no phone: 1000 leads
--   so 7000 leads, 7000 answers "created": true and 3000 "created": false.

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'),
    ('agent2', 'Agent Two', '1002'),
    ('agent3', 'Agent Three', '1003');

SELECT plan(20);

SELECT diag('max_locks_per_transaction = ' || current_setting('max_locks_per_transaction')
            || ', max_connections = ' || current_setting('max_connections'));

-- try_sql(stmt): runs stmt; returns its first column as text, or 'ERROR <sqlstate>: <message>'.
CREATE FUNCTION pg_temp.try_sql(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    EXECUTE stmt INTO res;
    RETURN res;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TABLE pg_temp.staging (id integer PRIMARY KEY, p jsonb NOT NULL);
INSERT INTO staging (id, p)
SELECT i,
       CASE
       WHEN i <= 6000 THEN jsonb_build_object(
           'user', 'agent1', 'lead_id', 'BULK-A-' || ((i - 1) % 4000 + 1),
           'first_name', 'Anna', 'last_name', 'Bulk' || ((i - 1) % 4000 + 1),
           'phone_number', '07701 ' || lpad(((i - 1) % 4000 + 1)::text, 6, '0'),
           'campaign', 'BULK', 'list_id', (1000 + i % 5)::text, 'comments', 'row ' || i)
       WHEN i <= 9000 THEN jsonb_build_object(
           'dialer_user_id', '1002', 'first_name', 'Ben', 'last_name', 'Bulk' || i,
           'phone_number', CASE WHEN i <= 8000 THEN '07702 ' ELSE '+44 7702 ' END
                           || lpad(((i - 6001) % 2000 + 1)::text, 6, '0'),
           'campaign', 'BULK', 'vendor_lead_code', 'V' || i)
       ELSE jsonb_build_object(
           'user', 'agent3', 'lead_id', 'BULK-C-' || i, 'full_name', 'Carla Bulk ' || i,
           'email', 'carla' || i || '@example.com', 'campaign', 'BULK')
       END
  FROM generate_series(1, 10000) AS i;

-- 1. One statement over 10,000 payloads.
SELECT lives_ok(
    $$CREATE TABLE pg_temp.bulk1 AS
      SELECT s.id, leadintake_from_dialer(s.p) AS r FROM staging s$$,
    'one statement: leadintake_from_dialer() over 10,000 rows succeeds');
SELECT is((SELECT count(*) FROM bulk1 WHERE r ->> 'success' = 'true'), 10000::bigint,
    'one statement: 10,000 successes');
SELECT is((SELECT count(*) FROM bulk1 WHERE r ->> 'created' = 'true'), 7000::bigint,
    'one statement: 7000 answers "created": true');
SELECT is((SELECT count(*) FROM bulk1 WHERE r ->> 'created' = 'false'), 3000::bigint,
    'one statement: 3000 answers "created": false');
SELECT is((SELECT count(*) FROM leadintake.leads), 7000::bigint,
    'one statement: 7000 leads');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'BULK-A-%'),
    4000::bigint, 'one statement: 4000 leads by lead_id with a phone');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id IS NULL),
    2000::bigint, 'one statement: 2000 leads by phone alone');
SELECT is((SELECT count(DISTINCT phone_e164) FROM leadintake.leads
            WHERE dialer_lead_id IS NULL), 2000::bigint,
    'one statement: the phone-only leads have 2000 different numbers');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'BULK-C-%'),
    1000::bigint, 'one statement: 1000 leads by lead_id without a phone');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'sql'), 10000::bigint,
    'one statement: 10,000 intake_log rows with source sql');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'sql' AND status = 201),
    10000::bigint, 'one statement: every intake_log row has status 201');

-- 2. The statement of the contract, again over the same rows: 10,000 updates.
SELECT is(pg_temp.try_sql('SELECT count(leadintake_from_dialer(p)) FROM staging'), '10000',
    'SELECT count(leadintake_from_dialer(p)) FROM staging: 10,000 again (all updates)');
SELECT is((SELECT count(*) FROM leadintake.leads), 7000::bigint,
    'after the second pass: still 7000 leads');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'sql'), 20000::bigint,
    'after the second pass: 20,000 intake_log rows with source sql');

-- 3. process_inbox(1000) over 10,000 queued rows, one batch per statement (10 batches).
SELECT lives_ok($$INSERT INTO leadintake.inbox (payload) SELECT p FROM staging ORDER BY id$$,
    'inbox: 10,000 rows enqueued');
CREATE TABLE pg_temp.batches (n serial, res text);
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
INSERT INTO batches (res) SELECT pg_temp.try_sql('SELECT count(*) FROM leadintake.process_inbox(1000)');
SELECT is_empty($$SELECT n, res FROM batches WHERE res LIKE 'ERROR%'$$,
    'inbox: ten process_inbox(1000) calls succeed');
SELECT is((SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NULL), 0::bigint,
    'inbox: after ten batches of 1000, no row is pending');
SELECT is((SELECT count(*) FROM leadintake.inbox WHERE status = 201 AND lead_id IS NOT NULL
                                                   AND error IS NULL), 10000::bigint,
    'inbox: every row processed with status 201 and its lead');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'inbox'), 10000::bigint,
    'inbox: 10,000 intake_log rows with source inbox');
SELECT is((SELECT count(*) FROM leadintake.leads), 7000::bigint,
    'inbox: still 7000 leads');

SELECT * FROM finish();

DROP EXTENSION leadintake CASCADE;
