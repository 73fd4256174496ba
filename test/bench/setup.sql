-- test/bench/setup.sql: the bench database's objects (run once, as postgres, in database
-- "bench", after CREATE EXTENSION leadintake and pg_stat_statements).
--
--   agents agent1..agent50     (dialer_user_id 1001..1050)
--   bench.leads                a plain copy of leadintake.leads (same columns, same indexes,
--                              same fillfactor, no foreign key, no trigger): the target of the
--                              baseline upsert
--   bench.leads_fk             the same, with leadintake.leads's foreign key to the agents:
--                              the target of baseline_log_fk.sql (a diagnostic)
--   bench.load(n, baseline, fk)
--                              empties the lead tables (and the log, the inbox, the claims;
--                              identities restart), loads leads 1..n with the columns a
--                              payload sets into leadintake.leads, bench.leads (baseline) and
--                              bench.leads_fk (fk), ANALYZE
--   bench.payload(id, agent)   the bench payload as jsonb (bulk and inbox measures; the
--                              pgbench and wrk scripts build the very same object)
--   bench.baseline_loop()      baseline.sql's upsert of every row of bench.staging (id, agent),
--                              one statement per row in a PL/pgSQL loop: the growth baseline
--   bench.sample_waits(s)      what the client backends wait on, sampled every 50 ms for s
--                              seconds, as (wait, samples, percent)
--   role crm_shim              the shim's login role (only leadintake_shim)
--
-- A lead's phone follows from its dialer lead id:  phone_number  '07' || (10^11 + id),
-- phone_e164  '+447' || (10^11 + id): distinct ids (all below 10^11) never share a phone, so
-- a new lead id is never found by phone instead. Every such phone has one shape (07 and 12
-- digits), so libphonenumber judges them all alike: bench.load stores the phone_valid an
-- intake stores, parsed once.

INSERT INTO leadintake.agents (username, display_name, dialer_user_id)
SELECT 'agent' || i, 'Agent ' || i, (1000 + i)::text FROM generate_series(1, 50) i;

CREATE SCHEMA bench;
CREATE TABLE bench.leads (LIKE leadintake.leads INCLUDING ALL);
CREATE TABLE bench.leads_fk (LIKE leadintake.leads INCLUDING ALL,
    FOREIGN KEY (assigned_agent_id) REFERENCES leadintake.agents (id));
-- LIKE copies no storage parameters: the baselines get the same fillfactor as the product.
DO $$ BEGIN
    EXECUTE format('ALTER TABLE bench.leads SET (%1$s); ALTER TABLE bench.leads_fk SET (%1$s)',
                   (SELECT array_to_string(reloptions, ', ') FROM pg_class
                     WHERE oid = 'leadintake.leads'::regclass));
END $$;

DO $$ BEGIN CREATE ROLE crm_shim LOGIN IN ROLE leadintake_shim;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE FUNCTION bench.payload(id bigint, agent int) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'user', 'agent' || agent, 'lead_id', id::text, 'list_id', '1001',
        'campaign', 'UKSALES', 'phone_code', '44',
        'phone_number', '07' || (100000000000 + id)::text,
        'title', 'Mr', 'first_name', 'John', 'last_name', 'Smith',
        'email', 'john.smith' || id || '@example.co.uk',
        'address1', '221B Baker Street', 'city', 'London', 'postal_code', 'NW1 6XE',
        'country_code', 'GB', 'SQLdate', '2024-01-15 10:30:00', 'uniqueid', '1705314600.12345',
        'comments', 'Interested in the premium plan; call back after 5pm, prefers e-mail. '
                    'Spoke with the spouse too, both agreed to a follow-up next week.')
$$;

