-- test/pgtap/schema.sql: the schema of contract section 2, its functions and privileges.
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind: this one runs in one
-- transaction that it rolls back. Run alone:
--   pg_prove -d DB test/pgtap/schema.sql      (DB with CREATE EXTENSION pgtap, dblink)
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(142);

-- Created with the default search_path, as a DBA would.
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;

SELECT has_extension('leadintake');
SELECT has_schema('leadintake');
SELECT has_table('leadintake', t, 'table leadintake.' || t || ' exists')
  FROM unnest(ARRAY['agents', 'leads', 'intake_log', 'inbox']) AS t;

-- Columns and types (contract section 2; the types of extension/leadintake--1.0.sql).
SELECT columns_are('leadintake', 'agents', ARRAY['id', 'username', 'display_name', 'dialer_user_id', 'active', 'created_at']);
SELECT col_type_is('leadintake', 'agents', 'id', 'bigint', 'agents.id is bigint');
SELECT col_type_is('leadintake', 'agents', 'username', 'text', 'agents.username is text');
SELECT col_type_is('leadintake', 'agents', 'display_name', 'text', 'agents.display_name is text');
SELECT col_type_is('leadintake', 'agents', 'dialer_user_id', 'text', 'agents.dialer_user_id is text');
SELECT col_type_is('leadintake', 'agents', 'active', 'boolean', 'agents.active is boolean');
SELECT col_type_is('leadintake', 'agents', 'created_at', 'timestamp with time zone', 'agents.created_at is timestamp with time zone');
SELECT columns_are('leadintake', 'leads', ARRAY['id', 'full_name', 'phone', 'phone_e164', 'email', 'status', 'assigned_agent_id', 'notes', 'comments', 'dialer_lead_id', 'vendor_id', 'list_id', 'gmt_offset_now', 'phone_code', 'phone_number', 'title', 'first_name', 'middle_initial', 'last_name', 'address1', 'address2', 'address3', 'city', 'state', 'province', 'postal_code', 'country_code', 'gender', 'date_of_birth', 'alt_phone', 'security_phrase', 'campaign', 'phone_login', 'fronter', 'closer', 'dialer_group', 'channel_group', 'sql_date', 'epoch', 'uniqueid', 'customer_zap_channel', 'server_ip', 'sip_exten', 'session_id', 'dialed_number', 'dialed_label', 'rank', 'owner', 'camp_script', 'in_script', 'script_width', 'script_height', 'recording_file', 'extra', 'created_at', 'updated_at', 'phone_valid']);
SELECT col_type_is('leadintake', 'leads', 'id', 'bigint', 'leads.id is bigint');
SELECT col_type_is('leadintake', 'leads', 'full_name', 'text', 'leads.full_name is text');
SELECT col_type_is('leadintake', 'leads', 'phone', 'text', 'leads.phone is text');
SELECT col_type_is('leadintake', 'leads', 'phone_e164', 'text', 'leads.phone_e164 is text');
SELECT col_type_is('leadintake', 'leads', 'email', 'text', 'leads.email is text');
SELECT col_type_is('leadintake', 'leads', 'status', 'text', 'leads.status is text');
SELECT col_type_is('leadintake', 'leads', 'assigned_agent_id', 'bigint', 'leads.assigned_agent_id is bigint');
SELECT col_type_is('leadintake', 'leads', 'notes', 'text', 'leads.notes is text');
SELECT col_type_is('leadintake', 'leads', 'comments', 'text', 'leads.comments is text');
SELECT col_type_is('leadintake', 'leads', 'dialer_lead_id', 'text', 'leads.dialer_lead_id is text');
SELECT col_type_is('leadintake', 'leads', 'vendor_id', 'text', 'leads.vendor_id is text');
SELECT col_type_is('leadintake', 'leads', 'list_id', 'text', 'leads.list_id is text');
SELECT col_type_is('leadintake', 'leads', 'gmt_offset_now', 'numeric', 'leads.gmt_offset_now is numeric');
SELECT col_type_is('leadintake', 'leads', 'phone_code', 'text', 'leads.phone_code is text');
SELECT col_type_is('leadintake', 'leads', 'phone_number', 'text', 'leads.phone_number is text');
SELECT col_type_is('leadintake', 'leads', 'title', 'text', 'leads.title is text');
SELECT col_type_is('leadintake', 'leads', 'first_name', 'text', 'leads.first_name is text');
SELECT col_type_is('leadintake', 'leads', 'middle_initial', 'text', 'leads.middle_initial is text');
SELECT col_type_is('leadintake', 'leads', 'last_name', 'text', 'leads.last_name is text');
SELECT col_type_is('leadintake', 'leads', 'address1', 'text', 'leads.address1 is text');
SELECT col_type_is('leadintake', 'leads', 'address2', 'text', 'leads.address2 is text');
SELECT col_type_is('leadintake', 'leads', 'address3', 'text', 'leads.address3 is text');
SELECT col_type_is('leadintake', 'leads', 'city', 'text', 'leads.city is text');
SELECT col_type_is('leadintake', 'leads', 'state', 'text', 'leads.state is text');
SELECT col_type_is('leadintake', 'leads', 'province', 'text', 'leads.province is text');
SELECT col_type_is('leadintake', 'leads', 'postal_code', 'text', 'leads.postal_code is text');
SELECT col_type_is('leadintake', 'leads', 'country_code', 'text', 'leads.country_code is text');
SELECT col_type_is('leadintake', 'leads', 'gender', 'text', 'leads.gender is text');
SELECT col_type_is('leadintake', 'leads', 'date_of_birth', 'date', 'leads.date_of_birth is date');
SELECT col_type_is('leadintake', 'leads', 'alt_phone', 'text', 'leads.alt_phone is text');
SELECT col_type_is('leadintake', 'leads', 'security_phrase', 'text', 'leads.security_phrase is text');
SELECT col_type_is('leadintake', 'leads', 'campaign', 'text', 'leads.campaign is text');
SELECT col_type_is('leadintake', 'leads', 'phone_login', 'text', 'leads.phone_login is text');
SELECT col_type_is('leadintake', 'leads', 'fronter', 'text', 'leads.fronter is text');
SELECT col_type_is('leadintake', 'leads', 'closer', 'text', 'leads.closer is text');
SELECT col_type_is('leadintake', 'leads', 'dialer_group', 'text', 'leads.dialer_group is text');
SELECT col_type_is('leadintake', 'leads', 'channel_group', 'text', 'leads.channel_group is text');
SELECT col_type_is('leadintake', 'leads', 'sql_date', 'timestamp without time zone', 'leads.sql_date is timestamp without time zone');
SELECT col_type_is('leadintake', 'leads', 'epoch', 'bigint', 'leads.epoch is bigint');
SELECT col_type_is('leadintake', 'leads', 'uniqueid', 'text', 'leads.uniqueid is text');
SELECT col_type_is('leadintake', 'leads', 'customer_zap_channel', 'text', 'leads.customer_zap_channel is text');
SELECT col_type_is('leadintake', 'leads', 'server_ip', 'inet', 'leads.server_ip is inet');
SELECT col_type_is('leadintake', 'leads', 'sip_exten', 'text', 'leads.sip_exten is text');
SELECT col_type_is('leadintake', 'leads', 'session_id', 'text', 'leads.session_id is text');
SELECT col_type_is('leadintake', 'leads', 'dialed_number', 'text', 'leads.dialed_number is text');
SELECT col_type_is('leadintake', 'leads', 'dialed_label', 'text', 'leads.dialed_label is text');
SELECT col_type_is('leadintake', 'leads', 'rank', 'text', 'leads.rank is text');
SELECT col_type_is('leadintake', 'leads', 'owner', 'text', 'leads.owner is text');
SELECT col_type_is('leadintake', 'leads', 'camp_script', 'text', 'leads.camp_script is text');
SELECT col_type_is('leadintake', 'leads', 'in_script', 'text', 'leads.in_script is text');
SELECT col_type_is('leadintake', 'leads', 'script_width', 'text', 'leads.script_width is text');
SELECT col_type_is('leadintake', 'leads', 'script_height', 'text', 'leads.script_height is text');
SELECT col_type_is('leadintake', 'leads', 'recording_file', 'text', 'leads.recording_file is text');
SELECT col_type_is('leadintake', 'leads', 'extra', 'jsonb', 'leads.extra is jsonb');
SELECT col_type_is('leadintake', 'leads', 'created_at', 'timestamp with time zone', 'leads.created_at is timestamp with time zone');
SELECT col_type_is('leadintake', 'leads', 'updated_at', 'timestamp with time zone', 'leads.updated_at is timestamp with time zone');
SELECT col_type_is('leadintake', 'leads', 'phone_valid', 'boolean', 'leads.phone_valid is boolean (1.5)');
SELECT columns_are('leadintake', 'intake_log', ARRAY['id', 'received_at', 'source', 'key_name', 'client_addr', 'status', 'error', 'lead_id', 'created', 'duration_ms', 'payload', 'raw_body', 'replayed_by', 'replay_of']);
SELECT col_type_is('leadintake', 'intake_log', 'id', 'bigint', 'intake_log.id is bigint');
SELECT col_type_is('leadintake', 'intake_log', 'received_at', 'timestamp with time zone', 'intake_log.received_at is timestamp with time zone');
SELECT col_type_is('leadintake', 'intake_log', 'source', 'leadintake.intake_source',
    'intake_log.source is leadintake.intake_source (text; one of http, sql, inbox, replay)');
