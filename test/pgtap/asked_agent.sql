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
SELECT plan(24);

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

-- ---------------------------------------------------------------- where they differ today
-- Open findings (reported, not changed: the 1.6 script is released). A placeholder the dialer
-- left unexpanded differs too, by design: asked_agent shows it as sent (docs/console.md).
SELECT todo_start('asked_agent takes dialer_user_id; the resolver falls back to user when no active agent has it');
SELECT is(pg_temp.sql_side('{"dialer_user_id": "7001", "user": "agent2"}'),
          pg_temp.c_side('{"dialer_user_id": "7001", "user": "agent2"}'),
          'an unknown dialer_user_id and a known user: the lead goes to the user''s agent');
SELECT is(pg_temp.sql_side('{"dialer_user_id": "7001", "user": "nobody"}'),
          pg_temp.c_side('{"dialer_user_id": "7001", "user": "nobody"}'),
          'an unknown dialer_user_id and an unknown user: the 404 names the user');
SELECT todo_end();
SELECT todo_start('asked_agent trims spaces only (btrim); payload.c trims tab, newline, CR, FF, VT too');
SELECT is(pg_temp.sql_side(E'{"user": "\\tnobody\\n"}'), pg_temp.c_side(E'{"user": "\\tnobody\\n"}'),
          'a user between a tab and a newline');
SELECT is(pg_temp.sql_side(E'{"user": "\\t", "agent_username": "nobody"}'),
          pg_temp.c_side(E'{"user": "\\t", "agent_username": "nobody"}'),
          'a user of a tab alone: blank to payload.c, the alias stands in');
SELECT todo_end();

SELECT * FROM finish();
ROLLBACK;
