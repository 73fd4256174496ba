-- leadintake 1.6 -> 1.7: asked_agent(payload), the agent the console shows for a request, is
-- read by the intake's own C reader: the rule is no longer written a second time in SQL.
\echo Use "ALTER EXTENSION leadintake UPDATE" to load this file. \quit

-- 1.6's SQL trimmed spaces only where an intake also trims tab, newline, CR, FF and VT, and
-- let an unusable user hide the alias that stands in for it (test/pgtap/asked_agent.sql).
CREATE OR REPLACE FUNCTION leadintake.asked_agent(payload jsonb) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'leadintake_asked_agent';
COMMENT ON FUNCTION leadintake.asked_agent(jsonb) IS
    'The agent a payload asks for: dialer_user_id, else user (or agent_username), as an intake reads them; else the first as sent, trimmed (200 characters)';

-- The open failures' agents, as 1.7 reads them.
UPDATE leadintake.open_failures AS f SET agent = leadintake.asked_agent(l.payload)
  FROM leadintake.intake_log AS l
 WHERE l.id = f.log_id AND f.agent IS DISTINCT FROM leadintake.asked_agent(l.payload);
