-- test/pgtap/console.sql: the console's SQL side (extension 1.6, docs/console.md): each
-- leadintake.console_*(args jsonb) as a member of leadintake_console sees it, its errors, the
-- role's privileges, and paging through 100,000 log rows.
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind: this one runs in one
-- transaction that it rolls back. Run alone:
--   pg_prove -d DB test/pgtap/console.sql     (DB with CREATE EXTENSION pgtap, dblink)
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(146);

DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
VALUES ('agent1', 'Agent One', '1001'), ('agent2', 'Agent Two', '1002');

-- The requests, through the shim's entry as the dialer sends them; each answer kept.
CREATE TEMP TABLE sent (n int, body text, status int, response jsonb);
INSERT INTO sent
SELECT v.n, v.body, h.status, h.response
  FROM (VALUES (1, '{"user":"agent1","lead_id":"C-1","first_name":"Ann","last_name":"Smith","phone_number":"07700 900101"}'),
               (2, '{"user":"agent9","lead_id":"C-2","first_name":"Bob"}'),
               (3, '{"user":"agent9","lead_id":"C-3","first_name":"Cy"}'),
               (4, '{"user":"agent1","lead_id":"C-4","email":"not an address","date_of_birth":"1990-02-30"}'),
               (5, '{"user": oops'),
               (6, '{"dialer_user_id":" 1001 ","user":"someone","lead_id":"C-6"}'),
               (7, '{"lead_id":"C-7"}')) AS v (n, body),
       LATERAL leadintake.http_intake(convert_to(v.body, 'UTF8'), 'dialer', '10.1.2.3', false) AS h
 ORDER BY v.n;
-- their log ids, in order
CREATE TEMP TABLE ids AS
SELECT row_number() OVER (ORDER BY id) AS n, id FROM leadintake.intake_log;
GRANT SELECT ON sent, ids TO PUBLIC;

CREATE ROLE leadintake_pgtap_console NOLOGIN IN ROLE leadintake_console;
CREATE ROLE leadintake_pgtap_shim NOLOGIN IN ROLE leadintake_shim;

-- the SQLSTATE a statement raises as the console's member (or 'no error')
CREATE FUNCTION pg_temp.state(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.state(text) TO PUBLIC;
CREATE FUNCTION pg_temp.req(args text) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT leadintake.console_requests(args::jsonb) $$;
CREATE FUNCTION pg_temp.ids_of(page jsonb) RETURNS bigint[]
    LANGUAGE sql AS $$ SELECT coalesce(array_agg((r ->> 'id')::bigint ORDER BY o), '{}')
                         FROM jsonb_array_elements(page -> 'rows') WITH ORDINALITY AS e (r, o) $$;
CREATE FUNCTION pg_temp.id(n int) RETURNS bigint
    LANGUAGE sql AS $$ SELECT id FROM ids WHERE ids.n = $1 $$;

-- ================================================================ the role and its privileges
SELECT has_role('leadintake_console');
SELECT is((SELECT format('login=%s super=%s createrole=%s bypassrls=%s comment=%s', rolcanlogin,
                         rolsuper, rolcreaterole, rolbypassrls,
                         shobj_description(oid, 'pg_authid') IS NOT NULL)
             FROM pg_roles WHERE rolname = 'leadintake_console'),
    'login=f super=f createrole=f bypassrls=f comment=t',
    'leadintake_console is NOLOGIN, has no special attribute, and a comment');
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_proc p
           WHERE p.pronamespace = 'leadintake'::regnamespace
             AND has_function_privilege('leadintake_console', p.oid, 'EXECUTE')
             AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
           ORDER BY 1),
    ARRAY['console_agent_active', 'console_agent_add', 'console_agent_edit', 'console_agents',
          'console_failures', 'console_health', 'console_replay', 'console_replay_group',
          'console_request', 'console_requests', 'console_setup'],
    'leadintake_console may execute the eleven console functions beyond what PUBLIC may');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_proc p
       WHERE p.pronamespace = 'leadintake'::regnamespace AND p.proname LIKE 'console\_%'
         AND (has_function_privilege('public', p.oid, 'EXECUTE')
              OR has_function_privilege('leadintake_shim', p.oid, 'EXECUTE')
              OR has_function_privilege('leadintake_reader', p.oid, 'EXECUTE'))$$,
    'no console function, nor helper, is executable by PUBLIC, leadintake_shim or leadintake_reader');
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'leadintake'::regnamespace AND proname LIKE 'console\_%'
              AND has_function_privilege('leadintake_console', oid, 'EXECUTE')
              AND prosecdef AND proconfig = ARRAY['search_path=pg_catalog, pg_temp']
              AND pg_get_function_identity_arguments(oid) = 'args jsonb'
              AND prorettype = 'jsonb'::regtype),
    11::bigint, 'each is (args jsonb) RETURNS jsonb, SECURITY DEFINER, search_path pg_catalog, pg_temp');
SELECT ok(has_schema_privilege('leadintake_console', 'leadintake', 'USAGE')
          AND NOT has_schema_privilege('leadintake_console', 'leadintake', 'CREATE'),
    'leadintake_console has USAGE on schema leadintake, not CREATE');

