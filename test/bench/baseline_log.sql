-- pgbench script, a diagnostic (no target): the floor of what the contract asks of a call.
-- baseline.sql's upsert and the intake_log row of section 2 (the payload as received, the
-- outcome), in one statement: the two writes every stored call must make, and nothing else
-- (no validation, agent look-up, phone claim, foreign key or NOTIFY). Its distance from
-- baseline.sql is the least the audit log costs; its rate is the most the function can reach.
\set agent random(1, 50)
\set new random(0, 1)
\set id :new * (:base + random(10000000, 999999999)) + (1 - :new) * random(1, :n)
\set p 100000000000 + :id
WITH stored AS (
INSERT INTO bench.leads AS l (assigned_agent_id, dialer_lead_id, full_name, phone, phone_e164,
    email, list_id, campaign, phone_code, phone_number, title, first_name, last_name, address1,
    city, postal_code, country_code, sql_date, uniqueid, comments)
VALUES (:agent, :id, 'John Smith', '07' || :p, '+447' || :p,
    'john.smith' || :id || '@example.co.uk', '1001', 'UKSALES', '44', '07' || :p, 'Mr', 'John',
    'Smith', '221B Baker Street', 'London', 'NW1 6XE', 'GB', '2024-01-15 10:30:00',
    '1705314600.12345', 'Interested in the premium plan; call back after 5pm, prefers e-mail. '
    'Spoke with the spouse too, both agreed to a follow-up next week.')
ON CONFLICT (dialer_lead_id) DO UPDATE SET full_name = EXCLUDED.full_name,
    phone = EXCLUDED.phone, phone_e164 = EXCLUDED.phone_e164, email = EXCLUDED.email,
    list_id = EXCLUDED.list_id, campaign = EXCLUDED.campaign, phone_code = EXCLUDED.phone_code,
    phone_number = EXCLUDED.phone_number, title = EXCLUDED.title,
    first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    address1 = EXCLUDED.address1, city = EXCLUDED.city, postal_code = EXCLUDED.postal_code,
    country_code = EXCLUDED.country_code, sql_date = EXCLUDED.sql_date,
    uniqueid = EXCLUDED.uniqueid, comments = EXCLUDED.comments, updated_at = now()
RETURNING id, xmax = 0 AS created)
INSERT INTO leadintake.intake_log (received_at, source, status, lead_id, created, duration_ms,
    payload)
SELECT clock_timestamp(), 'sql', 201, id, created, 0.1, ('{"user": "agent' || :agent
    || '", "lead_id": "' || :id || '", "list_id": "1001", "campaign": "UKSALES", '
    '"phone_code": "44", "phone_number": "07' || :p || '", "title": "Mr", "first_name": "John", '
    '"last_name": "Smith", "email": "john.smith' || :id || '@example.co.uk", '
    '"address1": "221B Baker Street", "city": "London", "postal_code": "NW1 6XE", '
    '"country_code": "GB", "SQLdate": "2024-01-15 10:30:00", "uniqueid": "1705314600.12345", '
    '"comments": "Interested in the premium plan; call back after 5pm, prefers e-mail. Spoke '
    'with the spouse too, both agreed to a follow-up next week."}')::jsonb
  FROM stored;
