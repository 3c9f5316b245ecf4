-- 0.3.0 secrets (issue 15, issue 14 item 1, issue 17 item 5's unknown URI options): credentials the
-- PostgreSQL way (a foreign server + user mapping, or a superuser-only password_file), URIs and
-- rejects visible only to a river's owner and superusers, no password reaching libmongoc empty.
-- This fragment runs last: it re-applies its checks to functions the other fragments redefine.

-- _caller returns the calling role: GetOuterUserId(), which a SECURITY DEFINER function does not
-- change (current_user is the function's owner there).
CREATE FUNCTION mongo_river._caller() RETURNS name
    LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'mongo_river_caller';
COMMENT ON FUNCTION mongo_river._caller() IS 'the calling role, also inside SECURITY DEFINER functions';

-- The foreign data wrapper: CREATE SERVER s FOREIGN DATA WRAPPER mongo_river OPTIONS (uri '...');
-- CREATE USER MAPPING FOR role SERVER s OPTIONS (user '...', password '...'); a river whose URI is
-- 'server:s' connects with the server's URI and its owner's user mapping (or PUBLIC's).
CREATE FUNCTION mongo_river._fdw_validator(options text[], catalog oid) RETURNS void
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_fdw_validator';
CREATE FOREIGN DATA WRAPPER mongo_river VALIDATOR mongo_river._fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER mongo_river IS 'MongoDB sources of rivers: servers hold a uri, user mappings user and password';

-- _check_connection checks what a river would connect with (no connection is made).
CREATE FUNCTION mongo_river._check_connection(owner regrole, uri text, password_file text) RETURNS void
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_check_connection';
REVOKE ALL ON FUNCTION mongo_river._check_connection(regrole, text, text) FROM PUBLIC;

-- _check_river is the trigger that guards every write of a river row, whoever makes it: the owner
-- must be a role that can log in (the worker logs in as it), only superusers set password_file, and
-- a URI (or server) whose auth mechanism needs a password must get one from the URI, the
-- password_file or the owner's user mapping (libmongoc crashes on a missing one).
CREATE FUNCTION mongo_river._check_river() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller name := mongo_river._caller();
    caller_is_super boolean := (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = mongo_river._caller());
BEGIN
    IF TG_OP = 'INSERT' OR NEW.owner IS DISTINCT FROM OLD.owner THEN
        IF NOT (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE oid = NEW.owner) THEN
            RAISE EXCEPTION 'role % cannot own a river: it cannot log in', NEW.owner
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'A river''s worker logs in as the river''s owner.',
                      HINT = 'Create rivers as a role with LOGIN (not through SET ROLE to a group role).';
        END IF;
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.options->'password_file' IS DISTINCT FROM OLD.options->'password_file')
       AND NEW.options ? 'password_file' AND NOT coalesce(caller_is_super, false) THEN
        RAISE EXCEPTION 'only superusers may set password_file'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use a foreign server and user mapping (see the README), or ask a superuser.';
    END IF;
    IF TG_OP = 'INSERT' OR NEW.uri IS DISTINCT FROM OLD.uri OR NEW.owner IS DISTINCT FROM OLD.owner
       OR NEW.options->'password_file' IS DISTINCT FROM OLD.options->'password_file' THEN
        PERFORM mongo_river._check_connection(NEW.owner, NEW.uri, coalesce(NEW.options->>'password_file', ''));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_river BEFORE INSERT OR UPDATE ON mongo_river.river
    FOR EACH ROW EXECUTE FUNCTION mongo_river._check_river();

-- _check_mapped_table refuses a mapped table marked "created" that the river's owner does not own
-- (drop_river(..., drop_tables => true) drops created tables).
CREATE FUNCTION mongo_river._check_mapped_table() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.created AND (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = NEW.relation)
                       IS DISTINCT FROM (SELECT r.owner::oid FROM mongo_river.river r WHERE r.river = NEW.river) THEN
        RAISE EXCEPTION 'table % does not belong to the owner of river "%"', NEW.relation, NEW.river
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'mongo_river records as created only the tables it created for the river''s owner.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_mapped_table BEFORE INSERT OR UPDATE ON mongo_river.mapped_table
    FOR EACH ROW EXECUTE FUNCTION mongo_river._check_mapped_table();

-- _may_see tells whether role may see a river's private rows (its URI, its rejects): a superuser, or
-- a role with the privileges of the river's owner. It reads the river row whatever the caller may
-- read; an unknown river is never visible (nor changeable: see _may_change).
CREATE FUNCTION mongo_river._may_see(river_name name, role name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = role), false)
        OR coalesce((SELECT pg_catalog.pg_has_role(role, r.owner, 'USAGE')
                     FROM mongo_river.river r WHERE r.river = river_name), false)
$$;

-- _may_change: the same question for changes. It used to treat a river it could not read as "may
-- change"; with reads restricted that would be a hole, so it no longer does.
CREATE OR REPLACE FUNCTION mongo_river._may_change(river_name name) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT mongo_river._may_see(river_name, current_user)
$$;

-- URIs and rejects: only the river's owner (and roles with its privileges) and superusers.
DROP POLICY river_read ON mongo_river.river;
CREATE POLICY river_read ON mongo_river.river FOR SELECT USING (mongo_river._may_see(river, current_user));
DROP POLICY rejects_read ON mongo_river.rejects;
CREATE POLICY rejects_read ON mongo_river.rejects FOR SELECT USING (mongo_river._may_see(river, current_user));
COMMENT ON TABLE mongo_river.river IS 'MongoDB sources (rivers); a river''s row (its URI) is visible to its owner and superusers only; mongo_river.rivers shows every river with its URI redacted';

-- _require_admin raises 42501 unless the calling role is a superuser or a member of
-- mongo_river_admin (the caller: also right inside SECURITY DEFINER functions).
CREATE OR REPLACE FUNCTION mongo_river._require_admin(fn text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    caller name := mongo_river._caller();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = caller AND rolsuper)
       AND NOT pg_catalog.pg_has_role(caller, 'mongo_river_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied for %: managing rivers needs mongo_river_admin', fn
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %I is neither a superuser nor a member of mongo_river_admin.', caller),
                  HINT = format('A superuser can run: GRANT mongo_river_admin TO %I;', caller);
    END IF;
END
$$;

-- _act_for makes the DDL of the running mongo_river function (CREATE TABLE, DROP TABLE, CREATE
-- SCHEMA, ...) run as owner (a ProcessUtility hook), for the rest of the transaction.
CREATE FUNCTION mongo_river._act_for(owner regrole) RETURNS void
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_act_for';
REVOKE ALL ON FUNCTION mongo_river._act_for(regrole) FROM PUBLIC;

-- _river_for_owner returns a river's row after checking that it exists and that the calling role
-- has the privileges of its owner (or is a superuser). The row's uri is a reference to the river's
-- connection ('river:<name>'), which _infer and _list_collections resolve (with the owner's user
-- mapping or password_file) in C: no password passes through SQL values.
CREATE OR REPLACE FUNCTION mongo_river._river_for_owner(fn text, river_name name) RETURNS mongo_river.river
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r mongo_river.river;
    caller name := mongo_river._caller();
BEGIN
    SELECT * INTO r FROM mongo_river.river WHERE river = river_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: river "%" does not exist', fn, river_name
            USING ERRCODE = 'undefined_object', HINT = 'SELECT river FROM mongo_river.rivers lists the rivers.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = caller AND rolsuper)
       AND NOT pg_catalog.pg_has_role(caller, r.owner, 'USAGE') THEN
        RAISE EXCEPTION '%: must be owner of river "%"', fn, river_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('River %I belongs to role %s.', river_name, r.owner),
                  HINT = format('Ask a superuser or a member of %s.', r.owner);
    END IF;
    r.uri := 'river:' || r.river;
    PERFORM mongo_river._act_for(r.owner);
    RETURN r;
END
$$;

-- _check_uri also accepts 'server:<name>' (checked with the owner's user mapping by the catalog's
-- trigger) and refuses options libmongoc does not support (C).
COMMENT ON FUNCTION mongo_river._check_uri(text) IS 'checks a river URI (libmongoc''s parser, unknown options refused) or a server:<name> reference';

-- _discover: the river's connection is resolved in C from a reference (no password in SQL values).
-- secrets: the only change to the 0.2.0 body is the line marked below.
CREATE OR REPLACE FUNCTION mongo_river._discover(river_name name, only_database text DEFAULT NULL) RETURNS SETOF regclass
LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
    d mongo_river.database_map;
    coll text;
    schema_name text;
    table_name text;
    mapping jsonb;
    rel regclass;
BEGIN
    SELECT * INTO r FROM mongo_river.river WHERE river = river_name;
    r.uri := 'river:' || river_name;  -- secrets: _infer and _list_collections resolve the connection
    FOR d IN SELECT * FROM mongo_river.database_map m
             WHERE m.river = river_name AND (only_database IS NULL OR m.database = only_database) LOOP
        schema_name := coalesce(d.options->>'schema', 'public');
        FOR coll IN SELECT c FROM mongo_river._list_collections(r.uri, d.database) c ORDER BY c LOOP
            CONTINUE WHEN coll LIKE 'system.%' OR coll = ANY (d.unmapped);
            CONTINUE WHEN EXISTS (SELECT 1 FROM mongo_river.collection_map m
                                  WHERE m.river = river_name AND m.source = d.database || '.' || coll);
            CONTINUE WHEN d.options ? 'include' AND NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements_text(d.options->'include') p WHERE mongo_river._glob_matches(coll, p));
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM jsonb_array_elements_text(coalesce(d.options->'exclude', '[]')) p
                WHERE mongo_river._glob_matches(coll, p));
            table_name := mongo_river._default_identifier(coalesce(d.options->>'table_prefix', '') || coll);
            -- Unique within the schema: a name the rules made equal to a taken one gets _2, _3, ...
            IF to_regclass(format('%I.%I', schema_name, table_name)) IS NOT NULL THEN
                table_name := (SELECT left(table_name, 59) || '_' || n FROM generate_series(2, 999) n
                               WHERE to_regclass(format('%I.%I', schema_name, left(table_name, 59) || '_' || n)) IS NULL
                               LIMIT 1);
            END IF;
            BEGIN
                mapping := NULL;
                IF coalesce(d.options->>'mapping', 'infer') = 'infer' THEN
                    BEGIN
                        mapping := mongo_river._infer(r.uri, d.database, coll, 1000, table_name);
                    EXCEPTION WHEN invalid_parameter_value THEN
                        mapping := mongo_river._document_mapping();  -- empty collection: nothing to sample
                    END;
                ELSE
                    BEGIN
                        mapping := mongo_river._document_mapping(mongo_river._infer(r.uri, d.database, coll, 100, table_name));
                    EXCEPTION WHEN invalid_parameter_value THEN
                        mapping := mongo_river._document_mapping();
                    END;
                END IF;
                rel := mongo_river.map_collection(river_name, d.database || '.' || coll,
                                                  format('%I.%I', schema_name, table_name), mapping,
                                                  jsonb_build_object('copy', coalesce((d.options->>'copy')::boolean, true)));
                RETURN NEXT rel;
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'mongo_river: river "%": cannot map collection "%.%": %', river_name, d.database, coll, SQLERRM;
            END;
        END LOOP;
    END LOOP;
