-- leadintake 1.2 -> 1.3: intake_log.source checked by a domain instead of a table constraint.
-- The executor re-reads and re-plans a table's CHECK constraints for every statement; a
-- domain's are compiled once per backend (typcache). Same rule, same SQLSTATE (23514).
\echo Use "ALTER EXTENSION leadintake UPDATE" to load this file. \quit

-- No rewrite of the log: the column changes to a domain without a constraint (binary
-- coercible), then the domain's constraint is added, which only scans the rows to validate.
CREATE DOMAIN leadintake.intake_source AS text;
COMMENT ON DOMAIN leadintake.intake_source IS 'Where an intake_log row came from';
ALTER TABLE leadintake.intake_log DROP CONSTRAINT intake_log_source_check;
ALTER TABLE leadintake.intake_log ALTER COLUMN source TYPE leadintake.intake_source;
ALTER DOMAIN leadintake.intake_source ADD CONSTRAINT intake_source_check
    CHECK (VALUE IN ('http', 'sql', 'inbox', 'replay'));

-- A call for a known lead updates it; with room left on its page the new version is a
-- heap-only tuple: none of the four indexes of leads gets an entry, and less WAL is written.
-- Only pages written from now on keep the room (no rewrite).
ALTER TABLE leadintake.leads SET (fillfactor = 85);
