-- pgbench script: one dialer payload through leadintake_from_dialer (run with -M prepared,
-- -D n=<leads stored> -D base=<a multiple of 10^9, new for each run>).
-- Half the calls name an existing lead (1..n), half a new one (base + 10^7..10^9-1), whose
-- phone is its own (setup.sql); the
-- payload is the one of bench.payload() and shim.lua, sent as JSON text like a client would.
\set agent random(1, 50)
\set new random(0, 1)
\set id :new * (:base + random(10000000, 999999999)) + (1 - :new) * random(1, :n)
\set p 100000000000 + :id
SELECT leadintake_from_dialer(('{"user": "agent' || :agent || '", "lead_id": "' || :id
    || '", "list_id": "1001", "campaign": "UKSALES", "phone_code": "44", "phone_number": "07'
    || :p || '", "title": "Mr", "first_name": "John", "last_name": "Smith", "email": "john.smith'
    || :id || '@example.co.uk", "address1": "221B Baker Street", "city": "London", '
    '"postal_code": "NW1 6XE", "country_code": "GB", "SQLdate": "2024-01-15 10:30:00", '
    '"uniqueid": "1705314600.12345", "comments": "Interested in the premium plan; call back '
    'after 5pm, prefers e-mail. Spoke with the spouse too, both agreed to a follow-up next week."}')::jsonb);
