-- test/pgtap/upgrade.sql: a database created at version 1.0 and updated with
-- `ALTER EXTENSION leadintake UPDATE` (1.0 -> 1.1 -> 1.2 -> 1.3 -> 1.4 -> 1.5 -> 1.6 -> 1.7) keeps its
-- data, runs the 1.1, 1.2, 1.4, 1.5, 1.6 and 1.7 functions on it, and ends with exactly the objects
-- of a fresh `CREATE EXTENSION leadintake` (the default version, 1.7) (issues 4, 5, 13, 16, 18).
--
-- How the pgTAP files run (scripts/test.sh): each file gets a fresh database that has the
-- extensions pgtap and dblink, and runs under pg_prove (psql, ON_ERROR_STOP). Each file
-- creates the extension leadintake itself and leaves nothing behind: this one runs in one
-- transaction that it rolls back. Run alone:
--   pg_prove -d DB test/pgtap/upgrade.sql     (DB with CREATE EXTENSION pgtap, dblink)
--
-- The comparison: pg_temp.describe() lists, as (kind, item) text rows, everything that makes
-- up the extension: its pg_depend 'e' members, the extension row, every relation of schema
-- leadintake, every column (table, position, name, type, not null, default, identity,
-- collation), identity sequences, indexes (pg_get_indexdef), constraints
-- (pg_get_constraintdef), functions (pg_get_functiondef, prosecdef, proconfig, owner,
-- volatility, strictness), ACLs (tables, sequences, columns, functions, schema, exploded so
-- that their order does not count), pg_init_privs (what pg_dump takes as the extension's own
-- privileges), triggers, comments, row types, policies, default ACLs, and the three roles
-- (attributes, memberships, comments). The description of the updated database is kept in a
-- temporary table; the extension is dropped and created afresh in the same database, and
-- described again: both must be identical, kind by kind.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(92);

CREATE FUNCTION pg_temp.describe() RETURNS TABLE (kind text, item text)
LANGUAGE sql AS $$
WITH ext AS (
    SELECT e.oid, e.extnamespace FROM pg_extension e WHERE e.extname = 'leadintake'
), members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), rels AS (
    SELECT c.* FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'leadintake')
), procs AS (
    SELECT p.* FROM pg_proc p
     WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'leadintake')
        OR p.oid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
), roles AS (
    SELECT r.* FROM pg_roles r
     WHERE r.rolname IN ('leadintake_shim', 'leadintake_enqueue', 'leadintake_reader',
                         'leadintake_console')
)
SELECT 'member', pg_describe_object(classid, objid, objsubid) FROM members
UNION ALL
SELECT 'extension', format('version %s, schema %s, relocatable %s, owner %s, config %s, conditions %s',
                           e.extversion, e.extnamespace::regnamespace, e.extrelocatable,
                           pg_get_userbyid(e.extowner),
                           (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text)
                              FROM unnest(e.extconfig) AS c),
                           e.extcondition)
  FROM pg_extension e WHERE e.extname = 'leadintake'
UNION ALL
SELECT 'relation', format('%s: kind %s, owner %s, persistence %s, rls %s/%s, options %s, replica identity %s',
                          c.oid::regclass, c.relkind, pg_get_userbyid(c.relowner),
                          c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
                          c.reloptions, c.relreplident)
  FROM rels c
UNION ALL
SELECT 'column', format('%s column %s: %s %s, not null %s, default %s, identity %L, generated %L, collation %s, storage %s, comment %L',
                        a.attrelid::regclass,
                        row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                        a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                        pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                        CASE WHEN a.attcollation = 0 THEN '-' ELSE a.attcollation::regcollation::text END,
                        a.attstorage, col_description(a.attrelid, a.attnum))
  FROM pg_attribute a
  JOIN rels c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'sequence', format('%s: %s start %s increment %s min %s max %s cache %s cycle %s, owned by %s',
                          s.seqrelid::regclass, format_type(s.seqtypid, NULL), s.seqstart,
                          s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                          (SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
                             FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                              AND d.deptype IN ('a', 'i')))
  FROM pg_sequence s JOIN rels c ON c.oid = s.seqrelid
UNION ALL
SELECT 'index', pg_get_indexdef(i.indexrelid) || format(' (name %s, primary %s, unique %s)',
                                                          i.indexrelid::regclass, i.indisprimary,
                                                          i.indisunique)
  FROM pg_index i JOIN rels c ON c.oid = i.indrelid
