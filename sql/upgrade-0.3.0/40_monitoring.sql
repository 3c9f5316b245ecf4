-- 40_monitoring: copy progress, honest lag, rejects counted apart, sync_once runs, comments.

-- mapping_state gains the copy's start (its clock_timestamp) and the source's estimated document
-- count taken then (docs_copied restarts with every copy: initial copy or resync), and a count of
-- rejected documents and changes (never counted as copied or applied) with the time of the last.
ALTER TABLE mongo_river.mapping_state
    ADD COLUMN copy_started_at timestamptz,
    ADD COLUMN copy_total      bigint,
    ADD COLUMN rejects         bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_reject_at  timestamptz;

-- sync_runs: one row per CALL sync_once (pg_cron keeps only "CALL" as a procedure's result).
CREATE TABLE mongo_river.sync_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    river       name NOT NULL REFERENCES mongo_river.river ON UPDATE CASCADE ON DELETE CASCADE,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    applied     bigint NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('caught_up', 'timeout', 'error')),
    error       text,
    run_by      name NOT NULL DEFAULT current_user
);
CREATE INDEX ON mongo_river.sync_runs (river, started_at);
SELECT pg_catalog.pg_extension_config_dump('mongo_river.sync_runs', '');
GRANT SELECT, INSERT, DELETE ON mongo_river.sync_runs TO mongo_river_admin;
ALTER TABLE mongo_river.sync_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY sync_runs_read ON mongo_river.sync_runs FOR SELECT USING (true);
CREATE POLICY sync_runs_change ON mongo_river.sync_runs FOR ALL USING (mongo_river._may_change(river))
    WITH CHECK (mongo_river._may_change(river));

-- _live_progress reads the workers' live copy progress and stream position from shared memory.
CREATE FUNCTION mongo_river._live_progress(OUT river text, OUT source text, OUT copy_started_at timestamptz,
                                           OUT copy_total bigint, OUT copy_rate double precision,
                                           OUT oldest_pending timestamptz, OUT newest_seen timestamptz,
                                           OUT waiting text)
RETURNS SETOF record LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'mongo_river_live_progress';
REVOKE ALL ON FUNCTION mongo_river._live_progress() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mongo_river._live_progress() TO mongo_river_admin;

-- status: lag is never negative (clock_timestamp(), clamped at 0) and defined per phase (README):
-- streaming: age of the oldest change the worker has seen and not applied yet (0 when caught up);
-- retrying: never 0 (the source cannot say); copying: time since the copy's start point; stopped,
-- pending, error: NULL. Rejects are counted
-- apart from copied and applied; a river waiting for a worker slot says so in last_error.
CREATE OR REPLACE VIEW mongo_river.status AS
SELECT m.river, m.source, m.target,
       ph.phase,
       CASE WHEN l.updated_at >= s.updated_at THEN l.docs_copied ELSE s.docs_copied END AS docs_copied,
       CASE WHEN l.updated_at >= s.updated_at THEN l.changes_applied ELSE s.changes_applied END AS changes_applied,
       coalesce(l.last_source_time, s.last_source_time) AS last_source_time,
       CASE WHEN ph.phase IN ('initial_copy', 'resync')
                 THEN greatest(clock_timestamp() - coalesce(lp.copy_started_at, s.copy_started_at), interval '0')
            WHEN ph.phase NOT IN ('streaming', 'retrying') THEN NULL
            WHEN ph.phase = 'streaming' AND coalesce(lr.caught_up, p.caught_up) THEN interval '0'
            ELSE greatest(clock_timestamp() - coalesce(lpr.oldest_pending, l.last_source_time, s.last_source_time,
                                                       s.copy_started_at), interval '0') END AS lag,
       coalesce(l.last_error, s.last_error, lr.last_error, lpr.waiting, p.last_error) AS last_error,
       w.pid AS worker_pid,
       make_interval(secs => lr.oplog_margin_s) AS oplog_margin,
       s.rejects,
       s.last_reject_at
