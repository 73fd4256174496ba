-- test/pgtap/adopt_race.sql: the race README's "Upsert" section once listed as a known limit
-- (a 500): caller A finds an older lead by phone and gives it its new lead_id while caller B,
-- with the same lead_id and another phone, has just created a lead with that id. A must
-- not fail: it merges into B's lead, as if B had run first (contract section 5).
--
-- Deterministic, with two dblink sessions: B creates its lead in an open transaction; A's
-- call then waits on the unique index for B; B commits; A's answer is read.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/adopt_race.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');
-- The older lead: a phone, no dialer lead id.
SELECT leadintake_from_dialer('{"user": "agent1", "phone_number": "07700 900111", "first_name": "Olde"}'::jsonb) IS NOT NULL AS made \gset

SELECT plan(11);

\ir sessions.inc
SELECT pg_temp.connect('b') AS b, pg_temp.connect('a') AS a \gset

-- B: the new lead X with another phone, not committed yet.
SELECT dblink_exec('b', 'BEGIN') AS begun \gset
SELECT is((SELECT r FROM dblink('b', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "X-RACE", "phone_number": "07700 900222"}'::jsonb) ->> 'created'$$) AS t (r text)),
    'true', 'B creates lead X-RACE (phone ...222), transaction still open');

-- A: lead id X with the older lead's phone: finds that lead and would give it X-RACE.
SELECT dblink_send_query('a', $$SELECT (leadintake_from_dialer('{"user": "agent1", "lead_id": "X-RACE", "phone_number": "07700 900111", "last_name": "Again"}'::jsonb) -> 'lead' ->> 'id')$$) AS sent \gset
SELECT pg_temp.wait_for_waiter() AS waited \gset
SELECT ok(EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted),
    'A waits for B on the unique index of dialer_lead_id');

SELECT dblink_exec('b', 'COMMIT') AS committed \gset
CREATE TEMP TABLE a_result AS
    SELECT * FROM dblink_get_result('a', false) AS t (lead_id text);
SELECT is((SELECT count(*) FROM a_result), 1::bigint, 'A answered (no error: it raised nothing)');
SELECT is((SELECT lead_id::bigint FROM a_result),
    (SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'X-RACE'),
    'A merged into B''s lead X-RACE, as if B had run first');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'X-RACE'), 1::bigint,
    'one lead with lead id X-RACE');
SELECT is((SELECT last_name || ' ' || phone_e164 FROM leadintake.leads WHERE dialer_lead_id = 'X-RACE'),
    'Again +447700900111', '... with A''s fields merged (its last name, its phone)');
SELECT is((SELECT dialer_lead_id FROM leadintake.leads WHERE first_name = 'Olde'), NULL,
    'the older lead kept no lead id (A''s refused change was rolled back)');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE status = 201), 3::bigint,
    'three calls logged, all 201');
SELECT count(*) AS drained FROM dblink_get_result('a') AS t (r text) \gset

-- The same through the shim's entry, whose own subtransaction encloses the adopting one.
SELECT leadintake_from_dialer('{"user": "agent1", "phone_number": "07700 900333", "first_name": "Elder"}'::jsonb) IS NOT NULL AS made2 \gset
SELECT dblink_exec('b', 'BEGIN') AS begun \gset
SELECT is((SELECT r FROM dblink('b', $$SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "Y-RACE", "phone_number": "07700 900444"}'::jsonb) ->> 'created'$$) AS t (r text)),
    'true', 'http: B creates lead Y-RACE, transaction still open');
SELECT dblink_send_query('a', $$SELECT status || ' ' || (response -> 'lead' ->> 'dialer_lead_id') FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "Y-RACE", "phone_number": "07700 900333"}', 'UTF8'), 'k', NULL)$$) AS sent \gset
SELECT pg_temp.wait_for_waiter() AS waited \gset
SELECT dblink_exec('b', 'COMMIT') AS committed \gset
SELECT is((SELECT r FROM dblink_get_result('a', false) AS t (r text)), '201 Y-RACE',
    'http: A answers 201 with lead Y-RACE (merged into B''s), not 500');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'Y-RACE'), 1::bigint,
    'http: one lead with lead id Y-RACE');

SELECT * FROM finish();
SELECT dblink_disconnect('a'), dblink_disconnect('b');
DROP EXTENSION leadintake CASCADE;