SET ROLE leadintake_pgtap_console;
SELECT is(pg_temp.state(format('SELECT 1 FROM leadintake.%I', t)), '42501',
          'console member: cannot SELECT from leadintake.' || t)
  FROM unnest(ARRAY['agents', 'leads', 'intake_log', 'inbox', 'phone_claims', 'open_failures']) AS t;
SELECT is(pg_temp.state(s), '42501', 'console member: cannot call ' || w)
  FROM (VALUES ('http_intake', $$SELECT leadintake.http_intake('\x7b7d', 'k', NULL, false)$$),
               ('spool_intake', $$SELECT leadintake.spool_intake('\x7b7d', 'k', NULL, false, now())$$),
               ('leadintake_from_dialer', $$SELECT leadintake_from_dialer('{"user":"agent1"}'::jsonb)$$),
               ('replay', 'SELECT leadintake.replay(1)'),
               ('replay_outcome', 'SELECT leadintake.replay_outcome(1)'),
               ('a console helper', $$SELECT leadintake.console_args('{}', '{}')$$)) AS v (w, s);
SELECT is(pg_temp.state($$SELECT leadintake.console_requests('{}')$$), 'no error',
    'console member: can call console_requests');
SET ROLE leadintake_pgtap_shim;
SELECT is(pg_temp.state($$SELECT leadintake.console_requests('{}')$$), '42501',
    'shim member: cannot call console_requests');
SELECT is(pg_temp.state($$SELECT leadintake.console_agent_add('{"username":"x"}')$$), '42501',
    'shim member: cannot call console_agent_add');
RESET ROLE;

-- ================================================================ requests
SET ROLE leadintake_pgtap_console;
SELECT is(pg_temp.ids_of(pg_temp.req('{}')), ARRAY(SELECT id FROM ids ORDER BY id DESC),
    'requests: every row, newest first');
SELECT is((SELECT format('%s %s', r -> 'next_before', r ->> 'newest_id' = (SELECT max(id) FROM ids)::text)
             FROM pg_temp.req('{}') AS r),
    'null t', 'requests: one page: next_before null; newest_id the newest row');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(pg_temp.req('{}') -> 'rows' -> 0) AS k),
    ARRAY['agent', 'created', 'error', 'id', 'key_name', 'lead_id', 'received_at', 'replayed_by',
          'source', 'status'],
    'requests: a row has the ten keys of docs/console.md');
SELECT is((SELECT r -> 'rows' -> 0 FROM pg_temp.req('{"limit": 1, "before": ' || pg_temp.id(2) || '}') AS r)
              - 'received_at',
    jsonb_build_object('id', pg_temp.id(1), 'source', 'http', 'key_name', 'dialer', 'status', 201,
                       'agent', 'agent1', 'lead_id', (SELECT (response -> 'lead' ->> 'id')::bigint FROM sent WHERE n = 1),
                       'created', true, 'error', NULL, 'replayed_by', NULL),
    'requests: the row of a 201, as the page shows it');
SELECT ok((SELECT r -> 'rows' -> 0 ->> 'received_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$'
             FROM pg_temp.req('{"limit": 1}') AS r),
    'requests: received_at is ISO 8601 in UTC with milliseconds');
SELECT is((SELECT format('%s %s', pg_temp.ids_of(r), r ->> 'next_before') FROM pg_temp.req('{"limit": 2}') AS r),
    format('%s %s', ARRAY[pg_temp.id(7), pg_temp.id(6)], pg_temp.id(6)),
    'requests: limit 2: the two newest, next_before the older of them');
SELECT is(pg_temp.ids_of(pg_temp.req('{"limit": "2", "before": "' || pg_temp.id(6) || '"}')),
    ARRAY[pg_temp.id(5), pg_temp.id(4)], 'requests: before (as strings, as a query string sends them): the next page');
SELECT is(pg_temp.ids_of(pg_temp.req('{"after": ' || pg_temp.id(5) || '}')),
    ARRAY[pg_temp.id(7), pg_temp.id(6)], 'requests: after: only the newer rows');
SELECT is(pg_temp.ids_of(pg_temp.req(format('{"after": %s, "before": %s}', pg_temp.id(2), pg_temp.id(5)))),
    ARRAY[pg_temp.id(4), pg_temp.id(3)], 'requests: after and before together: the rows between');
SELECT is(pg_temp.ids_of(pg_temp.req(format('{"status": %s}', s))), ARRAY(SELECT id FROM ids WHERE n = ANY (want) ORDER BY id DESC),
          'requests: status ' || s)
  FROM (VALUES ('"failed"', ARRAY[7, 5, 4, 3, 2]), ('"4xx"', ARRAY[7, 5, 4, 3, 2]), ('"5xx"', '{}'),
               ('"ok"', ARRAY[6, 1]), ('404', ARRAY[3, 2]), ('"400"', ARRAY[7, 5, 4]),
               ('"all"', ARRAY[7, 6, 5, 4, 3, 2, 1])) AS v (s, want);
