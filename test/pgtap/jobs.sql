-- test/pgtap/jobs.sql: the database jobs of version 1.1 (issue 4): process_inbox, replay and
-- purge_log. (NOTIFY is tested in test/e2e/notify.sh, the roles in test/pgtap/roles.sql,
-- pg_cron in test/e2e/cron.sh, the upgrade in test/pgtap/upgrade.sql.)
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind. This one cannot run in
-- one transaction (the two workers are dblink sessions that must see committed rows and
-- commit their own): it runs in autocommit and ends with DROP EXTENSION leadintake CASCADE
-- and the removal of the two helper objects it makes in schema public. Run alone:
--   pg_prove -d DB test/pgtap/jobs.sql         (DB with CREATE EXTENSION pgtap, dblink)
--
-- 1. process_inbox: order, batch size, its result rows, what each inbox row records, bad
--    rows (400, 404, and a 500 raised by a trigger) in the middle of a batch, secrets
--    removed on insert, intake_log rows with source 'inbox', batch_size < 1.
-- 2. replay: a 404 replayed once the agent exists; a row without payload (55000); a
--    missing row (P0002).
-- 3. purge_log: only older rows, the count, more than one batch of 10,000, leads untouched,
--    a negative interval (22023), NULL.
-- 4. Two workers at once over 2,000 pending rows (dblink sessions released together, as in
--    test/pgtap/concurrency.sql): each row processed exactly once; then two process_inbox(1000)
--    at once, and one process_inbox(1000) alone, under default settings.
-- 5. drain_inbox (CALLed at top level in a dblink session): one batch per run_for 0, all
--    pending rows within run_for, each batch committed while it runs.

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
DROP TABLE IF EXISTS public.jobs_worker_out;
DROP FUNCTION IF EXISTS public.jobs_boom();
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'),
    ('agent2', 'Agent Two', '1002');

SELECT plan(79);

SELECT diag('max_locks_per_transaction = ' || current_setting('max_locks_per_transaction')
            || ', max_connections = ' || current_setting('max_connections'));

-- ================================================================ 1. process_inbox

-- A lead the application cannot store for a reason of its own: a trigger that raises.
CREATE FUNCTION public.jobs_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.dialer_lead_id = 'JOBS-BOOM' THEN
        RAISE EXCEPTION 'boom: a trigger refused lead %', NEW.dialer_lead_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER jobs_boom BEFORE INSERT OR UPDATE ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION public.jobs_boom();

-- Seven rows, oldest first (q = their order).
CREATE TABLE pg_temp.q (n integer PRIMARY KEY, inbox_id bigint);
WITH ins AS (
    INSERT INTO leadintake.inbox (payload)
    SELECT p FROM (VALUES
        (1, '{"user":"agent1","lead_id":"JOBS-1","first_name":"Ann","last_name":"One",
              "phone_number":"07700 900301"}'::jsonb),
        (2, '{"user":"agent1","lead_id":"JOBS-2","email":"not an address"}'),
        (3, '{"user":"ghost","lead_id":"JOBS-3"}'),
        (4, '{"user":"agent1","lead_id":"JOBS-BOOM","first_name":"Boom"}'),
        (5, '{"dialer_user_id":"1002","lead_id":"JOBS-5","first_name":"Five","campaign":"C5",
              "api_key":"k-secret","Dialer_Api_Key":"d-secret","PASS":"p-secret",
              "orig_pass":"o-secret","phone_pass":"pp-secret"}'),
        (6, '{"user":"agent1","lead_id":"JOBS-1","comments":"second call"}'),
        (7, '{"user":"agent2","lead_id":"JOBS-7","full_name":"Seven Seas"}')
    ) AS v (n, p) ORDER BY n
    RETURNING id
)
INSERT INTO q SELECT row_number() OVER (ORDER BY id), id FROM ins;

-- Secrets written by an application are gone as soon as the row is stored.
SELECT is((SELECT payload FROM leadintake.inbox WHERE id = (SELECT inbox_id FROM q WHERE n = 5)),
    '{"dialer_user_id":"1002","lead_id":"JOBS-5","first_name":"Five","campaign":"C5"}'::jsonb,
    'inbox insert: api_key, Dialer_Api_Key, PASS, orig_pass, phone_pass removed, the rest kept');