UNION ALL
SELECT 'constraint', format('%s %s (%s): %s, deferrable %s deferred %s validated %s',
                            co.conrelid::regclass, co.conname, co.contype,
                            pg_get_constraintdef(co.oid), co.condeferrable, co.condeferred,
                            co.convalidated)
  FROM pg_constraint co WHERE co.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'leadintake')
UNION ALL
SELECT 'function', format(E'%s\n%s\nsecurity definer %s, config %s, owner %s, volatile %s, strict %s, parallel %s, leakproof %s, cost %s, rows %s, comment %L',
                          p.oid::regprocedure,
                          CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END,
                          p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner), p.provolatile,
                          p.proisstrict, p.proparallel, p.proleakproof, p.procost, p.prorows,
                          obj_description(p.oid, 'pg_proc'))
  FROM procs p
UNION ALL
SELECT 'acl', format('%s: %s grants %s to %s%s', c.oid::regclass, pg_get_userbyid(x.grantor),
                     x.privilege_type,
                     CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                     CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END)
  FROM rels c, aclexplode(coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) AS x
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
UNION ALL
SELECT 'column acl', format('%s.%s: %s grants %s to %s%s', a.attrelid::regclass, a.attname,
                            pg_get_userbyid(x.grantor), x.privilege_type,
                            CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                            CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END)
  FROM pg_attribute a JOIN rels c ON c.oid = a.attrelid, aclexplode(a.attacl) AS x
 WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
UNION ALL
SELECT 'function acl', format('%s: %s grants %s to %s%s', p.oid::regprocedure,
                              pg_get_userbyid(x.grantor), x.privilege_type,
                              CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                              CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END)
  FROM procs p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS x
UNION ALL
SELECT 'schema', format('%s: owner %s, comment %L', n.nspname, pg_get_userbyid(n.nspowner),
                        obj_description(n.oid, 'pg_namespace'))
  FROM pg_namespace n WHERE n.nspname = 'leadintake'
UNION ALL
SELECT 'schema acl', format('%s: %s grants %s to %s%s', n.nspname, pg_get_userbyid(x.grantor),
                            x.privilege_type,
                            CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                            CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END)
  FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS x
 WHERE n.nspname = 'leadintake'
UNION ALL
SELECT 'default acl', format('%s %s: %s', pg_get_userbyid(d.defaclrole), d.defaclobjtype, d.defaclacl)
  FROM pg_default_acl d WHERE d.defaclnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'leadintake')
UNION ALL
SELECT 'init privs', format('%s (%s): %s grants %s to %s%s',
                            pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), ip.privtype,
                            pg_get_userbyid(x.grantor), x.privilege_type,
                            CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                            CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END)
  FROM pg_init_privs ip, aclexplode(ip.initprivs) AS x
 WHERE (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM members)
    OR (ip.classoid = 'pg_class'::regclass AND ip.objoid IN (SELECT oid FROM rels))
    OR (ip.classoid = 'pg_proc'::regclass AND ip.objoid IN (SELECT oid FROM procs))
UNION ALL
SELECT 'trigger', pg_get_triggerdef(t.oid) || format(' (enabled %s)', t.tgenabled)
  FROM pg_trigger t JOIN rels c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
UNION ALL
SELECT 'comment', format('%s: %L', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
  FROM pg_description d
 WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM members)
    OR (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rels))
UNION ALL
SELECT 'type', format('%s: type %s, owner %s', t.oid::regtype, t.typtype, pg_get_userbyid(t.typowner))
  FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'leadintake')
UNION ALL
SELECT 'policy', format('%s %s: %s', po.polrelid::regclass, po.polname, pg_get_expr(po.polqual, po.polrelid))
  FROM pg_policy po JOIN rels c ON c.oid = po.polrelid
UNION ALL
SELECT 'role', format('%s: login %s, superuser %s, inherit %s, createdb %s, createrole %s, replication %s, bypassrls %s, connection limit %s, valid until %s, config %s, comment %L',
                      r.rolname, r.rolcanlogin, r.rolsuper, r.rolinherit, r.rolcreatedb,
                      r.rolcreaterole, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                      r.rolvaliduntil, r.rolconfig, shobj_description(r.oid, 'pg_authid'))
  FROM roles r
