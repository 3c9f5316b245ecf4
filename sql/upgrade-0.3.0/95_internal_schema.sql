-- 95: the public API apart from the internals, and the monitoring objects under the secrets rules.
-- Runs after every other fragment, so that it sees every function they defined.

-- Internal functions, procedures and types (names starting with "_") move to their own schema, so
-- that \df mongo_river.* lists only what users call. Moving keeps each object's grants; views,
-- policies and triggers refer to functions by oid and follow them. The bodies of SQL and PL/pgSQL
-- functions name them in their text, so those bodies are rewritten to the new schema.
CREATE SCHEMA mongo_river_internal;
COMMENT ON SCHEMA mongo_river_internal IS 'mongo_river internals: not for direct use, they may change in any release';
-- As for schema mongo_river: callers who are not admins must reach our 42501 checks, not a bare
-- "permission denied for schema"; EXECUTE on each internal function is granted as before.
GRANT USAGE ON SCHEMA mongo_river_internal TO PUBLIC;

DO $move$
DECLARE
    object record;
BEGIN
    FOR object IN
        SELECT p.oid::regprocedure AS signature, p.prokind
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'mongo_river'::regnamespace AND p.proname LIKE '\_%'
    LOOP
        EXECUTE pg_catalog.format('ALTER %s %s SET SCHEMA mongo_river_internal',
                                  CASE object.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, object.signature);
    END LOOP;
    -- Stand-alone composite types (not a table's row type).
    FOR object IN
        SELECT t.oid::regtype AS type_name
        FROM pg_catalog.pg_type t JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
        WHERE t.typnamespace = 'mongo_river'::regnamespace AND t.typname LIKE '\_%' AND c.relkind = 'c'
    LOOP
        EXECUTE pg_catalog.format('ALTER TYPE %s SET SCHEMA mongo_river_internal', object.type_name);
    END LOOP;
    FOR object IN
        SELECT p.oid
        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
        WHERE p.pronamespace IN ('mongo_river'::regnamespace, 'mongo_river_internal'::regnamespace)
          AND l.lanname IN ('sql', 'plpgsql') AND p.prosrc LIKE '%mongo\_river.\_%'
    LOOP
        EXECUTE pg_catalog.replace(pg_catalog.pg_get_functiondef(object.oid), 'mongo_river._', 'mongo_river_internal._');
    END LOOP;
    -- Every internal function says what it is in \df+ (the ones without a comment of their own).
    FOR object IN
        SELECT p.oid::regprocedure AS signature, p.prokind
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'mongo_river_internal'::regnamespace
          AND pg_catalog.obj_description(p.oid, 'pg_proc') IS NULL
    LOOP
        EXECUTE pg_catalog.format('COMMENT ON %s %s IS %L',
                                  CASE object.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, object.signature,
                                  'internal to mongo_river: not for direct use');
    END LOOP;
END
$move$;

-- Monitoring under the secrets rules: status and copy_progress read the catalog as the caller
-- (security_invoker), so each role sees the rivers whose rows it may see (their owner, roles with
-- the owner's privileges, superusers): last_error can quote a document's values.
ALTER VIEW mongo_river.status SET (security_invoker = true);
ALTER VIEW mongo_river.copy_progress SET (security_invoker = true);
-- sync_runs: written by sync_once as the catalog's owner; read by those who may see the river.
REVOKE INSERT, UPDATE, DELETE ON mongo_river.sync_runs FROM mongo_river_admin;
DROP POLICY sync_runs_read ON mongo_river.sync_runs;
CREATE POLICY sync_runs_read ON mongo_river.sync_runs FOR SELECT
    USING (mongo_river_internal._may_see(river, current_user));
