-- 30_edges_sql: child tables get an index leading with their foreign-key column (issue 16.4);
-- import_mappings creates its schema and returns every table it feeds (issue 16.8).

-- _array_keys lists the arrays of a mapping spec, recursively: each array's path (the array_path
-- of mapped_table: array names joined by dots) and its fk column.
CREATE FUNCTION mongo_river._array_keys(spec jsonb)
RETURNS TABLE (path text, fk text)
LANGUAGE sql IMMUTABLE AS $$
    WITH RECURSIVE arrays(path, spec) AS (
        SELECT a.key, a.value FROM jsonb_each(coalesce(spec->'arrays', '{}')) a
        UNION ALL
        SELECT arrays.path || '.' || a.key, a.value
        FROM arrays, jsonb_each(coalesce(arrays.spec->'arrays', '{}')) a
    )
    SELECT path, spec->>'fk' FROM arrays
$$;
REVOKE ALL ON FUNCTION mongo_river._array_keys(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._array_keys(jsonb) TO mongo_river_admin;

-- _has_leading_index tells whether some valid index of rel has column_name as its first column:
-- deleting a parent's child rows (and the foreign key's ON DELETE check) then needs no scan.
CREATE FUNCTION mongo_river._has_leading_index(rel regclass, column_name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = rel AND i.indisvalid AND i.indpred IS NULL AND a.attname = column_name)
$$;
REVOKE ALL ON FUNCTION mongo_river._has_leading_index(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._has_leading_index(regclass, text) TO mongo_river_admin;

-- _prepare_tables creates the table of a mapping spec (or checks an existing one) and, recursively,
-- the child tables of its arrays. It returns every table with its kind and whether it was created.
-- A child table it creates always has an index leading with its fk column (its primary key
-- (fk, position), or an index of its own); an existing child table without one gets a NOTICE with
-- the CREATE INDEX to run.
CREATE OR REPLACE FUNCTION mongo_river._prepare_tables(fn text, owner regrole, schema_name text, table_name text, spec jsonb,
                                            create_table boolean, parent regclass DEFAULT NULL,
                                            parent_key text DEFAULT NULL, parent_key_type text DEFAULT NULL,
                                            array_path text DEFAULT NULL)
RETURNS TABLE (relation regclass, kind text, path text, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    is_child boolean := parent IS NOT NULL;
    rel regclass := to_regclass(format('%I.%I', schema_name, table_name));
    key_column text := CASE WHEN is_child THEN spec->>'id' ELSE spec->>'pk' END;
    key_type text;
    col record;
    defs text[] := '{}';
    att record;
    child record;
    child_schema text;
    child_table text;
BEGIN
    key_type := CASE WHEN is_child THEN 'text' ELSE spec->'columns'->(spec->>'pk')->>'type' END;
    IF rel IS NULL THEN
        IF NOT create_table THEN
            RAISE EXCEPTION '%: table %.% does not exist', fn, quote_ident(schema_name), quote_ident(table_name)
                USING ERRCODE = 'undefined_table', HINT = 'Create it, or leave the option create_table at true.';
        END IF;
        FOR col IN SELECT * FROM mongo_river._table_columns(spec, parent_key_type, is_child) ORDER BY ord LOOP
            defs := defs || format('%I %s%s', col.column_name, col.column_type,
                CASE col.role WHEN 'fk' THEN format(' NOT NULL REFERENCES %s (%I) ON DELETE CASCADE', parent, parent_key)
                              WHEN 'position' THEN ' NOT NULL' ELSE '' END);
        END LOOP;
        IF key_column IS NOT NULL THEN
            defs := defs || format('PRIMARY KEY (%I)', key_column);
        ELSIF spec ? 'position' THEN
            defs := defs || format('PRIMARY KEY (%I, %I)', spec->>'fk', spec->>'position');
        END IF;
        EXECUTE format('CREATE TABLE %I.%I (%s)', schema_name, table_name, array_to_string(defs, ', '));
        rel := format('%I.%I', schema_name, table_name)::regclass;
        -- Unless the primary key is (fk, position), the fk column needs an index of its own.
        IF is_child AND (key_column IS NOT NULL OR NOT spec ? 'position') THEN
            EXECUTE format('CREATE INDEX ON %s (%I)', rel, spec->>'fk');
        END IF;
        IF owner::oid <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('ALTER TABLE %s OWNER TO %s', rel, owner);
        END IF;
        RETURN QUERY SELECT rel, CASE WHEN is_child THEN 'child' ELSE 'target' END, array_path, true;
    ELSE
        FOR col IN SELECT * FROM mongo_river._table_columns(spec, parent_key_type, is_child) ORDER BY ord LOOP
            SELECT a.attnum, a.atttypid, format_type(a.atttypid, a.atttypmod) AS type_name INTO att
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = rel AND a.attname = col.column_name AND a.attnum > 0 AND NOT a.attisdropped;
            IF NOT FOUND THEN
                RAISE EXCEPTION '%: column "%" of existing table % does not exist', fn, col.column_name, rel
                    USING ERRCODE = 'undefined_column',
                          HINT = format('Add it (ALTER TABLE %s ADD COLUMN %I %s), or map onto another table.', rel, col.column_name, col.column_type);
            END IF;
            IF att.atttypid <> col.column_type::regtype THEN
                RAISE EXCEPTION '%: column "%" of existing table % has type %, but the mapping needs %', fn, col.column_name, rel, att.type_name, col.column_type
                    USING ERRCODE = 'datatype_mismatch', HINT = 'Change the mapping''s type or the column''s type so that they agree.';
            END IF;
        END LOOP;
        IF key_column IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = rel AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = key_column) THEN
            RAISE EXCEPTION '%: existing table % has no unique index on its key column "%"', fn, rel, key_column
                USING ERRCODE = 'invalid_column_reference', HINT = format('ALTER TABLE %s ADD PRIMARY KEY (%I);', rel, key_column);
        END IF;
        -- Each privilege on its own: a list in has_table_privilege is true when any one is held.
        IF NOT (has_table_privilege(owner::oid, rel, 'SELECT') AND has_table_privilege(owner::oid, rel, 'INSERT')
                AND has_table_privilege(owner::oid, rel, 'UPDATE') AND has_table_privilege(owner::oid, rel, 'DELETE')) THEN
            RAISE EXCEPTION '%: the river''s owner % may not write into table %', fn, owner, rel
                USING ERRCODE = 'insufficient_privilege', HINT = format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s;', rel, owner);
        END IF;
        IF is_child AND NOT mongo_river._has_leading_index(rel, spec->>'fk') THEN
            RAISE NOTICE '%: existing child table % has no index leading with its foreign-key column "%"', fn, rel, spec->>'fk'
                USING DETAIL = 'Every change to a parent document deletes its child rows by that column: without an index each one scans the table.',
                      HINT = format('CREATE INDEX CONCURRENTLY ON %s (%I);', rel, spec->>'fk');
        END IF;
        RETURN QUERY SELECT rel, CASE WHEN is_child THEN 'child' ELSE 'target' END, array_path, false;
    END IF;
    FOR child IN SELECT key, value FROM jsonb_each(coalesce(spec->'arrays', '{}')) LOOP
        SELECT s.schema_name, s.table_name INTO child_schema, child_table
        FROM mongo_river._split_name(fn, 'table of array "' || child.key || '"', child.value->>'table', schema_name) s;
        RETURN QUERY SELECT * FROM mongo_river._prepare_tables(fn, owner, child_schema, child_table, child.value, create_table,
            rel, coalesce(key_column, spec->>'pk'), key_type,
            coalesce(array_path || '.', '') || child.key);
    END LOOP;
END
$$;

-- import_mappings maps every collection of a mongo-connector-postgresql mappings.json (taken
-- unchanged) and creates its indices. The schema option's schema is created (owned by the river's
-- owner) when missing, as map_database does. Returns every table the mappings feed: each target,
-- then its child tables. All or nothing: any problem leaves nothing behind.
CREATE OR REPLACE FUNCTION mongo_river.import_mappings(river name, mappings jsonb, options jsonb DEFAULT '{}')
RETURNS SETOF regclass
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'import_mappings';
    r mongo_river.river;
    schema_name text := coalesce(options->>'schema', 'public');
    imported jsonb;
    entry jsonb;
    index_def jsonb;
