-- The update 1.4 -> 1.5 of a database that holds leads made under the old phone rule
-- (issue 18): the column, recompute_phones(), and what a DBA sees before and after.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake VERSION '1.4';
RESET client_min_messages;
INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'), ('agent2', 'Agent Two', '1002');
-- Leads as 1.4 stored them: phone_e164 by the rule of before. Two of them are one person
-- in Italy, whom the old rule gave two numbers; one phone_code predates validation.
INSERT INTO leadintake.leads (full_name, phone, phone_code, phone_e164, dialer_lead_id,
                              assigned_agent_id, created_at, updated_at)
VALUES ('Ida Old', '06 1234 5678', '39', '+39612345678', 'OLD-IT', 1, '2024-01-01', '2024-01-01'),
       ('Ida Again', '+39 06 1234 5678', NULL, '+390612345678', NULL, 2, '2024-01-02', '2024-01-02'),
       ('Sam Old', '1 (555) 123-4567', '1', '+115551234567', 'OLD-US', 1, '2024-01-03', '2024-01-03'),
       ('Una Old', '07700 900123', NULL, '+447700900123', 'OLD-UK', 1, '2024-01-04', '2024-01-04'),
       ('Nora Nophone', NULL, NULL, NULL, 'OLD-NONE', 2, '2024-01-05', '2024-01-05'),
       ('Lon Don', '020 7946 0958', 'UK', '+4420 7946 0958', 'OLD-LON', 2, '2024-01-06', '2024-01-06');

-- Before the recompute, a DBA can list the leads that will share a number (and had not):
SELECT leadintake.phone_e164(phone, CASE WHEN phone_code ~ '^\+?[0-9]{1,4}$' THEN phone_code END) AS will_be,
       array_agg(id ORDER BY created_at, id) AS leads, array_agg(phone_e164 ORDER BY created_at, id) AS now
  FROM leadintake.leads WHERE phone IS NOT NULL
 GROUP BY 1 HAVING count(DISTINCT phone_e164) > 1;

ALTER EXTENSION leadintake UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'leadintake';
-- The column is there, empty: nothing was rewritten, phone_e164 is still the old one.
SELECT id, phone_e164, phone_valid FROM leadintake.leads ORDER BY id;

-- The DBA's recompute: a batch per transaction, progress as it goes.
SET client_min_messages = notice;
CALL leadintake.recompute_phones(2);
SELECT id, phone, phone_code, phone_e164, phone_valid FROM leadintake.leads ORDER BY id;
-- Every lead now has what an intake computes.
SELECT count(*) FILTER (WHERE phone_e164 IS DISTINCT FROM leadintake.phone_e164(phone, CASE WHEN phone_code ~ '^\+?[0-9]{1,4}$' THEN phone_code END)
                           OR phone_valid IS DISTINCT FROM leadintake.phone_valid(phone, CASE WHEN phone_code ~ '^\+?[0-9]{1,4}$' THEN phone_code END))
       AS differing
  FROM leadintake.leads;
-- Run again: nothing to change.
CALL leadintake.recompute_phones();
RESET client_min_messages;

-- Two leads that now share a number stay two (README, "Phones"): this lists them.
SELECT phone_e164, array_agg(id ORDER BY created_at, id) AS leads
  FROM leadintake.leads WHERE phone_e164 IS NOT NULL
 GROUP BY phone_e164 HAVING count(*) > 1;
-- A new call for that person finds the oldest of them.
SELECT b->'created' AS created, b->'lead'->>'id' AS id, b->'lead'->>'dialer_lead_id' AS lead_id
  FROM leadintake_from_dialer('{"user": "agent1", "phone_number": "+39 06 1234 5678"}'::jsonb) b;
SELECT b->'created' AS created, b->'lead'->>'dialer_lead_id' AS lead_id
  FROM leadintake_from_dialer('{"user": "agent1", "phone_number": "(555) 123-4567", "phone_code": "1"}'::jsonb) b;

-- Only the DBA: PUBLIC may not run them; one batch needs a batch size of 1 or more.
SELECT has_function_privilege('public', 'leadintake.recompute_phones_batch(bigint, integer)', 'EXECUTE') AS batch,
       has_function_privilege('public', 'leadintake.recompute_phones(integer)', 'EXECUTE') AS whole;
SELECT * FROM leadintake.recompute_phones_batch(0, 0);
-- Inside a transaction block, one batch at a time:
BEGIN;
SELECT * FROM leadintake.recompute_phones_batch(0, 4);
SELECT * FROM leadintake.recompute_phones_batch(4, 4);
SELECT * FROM leadintake.recompute_phones_batch(7, 4);
COMMIT;
