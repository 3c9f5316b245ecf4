-- mongo_river 0.1.0 -> 0.2.0: rivers and mappings declared in SQL (catalog, validation, DDL).
\echo Use "ALTER EXTENSION mongo_river UPDATE" to load this file. \quit

-- Callers that are not admins get our 42501 error with a hint rather than a bare "permission
-- denied for schema"; the catalog tables themselves stay private.
GRANT USAGE ON SCHEMA mongo_river TO PUBLIC;

-- river: one row per MongoDB source. The URI may hold a password: never granted to PUBLIC; the
-- rivers view shows it redacted.
CREATE TABLE mongo_river.river (
    river       name PRIMARY KEY CHECK (river <> ''),
    owner       regrole NOT NULL,
    uri         text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mongo_river.river IS 'MongoDB sources (rivers); URIs are readable by superusers and mongo_river_admin only';

-- collection_map: one row per mapped collection; mapping is the normalised mapping document.
CREATE TABLE mongo_river.collection_map (
    river             name NOT NULL REFERENCES mongo_river.river ON UPDATE CASCADE ON DELETE CASCADE,
    source            text NOT NULL,
    source_db         text NOT NULL,
    source_collection text NOT NULL,
    target            regclass NOT NULL UNIQUE,
    mapping           jsonb NOT NULL,
    options           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (river, source),
    CHECK (source = source_db || '.' || source_collection)
);
COMMENT ON TABLE mongo_river.collection_map IS 'mapped collections: source db.collection -> target table';

-- mapped_table: every table a mapping feeds (the target and its child tables), and whether
-- mongo_river created it (drop_river(..., drop_tables => true) drops only those).
CREATE TABLE mongo_river.mapped_table (
    river       name NOT NULL,
    source      text NOT NULL,
    relation    regclass NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('target', 'child', 'view')),
    array_path  text,
    created     boolean NOT NULL,
    FOREIGN KEY (river, source) REFERENCES mongo_river.collection_map ON UPDATE CASCADE ON DELETE CASCADE
);