SELECT col_type_is('leadintake', 'intake_log', 'key_name', 'text', 'intake_log.key_name is text');
SELECT col_type_is('leadintake', 'intake_log', 'client_addr', 'inet', 'intake_log.client_addr is inet');
SELECT col_type_is('leadintake', 'intake_log', 'status', 'integer', 'intake_log.status is integer');
SELECT col_type_is('leadintake', 'intake_log', 'error', 'text', 'intake_log.error is text');
SELECT col_type_is('leadintake', 'intake_log', 'lead_id', 'bigint', 'intake_log.lead_id is bigint');
SELECT col_type_is('leadintake', 'intake_log', 'created', 'boolean', 'intake_log.created is boolean');
SELECT col_type_is('leadintake', 'intake_log', 'duration_ms', 'double precision', 'intake_log.duration_ms is double precision');
SELECT col_type_is('leadintake', 'intake_log', 'payload', 'jsonb', 'intake_log.payload is jsonb');
SELECT col_type_is('leadintake', 'intake_log', 'raw_body', 'text', 'intake_log.raw_body is text');
SELECT col_type_is('leadintake', 'intake_log', 'replayed_by', 'bigint', 'intake_log.replayed_by is bigint (1.6)');
SELECT col_type_is('leadintake', 'intake_log', 'replay_of', 'bigint', 'intake_log.replay_of is bigint (1.6)');
SELECT columns_are('leadintake', 'inbox', ARRAY['id', 'payload', 'enqueued_at', 'processed_at', 'status', 'error', 'lead_id']);
SELECT col_type_is('leadintake', 'inbox', 'id', 'bigint', 'inbox.id is bigint');
SELECT col_type_is('leadintake', 'inbox', 'payload', 'jsonb', 'inbox.payload is jsonb');
SELECT col_type_is('leadintake', 'inbox', 'enqueued_at', 'timestamp with time zone', 'inbox.enqueued_at is timestamp with time zone');
SELECT col_type_is('leadintake', 'inbox', 'processed_at', 'timestamp with time zone', 'inbox.processed_at is timestamp with time zone');
SELECT col_type_is('leadintake', 'inbox', 'status', 'integer', 'inbox.status is integer');
SELECT col_type_is('leadintake', 'inbox', 'error', 'text', 'inbox.error is text');
SELECT col_type_is('leadintake', 'inbox', 'lead_id', 'bigint', 'inbox.lead_id is bigint');

