-- test/pgtap/spool.sql: leadintake.spool_intake, the entry of the shim's spool (contract
-- section 8): the call of http_intake, logged with source 'spool', the time the shim
-- received the request, its client address and key name; the duration is the call's own.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/spool.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');

SELECT plan(8);

SELECT * INTO TEMP spooled FROM leadintake.spool_intake(
    convert_to('{"user": "agent1", "lead_id": "SP-1", "email": "sp@example.com"}', 'UTF8'),
    'vicidial', '192.0.2.7', false, '2026-01-02 03:04:05.123456+00');

SELECT is((SELECT status FROM spooled), 201, 'a spooled request is stored: 201');
SELECT is((SELECT response->'lead'->>'email' FROM spooled), 'sp@example.com',
    '... with the whole lead for a header key (minimal false)');
SELECT is((SELECT source FROM leadintake.intake_log ORDER BY id DESC LIMIT 1)::text, 'spool',
    'its log row has source spool');
SELECT is((SELECT received_at FROM leadintake.intake_log ORDER BY id DESC LIMIT 1),
    '2026-01-02 03:04:05.123456+00'::timestamptz, '... the time the shim received it, to the microsecond');
SELECT is((SELECT key_name || ' ' || host(client_addr) FROM leadintake.intake_log ORDER BY id DESC LIMIT 1),
    'vicidial 192.0.2.7', '... its key name and client address');
SELECT cmp_ok((SELECT duration_ms FROM leadintake.intake_log ORDER BY id DESC LIMIT 1), '<', 60000::float8,
    '... and the duration of the call, not the months since it was received');

SELECT is((SELECT status FROM leadintake.spool_intake(
    convert_to('{"user": "agent9", "lead_id": "SP-2"}', 'UTF8'), 'vicidial', NULL, false, now())), 404,
    'a spooled request the database refuses is answered (404) and logged, like any');
SELECT is((SELECT source || ' ' || status FROM leadintake.intake_log ORDER BY id DESC LIMIT 1),
    'spool 404', '... with source spool');

SELECT * FROM finish();
DROP EXTENSION leadintake CASCADE;