UPDATE leadintake.inbox SET payload = payload || '{"Api_Key":"u-secret","pass":"u-secret"}'
 WHERE id = (SELECT inbox_id FROM q WHERE n = 7);
SELECT is((SELECT payload FROM leadintake.inbox WHERE id = (SELECT inbox_id FROM q WHERE n = 7)),
    '{"user":"agent2","lead_id":"JOBS-7","full_name":"Seven Seas"}'::jsonb,
    'inbox update of payload: secrets removed too');
SELECT is((SELECT count(*) FROM leadintake.inbox WHERE payload::text LIKE '%secret%'), 0::bigint,
    'no secret anywhere in leadintake.inbox');

SELECT is(pg_get_function_arguments('leadintake.process_inbox(integer)'::regprocedure),
    'batch_size integer, OUT inbox_id bigint, OUT status integer, OUT lead_id bigint, OUT error text',
    'process_inbox(batch_size) returns (inbox_id, status, lead_id, error)');

-- First batch: five rows of seven.
CREATE TABLE pg_temp.b1 AS
SELECT * FROM leadintake.process_inbox(5) WITH ORDINALITY AS r (inbox_id, status, lead_id, error, ord);

SELECT results_eq('SELECT inbox_id FROM b1 ORDER BY ord',
    'SELECT inbox_id FROM q WHERE n <= 5 ORDER BY n',
    'process_inbox(5): the five oldest rows, oldest first');
SELECT results_eq('SELECT status FROM b1 ORDER BY ord', 'VALUES (201), (400), (404), (500), (201)',
    'process_inbox(5): statuses 201, 400, 404, 500, 201: the bad rows did not stop the batch');
SELECT results_eq(
    'SELECT lead_id FROM b1 ORDER BY ord',
    $$VALUES ((SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'JOBS-1')), (NULL), (NULL),
             (NULL), ((SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'JOBS-5'))$$,
    'process_inbox(5): lead_id of each stored lead, NULL for the failures');
SELECT is((SELECT error FROM b1 WHERE ord = 1), NULL, 'row 1 (201): no error');
SELECT matches((SELECT error FROM b1 WHERE ord = 2), '^Invalid fields: email\M.*',
    'row 2 (400): the error names the bad field');
SELECT is((SELECT error FROM b1 WHERE ord = 3), 'Agent with username ''ghost'' not found',
    'row 3 (404): the agent error');
SELECT matches((SELECT error FROM b1 WHERE ord = 4), 'boom: a trigger refused lead JOBS-BOOM',
    'row 4 (500): the error raised while storing it is recorded');
SELECT is((SELECT error FROM b1 WHERE ord = 5), NULL, 'row 5 (201): no error');

SELECT is_empty(
    $$SELECT i.id FROM leadintake.inbox i JOIN b1 ON b1.inbox_id = i.id
       WHERE i.processed_at IS NULL
          OR i.status IS DISTINCT FROM b1.status
          OR i.error IS DISTINCT FROM b1.error
          OR i.lead_id IS DISTINCT FROM b1.lead_id$$,
    'each processed row records processed_at, and the status, error and lead_id returned');
SELECT is((SELECT count(*) FROM leadintake.inbox
            WHERE id IN (SELECT inbox_id FROM q WHERE n > 5)
              AND processed_at IS NULL AND status IS NULL AND error IS NULL AND lead_id IS NULL),
    2::bigint, 'the two newer rows are still pending, untouched');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'JOBS-BOOM'), 0::bigint,
    'row 4 (500): nothing of it was stored');
SELECT results_eq(
    $$SELECT status, payload ->> 'lead_id', lead_id IS NOT NULL, error IS NOT NULL
        FROM leadintake.intake_log WHERE source = 'inbox' ORDER BY id$$,
    $$VALUES (201, 'JOBS-1', true, false), (400, 'JOBS-2', false, true),
             (404, 'JOBS-3', false, true), (500, 'JOBS-BOOM', false, true),
             (201, 'JOBS-5', true, false)$$,
    'intake_log: one row per processed inbox row, source inbox, in order');
SELECT matches((SELECT error FROM leadintake.intake_log
                 WHERE source = 'inbox' AND payload ->> 'lead_id' = 'JOBS-BOOM'),
    'boom: a trigger refused lead JOBS-BOOM', 'intake_log: the 500 keeps the database''s message');
