-- extension: CREATE/DROP/ALTER EXTENSION, the admin role, the UTF8 requirement, the settings.
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