UNION ALL
SELECT 'role membership', format('%s is a member of %s (admin option %s)',
                                 pg_get_userbyid(m.member), pg_get_userbyid(m.roleid),
                                 m.admin_option)
  FROM pg_auth_members m
 WHERE m.roleid IN (SELECT oid FROM roles) OR m.member IN (SELECT oid FROM roles)
$$;

-- ================================================================ version 1.0, with data
DROP EXTENSION IF EXISTS leadintake CASCADE;
CREATE EXTENSION leadintake VERSION '1.0';
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'leadintake'), '1.0',
    'CREATE EXTENSION leadintake VERSION ''1.0'' installs 1.0');
SELECT hasnt_function('leadintake', 'process_inbox', '1.0 has no process_inbox');
CREATE TEMP TABLE v10 AS SELECT * FROM pg_temp.describe();

INSERT INTO leadintake.agents (username, display_name, dialer_user_id) VALUES
    ('agent1', 'Agent One', '1001'),
    ('agent2', 'Agent Two', '1002'),
    ('retired', NULL, '1009');
UPDATE leadintake.agents SET active = false WHERE username = 'retired';
-- Leads and log rows through the 1.0 entries (SQL and the shim's).
CREATE TEMP TABLE made_at_10 AS
SELECT leadintake_from_dialer(p) AS r FROM (VALUES
    ('{"user":"agent1","lead_id":"UP-1","first_name":"Una","last_name":"Up","phone_number":"07700 900401",
       "email":"una@example.com","date_of_birth":"1980-02-29","SQLdate":"2024-01-15 10:30:00",
       "server_ip":"10.0.0.5","gmt_offset_now":"-5.00","epoch":"1705314600","custom":{"a":1}}'::jsonb),
    ('{"dialer_user_id":"1002","phone_number":"+44 7700 900402","full_name":"Phone Only"}'),
    ('{"user":"agent2","lead_id":"UP-3","comments":"third"}'),
    ('{"user":"agent1","lead_id":"UP-1","notes":"an update"}')
) AS v (p);
CREATE TEMP TABLE http_at_10 AS
SELECT h.status
  FROM (VALUES (1, '{"user":"agent1","lead_id":"UP-H","first_name":"Hal"}'),
               (2, '{"user":"later","lead_id":"UP-LATER","first_name":"Lou","api_key":"x"}'),
               (3, '{"user":"agent1","email":"bad"}'),
               (4, '{"user": oops')) AS v (n, b),
       LATERAL leadintake.http_intake(convert_to(v.b, 'UTF8'), 'dialer', '10.9.9.9') AS h
 ORDER BY v.n;
INSERT INTO leadintake.inbox (payload) VALUES
    ('{"user":"agent2","lead_id":"UP-Q1","first_name":"Queued","pass":"secret"}'),
    ('{"user":"agent1","lead_id":"UP-1","comments":"from the inbox"}'),
    ('{"user":"nobody","lead_id":"UP-Q3"}');

-- Everything of the data, to compare after the update (without the columns 1.5 and 1.6 add).
CREATE FUNCTION pg_temp.data() RETURNS TABLE (t text, n bigint, sum text)
LANGUAGE sql AS $$
    SELECT 'agents', count(*), md5(string_agg(x::text, '|' ORDER BY x.id)) FROM leadintake.agents x
    UNION ALL
    SELECT 'leads', count(*), md5(string_agg((to_jsonb(x) - 'phone_valid')::text, '|' ORDER BY x.id))
      FROM leadintake.leads x
    UNION ALL
    SELECT 'intake_log', count(*), md5(string_agg((to_jsonb(x) - 'replayed_by' - 'replay_of')::text, '|' ORDER BY x.id))
      FROM leadintake.intake_log x
    UNION ALL
    SELECT 'inbox', count(*), md5(string_agg(x::text, '|' ORDER BY x.id)) FROM leadintake.inbox x
    UNION ALL
    SELECT 'phone_claims', count(*), md5(string_agg(x::text, '|' ORDER BY x.phone_e164)) FROM leadintake.phone_claims x
$$;
CREATE TEMP TABLE data_10 AS SELECT * FROM pg_temp.data();
SELECT results_eq('SELECT t, n FROM data_10',
    $$VALUES ('agents', 3::bigint), ('leads', 4::bigint), ('intake_log', 8::bigint),
             ('inbox', 3::bigint), ('phone_claims', 2::bigint)$$,
    'at 1.0: 3 agents, 4 leads, 8 log rows, 3 inbox rows, 2 phone claims');

-- ================================================================ ALTER EXTENSION UPDATE
SELECT pg_relation_filenode('leadintake.intake_log') AS log_file_10 \gset
SELECT lives_ok('ALTER EXTENSION leadintake UPDATE', 'ALTER EXTENSION leadintake UPDATE');
SELECT is(pg_relation_filenode('leadintake.intake_log'), :log_file_10::oid,
    '1.3 moved intake_log.source to a domain without rewriting the log');
SELECT throws_ok($$INSERT INTO leadintake.intake_log (source, status) VALUES ('email', 201)$$,
    '23514', NULL, '... and the domain still refuses a source other than the four');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'leadintake'), '1.7',
    'the extension is now at 1.7');