SELECT is(pg_temp.ids_of(pg_temp.req('{"agent": "agent9"}')), ARRAY[pg_temp.id(3), pg_temp.id(2)],
    'requests: agent: the rows that asked for agent9');
SELECT is(pg_temp.ids_of(pg_temp.req('{"agent": "1001"}')), ARRAY[pg_temp.id(6)],
    'requests: the agent asked for is dialer_user_id (trimmed) when the payload has one, not user');
SELECT is(pg_temp.ids_of(pg_temp.req('{"agent": "agent9", "status": "400"}')), '{}',
    'requests: agent and status together');
SELECT is(pg_temp.ids_of(pg_temp.req('{"q": "SMITH"}')), ARRAY[pg_temp.id(1)],
    'requests: q finds a payload''s text, case-insensitively');
SELECT is(pg_temp.ids_of(pg_temp.req('{"q": "not found"}')), ARRAY[pg_temp.id(3), pg_temp.id(2)],
    'requests: q finds an error''s text');
SELECT is(pg_temp.ids_of(pg_temp.req('{"q": "oops"}')), ARRAY[pg_temp.id(5)],
    'requests: q finds a body that was not JSON (raw_body)');
SELECT is((SELECT format('%s %s', r ->> 'searched', r -> 'next_before') FROM pg_temp.req('{"q": "nothing like it"}') AS r),
    '7 null', 'requests: q reports how many rows it read; all read, no next page');
SELECT is(pg_temp.state(format('SELECT leadintake.console_requests(%L)', a)), '22023', 'requests: refused: ' || a)
  FROM unnest(ARRAY['{"stauts": "ok"}', '{"limit": 0}', '{"limit": 201}', '{"limit": "ten"}',
                    '{"limit": 1.5}', '{"status": "bogus"}', '{"status": "99"}', '{"status": true}',
                    '{"before": -1}', '{"after": "x"}', '{"agent": 1001}', '{"q": ["a"]}', '[]',
                    '"all"']) AS a;
SELECT throws_ok($$SELECT leadintake.console_requests('{"colour": "red"}')$$, '22023',
    'unknown argument "colour"', 'requests: the message names the unknown argument');
SELECT throws_ok($$SELECT leadintake.console_requests('{"limit": 500}')$$, '22023',
    'argument "limit" must be an integer from 1 to 200', 'requests: the message says the limit''s range');
SELECT is(pg_temp.ids_of(leadintake.console_requests(NULL)), pg_temp.ids_of(pg_temp.req('{}')),
    'requests: NULL args count as {}');

-- ================================================================ one request
SELECT is((SELECT r -> 'reasons' FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(4))) AS r),
    (SELECT response -> 'details' FROM sent WHERE n = 4),
    'request: the reasons of a 400 are those of its answer''s details');
SELECT is((SELECT jsonb_build_array(r -> 'request' -> 'payload', r -> 'request' ->> 'client_addr',
                                    r -> 'request' -> 'replay_of', r -> 'replays', r -> 'lead')
             FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(4))) AS r),
    jsonb_build_array((SELECT body FROM sent WHERE n = 4)::jsonb, '10.1.2.3', NULL, '[]'::jsonb, NULL),
    'request: a 400: its payload as received, client address, no replay, no lead');
SELECT is((SELECT jsonb_build_array(r -> 'reasons', r -> 'lead' ->> 'dialer_lead_id',
                                    r -> 'lead' ->> 'assigned_agent_username', r -> 'lead' ->> 'full_name')
             FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(1))) AS r),
    '[{}, "C-1", "agent1", "Ann Smith"]'::jsonb, 'request: a 201: no reason, and the lead it made');
SELECT is((SELECT jsonb_build_array(r -> 'reasons', r -> 'request' -> 'payload', r -> 'request' ->> 'raw_body')
             FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(5))) AS r),
    '[{}, null, "{\"user\": oops"]'::jsonb, 'request: a body that was not JSON: its raw body, no reason');
SELECT is((SELECT r -> 'reasons' FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(7))) AS r),
    '{"user": "is required when dialer_user_id is absent"}', 'request: a missing identity is a reason');
SELECT throws_ok($$SELECT leadintake.console_request('{"id": 999999}')$$, 'P0002',
    'request 999999 does not exist', 'request: no such id: P0002');
SELECT throws_ok($$SELECT leadintake.console_request('{}')$$, '22023',
    'argument "id" is required', 'request: id is required');
RESET ROLE;

-- check_payload, the C validator behind "reasons"
SELECT is(leadintake.check_payload('{"user":"a","email":"x@y","gmt_offset_now":"15","epoch":"1.5"}'),
    '{"email": "must be a plausible e-mail address, like name@example.com", "epoch": "must be an integer", "gmt_offset_now": "must be a number from -12 to 14"}',
    'check_payload: every bad field with its reason');
SET LOCAL leadintake.invalid_fields = 'keep';
SELECT is(leadintake.check_payload('{"user":"a","email":"x@y"}'),
    '{"email": "must be a plausible e-mail address, like name@example.com"}',
    'check_payload: the same reasons under invalid_fields = keep');
