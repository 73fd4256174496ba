-- pgbench script: the baseline, a bare prepared upsert of the same row into bench.leads (a
-- plain copy of leadintake.leads with the same indexes), same variables as function.sql.
-- It writes what the function writes to the lead (derived full name and phone_e164
-- included) and nothing else: no validation, no agent look-up, no log row, no NOTIFY.
\set agent random(1, 50)
\set new random(0, 1)
\set id :new * (:base + random(10000000, 999999999)) + (1 - :new) * random(1, :n)
\set p 100000000000 + :id
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
    uniqueid = EXCLUDED.uniqueid, comments = EXCLUDED.comments, updated_at = now();
