"""The river: initial copy under writes, streaming of every kind of change, transactions, crashes,
mappings added to a running river, copy: false, dry_run — in both capture modes where it matters.

Sizes: RIVER_TEST_DOCS (default 100000) documents for the copy test; RIVER_CRASH_ROUNDS (default 5)
crash rounds. The random seed of each randomised test is printed (pytest -s shows it; failures
include it)."""

import json
import os
import random
import signal
import threading
import time

import pytest

from pgcluster import wait_for
from river import (PATH_AUDIT_SQL, Writer, compare, create_river, fresh_posts, load_posts, map_posts,
                   set_copy_builds_tuples, status, wait_synced)

DOCS = int(os.environ.get("RIVER_TEST_DOCS", "100000"))
CRASH_ROUNDS = int(os.environ.get("RIVER_CRASH_ROUNDS", "5"))


def seed_for(name):
    seed = int(os.environ.get("RIVER_TEST_SEED", random.randrange(10**9)))
    print(f"{name}: seed {seed} (RIVER_TEST_SEED={seed} replays it)")
    return seed


def worker_pid(pg, river):
    rows = pg.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                    "AND application_name = %s", ("mongo_river " + river,))
    return rows[0][0] if rows else None


def phases(pg, river):
    return {source: row[0] for source, row in status(pg, river).items()}


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_copy_under_writes_then_stream(river_pg, mongo, capture):
    pg = river_pg
    seed = seed_for(f"copy_under_writes[{capture}]")
    client = mongo.client()
    db = f"copy_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    load_posts(coll, DOCS, seed)
    river = f"copy_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture, "batch_size": 2000})
    writer = Writer(coll, seed, first_new_id=DOCS)
    writer.next_id = DOCS
    writer.start()
    map_posts(pg, river, f"{db}.posts", f"posts_{capture}")
    try:
        wait_for(lambda: phases(pg, river).get(f"{db}.posts") == "streaming", 300, 0.2,
                 "the initial copy to finish")
        time.sleep(0.5)  # keep writing a little while streaming too
    finally:
        changes = writer.stop()
    wait_synced(pg, river)
    problems = compare(pg, f"posts_{capture}", coll)
    assert not problems, f"seed {seed}, {changes} concurrent changes: " + "\n".join(problems[:20])
    st = status(pg, river)[f"{db}.posts"]
    assert st[1] >= DOCS - changes  # docs_copied
    assert st[3] is None  # last_error
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_every_kind_of_change_and_transactions(river_pg, mongo, capture):
    pg = river_pg
    client = mongo.client()
    db = f"changes_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    load_posts(coll, 200, seed=7)
    river = f"changes_{capture}"
    table = f"changes_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture})
    map_posts(pg, river, f"{db}.posts", table)
    wait_synced(pg, river)
    assert not compare(pg, table, coll)

    coll.update_one({"_id": "p0000001"}, {"$set": {"title": "new", "author.name": "zed"}})
    coll.update_one({"_id": "p0000002"}, {"$unset": {"author": "", "tags": ""}})
    coll.update_one({"_id": "p0000003"}, {"$push": {"comments": {"$each": [{"user": "a", "text": "1"},
                                                                          {"user": "b", "text": "2"}]}}})
    coll.update_one({"_id": "p0000004"}, {"$pull": {"comments": {}}})
    coll.update_one({"_id": "p0000005"}, {"$inc": {"stats.score": 5}, "$pop": {"comments": 1}})
    coll.replace_one({"_id": "p0000006"}, {"title": "replaced", "comments": [{"user": "r", "text": "r"}]})
    coll.delete_one({"_id": "p0000007"})
    coll.insert_one({"_id": "new1", "title": "inserted", "stats": {"score": 1}})
    coll.update_many({"tags": "a"}, {"$set": {"title": "has a"}})
    wait_synced(pg, river)
    problems = compare(pg, table, coll)
    assert not problems, "\n".join(problems[:20])
    assert pg.scalar(f'SELECT count(*) FROM "{table}_comments" WHERE post_id = %s', ("p0000007",)) == 0

    # A transaction lands whole: a reader polling meanwhile sees none of it or all of it.
    seen = []
    done = threading.Event()

    def reader():
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            while not done.is_set():
                cur.execute(f'SELECT count(*) FROM "{table}" WHERE title = %s', ("txn",))
                seen.append(cur.fetchone()[0])
        conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with client.start_session() as session:
            with session.start_transaction():
                for i in range(10, 60):
                    coll.update_one({"_id": f"p{i:07d}"}, {"$set": {"title": "txn"}}, session=session)
                coll.insert_one({"_id": "txn-new", "title": "txn"}, session=session)
        wait_synced(pg, river)
        time.sleep(0.2)
    finally:
        done.set()
        thread.join()
    assert set(seen) <= {0, 51}, f"a reader saw part of a transaction: {sorted(set(seen))}"
    assert seen[-1] == 51
    problems = compare(pg, table, coll)
    assert not problems, "\n".join(problems[:20])
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_crashes_during_copy_and_streaming(river_pg, mongo):
    pg = river_pg
    """SIGKILL of the worker (every backend restarts) and immediate shutdowns at random instants, during
    copies (the initial one, then resyncs) and while streaming under writes: after each, PostgreSQL
    converges to MongoDB, without duplicates."""
    seed = seed_for("crashes")
    rng = random.Random(seed)
    db = "crash"
    coll = fresh_posts(mongo, db, max(DOCS // 5, 5000), seed)
    river = "crash"
    # Small batches: a copy takes several transactions (10 x batch_size documents each), so that
    # crashes can strike in the middle of one.
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    writer = Writer(coll, seed, first_new_id=10**6, pause=0.001)
    writer.next_id = 10**6
    writer.start()
    map_posts(pg, river, f"{db}.posts", "crash_posts")
    kinds = []
    try:
        for round_no in range(CRASH_ROUNDS):
            # Rounds cycle: streaming (0 mod 4 after the first), a resync (odd), a fresh initial copy
            # of the collection mapped again onto new tables (2 mod 4: new rows go through COPY, and
            # through INSERT ... ON CONFLICT where the concurrent writes got there first).
            if round_no % 2 == 1:
                pg.query("SELECT mongo_river.resync(%s)", (river,))  # crash during a copy again
            elif round_no % 4 == 2:
                pg.query("SELECT mongo_river.stop(%s)", (river,))
                wait_for(lambda: worker_pid(pg, river) is None, 60, 0.05, "the worker to stop")
                pg.query("SELECT mongo_river.unmap_collection(%s, %s)", (river, f"{db}.posts"))
                pg.query("DROP TABLE crash_posts_comments, crash_posts")
                map_posts(pg, river, f"{db}.posts", "crash_posts")
                pg.query("SELECT mongo_river.start(%s)", (river,))
            pid = wait_for(lambda: worker_pid(pg, river), 60, 0.05, "the river worker")
            # Copy rounds (the first, each resync, each new mapping) strike while documents are
            # copied: once the copy shows, within the next 50 ms (a copy of a few thousand documents
            # through COPY takes a fraction of a second).
            if round_no == 0 or round_no % 2 == 1 or round_no % 4 == 2:
                try:
                    wait_for(lambda: phases(pg, river).get(f"{db}.posts") in ("initial_copy", "resync"), 10, 0.005)
                except TimeoutError:
                    pass  # over before it was seen: the round strikes while streaming
                time.sleep(rng.uniform(0, 0.05))
            else:
                time.sleep(rng.uniform(0.05, 1.0))
            kind = rng.choice(["sigkill", "immediate"])
            phase = phases(pg, river).get(f"{db}.posts")
            kinds.append((kind, phase))
            if kind == "sigkill":
                # The log accumulates over the rounds: wait for this round's line, not an earlier one.
                recoveries = pg.log().count("all server processes terminated; reinitializing")
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: pg.log().count("all server processes terminated; reinitializing") > recoveries,
                         30, what="crash recovery")
                pg.wait_ready()
            else:
                pg.stop("immediate")
                pg.start()
            print(f"round {round_no}: {kind} during {phase}")
            # Equal after each crash: hold the writes, let the river catch up, compare, go on.
            writer.hold()
            wait_for(lambda: worker_pid(pg, river), 60, 0.05, "the river worker after the crash")
            wait_synced(pg, river, 300)
            problems = compare(pg, "crash_posts", coll)
            assert not problems, f"seed {seed}, round {round_no} ({kind} during {phase}): " + \
                "\n".join(problems[:20])
            writer.resume()
    finally:
        changes = writer.stop()
    print(f"crashes: {len(kinds)} rounds {kinds}, {changes} concurrent changes, all equal")
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_mapping_added_to_running_river(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    db = "adding"
    client.drop_database(db)
    first, second = client[db].first, client[db].second
    load_posts(first, 500, seed=3)
    load_posts(second, max(DOCS // 5, 5000), seed=4)
    river = "adding"
    create_river(pg, river, mongo.uri, {"batch_size": 500})
    map_posts(pg, river, f"{db}.first", "adding_first")
    wait_synced(pg, river)
    writer = Writer(first, seed=5, pause=0.002)
    writer.next_id = 10**6
    writer.start()
    try:
        before = status(pg, river)[f"{db}.first"][2]
        map_posts(pg, river, f"{db}.second", "adding_second")
        # The copy has started once it has copied something (a small collection may be copied in
        # one transaction, so that its initial_copy phase is never seen from outside).
        wait_for(lambda: (status(pg, river).get(f"{db}.second") or (None, 0))[1] > 0, 30, 0.05,
                 "the new mapping's copy to start")
        # The first mapping keeps flowing while the second one is copied.
        wait_for(lambda: status(pg, river)[f"{db}.first"][2] > before + 20 and
                 phases(pg, river).get(f"{db}.second") in ("initial_copy", "streaming"), 60, 0.05,
                 "changes of the first collection during the copy of the second")
        wait_for(lambda: phases(pg, river).get(f"{db}.second") == "streaming", 300, 0.2, "the copy to finish")
    finally:
        writer.stop()
    wait_synced(pg, river)
    assert not compare(pg, "adding_first", first)
    assert not compare(pg, "adding_second", second)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_copy_false_streams_only_new_changes(river_pg, mongo):
    pg = river_pg
    db = "nocopy"
    coll = fresh_posts(mongo, db, 100, seed=9)
    river = "nocopy"
    create_river(pg, river, mongo.uri)
    map_posts(pg, river, f"{db}.posts", "nocopy_posts", {"copy": False})
    wait_synced(pg, river)
    assert pg.scalar("SELECT count(*) FROM nocopy_posts") == 0
    coll.insert_one({"_id": "after", "title": "after"})
    coll.update_one({"_id": "p0000001"}, {"$set": {"title": "touched"}})
    wait_synced(pg, river)
    assert sorted(r[0] for r in pg.query("SELECT id FROM nocopy_posts")) == ["after", "p0000001"]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_dry_run_writes_only_counters(river_pg, mongo):
    pg = river_pg
    db = "dry"
    coll = fresh_posts(mongo, db, 300, seed=11)
    river = "dry"
    create_river(pg, river, mongo.uri, {"dry_run": True})
    map_posts(pg, river, f"{db}.posts", "dry_posts")
    wait_for(lambda: status(pg, river)[f"{db}.posts"][1] == 300, 60, 0.1, "the dry-run copy to count 300")
    coll.insert_one({"_id": "x", "title": "x"})
    wait_for(lambda: status(pg, river)[f"{db}.posts"][2] >= 1, 60, 0.1, "the dry run to count a change")
    assert pg.scalar("SELECT count(*) FROM dry_posts") == 0
    assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'dry'") == 0
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("tuples", [True, False], ids=["tuples", "copy"])
def test_copy_goes_through_copy_and_falls_back_on_existing_rows(river_pg, mongo, tuples):
    """The initial copy writes new rows as heap tuples (an AFTER INSERT trigger sees the worker's
    pg_stat_activity query say so) or, with mongo_river.copy_builds_tuples off, with COPY FROM (it
    sees pg_stat_progress_copy for its own backend); a batch holding a key that already has a row
    (here written before the copy, as the stream may do during one) falls back to INSERT ... ON
    CONFLICT and overwrites it. Either way the table's triggers run and the result equals the source."""
    pg = river_pg
    path = "tuples" if tuples else "copy"
    db = "copypath"
    coll = fresh_posts(mongo, db, 1000, seed=21)
    river = f"copypath_{path}"
    table = f"copypath_{path}_posts"
    set_copy_builds_tuples(pg, tuples)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 20})  # copy transactions of 10 x 20 documents
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        wait_for(lambda: worker_pid(pg, river) is None, 60, 0.1, "the worker to stop")
        map_posts(pg, river, f"{db}.posts", table)
        pg.query(f"CREATE TABLE {table}_audit (tbl text, id text, path text)")
        pg.query(f"CREATE FUNCTION {table}_audit() RETURNS trigger LANGUAGE plpgsql AS $$" +
                 PATH_AUDIT_SQL.format(audit=f"{table}_audit", key="id") + "$$")
        pg.query(f"CREATE TRIGGER audit AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_audit()")
        # A stale row for a document of the last batch (documents are copied in _id order).
        last_batch = sorted(d["_id"] for d in coll.find({}, {"_id": 1}))[800:]
        pg.query(f"INSERT INTO {table} (id, title) VALUES (%s, 'stale')", (last_batch[50],))
        pg.query(f"TRUNCATE {table}_audit")
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        assert not compare(pg, table, coll)
        audit = dict(pg.query(f"SELECT path, count(*) FROM {table}_audit GROUP BY 1"))
        # 4 batches of 200 through the fast path; the last one through INSERT ... ON CONFLICT (199
        # inserted, the stale row updated, which an AFTER INSERT trigger does not see).
        assert audit == {path: 800, "insert": 199}, audit
        assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (river,)) == 0
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    finally:
        set_copy_builds_tuples(pg, True)


def test_stop_and_start(river_pg, mongo):
    pg = river_pg
    db = "stopstart"
    coll = fresh_posts(mongo, db, 50, seed=12)
    river = "stopstart"
    create_river(pg, river, mongo.uri)
    map_posts(pg, river, f"{db}.posts", "stopstart_posts")
    wait_synced(pg, river)
    pid = wait_for(lambda: worker_pid(pg, river), 30, what="the worker")
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    wait_for(lambda: worker_pid(pg, river) is None, 30, 0.05, "the worker to stop")
    assert phases(pg, river)[f"{db}.posts"] == "stopped"
    coll.insert_one({"_id": "while_stopped", "title": "w"})
    pg.query("SELECT mongo_river.start(%s)", (river,))
    new_pid = wait_for(lambda: worker_pid(pg, river), 30, 0.05, "the worker to start again")
    assert new_pid != pid
    wait_synced(pg, river)
    assert pg.scalar("SELECT count(*) FROM stopstart_posts WHERE id = 'while_stopped'") == 1
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_bad_documents_go_to_rejects(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    db = "rejecting"
    client.drop_database(db)
    coll = client[db].posts
    coll.insert_many([{"_id": "good", "title": "ok", "stats": {"score": 1}},
                      {"_id": "bad", "title": "bad", "stats": {"score": "not a number"}},
                      {"_id": 42, "title": "int id"}])
    river = "rejecting"
    create_river(pg, river, mongo.uri)
    map_posts(pg, river, f"{db}.posts", "rejecting_posts")
    wait_synced(pg, river)
    coll.insert_one({"_id": "nul", "title": "a\x00b"})
    coll.insert_one({"_id": "after", "title": "later ones keep flowing"})
    wait_synced(pg, river)
    assert sorted(r[0] for r in pg.query("SELECT id FROM rejecting_posts")) == ["after", "good"]
    rejects = pg.query("SELECT document_id, operation, error, raw IS NOT NULL, document IS NOT NULL "
                       "FROM mongo_river.rejects WHERE river = %s ORDER BY document_id", (river,))
    by_id = {r[0]: r for r in rejects}
    assert set(by_id) == {"bad", '{"$numberInt":"42"}', "nul"}, rejects
    assert "stats.score" in by_id["bad"][2] and by_id["bad"][3] and by_id["bad"][4]
    assert by_id["nul"][3] and not by_id["nul"][4]  # jsonb cannot hold NUL: raw BSON only
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_history_mode_keeps_every_version(river_pg, mongo, capture):
    pg = river_pg
    client = mongo.client()
    db = f"hist_{capture}"
    client.drop_database(db)
    coll = client[db].items
    coll.insert_many([{"_id": "a", "n": 1}, {"_id": "b", "n": 1}])
    river = f"hist_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture})
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}},
               "document": "doc"}
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, '{\"mode\": \"history\"}')",
             (river, f"{db}.items", f"hist_{capture}", json.dumps(mapping)))
    wait_synced(pg, river)
    start_position = pg.scalar("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))
    coll.update_one({"_id": "a"}, {"$set": {"n": 2}})
    coll.update_one({"_id": "a"}, {"$set": {"n": 3}})
    coll.delete_one({"_id": "b"})
    coll.insert_one({"_id": "c", "n": 7})
    with client.start_session() as session:
        with session.start_transaction():
            coll.update_one({"_id": "c"}, {"$set": {"n": 8}}, session=session)
            coll.insert_one({"_id": "d", "n": 1}, session=session)
    wait_synced(pg, river)
    versions = pg.query(f"SELECT id, _operation, n FROM hist_{capture} ORDER BY id, _cluster_time, _position")
    ops = [(v[0], v[1]) for v in versions]
    assert ops == [("a", "copy"), ("a", "update"), ("a", "update"), ("b", "copy"), ("b", "delete"),
                   ("c", "insert"), ("c", "update"), ("d", "insert")], versions
    latest = pg.query(f"SELECT id, n FROM hist_{capture}_latest ORDER BY id")
    assert latest == [("a", 3), ("c", 8), ("d", 1)]
    # Positions are unique: replaying the stream from an older position records nothing twice.
    before = pg.scalar(f"SELECT count(*) FROM hist_{capture}")
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    wait_for(lambda: worker_pid(pg, river) is None, 30, 0.05, "the worker to stop")
    pg.query("UPDATE mongo_river.progress SET position = %s WHERE river = %s", (start_position, river))
    pg.query("SELECT mongo_river.start(%s)", (river,))
    wait_synced(pg, river)
    assert pg.scalar(f"SELECT count(*) FROM hist_{capture}") == before
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_change_events_over_16_mib_do_not_stall_the_river(river_pg, mongo):
    """An update of a large document whose change event with the looked-up document would exceed
    16 MiB (BSONObjectTooLarge) is read without updateLookup and looked up separately."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("large")
    coll = client.large.docs
    coll.insert_one({"_id": "big", "n": 1, "a": "x" * (9 * 1024 * 1024)})
    create_river(pg, "large", mongo.uri)
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"},
                                       "b_len": {"path": "b_len", "type": "int"}}, "document": "doc"}
    pg.query("SELECT mongo_river.map_collection('large', 'large.docs', 'large_docs', %s)", (json.dumps(mapping),))
    wait_synced(pg, "large")
    coll.update_one({"_id": "big"}, {"$set": {"n": 2, "b": "y" * (6 * 1024 * 1024), "b_len": 6 * 1024 * 1024}})
    coll.insert_one({"_id": "after", "n": 3})
    wait_synced(pg, "large", 60)
    rows = pg.query("SELECT id, n, b_len, length(doc->>'a'), length(doc->>'b') FROM large_docs ORDER BY id")
    assert rows == [("after", 3, None, None, None), ("big", 2, 6 * 1024 * 1024, 9 * 1024 * 1024, 6 * 1024 * 1024)]
    pg.query("SELECT mongo_river.drop_river('large', true)")
