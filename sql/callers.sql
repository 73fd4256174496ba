-- Contract section 1: the callers and their entry points run one core.
\i sql/setup.inc

-- A DBA calls it unqualified with the default search_path.
SHOW search_path;
SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "C1"}'::jsonb)->>'message';

-- A caller's search_path cannot redirect anything: not tables, functions nor operators.
CREATE SCHEMA trap;
CREATE TABLE trap.leads (LIKE leadintake.leads);
CREATE TABLE trap.agents (LIKE leadintake.agents);
CREATE FUNCTION trap.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'agent1' $$;
CREATE FUNCTION trap.texteq_trap(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trap.texteq_trap);
CREATE FUNCTION trap.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
SET search_path = trap, pg_catalog, public;
SELECT leadintake_from_dialer('{"user": "AGENT2", "lead_id": "C2"}'::jsonb)->'lead'->>'assigned_agent_username';
SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "C1", "city": "Hull"}'::jsonb)->>'message';
SELECT count(*) AS trap_leads FROM trap.leads;
RESET search_path;
SELECT dialer_lead_id, city, updated_at > '2001-01-01' AS real_now FROM leadintake.leads ORDER BY id;
DROP SCHEMA trap CASCADE;

-- The shim's entry and the SQL entry give the same lead and the same body.
SELECT (leadintake_from_dialer('{"user": "agent1", "lead_id": "C3", "first_name": "Same"}'::jsonb) #- '{lead,updated_at}')
     = ((SELECT response FROM leadintake.http_intake(
            convert_to('{"user": "agent1", "lead_id": "C3", "first_name": "Same"}', 'UTF8'), NULL, NULL))
        #- '{lead,updated_at}' || '{"created": true, "message": "Lead created successfully"}') AS same_body;

-- Every intake is logged with its source; the shim's with its key name and address.
SELECT source, key_name, client_addr, status, payload->>'lead_id' AS lead_id
  FROM leadintake.intake_log ORDER BY id;
SELECT status FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "C4"}', 'UTF8'),
                                          'dialer-main', '2001:db8::7');
SELECT source, key_name, client_addr FROM leadintake.intake_log ORDER BY id DESC LIMIT 1;

-- Applications enqueue in the inbox; secrets they write are removed on insert and update.
INSERT INTO leadintake.inbox (payload) VALUES
    ('{"user": "agent1", "lead_id": "Q1", "api_key": "s1", "Phone_Pass": "s2", "note": "kept"}');
UPDATE leadintake.inbox SET payload = payload || '{"PASS": "s3"}';
SELECT payload, status, processed_at FROM leadintake.inbox;

-- The shim's entry is not for PUBLIC; the DBA's entry is callable by roles with table rights.
CREATE ROLE regress_li_nobody;
\set VERBOSITY terse
SET ROLE regress_li_nobody;
SELECT * FROM leadintake.http_intake(convert_to('{}', 'UTF8'), NULL, NULL);
SELECT leadintake_from_dialer('{"user": "agent1"}'::jsonb);
RESET ROLE;
\set VERBOSITY default
DROP ROLE regress_li_nobody;
