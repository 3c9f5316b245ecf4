-- mongo_river 0.1.0: the foundation (schema, admin role, encoding check).
\echo Use "CREATE EXTENSION mongo_river" to load this file. \quit

DO $check$
DECLARE
    db_encoding text := pg_encoding_to_char((SELECT encoding FROM pg_database WHERE datname = current_database()));
BEGIN
    IF db_encoding <> 'UTF8' THEN
        RAISE EXCEPTION 'mongo_river requires a UTF8 database, but database "%" uses %', current_database(), db_encoding
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'MongoDB strings are UTF-8; other encodings cannot hold every document.',
                  HINT = 'Create the extension in a database made with ENCODING ''UTF8'' TEMPLATE template0.';
    END IF;
    -- The role outlives the extension on purpose (roles are cluster-wide; grants to it may exist).
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mongo_river_admin') THEN
        CREATE ROLE mongo_river_admin NOLOGIN;
    END IF;
END
$check$;

-- The schema is created here, not named in the control file, so that it belongs to the extension
-- and DROP EXTENSION removes it.
CREATE SCHEMA mongo_river;
COMMENT ON SCHEMA mongo_river IS 'mongo_river: PostgreSQL tables kept in sync with MongoDB collections';
GRANT USAGE ON SCHEMA mongo_river TO mongo_river_admin;