SELECT is((SELECT mode IN ('batched', 'per call') AND waiting >= 0 FROM leadintake.notify_status()),
    true, 'the 1.2 function notify_status works on the updated database');
SELECT results_eq('SELECT t, n, sum FROM pg_temp.data()', 'SELECT t, n, sum FROM data_10',
    'every row of every table is still there, unchanged');

-- The 1.1 functions on the 1.0 data.
CREATE TEMP TABLE inbox_11 AS SELECT * FROM leadintake.process_inbox(10);
SELECT results_eq(
    $$SELECT i.payload ->> 'lead_id', r.status, r.lead_id = l.id
        FROM inbox_11 r JOIN leadintake.inbox i ON i.id = r.inbox_id
        LEFT JOIN leadintake.leads l ON l.dialer_lead_id = i.payload ->> 'lead_id'
       ORDER BY r.inbox_id$$,
    $$VALUES ('UP-Q1', 201, true), ('UP-1', 201, true), ('UP-Q3', 404, NULL)$$,
    'process_inbox processes the rows enqueued at 1.0 (a new lead, an update of a 1.0 lead, a 404)');
SELECT is((SELECT comments || ' / ' || notes || ' / ' || date_of_birth FROM leadintake.leads
            WHERE dialer_lead_id = 'UP-1'), 'from the inbox / an update / 1980-02-29',
    'the 1.0 lead was updated in place, its data kept');
SELECT ok((SELECT id FROM leadintake.leads WHERE dialer_lead_id = 'UP-Q1')
          > (SELECT max((r -> 'lead' ->> 'id')::bigint) FROM made_at_10),
    'new leads continue the 1.0 id sequence');
INSERT INTO leadintake.agents (username) VALUES ('later');
SELECT is((SELECT leadintake.replay(id) ->> 'created' FROM leadintake.intake_log
            WHERE payload ->> 'lead_id' = 'UP-LATER'), 'true',
    'replay of a 404 logged at 1.0, once its agent exists: created');
SELECT is((SELECT count(*) FROM leadintake.intake_log WHERE payload::text LIKE '%secret%'
                                                        OR payload ? 'api_key'), 0::bigint,
    'no secret in the log');
UPDATE leadintake.intake_log SET received_at = received_at - interval '100 days'
 WHERE payload ->> 'lead_id' = 'UP-3';
SELECT is(leadintake.purge_log('90 days'), 1::bigint, 'purge_log on the 1.0 log: the one old row');
SELECT is((SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'UP-3'), 1::bigint,
    '... its lead is kept');
SELECT ok(has_function_privilege('leadintake_shim', 'leadintake.http_intake(bytea,text,inet)', 'EXECUTE')
          AND has_table_privilege('leadintake_enqueue', 'leadintake.inbox', 'INSERT')
          AND has_table_privilege('leadintake_reader', 'leadintake.leads', 'SELECT'),
    'the 1.1 roles have their grants on the updated objects');