FROM mongo_river.collection_map m
JOIN mongo_river.river r USING (river)
LEFT JOIN mongo_river.progress p USING (river)
LEFT JOIN mongo_river.mapping_state s USING (river, source)
LEFT JOIN mongo_river._live_status() l ON l.river = m.river AND l.source = m.source
LEFT JOIN mongo_river._live_status() lr ON lr.river = m.river AND lr.source = ''
LEFT JOIN mongo_river._live_progress() lp ON lp.river = m.river AND lp.source = m.source
LEFT JOIN mongo_river._live_progress() lpr ON lpr.river = m.river AND lpr.source = ''
-- The newer of the live and the catalog phase (resync() and map_collection write the catalog).
CROSS JOIN LATERAL (SELECT
    CASE WHEN lr.updated_at >= p.updated_at AND lr.phase <> '' THEN lr.phase ELSE p.phase END AS river_phase,
    CASE WHEN l.updated_at >= s.updated_at AND l.phase <> '' THEN l.phase ELSE s.phase END AS mapping_phase) ph0
CROSS JOIN LATERAL (SELECT
    CASE WHEN NOT r.enabled THEN 'stopped'
         WHEN ph0.river_phase IN ('error', 'retrying', 'resync') THEN ph0.river_phase
         ELSE coalesce(ph0.mapping_phase, 'pending') END AS phase) ph
LEFT JOIN pg_catalog.pg_stat_activity w
       ON w.backend_type = 'mongo_river worker' AND w.application_name = 'mongo_river ' || m.river;

-- copy_progress: one row per collection being copied (initial copy or resync), in the manner of
-- pg_stat_progress_copy: documents copied, the source's estimated count when the copy began,
-- percent, the recent rate and the estimated time left.
CREATE VIEW mongo_river.copy_progress AS
SELECT m.river, m.source, m.target, c.phase,
       coalesce(lp.copy_started_at, s.copy_started_at) AS started_at,
       c.docs_copied,
       coalesce(lp.copy_total, s.copy_total) AS docs_total_estimate,
       round(100.0 * least(c.docs_copied, nullif(coalesce(lp.copy_total, s.copy_total), 0))
             / nullif(coalesce(lp.copy_total, s.copy_total), 0), 1) AS percent,
       round(lp.copy_rate::numeric, 1) AS docs_per_second,
       CASE WHEN lp.copy_rate > 0 THEN
            make_interval(secs => ceil(greatest(coalesce(lp.copy_total, s.copy_total) - c.docs_copied, 0)
                                       / lp.copy_rate)) END AS time_left
FROM mongo_river.collection_map m
JOIN mongo_river.river r USING (river)
JOIN mongo_river.mapping_state s USING (river, source)
LEFT JOIN mongo_river._live_status() l ON l.river = m.river AND l.source = m.source
LEFT JOIN mongo_river._live_progress() lp ON lp.river = m.river AND lp.source = m.source
CROSS JOIN LATERAL (SELECT
    CASE WHEN l.updated_at >= s.updated_at AND l.phase <> '' THEN l.phase ELSE s.phase END AS phase,
    CASE WHEN l.updated_at >= s.updated_at THEN l.docs_copied ELSE s.docs_copied END AS docs_copied) c
WHERE r.enabled AND c.phase IN ('initial_copy', 'resync');
GRANT SELECT ON mongo_river.copy_progress TO mongo_river_admin;