RESET leadintake.invalid_fields;
SELECT is(leadintake.check_payload('[1, 2]') || leadintake.check_payload('{"user":"a","lead_id":"x"}'), '{}',
    'check_payload: {} for a valid payload and for one that is not an object');

-- ================================================================ failures and replays
SET ROLE leadintake_pgtap_console;
-- the groups, without their times
CREATE FUNCTION pg_temp.groups() RETURNS jsonb
    LANGUAGE sql AS $$ SELECT coalesce(jsonb_agg(g - 'first_at' - 'last_at' ORDER BY o), '[]')
                         FROM jsonb_array_elements(leadintake.console_failures('{}') -> 'groups')
                              WITH ORDINALITY AS e (g, o) $$;
SELECT is(pg_temp.groups() -> 0,
    jsonb_build_object('status', 404, 'error', 'Agent with username ''agent9'' not found', 'agent', 'agent9',
                       'count', 2, 'latest_id', pg_temp.id(3)),
    'failures: the largest group first: the two 404s that asked for agent9');
SELECT is((SELECT jsonb_agg(jsonb_build_array(g -> 'status', g -> 'agent', g -> 'count', g -> 'latest_id') ORDER BY g ->> 'latest_id')
             FROM jsonb_array_elements(pg_temp.groups()) AS g),
    jsonb_build_array(jsonb_build_array(404, 'agent9', 2, pg_temp.id(3)), jsonb_build_array(400, 'agent1', 1, pg_temp.id(4)),
                      jsonb_build_array(400, NULL, 1, pg_temp.id(5)), jsonb_build_array(400, NULL, 1, pg_temp.id(7))),
    'failures: one group per error and agent asked for (none: null); the 201s are no failure');
SELECT ok((SELECT bool_and(g ->> 'first_at' <= g ->> 'last_at' AND g ->> 'last_at' ~ 'Z$')
             FROM jsonb_array_elements(leadintake.console_failures('{}') -> 'groups') AS g),
    'failures: first_at and last_at, in UTC');
SELECT throws_ok($$SELECT leadintake.console_failures('{"all": true}')$$, '22023',
    'unknown argument "all"', 'failures: takes no argument');

-- one request
CREATE TEMP TABLE replayed AS
SELECT leadintake.console_replay(jsonb_build_object('id', pg_temp.id(4))) AS r;
SELECT is((SELECT jsonb_build_array(r -> 'status', r -> 'response' -> 'details') FROM replayed),
    jsonb_build_array(400, (SELECT response -> 'details' FROM sent WHERE n = 4)),
    'replay: a 400 whose payload is still invalid: 400 again, with its details');
SELECT is((SELECT r -> 'request' -> 'replay_of' FROM leadintake.console_request(
              jsonb_build_object('id', (SELECT (r ->> 'id')::bigint FROM replayed))) AS r),
    to_jsonb(pg_temp.id(4)), 'replay: the new row is logged; its detail says which row it replays');
SELECT is((SELECT jsonb_build_array(r -> 'source', r -> 'status')
             FROM jsonb_array_elements(pg_temp.req('{"limit": 1}') -> 'rows') AS r),
    '["replay", 400]', '... source replay, status 400');
SELECT is((SELECT r -> 'request' -> 'replayed_by' FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(4))) AS r),
    (SELECT r -> 'id' FROM replayed), 'replay: the original row''s replayed_by is the new row');
SELECT throws_ok(format($$SELECT leadintake.console_replay('{"id": %s}')$$, pg_temp.id(4)), '55000',
    format('request %s was already replayed', pg_temp.id(4)), 'replay: a row already replayed: 55000');
SELECT throws_ok(format($$SELECT leadintake.console_replay('{"id": %s}')$$, pg_temp.id(1)), '55000',
    format('request %s did not fail', pg_temp.id(1)), 'replay: a 201: 55000');
SELECT throws_ok(format($$SELECT leadintake.console_replay('{"id": %s}')$$, pg_temp.id(5)), '55000',
    format('intake log row %s has no stored payload', pg_temp.id(5)), 'replay: a body that was not JSON: 55000');
SELECT throws_ok($$SELECT leadintake.console_replay('{"id": 999999}')$$, 'P0002', NULL, 'replay: no such row: P0002');
SELECT throws_ok($$SELECT leadintake.console_replay('{"id": "one"}')$$, '22023', NULL, 'replay: a bad id: 22023');

-- a group, before and after its cause is fixed
SELECT is(leadintake.console_replay_group('{"error": "Agent with username ''agent9'' not found", "agent": "agent9"}') - 'stopped_at',
    '{"replayed": 1, "ok": 0, "failed": 1, "more": false}',
    'replay-group: agent9 still missing: the first replay fails again and stops the call');
SELECT is((pg_temp.groups() -> 0) - 'latest_id', '{"status": 404, "error": "Agent with username ''agent9'' not found", "agent": "agent9", "count": 2}',
    '... the group still holds two open failures (the older and the new replay)');
SELECT is((leadintake.console_agent_add('{"username": "agent9", "display_name": "Agent Nine"}') -> 'agent' ->> 'open_failures'),
    '2', 'agent-add: agent9 created; its open failures: 2');
