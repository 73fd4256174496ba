-- test/pgtap/shapes.sql: a write stores exactly the fields a call sends (contract section 5)
-- whatever statement carries it. A backend keeps the UPDATE of the 16 sets of present fields
-- it used last (extension/store.c); another set replaces the least recently used. This file
-- sends 24 different sets in one session, so plans are replaced; and 24 new leads of one field.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/shapes.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');

SELECT plan(10);

SELECT leadintake_from_dialer('{"user": "agent1", "lead_id": "S-1", "phone_number": "07700 900123", "city": "Start", "first_name": "Sam", "last_name": "Shape", "extra_field": "kept"}'::jsonb) IS NOT NULL AS made \gset

-- 24 text fields other than the name parts and the city, each sent alone with its own value.
CREATE TEMP TABLE sent AS
SELECT json_key, column_name, 'v' || row_number() OVER (ORDER BY json_key) AS v
  FROM leadintake.fields()
 WHERE kind = 'text' AND max_length >= 20
   AND json_key NOT IN ('lead_id', 'first_name', 'middle_initial', 'last_name', 'full_name', 'city')
 ORDER BY json_key LIMIT 24;
SELECT is((SELECT count(*) FROM sent), 24::bigint, '24 fields to send, one set each');

CREATE TEMP TABLE answers AS
SELECT s.json_key, leadintake_from_dialer(jsonb_build_object('user', 'agent1', 'lead_id', 'S-1', s.json_key, s.v)) AS r
  FROM sent s ORDER BY s.json_key;
SELECT is((SELECT count(*) FROM answers WHERE (r ->> 'created')::boolean = false), 24::bigint,
    'each of the 24 calls updated lead S-1');
SELECT is((SELECT count(*) FROM sent s, leadintake.leads l
            WHERE l.dialer_lead_id = 'S-1' AND to_jsonb(l) ->> s.column_name = s.v), 24::bigint,
    'every field sent was stored, by the kept statements and by the general one');
SELECT is((SELECT city || ' ' || full_name || ' ' || phone || ' ' || (extra ->> 'extra_field')
             FROM leadintake.leads WHERE dialer_lead_id = 'S-1'),
    'Start Sam Shape 07700 900123 kept', 'fields never sent again kept their values');

-- One call with several fields: those overwrite, the 24 earlier values stay.
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "S-1", "city": "Leeds", "last_name": "Moved"}'::jsonb) -> 'lead' ->> 'full_name',
    'Sam Moved', 'a later call with several fields: its fields overwrite, the name follows');
SELECT is((SELECT count(*) FROM sent s, leadintake.leads l
            WHERE l.dialer_lead_id = 'S-1' AND to_jsonb(l) ->> s.column_name = s.v
              AND l.city = 'Leeds'), 24::bigint,
    '... and the 24 earlier values are still there');

-- New leads of one field each: the field, and the defaults for everything else.
CREATE TEMP TABLE made AS
SELECT s.json_key, leadintake_from_dialer(jsonb_build_object('user', 'agent1',
           'lead_id', 'N-' || s.json_key, s.json_key, s.v)) AS r
  FROM sent s ORDER BY s.json_key;
SELECT is((SELECT count(*) FROM made WHERE (r ->> 'created')::boolean), 24::bigint,
    '24 new leads, one field each: all created');
SELECT is((SELECT count(*) FROM sent s JOIN leadintake.leads l ON l.dialer_lead_id = 'N-' || s.json_key
            WHERE to_jsonb(l) ->> s.column_name = s.v AND l.status = 'interested'
              AND l.extra = '{}' AND l.assigned_agent_id IS NOT NULL
              AND (SELECT count(*) FROM sent s2 WHERE to_jsonb(l) ->> s2.column_name IS NOT NULL) = 1),
    24::bigint, '... each with its field, its agent, and the defaults for everything else');

-- 1.3 leaves 15 % of each page of leads free, so such an update adds no index entry.
SELECT is((SELECT reloptions FROM pg_class WHERE oid = 'leadintake.leads'::regclass),
    '{fillfactor=85}', 'leads is stored with fillfactor 85');
CREATE FUNCTION pg_temp.hot_updates() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hot0 bigint;
    upd0 bigint;
BEGIN
    SELECT n_tup_hot_upd, n_tup_upd INTO hot0, upd0 FROM pg_stat_xact_user_tables
     WHERE relid = 'leadintake.leads'::regclass;
    PERFORM leadintake_from_dialer('{"user": "agent1", "lead_id": "S-1", "city": "York"}'::jsonb);
    RETURN (SELECT (n_tup_hot_upd - hot0) || ' of ' || (n_tup_upd - upd0)
              FROM pg_stat_xact_user_tables WHERE relid = 'leadintake.leads'::regclass);
END $$;
SELECT is(pg_temp.hot_updates(), '1 of 1',
    'an update of a lead that changes no indexed column is a heap-only (HOT) update');

SELECT * FROM finish();
DROP EXTENSION leadintake CASCADE;
