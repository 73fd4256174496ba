-- leadintake 1.5 -> 1.6: the console's SQL side (contract section 9, docs/console.md): the
-- role leadintake_console, intake_log.replayed_by and replay_of, open failures, console_*().
\echo Use "ALTER EXTENSION leadintake UPDATE" to load this file. \quit

-- ---------------------------------------------------------------- role, column, C entries
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'leadintake_console') THEN
        CREATE ROLE leadintake_console NOLOGIN;
    END IF;
END $$;
COMMENT ON ROLE leadintake_console IS
    'leadintake: may call the console functions leadintake.console_*(jsonb), nothing else';
GRANT USAGE ON SCHEMA leadintake TO leadintake_console;

-- No default: adding it rewrites nothing.
ALTER TABLE leadintake.intake_log ADD COLUMN replayed_by bigint;
COMMENT ON COLUMN leadintake.intake_log.replayed_by IS
    'The log row of the console replay that ran this request again; NULL: not replayed';

-- The 400's field reasons for a payload, by the intake's own validator (extension/check.c).
CREATE FUNCTION leadintake.check_payload(payload jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'leadintake_check_payload' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION leadintake.check_payload(jsonb) IS
    'The details {field: reason} of the 400 this payload gets; {} when it passes validation';

-- replay() as the shim's entry runs a request: the outcome is logged and returned, not raised.
CREATE FUNCTION leadintake.replay_outcome(log_id bigint, OUT status integer, OUT response jsonb,
                                          OUT id bigint)
    AS 'MODULE_PATHNAME', 'leadintake_replay_outcome' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION leadintake.replay_outcome(bigint) IS
    'Run a logged request again (source replay), logging and returning any outcome: (status, response, id of the new log row)';
REVOKE ALL ON FUNCTION leadintake.replay_outcome(bigint) FROM PUBLIC;

-- "The agent asked for": dialer_user_id, else user (else its alias agent_username), trimmed,
-- blank as absent; its first 200 characters (a valid identity has at most 100). A SQL body,
-- inlined into the queries below. The field names and the alias agent_username are also in
-- extension/fields.c's tables: keep the two in step.
CREATE FUNCTION leadintake.asked_agent(payload jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.left(coalesce(nullif(pg_catalog.btrim(payload OPERATOR(pg_catalog.->>) 'dialer_user_id'), ''),
                                    nullif(pg_catalog.btrim(payload OPERATOR(pg_catalog.->>) 'user'), ''),
                                    nullif(pg_catalog.btrim(payload OPERATOR(pg_catalog.->>) 'agent_username'), '')),
                           200);
COMMENT ON FUNCTION leadintake.asked_agent(jsonb) IS
    'The agent a payload asked for: dialer_user_id, else user, trimmed (first 200 characters)';

-- The reverse of replayed_by, written by the same replay: neither direction needs an index.
ALTER TABLE leadintake.intake_log ADD COLUMN replay_of bigint;
COMMENT ON COLUMN leadintake.intake_log.replay_of IS
    'The log row this console replay ran again; NULL: not a console replay';

-- No index on intake_log for the pages: every logged call would pay for each (it is opened
-- and checked in every call's INSERT). The requests page reads the log newest first by its
-- primary key, a filtered page at most 10,000 rows a call (docs/console.md, "Speed").

-- ---------------------------------------------------------------- open failures
-- The log's open failures (4xx, not replayed), kept by the log writer and triggers: the failures
-- page groups them, and at 10 million log rows they are spread over the whole log, one heap
-- page each (0.9 s for 73,000 of them, test/bench/CONSOLE.md); here they are a few MB.
CREATE TABLE leadintake.open_failures (
    log_id       bigint PRIMARY KEY,
    status       integer NOT NULL,
    error        text,
    agent        text,
    received_at  timestamptz NOT NULL
);
COMMENT ON TABLE leadintake.open_failures IS
    'Internal: the intake_log rows answered 4xx and not replayed, kept by the log writer and the log''s triggers';
CREATE INDEX open_failures_agent_idx ON leadintake.open_failures (agent);
SELECT pg_catalog.pg_extension_config_dump('leadintake.open_failures', '');
INSERT INTO leadintake.open_failures
SELECT id, status, error, leadintake.asked_agent(payload), received_at FROM leadintake.intake_log
 WHERE status >= 400 AND status < 500;

-- A row's change, as the triggers' WHEN clauses let through: its old entry goes, the new one
-- comes when the row is an open failure. SECURITY DEFINER: whoever may write the log.
CREATE FUNCTION leadintake.open_failures_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM leadintake.open_failures WHERE log_id = OLD.id;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status >= 400 AND NEW.status < 500
       AND NEW.replayed_by IS NULL THEN
        INSERT INTO leadintake.open_failures (log_id, status, error, agent, received_at)
        VALUES (NEW.id, NEW.status, NEW.error, leadintake.asked_agent(NEW.payload), NEW.received_at);
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION leadintake.open_failures_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    TRUNCATE leadintake.open_failures;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION leadintake.open_failures_sync() FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.open_failures_truncate() FROM PUBLIC;
-- The extension's log writer adds a 4xx itself (extension/log.c): an insert trigger's WHEN
-- clause would cost every logged row. These follow what else changes a row: a replay, a
-- DBA's UPDATE, purge_log's DELETE, a TRUNCATE.
CREATE TRIGGER open_failures_update AFTER UPDATE ON leadintake.intake_log FOR EACH ROW
    WHEN ((OLD.status >= 400 AND OLD.status < 500 AND OLD.replayed_by IS NULL)
          OR (NEW.status >= 400 AND NEW.status < 500 AND NEW.replayed_by IS NULL))
    EXECUTE FUNCTION leadintake.open_failures_sync();
CREATE TRIGGER open_failures_delete AFTER DELETE ON leadintake.intake_log FOR EACH ROW
    WHEN (OLD.status >= 400 AND OLD.status < 500 AND OLD.replayed_by IS NULL)
    EXECUTE FUNCTION leadintake.open_failures_sync();
CREATE TRIGGER open_failures_truncate AFTER TRUNCATE ON leadintake.intake_log
    FOR EACH STATEMENT EXECUTE FUNCTION leadintake.open_failures_truncate();

-- ---------------------------------------------------------------- argument helpers
-- args must be an object with no key outside allowed (NULL counts as {}).
CREATE FUNCTION leadintake.console_args(args jsonb, allowed text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k text;
BEGIN
    IF args IS NULL THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(args) <> 'object' THEN
        RAISE EXCEPTION 'console arguments must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(args) LOOP
        IF NOT k = ANY (allowed) THEN
            RAISE EXCEPTION 'unknown argument "%"', k
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = CASE WHEN cardinality(allowed) = 0 THEN 'This call takes no argument.'
                                    ELSE format('Its arguments are %s.', array_to_string(allowed, ', ')) END;
        END IF;
    END LOOP;
    RETURN args;
END $$;

-- An integer argument from lo to hi, as a JSON number or a decimal string (a query string's
-- values are strings); NULL when absent or null.
CREATE FUNCTION leadintake.console_int(args jsonb, name text, lo bigint, hi bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v jsonb := args -> name;
    t text;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    t := btrim(v #>> '{}');
    IF jsonb_typeof(v) IN ('number', 'string') AND t ~ '^[0-9]{1,18}$'
       AND t::bigint BETWEEN lo AND hi THEN
        RETURN t::bigint;
    END IF;
    RAISE EXCEPTION 'argument "%" must be an integer from % to %', name, lo, hi
        USING ERRCODE = 'invalid_parameter_value';
END $$;

-- A text argument (a JSON string); NULL when absent or null.
CREATE FUNCTION leadintake.console_text(args jsonb, name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF args -> name IS NULL OR jsonb_typeof(args -> name) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(args -> name) <> 'string' THEN
        RAISE EXCEPTION 'argument "%" must be a string', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN args ->> name;
END $$;

-- A required argument was not given.
CREATE FUNCTION leadintake.console_required(value anyelement, name text) RETURNS anyelement
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION 'argument "%" is required', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN value;
END $$;

-- Times as the console shows them: ISO 8601 in UTC, milliseconds, whatever the session's TimeZone.
CREATE FUNCTION leadintake.console_time(t timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN pg_catalog.to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

-- One intake_log row as the requests page lists it. A quoted body, not RETURN: a stored body
-- would hold the table's row type, and a DBA could no longer add a column to the log.
CREATE FUNCTION leadintake.console_row(l leadintake.intake_log) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'id', l.id, 'received_at', leadintake.console_time(l.received_at), 'source', l.source,
        'key_name', l.key_name, 'status', l.status, 'agent', leadintake.asked_agent(l.payload),
        'lead_id', l.lead_id, 'created', l.created, 'error', l.error, 'replayed_by', l.replayed_by)
$$;

-- ---------------------------------------------------------------- requests
-- The page's rows, newest first; a filtered call reads at most 10,000 rows of the log and
-- says how many it read (docs/console.md, "Speed").
CREATE FUNCTION leadintake.console_requests(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['status', 'agent', 'q', 'before', 'after', 'limit']);
    status_arg text := coalesce(a #>> '{status}', 'all');
    agent text := leadintake.console_text(a, 'agent');
    q text := lower(leadintake.console_text(a, 'q'));
    before_id bigint := leadintake.console_int(a, 'before', 1, 9223372036854775807);
    after_id bigint := leadintake.console_int(a, 'after', 0, 9223372036854775807);
    page_size integer := coalesce(leadintake.console_int(a, 'limit', 1, 200), 50);
    search_bound constant integer := 10000;
    status_sql text;
    page jsonb[] := '{}';
    last_kept bigint;
    last_read bigint;
    n_read integer := 0;
    next_before bigint;
    filtered boolean;
    r record;
BEGIN
    IF jsonb_typeof(a -> 'status') NOT IN ('string', 'number', 'null') THEN
        RAISE EXCEPTION 'argument "status" must be a string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    status_sql := CASE status_arg
        WHEN 'all' THEN 'true'
        WHEN 'ok' THEN 'l.status >= 200 AND l.status < 300'
        WHEN 'failed' THEN 'l.status >= 400'
        WHEN '4xx' THEN 'l.status >= 400 AND l.status < 500'
        WHEN '5xx' THEN 'l.status >= 500 AND l.status < 600'
        ELSE CASE WHEN status_arg ~ '^[1-5][0-9][0-9]$' THEN 'l.status = ' || status_arg END
    END;
    IF status_sql IS NULL THEN
        RAISE EXCEPTION 'argument "status" must be all, ok, failed, 4xx, 5xx or a status code'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF q = '' THEN
        q := NULL;
    END IF;
    filtered := status_arg <> 'all' OR agent IS NOT NULL OR q IS NOT NULL;

    -- newest first by the primary key; the filters are tested on each row read, so that a
    -- filtered call reads at most search_bound rows however rare its matches are
    FOR r IN EXECUTE format(
        $q$SELECT l AS entry, l.id,
                  (%s) AND ($1 IS NULL OR leadintake.asked_agent(l.payload) = $1)
                  AND ($4 IS NULL OR strpos(lower(concat_ws(' ', l.error, l.key_name,
                                                            l.payload::text, l.raw_body)), $4) > 0)
                  AS hit
             FROM leadintake.intake_log l
            WHERE ($2 IS NULL OR l.id < $2) AND ($3 IS NULL OR l.id > $3)
            ORDER BY l.id DESC LIMIT $5$q$, status_sql)
        USING agent, before_id, after_id, q, CASE WHEN filtered THEN search_bound ELSE page_size + 1 END
    LOOP
        n_read := n_read + 1;
        last_read := r.id;
        CONTINUE WHEN r.hit IS NOT TRUE;  -- NULL: no agent, no error text
        IF cardinality(page) = page_size THEN
            next_before := last_kept;  -- one more matches: there is an older page
            EXIT;
        END IF;
        page := page || leadintake.console_row(r.entry);
        last_kept := r.id;
    END LOOP;
    -- the search stopped at its bound: the next page goes on from the last row it read
    IF next_before IS NULL AND filtered AND n_read = search_bound THEN
        next_before := last_read;
    END IF;

    RETURN jsonb_build_object(
        'rows', to_jsonb(page),
        'next_before', next_before,
        'newest_id', (SELECT max(l.id) FROM leadintake.intake_log l))
        || CASE WHEN filtered THEN jsonb_build_object('searched', n_read) ELSE '{}'::jsonb END;
END $$;

-- One request with its payload, its field reasons, its lead and its replays.
CREATE FUNCTION leadintake.console_request(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['id']);
    log_id bigint := leadintake.console_required(leadintake.console_int(a, 'id', 1, 9223372036854775807), 'id');
    l leadintake.intake_log;
BEGIN
    SELECT * INTO l FROM leadintake.intake_log WHERE id = log_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'request % does not exist', log_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN jsonb_build_object(
        'request', leadintake.console_row(l) || jsonb_build_object(
            'payload', l.payload, 'raw_body', l.raw_body, 'duration_ms', l.duration_ms,
            'client_addr', host(l.client_addr),
            'replay_of', l.replay_of),
        'reasons', CASE WHEN l.payload IS NULL THEN '{}'::jsonb ELSE leadintake.check_payload(l.payload) END,
        'lead', (SELECT to_jsonb(d) || jsonb_build_object('assigned_agent_username', g.username)
                   FROM leadintake.leads d LEFT JOIN leadintake.agents g ON g.id = d.assigned_agent_id
                  WHERE d.id = l.lead_id),
        -- the replay of this request, the replay of that one, ... (at most 100)
        'replays', (WITH RECURSIVE chain (id, depth) AS (
                        SELECT l.replayed_by, 1 WHERE l.replayed_by IS NOT NULL
                        UNION ALL
                        SELECT o.replayed_by, c.depth + 1 FROM chain c
                          JOIN leadintake.intake_log o ON o.id = c.id
                         WHERE o.replayed_by IS NOT NULL AND c.depth < 100)
                    SELECT coalesce(jsonb_agg(c.id ORDER BY c.depth), '[]') FROM chain c));
END $$;

-- ---------------------------------------------------------------- failures and replays
-- Open failures (4xx, not replayed), grouped by error and agent asked for: the 200 largest.
CREATE FUNCTION leadintake.console_failures(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM leadintake.console_args(args, '{}');
    RETURN jsonb_build_object('groups', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'status', g.status, 'error', g.error, 'agent', g.agent, 'count', g.n,
                   'first_at', leadintake.console_time(g.first_at),
                   'last_at', leadintake.console_time(g.last_at), 'latest_id', g.latest_id)
                   ORDER BY g.n DESC, g.latest_id DESC)
          FROM (SELECT min(f.status) AS status, f.error, f.agent, count(*) AS n,
                       min(f.received_at) AS first_at, max(f.received_at) AS last_at,
                       max(f.log_id) AS latest_id
                  FROM leadintake.open_failures f
                 GROUP BY f.error, f.agent
                 ORDER BY n DESC, latest_id DESC LIMIT 200) AS g), '[]'));
END $$;

-- Replays one locked open row (the caller checked it) and marks it replayed.
CREATE FUNCTION leadintake.console_replay_row(log_id bigint, OUT status integer,
                                              OUT response jsonb, OUT id bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT r.status, r.response, r.id INTO status, response, id
      FROM leadintake.replay_outcome(log_id) AS r;
    UPDATE leadintake.intake_log l SET replayed_by = console_replay_row.id WHERE l.id = log_id;
    UPDATE leadintake.intake_log l SET replay_of = log_id WHERE l.id = console_replay_row.id;
END $$;

CREATE FUNCTION leadintake.console_replay(args jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['id']);
    log_id bigint := leadintake.console_required(leadintake.console_int(a, 'id', 1, 9223372036854775807), 'id');
    l leadintake.intake_log;
    r record;
BEGIN
    -- locked: two consoles replaying one request wait for each other, the second gets 55000
    SELECT * INTO l FROM leadintake.intake_log WHERE id = log_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'request % does not exist', log_id USING ERRCODE = 'no_data_found';
    END IF;
    IF l.replayed_by IS NOT NULL THEN
        RAISE EXCEPTION 'request % was already replayed', log_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its replay is request %s.', l.replayed_by);
    END IF;
    IF l.status < 400 THEN
        RAISE EXCEPTION 'request % did not fail', log_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It was answered %s; only a failed request is replayed.', l.status);
    END IF;
    SELECT * INTO r FROM leadintake.console_replay_row(log_id);
    RETURN jsonb_build_object('id', r.id, 'status', r.status, 'response', r.response);
END $$;

-- Up to 500 open rows of one group, oldest first. The group's rows fail for one cause, so
-- the first replay that fails again stops the call: its cause is not fixed.
CREATE FUNCTION leadintake.console_replay_group(args jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['error', 'agent']);
    err text := leadintake.console_required(leadintake.console_text(a, 'error'), 'error');
    asked text := leadintake.console_text(a, 'agent');
    batch constant integer := 500;
    n_ok integer := 0;
    n_failed integer := 0;
    stopped_at bigint;
    more boolean;
    row_id bigint;
    r record;
BEGIN
    FOR row_id IN
        SELECT l.id FROM leadintake.intake_log l
         WHERE l.id IN (SELECT f.log_id FROM leadintake.open_failures f
                         WHERE f.error = err AND f.agent IS NOT DISTINCT FROM asked)
           AND l.replayed_by IS NULL AND l.payload IS NOT NULL
         ORDER BY l.id LIMIT batch FOR UPDATE OF l SKIP LOCKED
    LOOP
        SELECT * INTO r FROM leadintake.console_replay_row(row_id);
        IF r.status < 400 THEN
            n_ok := n_ok + 1;
        ELSE
            n_failed := n_failed + 1;
            stopped_at := r.id;
            EXIT;
        END IF;
    END LOOP;
    more := stopped_at IS NULL AND EXISTS (
        SELECT 1 FROM leadintake.open_failures f JOIN leadintake.intake_log l ON l.id = f.log_id
         WHERE f.error = err AND f.agent IS NOT DISTINCT FROM asked AND l.payload IS NOT NULL);
    RETURN jsonb_build_object('replayed', n_ok + n_failed, 'ok', n_ok, 'failed', n_failed,
                              'more', more, 'stopped_at', stopped_at);
END $$;

-- ---------------------------------------------------------------- agents
-- An agent as the console shows it, with the open failures that asked for it.
CREATE FUNCTION leadintake.console_agent_json(g leadintake.agents) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'id', g.id, 'username', g.username, 'display_name', g.display_name,
        'dialer_user_id', g.dialer_user_id, 'active', g.active,
        'created_at', leadintake.console_time(g.created_at),
        'open_failures', (SELECT count(*) FROM leadintake.open_failures f
                           WHERE f.agent IN (g.username, g.dialer_user_id)))
$$;

CREATE FUNCTION leadintake.console_agents(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM leadintake.console_args(args, '{}');
    RETURN jsonb_build_object('agents', coalesce((
        -- MATERIALIZED: once, not once per agent
        WITH open AS MATERIALIZED (
            SELECT f.agent, count(*) AS n FROM leadintake.open_failures f GROUP BY 1)
        SELECT jsonb_agg(jsonb_build_object(
                   'id', g.id, 'username', g.username, 'display_name', g.display_name,
                   'dialer_user_id', g.dialer_user_id, 'active', g.active,
                   'created_at', leadintake.console_time(g.created_at),
                   'open_failures', (SELECT coalesce(sum(o.n), 0) FROM open o
                                      WHERE o.agent IN (g.username, g.dialer_user_id)))
                   ORDER BY g.username)
          FROM leadintake.agents g), '[]'));
END $$;

-- username, display_name and dialer_user_id as the console takes them: text without
-- surrounding spaces, within the intake's limit for an identity (100); "" clears an optional one.
CREATE FUNCTION leadintake.console_agent_value(a jsonb, name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text := leadintake.console_text(a, name);
BEGIN
    IF v = '' AND name <> 'username' THEN
        RETURN NULL;
    END IF;
    IF v IS NOT NULL AND (v = '' OR v <> btrim(v) OR length(v) > 100) THEN
        RAISE EXCEPTION 'argument "%" must be 1 to 100 characters without surrounding spaces', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v;
END $$;

-- A unique violation on agents, said as the console's user sees it.
CREATE FUNCTION leadintake.console_agent_taken(a jsonb, constraint_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF constraint_name = 'agents_dialer_user_id_key' THEN
        RAISE EXCEPTION 'dialer user id "%" belongs to another agent', a ->> 'dialer_user_id'
            USING ERRCODE = 'unique_violation';
    END IF;
    RAISE EXCEPTION 'username "%" belongs to another agent', a ->> 'username'
        USING ERRCODE = 'unique_violation';
END $$;

CREATE FUNCTION leadintake.console_agent_add(args jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['username', 'display_name', 'dialer_user_id']);
    g leadintake.agents;
    c text;
BEGIN
    INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
    VALUES (leadintake.console_required(leadintake.console_agent_value(a, 'username'), 'username'),
            leadintake.console_agent_value(a, 'display_name'),
            leadintake.console_agent_value(a, 'dialer_user_id'))
    RETURNING * INTO g;
    RETURN jsonb_build_object('agent', leadintake.console_agent_json(g));
EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
    PERFORM leadintake.console_agent_taken(a, c);
    RETURN NULL;
END $$;

CREATE FUNCTION leadintake.console_agent_edit(args jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['id', 'username', 'display_name', 'dialer_user_id']);
    agent_id bigint := leadintake.console_required(leadintake.console_int(a, 'id', 1, 9223372036854775807), 'id');
    g leadintake.agents;
    c text;
BEGIN
    IF a ? 'username' THEN
        PERFORM leadintake.console_required(leadintake.console_agent_value(a, 'username'), 'username');
    END IF;
    UPDATE leadintake.agents SET
        username = CASE WHEN a ? 'username' THEN leadintake.console_agent_value(a, 'username') ELSE username END,
        display_name = CASE WHEN a ? 'display_name' THEN leadintake.console_agent_value(a, 'display_name') ELSE display_name END,
        dialer_user_id = CASE WHEN a ? 'dialer_user_id' THEN leadintake.console_agent_value(a, 'dialer_user_id') ELSE dialer_user_id END
     WHERE id = agent_id
    RETURNING * INTO g;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent % does not exist', agent_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN jsonb_build_object('agent', leadintake.console_agent_json(g));
EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
    PERFORM leadintake.console_agent_taken(a, c);
    RETURN NULL;
END $$;

CREATE FUNCTION leadintake.console_agent_active(args jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['id', 'active']);
    agent_id bigint := leadintake.console_required(leadintake.console_int(a, 'id', 1, 9223372036854775807), 'id');
    active_arg text := lower(leadintake.console_required(a #>> '{active}', 'active'));
    g leadintake.agents;
BEGIN
    IF jsonb_typeof(a -> 'active') NOT IN ('boolean', 'string') OR active_arg NOT IN ('true', 'false') THEN
        RAISE EXCEPTION 'argument "active" must be true or false'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE leadintake.agents SET active = active_arg::boolean WHERE id = agent_id RETURNING * INTO g;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent % does not exist', agent_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN jsonb_build_object('agent', leadintake.console_agent_json(g));
END $$;

-- ---------------------------------------------------------------- health and set-up
-- Requests and failures (status >= 400) per minute over the last hour: 60 minutes, oldest
-- first, the current minute last, empty minutes as zeros.
CREATE FUNCTION leadintake.console_health(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    this_minute timestamptz := date_trunc('minute', now());
BEGIN
    PERFORM leadintake.console_args(args, '{}');
    RETURN (
        WITH per_minute AS (
            SELECT date_trunc('minute', l.received_at) AS minute, count(*) AS requests,
                   count(*) FILTER (WHERE l.status >= 400) AS failures
              FROM leadintake.intake_log l
             WHERE l.received_at >= this_minute - interval '59 minutes'
             GROUP BY 1),
        minutes AS (
            SELECT m.minute, coalesce(p.requests, 0) AS requests, coalesce(p.failures, 0) AS failures
              FROM generate_series(this_minute - interval '59 minutes', this_minute, interval '1 minute') AS m (minute)
              LEFT JOIN per_minute p ON p.minute = m.minute)
        SELECT jsonb_build_object(
                   'minutes', jsonb_agg(jsonb_build_object('minute', leadintake.console_time(m.minute),
                                                           'requests', m.requests, 'failures', m.failures)
                                        ORDER BY m.minute),
                   'requests', sum(m.requests), 'failures', sum(m.failures),
                   'last_request_at', leadintake.console_time((SELECT max(l.received_at) FROM leadintake.intake_log l)))
          FROM minutes m);
END $$;

-- The Dispo Call URL and Web Form URL of docs/vicidial.md for base_url, built from the field
-- table (leadintake.fields()) where VICIdial's variable list differs from it: user first (the
-- agent's login; dialer_user_id is not sent), no full_name, phone or notes (VICIdial has no
-- such variable; its fullname is the agent's name), email right after alt_phone,
-- recording_file under its alias recording_filename, and VICIdial's dispo last (kept in extra).
CREATE FUNCTION leadintake.console_setup(args jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a jsonb := leadintake.console_args(args, ARRAY['base_url']);
    base_url text := leadintake.console_required(leadintake.console_text(a, 'base_url'), 'base_url');
    params jsonb;
    query text;
BEGIN
    IF base_url !~ '^https?://[^/?#[:space:]]+(/[^?#[:space:]]*)?$' THEN
        RAISE EXCEPTION 'argument "base_url" must be an http or https URL without query or fragment'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH f AS (
        SELECT f.json_key, f.kind, f.n FROM leadintake.fields() WITH ORDINALITY AS f (json_key, column_name, max_length, kind, n)
    ), vicidial (field, name, after) AS (
        VALUES ('user', 'user', NULL), ('dialer_user_id', NULL, NULL), ('full_name', NULL, NULL),
               ('phone', NULL, NULL), ('notes', NULL, NULL), ('email', 'email', 'alt_phone'),
               ('recording_file', 'recording_filename', NULL)
    ), sent AS (
        SELECT coalesce(v.name, f.json_key) AS name, f.json_key AS field,
               CASE WHEN f.json_key = 'user' THEN 0
                    WHEN v.after IS NOT NULL THEN (SELECT p.n FROM f p WHERE p.json_key = v.after) + 0.5
                    ELSE f.n END AS place
          FROM f LEFT JOIN vicidial v ON v.field = f.json_key
         WHERE f.kind NOT LIKE 'alias of %' AND (v.field IS NULL OR v.name IS NOT NULL)
        UNION ALL
        SELECT 'dispo', NULL, 1e9)
    SELECT jsonb_agg(jsonb_build_object('name', s.name, 'value', '--A--' || s.name || '--B--', 'field', s.field)
                     ORDER BY s.place),
           string_agg(s.name || '=--A--' || s.name || '--B--', '&' ORDER BY s.place)
      INTO params, query FROM sent s;
    RETURN jsonb_build_object(
        'dispo_url', base_url || '?api_key=YOUR_KEY&' || query,
        'webform_url', base_url || '?api_key=YOUR_KEY&' || query || '&redirect=1',
        'fields', params);
END $$;

-- ---------------------------------------------------------------- privileges
-- The helpers run inside the console functions, as the extension's owner: nobody else's.
REVOKE ALL ON FUNCTION leadintake.console_args(jsonb, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_int(jsonb, text, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_text(jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_required(anyelement, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_time(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_row(leadintake.intake_log) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_replay_row(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_agent_json(leadintake.agents) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_agent_value(jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.console_agent_taken(jsonb, text) FROM PUBLIC;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['requests', 'request', 'failures', 'replay', 'replay_group', 'agents',
                             'agent_add', 'agent_edit', 'agent_active', 'health', 'setup'] LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION leadintake.%I(jsonb) FROM PUBLIC', 'console_' || f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION leadintake.%I(jsonb) TO leadintake_console',
                                  'console_' || f);
        EXECUTE pg_catalog.format('COMMENT ON FUNCTION leadintake.%I(jsonb) IS %L', 'console_' || f,
                                  'The console''s ' || pg_catalog.replace(f, '_', '-') || ' (docs/console.md)');
    END LOOP;
END $$;
