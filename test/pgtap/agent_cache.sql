-- test/pgtap/agent_cache.sql: each backend keeps the agents it resolved (extension/agents.c),
-- and forgets them as soon as leadintake.agents changes, whoever changes it: a call never
-- answers from an agent that was renamed, deactivated, deleted or created meanwhile.
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. This one runs in autocommit: this session is the long-lived
-- backend that keeps answers, a dblink session is another client that changes the agents
-- and commits. It ends with DROP EXTENSION leadintake CASCADE. Run alone:
--   pg_prove -d DB test/pgtap/agent_cache.sql   (DB with CREATE EXTENSION pgtap, dblink)

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('keeper', 'Kim Keeper', '2001'),
    ('other', 'Olga Other', '2002');

SELECT plan(17);

SELECT dblink_connect('admin', format('host=%s port=%s dbname=%s user=%s',
    trim(split_part(current_setting('unix_socket_directories'), ',', 1)),
    current_setting('port'), current_database(), current_user)) IS NOT NULL AS connected \gset

-- call(payload): status and agent of one call from this session, or the SQLSTATE it raised.
CREATE FUNCTION pg_temp.call(p text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    r := leadintake_from_dialer(p::jsonb);
    RETURN 'ok ' || coalesce(r -> 'lead' ->> 'assigned_agent_username', r::text);
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.admin(sql text) RETURNS void LANGUAGE sql AS $$
    SELECT dblink_exec('admin', sql) $$;

SELECT has_trigger('leadintake', 'agents', 'agents_changed', 'agents has the trigger that tells backends');
SELECT is((SELECT tgenabled FROM pg_trigger WHERE tgname = 'agents_changed'), 'A',
    '... enabled ALWAYS (replicated changes too)');

-- Warm this backend's answers, by user and by dialer_user_id.
SELECT alike(pg_temp.call('{"user": "keeper", "lead_id": "C-1"}'), 'ok %', 'keeper resolves by user');
SELECT alike(pg_temp.call('{"dialer_user_id": "2001", "lead_id": "C-2"}'), 'ok %', 'keeper resolves by dialer_user_id');
SELECT alike(pg_temp.call('{"user": "newcomer", "lead_id": "C-3"}'), 'P0002%', 'newcomer is not found (yet)');

-- Another session deactivates keeper and commits.
SELECT pg_temp.admin($$UPDATE leadintake.agents SET active = false WHERE username = 'keeper'$$);
SELECT alike(pg_temp.call('{"user": "keeper", "lead_id": "C-1"}'), 'P0002%inactive%',
    'deactivated by another session: the next call here says inactive (by user)');
SELECT alike(pg_temp.call('{"dialer_user_id": "2001", "lead_id": "C-2"}'), 'P0002%inactive%',
    '... and by dialer_user_id');

-- Another session creates the agent that was not found.
SELECT pg_temp.admin($$INSERT INTO leadintake.agents (username) VALUES ('newcomer')$$);
SELECT alike(pg_temp.call('{"user": "newcomer", "lead_id": "C-3"}'), 'ok %',
    'created by another session: found by the next call here');

-- Renamed and reactivated.
SELECT pg_temp.admin($$UPDATE leadintake.agents SET active = true, username = 'kept' WHERE username = 'keeper'$$);
SELECT alike(pg_temp.call('{"user": "keeper", "lead_id": "C-1"}'), 'P0002%not found%',
    'renamed by another session: the old name is not found');
SELECT alike(pg_temp.call('{"user": "kept", "lead_id": "C-1"}'), 'ok %', '... the new one is');

-- The name shown for a lead's own agent (on update the lead keeps its agent).
SELECT is((leadintake_from_dialer('{"user": "other", "lead_id": "C-1"}'::jsonb) -> 'lead' ->> 'assigned_agent_name'),
    'Kim Keeper', 'an update by another agent shows the lead''s own agent');
SELECT pg_temp.admin($$UPDATE leadintake.agents SET display_name = 'Kim Kept' WHERE username = 'kept'$$);
SELECT is((leadintake_from_dialer('{"user": "other", "lead_id": "C-1"}'::jsonb) -> 'lead' ->> 'assigned_agent_name'),
    'Kim Kept', '... and its new display name once another session changed it');

-- Deleted.
SELECT pg_temp.admin($$DELETE FROM leadintake.leads WHERE dialer_lead_id = 'C-3';
                       DELETE FROM leadintake.agents WHERE username = 'newcomer'$$);
SELECT alike(pg_temp.call('{"user": "newcomer", "lead_id": "C-9"}'), 'P0002%not found%',
    'deleted by another session: not found');

-- In this session's own transaction: seen at once, and forgotten on rollback.
BEGIN;
INSERT INTO leadintake.agents (username) VALUES ('temp');
SELECT alike(pg_temp.call('{"user": "temp", "lead_id": "C-T"}'), 'ok %',
    'an agent inserted earlier in this transaction is found');
ROLLBACK;
SELECT alike(pg_temp.call('{"user": "temp", "lead_id": "C-T"}'), 'P0002%not found%',
    '... and not found once that transaction rolled back');

-- Without the trigger (disabled), nothing is kept: still correct.
ALTER TABLE leadintake.agents DISABLE TRIGGER agents_changed;
SELECT alike(pg_temp.call('{"user": "other", "lead_id": "C-5"}'), 'ok %', 'trigger disabled: other resolves');
SELECT pg_temp.admin($$UPDATE leadintake.agents SET active = false WHERE username = 'other'$$);
SELECT alike(pg_temp.call('{"user": "other", "lead_id": "C-5"}'), 'P0002%inactive%',
    '... and is seen inactive right after another session deactivated it');

SELECT * FROM finish();
SELECT dblink_disconnect('admin');
DROP EXTENSION leadintake CASCADE;