SELECT is(leadintake.console_replay_group('{"error": "Agent with username ''agent9'' not found", "agent": "agent9"}'),
    '{"replayed": 2, "ok": 2, "failed": 0, "more": false, "stopped_at": null}',
    'replay-group: once agent9 exists: both replayed, 201');
SELECT is(jsonb_path_query_array(pg_temp.groups(), '$[*].agent'), '["agent1", null, null]',
    '... and the group is gone from the failures');
SELECT is((SELECT jsonb_array_length(r -> 'replays') FROM leadintake.console_request(jsonb_build_object('id', pg_temp.id(2))) AS r),
    2, 'request: its replays, in order: the failed one, then the one that made the lead');
SELECT is(pg_temp.state(format('SELECT leadintake.console_replay_group(%L)', a)), '22023', 'replay-group: refused: ' || a)
  FROM unnest(ARRAY['{}', '{"agent": "agent9"}', '{"error": 404}', '{"error": "x", "status": 404}']) AS a;
RESET ROLE;

-- 501 failures of one group: 500 a call
SELECT count(*) FROM generate_series(1, 501) AS i,
       leadintake.http_intake(convert_to(format('{"user":"bulk","lead_id":"BULK-%s"}', i), 'UTF8'),
                              'dialer', NULL, false) AS h
 WHERE h.status = 404 \gset
INSERT INTO leadintake.agents (username) VALUES ('bulk');
SET ROLE leadintake_pgtap_console;
SELECT is(leadintake.console_replay_group('{"error": "Agent with username ''bulk'' not found", "agent": "bulk"}'),
    '{"replayed": 500, "ok": 500, "failed": 0, "more": true, "stopped_at": null}',
    'replay-group: 501 rows: 500, and more');
SELECT is(leadintake.console_replay_group('{"error": "Agent with username ''bulk'' not found", "agent": "bulk"}'),
    '{"replayed": 1, "ok": 1, "failed": 0, "more": false, "stopped_at": null}',
    'replay-group: called again: the last one');
RESET ROLE;
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id LIKE 'BULK-%'), 501::bigint,
    '... 501 leads made');

-- leadintake.open_failures follows the log, whatever writes it
CREATE FUNCTION pg_temp.open_mismatch() RETURNS SETOF text LANGUAGE sql AS $$
    (SELECT format('%s %s %s %s', log_id, status, error, agent) FROM leadintake.open_failures
     EXCEPT ALL
     SELECT format('%s %s %s %s', id, status, error, leadintake.asked_agent(payload)) FROM leadintake.intake_log
      WHERE status >= 400 AND status < 500 AND replayed_by IS NULL)
    UNION ALL
    (SELECT format('%s %s %s %s', id, status, error, leadintake.asked_agent(payload)) FROM leadintake.intake_log
      WHERE status >= 400 AND status < 500 AND replayed_by IS NULL
     EXCEPT ALL
     SELECT format('%s %s %s %s', log_id, status, error, agent) FROM leadintake.open_failures) $$;
SELECT is_empty('SELECT * FROM pg_temp.open_mismatch()',
    'open_failures: exactly the log''s 4xx rows not replayed, after the replays');
DELETE FROM leadintake.intake_log WHERE id = pg_temp.id(7);
SELECT is((SELECT count(*) FROM leadintake.open_failures WHERE log_id = pg_temp.id(7)), 0::bigint,
    'open_failures: a log row deleted (as purge_log does) leaves it');
UPDATE leadintake.intake_log SET status = 404 WHERE id = pg_temp.id(1);
SELECT is((SELECT status FROM leadintake.open_failures WHERE log_id = pg_temp.id(1)), 404,
    'open_failures: a row updated to a 4xx by hand joins it');
UPDATE leadintake.intake_log SET status = 201 WHERE id = pg_temp.id(1);

-- ================================================================ agents
SET ROLE leadintake_pgtap_console;
SELECT is((SELECT jsonb_agg(a - 'created_at' - 'id') FROM jsonb_array_elements(leadintake.console_agents('{}') -> 'agents') AS a),
    '[{"username": "agent1", "display_name": "Agent One", "dialer_user_id": "1001", "active": true, "open_failures": 1},
      {"username": "agent2", "display_name": "Agent Two", "dialer_user_id": "1002", "active": true, "open_failures": 0},
      {"username": "agent9", "display_name": "Agent Nine", "dialer_user_id": null, "active": true, "open_failures": 0},
      {"username": "bulk", "display_name": null, "dialer_user_id": null, "active": true, "open_failures": 0}]',
    'agents: every agent by username, with its open failures');
SELECT is((leadintake.console_agent_add('{"username": "agent3", "dialer_user_id": "1003", "display_name": ""}') -> 'agent') - 'id' - 'created_at',
    '{"username": "agent3", "display_name": null, "dialer_user_id": "1003", "active": true, "open_failures": 0}',
    'agent-add: the new agent ("" leaves display_name empty)');
SELECT throws_ok($$SELECT leadintake.console_agent_add('{"username": "agent3"}')$$, '23505',
    'username "agent3" belongs to another agent', 'agent-add: a username taken: 23505');
