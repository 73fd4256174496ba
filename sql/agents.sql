-- Contract section 4: agent resolution.
\i sql/setup.inc
INSERT INTO leadintake.agents (username, display_name, dialer_user_id, active) VALUES
    ('Mixed.Case', 'Mixed', NULL, true),
    ('twin', 'Twin lower', NULL, true),
    ('TWIN', 'Twin upper', NULL, true),
    ('Sleepy', 'Sleepy', NULL, false);
SELECT count(*) AS agents_before FROM leadintake.agents \gset

-- dialer_user_id is preferred and exact.
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"dialer_user_id": "1002", "user": "agent1"}') r;
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"dialer_user_id": 1003}') r;
-- Unknown or inactive dialer_user_id: the look-up goes on to user.
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"dialer_user_id": "9999", "user": "agent1"}') r;
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"dialer_user_id": "1009", "user": "agent2"}') r;
-- user: exact first, then case-insensitively when unique.
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"user": "agent3"}') r;
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"user": "AGENT3"}') r;
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"user": "mixed.case"}') r;
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"user": "TWIN"}') r;
SELECT r->>'assigned_agent_username' FROM pg_temp.lead('{"agent_username": "twin"}') r;
-- Not unique case-insensitively: not resolved.
SELECT pg_temp.try('{"user": "Twin"}');
-- Not resolved: 404 / P0002, naming the look-up that failed.
SELECT pg_temp.try('{"user": "agent9"}');
SELECT pg_temp.try('{"dialer_user_id": "9999"}');
SELECT pg_temp.try('{"dialer_user_id": "9999", "user": "agent9"}');
-- An inactive agent does not resolve.
SELECT pg_temp.try('{"dialer_user_id": "1009"}');
SELECT pg_temp.try('{"user": "retired"}');
SELECT pg_temp.try('{"user": "sleepy"}');
SELECT pg_temp.try('{"dialer_user_id": "1009", "user": "retired"}');
-- The HTTP body says it the contract's way.
SELECT status, response FROM leadintake.http_intake(convert_to('{"user": "agent9"}', 'UTF8'), NULL, NULL);
SELECT status, response FROM leadintake.http_intake(convert_to('{"dialer_user_id": "42"}', 'UTF8'), NULL, NULL);
SELECT status, response FROM leadintake.http_intake(convert_to('{"user": "retired"}', 'UTF8'), NULL, NULL);
-- Agents are never created by an intake, and an unresolved intake writes no lead.
SELECT count(*) = :agents_before AS agents_unchanged FROM leadintake.agents;
SELECT count(*) AS leads FROM leadintake.leads;
-- The display name is the agent's name; without one, the username stands in.
SELECT r->>'assigned_agent_name' AS name FROM pg_temp.lead('{"user": "agent1"}') r;
SELECT r->>'assigned_agent_name' AS name FROM pg_temp.lead('{"user": "agent3"}') r;