BEGIN
    r := mongo_river._owned_river(fn, river);
    IF mappings IS NULL THEN PERFORM mongo_river._not_null(fn, 'mappings'); END IF;
    IF options IS NULL THEN PERFORM mongo_river._not_null(fn, 'options'); END IF;
    IF jsonb_typeof(options) <> 'object' OR (options ? 'schema' AND jsonb_typeof(options->'schema') <> 'string') THEN
        RAISE EXCEPTION '%: options must be an object whose "schema" is a string', fn
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: {"schema": "mirror"}';
    END IF;
    PERFORM mongo_river._check_map_options(fn, options - 'schema');
    imported := mongo_river._connector_mappings(mappings);  -- the whole file is checked before any DDL
    IF schema_name = '' OR length(schema_name) > 63 THEN
        RAISE EXCEPTION '%: schema "%" is not a valid schema name', fn, schema_name
            USING ERRCODE = 'invalid_schema_name', HINT = 'Give a name of 1 to 63 bytes.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = schema_name) THEN
        EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %s', schema_name, r.owner);
    END IF;
    FOR entry IN SELECT * FROM jsonb_array_elements(imported) LOOP
        PERFORM mongo_river.map_collection(river, entry->>'source', format('%I.%I', schema_name, entry->>'table'),
                                           entry->'mapping', options - 'schema');
        FOR index_def IN SELECT * FROM jsonb_array_elements(coalesce(entry->'indexes', '[]')) LOOP
            EXECUTE format('CREATE %sINDEX %I ON %I.%I (%s)',
                           CASE WHEN (index_def->>'unique')::boolean THEN 'UNIQUE ' ELSE '' END,
                           index_def->>'name', schema_name, index_def->>'table',
                           (SELECT string_agg(quote_ident(c), ', ') FROM jsonb_array_elements_text(index_def->'columns') c));
        END LOOP;
        RETURN QUERY SELECT t.relation FROM mongo_river.mapped_table t
            WHERE t.river = r.river AND t.source = entry->>'source'
            ORDER BY t.kind <> 'target', t.array_path;
    END LOOP;
