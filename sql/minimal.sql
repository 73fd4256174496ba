-- Contract section 7: a request authenticated by a key in the URL (the shim's
-- --allow-query-key: a key every agent's browser sees) gets a minimal success body, and a
-- dashboard query to match: id, status, the agent's username and the fields the request
-- sent itself, never stored data it did not send (issue 13 item 6). The shim tells
-- http_intake so with its fourth argument, minimal.
\i sql/setup.inc

-- A lead with personal data, as the dialer's header-key requests stored it.
SELECT leadintake_from_dialer('{"user": "agent2", "lead_id": "777001", "first_name": "Stored",
    "last_name": "Person", "phone_number": "07700 900777", "email": "stored@example.com",
    "date_of_birth": "1970-05-06", "address1": "1 Private Road", "comments": "stored comment",
    "notes": "stored note", "custom": "stored extra"}'::jsonb)->>'message' AS seeded;
SELECT id AS lead_777001 FROM leadintake.leads WHERE dialer_lead_id = '777001' \gset

-- The body and query with the lead's id written as ID (it changes with the sequence).
CREATE FUNCTION pg_temp.call(body text, minimal boolean)
    RETURNS TABLE (status int, response text, dashboard_query text) LANGUAGE sql AS $$
    SELECT h.status,
           jsonb_pretty(h.response - 'lead' || jsonb_build_object('lead',
               h.response->'lead' || jsonb_build_object('id', 'ID'))),
           regexp_replace(h.dashboard_query, 'lead_id=\d+', 'lead_id=ID')
      FROM leadintake.http_intake(convert_to(body, 'UTF8'), 'web', '192.0.2.7', minimal) h
$$;

-- The issue's request: a URL key and someone else's lead id. Updated, and nothing of it shown.
SELECT * FROM pg_temp.call('{"user": "agent1", "lead_id": "777001"}', true);
SELECT (response->'lead'->>'id')::bigint = :lead_777001 AS same_lead
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "777001"}', 'UTF8'),
                              'web', NULL, true);
-- The same with a header key: the whole lead, as before.
SELECT status, response->'lead'->>'email' AS email, response->'lead'->>'date_of_birth' AS dob,
       response->'lead'->>'comments' AS comments, response->'lead'->'extra' AS extra,
       regexp_replace(dashboard_query, 'lead_id=\d+', 'lead_id=ID') AS dashboard_query
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "777001"}', 'UTF8'),
                              'dialer', NULL, false);
-- The three-argument entry (a shim built before 1.4) answers the whole lead too.
SELECT response->'lead'->>'email' AS email
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "777001"}', 'UTF8'),
                              'dialer', NULL);

-- An update that sends some fields: those, as stored from this request; full_name built from
-- the parts it sent (the stored one now also has the stored last name).
SELECT * FROM pg_temp.call('{"user": "agent1", "lead_id": "777001", "first_name": " Eve ",
    "city": "York", "date_of_birth": "1990-01-02", "epoch": "+17", "server_ip": "::FFFF:10.0.0.1",
    "notes": "", "comments": "--A--comments--B--", "custom": "sent extra"}', true);
SELECT full_name, email, comments, city, date_of_birth FROM leadintake.leads
 WHERE dialer_lead_id = '777001';

-- A new lead: every field it sent; phone from phone_number, full_name from the parts.
SELECT * FROM pg_temp.call('{"dialer_user_id": "1001", "lead_id": "777002",
    "first_name": "Zoë", "middle_initial": "Q", "last_name": "New", "phone_number": "07700 900002",
    "email": "new@example.com", "comments": "call after 5 & ask for Bob"}', true);

-- Found by phone, the lead keeps its own dialer_lead_id: the request's is not what is stored,
-- so it is not shown either (nor the stored one).
SELECT * FROM pg_temp.call('{"user": "agent1", "lead_id": "OTHER-9", "phone_number": "+44 7700 900777"}',
                           true);
SELECT (response->'lead'->>'id')::bigint = :lead_777001 AS found_by_phone
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "OTHER-9",
                                           "phone_number": "+44 7700 900777"}', 'UTF8'),
                              'web', NULL, true);

-- minimal NULL errs on the side of less.
SELECT response->'lead' ? 'email' AS shows_email, jsonb_object_keys(response->'lead') AS keys
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "lead_id": "777001"}', 'UTF8'),
                              'web', NULL, NULL)
 ORDER BY keys;

-- Errors are the same whoever asks.
SELECT status, response, dashboard_query
  FROM leadintake.http_intake(convert_to('{"user": "agent1", "email": "x"}', 'UTF8'), 'web', NULL, true);
SELECT status, response
  FROM leadintake.http_intake(convert_to('{"user": "agent9", "lead_id": "777001"}', 'UTF8'), 'web', NULL, true);

-- Every call is logged as usual, under its key name.
SELECT key_name, status, count(*) FROM leadintake.intake_log WHERE source = 'http'
 GROUP BY 1, 2 ORDER BY 1, 2;
