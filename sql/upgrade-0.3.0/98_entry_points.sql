-- 98: entry points (issue 15, the SECURITY DEFINER deputy). Runs after every fragment that defines
-- or patches a public function.
--
-- A SECURITY DEFINER function acts with its owner's rights: bob's definer function, called by
-- alice, must not manage alice's river. The implementations run as the catalog's owner and cannot
-- tell who called them (the session's role is alice there). So each public function that checks
-- its caller becomes an entry point: a SECURITY INVOKER C function (mongo_river_entry) with the
-- same signature, defaults and comment, that records GetUserId() -- the role at its boundary, bob
-- in the example -- and runs the implementation, moved to mongo_river_internal under the same name
-- and no longer executable by PUBLIC. _caller() reads the record (src/api/entry.cpp,
-- src/catalog/identity.cpp).
DO $entry$
DECLARE
    f record;
    kind text;
BEGIN
    FOR f IN SELECT p.oid, p.proname, p.prokind,
                    pg_catalog.pg_get_function_arguments(p.oid) AS args,
                    pg_catalog.pg_get_function_identity_arguments(p.oid) AS identity_args,
                    pg_catalog.pg_get_function_result(p.oid) AS result,
                    pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
             FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'mongo_river'::regnamespace AND p.proname <> 'redact_uri'
             ORDER BY p.proname LOOP
        kind := CASE f.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END;
        EXECUTE pg_catalog.format('ALTER %s mongo_river.%I(%s) SET SCHEMA mongo_river_internal',
                                  kind, f.proname, f.identity_args);
        EXECUTE pg_catalog.format('REVOKE ALL ON %s mongo_river_internal.%I(%s) FROM PUBLIC',
                                  kind, f.proname, f.identity_args);
        EXECUTE pg_catalog.format('COMMENT ON %s mongo_river_internal.%I(%s) IS %L', kind, f.proname,
                                  f.identity_args, 'implementation of mongo_river.' || f.proname
                                  || ' (runs only through it: the entry point records the calling role)');
        IF f.prokind = 'p' THEN
            EXECUTE pg_catalog.format('CREATE PROCEDURE mongo_river.%I(%s) LANGUAGE C '
                                      'AS ''MODULE_PATHNAME'', ''mongo_river_entry''', f.proname, f.args);
        ELSE
            EXECUTE pg_catalog.format('CREATE FUNCTION mongo_river.%I(%s) RETURNS %s LANGUAGE C '
                                      'AS ''MODULE_PATHNAME'', ''mongo_river_entry''', f.proname, f.args, f.result);
        END IF;
        EXECUTE pg_catalog.format('COMMENT ON %s mongo_river.%I(%s) IS %L', kind, f.proname, f.identity_args,
                                  f.comment);
    END LOOP;
END
$entry$;

-- The internal functions that decide from _caller() are reached only from mongo_river's own code,
-- which calls them as the catalog's owner: nobody else may call them (inside another role's call
-- they would otherwise act for that call's role).
REVOKE ALL ON FUNCTION mongo_river_internal._river_for_owner(text, name),
    mongo_river_internal._owned_river(text, name), mongo_river_internal._require_admin(text),
    mongo_river_internal._discover(name, text) FROM PUBLIC, mongo_river_admin;

-- _caller() is the recorded role (catalog::CallerOid).
COMMENT ON FUNCTION mongo_river_internal._caller() IS
    'the role the running mongo_river call acts for: the role that called the public function (its boundary''s current_user)';

-- A river's owner may not change where the password of a superuser's password_file is sent: the
-- URI (its hosts, user, mechanism) of such a river is a superuser's to change (its options already
-- are: _check_river_options refuses password_file to others). A foreign server's URI can be
-- changed by the server's owner (ALTER SERVER), so password_file never goes with a server: the
-- server's user mapping holds its password.
CREATE FUNCTION mongo_river_internal._check_password_file_uri() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.options ? 'password_file' AND NEW.uri LIKE 'server:%' THEN
        RAISE EXCEPTION 'river "%": password_file cannot go with a foreign server', NEW.river
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The server''s owner may change its URI (ALTER SERVER), and with it where the file''s password is sent.',
                  HINT = 'Put the password in a user mapping for the server (CREATE USER MAPPING ... OPTIONS (user ..., password ...)).';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.options ? 'password_file' AND NEW.options ? 'password_file'
       AND NEW.uri IS DISTINCT FROM OLD.uri
       AND NOT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles
                         WHERE rolname = mongo_river_internal._caller()), false) THEN
        RAISE EXCEPTION 'only superusers may change the URI of river "%": it reads a password_file', NEW.river
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A superuser set the password_file; the URI decides where its password is sent.',
                  HINT = 'Ask a superuser, or use a foreign server and user mapping of your own (see the README).';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION mongo_river_internal._check_password_file_uri() IS
    'trigger: password_file never goes with a foreign server, and only superusers change the URI of a river that reads one';
CREATE TRIGGER check_password_file_uri BEFORE INSERT OR UPDATE ON mongo_river.river
    FOR EACH ROW EXECUTE FUNCTION mongo_river_internal._check_password_file_uri();

-- The catalog's trigger functions run as the catalog's owner: nobody may attach them to a table of
-- their own (firing a trigger needs no EXECUTE; creating one does).
REVOKE ALL ON FUNCTION mongo_river_internal._check_river(), mongo_river_internal._check_mapped_table(),
    mongo_river_internal._check_password_file_uri() FROM PUBLIC;

-- columns shows the mappings of the rivers the querying role may see (the catalog tables' read
-- policies apply to it, as to status and copy_progress).
ALTER VIEW mongo_river.columns SET (security_invoker = true);

-- A river maps only onto tables of a role that may act as its owner anyway (the owner itself, a
-- superuser, a role with the owner's privileges): the worker runs a table's triggers, defaults and
-- constraints as the river's owner, so another role's code on a table offered to the owner would
-- act with the owner's rights (PostgreSQL 16's logical replication runs such code as the table's
-- owner for the same reason).
CREATE FUNCTION mongo_river_internal._check_table_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    table_owner oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = NEW.relation);
    river_owner oid := (SELECT r.owner::oid FROM mongo_river.river r WHERE r.river = NEW.river);
BEGIN
    IF table_owner IS DISTINCT FROM river_owner
       AND NOT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = table_owner), false)
       AND NOT pg_catalog.pg_has_role(table_owner, river_owner, 'USAGE') THEN
        RAISE EXCEPTION 'table % belongs to role %, not to the owner of river "%" (%)', NEW.relation,
                table_owner::regrole, NEW.river, river_owner::regrole
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The worker runs the table''s triggers, defaults and constraints as the river''s owner.',
                  HINT = pg_catalog.format('Map onto a table of %s''s (or of a superuser''s), or: ALTER TABLE %s OWNER TO %s;',
                                           river_owner::regrole, NEW.relation, river_owner::regrole);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION mongo_river_internal._check_table_owner() IS
    'trigger: a river maps only onto tables of its owner, a superuser or a role with the owner''s privileges';
REVOKE ALL ON FUNCTION mongo_river_internal._check_table_owner() FROM PUBLIC;
CREATE TRIGGER check_table_owner BEFORE INSERT OR UPDATE OF relation ON mongo_river.mapped_table
    FOR EACH ROW EXECUTE FUNCTION mongo_river_internal._check_table_owner();
