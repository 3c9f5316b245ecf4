-- monitoring: every object of the extension's schema says what it is (\d+, \df+), and the
-- monitoring views and tables are there.
CREATE EXTENSION IF NOT EXISTS mongo_river;

-- Functions, procedures, tables and views of schema mongo_river without a COMMENT (none expected).
SELECT p.oid::regprocedure::text AS without_comment
FROM pg_proc p
WHERE p.pronamespace = 'mongo_river'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT c.oid::regclass::text
FROM pg_class c
WHERE c.relnamespace = 'mongo_river'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND obj_description(c.oid, 'pg_class') IS NULL
ORDER BY 1;

-- The monitoring columns.
SELECT attname FROM pg_attribute WHERE attrelid = 'mongo_river.status'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'mongo_river.copy_progress'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'mongo_river.sync_runs'::regclass AND attnum > 0 ORDER BY attnum;

-- Schema mongo_river holds only the public API (\df mongo_river.* lists what users call); the
-- internals live in mongo_river_internal, each with a comment.
SELECT p.oid::regprocedure::text AS internal_in_public_schema
FROM pg_proc p WHERE p.pronamespace = 'mongo_river'::regnamespace AND p.proname LIKE '\_%';
SELECT count(*) > 20 AS has_internals,
       count(*) FILTER (WHERE obj_description(p.oid, 'pg_proc') IS NULL) AS internals_without_comment
FROM pg_proc p WHERE p.pronamespace = 'mongo_river_internal'::regnamespace;
SELECT p.proname AS public_function FROM pg_proc p WHERE p.pronamespace = 'mongo_river'::regnamespace ORDER BY 1;
