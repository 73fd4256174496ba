-- Contract section 3: the payload.
\i sql/setup.inc

-- Strings are trimmed; numbers and booleans become their text.
SELECT r->>'first_name' AS first_name, r->>'last_name' AS last_name, r->>'list_id' AS list_id,
       r->>'rank' AS rank, r->>'gmt_offset_now' AS gmt, r->>'owner' AS owner
  FROM pg_temp.lead('{"user": "agent1", "first_name": "  John\t", "last_name": "\n Smith ",
                      "list_id": 998, "rank": 1.50, "gmt_offset_now": -5, "owner": true}') r;

-- null, "", whitespace, placeholders and zero dates count as absent.
SELECT r->>'first_name' AS first_name, r->>'last_name' AS last_name, r->>'city' AS city,
       r->>'date_of_birth' AS dob, r->>'SQLdate' AS sqldate, r->>'email' AS email,
       r->>'full_name' AS full_name
  FROM pg_temp.lead('{"user": "agent1", "first_name": null, "last_name": "",
                      "city": "   ", "email": "--A--email--B--",
                      "date_of_birth": "0000-00-00", "SQLdate": "0000-00-00 00:00:00"}') r;
-- A placeholder-looking value with other text around it is a value.
SELECT r->>'comments' AS comments
  FROM pg_temp.lead('{"user": "agent1", "comments": "call --A--first_name--B-- back"}') r;

-- An object or array under a known field is a 400 naming the field...
SELECT pg_temp.try('{"user": "agent1", "first_name": {"a": 1}}');
SELECT pg_temp.try('{"user": "agent1", "phone_number": ["1", "2"]}');
SELECT pg_temp.try('{"user": ["agent1"]}');
-- ...under an unknown key it is kept as given in extra, as is every other unknown key.
SELECT r->'extra' AS extra
  FROM pg_temp.lead('{"user": "agent1", "custom": {"a": [1, {"b": null}]}, "list": [1, "x"],
                      "n": 1.5, "flag": false, "nothing": null, "": "empty key"}') r;

-- Identity: one of dialer_user_id or user is required.
SELECT pg_temp.try('{"first_name": "John"}');
SELECT pg_temp.try('{"user": "", "dialer_user_id": null}');
SELECT pg_temp.try('{"user": "--A--user--B--"}');

-- Every dialer field has its own column and is echoed under its key.
SELECT count(*) AS dialer_fields FROM leadintake.fields() WHERE column_name IS NOT NULL
   AND kind NOT LIKE 'alias%';
WITH sample AS (
    SELECT json_key, CASE kind
               WHEN 'date' THEN '1990-05-17'
               WHEN 'datetime' THEN '2024-01-15 10:30:00'
               WHEN 'integer' THEN '1705314600'
               WHEN 'ip' THEN '192.0.2.10'
               WHEN 'gmt_offset' THEN '-5.00'
               WHEN 'phone' THEN '020 7946 ' || length(json_key)
               WHEN 'phone_code' THEN '44'
               WHEN 'email' THEN 'lead@example.com'
               ELSE 'v-' || json_key END AS v
      FROM leadintake.fields()
     WHERE column_name IS NOT NULL AND kind NOT LIKE 'alias%'),
payload AS (SELECT jsonb_object_agg(json_key, v) || '{"user": "agent2"}' AS p FROM sample),
result AS (SELECT p, leadintake_from_dialer(p)->'lead' AS lead FROM payload)
SELECT f.json_key, f.column_name, p->>f.json_key AS sent,
       lead->>(CASE f.json_key WHEN 'lead_id' THEN 'dialer_lead_id' ELSE f.json_key END) AS echoed
  FROM result, leadintake.fields() f
 WHERE f.column_name IS NOT NULL AND f.kind NOT LIKE 'alias%'
   AND p->>f.json_key IS DISTINCT FROM
       lead->>(CASE f.json_key WHEN 'lead_id' THEN 'dialer_lead_id' ELSE f.json_key END);
-- ...and the stored row holds each value in its typed column.
SELECT dialer_lead_id, date_of_birth, sql_date, epoch, server_ip, gmt_offset_now, dialer_group,
       sip_exten, recording_file
  FROM leadintake.leads WHERE dialer_lead_id = 'v-lead_id';

