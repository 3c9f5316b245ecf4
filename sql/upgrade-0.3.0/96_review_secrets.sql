-- 96: the hostile review of the secrets rules. Runs after 95 (internals in mongo_river_internal).

-- Every catalog table with a per-river row is read only by those who may see the river (its owner,
-- roles with the owner's privileges, superusers): progress.last_error and mapping_state.last_error
-- can quote a document's values. The views rivers and columns read the tables as the catalog's
-- owner, which RLS does not restrict; status and copy_progress read them as the caller (95).
DO $policies$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['collection_map', 'mapped_table', 'progress', 'mapping_state', 'resync_seen',
                             'database_map'] LOOP
        EXECUTE pg_catalog.format('DROP POLICY %I ON mongo_river.%I', t || '_read', t);
        EXECUTE pg_catalog.format('CREATE POLICY %I ON mongo_river.%I FOR SELECT '
                                  'USING (mongo_river_internal._may_see(river, current_user))', t || '_read', t);
    END LOOP;
END
$policies$;

-- The workers' live state (shared memory) holds every river's: _live_status() and _live_progress()
-- return only the rows of the rivers the calling role may see (C code: mongo_river.river as the
-- caller, under its read policy). They stay EXECUTE for admins: a view's functions run with the
-- querying role's privileges, so status and copy_progress (security_invoker since 95) need them.

-- _may_see answers "does river X exist and does role Y own it": not for PUBLIC. Admins keep it (the
-- read policies call it as the querying role).
REVOKE ALL ON FUNCTION mongo_river_internal._may_see(name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river_internal._may_see(name, name) TO mongo_river_admin;