-- The 1.4 entry on the 1.0 data: a key from the URL reads nothing stored of the 1.0 lead.
SELECT ok(has_function_privilege('leadintake_shim', 'leadintake.http_intake(bytea,text,inet,boolean)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'leadintake.http_intake(bytea,text,inet,boolean)', 'EXECUTE')
          AND (SELECT prosecdef FROM pg_proc
                WHERE oid = 'leadintake.http_intake(bytea,text,inet,boolean)'::regprocedure),
    '1.4: http_intake(bytea, text, inet, boolean) is SECURITY DEFINER, for leadintake_shim, not PUBLIC');
SELECT is((SELECT h.status || ' ' || (SELECT string_agg(k, ',' ORDER BY k)
                                          FROM jsonb_object_keys(h.response -> 'lead') AS k)
             FROM leadintake.http_intake(convert_to('{"user":"agent2","lead_id":"UP-1","city":"Hull"}', 'UTF8'),
                                         'web', '10.9.9.9', true) AS h),
    '201 assigned_agent_username,city,dialer_lead_id,id,status',
    '1.4: minimal => true on the 1.0 lead UP-1 (e-mail, date of birth stored): only what it sent');
SELECT is((SELECT h.response -> 'lead' ->> 'email'
             FROM leadintake.http_intake(convert_to('{"user":"agent2","lead_id":"UP-1"}', 'UTF8'),
                                         'web', '10.9.9.9', false) AS h),
    'una@example.com', '1.4: minimal => false: the whole lead, as a header key gets it');
SELECT is((SELECT h.response -> 'lead' ->> 'date_of_birth'
             FROM leadintake.http_intake(convert_to('{"user":"agent2","lead_id":"UP-1"}', 'UTF8'),
                                         'dialer', '10.9.9.9') AS h),
    '1980-02-29', '... and the 1.0 three-argument entry still answers the whole lead');

-- The 1.5 phones on the 1.0 leads: phone_valid is empty until the DBA's recompute (here
-- its batch function: CALL recompute_phones() commits, which this transaction cannot).
SELECT is((SELECT count(*) FROM leadintake.leads WHERE phone_valid IS NOT NULL AND dialer_lead_id IN ('UP-1', 'UP-3')),
    0::bigint, '1.5: the 1.0 leads have no phone_valid before the recompute');
SELECT format('%s %s t', count(*), count(*) FILTER (WHERE phone IS NOT NULL AND phone_valid IS NULL))
       AS expect_recompute FROM leadintake.leads \gset
SELECT is((SELECT format('%s %s %s', sum(scanned), sum(changed), max(last_id) = (SELECT max(id) FROM leadintake.leads))
             FROM (SELECT 1 AS n, * FROM leadintake.recompute_phones_batch(0, 3)
                   UNION ALL SELECT 2, * FROM leadintake.recompute_phones_batch(3, 1000)) AS b),
    :'expect_recompute',
    '1.5: recompute_phones_batch, in two batches, reads every lead and writes those with a phone');
SELECT is_empty($$SELECT id FROM leadintake.leads
                  WHERE phone_e164 IS DISTINCT FROM leadintake.phone_e164(phone, phone_code)
                     OR phone_valid IS DISTINCT FROM leadintake.phone_valid(phone, phone_code)$$,
    '1.5: every lead now has the phone_e164 and phone_valid an intake computes');
SELECT is((SELECT phone_valid::text || ' ' || phone_e164 FROM leadintake.leads WHERE dialer_lead_id = 'UP-1'),
    'false +447700900401', '... the 1.0 lead UP-1 (07700 900401, a drama number): not valid, same number');
SELECT is((SELECT b ->> 'created' || ' ' || (b -> 'lead' ->> 'dialer_lead_id')
             FROM leadintake_from_dialer('{"user":"agent2","phone_number":"+44 (0)7700 900401"}'::jsonb) AS b),
    'false UP-1', '1.5: a call with the phone of a 1.0 lead finds it');
SELECT is((SELECT (made_at_10.r -> 'lead' -> 'phone_valid')::text FROM made_at_10 LIMIT 1), 'null',
    'the 1.5 module on the 1.0 schema wrote leads without phone_valid (the response shows null)');
CREATE TEMP TABLE new_at_15 AS
SELECT leadintake_from_dialer('{"user":"agent2","lead_id":"UP-NEW15","phone_number":"07911 123456"}'::jsonb) AS b;
SELECT is((SELECT format('%s %s', b -> 'lead' -> 'phone_valid', l.phone_valid)
             FROM new_at_15 JOIN leadintake.leads l ON l.dialer_lead_id = 'UP-NEW15'),
    'true t', '... and once updated, the same session writes it and shows it (its statements made again)');

