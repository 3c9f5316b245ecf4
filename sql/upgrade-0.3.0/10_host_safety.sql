-- 10_host_safety (issues 14.6, 16.5, 16.6): stop() returns once the worker has exited; start()
-- and alter_river() wake the launcher and the worker at the end of the transaction; drop_river
-- skips tables dropped by hand, drops only tables its river's owner owns, and names
-- max_locks_per_transaction when the tables are more than one transaction can lock.

-- _stop_worker ends the river's worker (SIGTERM, then cancels) and waits until it has exited
-- (at most 10 s, then 55006); the launcher is woken at the transaction's end.
CREATE FUNCTION mongo_river._stop_worker(river name) RETURNS void
    LANGUAGE C AS 'MODULE_PATHNAME', 'mongo_river_stop_worker';
-- _wake makes the end of the transaction wake the launcher and the river's worker.
CREATE FUNCTION mongo_river._wake(river name) RETURNS void
    LANGUAGE C AS 'MODULE_PATHNAME', 'mongo_river_wake';
REVOKE ALL ON FUNCTION mongo_river._stop_worker(name), mongo_river._wake(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._stop_worker(name), mongo_river._wake(name) TO mongo_river_admin;

-- start lets the launcher run the river at once (woken when the transaction commits); it also
-- clears an error that stopped it.
CREATE OR REPLACE FUNCTION mongo_river.start(river name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
BEGIN
    r := mongo_river._owned_river('start', river);
    UPDATE mongo_river.river SET enabled = true WHERE mongo_river.river.river = r.river;
    UPDATE mongo_river.progress p SET phase = 'pending', last_error = NULL
        WHERE p.river = r.river AND p.phase IN ('error', 'stopped');
    IF current_setting('shared_preload_libraries') !~ 'mongo_river' THEN
        RAISE WARNING 'mongo_river is not in shared_preload_libraries: no worker will run the river'
            USING HINT = 'Add it, set mongo_river.database, and restart the server.';
    END IF;
    PERFORM mongo_river._wake(r.river);
END
$$;

-- stop disables the river and ends its worker, returning once the worker has exited (at most
-- 10 s, else 55006 and nothing changes). The position is kept. If the caller's transaction rolls
-- back, the river stays enabled and the launcher starts its worker again.
CREATE OR REPLACE FUNCTION mongo_river.stop(river name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
BEGIN
    r := mongo_river._owned_river('stop', river);
    UPDATE mongo_river.river SET enabled = false WHERE mongo_river.river.river = r.river;
    PERFORM mongo_river._stop_worker(r.river);
END
$$;

-- alter_river changes a river's URI and/or options; options are merged into the existing ones
-- (a key set to null goes back to its default). The position in the stream is kept. The worker
-- re-reads the river as soon as the transaction commits (also in the middle of a backoff).
CREATE OR REPLACE FUNCTION mongo_river.alter_river(river name, uri text DEFAULT NULL, options jsonb DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
    merged jsonb;
BEGIN
    r := mongo_river._owned_river('alter_river', river);
    IF uri IS NOT NULL THEN
        PERFORM mongo_river._check_uri(uri);
        UPDATE mongo_river.river SET uri = alter_river.uri WHERE mongo_river.river.river = r.river;
    END IF;
    IF options IS NOT NULL THEN
        IF jsonb_typeof(options) <> 'object' THEN
            PERFORM mongo_river._check_river_options('alter_river', options);
        END IF;
        merged := jsonb_strip_nulls(r.options || options);
        PERFORM mongo_river._check_river_options('alter_river', merged);
        UPDATE mongo_river.river SET options = merged WHERE mongo_river.river.river = r.river;
    END IF;
    PERFORM mongo_river._wake(r.river);
END
$$;

-- drop_river ends the river's worker and removes the river, its mappings, position and rejects.
-- With drop_tables, the tables and views mongo_river created for it are dropped too, all in one
-- statement (atomic: all or none), except: tables already dropped by hand (skipped silently),
-- and relations not owned by the river's owner, members of an extension or in a system schema
-- (kept, named in a NOTICE; a forged catalog row cannot turn a superuser's call against another
-- role). Tables that existed before the mapping are always kept. When the tables are more than
-- one transaction can lock, it fails (53200) naming max_locks_per_transaction and dropping nothing.
CREATE OR REPLACE FUNCTION mongo_river.drop_river(river name, drop_tables boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
    rel record;
    views text[] := '{}';
    tables text[] := '{}';
    kept text[] := '{}';
BEGIN
    r := mongo_river._owned_river('drop_river', river);
    IF drop_tables IS NULL THEN PERFORM mongo_river._not_null('drop_river', 'drop_tables'); END IF;
    PERFORM mongo_river._stop_worker(r.river);
    IF drop_tables THEN
        FOR rel IN
            SELECT t.kind, format('%I.%I', n.nspname, c.relname) AS name, c.relkind, c.relowner::regrole AS owner,
                   c.relowner = r.owner::oid AS owned,
                   n.nspname IN ('pg_catalog', 'information_schema', 'pg_toast', 'mongo_river')
                       OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e') AS protected
            FROM mongo_river.mapped_table t
            JOIN pg_catalog.pg_class c ON c.oid = t.relation::oid   -- no row: dropped by hand, skipped
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE t.river = r.river AND t.created
            ORDER BY 2
        LOOP
            IF NOT rel.owned OR rel.protected
               OR (rel.kind = 'view' AND rel.relkind NOT IN ('v', 'm'))
               OR (rel.kind <> 'view' AND rel.relkind NOT IN ('r', 'p')) THEN
                kept := kept || format('%s (owner %s)', rel.name, rel.owner);
            ELSIF rel.kind = 'view' THEN
                views := views || (CASE rel.relkind WHEN 'm' THEN 'MATERIALIZED VIEW ' ELSE 'VIEW ' END || rel.name);
            ELSE
                tables := tables || rel.name;
            END IF;
        END LOOP;
        IF kept <> '{}' THEN
            RAISE NOTICE 'drop_river: kept % relation(s) of river "%" that its owner % does not own or that are not its tables: %',
                cardinality(kept), r.river, r.owner, array_to_string(kept, ', ');
        END IF;
        BEGIN
            FOR i IN 1 .. cardinality(views) LOOP
                EXECUTE 'DROP ' || views[i];
            END LOOP;
            IF tables <> '{}' THEN
                EXECUTE 'DROP TABLE ' || array_to_string(tables, ', ');
            END IF;
        EXCEPTION WHEN out_of_memory THEN
            RAISE EXCEPTION 'drop_river: the % tables of river "%" are more than one transaction can lock; nothing was dropped',
                cardinality(tables), r.river
                USING ERRCODE = 'out_of_memory', DETAIL = SQLERRM,
                      HINT = format('Raise max_locks_per_transaction (now %s; needs a restart), or drop the tables in '
                                    'several transactions first (SELECT relation FROM mongo_river.mapped_table WHERE '
                                    'river = %L AND created lists them) and call drop_river again: it skips tables '
                                    'already dropped.', current_setting('max_locks_per_transaction'), r.river);
        END;
    END IF;
    DELETE FROM mongo_river.river WHERE mongo_river.river.river = r.river;
END
$$;