SELECT is((SELECT count(*) FROM leadintake.intake_log
            WHERE payload::text LIKE '%secret%' OR raw_body LIKE '%secret%'), 0::bigint,
    'intake_log: no secret of the inbox payloads');
SELECT is((SELECT l.campaign || '/' || a.username FROM leadintake.leads l
             JOIN leadintake.agents a ON a.id = l.assigned_agent_id
            WHERE l.dialer_lead_id = 'JOBS-5'), 'C5/agent2',
    'row 5 (201): the lead was stored from the redacted payload, for its agent');

-- Second batch: only the pending rows.
CREATE TABLE pg_temp.b2 AS
SELECT * FROM leadintake.process_inbox(10) WITH ORDINALITY AS r (inbox_id, status, lead_id, error, ord);
SELECT results_eq('SELECT inbox_id, status, error FROM b2 ORDER BY ord',
    'SELECT inbox_id, 201, NULL::text FROM q WHERE n > 5 ORDER BY n',
    'process_inbox(10): only the two pending rows, both 201');
SELECT is((SELECT lead_id FROM b2 WHERE ord = 1), (SELECT lead_id FROM b1 WHERE ord = 1),
    'row 6 updated the lead of row 1');
SELECT is((SELECT comments || ' / ' || full_name FROM leadintake.leads
            WHERE dialer_lead_id = 'JOBS-1'), 'second call / Ann One',
    'row 6: the update merged into the lead');
SELECT results_eq(
    $$SELECT created FROM leadintake.intake_log WHERE source = 'inbox' AND status = 201 ORDER BY id$$,
    'VALUES (true), (true), (false), (true)',
    'intake_log: created true, true, false (the update), true');
SELECT is_empty('SELECT * FROM leadintake.process_inbox(10)',
    'process_inbox(10) on an empty queue returns no row');
SELECT is((SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NULL), 0::bigint,
    'no row pending');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'inbox'), 7::bigint,
    'intake_log: 7 rows with source inbox, one per inbox row');

DROP TRIGGER jobs_boom ON leadintake.leads;

-- batch_size
SELECT throws_ok('SELECT * FROM leadintake.process_inbox(0)', '22023',
    'batch_size must be at least 1', 'process_inbox(0): error 22023');
SELECT throws_ok('SELECT * FROM leadintake.process_inbox(-5)', '22023',
    'batch_size must be at least 1', 'process_inbox(-5): error 22023');
SELECT is_empty('SELECT * FROM leadintake.process_inbox(NULL)',
    'process_inbox(NULL): no row (STRICT)');

-- ================================================================ 2. replay

-- A request for an agent that does not exist yet: 404, logged with its payload.
SELECT is((SELECT status FROM leadintake.http_intake(
              convert_to('{"user":"latecomer","lead_id":"JOBS-R1","first_name":"Rita",
                           "last_name":"Replay","api_key":"r-secret"}', 'UTF8'),
              'dialer', '10.1.1.1')), 404,
    'http_intake for an agent not created yet: 404');
CREATE TABLE pg_temp.r AS
SELECT max(id) AS log_id FROM leadintake.intake_log WHERE source = 'http' AND status = 404;
SELECT throws_ok(format('SELECT leadintake.replay(%s)', log_id), 'P0002', NULL,
    'replay before the agent exists: P0002, like leadintake_from_dialer')
  FROM r;
INSERT INTO leadintake.agents (username, display_name) VALUES ('latecomer', 'Late Comer');
CREATE TABLE pg_temp.r1 AS SELECT leadintake.replay(log_id) AS res FROM r;
SELECT results_eq(
    $$SELECT res ->> 'success', res ->> 'created', res -> 'lead' ->> 'full_name',
             res -> 'lead' ->> 'assigned_agent_username', res -> 'lead' ->> 'dialer_lead_id'
        FROM r1$$,
    $$VALUES ('true', 'true', 'Rita Replay', 'latecomer', 'JOBS-R1')$$,
    'replay once the agent exists: the success body, lead created for that agent');