-- The 1.6 console on the 1.0 log: its rows listed, a 1.0 failure replayed and marked.
SELECT is((SELECT jsonb_array_length(leadintake.console_requests('{"limit": 200}') -> 'rows')),
          (SELECT count(*)::integer FROM leadintake.intake_log),
    '1.6: console_requests lists every row of the updated log');
SELECT is((SELECT leadintake.console_replay(jsonb_build_object('id', id)) ->> 'status'
             FROM leadintake.intake_log WHERE status = 404 AND payload ->> 'lead_id' = 'UP-Q3'),
    '404', '1.6: console_replay of the inbox''s 404 (its agent still unknown): 404, logged');
SELECT is((SELECT r.source::text || ' ' || r.status FROM leadintake.intake_log o
             JOIN leadintake.intake_log r ON r.id = o.replayed_by
            WHERE o.payload ->> 'lead_id' = 'UP-Q3' AND o.source = 'inbox'),
    'replay 404', '... and the original row''s replayed_by names the replay''s row');
SELECT is((SELECT r.replay_of = o.id FROM leadintake.intake_log o
             JOIN leadintake.intake_log r ON r.id = o.replayed_by
            WHERE o.payload ->> 'lead_id' = 'UP-Q3' AND o.source = 'inbox'),
    true, '... and the replay''s replay_of names the original');

-- ================================================================ the same objects as a fresh 1.7
CREATE TEMP TABLE upgraded AS SELECT * FROM pg_temp.describe();
DROP EXTENSION leadintake CASCADE;
CREATE EXTENSION leadintake;
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'leadintake'), '1.7',
    'a fresh CREATE EXTENSION leadintake installs 1.7');
CREATE TEMP TABLE fresh AS SELECT * FROM pg_temp.describe();

CREATE TEMP TABLE kinds (kind text PRIMARY KEY);
INSERT INTO kinds VALUES ('member'), ('extension'), ('relation'), ('column'), ('sequence'),
    ('index'), ('constraint'), ('function'), ('acl'), ('column acl'), ('function acl'),
    ('schema'), ('schema acl'), ('init privs'), ('trigger'), ('comment'), ('type'), ('role');

SELECT ok((SELECT count(*) FROM fresh f WHERE f.kind = k.kind) > 0,
          'the description of a fresh 1.7 has ' || k.kind || ' rows')
  FROM kinds k ORDER BY k.kind;
SELECT is_empty(format($$SELECT item FROM upgraded WHERE kind = %L
                         EXCEPT ALL SELECT item FROM fresh WHERE kind = %L$$, k.kind, k.kind),
                'updated from 1.0: no ' || k.kind || ' that a fresh 1.7 lacks')
  FROM kinds k ORDER BY k.kind;
SELECT is_empty(format($$SELECT item FROM fresh WHERE kind = %L
                         EXCEPT ALL SELECT item FROM upgraded WHERE kind = %L$$, k.kind, k.kind),
                'fresh 1.7: no ' || k.kind || ' that the updated database lacks')
  FROM kinds k ORDER BY k.kind;
SELECT is_empty($$SELECT kind FROM (SELECT kind FROM upgraded UNION SELECT kind FROM fresh) AS u
                   WHERE kind NOT IN (SELECT kind FROM kinds)
                     AND kind NOT IN ('policy', 'default acl', 'role membership')$$,
    'every kind described was compared');
SELECT bag_eq('SELECT kind, item FROM upgraded', 'SELECT kind, item FROM fresh',
    'the two descriptions are identical as a whole');

-- The comparison sees differences: 1.0 and 1.1 differ.
SELECT isnt_empty($$SELECT item FROM fresh WHERE kind = 'member'
                    EXCEPT SELECT item FROM v10 WHERE kind = 'member'$$,
    'control: the description tells 1.0 from 1.1 (members)');
SELECT isnt_empty($$SELECT item FROM fresh WHERE kind = 'function'
                    EXCEPT SELECT item FROM v10 WHERE kind = 'function'$$,
    'control: the description tells 1.0 from 1.1 (functions: http_intake became SECURITY DEFINER)');
SELECT isnt_empty($$SELECT item FROM fresh WHERE kind IN ('acl', 'column acl', 'schema acl')
                    EXCEPT SELECT item FROM v10 WHERE kind IN ('acl', 'column acl', 'schema acl')$$,
    'control: the description tells 1.0 from 1.1 (ACLs)');

SELECT * FROM finish();
ROLLBACK;