END
$$;

-- _check_river_options: the superuser check of password_file judges the caller (inside SECURITY DEFINER
-- functions current_user is the definer; pg_stat_file would then tell admins which files exist).
-- secrets: the only change to the 0.2.0 body is the line marked below.
CREATE OR REPLACE FUNCTION mongo_river._check_river_options(fn text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    key text;
    value jsonb;
BEGIN
    PERFORM mongo_river._check_option_keys(fn, 'river', options,
        ARRAY['capture', 'batch_size', 'batch_ms', 'dry_run', 'on_error', 'password_file'], '{"batch_size": 1000}');
    FOR key, value IN SELECT * FROM jsonb_each(options) LOOP
        IF (key = 'capture' AND NOT (value IN ('"change_stream"', '"oplog"')))
           OR (key = 'on_error' AND NOT (value IN ('"reject"', '"stop"')))
           OR (key = 'dry_run' AND jsonb_typeof(value) <> 'boolean')
           OR (key = 'password_file' AND (jsonb_typeof(value) <> 'string' OR value->>0 NOT LIKE '/%'))
           OR (key IN ('batch_size', 'batch_ms') AND (jsonb_typeof(value) <> 'number' OR value::numeric <> trunc(value::numeric)
               OR value::numeric < 1 OR value::numeric > CASE key WHEN 'batch_size' THEN 1000000 ELSE 3600000 END)) THEN
            RAISE EXCEPTION '%: invalid value % for river option "%"', fn, value, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE key
                          WHEN 'capture' THEN 'capture is "change_stream" (default) or "oplog".'
                          WHEN 'on_error' THEN 'on_error is "reject" (default) or "stop".'
                          WHEN 'dry_run' THEN 'dry_run is true or false.'
                          WHEN 'password_file' THEN 'password_file is the absolute path of a file on the database server.'
                          WHEN 'batch_size' THEN 'batch_size is a whole number of changes from 1 to 1000000.'
                          ELSE 'batch_ms is a whole number of milliseconds from 1 to 3600000.' END;
        END IF;
    END LOOP;
    IF options ? 'password_file' THEN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = mongo_river._caller() AND rolsuper) THEN  -- secrets: the caller
            RAISE EXCEPTION '%: only superusers may set password_file', fn
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'The file is read by the server; put the password in the URI or ask a superuser.';
        END IF;
        IF pg_catalog.pg_stat_file(options->>'password_file', true) IS NULL THEN
            RAISE EXCEPTION '%: password_file "%" does not exist', fn, options->>'password_file'
                USING ERRCODE = 'undefined_file', HINT = 'Create the file on the database server, readable by its user.';
        END IF;
    END IF;
    RETURN options;