-- progress: the river's position in its source's stream (Extended JSON of the resume token or
-- oplog time), written in the same transaction as the rows it covers, and the river's phase.
CREATE TABLE mongo_river.progress (
    river       name PRIMARY KEY REFERENCES mongo_river.river ON UPDATE CASCADE ON DELETE CASCADE,
    position    text,
    reached     bigint,              -- source cluster time (t << 32 | i) up to which all is applied
    phase       text NOT NULL DEFAULT 'pending'
                CHECK (phase IN ('pending', 'streaming', 'retrying', 'resync', 'stopped', 'error')),
    caught_up   boolean NOT NULL DEFAULT false,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- mapping_state: each mapped collection's phase, copy position and counters, written by the worker
-- once per batch (never per change).
CREATE TABLE mongo_river.mapping_state (
    river            name NOT NULL,
    source           text NOT NULL,
    phase            text NOT NULL DEFAULT 'pending'
                     CHECK (phase IN ('pending', 'initial_copy', 'streaming', 'resync', 'stopped', 'error')),
    copy_last_id     bytea,          -- BSON {_id: value} of the last copied document
    docs_copied      bigint NOT NULL DEFAULT 0,
    changes_applied  bigint NOT NULL DEFAULT 0,
    last_source_time timestamptz,    -- wallTime of the last applied change
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (river, source),
    FOREIGN KEY (river, source) REFERENCES mongo_river.collection_map ON UPDATE CASCADE ON DELETE CASCADE
);

-- resync_seen: during a resync, the keys of the documents written since it began; when the re-copy
-- ends, rows whose key is not here were deleted at the source and are removed (so that readers never
-- see an empty or half-filled table meanwhile).
CREATE TABLE mongo_river.resync_seen (
    river   name NOT NULL,
    source  text NOT NULL,
    key     text NOT NULL,
    PRIMARY KEY (river, source, key),
    FOREIGN KEY (river, source) REFERENCES mongo_river.collection_map ON UPDATE CASCADE ON DELETE CASCADE
);

-- rejects: changes that could not be applied, with the reason and the document as received.
CREATE TABLE mongo_river.rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    river       name NOT NULL REFERENCES mongo_river.river ON UPDATE CASCADE ON DELETE CASCADE,
    source      text NOT NULL,
    document_id text,
    operation   text NOT NULL,
    document    jsonb,
    raw         bytea,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON mongo_river.rejects (river, source);

-- pg_dump keeps the users' rows of every catalog table.
SELECT pg_catalog.pg_extension_config_dump('mongo_river.river', '');
SELECT pg_catalog.pg_extension_config_dump('mongo_river.collection_map', '');
SELECT pg_catalog.pg_extension_config_dump('mongo_river.mapped_table', '');
SELECT pg_catalog.pg_extension_config_dump('mongo_river.progress', '');
SELECT pg_catalog.pg_extension_config_dump('mongo_river.mapping_state', '');
SELECT pg_catalog.pg_extension_config_dump('mongo_river.rejects', '');

GRANT SELECT, INSERT, UPDATE, DELETE ON mongo_river.river, mongo_river.collection_map, mongo_river.mapped_table,
    mongo_river.progress, mongo_river.mapping_state, mongo_river.resync_seen, mongo_river.rejects TO mongo_river_admin;

-- C helpers: validation and parsing by the PG-free core (libmongoc's URI parser, the jansson
-- mapping parser, the name rules). Internal: not for PUBLIC.
CREATE FUNCTION mongo_river._check_uri(uri text) RETURNS text
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_check_uri';
CREATE FUNCTION mongo_river.redact_uri(uri text) RETURNS text
    LANGUAGE C STRICT IMMUTABLE AS 'MODULE_PATHNAME', 'mongo_river_redact_uri';
COMMENT ON FUNCTION mongo_river.redact_uri(text) IS 'the URI with its password replaced by ****';
CREATE FUNCTION mongo_river._normalize_mapping(mapping jsonb) RETURNS jsonb
    LANGUAGE C STRICT IMMUTABLE AS 'MODULE_PATHNAME', 'mongo_river_normalize_mapping';
CREATE FUNCTION mongo_river._default_identifier(name text) RETURNS text
    LANGUAGE C STRICT IMMUTABLE AS 'MODULE_PATHNAME', 'mongo_river_default_identifier';
CREATE FUNCTION mongo_river._connector_mappings(mappings jsonb) RETURNS jsonb
    LANGUAGE C STRICT IMMUTABLE AS 'MODULE_PATHNAME', 'mongo_river_connector_mappings';
REVOKE ALL ON FUNCTION mongo_river._check_uri(text), mongo_river._normalize_mapping(jsonb),
    mongo_river._default_identifier(text), mongo_river._connector_mappings(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._check_uri(text), mongo_river._normalize_mapping(jsonb),
    mongo_river._default_identifier(text), mongo_river._connector_mappings(jsonb) TO mongo_river_admin;

-- rivers: the rivers with their URIs redacted.
CREATE VIEW mongo_river.rivers AS
    SELECT river, owner, mongo_river.redact_uri(uri) AS uri, options, enabled, created_at
    FROM mongo_river.river;
GRANT SELECT ON mongo_river.rivers TO mongo_river_admin;

-- columns: every mapped column, one row each (derived from the mappings).
CREATE VIEW mongo_river.columns AS
    SELECT m.river, m.source, m.target AS relation, c.key AS column_name, c.value->>'type' AS type,
           c.value->'path' AS path, c.key = m.mapping->>'pk' AS is_pk
    FROM mongo_river.collection_map m, jsonb_each(m.mapping->'columns') c;
GRANT SELECT ON mongo_river.columns TO mongo_river_admin;

CREATE FUNCTION mongo_river._infer(uri text, db text, collection text, sample_size int, table_name text) RETURNS jsonb
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_infer';
REVOKE ALL ON FUNCTION mongo_river._infer(text, text, text, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._infer(text, text, text, int, text) TO mongo_river_admin;

CREATE FUNCTION mongo_river._resolve_type(name text) RETURNS text
    LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'mongo_river_resolve_type';
REVOKE ALL ON FUNCTION mongo_river._resolve_type(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._resolve_type(text) TO mongo_river_admin;

-- _require_admin raises 42501 unless the current user is a superuser or a member of mongo_river_admin.
CREATE FUNCTION mongo_river._require_admin(fn text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolsuper)
       AND NOT pg_catalog.pg_has_role(current_user, 'mongo_river_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied for %: managing rivers needs mongo_river_admin', fn
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %I is neither a superuser nor a member of mongo_river_admin.', current_user),
                  HINT = format('A superuser can run: GRANT mongo_river_admin TO %I;', current_user);
    END IF;
END
$$;

-- _not_null raises 22004 naming the function and the argument that was NULL.
CREATE FUNCTION mongo_river._not_null(fn text, argument text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION '%: argument % must not be NULL', fn, argument
        USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Leave the argument out to use its default, if it has one.';
END
$$;

-- _river_for_owner returns a river's row after checking that it exists and that the current user
-- has the privileges of its owner (or is a superuser).
CREATE FUNCTION mongo_river._river_for_owner(fn text, river_name name) RETURNS mongo_river.river
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r mongo_river.river;
BEGIN
    SELECT * INTO r FROM mongo_river.river WHERE river = river_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: river "%" does not exist', fn, river_name
            USING ERRCODE = 'undefined_object', HINT = 'SELECT river FROM mongo_river.rivers lists the rivers.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolsuper)
       AND NOT pg_catalog.pg_has_role(current_user, r.owner, 'USAGE') THEN
        RAISE EXCEPTION '%: must be owner of river "%"', fn, river_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('River %I belongs to role %s.', river_name, r.owner),
                  HINT = format('Ask a superuser or a member of %s.', r.owner);
    END IF;
    RETURN r;
END
$$;

-- _owned_river is the common start of functions that act on a river: the caller must be an admin,
-- the river argument must not be NULL, the river must exist and belong to the caller (or to a role
-- whose privileges the caller has). Returns the river's row.
CREATE FUNCTION mongo_river._owned_river(fn text, river_name name) RETURNS mongo_river.river
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM mongo_river._require_admin(fn);
    IF river_name IS NULL THEN PERFORM mongo_river._not_null(fn, 'river'); END IF;
    RETURN mongo_river._river_for_owner(fn, river_name);
END
$$;

-- _check_option_keys checks that options is a JSON object whose keys are all allowed; what names
-- the kind of options in messages ("river", "mapping", "database"), example shows a valid one.
CREATE FUNCTION mongo_river._check_option_keys(fn text, what text, options jsonb, allowed text[], example text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    key text;
BEGIN
    IF jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION '%: options must be a JSON object, not %', fn, jsonb_typeof(options)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ' || example;
    END IF;
    FOR key IN SELECT jsonb_object_keys(options) LOOP
        IF NOT key = ANY (allowed) THEN
            RAISE EXCEPTION '%: unknown % option "%"', fn, what, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = initcap(what) || ' options are: ' || array_to_string(allowed, ', ') || '.';
        END IF;
    END LOOP;
END
$$;

-- _check_river_options validates a river's options (ARCHITECTURE.md §2) and returns them.
CREATE FUNCTION mongo_river._check_river_options(fn text, options jsonb) RETURNS jsonb
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
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolsuper) THEN
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

-- create_river declares a MongoDB source. The URI is checked with libmongoc's parser; the source
-- need not be reachable yet.
CREATE FUNCTION mongo_river.create_river(river name, uri text, options jsonb DEFAULT '{}') RETURNS void
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
        VALUES (create_river.river, current_user::regrole, create_river.uri, create_river.options);
    INSERT INTO mongo_river.progress (river) VALUES (create_river.river);
END
$$;

-- alter_river changes a river's URI and/or options; options are merged into the existing ones
-- (a key set to null goes back to its default). The position in the stream is kept.
CREATE FUNCTION mongo_river.alter_river(river name, uri text DEFAULT NULL, options jsonb DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
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
END
$$;

-- drop_river removes a river, its mappings, position and rejects. With drop_tables, the tables
-- mongo_river created for it are dropped too; tables that existed before are always kept.
CREATE FUNCTION mongo_river.drop_river(river name, drop_tables boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
    tables text;
BEGIN
    r := mongo_river._owned_river('drop_river', river);
    IF drop_tables IS NULL THEN PERFORM mongo_river._not_null('drop_river', 'drop_tables'); END IF;
    IF drop_tables THEN
        SELECT string_agg(t.relation::text, ', ') INTO tables
        FROM mongo_river.mapped_table t WHERE t.river = r.river AND t.created AND t.kind = 'view';
        IF tables IS NOT NULL THEN
            EXECUTE 'DROP VIEW ' || tables;
        END IF;
        SELECT string_agg(t.relation::text, ', ') INTO tables
        FROM mongo_river.mapped_table t WHERE t.river = r.river AND t.created AND t.kind <> 'view';
        IF tables IS NOT NULL THEN
            EXECUTE 'DROP TABLE ' || tables;
        END IF;
    END IF;
    DELETE FROM mongo_river.river WHERE mongo_river.river.river = r.river;
END
$$;

-- _resolve_types returns the mapping with every column type in canonical spelling, naming the
-- column when a type is unknown.
CREATE FUNCTION mongo_river._resolve_types(fn text, spec jsonb, location text DEFAULT 'mapping') RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    result jsonb := spec;
    c record;
    message text;
    code text;
BEGIN
    FOR c IN SELECT key, value FROM jsonb_each(spec->'columns') LOOP
        BEGIN
            result := jsonb_set(result, ARRAY['columns', c.key, 'type'],
                                to_jsonb(mongo_river._resolve_type(c.value->>'type')));
        EXCEPTION WHEN undefined_object OR syntax_error OR wrong_object_type THEN
            GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
            RAISE EXCEPTION '%: %.columns.%.type: %', fn, location, c.key, message
                USING ERRCODE = code, HINT = 'Use a PostgreSQL type name, e.g. text, bigint, numeric(12,2), timestamptz, jsonb, text[].';
        END;
    END LOOP;
    FOR c IN SELECT key, value FROM jsonb_each(coalesce(spec->'arrays', '{}')) LOOP
        result := jsonb_set(result, ARRAY['arrays', c.key],
                            mongo_river._resolve_types(fn, c.value, location || '.arrays.' || c.key));
    END LOOP;
    RETURN result;
END
$$;

-- _split_name splits '[schema.]table' as SQL does (parse_ident) into schema and table, the schema
-- defaulting to default_schema.
CREATE FUNCTION mongo_river._split_name(fn text, what text, name text, default_schema text,
                                        OUT schema_name text, OUT table_name text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    parts text[];
BEGIN
    BEGIN
        parts := parse_ident(name);
    EXCEPTION WHEN invalid_parameter_value OR invalid_name OR syntax_error THEN
        RAISE EXCEPTION '%: % "%" is not a valid [schema.]table name', fn, what, name
            USING ERRCODE = 'invalid_name', HINT = 'Quote names with capitals or special characters: ''"MySchema"."My Table"''.';
    END;
    IF cardinality(parts) = 1 THEN
        schema_name := default_schema; table_name := parts[1];
    ELSIF cardinality(parts) = 2 THEN
        schema_name := parts[1]; table_name := parts[2];
    ELSE
        RAISE EXCEPTION '%: % "%" has too many dotted parts', fn, what, name
            USING ERRCODE = 'invalid_name', HINT = 'Give [schema.]table; the database is the current one.';
    END IF;
    IF length(table_name) > 63 THEN
        RAISE EXCEPTION '%: % "%" is longer than 63 bytes', fn, what, table_name USING ERRCODE = 'name_too_long';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = schema_name) THEN
        RAISE EXCEPTION '%: schema "%" of % "%" does not exist', fn, schema_name, what, name
            USING ERRCODE = 'invalid_schema_name', HINT = format('CREATE SCHEMA %I; first.', schema_name);
    END IF;
END
$$;

-- _table_columns lists the columns a mapping spec (the target's, or an array's) puts in its table,
-- in table order, with the key column and its role.
CREATE FUNCTION mongo_river._table_columns(spec jsonb, parent_key_type text, is_child boolean)
RETURNS TABLE (ord int, column_name text, column_type text, role text)
LANGUAGE sql STABLE AS $$
    SELECT row_number() OVER (ORDER BY grp, pos)::int, name, type, role FROM (
        SELECT 0 AS grp, 0::bigint AS pos, spec->>'id' AS name, 'text' AS type, 'id' AS role
            WHERE is_child AND spec ? 'id'
        UNION ALL SELECT 1, 0, spec->>'fk', parent_key_type, 'fk' WHERE is_child
        UNION ALL SELECT 2, 0, spec->>'position', 'integer', 'position' WHERE is_child AND spec ? 'position'
        UNION ALL SELECT 3, 0, spec->>'pk', spec->'columns'->(spec->>'pk')->>'type', 'pk' WHERE NOT is_child
        UNION ALL SELECT 4, c.pos, c.key, c.value->>'type', 'column'
            FROM jsonb_each(spec->'columns') WITH ORDINALITY AS c(key, value, pos)
            WHERE is_child OR c.key <> spec->>'pk'
        UNION ALL SELECT 5, 0, spec->>'document', 'jsonb', 'document' WHERE spec ? 'document'
    ) s
$$;

-- _prepared_table is one table _prepare_tables created or checked.
CREATE TYPE mongo_river._prepared_table AS (relation regclass, kind text, path text, created boolean);

-- _prepare_tables creates the table of a mapping spec (or checks an existing one) and, recursively,
-- the child tables of its arrays. It returns every table with its kind and whether it was created.
CREATE FUNCTION mongo_river._prepare_tables(fn text, owner regrole, schema_name text, table_name text, spec jsonb,
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
        IF is_child AND key_column IS NULL AND NOT spec ? 'position' THEN
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

-- _prepare_history_table creates the append-only table of a history-mode mapping: the mapped
-- columns plus _operation, _cluster_time, _source_time and _position (unique: a change seen twice is
-- recorded once), and the view <table>_latest with the latest version of each document (deleted
-- ones hidden).
CREATE FUNCTION mongo_river._prepare_history_table(fn text, owner regrole, schema_name text, table_name text,
                                                   spec jsonb, create_table boolean)
RETURNS SETOF mongo_river._prepared_table
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass := to_regclass(format('%I.%I', schema_name, table_name));
    view_name text := left(table_name, 56) || '_latest';
    defs text[] := '{}';
    mapped text;
    col record;
BEGIN
    IF spec ? 'arrays' AND spec->'arrays' <> '{}' THEN
        RAISE EXCEPTION '%: mode "history" does not support array mappings', fn
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Keep arrays in the document column (mapping key "document") or in a jsonb column.';
    END IF;
    IF rel IS NOT NULL THEN
        RAISE EXCEPTION '%: table %.% already exists; a history table must be created by mongo_river', fn,
                        quote_ident(schema_name), quote_ident(table_name)
            USING ERRCODE = 'duplicate_table', HINT = 'Choose another target, or drop the table.';
    END IF;
    IF NOT create_table THEN
        RAISE EXCEPTION '%: mode "history" needs create_table', fn
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave the option create_table at true.';
    END IF;
    SELECT string_agg(format('%I', c.column_name), ', ' ORDER BY c.ord) INTO mapped
    FROM mongo_river._table_columns(spec, NULL, false) c;
    FOR col IN SELECT * FROM mongo_river._table_columns(spec, NULL, false) ORDER BY ord LOOP
        defs := defs || format('%I %s%s', col.column_name, col.column_type,
                               CASE WHEN col.role = 'pk' THEN ' NOT NULL' ELSE '' END);
    END LOOP;
    defs := defs || ARRAY['_operation text NOT NULL', '_cluster_time bigint NOT NULL', '_source_time timestamptz',
                          '_position text NOT NULL UNIQUE'];
    EXECUTE format('CREATE TABLE %I.%I (%s)', schema_name, table_name, array_to_string(defs, ', '));
    rel := format('%I.%I', schema_name, table_name)::regclass;
    EXECUTE format('CREATE INDEX ON %s (%I, _cluster_time)', rel, spec->>'pk');
    EXECUTE format('CREATE VIEW %I.%I AS SELECT %s, _cluster_time, _source_time FROM ('
                   'SELECT DISTINCT ON (%I) * FROM %s ORDER BY %I, _cluster_time DESC, _position DESC) latest '
                   'WHERE _operation <> %L',
                   schema_name, view_name, mapped, spec->>'pk', rel, spec->>'pk', 'delete');
    IF owner::oid <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('ALTER TABLE %s OWNER TO %s', rel, owner);
        EXECUTE format('ALTER VIEW %I.%I OWNER TO %s', schema_name, view_name, owner);
    END IF;
    RETURN NEXT ROW(rel, 'target', NULL, true)::mongo_river._prepared_table;
    RETURN NEXT ROW(format('%I.%I', schema_name, view_name)::regclass, 'view', NULL, true)::mongo_river._prepared_table;
END
$$;

-- _split_source splits 'db.collection' at its first dot (database names cannot hold dots;
-- collection names can) and checks both parts by MongoDB's naming rules.
CREATE FUNCTION mongo_river._split_source(fn text, source text, OUT db text, OUT collection text)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    db := split_part(source, '.', 1);
    collection := substr(source, length(db) + 2);
    IF position('.' IN source) = 0 OR db = '' OR collection = '' THEN
        RAISE EXCEPTION '%: source "%" is not of the form db.collection', fn, source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example ''shop.orders''.';
    END IF;
    IF db ~ '[/\\ "$]' OR db IN ('admin', 'local', 'config') THEN
        RAISE EXCEPTION '%: "%" cannot be a source database', fn, db
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'MongoDB database names exclude / \ . " $ and space; admin, local and config are never mapped.';
    END IF;
    IF collection LIKE 'system.%' OR position('$' IN collection) > 0 THEN
        RAISE EXCEPTION '%: "%" cannot be a source collection', fn, collection
            USING ERRCODE = 'invalid_parameter_value', HINT = 'System collections and names with $ are not mapped.';
    END IF;
END
$$;

-- _check_map_options validates map_collection's options.
CREATE FUNCTION mongo_river._check_map_options(fn text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    key text;
    value jsonb;
BEGIN
    PERFORM mongo_river._check_option_keys(fn, 'mapping', options, ARRAY['mode', 'create_table', 'copy'],
                                           '{"copy": false}');
    FOR key, value IN SELECT * FROM jsonb_each(options) LOOP
        IF (key = 'mode' AND value NOT IN ('"upsert"', '"history"'))
           OR (key IN ('create_table', 'copy') AND jsonb_typeof(value) <> 'boolean') THEN
            RAISE EXCEPTION '%: invalid value % for mapping option "%"', fn, value, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE key WHEN 'mode' THEN 'mode is "upsert" (default) or "history".'
                                      ELSE key || ' is true or false.' END;
        END IF;
    END LOOP;
    RETURN options;
END
$$;

-- map_collection maps a source collection onto a table: validates the mapping (inferred by
-- sampling when NULL), creates the table and its child tables (or checks existing ones) and
-- records it all in the catalog. Returns the target table.
CREATE FUNCTION mongo_river.map_collection(river name, source text, target text DEFAULT NULL,
                                           mapping jsonb DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'map_collection';
    r mongo_river.river;
    src record;
    normalized jsonb;
    target_schema text;
    target_table text;
    prepared mongo_river._prepared_table[];
    result regclass;
BEGIN
    r := mongo_river._owned_river(fn, river);
    IF source IS NULL THEN PERFORM mongo_river._not_null(fn, 'source'); END IF;
    IF options IS NULL THEN PERFORM mongo_river._not_null(fn, 'options'); END IF;
    SELECT * INTO src FROM mongo_river._split_source(fn, source);
    IF EXISTS (SELECT 1 FROM mongo_river.collection_map m WHERE m.river = r.river AND m.source = map_collection.source) THEN
        RAISE EXCEPTION '%: collection "%" is already mapped by river "%"', fn, source, r.river
            USING ERRCODE = 'duplicate_object', HINT = 'unmap_collection first to map it again.';
    END IF;
    PERFORM mongo_river._check_map_options(fn, options);
    IF target IS NULL THEN
        target_schema := 'public';
        target_table := mongo_river._default_identifier(src.collection);
    ELSE
        SELECT s.schema_name, s.table_name INTO target_schema, target_table
        FROM mongo_river._split_name(fn, 'target', target, 'public') s;
    END IF;
    IF mapping IS NULL THEN
        mapping := mongo_river._infer(r.uri, src.db, src.collection, 1000, target_table);
    END IF;
    normalized := mongo_river._resolve_types(fn, mongo_river._normalize_mapping(mapping));
    IF normalized->'columns'->(normalized->>'pk')->'path' IS DISTINCT FROM '"_id"' THEN
        RAISE EXCEPTION '%: mapping.pk column "%" must have the path "_id"', fn, normalized->>'pk'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'MongoDB identifies a deleted document by its _id only, so the key must be made from it.',
                  HINT = format('Use {"%s": {"path": "_id", "type": "text"}}.', normalized->>'pk');
    END IF;
    IF options->>'mode' = 'history' THEN
        prepared := ARRAY(SELECT t FROM mongo_river._prepare_history_table(fn, r.owner, target_schema, target_table,
                              normalized, coalesce((options->>'create_table')::boolean, true)) AS t);
    ELSE
        prepared := ARRAY(SELECT ROW(t.relation, t.kind, t.path, t.created)::mongo_river._prepared_table
                          FROM mongo_river._prepare_tables(fn, r.owner, target_schema, target_table, normalized,
                                                           coalesce((options->>'create_table')::boolean, true)) AS t);
    END IF;
    result := (SELECT p.relation FROM unnest(prepared) p WHERE p.kind = 'target');
    DECLARE
        taken record;
    BEGIN
        SELECT t.relation, t.river, t.source INTO taken FROM mongo_river.mapped_table t
        WHERE t.relation IN (SELECT p.relation FROM unnest(prepared) p) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION '%: table % is already filled by collection "%" of river "%"', fn, taken.relation,
                            taken.source, taken.river
                USING ERRCODE = 'duplicate_object',
                      HINT = 'A table is fed by one mapping: choose another target (or unmap the other collection).';
        END IF;
    END;
    INSERT INTO mongo_river.collection_map (river, source, source_db, source_collection, target, mapping, options)
        VALUES (r.river, map_collection.source, src.db, src.collection, result, normalized, options);
    INSERT INTO mongo_river.mapped_table (river, source, relation, kind, array_path, created)
    SELECT r.river, map_collection.source, p.relation, p.kind, p.path, p.created FROM unnest(prepared) p;
    INSERT INTO mongo_river.mapping_state (river, source, phase)
        VALUES (r.river, map_collection.source,
                CASE WHEN coalesce((options->>'copy')::boolean, true) THEN 'pending' ELSE 'streaming' END);
    RETURN result;
END
$$;

-- unmap_collection stops mapping a collection; its tables and their rows are kept.
CREATE FUNCTION mongo_river.unmap_collection(river name, source text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'unmap_collection';
    r mongo_river.river;
    deleted bigint;
BEGIN
    r := mongo_river._owned_river(fn, river);
    IF source IS NULL THEN PERFORM mongo_river._not_null(fn, 'source'); END IF;
    DELETE FROM mongo_river.collection_map m WHERE m.river = r.river AND m.source = unmap_collection.source;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    -- A collection of a mapped database stays out: the river does not map it again.
    UPDATE mongo_river.database_map d SET unmapped = d.unmapped || substr(unmap_collection.source, length(d.database) + 2)
    WHERE d.river = r.river AND deleted > 0 AND unmap_collection.source LIKE d.database || '.%';
    IF deleted = 0 THEN
        RAISE EXCEPTION '%: collection "%" is not mapped by river "%"', fn, source, r.river
            USING ERRCODE = 'undefined_object', HINT = 'SELECT source FROM mongo_river.collection_map lists the mapped collections.';
    END IF;
END
$$;

-- import_mappings maps every collection of a mongo-connector-postgresql mappings.json (taken
-- unchanged) and creates its indices. All or nothing: any problem leaves nothing behind.
CREATE FUNCTION mongo_river.import_mappings(river name, mappings jsonb, options jsonb DEFAULT '{}')
RETURNS SETOF regclass
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'import_mappings';
    schema_name text := coalesce(options->>'schema', 'public');
    entry jsonb;
    index_def jsonb;
    rel regclass;
BEGIN
    PERFORM mongo_river._owned_river(fn, river);
    IF mappings IS NULL THEN PERFORM mongo_river._not_null(fn, 'mappings'); END IF;
    IF options IS NULL THEN PERFORM mongo_river._not_null(fn, 'options'); END IF;
    IF jsonb_typeof(options) <> 'object' OR (options ? 'schema' AND jsonb_typeof(options->'schema') <> 'string') THEN
        RAISE EXCEPTION '%: options must be an object whose "schema" is a string', fn
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: {"schema": "mirror"}';
    END IF;
    PERFORM mongo_river._check_map_options(fn, options - 'schema');
    FOR entry IN SELECT * FROM jsonb_array_elements(mongo_river._connector_mappings(mappings)) LOOP
        rel := mongo_river.map_collection(river, entry->>'source', format('%I.%I', schema_name, entry->>'table'),
                                          entry->'mapping', options - 'schema');
        FOR index_def IN SELECT * FROM jsonb_array_elements(coalesce(entry->'indexes', '[]')) LOOP
            EXECUTE format('CREATE %sINDEX %I ON %I.%I (%s)',
                           CASE WHEN (index_def->>'unique')::boolean THEN 'UNIQUE ' ELSE '' END,
                           index_def->>'name', schema_name, index_def->>'table',
                           (SELECT string_agg(quote_ident(c), ', ') FROM jsonb_array_elements_text(index_def->'columns') c));
        END LOOP;
        RETURN NEXT rel;
    END LOOP;
END
$$;

-- start lets the launcher run the river (within mongo_river.naptime); it also clears an error
-- that stopped it.
CREATE FUNCTION mongo_river.start(river name) RETURNS void
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
END
$$;

-- stop makes the launcher stop the river's worker (within mongo_river.naptime); the position is kept.
CREATE FUNCTION mongo_river.stop(river name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r mongo_river.river;
BEGIN
    r := mongo_river._owned_river('stop', river);
    UPDATE mongo_river.river SET enabled = false WHERE mongo_river.river.river = r.river;
END
$$;

-- wait_for_sync waits until every change the source had made when it was called is applied (true),
-- or timeout passes (false).
CREATE FUNCTION mongo_river.wait_for_sync(river name, timeout interval DEFAULT '1 min') RETURNS boolean
    LANGUAGE C AS 'MODULE_PATHNAME', 'mongo_river_wait_for_sync';

-- _live_status reads the workers' live state from shared memory.
CREATE FUNCTION mongo_river._live_status(OUT river text, OUT source text, OUT phase text, OUT docs_copied bigint,
                                         OUT changes_applied bigint, OUT last_source_time timestamptz,
                                         OUT caught_up boolean, OUT pid int, OUT last_error text,
                                         OUT oplog_margin_s bigint, OUT updated_at timestamptz)
RETURNS SETOF record LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_live_status';
REVOKE ALL ON FUNCTION mongo_river._live_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._live_status() TO mongo_river_admin;

-- status: one row per river and mapped collection, from the workers' live state in shared memory
-- where there is one (counters, phases, lag without a catalog write per change), else from what
-- was last written to the catalog. oplog_margin: how far the river's position is from the oldest
-- entry its source's oplog still holds.
CREATE VIEW mongo_river.status AS
SELECT m.river, m.source, m.target,
       CASE WHEN NOT r.enabled THEN 'stopped'
            WHEN ph.river_phase IN ('error', 'retrying', 'resync') THEN ph.river_phase
            ELSE coalesce(ph.mapping_phase, 'pending') END AS phase,
       greatest(l.docs_copied, s.docs_copied, 0) AS docs_copied,
       greatest(l.changes_applied, s.changes_applied, 0) AS changes_applied,
       coalesce(l.last_source_time, s.last_source_time) AS last_source_time,
       CASE WHEN coalesce(lr.caught_up, p.caught_up) THEN interval '0'
            ELSE now() - coalesce(l.last_source_time, s.last_source_time) END AS lag,
       coalesce(l.last_error, s.last_error, lr.last_error, p.last_error) AS last_error,
       w.pid AS worker_pid,
       make_interval(secs => lr.oplog_margin_s) AS oplog_margin
FROM mongo_river.collection_map m
JOIN mongo_river.river r USING (river)
LEFT JOIN mongo_river.progress p USING (river)
LEFT JOIN mongo_river.mapping_state s USING (river, source)
LEFT JOIN mongo_river._live_status() l ON l.river = m.river AND l.source = m.source
LEFT JOIN mongo_river._live_status() lr ON lr.river = m.river AND lr.source = ''
-- The newer of the live and the catalog phase (resync() and map_collection write the catalog).
CROSS JOIN LATERAL (SELECT
    CASE WHEN lr.updated_at >= p.updated_at AND lr.phase <> '' THEN lr.phase ELSE p.phase END AS river_phase,
    CASE WHEN l.updated_at >= s.updated_at AND l.phase <> '' THEN l.phase ELSE s.phase END AS mapping_phase) ph
LEFT JOIN pg_catalog.pg_stat_activity w
       ON w.backend_type = 'mongo_river worker' AND w.application_name = 'mongo_river ' || m.river;
GRANT SELECT ON mongo_river.status TO mongo_river_admin;

-- infer_mapping samples a collection ($sample) and proposes a mapping: typed columns (dotted paths
-- for nested fields), child tables for arrays of documents, a pk fitting every sampled _id and the
-- whole document in a jsonb column. Edit it and pass it to map_collection.
CREATE FUNCTION mongo_river.infer_mapping(river name, source text, sample_size int DEFAULT 1000) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'infer_mapping';
    r mongo_river.river;
    src record;
BEGIN
    r := mongo_river._owned_river(fn, river);
    IF source IS NULL THEN PERFORM mongo_river._not_null(fn, 'source'); END IF;
    IF sample_size IS NULL THEN PERFORM mongo_river._not_null(fn, 'sample_size'); END IF;
    IF sample_size < 1 OR sample_size > 100000 THEN
        RAISE EXCEPTION '%: sample_size % is out of range', fn, sample_size
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Sample from 1 to 100000 documents.';
    END IF;
    SELECT * INTO src FROM mongo_river._split_source(fn, source);
    RETURN mongo_river._infer(r.uri, src.db, src.collection, sample_size, mongo_river._default_identifier(src.collection));
END
$$;

-- resync re-copies one mapped collection (or all of a river's) from the source: rows are upserted in
-- place and, at the end, rows of documents that no longer exist are deleted; readers never see an
-- empty table meanwhile. The worker picks it up within mongo_river.naptime.
CREATE FUNCTION mongo_river.resync(river name, source text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'resync';
    r mongo_river.river;
BEGIN
    r := mongo_river._owned_river(fn, river);
    IF source IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mongo_river.collection_map m
                                          WHERE m.river = r.river AND m.source = resync.source) THEN
        RAISE EXCEPTION '%: collection "%" is not mapped by river "%"', fn, source, r.river
            USING ERRCODE = 'undefined_object', HINT = 'SELECT source FROM mongo_river.status lists the mapped collections.';
    END IF;
    DELETE FROM mongo_river.resync_seen s WHERE s.river = r.river AND (resync.source IS NULL OR s.source = resync.source);
    UPDATE mongo_river.mapping_state s SET phase = 'resync', copy_last_id = NULL, last_error = NULL, updated_at = now()
    WHERE s.river = r.river AND (resync.source IS NULL OR s.source = resync.source);
END
$$;

-- database_map: whole source databases mapped by map_database; the worker maps collections that
-- appear there later by the same options. unmapped lists collections unmap_collection took out.
CREATE TABLE mongo_river.database_map (
    river       name NOT NULL REFERENCES mongo_river.river ON UPDATE CASCADE ON DELETE CASCADE,
    database    text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    unmapped    text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (river, database)
);
SELECT pg_catalog.pg_extension_config_dump('mongo_river.database_map', '');
GRANT SELECT, INSERT, UPDATE, DELETE ON mongo_river.database_map TO mongo_river_admin;

CREATE FUNCTION mongo_river._list_collections(uri text, db text) RETURNS SETOF text
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_list_collections';
REVOKE ALL ON FUNCTION mongo_river._list_collections(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._list_collections(text, text) TO mongo_river_admin;

-- _glob_matches tells whether name matches a glob pattern: * any run of characters, ? one
-- character, everything else literally.
CREATE FUNCTION mongo_river._glob_matches(name text, pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT name ~ ('^' || replace(replace(regexp_replace(pattern, '([.^$+(){}\[\]|\\])', '\\\1', 'g'),
                                          '*', '.*'), '?', '.') || '$')
$$;

-- _check_database_options validates map_database's options.
CREATE FUNCTION mongo_river._check_database_options(fn text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    key text;
    value jsonb;
BEGIN
    PERFORM mongo_river._check_option_keys(fn, 'database', options,
        ARRAY['include', 'exclude', 'schema', 'table_prefix', 'mapping', 'copy'],
        '{"schema": "shop", "exclude": ["tmp_*"]}');
    FOR key, value IN SELECT * FROM jsonb_each(options) LOOP
        IF (key IN ('include', 'exclude') AND (jsonb_typeof(value) <> 'array' OR EXISTS (
                SELECT 1 FROM jsonb_array_elements(value) e WHERE jsonb_typeof(e) <> 'string' OR e = '""')))
           OR (key IN ('schema', 'table_prefix') AND (jsonb_typeof(value) <> 'string'
               OR (key = 'schema' AND (value->>0 = '' OR length(value->>0) > 63))
               OR (key = 'table_prefix' AND length(value->>0) > 40)))
           OR (key = 'mapping' AND value NOT IN ('"infer"', '"document"'))
           OR (key = 'copy' AND jsonb_typeof(value) <> 'boolean') THEN
            RAISE EXCEPTION '%: invalid value % for database option "%"', fn, value, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE key
                          WHEN 'include' THEN 'include is an array of glob patterns on collection names, e.g. ["orders*"].'
                          WHEN 'exclude' THEN 'exclude is an array of glob patterns on collection names, e.g. ["tmp_*"].'
                          WHEN 'schema' THEN 'schema is a schema name (created if missing).'
                          WHEN 'table_prefix' THEN 'table_prefix is a string of at most 40 bytes.'
                          WHEN 'mapping' THEN 'mapping is "infer" (default) or "document".'
                          ELSE 'copy is true or false.' END;
        END IF;
    END LOOP;
    RETURN options;
END
$$;

-- _document_mapping is the mapping of map_database's "document" option (and of empty collections,
-- which cannot be sampled): the key from _id (its inferred type when sample is given) and the
-- whole document in a jsonb column.
CREATE FUNCTION mongo_river._document_mapping(sample jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('pk', 'id',
        'columns', jsonb_build_object('id', coalesce(sample->'columns'->(sample->>'pk'),
                                                     '{"path": "_id", "type": "text"}'::jsonb)),
        'document', 'document')
$$;

-- _discover maps the collections of a river's mapped databases that are not mapped yet (nor taken
-- out by unmap_collection, nor excluded); it returns the tables it created. A collection that
-- cannot be mapped is reported (WARNING) and skipped; the others go on.
CREATE FUNCTION mongo_river._discover(river_name name, only_database text DEFAULT NULL) RETURNS SETOF regclass
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

-- map_database maps every collection of a source database (system collections never; admin,
-- local and config never), and makes the river map collections that appear there later by the
-- same options: include/exclude (glob patterns), schema (created if missing), table_prefix,
-- mapping ('infer' or 'document'), copy.
CREATE FUNCTION mongo_river.map_database(river name, database text, options jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'map_database';
    r mongo_river.river;
    schema_name text;
BEGIN
    r := mongo_river._owned_river(fn, river);
    IF database IS NULL THEN PERFORM mongo_river._not_null(fn, 'database'); END IF;
    IF options IS NULL THEN PERFORM mongo_river._not_null(fn, 'options'); END IF;
    IF (SELECT s.db FROM mongo_river._split_source(fn, database || '.x') s) <> database THEN
        RAISE EXCEPTION '%: "%" cannot be a source database', fn, database
            USING ERRCODE = 'invalid_parameter_value', HINT = 'MongoDB database names cannot contain a dot.';
    END IF;
    PERFORM mongo_river._check_database_options(fn, options);
    IF EXISTS (SELECT 1 FROM mongo_river.database_map m WHERE m.river = r.river AND m.database = map_database.database) THEN
        RAISE EXCEPTION '%: database "%" is already mapped by river "%"', fn, database, r.river
            USING ERRCODE = 'duplicate_object', HINT = 'Its new collections are mapped as they appear.';
    END IF;
    schema_name := coalesce(options->>'schema', 'public');
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = schema_name) THEN
        EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %s', schema_name, r.owner);
    END IF;
    INSERT INTO mongo_river.database_map (river, database, options) VALUES (r.river, map_database.database, options);
    PERFORM mongo_river._discover(r.river, map_database.database);
END
$$;

-- verify re-reads documents from MongoDB (all, or a sample) and compares them with their rows
-- through the mapping (child tables too): missing, extra and different rows; with repair, fixes
-- them (serialised with the river's worker).
CREATE FUNCTION mongo_river.verify(river name, source text DEFAULT NULL, sample_size int DEFAULT NULL,
                                   repair boolean DEFAULT false)
RETURNS TABLE (source text, document_id text, problem text, repaired boolean)
    LANGUAGE C AS 'MODULE_PATHNAME', 'mongo_river_verify';

-- retry_rejects re-applies rejected changes from the documents' current state in MongoDB; returns
-- how many were resolved (the others keep their row, with the new reason).
CREATE FUNCTION mongo_river.retry_rejects(river name, id bigint DEFAULT NULL) RETURNS bigint
    LANGUAGE C AS 'MODULE_PATHNAME', 'mongo_river_retry_rejects';

-- discard_rejects deletes rejects (one, or all of the river's) and returns how many.
CREATE FUNCTION mongo_river.discard_rejects(river name, id bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    fn constant text := 'discard_rejects';
    r mongo_river.river;
    n bigint;
BEGIN
    r := mongo_river._owned_river(fn, river);
    DELETE FROM mongo_river.rejects j WHERE j.river = r.river AND (discard_rejects.id IS NULL OR j.id = discard_rejects.id);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF discard_rejects.id IS NOT NULL AND n = 0 THEN
        RAISE EXCEPTION '%: river "%" has no reject %', fn, r.river, discard_rejects.id
            USING ERRCODE = 'undefined_object', HINT = 'SELECT id FROM mongo_river.rejects lists them.';
    END IF;
    RETURN n;
END
$$;

-- sync_once catches a stopped river up to the source's current time inside the calling backend,
-- committing per batch (batch mode, e.g. from pg_cron); the timeout bounds the run and leaves a
-- consistent position. It refuses while the river's worker runs it.
CREATE PROCEDURE mongo_river.sync_once(river name, timeout interval DEFAULT '10 min', INOUT applied bigint DEFAULT NULL)
    LANGUAGE C AS 'MODULE_PATHNAME', 'mongo_river_sync_once';

-- Row-level security: admins may read every catalog row (the views show them anyway), but change
-- only rows of rivers whose owner's privileges they have, and cannot give a river an owner whose
-- privileges they lack (the worker runs as the owner). Superusers, the table owner and the
-- foreign keys' cascades are not subject to it; the functions' own checks give the clear errors.
CREATE FUNCTION mongo_river._may_change(river_name name) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT pg_catalog.pg_has_role(current_user, r.owner, 'USAGE')
                     FROM mongo_river.river r WHERE r.river = river_name), true)
$$;
ALTER TABLE mongo_river.river ENABLE ROW LEVEL SECURITY;
CREATE POLICY river_read ON mongo_river.river FOR SELECT USING (true);
CREATE POLICY river_change ON mongo_river.river FOR ALL
    USING (pg_catalog.pg_has_role(current_user, owner, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(current_user, owner, 'USAGE'));
DO $policies$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['collection_map', 'mapped_table', 'progress', 'mapping_state', 'resync_seen',
                             'database_map', 'rejects'] LOOP
        EXECUTE format('ALTER TABLE mongo_river.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON mongo_river.%I FOR SELECT USING (true)', t || '_read', t);
        EXECUTE format('CREATE POLICY %I ON mongo_river.%I FOR ALL USING (mongo_river._may_change(river)) '
                       'WITH CHECK (mongo_river._may_change(river))', t || '_change', t);
    END LOOP;
END
$policies$;
