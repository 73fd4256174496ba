-- test/pgtap/asked_agent.sql: leadintake.asked_agent(payload), the console's "agent asked for"
-- (SQL, extension 1.6), agrees with the agent the C resolver takes from the same payload
-- (extension/fields.c's field names and alias, payload.c's reading, agents.c's look-up): the
-- name its 404 quotes for an unknown agent, the agent the lead goes to for a known one. The
-- two read the same keys in two languages; this file fails when they drift apart.
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). This one runs
-- in one transaction that it rolls back. Run alone:
--   pg_prove -d DB test/pgtap/asked_agent.sql     (DB with CREATE EXTENSION pgtap, dblink)
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(33);

DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
VALUES ('agent1', 'Agent One', '1001'), ('agent2', 'Agent Two', '1002');

-- The C side's answer to payload p, through the shim's entry (nothing raised): for a 404, the
-- name its error quotes; for a 201, the username of the agent the lead went to.
CREATE FUNCTION pg_temp.c_side(p jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT CASE h.status
           WHEN 404 THEN substring(h.response ->> 'error'
                                   FROM '^Agent with (?:username|dialer_user_id) ''(.*)'' not found$')
           WHEN 201 THEN h.response -> 'lead' ->> 'assigned_agent_username'
           ELSE format('status %s: %s', h.status, h.response ->> 'error') END
      FROM leadintake.http_intake(convert_to(p::text, 'UTF8'), 'dialer', '10.1.2.3', false) AS h
$$;

-- The SQL side's answer: the username of the agent that asked_agent(p) names, looked up as
-- agents.c does (by dialer_user_id, else by username, case-insensitively for a single match);
-- the name itself when no agent has it.
CREATE FUNCTION pg_temp.sql_side(p jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce((SELECT username FROM leadintake.agents WHERE dialer_user_id = a),
                    (SELECT username FROM leadintake.agents WHERE lower(username) = lower(a)), a)
      FROM leadintake.asked_agent(p) AS a
$$;

SELECT is(pg_temp.sql_side(c.p::jsonb), pg_temp.c_side(c.p::jsonb), 'asked_agent agrees with the resolver: ' || c.why)
  FROM (VALUES -- no such agent: the 404's name
               ('{"dialer_user_id": "7001"}', 'dialer_user_id only, unknown'),
               ('{"user": "nobody"}', 'user only, unknown'),
               ('{"agent_username": "nobody"}', 'agent_username only (the alias of user), unknown'),
               ('{"user": "nobody", "agent_username": "other"}', 'user and its alias: user wins'),
               ('{"user": "", "agent_username": "nobody"}', 'a blank user: the alias stands in'),
               ('{"user": null, "agent_username": "nobody"}', 'a null user: the alias stands in'),
               ('{"dialer_user_id": "  ", "user": "nobody"}', 'a blank dialer_user_id counts as absent'),
               ('{"dialer_user_id": null, "agent_username": "nobody"}', 'a null dialer_user_id counts as absent'),
               ('{"user": "  No Body  "}', 'spaces trimmed, inner space and case kept'),
               ('{"dialer_user_id": " 7001 "}', 'dialer_user_id trimmed'),
               ('{"dialer_user_id": 7001}', 'a number as its text'),
               ('{"user": "o''neil"}', 'a quote in the name'),
               -- a known agent: the lead's
               ('{"dialer_user_id": "1001"}', 'dialer_user_id only, known'),
               ('{"user": "agent2"}', 'user only, known'),
               ('{"agent_username": "agent2"}', 'agent_username only, known'),
               ('{"user": "agent1", "agent_username": "agent2"}', 'user and its alias, both known: user wins'),
               ('{"dialer_user_id": "1001", "user": "agent2"}', 'dialer_user_id and user, both known: dialer_user_id wins'),
               ('{"dialer_user_id": " 1002 ", "user": "nobody"}', 'dialer_user_id (trimmed) known, user unknown'),
               ('{"user": " AGENT2 "}', 'user in another case: the single match'),
               ('{"dialer_user_id": "", "agent_username": "Agent1"}', 'a blank dialer_user_id, the alias in another case'))
       AS c (p, why);

-- Whitespace as payload.c reads it (1.6's SQL trimmed spaces only).
SELECT is(pg_temp.sql_side(E'{"user": "\\tnobody\\n"}'), pg_temp.c_side(E'{"user": "\\tnobody\\n"}'),
          'asked_agent agrees with the resolver: a user between a tab and a newline');
SELECT is(pg_temp.sql_side(E'{"user": "\\t", "agent_username": "nobody"}'),
          pg_temp.c_side(E'{"user": "\\t", "agent_username": "nobody"}'),
          'asked_agent agrees with the resolver: a user of a tab alone is blank, the alias stands in');

-- ---------------------------------------------------------------- where they differ by design
-- asked_agent is a function of the payload alone: it names the identity the resolver looks up
-- first. Only the agents table tells that dialer_user_id is unknown and the user is taken
-- instead, so there the two differ (docs/console.md, "agent asked for").
SELECT is(leadintake.asked_agent('{"dialer_user_id": "7001", "user": "agent2"}'), '7001',
          'an unknown dialer_user_id and a known user: asked_agent names the dialer_user_id ...');
SELECT is(pg_temp.c_side('{"dialer_user_id": "7001", "user": "agent2"}'), 'agent2',
          '... and the lead goes to the user''s agent');
SELECT is(leadintake.asked_agent('{"dialer_user_id": "7001", "user": "nobody"}'), '7001',
          'an unknown dialer_user_id and an unknown user: asked_agent names the dialer_user_id ...');
SELECT is(pg_temp.c_side('{"dialer_user_id": "7001", "user": "nobody"}'), 'nobody',
          '... and the 404 names the user');
-- Unusable values (a placeholder VICIdial left unexpanded, one too long) are shown as sent.
SELECT is(leadintake.asked_agent('{"user": " --A--user--B-- "}'), '--A--user--B--',
          'a placeholder left unexpanded is shown as sent, trimmed');
SELECT is(leadintake.asked_agent(jsonb_build_object('user', repeat('é', 300))), repeat('é', 200),
          'a value too long for an identity: its first 200 characters');
SELECT is(leadintake.asked_agent('{"user": "--A--user--B--", "agent_username": "agent1"}'), 'agent1',
          'an unusable user, a usable alias: the alias');
SELECT is(leadintake.asked_agent('{"city": "York"}'), NULL, 'no identity: NULL');
SELECT is(leadintake.asked_agent('[1, 2]'), NULL, 'not an object: NULL');

-- ---------------------------------------------------------------- the update 1.6 -> 1.7
-- The open failures logged under 1.6 get their agent as 1.7 reads it.
DROP EXTENSION leadintake CASCADE;
CREATE EXTENSION leadintake VERSION '1.6';
SELECT h.status AS logged_404
  FROM leadintake.http_intake(convert_to(E'{"user": "\\tnobody\\n"}', 'UTF8'), 'dialer', '10.1.2.3', false) AS h \gset
SELECT is((SELECT agent FROM leadintake.open_failures), E'\tnobody\n',
          '1.6: an open failure''s agent kept its tab and newline');
ALTER EXTENSION leadintake UPDATE TO '1.7';
SELECT is((SELECT agent FROM leadintake.open_failures), 'nobody',
          'after ALTER EXTENSION leadintake UPDATE: the agent as 1.7 reads it');

SELECT * FROM finish();
ROLLBACK;