SELECT throws_ok($$SELECT leadintake.console_agent_add('{"username": "agent4", "dialer_user_id": "1001"}')$$, '23505',
    'dialer user id "1001" belongs to another agent', 'agent-add: a dialer user id taken: 23505');
SELECT is(pg_temp.state(format('SELECT leadintake.console_agent_add(%L)', a)), '22023', 'agent-add: refused: ' || a)
  FROM unnest(ARRAY['{}', '{"username": ""}', '{"username": " agent5"}', '{"username": 5}',
                    '{"username": "agent5", "active": false}',
                    '{"username": "' || repeat('x', 101) || '"}']) AS a;
RESET ROLE;
SELECT id AS agent3 FROM leadintake.agents WHERE username = 'agent3' \gset
SET ROLE leadintake_pgtap_console;
SELECT is((leadintake.console_agent_edit(format('{"id": %s, "dialer_user_id": "1009", "username": "agent3b"}', :agent3)::jsonb)
           -> 'agent') - 'id' - 'created_at',
    '{"username": "agent3b", "display_name": null, "dialer_user_id": "1009", "active": true, "open_failures": 0}',
    'agent-edit: username and dialer user id changed, display_name kept');
SELECT is((leadintake.console_agent_edit(format('{"id": %s, "dialer_user_id": ""}', :agent3)::jsonb) -> 'agent' -> 'dialer_user_id'),
    'null', 'agent-edit: "" clears the dialer user id');
SELECT throws_ok(format($$SELECT leadintake.console_agent_edit('{"id": %s, "username": "agent1"}')$$, :agent3), '23505',
    'username "agent1" belongs to another agent', 'agent-edit: a username taken: 23505');
SELECT throws_ok($$SELECT leadintake.console_agent_edit('{"id": 99999, "username": "x"}')$$, 'P0002',
    'agent 99999 does not exist', 'agent-edit: no such agent: P0002');
SELECT is(pg_temp.state(format('SELECT leadintake.console_agent_edit(%L)', a)), '22023', 'agent-edit: refused: ' || a)
  FROM unnest(ARRAY['{"username": "x"}', format('{"id": %s, "username": null}', :agent3),
                    format('{"id": %s, "active": true}', :agent3)]) AS a;
SELECT is((leadintake.console_agent_active(format('{"id": %s, "active": false}', :agent3)::jsonb) -> 'agent' -> 'active'),
    'false', 'agent-active: deactivated');
RESET ROLE;
SELECT is((SELECT status || ' ' || (response ->> 'error')
             FROM leadintake.http_intake(convert_to('{"user":"agent3b"}', 'UTF8'), 'dialer', NULL, false)),
    '404 Agent with username ''agent3b'' is inactive', '... and the intake now refuses it as inactive');
SET ROLE leadintake_pgtap_console;
SELECT is((leadintake.console_agent_active(format('{"id": %s, "active": "true"}', :agent3)::jsonb) -> 'agent' -> 'active'),
    'true', 'agent-active: activated again ("true" as a string)');
SELECT is(pg_temp.state(format('SELECT leadintake.console_agent_active(%L)', a)), s, 'agent-active: ' || a || ' -> ' || s)
  FROM (VALUES (format('{"id": %s, "active": "maybe"}', :agent3), '22023'), (format('{"id": %s}', :agent3), '22023'),
               (format('{"id": %s, "active": 1}', :agent3), '22023'), ('{"id": 99999, "active": true}', 'P0002')) AS v (a, s);

-- ================================================================ health
SELECT is((SELECT jsonb_array_length(h -> 'minutes') FROM leadintake.console_health('{}') AS h), 60,
    'health: 60 minutes');