CREATE FUNCTION bench.load(n int, baseline boolean DEFAULT true, fk boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    valid boolean := leadintake.phone_valid('07' || (100000000000 + 1)::text, '44');
BEGIN
    TRUNCATE leadintake.leads, leadintake.phone_claims, leadintake.intake_log,
             leadintake.inbox, bench.leads, bench.leads_fk RESTART IDENTITY;
    INSERT INTO leadintake.leads (assigned_agent_id, dialer_lead_id, full_name, phone,
        phone_e164, phone_valid, email, list_id, campaign, phone_code, phone_number, title,
        first_name, last_name, address1, city, postal_code, country_code, sql_date, uniqueid,
        comments)
    SELECT 1 + i % 50, i::text, 'John Smith', p, '+447' || (100000000000 + i)::text, valid,
           'john.smith' || i || '@example.co.uk', '1001', 'UKSALES', '44', p, 'Mr', 'John',
           'Smith', '221B Baker Street', 'London', 'NW1 6XE', 'GB', '2024-01-14 09:00:00',
           '1705222800.54321', 'First contact; no decision yet.'
      FROM generate_series(1, n) i, LATERAL (SELECT '07' || (100000000000 + i)::text AS p) x;
    INSERT INTO leadintake.phone_claims SELECT phone_e164 FROM leadintake.leads;
    IF baseline THEN
        INSERT INTO bench.leads SELECT * FROM leadintake.leads;
        PERFORM setval(pg_get_serial_sequence('bench.leads', 'id'), greatest(n, 1));
    END IF;
    IF fk THEN
        INSERT INTO bench.leads_fk SELECT * FROM leadintake.leads;
        PERFORM setval(pg_get_serial_sequence('bench.leads_fk', 'id'), greatest(n, 1));
    END IF;
    ANALYZE leadintake.leads, leadintake.phone_claims, leadintake.intake_log,
            leadintake.inbox, bench.leads, bench.leads_fk;
END $$;

CREATE FUNCTION bench.baseline_loop() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint := 0;
    p text;
BEGIN
    FOR r IN SELECT id, agent FROM bench.staging LOOP
        p := (100000000000 + r.id)::text;
        INSERT INTO bench.leads AS l (assigned_agent_id, dialer_lead_id, full_name, phone,
            phone_e164, email, list_id, campaign, phone_code, phone_number, title, first_name,
            last_name, address1, city, postal_code, country_code, sql_date, uniqueid, comments)
        VALUES (r.agent, r.id::text, 'John Smith', '07' || p, '+447' || p,
            'john.smith' || r.id || '@example.co.uk', '1001', 'UKSALES', '44', '07' || p, 'Mr',
            'John', 'Smith', '221B Baker Street', 'London', 'NW1 6XE', 'GB',
            '2024-01-15 10:30:00', '1705314600.12345', 'Interested in the premium plan; call '
            'back after 5pm, prefers e-mail. Spoke with the spouse too, both agreed to a '
            'follow-up next week.')
        ON CONFLICT (dialer_lead_id) DO UPDATE SET full_name = EXCLUDED.full_name,
            phone = EXCLUDED.phone, phone_e164 = EXCLUDED.phone_e164, email = EXCLUDED.email,
            list_id = EXCLUDED.list_id, campaign = EXCLUDED.campaign,
            phone_code = EXCLUDED.phone_code, phone_number = EXCLUDED.phone_number,
            title = EXCLUDED.title, first_name = EXCLUDED.first_name,
            last_name = EXCLUDED.last_name, address1 = EXCLUDED.address1, city = EXCLUDED.city,
            postal_code = EXCLUDED.postal_code, country_code = EXCLUDED.country_code,
            sql_date = EXCLUDED.sql_date, uniqueid = EXCLUDED.uniqueid,
            comments = EXCLUDED.comments, updated_at = now();
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

CREATE FUNCTION bench.sample_waits(seconds float8)
RETURNS TABLE (wait text, samples bigint, percent numeric) LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + seconds * interval '1 second';
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS waits (w text);
    TRUNCATE waits;
    WHILE clock_timestamp() < stop LOOP
        PERFORM pg_stat_clear_snapshot();
        INSERT INTO waits
        SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU (no wait event)')
          FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND state = 'active'
           AND pid <> pg_backend_pid();
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN QUERY SELECT w, count(*), round(100.0 * count(*) / sum(count(*)) OVER (), 1)
                   FROM waits GROUP BY w ORDER BY 2 DESC;
END $$;
