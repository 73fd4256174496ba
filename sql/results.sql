-- Contract section 6: results and errors.
\i sql/setup.inc

-- Success: 201 for create and update, the whole lead, absent fields null.
SELECT jsonb_pretty(b - 'lead' || jsonb_build_object('lead', (b->'lead') - 'created_at' - 'updated_at'))
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "DIALER_12345",
    "first_name": "John", "middle_initial": "A", "last_name": "Smith",
    "phone_number": "+44123456789", "email": "john@example.com", "date_of_birth": "1980-01-15",
    "SQLdate": "2024-01-15 10:30:00", "epoch": 1705314600, "server_ip": "10.1.1.20",
    "gmt_offset_now": "-5.00", "group": "SALES", "SIPexten": "SIP/100"}'::jsonb) b;
SELECT b->'success' AS success, b->'created' AS created, b->>'message' AS message,
       jsonb_typeof(b->'lead'->'id') AS id_type
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "DIALER_12345"}'::jsonb) b;
-- Timestamps: ISO 8601 in UTC with Z, whatever the session's time zone and date style.
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SELECT b->'lead'->>'created_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' AS iso_utc,
       (b->'lead'->>'created_at')::timestamptz = date_trunc('second', l.created_at) AS same_instant,
       b->'lead'->>'date_of_birth' AS dob, b->'lead'->>'SQLdate' AS sqldate
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "DIALER_12345"}'::jsonb) b
  JOIN leadintake.leads l ON l.dialer_lead_id = 'DIALER_12345';
RESET TimeZone;
RESET DateStyle;

-- Errors through the shim's entry: the status and {"error": ..., "details": ...}.
SELECT status, response, dashboard_query FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "email": "x", "epoch": "y"}', 'UTF8'), 'k', '192.0.2.1');
SELECT status, response FROM leadintake.http_intake(convert_to('{"first_name": "a"}', 'UTF8'), 'k', NULL);
SELECT status, response FROM leadintake.http_intake(convert_to('[1, 2]', 'UTF8'), 'k', NULL);
SELECT status, response FROM leadintake.http_intake(convert_to('"text"', 'UTF8'), 'k', NULL);
SELECT status, response FROM leadintake.http_intake(convert_to('{"user": ', 'UTF8'), 'k', NULL);
SELECT status, response FROM leadintake.http_intake(''::bytea, 'k', NULL);
SELECT status, response FROM leadintake.http_intake(NULL, 'k', NULL);
SELECT status, response FROM leadintake.http_intake(convert_to('{"user": "nobody"}', 'UTF8'), 'k', NULL);
-- Success through the shim's entry, with the dashboard query string.
SELECT status, response->>'message' AS message, dashboard_query FROM leadintake.http_intake(
    convert_to('{"user": "agent2", "lead_id": "WEB1", "first_name": "Zoë", "last_name": "O''Neil",
                 "phone_number": "+44 20 7946 0000", "notes": "call after 5 & ask for Bob"}', 'UTF8'),
    'k', NULL);
SELECT status, response->>'message' AS message FROM leadintake.http_intake(
    convert_to('{"user": "agent2", "lead_id": "WEB1"}', 'UTF8'), 'k', NULL);

-- From SQL, each failure raises with its SQLSTATE, so callers can catch it.
DO $$
BEGIN
    PERFORM leadintake_from_dialer('{"user": "agent1", "email": "x"}'::jsonb);
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'caught 22023: %', SQLERRM;
END $$;
DO $$
BEGIN
    PERFORM leadintake_from_dialer('{"user": "agent9"}'::jsonb);
EXCEPTION WHEN no_data_found THEN
    RAISE NOTICE 'caught P0002: %', SQLERRM;
END $$;
DO $$
BEGIN
    PERFORM leadintake_from_dialer('[]'::jsonb);
EXCEPTION WHEN data_exception THEN
    RAISE NOTICE 'caught class 22: %', SQLERRM;
END $$;
-- A NULL payload is no call at all (the function is strict).
SELECT leadintake_from_dialer(NULL::jsonb) IS NULL AS null_in_null_out;

-- Every request through the shim's entry is logged with its outcome.
SELECT source, key_name, client_addr, status, error, lead_id IS NOT NULL AS has_lead, created,
       duration_ms >= 0 AS timed, payload IS NOT NULL AS has_payload, raw_body
  FROM leadintake.intake_log WHERE source = 'http' ORDER BY id;

-- A body that is not JSON is kept in raw_body, with its secrets redacted even there.
SELECT status FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "api_key": "s3cr3t", "Pass" : "pw", oops', 'UTF8'), 'k', NULL);
SELECT raw_body FROM leadintake.intake_log ORDER BY id DESC LIMIT 1;
SELECT status FROM leadintake.http_intake(
    convert_to('user=agent1&API_KEY=s3cr3t&phone_pass=pw&password=kept', 'UTF8'), 'k', NULL);
SELECT raw_body FROM leadintake.intake_log ORDER BY id DESC LIMIT 1;

-- An unexpected failure is a logged 500 with generic text, and nothing half-written.
CREATE FUNCTION public.crm_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'CRM trigger bug with internal details';
END $$;
CREATE TRIGGER crm_trigger BEFORE INSERT OR UPDATE ON leadintake.leads
    FOR EACH ROW EXECUTE FUNCTION public.crm_trigger();
SELECT status, response FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "lead_id": "BOOM"}', 'UTF8'), 'k', NULL);
SELECT status, error, lead_id, payload FROM leadintake.intake_log ORDER BY id DESC LIMIT 1;
SELECT count(*) AS boom_leads FROM leadintake.leads WHERE dialer_lead_id = 'BOOM';
-- When the database cannot serve (read-only, out of disk, shutting down), the shim's entry
-- raises, so that the shim answers 503 and the client retries.
CREATE OR REPLACE FUNCTION public.crm_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction'
        USING ERRCODE = 'read_only_sql_transaction';
END $$;
\set VERBOSITY terse
SELECT status FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "lead_id": "BOOM"}', 'UTF8'), 'k', NULL);
\set VERBOSITY default
DROP TRIGGER crm_trigger ON leadintake.leads;
DROP FUNCTION public.crm_trigger();
SELECT status, response->>'message' AS message FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "lead_id": "BOOM"}', 'UTF8'), 'k', NULL);