SELECT results_eq(
    $$SELECT source::text, status, created, lead_id, key_name, client_addr, payload
        FROM leadintake.intake_log WHERE id > (SELECT log_id FROM r) ORDER BY id$$,
    $$SELECT 'replay', 201, true, (SELECT (res -> 'lead' ->> 'id')::bigint FROM r1),
             NULL::text, NULL::inet,
             '{"user":"latecomer","lead_id":"JOBS-R1","first_name":"Rita","last_name":"Replay"}'::jsonb$$,
    'replay: its own log row: source replay, 201, the lead, the same payload');
SELECT results_eq(
    $$SELECT source::text, status, lead_id FROM leadintake.intake_log WHERE id = (SELECT log_id FROM r)$$,
    $$VALUES ('http', 404, NULL::bigint)$$,
    'replay: the replayed log row is unchanged');
SELECT is((SELECT leadintake.replay(log_id) ->> 'created' FROM r), 'false',
    'replay again: an update ("created": false)');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'replay'), 2::bigint,
    'two replays, two log rows with source replay');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'JOBS-R1'), 1::bigint,
    'one lead for the replayed request');

-- A 404 of the inbox, replayed once its agent exists.
INSERT INTO leadintake.agents (username) VALUES ('ghost');
SELECT is((SELECT leadintake.replay(id) ->> 'created' FROM leadintake.intake_log
            WHERE source = 'inbox' AND payload ->> 'lead_id' = 'JOBS-3'), 'true',
    'replay of an inbox row''s 404 once the agent exists: created');

-- A request whose body was not JSON has no payload to replay.
SELECT is((SELECT status FROM leadintake.http_intake(convert_to('{"user": "agent1", oops', 'UTF8'),
                                                     'dialer', '10.1.1.1')), 400,
    'http_intake with a body that is not JSON: 400');
CREATE TABLE pg_temp.rj AS
SELECT max(id) AS log_id FROM leadintake.intake_log WHERE source = 'http' AND status = 400;
SELECT ok((SELECT payload IS NULL AND raw_body IS NOT NULL FROM leadintake.intake_log
            WHERE id = (SELECT log_id FROM rj)),
    'its log row has no payload, only raw_body');
SELECT throws_ok(format('SELECT leadintake.replay(%s)', log_id), '55000',
    format('intake log row %s has no stored payload', log_id),
    'replay of a log row without payload: 55000, "intake log row N has no stored payload"')
  FROM rj;
SELECT throws_ok(format('SELECT leadintake.replay(%s)', log_id + 1000), 'P0002',
    format('intake log row %s does not exist', log_id + 1000),
    'replay of a missing log row: P0002, "intake log row N does not exist"')
  FROM rj;
SELECT is(leadintake.replay(NULL), NULL, 'replay(NULL) is NULL');
SELECT throws_ok(
    format('SELECT leadintake.replay(%s)', (SELECT id FROM leadintake.intake_log
                                            WHERE payload ->> 'lead_id' = 'JOBS-2')),
    '22023', NULL, 'replay of a 400 (bad field) raises 22023 again');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'replay'), 3::bigint,
    'replays that raise leave no log row (SQL semantics, as leadintake_from_dialer)');

-- ================================================================ 3. purge_log

CREATE TABLE pg_temp.leads_before AS
SELECT count(*) AS n, md5(string_agg(l::text, '|' ORDER BY l.id)) AS sum FROM leadintake.leads l;
CREATE TABLE pg_temp.log_before AS SELECT count(*) AS n FROM leadintake.intake_log;
-- Old rows (25,003: three batches of 10,000 and more) that point at real leads, and a few
-- that are not old enough.
INSERT INTO leadintake.intake_log (received_at, source, status, lead_id, created, payload)
SELECT now() - interval '40 days' - i * interval '1 second', 'sql', 201,
       (SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'JOBS-1'), false,
       '{"user":"agent1","lead_id":"JOBS-1"}'
  FROM generate_series(1, 25000) AS i;
INSERT INTO leadintake.intake_log (received_at, source, status, error, payload)
SELECT now() - interval '31 days', 'http', 404, 'old', '{"user":"nobody"}'
  FROM generate_series(1, 3);
INSERT INTO leadintake.intake_log (received_at, source, status, error, payload)
SELECT now() - interval '29 days', 'http', 404, 'recent', '{"user":"nobody"}'
  FROM generate_series(1, 5);

SELECT is(leadintake.purge_log('30 days'), 25003::bigint,
    'purge_log(''30 days''): returns the count of rows older than 30 days (25,003)');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE received_at < now() - interval '30 days'),
    0::bigint, 'no log row older than 30 days is left');
