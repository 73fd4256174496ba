-- test/pgtap/concurrency.sql: concurrent calls for the same person make exactly one lead,
-- and none fails (contract section 5), under READ COMMITTED and default settings.
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind. This one cannot run in
-- one transaction (the dblink sessions must see committed agents, and commit their leads):
-- it runs in autocommit and ends with DROP EXTENSION leadintake CASCADE, which removes every
-- row the dblink sessions committed. Run alone:
--   pg_prove -d DB test/pgtap/concurrency.sql   (DB with CREATE EXTENSION pgtap, dblink)
--
-- A race: the main session takes advisory lock K; 64 dblink sessions each send one
-- leadintake_from_dialer() call whose query first waits for a shared lock on K (in a
-- MATERIALIZED CTE); once all 64 wait (seen in pg_locks), the main session lets them go at
-- once and collects every result and every error.

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'),
    ('agent2', 'Agent Two', '1002'),
    ('agent3', 'Agent Three', '1003');

SELECT plan(37);

-- race(payloads): one dblink session per payload, each calling leadintake_from_dialer(payload)
-- behind the gate of advisory lock 7244001, all released at once (sessions.inc).
-- Returns one row per payload: n, the function's result (NULL on error), the error.
\ir sessions.inc
CREATE FUNCTION pg_temp.race(payloads jsonb[])
RETURNS TABLE (n integer, result jsonb, error text)
LANGUAGE sql AS $$
    SELECT r.n, r.result::jsonb, r.error
      FROM pg_temp.release_at_once(7244001, ARRAY(
               SELECT format($q$WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(%s))
                                SELECT leadintake_from_dialer(%L::jsonb)::text FROM gate$q$,
                             7244001, p.payload)
                 FROM unnest(payloads) WITH ORDINALITY AS p (payload, i)
                ORDER BY p.i)) AS r
$$;

-- 1. A double click: 64 identical calls, same lead_id, same phone.
CREATE TEMP TABLE r1 AS SELECT * FROM pg_temp.race(ARRAY(
    SELECT '{"user":"agent1","lead_id":"RACE-SAME","first_name":"John","last_name":"Smith",
             "phone_number":"07700 900101"}'::jsonb
      FROM generate_series(1, 64)));
SELECT is_empty('SELECT n, error FROM r1 WHERE error IS NOT NULL',
    'same lead_id, same phone: none of the 64 calls failed');
SELECT is((SELECT count(*) FROM r1 WHERE result ->> 'success' = 'true'), 64::bigint,
    'same lead_id, same phone: 64 successes');
SELECT is((SELECT count(*) FROM r1 WHERE result ->> 'created' = 'true'), 1::bigint,
    'same lead_id, same phone: exactly one "created": true');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'RACE-SAME'), 1::bigint,
    'same lead_id, same phone: one lead');
SELECT is((SELECT count(*) FROM leadintake.leads
            WHERE phone_e164 = leadintake.phone_e164('07700 900101')), 1::bigint,
    'same lead_id, same phone: no second lead with that phone');
SELECT is((SELECT count(DISTINCT result -> 'lead' ->> 'id') FROM r1), 1::bigint,
    'same lead_id, same phone: every answer names the same lead');
SELECT is((SELECT count(*) FROM leadintake.intake_log
            WHERE source = 'sql' AND payload ->> 'lead_id' = 'RACE-SAME'), 64::bigint,
    'same lead_id, same phone: 64 intake_log rows');

-- 2. The same lead_id with 64 different phones and names: the lead_id decides.
CREATE TEMP TABLE r2 AS SELECT * FROM pg_temp.race(ARRAY(
    SELECT jsonb_build_object('user', 'agent2', 'lead_id', 'RACE-LID',
                              'first_name', 'Caller', 'last_name', 'Number' || i,
                              'phone_number', '07700 900' || lpad(i::text, 3, '0'))
      FROM generate_series(201, 264) AS i));
SELECT is_empty('SELECT n, error FROM r2 WHERE error IS NOT NULL',
    'same lead_id, different phones: none of the 64 calls failed');
SELECT is((SELECT count(*) FROM r2 WHERE result ->> 'success' = 'true'), 64::bigint,
    'same lead_id, different phones: 64 successes');
SELECT is((SELECT count(*) FROM r2 WHERE result ->> 'created' = 'true'), 1::bigint,
    'same lead_id, different phones: exactly one "created": true');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'RACE-LID'), 1::bigint,
    'same lead_id, different phones: one lead with that lead_id');
SELECT is((SELECT count(*) FROM leadintake.leads
            WHERE phone_e164 IN (SELECT leadintake.phone_e164('07700 900' || i)
                                   FROM generate_series(201, 264) AS i)), 1::bigint,
    'same lead_id, different phones: one lead in all');
SELECT is((SELECT count(DISTINCT result -> 'lead' ->> 'id') FROM r2), 1::bigint,
    'same lead_id, different phones: every answer names the same lead');

-- 3. The same phone in different spellings, no lead_id: the phone decides.
CREATE TEMP TABLE r3 AS SELECT * FROM pg_temp.race(ARRAY(
    SELECT jsonb_build_object('user', 'agent1', 'first_name', 'Jane', 'last_name', 'Doe',
               'phone_number', (ARRAY['07700 900555', '+44 7700 900555', '0044 7700 900555',
                                      '+44 (0)7700 900555', '07700900555', '+447700900555',
                                      '0044-7700-900-555', '07700 900 555'])[1 + i % 8])
      FROM generate_series(1, 64) AS i));
