-- leadintake 1.4 -> 1.5: phones by libphonenumber (contract section 3, issue 18). phone_e164
-- is now the number libphonenumber parses for the region of phone_code, in E.164 (the rule
-- of before only for what it cannot parse), and leads get phone_valid. Leads stored before
-- keep the phone_e164 of the old rule until a DBA runs leadintake.recompute_phones().
\echo Use "ALTER EXTENSION leadintake UPDATE" to load this file. \quit

-- The same C code as the intake's (extension/phone.c, phonelib.cpp); STABLE as phone_e164:
-- both read leadintake.default_phone_code.
CREATE FUNCTION leadintake.phone_valid(phone text, phone_code text DEFAULT NULL) RETURNS boolean
    AS 'MODULE_PATHNAME', 'leadintake_phone_valid' LANGUAGE C STABLE;
COMMENT ON FUNCTION leadintake.phone_valid(text, text) IS
    'Whether libphonenumber judges the phone a valid number of the region of phone_code (NULL without a phone)';
COMMENT ON FUNCTION leadintake.phone_e164(text, text) IS
    'The phone as matching normalises it: E.164 by libphonenumber for the region of phone_code, else the fallback rule';

-- No default: adding the column rewrites nothing; the leads of before stay NULL until
-- recomputed, new and updated leads get it from the intake.
ALTER TABLE leadintake.leads ADD COLUMN phone_valid boolean;
COMMENT ON COLUMN leadintake.leads.phone_valid IS
    'libphonenumber judges phone a valid number of its region; NULL without a phone (or not yet recomputed)';

-- One batch of the recompute: the leads after after_id in id order, at most batch_size,
-- phone_e164 and phone_valid made again from each lead's own phone and phone_code, as an
-- intake would make them now. The values are computed by the UPDATE from the row version it
-- writes, so a lead an intake changes meanwhile is recomputed from its new phone. Only rows
-- whose values change are written. last_id: where the next batch starts (NULL: no lead left).
CREATE FUNCTION leadintake.recompute_phones_batch(after_id bigint, batch_size integer DEFAULT 1000,
                                                  OUT last_id bigint, OUT scanned integer,
                                                  OUT changed integer)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT max(b.id), count(*) INTO last_id, scanned
      FROM (SELECT l.id FROM leadintake.leads l
             WHERE l.id > coalesce(after_id, 0) ORDER BY l.id LIMIT batch_size) AS b;
    -- a phone_code stored before validation existed could be anything: then no code
    WITH now_rule AS (
        UPDATE leadintake.leads l
           SET phone_e164 = leadintake.phone_e164(l.phone, CASE WHEN l.phone_code ~ '^\+?[0-9]{1,4}$' THEN l.phone_code END),
               phone_valid = leadintake.phone_valid(l.phone, CASE WHEN l.phone_code ~ '^\+?[0-9]{1,4}$' THEN l.phone_code END)
         WHERE l.id > coalesce(after_id, 0) AND l.id <= last_id
           AND (l.phone_e164, l.phone_valid) IS DISTINCT FROM
               (leadintake.phone_e164(l.phone, CASE WHEN l.phone_code ~ '^\+?[0-9]{1,4}$' THEN l.phone_code END),
                leadintake.phone_valid(l.phone, CASE WHEN l.phone_code ~ '^\+?[0-9]{1,4}$' THEN l.phone_code END))
        RETURNING 1)
    SELECT count(*) INTO changed FROM now_rule;
END $$;
COMMENT ON FUNCTION leadintake.recompute_phones_batch(bigint, integer) IS
    'One batch of recompute_phones: phone_e164 and phone_valid of the leads after after_id, as an intake makes them now';
REVOKE ALL ON FUNCTION leadintake.recompute_phones_batch(bigint, integer) FROM PUBLIC;

-- The whole table, a batch per transaction (rows are locked only for their batch), with a
-- NOTICE of progress after each; CALL it outside a transaction block, with the same
-- leadintake.default_phone_code as the intake. Safe to run again, or to stop and run again:
-- a lead that already has the values is not written. No SET clause (it would forbid the
-- COMMIT): every name inside is schema-qualified.
CREATE PROCEDURE leadintake.recompute_phones(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
    done bigint := 0;
    changed bigint := 0;
    from_id bigint := 0;
    b record;
BEGIN
    SELECT pg_catalog.count(*) INTO total FROM leadintake.leads;
    LOOP
        SELECT * INTO b FROM leadintake.recompute_phones_batch(from_id, batch_size);
        EXIT WHEN b.scanned OPERATOR(pg_catalog.=) 0;
        from_id := b.last_id;
        done := done OPERATOR(pg_catalog.+) b.scanned;
        changed := changed OPERATOR(pg_catalog.+) b.changed;
        COMMIT;
        RAISE NOTICE 'recompute_phones: % of % leads, % changed', done, total, changed;
    END LOOP;
    RAISE NOTICE 'recompute_phones: done, % leads read, % changed', done, changed;
END $$;
COMMENT ON PROCEDURE leadintake.recompute_phones(integer) IS
    'After the update to 1.5: phone_e164 and phone_valid of every lead made again, a batch per transaction, with progress';
REVOKE ALL ON PROCEDURE leadintake.recompute_phones(integer) FROM PUBLIC;