END
$$;

-- Upgrade from 0.2.0: child tables whose primary key is a generated id (every _ARRAY child of
-- import_mappings, every array declaring "id") had no index on their fk column. Tables mongo_river
-- created get it now, unless they are larger than 100 MB (a plain CREATE INDEX blocks the river's
-- writes while it runs): for those, and for tables mongo_river did not create, a NOTICE gives the
-- CREATE INDEX CONCURRENTLY statement to run. These are WARNINGs: PostgreSQL shows an extension
-- script's messages below WARNING to nobody.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT m.relation, k.fk, m.created, pg_catalog.pg_relation_size(m.relation) AS bytes
        FROM mongo_river.mapped_table m
        JOIN mongo_river.collection_map c ON c.river = m.river AND c.source = m.source
        JOIN LATERAL mongo_river._array_keys(c.mapping) k ON k.path = m.array_path
        WHERE m.kind = 'child' AND NOT mongo_river._has_leading_index(m.relation, k.fk)
        ORDER BY m.relation::text
    LOOP
        IF t.created AND t.bytes <= 100 * 1024 * 1024 THEN
            EXECUTE format('CREATE INDEX ON %s (%I)', t.relation, t.fk);
            RAISE WARNING 'mongo_river: created an index on %(%), a child table mongo_river created', t.relation, t.fk;
        ELSE
            RAISE WARNING 'mongo_river: child table % has no index on its foreign-key column "%": run CREATE INDEX CONCURRENTLY ON % (%);',
                t.relation, t.fk, t.relation, quote_ident(t.fk)
                USING DETAIL = CASE WHEN t.created
                                    THEN format('It holds %s, over the 100 MB up to which the update creates the index itself.',
                                                pg_catalog.pg_size_pretty(t.bytes))
                                    ELSE 'mongo_river did not create this table, so the update leaves it as it is.' END;
        END IF;
    END LOOP;
END
$$;
