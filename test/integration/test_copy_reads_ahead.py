"""A worker's copy reads its next batch on a thread of its own while it writes the last one
(mongo_river.copy_reads_ahead, on by default; sync_once reads on its backend's thread).

What the thread read ahead is older than the changes the stream applies meanwhile: a batch read
before the stream applied a delete or an update of one of its documents must be dropped and read
again, or the copy would bring the deleted document back or write the older version over the newer
one. The tests make that order certain: the copy's first batch is slowed by a statement trigger
(pg_sleep, seen in pg_stat_activity), the thread has read the next batch before it, and the source
changes documents of that next batch during the sleep; the stream, read between copy steps, applies
them before the next batch is written."""

import json

from pgcluster import wait_for
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                   "n": {"path": "n", "type": "bigint"},
                                   "v": {"path": "v", "type": "bigint"}}}


def load(mongo, db, count):
    client = mongo.client()
    client.drop_database(db)
    docs = [{"_id": f"d{i:05d}", "n": i, "v": 0} for i in range(count)]
    for i in range(0, count, 5000):
        client[db].c.insert_many(docs[i:i + 5000])
    return client[db].c


def copy_start_line(pg, river):
    """copy_start_line returns the worker's "starting initial copy" log line of river (None if none)."""
    for line in pg.log().splitlines():
        if f'river "{river}", collection "{river}.c": starting initial copy' in line:
            return line
    return None


def set_reads_ahead(pg, on):
    pg.query(f"ALTER SYSTEM SET mongo_river.copy_reads_ahead = {'on' if on else 'off'}")
    pg.query("SELECT pg_reload_conf()")
    wait_for(lambda: pg.scalar("SHOW mongo_river.copy_reads_ahead") == ("on" if on else "off"), 30, 0.05,
             "the postmaster to reload mongo_river.copy_reads_ahead")


def rows(pg, table):
    return {r[0]: (r[1], r[2]) for r in pg.query(f'SELECT id, n, v FROM "{table}"')}


def test_copy_reads_ahead_on_a_thread_and_copies_the_same_rows_either_way(river_pg, mongo):
    pg = river_pg
    coll = load(mongo, "ahead1", 5000)
    want = {d["_id"]: (d["n"], d["v"]) for d in coll.find({})}
    try:
        for on, river in ((True, "ahead1"), (False, "ahead1_off")):
            set_reads_ahead(pg, on)
            create_river(pg, river, mongo.uri, {"batch_size": 100})
            pg.query("SELECT mongo_river.map_collection(%s, 'ahead1.c', %s, %s)", (river, river, json.dumps(MAPPING)))
            wait_synced(pg, river, 120)
            line = wait_for(lambda: copy_start_line(pg, river.replace("_off", "")) if on else True, 30, 0.1,
                            "the copy's first log line")
            assert rows(pg, river) == want, f"river {river}: the copied rows differ from the source"
            if on:
                assert "(reading ahead on a thread)" in line, line
        off_lines = [line for line in pg.log().splitlines()
                     if 'river "ahead1_off"' in line and "starting initial copy" in line]
        assert off_lines and all("reading ahead" not in line for line in off_lines), off_lines
    finally:
        set_reads_ahead(pg, True)
        for river in ("ahead1", "ahead1_off"):
            pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def worker_sleeps(pg, river):
    return pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s AND wait_event = 'PgSleep'", ("mongo_river " + river,))


def test_a_batch_read_ahead_before_the_stream_changed_its_documents_is_read_again(river_pg, mongo):
    pg = river_pg
    river = "ahead2"
    coll = load(mongo, river, 3000)
    # A copy batch holds ten times batch_size documents: the first d00000-d00999, the next
    # d01000-d01999, which the thread reads while the first is written.
    pg.query(f'CREATE TABLE "{river}" (id text PRIMARY KEY, n bigint, v bigint)')
    pg.query(f'CREATE TABLE "{river}_slowed" (done boolean)')
    pg.query(f"""CREATE FUNCTION "{river}_slow"() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NOT EXISTS (SELECT 1 FROM "{river}_slowed") THEN
                     INSERT INTO "{river}_slowed" VALUES (true);
                     PERFORM pg_sleep(3);
                   END IF;
                   RETURN NULL;
                 END $$""")
    pg.query(f'CREATE TRIGGER slow AFTER INSERT ON "{river}" FOR EACH STATEMENT EXECUTE FUNCTION "{river}_slow"()')
    deleted = [f"d{i:05d}" for i in range(1100, 1200)]
    updated = [f"d{i:05d}" for i in range(1200, 1300)]
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_for(lambda: worker_sleeps(pg, river), 60, 0.02, "the copy's first batch to be written")
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 0  # (not committed yet)
        coll.delete_many({"_id": {"$in": deleted}})
        coll.update_many({"_id": {"$in": updated}}, {"$set": {"v": 1}})
        wait_synced(pg, river, 120)
        got = rows(pg, river)
        want = {d["_id"]: (d["n"], d["v"]) for d in coll.find({})}
        back = sorted(set(deleted) & got.keys())
        stale = sorted(k for k in updated if got.get(k) != want.get(k))
        assert not back, f"{len(back)} documents deleted during the copy came back: {back[:5]}"
        assert not stale, f"{len(stale)} rows are older than their documents: {stale[:5]}"
        assert got == want
        line = copy_start_line(pg, river)
        assert line and "(reading ahead on a thread)" in line, line
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        pg.query(f'DROP TABLE IF EXISTS "{river}", "{river}_slowed"')
        pg.query(f'DROP FUNCTION IF EXISTS "{river}_slow"()')