-- Keys, constraints and defaults.
SELECT has_pk('leadintake', t, 'leadintake.' || t || ' has a primary key')
  FROM unnest(ARRAY['agents', 'leads', 'intake_log', 'inbox']) AS t;
SELECT col_is_pk('leadintake', t, 'id', 'leadintake.' || t || '.id is the primary key')
  FROM unnest(ARRAY['agents', 'leads', 'intake_log', 'inbox']) AS t;
SELECT col_is_unique('leadintake', 'agents', 'username', 'agents.username is unique');
SELECT col_is_unique('leadintake', 'agents', 'dialer_user_id', 'agents.dialer_user_id is unique');
SELECT col_is_unique('leadintake', 'leads', 'dialer_lead_id', 'leads.dialer_lead_id is unique');
SELECT col_not_null('leadintake', 'agents', 'username', 'agents.username is NOT NULL');
SELECT col_is_null('leadintake', 'agents', 'dialer_user_id', 'agents.dialer_user_id allows NULL');
SELECT col_not_null('leadintake', 'agents', 'active', 'agents.active is NOT NULL');
SELECT col_default_is('leadintake', 'agents', 'active', 'true', 'agents.active defaults to true');
SELECT col_is_null('leadintake', 'leads', 'dialer_lead_id', 'leads.dialer_lead_id allows NULL');
SELECT col_not_null('leadintake', 'leads', 'extra', 'leads.extra is NOT NULL');
SELECT col_not_null('leadintake', 'inbox', 'payload', 'inbox.payload is NOT NULL');
SELECT col_is_fk('leadintake', 'leads', 'assigned_agent_id', 'leads.assigned_agent_id is a foreign key');
SELECT fk_ok('leadintake', 'leads', 'assigned_agent_id', 'leadintake', 'agents', 'id');
SELECT throws_ok(
    $$INSERT INTO leadintake.intake_log (source, status) VALUES ('carrier pigeon', 201)$$,
    '23514', NULL, 'intake_log.source accepts only http, sql, inbox, replay');
