-- Contract section 8: leadintake.invalid_fields = keep stores the lead despite invalid values.
\i sql/setup.inc
-- A call's message, warnings, the kept values and what was stored, without timestamps.
CREATE FUNCTION pg_temp.kept(payload jsonb, OUT message text, OUT warnings jsonb,
                             OUT invalid jsonb, OUT lead jsonb) LANGUAGE sql AS $$
    SELECT b->>'message', b->'warnings', b->'lead'->'extra'->'_invalid',
           (b->'lead') - 'created_at' - 'updated_at' - 'extra'
      FROM leadintake_from_dialer(payload) b
$$;

-- The setting: reject by default, and nothing but reject or keep.
SHOW leadintake.invalid_fields;
SET leadintake.invalid_fields = 'sometimes';

-- Under reject, today's 400 naming every bad field; nothing is stored.
SELECT pg_temp.try('{"user": "agent1", "lead_id": "K0", "email": "nope", "epoch": "now"}');
SELECT count(*) AS stored FROM leadintake.leads WHERE dialer_lead_id = 'K0';

SET leadintake.invalid_fields = keep;
-- Each kind of invalid value: 201, the field stored as absent, a warning, the value as sent
-- in extra._invalid (strings untrimmed, numbers as numbers, objects and arrays as given).
SELECT c.k, x.message, x.warnings, x.invalid, x.lead->c.k AS stored
  FROM (VALUES ('postal_code', '" SW1A 1AA SW1A 1AA SW1A "'::jsonb),
               ('date_of_birth', '"1990-02-30"'), ('email', '"not-an-email"'),
               ('SQLdate', '"2024-01-15T10:30:00"'), ('epoch', '"17e8"'),
               ('server_ip', '"300.1.2.3"'), ('gmt_offset_now', '15'),
               ('city', '{"a": [1, null]}'), ('last_name', '["Smith", "Jones"]')) c(k, v),
       pg_temp.kept(jsonb_build_object('user', 'agent1', 'lead_id', 'K-' || c.k, c.k, c.v)) x;
-- The stored rows: each invalid column NULL, every lead there.
SELECT dialer_lead_id, postal_code, date_of_birth, email, sql_date, epoch, server_ip,
       gmt_offset_now, city, last_name, extra ? '_invalid' AS has_invalid
  FROM leadintake.leads WHERE dialer_lead_id LIKE 'K-%' ORDER BY id;

-- Several at once: warnings sorted in jsonb's order, valid fields stored as usual.
SELECT message, warnings, invalid, lead->>'first_name' AS first_name, lead->>'phone' AS phone
  FROM pg_temp.kept('{"user": "agent1", "lead_id": "K-MANY", "first_name": "Ann",
                      "email": "a@b", "epoch": 1.5, "phone_code": "12345",
                      "phone": "07700 900100", "title": "Mr Mr Mr Mr Mr Mr Mr Mr Mr Mr Mr Mr"}');

-- Derived values see the invalid field as absent: full_name from the valid parts only...
SELECT lead->>'full_name' AS full_name, lead->'first_name' AS first_name, warnings
  FROM pg_temp.kept('{"user": "agent1", "lead_id": "K-NAME", "first_name": ["Jo", "Ann"],
                      "last_name": "Smith"}');
-- ...the phone falls back to phone_number, and matching uses that.
SELECT pg_temp.try('{"user": "agent1", "phone_number": "07700 900555", "city": "Leeds"}');
SELECT message, lead->>'phone' AS phone, lead->>'city' AS city, warnings
  FROM pg_temp.kept('{"user": "agent1", "phone": "ext 5", "phone_number": "07700 900555"}');
-- An invalid phone alone is no phone: nothing to match, a new lead without one.
SELECT message, lead->'phone' AS phone, lead->'phone_e164' AS e164, invalid
  FROM pg_temp.kept('{"user": "agent1", "phone": "07700 900555 ext 5"}');
-- An invalid phone_code is absent too: the default code makes phone_e164.
SELECT lead->>'phone_e164' AS e164, warnings
  FROM pg_temp.kept('{"user": "agent1", "phone_code": "abc", "phone_number": "07700 900777"}');
-- An invalid canonical key is absent, so its alias stands in; both values are kept.
SELECT lead->>'recording_file' AS recording_file, invalid
  FROM pg_temp.kept('{"user": "agent1", "recording_file": {"x": 1},
                      "recording_filename": "call.wav"}');

