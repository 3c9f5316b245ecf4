"""Review 26: rejects after a copy, around resyncs that are interrupted, run alongside retry_rejects,
in history mode, and with a child-table row PostgreSQL refuses (README "Resync": one reject row per
document, new reason and time, counted once; at the copy's end the copy rejects of documents it
copied or no longer found are removed)."""

import json
import threading

from pgcluster import wait_for
from review_helpers import KEY_N_INTEGER as MAPPING
from review_helpers import fresh, status_rejects
from river import create_river, wait_synced


def copy_rejects(pg, river):
    return pg.query("SELECT document_id, count(*) FROM mongo_river.rejects WHERE river = %s AND operation = 'copy' "
                    "GROUP BY 1 ORDER BY 1", (river,))


def state(pg, river):
    return pg.query("SELECT phase, copy_started_at, rejects FROM mongo_river.mapping_state WHERE river = %s",
                    (river,))[0]


def seed(mongo, db, count, bad_every):
    return fresh(mongo, db, [{"_id": f"k{i:05d}", "n": f"bad{i}" if i % bad_every == 0 else i} for i in range(count)])


def test_resync_killed_midway_then_resumed(river_pg, mongo):
    """A resync whose worker is terminated in the middle (pg_terminate_backend of status.worker_pid),
    then resumed by the next worker: every bad document has exactly one copy reject (the resync's),
    none is lost, and status.rejects still counts each once."""
    pg = river_pg
    river, source = "r26kill", "r26kill.c"
    seed(mongo, river, 2000, 10)
    bad = sorted(f"k{i:05d}" for i in range(0, 2000, 10))
    create_river(pg, river, mongo.uri, {"batch_size": 20})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 200, 30, 0.05, "200 rejects")
        # Slow writes (2 ms a row), so the resync lasts some seconds.
        pg.query(f"""CREATE FUNCTION r26kill_slow() RETURNS trigger LANGUAGE plpgsql AS
                     $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
                     CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON "{river}" FOR EACH ROW
                     EXECUTE FUNCTION r26kill_slow()""")
        first_start = state(pg, river)[1]
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, source))
        wait_for(lambda: pg.scalar("SELECT phase = 'resync' AND copy_last_id IS NOT NULL FROM mongo_river.mapping_state "
                                   "WHERE river = %s", (river,)), 60, 0.01, "the resync's first batches")
        pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
        assert pg.scalar("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: state(pg, river)[0] == "streaming", 120, 0.05, "the resumed resync to end")
        wait_synced(pg, river)
        phase, started, counted = state(pg, river)
        assert started > first_start
        got = copy_rejects(pg, river)
        assert [r[0] for r in got] == bad and all(r[1] == 1 for r in got), got[:5]
        assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s AND created_at < %s",
                         (river, started)) == 0
        assert counted == 200, counted
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 1800
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        pg.query("DROP FUNCTION IF EXISTS r26kill_slow() CASCADE")


def test_retry_rejects_during_a_resync(river_pg, mongo):
    """retry_rejects while a resync runs: the documents mended at the source are resolved (by
    retry_rejects or by the resync, whichever comes first) and keep no reject; the still-bad ones
    keep exactly one."""
    pg = river_pg
    river, source = "r26retry", "r26retry.c"
    coll = seed(mongo, river, 1000, 10)
    create_river(pg, river, mongo.uri, {"batch_size": 20})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 100, 30, 0.05, "100 rejects")
        for i in range(0, 1000, 20):  # half the bad ones mended
            coll.update_one({"_id": f"k{i:05d}"}, {"$set": {"n": i}})
        wait_synced(pg, river)
        pg.query(f"""CREATE FUNCTION r26retry_slow() RETURNS trigger LANGUAGE plpgsql AS
                     $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
                     CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON "{river}" FOR EACH ROW
                     EXECUTE FUNCTION r26retry_slow()""")
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, source))
        wait_for(lambda: pg.scalar("SELECT phase = 'resync' AND copy_last_id IS NOT NULL FROM mongo_river.mapping_state "
                                   "WHERE river = %s", (river,)), 60, 0.01, "the resync's first batches")
        errors = []
        retried = []

        def retry():
            try:
                retried.append(pg.scalar("SELECT mongo_river.retry_rejects(%s)", (river,)))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t = threading.Thread(target=retry)
        t.start()
        t.join(120)
        assert not errors, errors
        wait_for(lambda: state(pg, river)[0] == "streaming", 120, 0.05, "the resync to end")
        wait_synced(pg, river)
        still_bad = sorted(f"k{i:05d}" for i in range(10, 1000, 20))
        got = pg.query("SELECT document_id, count(*) FROM mongo_river.rejects WHERE river = %s GROUP BY 1 ORDER BY 1",
                       (river,))
        assert [r[0] for r in got] == still_bad and all(r[1] == 1 for r in got), (got[:6], retried)
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 950
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        pg.query("DROP FUNCTION IF EXISTS r26retry_slow() CASCADE")