SELECT is_empty('SELECT n, error FROM r3 WHERE error IS NOT NULL',
    'same phone, no lead_id: none of the 64 calls failed');
SELECT is((SELECT count(*) FROM r3 WHERE result ->> 'success' = 'true'), 64::bigint,
    'same phone, no lead_id: 64 successes');
SELECT is((SELECT count(*) FROM r3 WHERE result ->> 'created' = 'true'), 1::bigint,
    'same phone, no lead_id: exactly one "created": true');
SELECT is((SELECT count(*) FROM leadintake.leads
            WHERE phone_e164 = leadintake.phone_e164('07700 900555')), 1::bigint,
    'same phone, no lead_id: one lead');
SELECT isnt(leadintake.phone_e164('07700 900555'), NULL,
    'same phone, no lead_id: the phone normalises');
SELECT is((SELECT count(DISTINCT result -> 'lead' ->> 'id') FROM r3), 1::bigint,
    'same phone, no lead_id: every answer names the same lead');
SELECT is((SELECT count(*) FROM leadintake.intake_log
            WHERE source = 'sql' AND payload ->> 'phone_number' LIKE '%555'), 64::bigint,
    'same phone, no lead_id: 64 intake_log rows');

-- 4. One person, the lead_id on half of the calls, the phone (spelled two ways) on all.
CREATE TEMP TABLE r4 AS SELECT * FROM pg_temp.race(ARRAY(
    SELECT CASE WHEN i % 2 = 0
                THEN jsonb_build_object('user', 'agent3', 'lead_id', 'RACE-MIX',
                                        'phone_number', '07700 900777')
                ELSE jsonb_build_object('dialer_user_id', '1003',
                                        'phone_number', '+44 7700 900777')
           END
      FROM generate_series(1, 64) AS i));
SELECT is_empty('SELECT n, error FROM r4 WHERE error IS NOT NULL',
    'lead_id on half, phone on all: none of the 64 calls failed');
SELECT is((SELECT count(*) FROM r4 WHERE result ->> 'success' = 'true'), 64::bigint,
    'lead_id on half, phone on all: 64 successes');
SELECT is((SELECT count(*) FROM r4 WHERE result ->> 'created' = 'true'), 1::bigint,
    'lead_id on half, phone on all: exactly one "created": true');
SELECT is((SELECT count(*) FROM leadintake.leads
            WHERE dialer_lead_id = 'RACE-MIX'
               OR phone_e164 = leadintake.phone_e164('07700 900777')), 1::bigint,
    'lead_id on half, phone on all: one lead');
SELECT is((SELECT dialer_lead_id FROM leadintake.leads
            WHERE phone_e164 = leadintake.phone_e164('07700 900777')), 'RACE-MIX',
    'lead_id on half, phone on all: the lead has the lead_id');
SELECT is((SELECT count(DISTINCT result -> 'lead' ->> 'id') FROM r4), 1::bigint,
    'lead_id on half, phone on all: every answer names the same lead');

-- 5. 64 different people at once: 64 leads, each created once.
CREATE TEMP TABLE r5 AS SELECT * FROM pg_temp.race(ARRAY(
    SELECT jsonb_build_object(
               CASE i % 2 WHEN 0 THEN 'user' ELSE 'dialer_user_id' END,
               CASE i % 2 WHEN 0 THEN 'agent2' ELSE '1001' END,
               'lead_id', 'RACE-MANY-' || i, 'first_name', 'Person', 'last_name', 'No' || i,
               'phone_number', '07700 901' || lpad(i::text, 3, '0'))
      FROM generate_series(1, 64) AS i));
SELECT is_empty('SELECT n, error FROM r5 WHERE error IS NOT NULL',
    '64 different people: none of the 64 calls failed');
SELECT is((SELECT count(*) FROM r5 WHERE result ->> 'success' = 'true'), 64::bigint,
    '64 different people: 64 successes');
SELECT is((SELECT count(*) FROM r5 WHERE result ->> 'created' = 'true'), 64::bigint,
    '64 different people: 64 times "created": true');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'RACE-MANY-%'),
    64::bigint, '64 different people: 64 leads');
SELECT is((SELECT count(DISTINCT phone_e164) FROM leadintake.leads
            WHERE dialer_lead_id LIKE 'RACE-MANY-%'), 64::bigint,
    '64 different people: 64 different phones');
SELECT is((SELECT count(DISTINCT result -> 'lead' ->> 'id') FROM r5), 64::bigint,
    '64 different people: 64 different lead ids in the answers');
SELECT is((SELECT count(*) FROM leadintake.leads l JOIN leadintake.agents a
                ON a.id = l.assigned_agent_id
            WHERE l.dialer_lead_id LIKE 'RACE-MANY-%'
              AND a.username = CASE WHEN substring(l.dialer_lead_id FROM '\d+$')::int % 2 = 0
                                    THEN 'agent2' ELSE 'agent1' END), 64::bigint,
    '64 different people: each lead assigned to the agent its call named');

-- Nothing left behind: the leads and the log.
SELECT is((SELECT count(*) FROM leadintake.leads), 68::bigint,
    'in all, 1 + 1 + 1 + 1 + 64 leads');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE source = 'sql'), 320::bigint,
    'in all, 5 x 64 intake_log rows with source sql');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE status <> 201), 0::bigint,
    'no intake_log row records a failure');
SELECT is(array_length(dblink_get_connections(), 1), NULL,
    'every dblink connection was closed');

SELECT * FROM finish();

-- Remove everything the dblink sessions committed.
DROP EXTENSION leadintake CASCADE;
