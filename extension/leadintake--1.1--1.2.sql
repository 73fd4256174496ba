-- leadintake 1.1 -> 1.2: batched lead notifications (extension/notifier.c) and the agents
-- each backend keeps (extension/agents.c).
\echo Use "ALTER EXTENSION leadintake UPDATE" to load this file. \quit

-- 'batched' when leadintake is in shared_preload_libraries (a background worker sends the
-- committed calls' NOTIFYs in batches), else 'per call' (each call's own transaction).
CREATE FUNCTION leadintake.notify_status(OUT mode text, OUT waiting bigint, OUT worker_pid integer)
    AS 'MODULE_PATHNAME', 'leadintake_notify_status' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION leadintake.notify_status() IS
    'How NOTIFY leadintake_lead is sent here: mode, notifications of committed calls not yet sent, the notifier''s pid';
GRANT EXECUTE ON FUNCTION leadintake.notify_status() TO leadintake_reader;

-- Each backend keeps the agents it resolved until this table changes (extension/agents.c):
-- this trigger tells them. ENABLE ALWAYS: it fires for replicated changes too.
CREATE FUNCTION leadintake.agents_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'leadintake_agents_changed' LANGUAGE C;
CREATE TRIGGER agents_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON leadintake.agents FOR EACH STATEMENT EXECUTE FUNCTION leadintake.agents_changed();
ALTER TABLE leadintake.agents ENABLE ALWAYS TRIGGER agents_changed;
