-- Contract sections 2 and 3: a body that is not valid JSON is kept in intake_log.raw_body,
-- its secrets redacted to the end of each value as a lenient reader would see the value
-- (issue 13, item 9). Each case plants a secret value containing "SECRET" and shows the
-- stored text (as a JSON string, so that control characters are visible).
\i sql/setup.inc

-- The raw_body the shim's entry stores for body.
CREATE FUNCTION pg_temp.raw(body text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    got int;
BEGIN
    SELECT status INTO got FROM leadintake.http_intake(convert_to(body, 'UTF8'), 'k', NULL);
    IF got <> 400 THEN
        RAISE EXCEPTION 'expected a 400 for a body that is not JSON, got %', got;
    END IF;
    RETURN (SELECT raw_body FROM leadintake.intake_log ORDER BY id DESC LIMIT 1);
END $$;

SELECT name, to_json(pg_temp.raw(body))::text AS raw_body,
       pg_temp.raw(body) !~ 'SECRET|TAIL' AS nothing_left
  FROM (VALUES
    ('single-quoted value',     $b${"user": "agent1", "pass": 'my SECRETA pw',}$b$),
    ('array value',             $b${"user": "agent1", "pass": ["SECRETB1","SECRETB2"], oops$b$),
    ('nested array value',      $b${"pass": [["SECRETC1"], {"x": "SECRETC2]"}], "user": "agent1"$b$),
    ('object value',            $b${"api_key": {"a": "SECRETD", "b": {"c": 1}}, "user": oops$b$),
    ('stray quote in a value',  $b${"user": "agent1", "pass": "SECRETE"TAIL", "lead_id": "7"$b$ || E'\n' || '"x": 1,'),
    ('quoted then words',       $b${"orig_pass": "SECRETF" TAIL, "user": "agent1"$b$),
    ('unquoted with spaces',    $b${"phone_pass": my SECRETG pw, "user": "agent1"$b$ || E'\n' || '"x": 1,'),
    ('form feed before colon',  E'{"user": "agent1", "pass"\f: "SECRETH", oops'),
    ('no-break space',          E'{"user": "agent1", "pass"\u00a0: "SECRETI", oops'),
    ('full-width colon',        E'{"user": "agent1", "pass"\uff1a"SECRETJ", oops'),
    ('no-break space after',    E'{"dialer_api_key":\u00a0SECRETK, oops'),
    ('form-ish stays per pair', 'user=agent1&pass=SECRETL pw&lead_id=7&oops'),
    ('unterminated string',     '{"user": "agent1", "pass": "SECRETM, "lead_id": "7"'),
    ('array, then a key',       '{"pass": ["SECRETN"], "lead_id": "7", oops')
  ) AS c (name, body)
 ORDER BY name;

-- Nothing planted above reached any stored row.
SELECT count(*) AS rows_with_a_secret FROM leadintake.intake_log
 WHERE raw_body ~ 'SECRET|TAIL' OR payload::text ~ 'SECRET|TAIL';
