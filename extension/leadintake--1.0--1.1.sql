-- leadintake 1.0 -> 1.1: database jobs and operations. A fresh CREATE EXTENSION runs
-- 1.0 and then this script, so a new 1.1 and an updated one are the same objects.

\echo Use "ALTER EXTENSION leadintake UPDATE TO '1.1'" to load this file. \quit

-- Inbox: other applications enqueue; a job drains (contract section 1).
CREATE FUNCTION leadintake.process_inbox(batch_size integer,
                                         OUT inbox_id bigint, OUT status integer,
                                         OUT lead_id bigint, OUT error text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'leadintake_process_inbox' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION leadintake.process_inbox(integer) IS
    'Process up to batch_size pending inbox rows, oldest first, each in its own subtransaction';

-- pg_cron 1.4 schedules by the minute: one job a minute keeps draining for most of it,
-- committing each batch, so enqueued rows wait seconds, not a minute.
-- No SET clause (it would forbid the COMMIT): every name inside is schema-qualified.
CREATE PROCEDURE leadintake.drain_inbox(batch_size integer DEFAULT 1000,
                                        run_for interval DEFAULT '55 seconds',
                                        pause interval DEFAULT '2 seconds')
LANGUAGE plpgsql AS $$
DECLARE
    stop_at timestamptz := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) run_for;
    done bigint;
BEGIN
    LOOP
        SELECT pg_catalog.count(*) INTO done FROM leadintake.process_inbox(batch_size);
        COMMIT;
        EXIT WHEN pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>=) stop_at;
        IF done OPERATOR(pg_catalog.<) batch_size THEN
            PERFORM pg_catalog.pg_sleep(least(
                pg_catalog.date_part('epoch', pause),
                pg_catalog.date_part('epoch', stop_at OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())));
        END IF;
        EXIT WHEN pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>=) stop_at;
    END LOOP;
END $$;

-- Run a logged request again (source 'replay'), e.g. once the missing agent exists.
CREATE FUNCTION leadintake.replay(log_id bigint) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'leadintake_replay' LANGUAGE C STRICT VOLATILE;

-- Retention: old log rows go in batches; leads are never touched.
CREATE FUNCTION leadintake.purge_log(older_than interval) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    total bigint := 0;
    batch bigint;
BEGIN
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        DELETE FROM leadintake.intake_log
         WHERE id IN (SELECT id FROM leadintake.intake_log
                       WHERE received_at < now() - older_than
                       ORDER BY id LIMIT 10000);
        GET DIAGNOSTICS batch = ROW_COUNT;
        total := total + batch;
        EXIT WHEN batch < 10000;
    END LOOP;
    RETURN total;
END $$;
-- STRICT: a NULL interval purges nothing.
ALTER FUNCTION leadintake.purge_log(interval) STRICT;

-- Roles (cluster-wide, so made only where missing; DROP EXTENSION leaves them).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['leadintake_shim', 'leadintake_enqueue', 'leadintake_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;
COMMENT ON ROLE leadintake_shim IS 'leadintake: may call leadintake.http_intake, nothing else';
COMMENT ON ROLE leadintake_enqueue IS 'leadintake: may enqueue into leadintake.inbox';
COMMENT ON ROLE leadintake_reader IS 'leadintake: may read agents, leads, intake_log and inbox';

GRANT USAGE ON SCHEMA leadintake TO leadintake_shim, leadintake_enqueue, leadintake_reader;

-- The shim reaches the tables only through its entry, which runs as the extension's owner.
ALTER FUNCTION leadintake.http_intake(bytea, text, inet) SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION leadintake.http_intake(bytea, text, inet) TO leadintake_shim;

-- Applications insert payloads and can follow their own rows' outcome (not others' payloads).
GRANT INSERT ON leadintake.inbox TO leadintake_enqueue;
GRANT SELECT (id, enqueued_at, processed_at, status, error, lead_id) ON leadintake.inbox
    TO leadintake_enqueue;

GRANT SELECT ON leadintake.agents, leadintake.leads, leadintake.intake_log, leadintake.inbox
    TO leadintake_reader;

REVOKE ALL ON FUNCTION leadintake.process_inbox(integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE leadintake.drain_inbox(integer, interval, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.replay(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION leadintake.purge_log(interval) FROM PUBLIC;
