-- test/bench/console.sql: the SQL of test/bench/console.sh (make bench-console): a log of
-- realistic rows made at COPY speed, and the timing of each console read.
--
-- bench.load_log(first, last): intake_log rows first..last of bench.total, spread over the
-- 90 days up to now (about 0.8 s apart: the last hour holds some 4,600 rows), 50 agents
-- (half the 201s sent as dialer_user_id 5001..5050, the others as user agent01..agent50):
--   96.5 % 201 (a lead of 1,000,000), 3 % 404 (five unknown agents, agent51..agent55),
--   0.5 % 400 (an invalid e-mail). 404s older than 7 days were replayed (replayed_by set),
--   as someone fixed their agent; the 400s stay open (their data cannot be fixed).
CREATE SCHEMA bench;
CREATE TABLE bench.settings AS SELECT 10000000::bigint AS total;

CREATE FUNCTION bench.load_log(first bigint, last bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO leadintake.intake_log (received_at, source, key_name, client_addr, status, error,
                                       lead_id, created, duration_ms, payload, replayed_by)
    SELECT at, 'http', CASE WHEN i % 3 = 0 THEN 'vicidial-webform' ELSE 'vicidial-dispo' END,
           ('10.0.' || (i % 200) || '.' || (i % 250 + 1))::inet, status,
           CASE status WHEN 404 THEN format('Agent with username ''%s'' not found', agent)
                       WHEN 400 THEN 'Invalid fields: email (email: must be a plausible e-mail address, like name@example.com)' END,
           CASE WHEN status = 201 THEN i % 1000000 + 1 END,
           CASE WHEN status = 201 THEN i % 4 = 0 END,
           0.2 + (i % 17) / 10.0,
           jsonb_build_object(CASE WHEN status = 201 AND i / 50 % 2 = 0 THEN 'dialer_user_id' ELSE 'user' END,
                              CASE WHEN status = 201 AND i / 50 % 2 = 0 THEN (5001 + i % 50)::text ELSE agent END,
                              'lead_id', 'V' || (i % 1500000), 'list_id', (1000 + i % 20)::text,
                              'phone_code', '44', 'phone_number', '07700 9' || lpad((i % 100000)::text, 5, '0'),
                              'first_name', (ARRAY['John', 'Mary', 'Ahmed', 'Li', 'Olga', 'Pedro', 'Aoife', 'Kwame'])[i % 8 + 1],
                              'last_name', (ARRAY['Smith', 'Jones', 'Khan', 'Wang', 'Ivanova', 'Garcia', 'Byrne', 'Mensah', 'Taylor', 'Brown'])[i % 10 + 1],
                              'email', CASE WHEN status = 400 THEN 'n/a' ELSE 'lead' || i || '@example.com' END,
                              'city', (ARRAY['Leeds', 'York', 'Hull', 'Bristol', 'Cardiff'])[i % 5 + 1],
                              'campaign', 'CAMP' || (i % 10), 'comments', 'Interested, call back',
                              'dispo', 'INTRST'),
           CASE WHEN status = 404 AND at < now() - interval '7 days' THEN i + 1 END
      FROM (SELECT i, now() - interval '90 days' + (interval '90 days' / s.total) * i AS at,
                   CASE WHEN (i * 7919) % 1000 < 30 THEN 404 WHEN (i * 7919) % 1000 < 35 THEN 400 ELSE 201 END AS status,
                   CASE WHEN (i * 7919) % 1000 < 30 THEN 'agent' || (51 + i % 5)
                        ELSE 'agent' || lpad((1 + i % 50)::text, 2, '0') END AS agent
              FROM bench.settings s, generate_series(first, last) AS i) AS g
$$;

-- bench.time(label, args, runs): runs calls of the console function, after one to warm up;
-- the median and the slowest, in ms.
CREATE TABLE bench.timings (label text, fn text, args jsonb, median_ms numeric, max_ms numeric,
                            result_bytes int);
CREATE FUNCTION bench.time(label text, fn text, args jsonb, runs int DEFAULT 9) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    ms numeric[] := '{}';
    r jsonb;
BEGIN
    EXECUTE format('SELECT leadintake.%I($1)', fn) INTO r USING args;
    FOR k IN 1..runs LOOP
        t0 := clock_timestamp();
        EXECUTE format('SELECT leadintake.%I($1)', fn) INTO r USING args;
        ms := ms || round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2);
    END LOOP;
    INSERT INTO bench.timings
    SELECT label, fn, args, (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ms) AS x),
           (SELECT max(x) FROM unnest(ms) AS x), length(r::text);
END $$;