SELECT lives_ok(
    $$INSERT INTO leadintake.intake_log (source, status)
      VALUES ('http', 201), ('sql', 201), ('inbox', 400), ('replay', 201)$$,
    'intake_log.source accepts http, sql, inbox, replay');

-- Functions.
SELECT has_function('public', 'leadintake_from_dialer', ARRAY['jsonb'],
    'leadintake_from_dialer(jsonb) is in the schema of the default search_path');
SELECT function_returns('public', 'leadintake_from_dialer', ARRAY['jsonb'], 'jsonb');
SELECT has_function('leadintake', 'http_intake', ARRAY['bytea', 'text', 'inet']);
SELECT function_returns('leadintake', 'http_intake', ARRAY['bytea', 'text', 'inet'], 'record');
SELECT is(
    (SELECT array_agg(a.name ORDER BY a.n)
       FROM pg_proc p,
            unnest(p.proargnames, p.proargmodes::text[]) WITH ORDINALITY AS a(name, mode, n)
      WHERE p.oid = 'leadintake.http_intake(bytea, text, inet)'::regprocedure
        AND a.mode = 'o'),
    ARRAY['status', 'response', 'dashboard_query']::text[],
    'http_intake returns (status, response, dashboard_query)');
SELECT has_function('leadintake', 'fields', 'leadintake.fields() exists');
SELECT has_function('leadintake', 'phone_e164', ARRAY['text', 'text']);
SELECT has_function('leadintake', 'phone_valid', ARRAY['text', 'text']);
SELECT has_function('leadintake', 'process_inbox',
    'leadintake.process_inbox(batch_size) exists (contract section 1)');
SELECT has_trigger('leadintake', 'inbox', 'inbox_redact', 'inbox has the trigger inbox_redact');

