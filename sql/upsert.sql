-- Contract section 5: one lead per person.
\i sql/setup.inc

-- Create: status interested, the resolved agent, created_at = updated_at = now().
BEGIN;
SELECT r->>'status' AS status, r->>'assigned_agent_username' AS agent, r->'created' AS created
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1", "first_name": "John",
    "last_name": "Smith", "phone_number": "07700 900001", "city": "Leeds",
    "custom": "a", "keep": "k"}'::jsonb) x(b), LATERAL (SELECT b->'lead' || jsonb_build_object('created', b->'created')) y(r);
SELECT status, created_at = now() AS created_now, updated_at = now() AS updated_now
  FROM leadintake.leads WHERE dialer_lead_id = 'L1';
COMMIT;
-- A qualifier moves the lead on, and another agent owns it now.
UPDATE leadintake.leads SET status = 'qualified', assigned_agent_id = 2 WHERE dialer_lead_id = 'L1';

-- Update by lead_id: present fields overwrite, absent ones never erase, extra merges,
-- status and agent stay, updated_at moves.
SELECT pg_sleep(0.01);
SELECT b->'created' AS created, b->>'message' AS message, b->'lead'->>'status' AS status,
       b->'lead'->>'assigned_agent_username' AS agent, b->'lead'->>'city' AS city,
       b->'lead'->>'last_name' AS last_name, b->'lead'->>'first_name' AS first_name,
       b->'lead'->>'full_name' AS full_name, b->'lead'->'extra' AS extra
  FROM leadintake_from_dialer('{"user": "agent3", "lead_id": "L1", "last_name": "Smythe",
    "city": "", "custom": "b", "new": "n"}'::jsonb) b;
SELECT count(*) AS leads, bool_and(updated_at > created_at) AS updated_later
  FROM leadintake.leads WHERE dialer_lead_id = 'L1';

-- Derived values follow the merged lead: explicit full_name wins...
SELECT b->'lead'->>'full_name' FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1",
    "full_name": "Johnny Smythe", "first_name": "Jon"}'::jsonb) b;
-- ...else a name rebuilt from the merged parts when any part was sent...
SELECT b->'lead'->>'full_name' FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1",
    "middle_initial": "Q"}'::jsonb) b;
-- ...else the stored name stays.
SELECT b->'lead'->>'full_name' FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1",
    "city": "York"}'::jsonb) b;
-- phone_e164 follows the stored phone.
SELECT b->'lead'->>'phone' AS phone, b->'lead'->>'phone_e164' AS e164
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1", "phone": "+33 6 12 34 56 78"}'::jsonb) b;
SELECT b->'lead'->>'phone' AS phone, b->'lead'->>'phone_e164' AS e164
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1", "email": "j@example.com"}'::jsonb) b;
SELECT b->'lead'->>'phone' AS phone, b->'lead'->>'phone_e164' AS e164
  FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "L1", "phone": "0612345678",
    "phone_code": "33"}'::jsonb) b;

-- Without a known lead_id, the phone finds the lead, in any spelling.
SELECT b->'created' AS created, b->'lead'->>'dialer_lead_id' AS lead_id, b->'lead'->>'id' AS id
  FROM leadintake_from_dialer('{"user": "agent2", "phone_number": "+44 7700 900002",
    "first_name": "Ann"}'::jsonb) b;
SELECT b->'created' AS created, b->'lead'->>'dialer_lead_id' AS lead_id, b->'lead'->>'id' AS id,
       b->'lead'->>'full_name' AS full_name
  FROM leadintake_from_dialer('{"user": "agent2", "phone": "07700 900002", "last_name": "Lee",
    "lead_id": "L2"}'::jsonb) b;
-- A lead found by phone keeps its own dialer_lead_id.
SELECT b->'created' AS created, b->'lead'->>'dialer_lead_id' AS lead_id, b->'lead'->>'id' AS id
  FROM leadintake_from_dialer('{"user": "agent2", "phone": "0044 7700 900002", "lead_id": "L3"}'::jsonb) b;
-- The lead_id match comes before the phone match.
SELECT b->'created' AS created, b->'lead'->>'dialer_lead_id' AS lead_id, b->'lead'->>'id' AS id
  FROM leadintake_from_dialer('{"user": "agent2", "phone": "07700 900002", "lead_id": "L1"}'::jsonb) b;

-- Several leads with one phone (made by the CRM): the oldest is found.
INSERT INTO leadintake.leads (full_name, phone, phone_e164, created_at, updated_at) VALUES
    ('Newer', '01632 960100', '+441632960100', now() - interval '1 day', now() - interval '1 day'),
    ('Oldest', '01632 960100', '+441632960100', now() - interval '3 days', now() - interval '3 days'),
    ('Older', '01632 960100', '+441632960100', now() - interval '2 days', now() - interval '2 days');
SELECT b->'created' AS created, b->'lead'->>'full_name' AS full_name
  FROM leadintake_from_dialer('{"user": "agent1", "phone_number": "01632960100"}'::jsonb) b;

-- No lead_id and no phone: a new lead every time.
SELECT b->'created' AS created FROM leadintake_from_dialer('{"user": "agent1", "first_name": "X"}'::jsonb) b;
SELECT b->'created' AS created FROM leadintake_from_dialer('{"user": "agent1", "first_name": "X"}'::jsonb) b;

-- A failed call in a rolled-back transaction leaves nothing behind; a good one in the same
-- transaction rolls back with it.
SELECT count(*) AS leads_before FROM leadintake.leads \gset
SELECT count(*) AS log_before FROM leadintake.intake_log \gset
BEGIN;
SELECT b->'created' FROM leadintake_from_dialer('{"user": "agent1", "lead_id": "TX1"}'::jsonb) b;
SELECT leadintake_from_dialer('{"user": "agent1", "email": "bad"}'::jsonb);
ROLLBACK;
SELECT count(*) - :leads_before AS new_leads FROM leadintake.leads;
SELECT count(*) - :log_before AS new_log_rows FROM leadintake.intake_log;

-- The same lead many times in one statement: one lead, updated in turn.
SELECT count(*) FILTER (WHERE (b->>'created')::boolean) AS created,
       count(*) FILTER (WHERE NOT (b->>'created')::boolean) AS updated
  FROM generate_series(1, 50) g,
       LATERAL leadintake_from_dialer(jsonb_build_object('user', 'agent1', 'lead_id', 'LOOP',
                                                         'comments', 'pass ' || g)) b;
SELECT count(*), max(comments) AS last_comment FROM leadintake.leads WHERE dialer_lead_id = 'LOOP';
-- The same phone many times without lead_id: one lead.
SELECT count(*) FILTER (WHERE (b->>'created')::boolean) AS created
  FROM generate_series(1, 50) g,
       LATERAL leadintake_from_dialer(jsonb_build_object('user', 'agent1',
           'phone_number', CASE g % 3 WHEN 0 THEN '07700 900777' WHEN 1 THEN '+447700900777'
                                      ELSE '0044 (0)7700-900-777' END)) b;
SELECT count(*) FROM leadintake.leads WHERE phone_e164 = '+447700900777';
