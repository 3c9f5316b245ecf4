-- extension: CREATE/DROP/ALTER EXTENSION, the admin role, the UTF8 requirement, the settings.

-- regress.try(statement) runs a statement and reports its outcome: SQLSTATE (00000 for success),
-- message, detail and hint. Later test files use it to show errors completely on one line.
CREATE SCHEMA regress;
CREATE FUNCTION regress.try(statement text, OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    code := '00000';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;
GRANT USAGE ON SCHEMA regress TO PUBLIC;

CREATE EXTENSION mongo_river;
SELECT extversion FROM pg_extension WHERE extname = 'mongo_river';
SELECT nspname FROM pg_namespace WHERE nspname = 'mongo_river';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'mongo_river_admin';
SELECT has_schema_privilege('mongo_river_admin', 'mongo_river', 'USAGE') AS admin_usage;

-- DROP EXTENSION removes the schema and everything in it, and leaves the role in place.
DROP EXTENSION mongo_river;
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname = 'mongo_river';
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname = 'mongo_river_admin';

-- Creating it again reuses the existing role.
CREATE EXTENSION mongo_river;

-- Every released version can be updated to the default one.
SELECT source, target
FROM pg_extension_update_paths('mongo_river')
WHERE path IS NOT NULL AND target = (SELECT default_version FROM pg_available_extensions WHERE name = 'mongo_river')
ORDER BY source;
ALTER EXTENSION mongo_river UPDATE;

-- Installing the first version and updating gives the same objects as a fresh install.
CREATE TEMP TABLE fresh AS
    SELECT pg_describe_object(classid, objid, objsubid) AS object
    FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mongo_river');
DROP EXTENSION mongo_river;
CREATE EXTENSION mongo_river VERSION '0.1.0';
ALTER EXTENSION mongo_river UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'mongo_river';
SELECT object, 'missing after update' AS problem FROM fresh
EXCEPT SELECT pg_describe_object(classid, objid, objsubid), 'missing after update'
    FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mongo_river')
UNION ALL
SELECT pg_describe_object(classid, objid, objsubid), 'only after update'
    FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mongo_river')
      AND pg_describe_object(classid, objid, objsubid) NOT IN (SELECT object FROM fresh);
SELECT count(*) > 20 AS has_objects FROM fresh;

-- The settings exist with their documented defaults and contexts.
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'mongo_river.%' ORDER BY name;
SET mongo_river.no_such_setting = 1;

-- A database that is not UTF8 is refused with a clear error.
CREATE DATABASE mongo_river_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c mongo_river_latin1
\set VERBOSITY default
CREATE EXTENSION mongo_river;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'mongo_river';
\c contrib_regression
DROP DATABASE mongo_river_latin1;