-- Aliases stand in for their canonical key.
SELECT r->>'dialer_lead_id' AS lead_id, r->>'recording_file' AS recording,
       r->>'vendor_id' AS vendor, r->>'assigned_agent_username' AS agent, r->'extra' AS extra
  FROM pg_temp.lead('{"agent_username": "agent3", "dialer_lead_id": "ALIAS-1",
                      "recording_filename": "rec.wav", "vendor_lead_code": "V9"}') r;
-- When both are sent, the canonical key wins and the alias is kept in extra.
SELECT r->>'dialer_lead_id' AS lead_id, r->>'recording_file' AS recording,
       r->>'vendor_id' AS vendor, r->>'assigned_agent_username' AS agent, r->'extra' AS extra
  FROM pg_temp.lead('{"user": "agent1", "agent_username": "agent3",
                      "lead_id": "CANON-1", "dialer_lead_id": "ALIAS-2",
                      "recording_file": "a.wav", "recording_filename": "b.wav",
                      "vendor_id": "V1", "vendor_lead_code": "V2"}') r;
-- An absent canonical value lets the alias stand in.
SELECT r->>'dialer_lead_id' AS lead_id, r->'extra' AS extra
  FROM pg_temp.lead('{"user": "agent1", "lead_id": "", "dialer_lead_id": "ALIAS-3"}') r;
-- VICIdial's fullname is the agent's name: it never becomes the lead's.
SELECT r->>'full_name' AS full_name, r->'extra' AS extra
  FROM pg_temp.lead('{"user": "agent1", "fullname": "Agent Smith", "first_name": "Ann"}') r;

-- Secrets are dropped on entry, matched case-insensitively: not in extra, not in the log.
SELECT r->'extra' AS extra
  FROM pg_temp.lead('{"user": "agent1", "lead_id": "SECRET-1", "api_key": "k1",
                      "DIALER_API_KEY": "k2", "Pass": "k3", "orig_pass": "k4",
                      "phone_pass": "k5", "passenger": "kept"}') r;
SELECT payload FROM leadintake.intake_log WHERE payload->>'lead_id' = 'SECRET-1';
SELECT count(*) AS secrets_anywhere FROM leadintake.intake_log
 WHERE payload::text ~ 'k[1-5]"' OR coalesce(raw_body, '') ~ 'k[1-5]';
SELECT count(*) AS secrets_in_leads FROM leadintake.leads WHERE extra::text ~ '"k[1-5]"';

-- Validation: every bad field is named, with its reason.
SELECT pg_temp.try('{"user": "agent1", "email": "not-an-email", "date_of_birth": "1990-02-30",
                     "SQLdate": "2024-01-15T10:30:00", "epoch": "17e8", "server_ip": "300.1.2.3",
                     "gmt_offset_now": "15", "phone": "call me", "phone_code": "12345"}');
-- Length limits, one per field: the limit passes, one more character fails.
SELECT f.json_key, f.max_length,
       pg_temp.try(jsonb_build_object('user', 'agent1', f.json_key, repeat('x', f.max_length)))
           AS at_limit,
       pg_temp.try(jsonb_build_object('user', 'agent1', f.json_key, repeat('x', f.max_length + 1)))
           AS over_limit
  FROM leadintake.fields() f
 WHERE f.kind IN ('text', 'identity') AND f.json_key NOT IN ('user', 'dialer_user_id')
 ORDER BY f.json_key;
-- The limit counts characters, not bytes.
SELECT pg_temp.try(jsonb_build_object('user', 'agent1', 'first_name', repeat('é', 100)));
-- date_of_birth: a real YYYY-MM-DD date.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'date_of_birth', v))
  FROM unnest(ARRAY['2000-02-29', '1900-02-29', '1990-13-01', '1990-1-1', '17/05/1990',
                    '1990-05-17 00:00:00', '0001-01-01']) v;
-- email: a plausible address.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'email', v))
  FROM unnest(ARRAY['john.smith+crm@example.co.uk', 'a@b.io', 'no-at.example.com',
                    'two@@example.com', 'john@localhost', 'john smith@example.com',
                    '.john@example.com', 'john..smith@example.com', 'john@-example.com',
                    'john@example.123', '@example.com', 'john@']) v;
