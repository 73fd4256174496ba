-- test/pgtap/phone_update.sql: phone_e164 and phone_valid of a lead updated by its lead id
-- (contract sections 3 and 5): kept when the call sends the phone and phone_code the lead
-- has, made again when either differs, and a bad phone answered as on any call.
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink. Autocommit; ends with DROP EXTENSION leadintake CASCADE.
--   pg_prove -d DB test/pgtap/phone_update.sql

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake;
INSERT INTO leadintake.agents (username) VALUES ('agent1');

SELECT plan(17);

CREATE FUNCTION pg_temp.call(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT leadintake_from_dialer(jsonb_build_object('user', 'agent1') || payload) $$;
CREATE FUNCTION pg_temp.phone(lead text) RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' ', phone, phone_code, phone_e164, phone_valid::text)
      FROM leadintake.leads WHERE dialer_lead_id = lead $$;

-- 1. The same phone and phone_code again: what is stored stays. The stored values are set
-- by hand first, so that a parse made again would show.
SELECT pg_temp.call('{"lead_id": "K-1", "phone_number": "06 1234 5678", "phone_code": "39"}') IS NOT NULL AS made \gset
SELECT is(pg_temp.phone('K-1'), '06 1234 5678 39 +390612345678 true',
    'a new lead: phone_e164 and phone_valid parsed for the region of phone_code');
UPDATE leadintake.leads SET phone_e164 = '+390600000000', phone_valid = false
 WHERE dialer_lead_id = 'K-1';
SELECT is(pg_temp.call('{"lead_id": "K-1", "phone_number": "06 1234 5678", "phone_code": "39",
                         "city": "Roma"}') -> 'lead' ->> 'phone_e164', '+390600000000',
    'an update by lead id with the phone and phone_code the lead has keeps its phone_e164 ...');
SELECT is(pg_temp.phone('K-1'), '06 1234 5678 39 +390600000000 false',
    '... and its phone_valid: they are not derived again');
SELECT is((SELECT city FROM leadintake.leads WHERE dialer_lead_id = 'K-1'), 'Roma',
    '... while the fields sent are written');

-- 2. Either input changed: both values made again from the call's phone and code.
SELECT is(pg_temp.call('{"lead_id": "K-1", "phone_number": "06 1234 5678", "phone_code": "33"}')
          -> 'lead' ->> 'phone_e164', '+33612345678',
    'the same phone_number with another phone_code: phone_e164 parsed for the new region');
SELECT is(pg_temp.phone('K-1'), '06 1234 5678 33 +33612345678 true',
    '... and phone_valid judged again');
SELECT is(pg_temp.call('{"lead_id": "K-1", "phone_number": "06 1234 5679", "phone_code": "33"}')
          -> 'lead' ->> 'phone_e164', '+33612345679',
    'another phone_number with the same phone_code: phone_e164 parsed again');
SELECT is(pg_temp.call('{"lead_id": "K-1", "phone": "06 1234 5679", "phone_code": "33"}')
          -> 'lead' ->> 'phone_e164', '+33612345679',
    'the same number sent as phone rather than phone_number: the same phone_e164');
SELECT is(pg_temp.call('{"lead_id": "K-1", "phone_number": "1234", "phone_code": "33"}')
          -> 'lead' ->> 'phone_valid', 'false',
    'a number too short for its region: phone_valid false');
SELECT pg_temp.call('{"lead_id": "K-1", "phone_number": "07700 900123", "phone_code": "44"}') IS NOT NULL AS made \gset
SELECT is(pg_temp.phone('K-1'), '07700 900123 44 +447700900123 ' || leadintake.phone_valid('07700 900123', '44'),
    'phone and phone_code both changed: both values as leadintake.phone_e164 and phone_valid give them');

-- 3. A lead matched by phone finds the lead at its new number, not at its old one.
SELECT is((SELECT (r -> 'lead' ->> 'dialer_lead_id') || ' ' || (r ->> 'created')
             FROM pg_temp.call('{"phone_number": "+44 7700 900123"}') r), 'K-1 false',
    'a call without a lead id finds the updated lead by its new phone');
SELECT is((SELECT (r -> 'lead' ->> 'dialer_lead_id') || ' ' || (r ->> 'created')
             FROM pg_temp.call('{"phone_number": "+33 6 12 34 56 79", "lead_id": "K-2"}') r),
          'K-2 true', '... and none by its old one: another lead is created');

-- 4. A lead stored before 1.5 (phone_valid null, phone_e164 by the old rule) is parsed again
-- by an update with its own phone and phone_code, as recompute_phones would.
INSERT INTO leadintake.leads (dialer_lead_id, phone, phone_number, phone_code, phone_e164)
VALUES ('K-3', '06 1234 5678', '06 1234 5678', '39', '+39612345678');
SELECT pg_temp.call('{"lead_id": "K-3", "phone_number": "06 1234 5678", "phone_code": "39"}') IS NOT NULL AS made \gset
SELECT is(pg_temp.phone('K-3'), '06 1234 5678 39 +390612345678 true',
    'a lead not yet recomputed gets phone_e164 and phone_valid from the update with its phone');

-- 5. A bad phone on an update: the 400 of any call, and the lead as it was.
SELECT throws_ok($$SELECT pg_temp.call('{"lead_id": "K-1", "phone_number": "07700 9OO123", "phone_code": "44"}')$$,
    '22023', NULL, 'a phone with letters on an update: 22023 (400), as on a create');
SELECT is(leadintake.check_payload('{"user": "agent1", "lead_id": "K-1", "phone_number": "07700 9OO123"}'),
    '{"phone_number": "must be a phone number: digits, an optional leading +, spaces and - . ( ) /"}'::jsonb,
    '... naming the field and why');
SELECT is(pg_temp.phone('K-1'), '+44 7700 900123 44 +447700900123 ' || leadintake.phone_valid('+44 7700 900123', '44'),
    '... and the lead keeps its phone, phone_e164 and phone_valid');
SET leadintake.invalid_fields = keep;
SELECT pg_temp.call('{"lead_id": "K-1", "phone_number": "07700 9OO123", "phone_code": "44"}') IS NOT NULL AS made \gset
SELECT is(pg_temp.phone('K-1'), '+44 7700 900123 44 +447700900123 ' || leadintake.phone_valid('+44 7700 900123', '44'),
    'under keep the bad phone is absent: the stored phone and what is derived from it stay');
RESET leadintake.invalid_fields;

SELECT * FROM finish();
DROP EXTENSION leadintake CASCADE;