-- Every dialer field of contract section 3 has its own column, named by leadintake.fields().
SELECT set_has(
    $$SELECT json_key, column_name FROM leadintake.fields()$$,
    $$VALUES
    ('lead_id', 'dialer_lead_id'),
    ('vendor_id', 'vendor_id'),
    ('list_id', 'list_id'),
    ('gmt_offset_now', 'gmt_offset_now'),
    ('phone_code', 'phone_code'),
    ('phone_number', 'phone_number'),
    ('title', 'title'),
    ('first_name', 'first_name'),
    ('middle_initial', 'middle_initial'),
    ('last_name', 'last_name'),
    ('full_name', 'full_name'),
    ('address1', 'address1'),
    ('address2', 'address2'),
    ('address3', 'address3'),
    ('city', 'city'),
    ('state', 'state'),
    ('province', 'province'),
    ('postal_code', 'postal_code'),
    ('country_code', 'country_code'),
    ('gender', 'gender'),
    ('date_of_birth', 'date_of_birth'),
    ('alt_phone', 'alt_phone'),
    ('security_phrase', 'security_phrase'),
    ('phone', 'phone'),
    ('email', 'email'),
    ('comments', 'comments'),
    ('notes', 'notes'),
    ('campaign', 'campaign'),
    ('phone_login', 'phone_login'),
    ('fronter', 'fronter'),
    ('closer', 'closer'),
    ('group', 'dialer_group'),
    ('channel_group', 'channel_group'),
    ('SQLdate', 'sql_date'),
    ('epoch', 'epoch'),
    ('uniqueid', 'uniqueid'),
    ('customer_zap_channel', 'customer_zap_channel'),
    ('server_ip', 'server_ip'),
    ('SIPexten', 'sip_exten'),
    ('session_id', 'session_id'),
    ('dialed_number', 'dialed_number'),
    ('dialed_label', 'dialed_label'),
    ('rank', 'rank'),
    ('owner', 'owner'),
    ('camp_script', 'camp_script'),
    ('in_script', 'in_script'),
    ('script_width', 'script_width'),
    ('script_height', 'script_height'),
    ('recording_file', 'recording_file')
    $$,
    'leadintake.fields() maps every dialer field of the contract to its column');
SELECT is_empty(
    $$SELECT f.json_key, f.column_name FROM leadintake.fields() f
       WHERE f.column_name IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM information_schema.columns c
                          WHERE c.table_schema = 'leadintake' AND c.table_name = 'leads'
                            AND c.column_name = f.column_name)$$,
    'every column named by leadintake.fields() exists in leadintake.leads');

-- Privileges: PUBLIC has none on the tables, and cannot execute the shim's entry.
SELECT table_privs_are('leadintake', t, 'public', ARRAY[]::name[],
    'PUBLIC has no privilege on leadintake.' || t)
  FROM unnest(ARRAY['agents', 'leads', 'intake_log', 'inbox']) AS t;
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c
       WHERE c.relnamespace = 'leadintake'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
         AND has_table_privilege('public', c.oid,
                                 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')$$,
    'PUBLIC has no privilege on any table of schema leadintake');
SELECT function_privs_are('leadintake', 'http_intake', ARRAY['bytea', 'text', 'inet'],
    'public', ARRAY[]::name[]);

-- The same, as a role that was granted nothing (but USAGE on the schema).
CREATE ROLE leadintake_pgtap_nobody NOLOGIN;
GRANT USAGE ON SCHEMA leadintake TO leadintake_pgtap_nobody;
CREATE FUNCTION pg_temp.sqlstate_as(role name, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text := 'no error';
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    BEGIN
        EXECUTE stmt;
    EXCEPTION WHEN OTHERS THEN
        st := SQLSTATE;
    END;
    RESET ROLE;
    RETURN st;
END
$$;
SELECT is(pg_temp.sqlstate_as('leadintake_pgtap_nobody',
    $$SELECT * FROM leadintake.http_intake('{"user":"agent1"}'::bytea, 'k', '127.0.0.1')$$),
    '42501', 'a role granted nothing cannot execute leadintake.http_intake');
SELECT is(pg_temp.sqlstate_as('leadintake_pgtap_nobody', 'SELECT * FROM leadintake.' || t),
    '42501', 'a role granted nothing cannot read leadintake.' || t)
  FROM unnest(ARRAY['agents', 'leads', 'intake_log', 'inbox']) AS t;
SELECT is(pg_temp.sqlstate_as('leadintake_pgtap_nobody',
    $$INSERT INTO leadintake.inbox (payload) VALUES ('{"user":"agent1"}')$$),
    '42501', 'a role granted nothing cannot enqueue into leadintake.inbox');

-- The DBA's entry works right after CREATE EXTENSION, unqualified.
INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
VALUES ('agent1', 'Agent One', '1001');
SELECT is(
    leadintake_from_dialer('{"user":"agent1","lead_id":"SCHEMA1","first_name":"John",
                             "last_name":"Smith","phone_number":"07700 900123"}'::jsonb) ->> 'success',
    'true', 'leadintake_from_dialer() works unqualified right after CREATE EXTENSION');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'SCHEMA1'), 1::bigint,
    'and stored the lead');

SELECT * FROM finish();
ROLLBACK;
