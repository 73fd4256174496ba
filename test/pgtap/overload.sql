-- test/pgtap/overload.sql: why every call of leadintake_from_dialer casts its argument
-- (issue 13, item 8; SECURITY.md "Calling leadintake_from_dialer").
--
-- Where PUBLIC may create in schema public (a cluster upgraded from before PostgreSQL 15
-- keeps that grant), any role can plant public.leadintake_from_dialer(text). A bare literal
-- is of type unknown, and function resolution prefers the exact text match to the
-- conversion to jsonb: the untyped call runs the planted function, with the caller's rights
-- (a superuser's, for a DBA). With '...'::jsonb the argument is jsonb, whose exact match is
-- the extension's function, and a planted (jsonb) one cannot exist beside it.
--
-- Runs in one transaction that it rolls back (the grant, the role, the planted function).
--   pg_prove -d DB test/pgtap/overload.sql    (DB with CREATE EXTENSION pgtap)
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(11);

DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');

-- ---------------------------------------------------------------- a writable public
GRANT CREATE ON SCHEMA public TO PUBLIC;
CREATE ROLE leadintake_pgtap_planter NOLOGIN;
-- what the planted function leaves behind when it runs: who ran it, and with what
CREATE TABLE public.planted_ran (who text, superuser text, payload text);
GRANT INSERT ON public.planted_ran TO PUBLIC;

SET LOCAL ROLE leadintake_pgtap_planter;
CREATE FUNCTION public.leadintake_from_dialer(payload text) RETURNS jsonb
LANGUAGE sql AS $$
    INSERT INTO public.planted_ran VALUES (current_user, current_setting('is_superuser'), payload)
    RETURNING jsonb_build_object('planted', true)
$$;
SELECT throws_ok(
    $$CREATE FUNCTION public.leadintake_from_dialer(payload jsonb) RETURNS jsonb
      LANGUAGE sql AS 'SELECT NULL::jsonb'$$,
    '42723', NULL,
    'a planted leadintake_from_dialer(jsonb) cannot exist beside the extension''s');
RESET ROLE;

SELECT is((SELECT pg_get_userbyid(proowner)::text FROM pg_proc
            WHERE oid = 'public.leadintake_from_dialer(text)'::regprocedure),
          'leadintake_pgtap_planter',
          'another role planted public.leadintake_from_dialer(text)');
SELECT ok(current_setting('is_superuser')::boolean, 'this session is a superuser''s (a DBA''s)');

-- ---------------------------------------------------------------- the untyped call
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "OV-1"}'), -- untyped-call-ok
          '{"planted": true}'::jsonb,
          'the untyped call (a bare literal) runs the planted function');
SELECT is((SELECT who || ' superuser=' || superuser FROM planted_ran WHERE payload LIKE '%OV-1%'),
          current_user || ' superuser=on',
          'the planted function ran with the caller''s rights: a superuser''s');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'OV-1'), 0::bigint,
          'the untyped call made no lead: the extension never saw it');

-- ---------------------------------------------------------------- the typed calls
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "OV-2"}'::jsonb) ->> 'message',
          'Lead created successfully',
          'the ::jsonb call reaches the extension''s function');
SELECT is(leadintake_from_dialer(jsonb_build_object('user', 'agent1', 'lead_id', 'OV-3'))
              ->> 'message',
          'Lead created successfully',
          'a jsonb expression reaches the extension''s function');
SELECT is((SELECT count(*) FROM planted_ran WHERE payload ~ 'OV-[23]'), 0::bigint,
          'the planted function did not run for the typed calls');
SELECT is((SELECT array_agg(dialer_lead_id ORDER BY dialer_lead_id) FROM leadintake.leads),
          ARRAY['OV-2', 'OV-3'],
          'the typed calls made their leads');

-- ---------------------------------------------------------------- nothing planted
DROP FUNCTION public.leadintake_from_dialer(text);
SELECT is(leadintake_from_dialer('{"user": "agent1", "lead_id": "OV-4"}') ->> 'message', -- untyped-call-ok
          'Lead created successfully',
          'without a planted function the untyped call works: the danger does not show');

SELECT * FROM finish();
ROLLBACK;