-- Every public object says what it is (\d+, \df+); internal _ functions too.
COMMENT ON TABLE mongo_river.mapped_table IS 'tables written for each mapped collection (target, child tables, history views) and whether mongo_river created them';
COMMENT ON TABLE mongo_river.progress IS 'each river''s position in its source''s stream, phase and last error (written with the rows it covers)';
COMMENT ON TABLE mongo_river.mapping_state IS 'each mapped collection''s phase, copy position and counters (copied, applied, rejects), written once per batch';
COMMENT ON TABLE mongo_river.resync_seen IS 'during a resync, keys written since it began (rows of other keys are deleted when it ends)';
COMMENT ON TABLE mongo_river.rejects IS 'changes and documents that could not be applied, with the reason, the document (jsonb) and the raw BSON';
COMMENT ON TABLE mongo_river.database_map IS 'whole databases mapped by map_database, with their options';
COMMENT ON TABLE mongo_river.sync_runs IS 'one row per CALL sync_once: when, how many changes and documents it applied, and its outcome';
COMMENT ON VIEW mongo_river.status IS 'one row per river and mapped collection: phase, counters (copied, applied, rejects), lag, last error, worker, oplog margin (live)';
COMMENT ON VIEW mongo_river.copy_progress IS 'collections being copied: documents copied, estimated total, percent, rate and time left';
COMMENT ON VIEW mongo_river.rivers IS 'rivers with their URIs redacted';
COMMENT ON VIEW mongo_river.columns IS 'every mapped column: relation, type, source path, key';
COMMENT ON FUNCTION mongo_river.create_river(name, text, jsonb) IS 'declare a river: a MongoDB source URI and its options';
COMMENT ON FUNCTION mongo_river.alter_river(name, text, jsonb) IS 'change a river''s URI and/or merge options; its position is kept';
COMMENT ON FUNCTION mongo_river.drop_river(name, boolean) IS 'remove a river, its mappings, position and rejects (drop_tables: also the tables it created)';
COMMENT ON FUNCTION mongo_river.map_collection(name, text, text, jsonb, jsonb) IS 'map a collection db.coll onto a table (mapping NULL: inferred)';
COMMENT ON FUNCTION mongo_river.unmap_collection(name, text) IS 'stop mapping a collection (its tables and rows stay)';
COMMENT ON FUNCTION mongo_river.map_database(name, text, jsonb) IS 'map every collection of a database, and those that appear later';
COMMENT ON FUNCTION mongo_river.infer_mapping(name, text, integer) IS 'propose a mapping for a collection from a $sample of its documents';
COMMENT ON FUNCTION mongo_river.import_mappings(name, jsonb, jsonb) IS 'import a mongo-connector-postgresql mappings.json';
COMMENT ON FUNCTION mongo_river.start(name) IS 'enable a river: the launcher starts its worker within mongo_river.naptime';
COMMENT ON FUNCTION mongo_river.stop(name) IS 'disable a river: its worker stops, the position is kept';
COMMENT ON FUNCTION mongo_river.resync(name, text) IS 're-copy one or all collections of a river; readers never see an empty table';
COMMENT ON FUNCTION mongo_river.verify(name, text, integer, boolean) IS 'compare MongoDB with the tables (all documents or a sample), optionally repairing';
COMMENT ON FUNCTION mongo_river.retry_rejects(name, bigint) IS 're-apply rejects from the documents'' current state; returns how many were resolved';
COMMENT ON FUNCTION mongo_river.discard_rejects(name, bigint) IS 'delete rejects; returns how many';
COMMENT ON FUNCTION mongo_river.wait_for_sync(name, interval) IS 'true once every change the source had made at the call is applied, false after timeout';
COMMENT ON PROCEDURE mongo_river.sync_once(name, interval, bigint) IS 'catch a stopped river up to the source''s current time in this session; each run is recorded in mongo_river.sync_runs';
DO $comments$
DECLARE
    f regprocedure;
BEGIN
    -- Internal helpers: one comment says so (they are not part of the API).
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'mongo_river'::regnamespace AND p.proname LIKE '\_%'
               AND obj_description(p.oid, 'pg_proc') IS NULL LOOP
        EXECUTE format('COMMENT ON FUNCTION %s IS %L', f, 'internal to mongo_river: not for direct use');
    END LOOP;
END
$comments$;