SELECT is((SELECT count(*) FROM leadintake.intake_log), (SELECT n + 5 FROM log_before),
    'every younger row is kept (the 5 of 29 days and all the recent ones)');
SELECT results_eq(
    'SELECT count(*), md5(string_agg(l::text, ''|'' ORDER BY l.id)) FROM leadintake.leads l',
    'SELECT n, sum FROM leads_before',
    'purge_log never touches leads (same rows, same values)');
SELECT is(leadintake.purge_log('30 days'), 0::bigint, 'purge_log again: 0');
SELECT is(leadintake.purge_log('1 day'), 5::bigint, 'purge_log(''1 day''): the 5 rows of 29 days');
SELECT is((SELECT count(*) FROM leadintake.intake_log), (SELECT n FROM log_before),
    'the recent rows are all still there');
SELECT throws_ok($$SELECT leadintake.purge_log('-1 day')$$, '22023', NULL,
    'purge_log(''-1 day''): error 22023');
SELECT is(leadintake.purge_log(NULL), NULL, 'purge_log(NULL) is NULL');
SELECT is((SELECT count(*) FROM leadintake.intake_log), (SELECT n FROM log_before),
    'neither deleted anything');

-- ================================================================ 4. workers

-- What the dblink workers return, kept where the main session can read it.
CREATE TABLE public.jobs_worker_out (worker integer, inbox_id bigint, status integer,
                                     lead_id bigint, error text);

-- workers(stmts): one dblink session per statement, all released at once (sessions.inc; advisory
-- lock gate: each statement starts with pg_advisory_xact_lock_shared(7244002)).
-- Returns one row per statement: n, its command status (NULL on error), the error.
\ir sessions.inc
CREATE FUNCTION pg_temp.workers(stmts text[])
RETURNS TABLE (n integer, result text, error text)
LANGUAGE sql AS $$ SELECT * FROM pg_temp.release_at_once(7244002, stmts) $$;

-- 2,000 pending rows: 2,000 different people, every 100th for an unknown agent (404).
CREATE FUNCTION pg_temp.enqueue(tag text, first integer, last integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO leadintake.inbox (payload)
    SELECT CASE WHEN i % 100 = 0
                THEN jsonb_build_object('user', 'nobody' || i, 'lead_id', tag || i)
                ELSE jsonb_build_object(
                         CASE i % 2 WHEN 0 THEN 'user' ELSE 'dialer_user_id' END,
                         CASE i % 2 WHEN 0 THEN 'agent1' ELSE '1002' END,
                         'lead_id', tag || i, 'first_name', 'Worker', 'last_name', 'No' || i,
                         'phone_number', '07703 ' || lpad(i::text, 6, '0'))
           END
      FROM generate_series(first, last) AS i ORDER BY i
$$;
DO $$ BEGIN PERFORM pg_temp.enqueue('JOBS-W-', 1, 2000); END $$;

-- Round 1: two workers, each draining in batches of 50, committing each batch, until empty.
CREATE TABLE pg_temp.w1 AS SELECT * FROM pg_temp.workers(ARRAY(
    SELECT format($w$DO $do$
        DECLARE
            got bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(7244002);
            LOOP
                INSERT INTO public.jobs_worker_out
                SELECT %s, r.* FROM leadintake.process_inbox(50) AS r;
                GET DIAGNOSTICS got = ROW_COUNT;
                COMMIT;
                EXIT WHEN got = 0;
            END LOOP;
        END $do$$w$, w)
      FROM generate_series(1, 2) AS w));
SELECT is_empty('SELECT n, error FROM w1 WHERE error IS NOT NULL',
    'two workers draining at once: neither failed');
SELECT is((SELECT count(*) FROM jobs_worker_out), 2000::bigint,
    'two workers: 2,000 result rows in all');
SELECT is((SELECT count(DISTINCT inbox_id) FROM jobs_worker_out), 2000::bigint,
    'two workers: no inbox row returned twice');
SELECT is((SELECT count(DISTINCT worker) FROM jobs_worker_out), 2::bigint,
    'two workers: both processed rows (they ran at the same time)');
SELECT diag(format('worker %s processed %s rows', worker, count(*)))
  FROM jobs_worker_out GROUP BY worker ORDER BY worker;
SELECT is_empty(
    $$SELECT payload ->> 'lead_id', count(*) FROM leadintake.intake_log
       WHERE source = 'inbox' AND payload ->> 'lead_id' LIKE 'JOBS-W-%'
       GROUP BY 1 HAVING count(*) <> 1$$,
    'two workers: every row processed exactly once (one log row per payload)');
SELECT is((SELECT count(DISTINCT payload ->> 'lead_id') FROM leadintake.intake_log
            WHERE source = 'inbox' AND payload ->> 'lead_id' LIKE 'JOBS-W-%'), 2000::bigint,
    'two workers: all 2,000 payloads logged');
SELECT results_eq(
    $$SELECT status, count(*) FROM leadintake.inbox
       WHERE payload ->> 'lead_id' LIKE 'JOBS-W-%' GROUP BY status ORDER BY status$$,
    $$VALUES (201, 1980::bigint), (404, 20::bigint)$$,
    'two workers: 1,980 rows 201 and 20 rows 404, none pending');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'JOBS-W-%'), 1980::bigint,
    'two workers: 1,980 leads');
