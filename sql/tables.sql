-- Contract section 2: the tables of schema leadintake.
\i sql/setup.inc

SELECT table_name FROM information_schema.tables WHERE table_schema = 'leadintake' ORDER BY 1;
SELECT table_name, column_name, data_type, is_nullable, column_default IS NOT NULL AS has_default
  FROM information_schema.columns
 WHERE table_schema = 'leadintake' AND table_name IN ('agents', 'intake_log', 'inbox')
 ORDER BY table_name, ordinal_position;
-- leads: the fixed columns, then one typed column per dialer field, extra and the times.
SELECT column_name, data_type, is_nullable
  FROM information_schema.columns
 WHERE table_schema = 'leadintake' AND table_name = 'leads'
 ORDER BY ordinal_position;
-- Every field of the field table has its column (and nothing names a missing one).
SELECT f.json_key, f.column_name
  FROM leadintake.fields() f
  LEFT JOIN information_schema.columns c
    ON c.table_schema = 'leadintake' AND c.table_name = 'leads' AND c.column_name = f.column_name
 WHERE f.column_name IS NOT NULL AND c.column_name IS NULL;
-- The field table itself, as documented in README.md.
SELECT * FROM leadintake.fields();
-- Unique: agents.username, agents.dialer_user_id (nullable), leads.dialer_lead_id.
-- intake_log.source: a domain (1.3).
SELECT CASE WHEN conrelid <> 0 THEN conrelid::regclass::text
            ELSE 'domain ' || contypid::regtype END AS object, conname, contype
  FROM pg_constraint
 WHERE connamespace = 'leadintake'::regnamespace ORDER BY conrelid, conname;
INSERT INTO leadintake.agents (username) VALUES ('agent1');
INSERT INTO leadintake.agents (username, dialer_user_id) VALUES ('x1', NULL), ('x2', NULL);
INSERT INTO leadintake.agents (username, dialer_user_id) VALUES ('x3', '1001');
-- intake_log.source is one of the four.
\set VERBOSITY terse
INSERT INTO leadintake.intake_log (source, status) VALUES ('email', 201);
\set VERBOSITY default
-- The entry points.
SELECT p.oid::regprocedure, p.prosecdef, p.provolatile
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'leadintake')
 ORDER BY p.oid::regprocedure::text;
-- pg_dump keeps the data of every table (and the identity sequences' positions).
SELECT dumped FROM (SELECT unnest(extconfig)::regclass::text AS dumped FROM pg_extension
                     WHERE extname = 'leadintake') x
 ORDER BY dumped;