-- On update an invalid field leaves its column untouched; extra keeps what it held, and
-- "_invalid" is merged into it like any other key of extra (the latest call's wins).
SELECT pg_temp.try('{"user": "agent1", "lead_id": "K-UPD", "email": "ann@example.com",
                     "date_of_birth": "1980-01-15", "city": "York", "source": "web"}');
SELECT message, warnings FROM pg_temp.kept('{"user": "agent2", "lead_id": "K-UPD",
    "email": "ann at example", "date_of_birth": "15/01/1980", "city": "Leeds", "batch": 7}');
SELECT email, date_of_birth, city, status, extra FROM leadintake.leads
 WHERE dialer_lead_id = 'K-UPD';
SELECT message, warnings FROM pg_temp.kept('{"user": "agent1", "lead_id": "K-UPD",
    "server_ip": "localhost"}');
SELECT email, date_of_birth, server_ip, extra FROM leadintake.leads
 WHERE dialer_lead_id = 'K-UPD';

-- What stays an error under keep: a missing identity, an identity that is only invalid,
-- an unresolved agent (404), a body that is not a JSON object, a NUL byte.
SELECT pg_temp.try('{"first_name": "Ann", "email": "bad"}');
SELECT pg_temp.try('{"user": ["agent1", "agent2"], "email": "bad"}');
SELECT pg_temp.try('{"user": "nobody", "email": "bad"}');
SELECT pg_temp.try('[{"user": "agent1"}]');
SELECT status, response FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "city": "A\u0000B"}', 'UTF8'), 'k', NULL);
SELECT status, response FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "city": "A', 'UTF8') || '\x00'::bytea
        || convert_to('B"}', 'UTF8'), 'k', NULL);
-- An invalid user is only a warning when dialer_user_id identifies the agent.
SELECT message, warnings, lead->>'assigned_agent_username' AS agent
  FROM pg_temp.kept(jsonb_build_object('dialer_user_id', '1002', 'user', repeat('u', 101)));

-- intake_log.error holds the warnings of a 201, in the 400's sentence form.
SELECT source, status, error FROM leadintake.intake_log
 WHERE payload->>'lead_id' IN ('K-MANY', 'K-UPD') ORDER BY id;

-- Through the shim's entry: 201 with "warnings" last in the body (jsonb's key order).
SELECT status, response - 'lead' AS body, response::text ~ '"success": true, "warnings": {' AS last,
       response->'lead'->'extra' AS extra, dashboard_query
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "K-HTTP",
      "email": "x@y", "notes": "call back"}', 'UTF8'), 'dialer', '192.0.2.7', false);
-- The minimal body (a key from the URL) carries the warnings too: they are the request's own.
SELECT status, response FROM leadintake.http_intake(convert_to('{"user": "agent1",
      "lead_id": "K-HTTP", "email": "x@y", "first_name": "Al"}', 'UTF8'), 'url-key', NULL, true);
SELECT source, key_name, status, error FROM leadintake.intake_log
 WHERE payload->>'lead_id' = 'K-HTTP' ORDER BY id;

-- Through the inbox: processed as 201, the warnings in the row's error and the log's.
INSERT INTO leadintake.inbox (payload) VALUES
    ('{"user": "agent1", "lead_id": "K-IN1", "gmt_offset_now": "+15", "city": "Hull"}'),
    ('{"user": "agent1", "lead_id": "K-IN2", "city": "Hull"}'),
    ('{"user": "nobody", "lead_id": "K-IN3", "gmt_offset_now": "+15"}');
SELECT status, lead_id IS NOT NULL AS has_lead, error FROM leadintake.process_inbox(10);
SELECT payload->>'lead_id' AS lead_id, status, error FROM leadintake.inbox ORDER BY id;
SELECT l.gmt_offset_now, l.city, l.extra FROM leadintake.leads l WHERE dialer_lead_id = 'K-IN1';

-- Replay: a request refused under reject goes through under keep.
RESET leadintake.invalid_fields;
SELECT status FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "K-RE",
      "SQLdate": "yesterday"}', 'UTF8'), 'dialer', NULL, false);
SET leadintake.invalid_fields = keep;
SELECT r->>'message' AS message, r->'warnings' AS warnings
  FROM leadintake.replay((SELECT max(id) FROM leadintake.intake_log
                           WHERE payload->>'lead_id' = 'K-RE')) r;
SELECT source, status, error FROM leadintake.intake_log
 WHERE payload->>'lead_id' = 'K-RE' ORDER BY id;

-- SET LOCAL: keep for one transaction, reject again after it.
RESET leadintake.invalid_fields;
BEGIN;
SET LOCAL leadintake.invalid_fields = keep;
SELECT pg_temp.try('{"user": "agent1", "lead_id": "K-LOCAL", "email": "nope"}');
COMMIT;
SHOW leadintake.invalid_fields;
SELECT pg_temp.try('{"user": "agent1", "lead_id": "K-LOCAL", "email": "nope"}');

-- ALTER ROLE: the shim's login role alone gets keep, from its next session on.
CREATE ROLE regress_li_keep_shim LOGIN IN ROLE leadintake_shim;
ALTER ROLE regress_li_keep_shim SET leadintake.invalid_fields = 'sometimes';
ALTER ROLE regress_li_keep_shim SET leadintake.invalid_fields = 'keep';
\c - regress_li_keep_shim
SHOW leadintake.invalid_fields;
SELECT status, response->'warnings' AS warnings FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "lead_id": "K-ROLE", "epoch": "soon"}', 'UTF8'), 'dialer',
    NULL, false);
\c - postgres
SHOW leadintake.invalid_fields;
SELECT status, response FROM leadintake.http_intake(
    convert_to('{"user": "agent1", "lead_id": "K-ROLE", "epoch": "soon"}', 'UTF8'), 'dialer',
    NULL, false);
DROP ROLE regress_li_keep_shim;