SELECT is((SELECT jsonb_build_array(h -> 'minutes' -> 59 ->> 'minute', h -> 'minutes' -> 0 ->> 'minute')
             FROM leadintake.console_health('{}') AS h),
    jsonb_build_array(to_char(date_trunc('minute', now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                      to_char((date_trunc('minute', now()) - interval '59 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    'health: oldest first, the current minute last');
RESET ROLE;
SELECT count(*) AS hour_requests, count(*) FILTER (WHERE status >= 400) AS hour_failures
  FROM leadintake.intake_log WHERE received_at >= date_trunc('minute', now()) - interval '59 minutes' \gset
SET ROLE leadintake_pgtap_console;
SELECT is((SELECT format('%s %s %s %s', h -> 'requests', h -> 'failures',
                         (SELECT sum((m ->> 'requests')::int) FROM jsonb_array_elements(h -> 'minutes') AS m),
                         (SELECT count(*) FROM jsonb_array_elements(h -> 'minutes') AS m WHERE m -> 'requests' = '0'))
             FROM leadintake.console_health('{}') AS h),
    format('%s %s %s %s', :hour_requests, :hour_failures, :hour_requests, 59),
    'health: the hour''s requests and failures, the minutes without any as zeros');
SELECT throws_ok($$SELECT leadintake.console_health('{"minutes": 5}')$$, '22023', NULL, 'health: takes no argument');

-- ================================================================ set-up
-- docs/vicidial.md's Dispo Call URL, the key as YOUR_KEY
SELECT is(leadintake.console_setup('{"base_url": "https://crm.example.com/api/leads/from-dialer/"}') ->> 'dispo_url',
    'https://crm.example.com/api/leads/from-dialer/?api_key=YOUR_KEY&user=--A--user--B--&lead_id=--A--lead_id--B--&vendor_id=--A--vendor_id--B--&list_id=--A--list_id--B--&gmt_offset_now=--A--gmt_offset_now--B--&phone_code=--A--phone_code--B--&phone_number=--A--phone_number--B--&title=--A--title--B--&first_name=--A--first_name--B--&middle_initial=--A--middle_initial--B--&last_name=--A--last_name--B--&address1=--A--address1--B--&address2=--A--address2--B--&address3=--A--address3--B--&city=--A--city--B--&state=--A--state--B--&province=--A--province--B--&postal_code=--A--postal_code--B--&country_code=--A--country_code--B--&gender=--A--gender--B--&date_of_birth=--A--date_of_birth--B--&alt_phone=--A--alt_phone--B--&email=--A--email--B--&security_phrase=--A--security_phrase--B--&comments=--A--comments--B--&campaign=--A--campaign--B--&phone_login=--A--phone_login--B--&fronter=--A--fronter--B--&closer=--A--closer--B--&group=--A--group--B--&channel_group=--A--channel_group--B--&SQLdate=--A--SQLdate--B--&epoch=--A--epoch--B--&uniqueid=--A--uniqueid--B--&customer_zap_channel=--A--customer_zap_channel--B--&server_ip=--A--server_ip--B--&SIPexten=--A--SIPexten--B--&session_id=--A--session_id--B--&dialed_number=--A--dialed_number--B--&dialed_label=--A--dialed_label--B--&rank=--A--rank--B--&owner=--A--owner--B--&camp_script=--A--camp_script--B--&in_script=--A--in_script--B--&script_width=--A--script_width--B--&script_height=--A--script_height--B--&recording_filename=--A--recording_filename--B--&dispo=--A--dispo--B--',
    'setup: the Dispo Call URL is docs/vicidial.md''s, with api_key=YOUR_KEY');
SELECT is((SELECT s ->> 'webform_url' = (s ->> 'dispo_url') || '&redirect=1'
             FROM leadintake.console_setup('{"base_url": "http://10.0.0.5:8080/api/leads/from-dialer"}') AS s),
    true, 'setup: the Web Form URL is the same with &redirect=1');
SELECT is((SELECT count(*) FILTER (WHERE f ->> 'value' <> '--A--' || (f ->> 'name') || '--B--')
                  || ' ' || count(*)
             FROM jsonb_array_elements(leadintake.console_setup('{"base_url": "https://x.example/"}') -> 'fields') AS f),
    '0 48', 'setup: 48 parameters, each as --A--name--B--');
RESET ROLE;
SELECT set_eq(
    $$SELECT f ->> 'field' FROM jsonb_array_elements(leadintake.console_setup('{"base_url": "https://x.example/"}') -> 'fields') AS f
       WHERE f ->> 'field' IS NOT NULL$$,
    $$SELECT json_key FROM leadintake.fields()
       WHERE kind NOT LIKE 'alias of %' AND json_key NOT IN ('dialer_user_id', 'full_name', 'phone', 'notes')$$,
    'setup: every field of leadintake.fields() that VICIdial has a variable for');
SET ROLE leadintake_pgtap_console;
SELECT is(pg_temp.state(format('SELECT leadintake.console_setup(%L)', a)), '22023', 'setup: refused: ' || a)
  FROM unnest(ARRAY['{}', '{"base_url": "ftp://x.example/"}', '{"base_url": "https://x.example/?a=1"}',
                    '{"base_url": "https://x.example/a b"}', '{"base_url": "https://x.example/", "key": "k"}']) AS a;
RESET ROLE;

-- ================================================================ 100,000 rows
-- A realistic mix, a minute apart, some hours old (outside health's hour).
INSERT INTO leadintake.intake_log (received_at, source, key_name, status, error, payload)
SELECT now() - interval '3 days' + i * interval '1 second',
       'http', 'dialer', CASE WHEN i % 50 = 0 THEN 404 WHEN i % 97 = 0 THEN 400 ELSE 201 END,
       CASE WHEN i % 50 = 0 THEN format('Agent with username ''agent%s'' not found', i % 7)
            WHEN i % 97 = 0 THEN 'Invalid fields: email (email: must be a plausible e-mail address, like name@example.com)' END,
       jsonb_build_object('user', 'agent' || i % 7, 'lead_id', 'P-' || i, 'first_name', 'Name' || i)
       || CASE WHEN i = 12345 THEN '{"comments": "call back: Needle-XYZ"}'::jsonb ELSE '{}' END
  FROM generate_series(1, 100000) AS i;
RESET ROLE;
-- (by hand, so their open failures too, as the log writer adds them)
INSERT INTO leadintake.open_failures
SELECT id, status, error, leadintake.asked_agent(payload), received_at FROM leadintake.intake_log
 WHERE status >= 400 AND status < 500 AND replayed_by IS NULL
   AND id NOT IN (SELECT log_id FROM leadintake.open_failures);
SELECT count(*) AS log_rows, count(*) FILTER (WHERE status >= 400) AS failed_rows,
       count(*) FILTER (WHERE status = 404 AND payload ->> 'user' = 'agent3') AS agent3_404
  FROM leadintake.intake_log \gset
GRANT SELECT ON ids TO leadintake_pgtap_console;
-- every page with before, as the page asks for older ones
CREATE FUNCTION pg_temp.page_all(args jsonb, OUT pages int, OUT seen bigint[]) LANGUAGE plpgsql AS $$
DECLARE
    page jsonb;
    before bigint;
BEGIN
    pages := 0;
    seen := '{}';
    LOOP
        page := leadintake.console_requests(args || coalesce(jsonb_build_object('before', before), '{}'));
        pages := pages + 1;
        seen := seen || pg_temp.ids_of(page);
        before := (page ->> 'next_before')::bigint;
        EXIT WHEN before IS NULL OR pages > 10000;
    END LOOP;
END $$;
SET ROLE leadintake_pgtap_console;
CREATE TEMP TABLE paged AS SELECT * FROM pg_temp.page_all('{"limit": 200}');
SELECT is((SELECT format('%s pages, %s ids, %s distinct, newest first %s', pages, cardinality(seen),
                         (SELECT count(DISTINCT x) FROM unnest(seen) AS x),
                         seen = ARRAY(SELECT x FROM unnest(seen) AS x ORDER BY x DESC))
             FROM paged),
    format('%s pages, %s ids, %s distinct, newest first t', ceil(:log_rows / 200.0), :log_rows, :log_rows),
    'paging 100,000+ rows with before, 200 a page: every row once, newest first');
RESET ROLE;
SELECT is((SELECT seen FROM paged), ARRAY(SELECT id FROM leadintake.intake_log ORDER BY id DESC),
    '... exactly the rows of the log');
SET ROLE leadintake_pgtap_console;
SELECT is((SELECT format('%s %s', cardinality(seen), (SELECT count(DISTINCT x) FROM unnest(seen) AS x))
             FROM pg_temp.page_all('{"status": "failed", "limit": 37}')),
    format('%s %s', :failed_rows, :failed_rows), 'paging status failed: every failed row once');
SELECT is((SELECT cardinality(seen) FROM pg_temp.page_all('{"status": "404", "agent": "agent3", "limit": 50}')),
    :agent3_404, 'paging status 404 and agent agent3: each of its rows');
-- q reads at most 10,000 rows a call and says where it stopped
RESET ROLE;
SELECT id AS q_stop FROM leadintake.intake_log ORDER BY id DESC OFFSET 9999 LIMIT 1 \gset
SELECT id AS needle FROM leadintake.intake_log WHERE payload ->> 'lead_id' = 'P-12345' \gset
SET ROLE leadintake_pgtap_console;
SELECT is((SELECT format('%s %s %s', jsonb_array_length(r -> 'rows'), r -> 'searched', r -> 'next_before')
             FROM leadintake.console_requests('{"q": "needle-xyz"}') AS r),
    format('0 10000 %s', :q_stop),
    'q: no match among the newest 10,000 rows: none, searched 10000, next_before the last row read');
SELECT is((SELECT seen FROM pg_temp.page_all('{"q": "needle-xyz"}')), ARRAY[:needle]::bigint[],
    'q: paging on with before finds the one old row that matches, once');
SELECT is((SELECT format('%s %s %s', jsonb_array_length(r -> 'rows'), r -> 'searched', r -> 'next_before')
             FROM leadintake.console_requests('{"status": "599"}') AS r),
    format('0 10000 %s', :q_stop),
    'status: a code no row has reads the newest 10,000 rows, not the whole log, and says where it stopped');
RESET ROLE;
-- asked_agent() reads every payload listed and every 4xx logged: any JSON a body holds must be loggable
CREATE TEMP TABLE odd AS
SELECT h.status FROM unnest(ARRAY['"a string"', '[1, 2]', '7', '{"user": {"a": 1}}']) WITH ORDINALITY AS b (body, o),
       leadintake.http_intake(convert_to(b.body, 'UTF8'), 'k', NULL, false) AS h ORDER BY o;
SELECT is((SELECT string_agg(r ->> 'status' || ' ' || coalesce(r ->> 'agent', 'null'), ', ' ORDER BY o DESC)
             FROM jsonb_array_elements(leadintake.console_requests('{"limit": 4}') -> 'rows') WITH ORDINALITY AS e (r, o)),
    '400 null, 400 null, 400 null, 400 {"a": 1}',
    'a body that is a JSON string, array or number is logged and listed, its agent null');
TRUNCATE leadintake.intake_log;
SELECT is((SELECT count(*) FROM leadintake.open_failures), 0::bigint,
    'open_failures: TRUNCATE of the log empties it');

SELECT * FROM finish();
ROLLBACK;
