"""Review edges: resync() restarts the copy counters at once; a drop at the source names resync()
as the way back, and resync() of the stopped mapping ends equal to MongoDB."""
import json

import pytest

from pgcluster import wait_for
from river import create_river, wait_synced

SMALL = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}


def phase(pg, river):
    return pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,))


def test_resync_restarts_copy_counters(river_pg, mongo):
    """Right after resync() (the worker held on the table's lock before its first batch), status and
    copy_progress no longer show the previous copy's 6000 copied, 100 %."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("cps")
    coll = client.cps.c
    coll.insert_many([{"_id": f"d{i:05d}", "n": i} for i in range(6000)])
    create_river(pg, "cps", mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection('cps', 'cps.c', 'cps_c', %s)", (json.dumps(SMALL),))
        wait_synced(pg, "cps", 120)
        wait_for(lambda: phase(pg, "cps") == "streaming", 60)
        coll.delete_many({"n": {"$gte": 3000}})
        wait_synced(pg, "cps")
        conn = pg.connect()
        try:
            conn.cursor().execute("LOCK TABLE cps_c IN ACCESS EXCLUSIVE MODE")
            pg.query("SELECT mongo_river.resync('cps')")
            wait_for(lambda: phase(pg, "cps") == "resync", 20, 0.02)
            # Let the worker see the resync (it reloads, then waits for the lock).
            wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                       "WHERE c.relname = 'cps_c' AND NOT l.granted") > 0, 20, 0.05,
                     "the worker to wait for the table")
            progress = pg.query("SELECT phase, docs_copied, docs_total_estimate, percent "
                                "FROM mongo_river.copy_progress WHERE river = 'cps'")
            st = pg.query("SELECT phase, docs_copied FROM mongo_river.status WHERE river = 'cps'")
        finally:
            conn.rollback()
            conn.close()
        assert progress, "no copy_progress row during the resync"
        for p in progress:
            assert p[1] < 3000 and p[2] in (None, 3000) and (p[3] is None or p[3] < 100), (progress, st)
        assert st[0][1] < 3000, ("status.docs_copied not restarted by resync", st)
        wait_synced(pg, "cps")
        wait_for(lambda: phase(pg, "cps") == "streaming", 60)
        assert pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = 'cps'") == 3000
    finally:
        pg.query("SELECT mongo_river.drop_river('cps', true)")


def test_resync_after_drop_ends_equal_to_mongodb(river_pg, mongo):
    """A drop at the source stops the mapping; its last_error names resync(), which copies the new
    collection again and drops the rows of the dropped one's documents."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("rm_drop")
    coll = client.rm_drop.c
    coll.insert_many([{"_id": "old1", "n": 1}, {"_id": "old2", "n": 2}])
    create_river(pg, "rm_drop", mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection('rm_drop', 'rm_drop.c', 'rm_drop_c', %s)", (json.dumps(SMALL),))
        wait_synced(pg, "rm_drop")
        coll.drop()
        coll.insert_one({"_id": "new", "n": 3})
        wait_for(lambda: phase(pg, "rm_drop") == "stopped", 30, 0.1, "the mapping to stop")
        error = pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = 'rm_drop'")
        assert "SELECT mongo_river.resync('rm_drop', 'rm_drop.c')" in error, error
        pg.query("SELECT mongo_river.resync('rm_drop', 'rm_drop.c')")
        wait_for(lambda: phase(pg, "rm_drop") == "streaming", 30, 0.1, "streaming again")
        coll.insert_one({"_id": "later", "n": 4})
        wait_synced(pg, "rm_drop")
        wait_for(lambda: sorted(r[0] for r in pg.query("SELECT id FROM rm_drop_c")) == ["later", "new"], 30, 0.1,
                 "PostgreSQL to equal MongoDB")
    finally:
        pg.query("SELECT mongo_river.drop_river('rm_drop', true)")


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_rename_onto_a_mapped_collection_stops_it(river_pg, mongo, capture):
    """renameCollection(tmp -> c, dropTarget) drops the mapped c: its event's ns is tmp, `to` is c.
    The mapping stops as for a drop (last_error names the rename and resync()), and resync() then
    ends equal to MongoDB."""
    pg = river_pg
    river = f"ren_{capture}"
    client = mongo.client()
    client.drop_database(river)
    db = client[river]
    db.c.insert_many([{"_id": "old1", "n": 1}, {"_id": "old2", "n": 2}])
    create_river(pg, river, mongo.uri, {"capture": capture})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{river}.c", f"{river}_c", json.dumps(SMALL)))
        wait_synced(pg, river)
        db.tmp.insert_one({"_id": "new1", "n": 3})
        client.admin.command("renameCollection", f"{river}.tmp", to=f"{river}.c", dropTarget=True)
        db.c.insert_one({"_id": "new2", "n": 4})
        wait_for(lambda: phase(pg, river) == "stopped", 30, 0.1, "the mapping to stop")
        error = pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = %s", (river,))
        # The oplog has the rename (onto c); a stream on c alone may get only its invalidate.
        seen = (f"rename of {river}.tmp onto {river}.c" in error
                or f"change stream end on {river}.c (invalidate" in error and capture == "change_stream")
        assert seen and f"SELECT mongo_river.resync('{river}', '{river}.c')" in error, error
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        wait_for(lambda: phase(pg, river) == "streaming", 30, 0.1, "streaming again")
        wait_synced(pg, river)
        mongo_ids = sorted(d["_id"] for d in db.c.find())
        assert mongo_ids == ["new1", "new2"]
        wait_for(lambda: sorted(r[0] for r in pg.query(f"SELECT id FROM {river}_c")) == mongo_ids, 30, 0.1,
                 "PostgreSQL to equal MongoDB")
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture,document", [("change_stream", False), ("oplog", False), ("change_stream", True),
                                              ("oplog", True)])
def test_history_keeps_an_update_followed_by_a_delete(river_pg, mongo, capture, document):
    """History keeps every version: an update applied from its description records its own state; one
    that needs its document (a document column) and finds it deleted since still gets its version
    (the key and the operation, no document)."""
    pg = river_pg
    db = f"hud_{capture}{'_doc' if document else ''}"
    client = mongo.client()
    client.drop_database(db)
    coll = client[db].h
    coll.insert_one({"_id": "seed", "n": 0})
    create_river(pg, db, mongo.uri, {"capture": capture})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, '{\"mode\": \"history\"}')",
                 (db, f"{db}.h", f"{db}_h", json.dumps(dict(SMALL, document="doc") if document else SMALL)))
        wait_synced(pg, db)
        pg.query("SELECT mongo_river.stop(%s)", (db,))  # the changes wait, as under load
        coll.insert_one({"_id": "a", "n": 1})
        coll.update_one({"_id": "a"}, {"$set": {"n": 2}})
        coll.delete_one({"_id": "a"})
        pg.query("SELECT mongo_river.start(%s)", (db,))
        wait_synced(pg, db)
        got = pg.query(f"SELECT _operation, n FROM {db}_h WHERE id = 'a' ORDER BY _cluster_time")
        assert got == [("insert", 1), ("update", None if document else 2), ("delete", None)], got
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (db,))
