-- 20_edges_worker: the edges of a river's timeline (issue 16 items 1, 2, 7; issue 17 item 5).
--   * river.id: an immutable identity per river, so that a worker never acts for a river created
--     again under the same name (the launcher passes it; the worker exits when it differs).
--   * mapping_state.cut: source time (t << 32 | i) at or before which no change (DDL included)
--     touches the mapping: a copy's start, or for copy: false the operation time read by
--     map_collection; mapping_state.catch_up: a copy: false mapping whose changes from its cut up
--     to the river's position are still to be read by the worker.
--   * map_collection: reads the cut for copy: false (refusing with 08xxx when the source cannot be
--     reached) and says in a NOTICE when the collection does not exist.

ALTER TABLE mongo_river.river ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE mongo_river.river ADD CONSTRAINT river_id_key UNIQUE (id);
COMMENT ON COLUMN mongo_river.river.id IS 'the river''s identity, assigned at create_river and never changed: a river dropped and created again under the same name is another river';

ALTER TABLE mongo_river.mapping_state ADD COLUMN cut bigint;
ALTER TABLE mongo_river.mapping_state ADD COLUMN catch_up boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN mongo_river.mapping_state.cut IS 'source time (t << 32 | i) at or before which no change touches the mapping: its copy''s start, or the operation time map_collection read for copy: false';
COMMENT ON COLUMN mongo_river.mapping_state.catch_up IS 'copy: false mapping whose changes between its cut and the river''s position are still to be read';

CREATE FUNCTION mongo_river._source_cut(uri text, db text, collection text, required boolean) RETURNS bigint
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_source_cut';
REVOKE ALL ON FUNCTION mongo_river._source_cut(text, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._source_cut(text, text, text, boolean) TO mongo_river_admin;

-- map_collection maps a source collection onto a table: validates the mapping (inferred by
-- sampling when NULL), creates the table and its child tables (or checks existing ones) and
-- records it all in the catalog. Returns the target table. 0.3.0: copy: false records its cut (the
-- source's operation time, read now: the source must answer) and says when the collection is missing.
CREATE OR REPLACE FUNCTION mongo_river.map_collection(river name, source text, target text DEFAULT NULL,
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
    copies boolean;
    source_cut bigint;
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
    copies := coalesce((options->>'copy')::boolean, true);
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
    -- The cut: copy: false streams the changes after the source's operation time read now (so the
    -- source must answer); a copy sets its own cut when it starts. Either way a missing collection
    -- gets a NOTICE when the source answers.
    source_cut := mongo_river._source_cut(r.uri, src.db, src.collection, NOT copies);
    INSERT INTO mongo_river.collection_map (river, source, source_db, source_collection, target, mapping, options)
        VALUES (r.river, map_collection.source, src.db, src.collection, result, normalized, options);
    INSERT INTO mongo_river.mapped_table (river, source, relation, kind, array_path, created)
    SELECT r.river, map_collection.source, p.relation, p.kind, p.path, p.created FROM unnest(prepared) p;
    INSERT INTO mongo_river.mapping_state (river, source, phase, cut, catch_up)
        VALUES (r.river, map_collection.source, CASE WHEN copies THEN 'pending' ELSE 'streaming' END,
                CASE WHEN copies THEN NULL ELSE source_cut END, NOT copies);
    RETURN result;
END
$$;