END
$$;

-- create_river declares a MongoDB source owned by the calling role. The URI is checked with
-- libmongoc's parser (unknown options refused), or names a foreign server ('server:<name>'); the
-- catalog's trigger checks the owner and the credentials. The source need not be reachable yet.
CREATE OR REPLACE FUNCTION mongo_river.create_river(river name, uri text, options jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mongo_river._require_admin('create_river');
    IF river IS NULL THEN PERFORM mongo_river._not_null('create_river', 'river'); END IF;
    IF uri IS NULL THEN PERFORM mongo_river._not_null('create_river', 'uri'); END IF;
    IF options IS NULL THEN PERFORM mongo_river._not_null('create_river', 'options'); END IF;
    IF river = '' THEN
        RAISE EXCEPTION 'create_river: a river name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM mongo_river.river r WHERE r.river = create_river.river) THEN
        RAISE EXCEPTION 'create_river: river "%" already exists', river
            USING ERRCODE = 'duplicate_object', HINT = 'Use alter_river to change it, or drop_river first.';
    END IF;
    PERFORM mongo_river._check_uri(uri);
    PERFORM mongo_river._check_river_options('create_river', options);
    INSERT INTO mongo_river.river (river, owner, uri, options)
        VALUES (create_river.river,
                (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = mongo_river._caller())::regrole,  -- secrets: the caller
                create_river.uri, create_river.options);
    INSERT INTO mongo_river.progress (river) VALUES (create_river.river);
END
$$;

-- The catalog changes only through the functions: they run as the catalog's owner (SECURITY
-- DEFINER, with a search_path that no other schema can hijack) and check the caller themselves
-- (_require_admin, _owned_river: mongo_river._caller()); their DDL runs as the river's owner
-- (_act_for). Admins keep SELECT (row-level security shows them only what they may see) and lose
-- INSERT, UPDATE and DELETE. The C functions (verify, retry_rejects, wait_for_sync, sync_once) run
-- as the caller and write catalog rows as the catalog's owner; the worker runs as the river's owner
-- and does the same. By name, so that signatures other fragments change are covered.
DO $definer$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'mongo_river'::regnamespace AND p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'plpgsql')
               AND p.proname IN ('create_river', 'alter_river', 'drop_river', 'map_collection', 'unmap_collection',
                                 'map_database', 'infer_mapping', 'import_mappings', 'resync', 'discard_rejects',
                                 'start', 'stop', '_discover') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END
$definer$;
REVOKE INSERT, UPDATE, DELETE ON mongo_river.river, mongo_river.collection_map, mongo_river.mapped_table,
    mongo_river.progress, mongo_river.mapping_state, mongo_river.resync_seen, mongo_river.rejects,
    mongo_river.database_map FROM mongo_river_admin;
-- Internal functions are the functions' business only.
REVOKE EXECUTE ON FUNCTION mongo_river._infer(text, text, text, int, text),
    mongo_river._list_collections(text, text) FROM mongo_river_admin;
REVOKE EXECUTE ON FUNCTION mongo_river._discover(name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._discover(name, text) TO mongo_river_admin;