-- SQLdate: YYYY-MM-DD HH:MM:SS.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'SQLdate', v))
  FROM unnest(ARRAY['2024-01-15 23:59:59', '2024-01-15 24:00:00', '2024-01-15',
                    '2024-02-30 10:00:00']) v;
-- epoch: an integer.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'epoch', v))
  FROM unnest(ARRAY['1705314600', '-1', '1.5', '99999999999999999999', 'now']) v;
SELECT pg_temp.try('{"user": "agent1", "epoch": 1705314600}');
-- server_ip: an IP address.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'server_ip', v))
  FROM unnest(ARRAY['10.0.0.1', '2001:db8::1', '10.0.0', '10.0.0.0/8', 'vicidial.local']) v;
-- gmt_offset_now: a number from -12 to 14.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'gmt_offset_now', v))
  FROM unnest(ARRAY['-12', '14', '5.75', '+1', '-12.5', '14.01', 'abc', '1e1']) v;
SELECT pg_temp.try('{"user": "agent1", "gmt_offset_now": -5.5}');
-- Phones: digits and the usual separators; phone_code: 1 to 4 digits.
SELECT v, pg_temp.try(jsonb_build_object('user', 'agent1', 'phone', v))
  FROM unnest(ARRAY['+44 (0)20 7946-0000', '020.7946/0000', '12+34', 'ext 12', '()']) v;

-- Derived full_name: an explicit full_name wins, title is no part of it.
SELECT r->>'full_name' FROM pg_temp.lead('{"user": "agent1", "full_name": " Dr. J. Smith ",
    "first_name": "John", "last_name": "Smith"}') r;
SELECT r->>'full_name' FROM pg_temp.lead('{"user": "agent1", "title": "Mr",
    "first_name": "John", "middle_initial": "A", "last_name": "Smith"}') r;
SELECT r->>'full_name' FROM pg_temp.lead('{"user": "agent1", "first_name": "John",
    "middle_initial": " ", "last_name": "Smith"}') r;
SELECT r->>'full_name' FROM pg_temp.lead('{"user": "agent1", "last_name": "Smith"}') r;
SELECT r->'full_name' FROM pg_temp.lead('{"user": "agent1", "title": "Mr"}') r;

-- Derived phone: phone, else phone_number, as given (trimmed); phone_number keeps its own.
SELECT r->>'phone' AS phone, r->>'phone_number' AS phone_number, r->>'phone_e164' AS e164
  FROM pg_temp.lead('{"user": "agent1", "phone": " 01632 960001 ",
                      "phone_number": "01632 960002"}') r;
SELECT r->>'phone' AS phone, r->>'phone_number' AS phone_number, r->>'phone_e164' AS e164
  FROM pg_temp.lead('{"user": "agent1", "phone_number": "01632 960003"}') r;

-- phone_e164: the contract's five spellings are one number.
SELECT v, leadintake.phone_e164(v, c)
  FROM (VALUES ('07700 900123', NULL), ('+44 7700 900123', NULL), ('0044 7700 900123', NULL),
               ('+44 (0)7700 900123', NULL), ('7700900123', '44')) x(v, c);
-- The country code comes from phone_code, else leadintake.default_phone_code.
SELECT leadintake.phone_e164('(555) 123-4567', '1') AS us, leadintake.phone_e164('0612345678', '+33') AS fr,
       leadintake.phone_e164('0612345678') AS default_44, leadintake.phone_e164('---') AS no_digits;
SET leadintake.default_phone_code = '1';
SELECT leadintake.phone_e164('555 123 4567') AS default_1;
SELECT r->>'phone_e164' FROM pg_temp.lead('{"user": "agent1", "phone_number": "2025550123"}') r;
RESET leadintake.default_phone_code;
SET leadintake.default_phone_code = 'x44';
SELECT r->>'phone_e164' FROM pg_temp.lead('{"user": "agent1", "phone_code": "49",
    "phone_number": "030 1234567"}') r;

-- Text containing a NUL byte is a 400, not a 500 (it can only arrive as a body).
SELECT status, response FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "first_name": "A\u0000B"}', 'UTF8'), 'test', NULL);
SELECT status, response FROM leadintake.http_intake('\x7b2275736572223a2261000122207d'::bytea,
    'test', NULL);