SELECT is((SELECT count(*) FROM leadintake.intake_log
            WHERE source = 'inbox' AND payload ->> 'lead_id' LIKE 'JOBS-W-%' AND created),
    1980::bigint, 'two workers: each lead created once, never updated by a second processing');

-- Round 2: two process_inbox(1000) at once over 2,000 new rows: one statement each.
DO $$ BEGIN PERFORM pg_temp.enqueue('JOBS-X-', 1, 2000); END $$;
TRUNCATE jobs_worker_out;
CREATE TABLE pg_temp.w2 AS SELECT * FROM pg_temp.workers(ARRAY(
    SELECT format($w$INSERT INTO public.jobs_worker_out
                    SELECT %s, (r).* FROM (
                        SELECT leadintake.process_inbox(1000) AS r
                          FROM (SELECT pg_advisory_xact_lock_shared(7244002)
                                OFFSET 0) AS gate) AS s$w$, w)
      FROM generate_series(1, 2) AS w));
SELECT is_empty('SELECT n, error FROM w2 WHERE error IS NOT NULL',
    'two process_inbox(1000) at once: neither failed (default settings)');
SELECT results_eq('SELECT worker, count(*) FROM jobs_worker_out GROUP BY worker ORDER BY worker',
    'VALUES (1, 1000::bigint), (2, 1000::bigint)',
    'two process_inbox(1000) at once: each took 1,000 rows');
SELECT is((SELECT count(DISTINCT inbox_id) FROM jobs_worker_out), 2000::bigint,
    'two process_inbox(1000) at once: 2,000 different rows');
SELECT is_empty(
    $$SELECT payload ->> 'lead_id', count(*) FROM leadintake.intake_log
       WHERE source = 'inbox' AND payload ->> 'lead_id' LIKE 'JOBS-X-%'
       GROUP BY 1 HAVING count(*) <> 1$$,
    'two process_inbox(1000) at once: every row processed exactly once');
SELECT is((SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NULL), 0::bigint,
    'two process_inbox(1000) at once: nothing left pending');

-- process_inbox(1000) alone, one statement.
DO $$ BEGIN PERFORM pg_temp.enqueue('JOBS-Y-', 1, 1000); END $$;
CREATE TABLE pg_temp.b3 AS SELECT * FROM leadintake.process_inbox(1000);
SELECT is((SELECT count(*) FROM b3), 1000::bigint, 'process_inbox(1000): 1,000 rows processed');
SELECT results_eq('SELECT status, count(*) FROM b3 GROUP BY status ORDER BY status',
    $$VALUES (201, 990::bigint), (404, 10::bigint)$$,
    'process_inbox(1000): 990 rows 201, 10 rows 404');
SELECT is((SELECT count(*) FROM leadintake.inbox WHERE processed_at IS NULL), 0::bigint,
    'process_inbox(1000): nothing left pending');

-- ================================================================ 5. drain_inbox
-- The procedure pg_cron runs (README): it commits each batch, so it must be CALLed at top
-- level: a dblink session runs it (an exception block, as in lives_ok, forbids COMMIT).
-- (A SET clause on the procedure would make every CALL fail at its first COMMIT with
-- "invalid transaction termination": these tests catch it.)
CREATE FUNCTION pg_temp.connstr() RETURNS text LANGUAGE sql AS $$
    SELECT format('host=%s port=%s dbname=%s user=%s',
        trim(split_part(current_setting('unix_socket_directories'), ',', 1)),
        current_setting('port'), current_database(), current_user)
