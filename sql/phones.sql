-- Contract section 3: phone_e164 by libphonenumber for the region of phone_code, the rule of
-- before only as the fallback, and phone_valid (issue 18).
\i sql/setup.inc

-- Each row: what was sent, the phone_code (NULL: the setting, 44), phone_e164, phone_valid.
CREATE FUNCTION pg_temp.phones(VARIADIC pairs text[])
RETURNS TABLE (sent text, phone_code text, phone_e164 text, phone_valid boolean)
LANGUAGE sql AS $$
    SELECT pairs[i], pairs[i + 1], leadintake.phone_e164(pairs[i], pairs[i + 1]),
           leadintake.phone_valid(pairs[i], pairs[i + 1])
      FROM generate_series(1, array_length(pairs, 1), 2) AS i
$$;

-- The UK examples of the contract: one number. 07700 900xxx is Ofcom's range for drama,
-- which libphonenumber knows is no real number: not valid, matched all the same.
SELECT * FROM pg_temp.phones('07700 900123', NULL, '+44 7700 900123', NULL,
    '0044 7700 900123', NULL, '+44 (0)7700 900123', NULL, '7700900123', '44',
    '07700 900123', '+44', '447700900123', '44');
-- A real UK mobile and a London number are valid.
SELECT * FROM pg_temp.phones('07911 123456', NULL, '020 7946 0958', NULL, '+44 20 7946 0958', NULL);

-- Italy keeps the trunk zero of a landline; mobiles have none.
SELECT * FROM pg_temp.phones('06 1234 5678', '39', '+39 06 1234 5678', NULL,
    '0039 06 1234 5678', NULL, '333 123 4567', '39', '+39 333 123 4567', NULL);

-- France and Germany drop theirs, also written as (0) after the code.
SELECT * FROM pg_temp.phones('06 12 34 56 78', '33', '+33 6 12 34 56 78', NULL,
    '+33 (0)6 12 34 56 78', NULL, '01 42 68 53 00', '33');
SELECT * FROM pg_temp.phones('030 1234567', '49', '+49 30 1234567', NULL,
    '0049 (0)30 1234567', NULL, '0151 23456789', '49');

-- The US and Canada: a 1 before ten digits is the trunk prefix, with phone_code 1 or with
-- the setting at 1; without either, the ten digits are read as a UK number.
SELECT * FROM pg_temp.phones('1 (201) 555-0123', '1', '(201) 555-0123', '1',
    '+1 201 555 0123', NULL, '201.555.0123', '+1', '(613) 555-0199', '1',
    '(201) 555-0123', NULL);
SET leadintake.default_phone_code = '1';
SELECT * FROM pg_temp.phones('1 (201) 555-0123', NULL, '(201) 555-0123', NULL,
    '07700 900123', NULL);
RESET leadintake.default_phone_code;

-- An extension is no part of the number (the intake refuses one in a phone field; the SQL
-- function takes any text).
SELECT * FROM pg_temp.phones('+44 20 7946 0958 ext. 123', NULL, '020 7946 0958 x123', NULL,
    '(201) 555-0123 ext 7', '1');

-- International prefixes: 00 from Europe, 011 from North America.
SELECT * FROM pg_temp.phones('0044 7700 900123', '44', '011 44 7700 900123', '1',
    '00 39 06 1234 5678', '44', '011 39 06 1234 5678', '1');

-- What libphonenumber rejects takes the rule of before: a code no region has, a country
-- code that does not exist, more digits than any number has. Not valid.
SELECT * FROM pg_temp.phones('0123 4567', '999', '+0 123 4567', NULL,
    '+44 7700 900123 4567 8901 2345', NULL);

-- Parseable but not valid: still a phone_e164, and still matched (below).
SELECT * FROM pg_temp.phones('1 (555) 123-4567', '1', '(555) 123-4567', '1', '12', NULL,
    '+44 7700 900', NULL);

-- No number: no phone_e164; phone_valid is NULL only without a phone.
SELECT * FROM pg_temp.phones(NULL, NULL, '0', NULL, '00', '1', '0 0', NULL, 'none', NULL);
SELECT leadintake.phone_e164('07700 900123', 'x44');
SELECT leadintake.phone_valid('07700 900123', '12345');

-- Through the intake: the issue's three people, each written two ways, are one lead each.
SELECT b->'created' AS created, b->'lead'->>'dialer_lead_id' AS lead_id,
       b->'lead'->>'phone' AS phone, b->'lead'->>'phone_e164' AS e164, b->'lead'->'phone_valid' AS valid
  FROM (VALUES (1, '{"user": "agent1", "lead_id": "IT-1", "phone_number": "06 1234 5678", "phone_code": "39"}'::jsonb),
               (2, '{"user": "agent1", "phone_number": "+39 06 1234 5678"}'),
               (3, '{"user": "agent1", "lead_id": "US-1", "phone_number": "1 (555) 123-4567", "phone_code": "1"}'),
               (4, '{"user": "agent1", "phone_number": "(555) 123-4567", "phone_code": "1"}'),
               (5, '{"user": "agent1", "lead_id": "UK-1", "phone_number": "447700900123", "phone_code": "44"}'),
               (6, '{"user": "agent1", "phone_number": "07700 900123"}')) AS v (n, p),
       LATERAL leadintake_from_dialer(v.p) AS b
 ORDER BY v.n;
SELECT count(*) AS leads, count(DISTINCT phone_e164) AS numbers FROM leadintake.leads;
-- The column holds what the response shows.
SELECT dialer_lead_id, phone_e164, phone_valid FROM leadintake.leads ORDER BY id;
-- phone_e164 and phone_valid follow the merged phone and phone_code on update; a call
-- without either leaves them.
SELECT b->'lead'->>'phone' AS phone, b->'lead'->>'phone_code' AS phone_code,
       b->'lead'->>'phone_e164' AS e164, b->'lead'->'phone_valid' AS valid
  FROM (VALUES (1, '{"user": "agent1", "lead_id": "US-1", "phone_code": "44"}'::jsonb),
               (2, '{"user": "agent1", "lead_id": "US-1", "phone": "(201) 555-0123", "phone_code": "1"}'),
               (3, '{"user": "agent1", "lead_id": "US-1", "city": "Newark"}')) AS v (n, p),
       LATERAL leadintake_from_dialer(v.p) AS b
 ORDER BY v.n;
-- A lead without a phone: phone_valid null, in the column and in the response; a phone
-- with no number in it: not valid.
SELECT b->'lead'->'phone_valid' AS valid, b->'lead'->'phone_e164' AS e164
  FROM (VALUES (1, '{"user": "agent1", "lead_id": "NO-PHONE"}'::jsonb),
               (2, '{"user": "agent1", "lead_id": "ZERO", "phone": "0"}')) AS v (n, p),
       LATERAL leadintake_from_dialer(v.p) AS b
 ORDER BY v.n;
SELECT dialer_lead_id, phone_valid FROM leadintake.leads WHERE dialer_lead_id IN ('NO-PHONE', 'ZERO') ORDER BY 1;
-- The minimal body (a key from the URL) shows neither: both may come from a stored phone_code.
SELECT h.response->'lead' ? 'phone_valid' AS shows_valid, h.response->'lead' ? 'phone_e164' AS shows_e164
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "IT-1", "phone": "06 1234 5678"}', 'UTF8'),
                              'web', NULL, true) AS h;