def test_child_row_refused_and_history_mode_resync(river_pg, mongo):
    """A child-table row refused by a CHECK (PostgreSQL refuses it, not the converter), and a
    history-mode mapping: a resync leaves one copy reject per still-refused document, counted once."""
    pg = river_pg
    river, source = "r26childchk", "r26childchk.c"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": f"p{i}", "items": [{"qty": 1}, {"qty": -1 if i % 3 == 0 else 2}]} for i in range(9)])
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
               "arrays": {"items": {"path": "items", "table": f"{river}_items", "fk": "pid", "position": "pos",
                                    "columns": {"qty": {"path": "qty", "type": "integer"}}}}}
    pg.query(f'DROP TABLE IF EXISTS "{river}_items", "{river}"')
    pg.query(f'CREATE TABLE "{river}" (id text PRIMARY KEY)')
    pg.query(f'CREATE TABLE "{river}_items" (pid text REFERENCES "{river}" ON DELETE CASCADE, pos integer, '
             f'qty integer CHECK (qty > 0), PRIMARY KEY (pid, pos))')
    create_river(pg, river, mongo.uri)
    hist, hsource = "r26histrej", "r26histrej.c"
    client.drop_database(hist)
    client[hist].c.insert_many([{"_id": f"h{i}", "n": f"bad{i}" if i % 2 else i} for i in range(6)])
    create_river(pg, hist, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(mapping)))
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (hist, hsource, hist, json.dumps(MAPPING), json.dumps({"mode": "history"})))
        wait_synced(pg, river)
        wait_synced(pg, hist)
        assert [r[0] for r in copy_rejects(pg, river)] == ["p0", "p3", "p6"], copy_rejects(pg, river)
        assert [r[0] for r in copy_rejects(pg, hist)] == ["h1", "h3", "h5"], copy_rejects(pg, hist)
        coll.update_one({"_id": "p3"}, {"$set": {"items": [{"qty": 5}]}})  # mended
        client[hist].c.update_one({"_id": "h3"}, {"$set": {"n": 3}})
        client[hist].c.delete_one({"_id": "h5"})
        wait_synced(pg, river)
        wait_synced(pg, hist)
        for r, s in ((river, source), (hist, hsource)):
            start = state(pg, r)[1]
            pg.query("SELECT mongo_river.resync(%s, %s)", (r, s))
            wait_for(lambda: state(pg, r)[0] == "streaming" and state(pg, r)[1] > start, 60, 0.05, "the resync")
            wait_synced(pg, r)
        assert copy_rejects(pg, river) == [("p0", 1), ("p6", 1)], copy_rejects(pg, river)
        assert copy_rejects(pg, hist) == [("h1", 1)], copy_rejects(pg, hist)
        assert status_rejects(pg, river) == 3 and status_rejects(pg, hist) == 3, \
            (status_rejects(pg, river), status_rejects(pg, hist))
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        pg.query("SELECT mongo_river.drop_river(%s, true)", (hist,))


