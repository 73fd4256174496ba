-- leadintake 1.3 -> 1.4: the shim's entry learns where the request's key came from
-- (contract section 7, issue 13 item 6). A key in the URL (--allow-query-key) is known to
-- every agent's browser: such a request gets a minimal success body, id, status, the
-- agent's username and the fields it sent itself, never stored data it did not send.
\echo Use "ALTER EXTENSION leadintake UPDATE" to load this file. \quit

-- The same C entry with a fourth argument; minimal NULL counts as true (the safe side).
CREATE FUNCTION leadintake.http_intake(body bytea, key_name text, client_addr inet,
                                       minimal boolean,
                                       OUT status integer, OUT response jsonb,
                                       OUT dashboard_query text)
    AS 'MODULE_PATHNAME', 'leadintake_http_intake' LANGUAGE C VOLATILE SECURITY DEFINER;
COMMENT ON FUNCTION leadintake.http_intake(bytea, text, inet, boolean) IS
    'The shim''s entry; minimal: the key came in the URL, so the lead shows only what the request sent';
REVOKE ALL ON FUNCTION leadintake.http_intake(bytea, text, inet, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION leadintake.http_intake(bytea, text, inet, boolean) TO leadintake_shim;

-- The three-argument entry stays, with the whole lead as before: a shim built before 1.4
-- keeps working while the database is updated first. It cannot tell a URL key from a
-- header key, so update the shim too (its 1.4 build calls the four-argument entry).
COMMENT ON FUNCTION leadintake.http_intake(bytea, text, inet) IS
    'The shim''s entry before 1.4: the whole lead, as for a header key; shims since 1.4 call http_intake(bytea, text, inet, boolean)';

-- The shim's spool (contract section 8): a request written to disk while the database was
-- away is sent later through this entry, logged with source 'spool', its original receive
-- time, client address and key name.
ALTER DOMAIN leadintake.intake_source DROP CONSTRAINT intake_source_check;
ALTER DOMAIN leadintake.intake_source ADD CONSTRAINT intake_source_check
    CHECK (VALUE IN ('http', 'sql', 'inbox', 'replay', 'spool'));
CREATE FUNCTION leadintake.spool_intake(body bytea, key_name text, client_addr inet,
                                        minimal boolean, received_at timestamptz,
                                        OUT status integer, OUT response jsonb,
                                        OUT dashboard_query text)
    AS 'MODULE_PATHNAME', 'leadintake_http_intake' LANGUAGE C VOLATILE SECURITY DEFINER;
COMMENT ON FUNCTION leadintake.spool_intake(bytea, text, inet, boolean, timestamptz) IS
    'The shim''s entry for a spooled request: http_intake, logged as source spool at its receive time';
REVOKE ALL ON FUNCTION leadintake.spool_intake(bytea, text, inet, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION leadintake.spool_intake(bytea, text, inet, boolean, timestamptz)
    TO leadintake_shim;