$$;
-- call_drain(args): CALL leadintake.drain_inbox(args) in the session 'drain'; its command
-- status, or its error.
CREATE FUNCTION pg_temp.call_drain(args text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    res := dblink_exec('drain', 'CALL leadintake.drain_inbox(' || args || ')', false);
    IF res = 'CALL' THEN
        RETURN res;
    END IF;
    RETURN 'ERROR: ' || dblink_error_message('drain');
END
$$;
-- wait_processed(pattern, n): waits (at most 10 s, and no longer than the CALL in session
-- 'drain' runs) until n inbox rows whose payload lead_id is LIKE pattern are processed.
CREATE FUNCTION pg_temp.wait_processed(pattern text, n integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '10 seconds';
    done bigint;
BEGIN
    LOOP
        SELECT count(*) INTO done FROM leadintake.inbox
         WHERE payload ->> 'lead_id' LIKE pattern AND processed_at IS NOT NULL;
        IF done >= n THEN
            RETURN format('%s processed, the CALL %s', done,
                          CASE dblink_is_busy('drain') WHEN 1 THEN 'still running' ELSE 'ended' END);
        END IF;
        IF dblink_is_busy('drain') = 0 THEN
            RETURN format('%s processed when the CALL ended', done);
        END IF;
        IF clock_timestamp() > deadline THEN
            RETURN format('%s processed after 10 s, the CALL still running', done);
        END IF;
        PERFORM pg_sleep(0.02);
    END LOOP;
END
$$;
SELECT dblink_connect('drain', pg_temp.connstr()) IS NOT NULL AS "drain session" \g /dev/null
DO $$ BEGIN PERFORM pg_temp.enqueue('JOBS-D-', 1, 5); END $$;

SELECT is(pg_temp.call_drain($$2, '0 seconds', '0 seconds'$$), 'CALL',
    'CALL leadintake.drain_inbox(2, ''0 seconds'', ''0 seconds''): succeeds at top level');
SELECT is((SELECT string_agg(payload ->> 'lead_id', ' ' ORDER BY id) FROM leadintake.inbox
            WHERE payload ->> 'lead_id' LIKE 'JOBS-D-%' AND processed_at IS NOT NULL),
    'JOBS-D-1 JOBS-D-2', '... one batch of 2, the oldest, processed and committed (run_for 0)');
SELECT is(pg_temp.call_drain($$1000, '1 second', '0.1 seconds'$$), 'CALL',
    'CALL leadintake.drain_inbox(1000, ''1 second'', ''0.1 seconds''): succeeds');
SELECT is((SELECT count(*) FROM leadintake.inbox
            WHERE payload ->> 'lead_id' LIKE 'JOBS-D-%' AND status = 201), 5::bigint,
    '... the other rows processed: all 5 rows 201');
-- Each batch is committed while the procedure goes on running.
DO $$ BEGIN PERFORM pg_temp.enqueue('JOBS-E-', 1, 3); END $$;
SELECT dblink_send_query('drain', $$CALL leadintake.drain_inbox(1, '1.5 seconds', '0.1 seconds')$$)
    AS "sent" \g /dev/null
SELECT is(pg_temp.wait_processed('JOBS-E-%', 3), '3 processed, the CALL still running',
    'drain_inbox(1, ''1.5 seconds''): its batches are committed (seen by another session) while it runs');
SELECT is((SELECT coalesce(max(r), 'ERROR: ' || dblink_error_message('drain'))
             FROM dblink_get_result('drain', false) AS t (r text)), 'CALL',
    '... and the CALL ends without error');
SELECT count(*) AS "end of results" FROM dblink_get_result('drain', false) AS t (r text) \g /dev/null
SELECT dblink_disconnect('drain') AS "disconnected" \g /dev/null

SELECT is(array_length(dblink_get_connections(), 1), NULL, 'every dblink connection was closed');

SELECT * FROM finish();

DROP EXTENSION leadintake CASCADE;
DROP TABLE public.jobs_worker_out;
DROP FUNCTION public.jobs_boom();