def test_two_collections_and_on_error_stop(river_pg, mongo):
    """A resync of one collection leaves the other collection's copy rejects alone; a resync under
    on_error stop stops at the first bad document (phase error) and keeps the copy rejects; back to
    on_error reject and started, it ends with one copy reject per still-bad document."""
    pg = river_pg
    river = "r26two"
    client = mongo.client()
    client.drop_database(river)
    for name in ("a", "b"):
        client[river][name].insert_many([{"_id": f"{name}{i}", "n": f"bad{i}" if i % 2 else i} for i in range(6)])
    create_river(pg, river, mongo.uri)
    try:
        for name in ("a", "b"):
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (river, f"{river}.{name}", f"{river}_{name}", json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: len(pg.query("SELECT 1 FROM mongo_river.rejects WHERE river = %s", (river,))) == 6,
                 30, 0.05, "6 rejects")

        def by_source():
            return pg.query("SELECT source, document_id FROM mongo_river.rejects WHERE river = %s ORDER BY 1, 2",
                            (river,))
        before = by_source()
        start = pg.scalar("SELECT copy_started_at FROM mongo_river.mapping_state WHERE source = %s", (f"{river}.a",))
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.a"))
        wait_for(lambda: pg.scalar("SELECT phase = 'streaming' AND copy_started_at > %s FROM mongo_river.mapping_state "
                                   "WHERE source = %s", (start, f"{river}.a")), 60, 0.05, "the resync")
        wait_synced(pg, river)
        assert by_source() == before
        pg.query("SELECT mongo_river.alter_river(%s, options => '{\"on_error\": \"stop\"}')", (river,))
        start = pg.scalar("SELECT copy_started_at FROM mongo_river.mapping_state WHERE source = %s", (f"{river}.b",))
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.b"))
        wait_for(lambda: "error" in [r[0] for r in pg.query("SELECT phase FROM mongo_river.status WHERE river = %s",
                                                            (river,))], 60, 0.05, "the stop")
        assert any("bad" in (r[0] or "") for r in pg.query("SELECT last_error FROM mongo_river.status WHERE river = %s",
                                                          (river,))), pg.query("SELECT * FROM mongo_river.status")
        assert by_source() == before
        pg.query("SELECT mongo_river.alter_river(%s, options => '{\"on_error\": \"reject\"}')", (river,))
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_for(lambda: pg.scalar("SELECT phase = 'streaming' AND copy_started_at > %s FROM mongo_river.mapping_state "
                                   "WHERE source = %s", (start, f"{river}.b")), 60, 0.05, "the resumed resync")
        wait_synced(pg, river)
        assert by_source() == before
        assert pg.query("SELECT source, rejects FROM mongo_river.status WHERE river = %s ORDER BY 1", (river,)) == \
            [(f"{river}.a", 3), (f"{river}.b", 3)]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_document_deleted_during_the_resync_keeps_the_resyncs_reject_until_retried(river_pg, mongo):
    """README (Resync) said: "at the end the copy rejects of documents it has now copied, or that no
    longer exist, are removed". A document the resync rejects and that is deleted at the source
    while the resync goes on (after the copy passed it) no longer exists at the copy's end; its copy
    reject stays (only rejects older than the copy's start are removed), naming a document that is
    gone (retry_rejects would then resolve it; status still counts it)."""
    pg = river_pg
    river, source = "r26delres", "r26delres.c"
    coll = seed(mongo, river, 2000, 1000)  # k00000 and k01000 bad
    create_river(pg, river, mongo.uri, {"batch_size": 20})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 2, 30, 0.05, "2 rejects")
        pg.query(f"""CREATE FUNCTION r26delres_slow() RETURNS trigger LANGUAGE plpgsql AS
                     $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
                     CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON "{river}" FOR EACH ROW
                     EXECUTE FUNCTION r26delres_slow()""")
        start = state(pg, river)[1]
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, source))
        wait_for(lambda: pg.scalar("SELECT phase = 'resync' AND copy_started_at > %s FROM mongo_river.mapping_state "
                                   "WHERE river = %s", (start, river))
                 and pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s AND document_id = 'k00000' "
                               "AND created_at >= (SELECT copy_started_at FROM mongo_river.mapping_state "
                               "WHERE river = %s)", (river, river)) == 1, 60, 0.01, "the resync to reject k00000")
        assert pg.scalar("SELECT phase FROM mongo_river.mapping_state WHERE river = %s", (river,)) == "resync"
        coll.delete_one({"_id": "k00000"})  # gone before the copy's end
        wait_for(lambda: state(pg, river)[0] == "streaming", 120, 0.05, "the resync to end")
        wait_synced(pg, river)
        # The README now says what happens: a reject the resync made itself stays (a record of what
        # failed), also when its document is deleted meanwhile, and retry_rejects resolves it.
        assert [r[0] for r in copy_rejects(pg, river)] == ["k00000", "k01000"], copy_rejects(pg, river)
        k0 = pg.scalar("SELECT id FROM mongo_river.rejects WHERE river = %s AND document_id = 'k00000'", (river,))
        assert pg.scalar("SELECT mongo_river.retry_rejects(%s, %s)", (river, k0)) == 1
        assert [r[0] for r in copy_rejects(pg, river)] == ["k01000"], copy_rejects(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        pg.query("DROP FUNCTION IF EXISTS r26delres_slow() CASCADE")
