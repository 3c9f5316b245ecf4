"""Updates applied from their update descriptions (issue 18): random update streams applied through
diffs give the same rows as through lookups, in both captures; diffable updates read no document
from the source (the peer counts its reads by _id and updateLookup), the rest still do.

mongo_river.apply_update_diffs (a GUC, on by default) chooses the path; the tests switch it with
ALTER SYSTEM. The random seed is printed (RIVER_TEST_SEED replays it)."""

import json
import os
import random
import signal
import time

import pymongo
import pytest
from bson.son import SON

from pgcluster import wait_for
from river import Writer, compare, create_river, fresh_posts, posts_mapping, wait_synced


def seed_for(name):
    seed = int(os.environ.get("RIVER_TEST_SEED", random.randrange(10**9)))
    print(f"{name}: seed {seed} (RIVER_TEST_SEED={seed} replays it)")
    return seed


def mapping(table):
    """mapping has no document column, so updates that stay off its child table and its jsonb and
    array columns' insides are applied from their descriptions."""
    return {
        "pk": "id",
        "columns": {
            "id": {"path": "_id", "type": "text"},
            "title": {"path": "title", "type": "text"},
            "author_name": {"path": "author.name", "type": "text"},
            "karma": {"path": "author.karma", "type": "integer"},
            "score": {"path": "stats.score", "type": "bigint"},
            "tags": {"path": "tags", "type": "text[]"},
            "has_extra": {"path": "extra", "type": "boolean", "format": "presence"},
            "extra": {"path": "extra", "type": "jsonb"},
            "first_tag": {"path": "tags.0", "type": "text"},
            "raw_score": {"path": "stats.score", "type": "text", "format": "extjson"},
        },
        "arrays": {
            "comments": {"path": "comments", "table": f"{table}_comments", "fk": "post_id", "position": "pos",
                         "columns": {"user": {"path": "user", "type": "text"}}},
        },
    }


def make_doc(i, rng):
    return {"_id": f"d{i:05d}", "title": f"t{i}",
            "author": {"name": rng.choice(["ada", "grace", None]), "karma": rng.randint(0, 9)},
            "stats": {"score": rng.randint(0, 1000), "views": rng.randint(0, 9)},
            "tags": rng.sample(["a", "b", "c"], rng.randint(0, 3)),
            "comments": [{"user": f"u{j}"} for j in range(rng.randint(0, 2))],
            "other": rng.random()}


def random_change(coll, rng, next_id):
    """random_change makes one random change; returns the next free id."""
    key = f"d{rng.randrange(next_id):05d}"
    op = rng.randrange(20)
    if op == 0:
        coll.insert_one(make_doc(next_id, rng))
        return next_id + 1
    if op == 1:
        # A document the mapping refuses (karma is not an integer): rejected, its row missing until
        # an update makes it convertible.
        doc = make_doc(next_id, rng)
        doc["author"]["karma"] = "many"
        coll.insert_one(doc)
        return next_id + 1
    updates = [
        {"$set": {"title": f"t{rng.random()}"}},
        {"$inc": {"stats.score": 1}},
        {"$set": {"author.name": rng.choice(["linus", "barbara"])}, "$inc": {"stats.views": 1}},
        {"$unset": {"author": ""}},
        {"$set": {"author": {"name": "whole", "karma": rng.randint(0, 9)}}},
        {"$set": {"author.karma": rng.randint(0, 9)}},
        {"$push": {"tags": rng.choice(["x", "y"])}},
        {"$set": {"tags.0": "first"}},
        {"$pop": {"tags": -1}},
        {"$push": {"comments": {"user": "new"}}},
        {"$set": {"extra": {"x": rng.randint(0, 5)}}},
        {"$set": {"extra.x": rng.randint(0, 5)}},
        {"$unset": {"extra": ""}},
        {"$set": {"other": rng.random()}},
        {"$rename": {"title": "title_old"}},
        [{"$set": {"title": {"$concat": ["p", {"$toString": "$stats.score"}]}, "tags": {"$slice": ["$tags", 1]}}}],
    ]
    try:
        if op == 2:
            coll.replace_one({"_id": key}, make_doc(int(key[1:]), rng))
        elif op == 3:
            coll.delete_one({"_id": key})
        else:
            coll.update_one({"_id": key}, rng.choice(updates))
    except pymongo.errors.WriteError:
        pass  # e.g. $push onto a tags field a pipeline update set to null
    return next_id


def worker_pid(pg, river):
    rows = pg.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                    "AND application_name = %s", ("mongo_river " + river,))
    return rows[0][0] if rows else None


def document_lookups(mongo):
    """document_lookups returns how many documents the peer has read by _id (find or updateLookup)."""
    return mongo.client().admin.command("serverStatus")["mongoPeer"]["documentLookups"]


def set_diffs(pg, on):
    pg.query(f"ALTER SYSTEM SET mongo_river.apply_update_diffs = {'on' if on else 'off'}")
    pg.query("SELECT pg_reload_conf()")


def rows(pg, table):
    parents = pg.query(f'SELECT id, title, author_name, karma, score, tags, has_extra, extra, first_tag, raw_score '
                       f'FROM "{table}" ORDER BY id')
    children = pg.query(f'SELECT post_id, pos, "user" FROM "{table}_comments" ORDER BY post_id, pos')
    return parents, children


def expected(coll):
    """expected maps the collection through mapping() in Python (rejected documents have no row)."""
    parents, children = [], []
    for doc in coll.find({}).sort("_id", 1):
        author = doc.get("author") if isinstance(doc.get("author"), dict) else {}
        if isinstance(author.get("karma"), str):
            continue
        stats = doc.get("stats") if isinstance(doc.get("stats"), dict) else {}
        tags = doc.get("tags")
        score = stats.get("score")
        parents.append((doc["_id"], doc.get("title"), author.get("name"), author.get("karma"), score,
                        list(tags) if tags is not None else None, doc.get("extra") is not None, doc.get("extra"),
                        tags[0] if tags else None,
                        None if score is None else json.dumps({"$numberInt": str(score)}).replace(" ", "")))
        for pos, comment in enumerate(doc.get("comments") or []):
            children.append((doc["_id"], pos, comment.get("user")))
    return parents, children


def normalise(parents):
    """normalise makes the extjson column comparable whatever its spacing."""
    return [row[:9] + (json.loads(row[9]) if row[9] else None,) for row in parents]


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_diffs_give_the_rows_of_lookups(river_pg, mongo, capture):
    pg = river_pg
    seed = seed_for(f"diffs_vs_lookups[{capture}]")
    rng = random.Random(seed)
    client = mongo.client()
    db = f"diffs_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    coll.insert_many([make_doc(i, rng) for i in range(300)])
    next_id = 300
    lookup_river, diff_river = f"lk_{capture}", f"df_{capture}"
    try:
        # The lookup river copies, then stops; the diff river follows every change as it comes.
        set_diffs(pg, False)
        create_river(pg, lookup_river, mongo.uri, {"capture": capture, "batch_size": 50})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (lookup_river, f"{db}.posts", f"lk_{capture}", json.dumps(mapping(f"lk_{capture}"))))
        wait_synced(pg, lookup_river)
        pg.query("SELECT mongo_river.stop(%s)", (lookup_river,))
        set_diffs(pg, True)
        create_river(pg, diff_river, mongo.uri, {"capture": capture, "batch_size": 50})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (diff_river, f"{db}.posts", f"df_{capture}", json.dumps(mapping(f"df_{capture}"))))
        wait_synced(pg, diff_river)
        before = document_lookups(mongo) if mongo.is_peer else 0
        for _ in range(1500):
            next_id = random_change(coll, rng, next_id)
        wait_synced(pg, diff_river)
        if mongo.is_peer:
            # Most of these updates are diffable; those of the child table's array, inside the
            # tags array column, and of missing (rejected) rows are read whole.
            lookups = document_lookups(mongo) - before
            print(f"diff river: {lookups} document reads for 1500 changes")
            assert 0 < lookups < 750
        pg.query("SELECT mongo_river.stop(%s)", (diff_river,))
        # The lookup river reads the same changes, each update with the document as it is now.
        set_diffs(pg, False)
        pg.query("SELECT mongo_river.start(%s)", (lookup_river,))
        wait_synced(pg, lookup_river)
        want_parents, want_children = expected(coll)
        for table in (f"df_{capture}", f"lk_{capture}"):
            parents, children = rows(pg, table)
            parents = normalise(parents)
            want = normalise(want_parents)
            diff = [(a, b) for a, b in zip(parents, want) if a != b][:3]
            assert len(parents) == len(want) and not diff, f"seed {seed}: {table} differs from the source: {diff}"
            assert children == want_children, f"seed {seed}: {table}_comments differ from the source"
        assert rows(pg, f"df_{capture}") == rows(pg, f"lk_{capture}")
    finally:
        set_diffs(pg, True)
        for river in (lookup_river, diff_river):
            pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s",
                     (river, river))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_diffable_updates_read_no_document(river_pg, mongo, capture):
    if not mongo.is_peer:
        pytest.skip("counts the peer's document reads (serverStatus mongoPeer)")
    pg = river_pg
    client = mongo.client()
    db = f"paths_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    rng = random.Random(5)
    coll.insert_many([make_doc(i, rng) for i in range(100)])
    river = f"paths_{capture}"
    table = f"paths_{capture}"
    try:
        create_river(pg, river, mongo.uri, {"capture": capture})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.posts", table, json.dumps(mapping(table))))
        wait_synced(pg, river)
        # Updates of mapped columns, of unmapped fields, and a whole sub-document: no read.
        before = document_lookups(mongo)
        for i in range(100):
            coll.update_one({"_id": f"d{i:05d}"}, {"$set": {"title": f"new {i}", "other": i},
                                                  "$inc": {"stats.score": 1}})
        coll.update_one({"_id": "d00001"}, {"$set": {"author": SON([("name", "n"), ("karma", 1)])}})
        coll.update_one({"_id": "d00002"}, {"$unset": {"author": ""}})
        wait_synced(pg, river)
        assert document_lookups(mongo) == before, "diffable updates read documents from the source"
        assert pg.scalar(f'SELECT count(*) FROM "{table}" WHERE title LIKE %s', ("new %",)) == 100
        assert pg.query(f'SELECT author_name, karma FROM "{table}" WHERE id = %s', ("d00001",)) == [("n", 1)]
        assert pg.query(f'SELECT author_name, karma FROM "{table}" WHERE id = %s', ("d00002",)) == [(None, None)]
        # Updates of the child table's array, and inside an array column: one read each.
        before = document_lookups(mongo)
        for i in range(10):
            coll.update_one({"_id": f"d{i:05d}"}, {"$push": {"comments": {"user": "x"}}})
        coll.update_one({"_id": "d00050"}, {"$set": {"tags.0": "z"}})
        wait_synced(pg, river)
        assert document_lookups(mongo) - before >= 11
        assert pg.scalar(f'SELECT count(*) FROM "{table}_comments" WHERE "user" = %s', ("x",)) == 10
        # With diffs off every update is read whole again (updateLookup, or a find by _id).
        set_diffs(pg, False)
        wait_for(lambda: pg.scalar("SELECT setting FROM pg_settings WHERE name = 'mongo_river.apply_update_diffs'")
                 == "off", 10, 0.05, "the setting")
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        before = document_lookups(mongo)
        for i in range(20):
            coll.update_one({"_id": f"d{i:05d}"}, {"$set": {"title": f"again {i}"}})
        wait_synced(pg, river)
        assert document_lookups(mongo) - before >= 20
    finally:
        set_diffs(pg, True)
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_changes_of_one_document_in_one_batch(river_pg, mongo, capture):
    """Several changes of one document in one batch: updates merge into an insert or replace of the
    batch, into each other, follow a delete and re-insert, and reach a row that is missing (rejected)."""
    pg = river_pg
    client = mongo.client()
    db = f"batch_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    rng = random.Random(9)
    coll.insert_many([make_doc(i, rng) for i in range(20)])
    river = f"batch_{capture}"
    table = f"batch_{capture}"
    try:
        create_river(pg, river, mongo.uri, {"capture": capture})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.posts", table, json.dumps(mapping(table))))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        new = make_doc(100, rng)
        coll.insert_one(new)
        coll.update_one({"_id": new["_id"]}, {"$set": {"title": "b"}})
        coll.update_one({"_id": new["_id"]}, {"$unset": {"author": ""}})
        coll.update_one({"_id": "d00010"}, {"$set": {"title": "c"}})
        coll.update_one({"_id": "d00010"}, {"$inc": {"stats.score": 1}})
        coll.update_one({"_id": "d00010"}, {"$set": {"title": "d"}})
        coll.delete_one({"_id": "d00011"})
        again = make_doc(11, rng)
        coll.insert_one(again)
        coll.update_one({"_id": "d00011"}, {"$set": {"title": "f"}})
        coll.replace_one({"_id": "d00012"}, make_doc(12, rng))
        coll.update_one({"_id": "d00012"}, {"$set": {"author.name": "z"}})
        coll.update_one({"_id": "d00013"}, {"$set": {"title": "h"}})
        coll.delete_one({"_id": "d00013"})
        bad = make_doc(101, rng)
        bad["author"]["karma"] = "many"
        coll.insert_one(bad)
        coll.update_one({"_id": bad["_id"]}, {"$set": {"title": "i"}})
        coll.update_one({"_id": bad["_id"]}, {"$set": {"author.karma": 3}})
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        want_parents, want_children = expected(coll)
        parents, children = rows(pg, table)
        assert normalise(parents) == normalise(want_parents)
        assert children == want_children
        assert pg.query(f'SELECT title, karma FROM "{table}" WHERE id = %s', (bad["_id"],)) == [("i", 3)]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_history_records_each_updates_own_state(river_pg, mongo, capture):
    """In history mode each update's version is the previous version with that update's changes,
    not the document as a later lookup finds it."""
    pg = river_pg
    client = mongo.client()
    db = f"hist_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    coll.insert_one({"_id": "h1", "title": "a", "stats": {"score": 1}, "other": 0})
    river = f"hist_{capture}"
    table = f"hist_{capture}"
    spec = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "title": {"path": "title", "type": "text"},
                                    "score": {"path": "stats.score", "type": "bigint"}}}
    try:
        create_river(pg, river, mongo.uri, {"capture": capture})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{db}.posts", table, json.dumps(spec), json.dumps({"mode": "history"})))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        coll.update_one({"_id": "h1"}, {"$set": {"title": "b"}})
        coll.update_one({"_id": "h1"}, {"$inc": {"stats.score": 1}})
        coll.update_one({"_id": "h1"}, {"$set": {"other": 1}})
        coll.update_one({"_id": "h1"}, {"$set": {"title": "c"}})
        coll.update_one({"_id": "h2"}, {"$set": {"title": "x"}}, upsert=True)
        coll.update_one({"_id": "h2"}, {"$set": {"title": "y"}})
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        versions = pg.query(f'SELECT _operation, title, score FROM "{table}" WHERE id = %s '
                            "ORDER BY _cluster_time, _position", ("h1",))
        assert versions == [("copy", "a", 1), ("update", "b", 1), ("update", "b", 2), ("update", "b", 2),
                            ("update", "c", 2)]
        assert pg.query(f'SELECT _operation, title FROM "{table}" WHERE id = %s ORDER BY _cluster_time, _position',
                        ("h2",)) == [("insert", "x"), ("update", "y")]
        assert pg.query(f'SELECT id, title, score FROM "{table}_latest" ORDER BY id') == [("h1", "c", 2),
                                                                                            ("h2", "y", None)]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_crashes_while_applying_diffs(river_pg, mongo, capture):
    """SIGKILL of the worker and immediate shutdowns at random instants while a river applies updates
    from their descriptions under writes: after each, the tables equal the source (progress is
    committed with the rows, so no update is applied twice or lost)."""
    pg = river_pg
    seed = seed_for(f"crashes_with_diffs[{capture}]")
    rng = random.Random(seed)
    db = f"crashdiff_{capture}"
    coll = fresh_posts(mongo, db, 2000, seed)
    river = f"crashdiff_{capture}"
    table = f"crashdiff_{capture}"
    spec = posts_mapping(table)
    del spec["document"]  # without it, title/score/author updates are applied from their diffs
    create_river(pg, river, mongo.uri, {"capture": capture, "batch_size": 50})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{db}.posts", table, json.dumps(spec)))
    wait_synced(pg, river)
    writer = Writer(coll, seed, first_new_id=10**6, pause=0.001)
    writer.next_id = 10**6
    writer.start()
    kinds = []
    try:
        for round_no in range(int(os.environ.get("RIVER_CRASH_ROUNDS", "4"))):
            pid = wait_for(lambda: worker_pid(pg, river), 60, 0.05, "the river worker")
            time.sleep(rng.uniform(0.05, 0.8))
            kind = rng.choice(["sigkill", "immediate"])
            kinds.append(kind)
            if kind == "sigkill":
                recoveries = pg.log().count("all server processes terminated; reinitializing")
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: pg.log().count("all server processes terminated; reinitializing") > recoveries,
                         30, what="crash recovery")
                pg.wait_ready()
            else:
                pg.stop("immediate")
                pg.start()
            writer.hold()
            wait_for(lambda: worker_pid(pg, river), 60, 0.05, "the river worker after the crash")
            wait_synced(pg, river, 300)
            problems = compare(pg, table, coll)
            assert not problems, f"seed {seed}, round {round_no} ({kind}): " + "\n".join(problems[:20])
            writer.resume()
    finally:
        changes = writer.stop()
    print(f"crashes with diffs: {kinds}, {changes} concurrent changes, all equal")
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_copy_resumes_after_a_source_failure(river_pg, mongo):
    """A copy whose source fails after some batches resumes after its last committed batch with its
    cut: changes made meanwhile to documents copied already (deletes here) are applied. (It used to
    start again from the beginning with a new cut, skipping them: their rows stayed.)"""
    pg = river_pg
    client = mongo.client()
    try:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    except Exception as e:  # noqa: BLE001 - reported in the skip
        pytest.skip(f"the source does not take configureFailPoint failCommand: {e}")
    db = "copyfail"
    client.drop_database(db)
    coll = client[db].posts
    rng = random.Random(3)
    coll.insert_many([make_doc(i, rng) for i in range(20000)])
    river = "copyfail"
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 50})
        # The river's getMores (the copy's, the stream's) fail after the first few: the copy has
        # committed batches (the first one from find's first batch) when the source fails.
        client.admin.command({"configureFailPoint": "failCommand", "mode": {"skip": 4},
                              "data": {"appName": "mongo_river", "failCommands": ["getMore"], "errorCode": 6}})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.posts", river, json.dumps(mapping(river))))
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "retrying",
                 60, 0.02, "the source's failure")
        assert pg.scalar(f'SELECT count(*) FROM "{river}" WHERE id < %s', ("d00100",)) == 100
        coll.delete_many({"_id": {"$lt": "d00100"}})
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        wait_synced(pg, river)
        assert pg.scalar(f'SELECT count(*) FROM "{river}" WHERE id < %s', ("d00100",)) == 0
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 19900
        assert "resuming initial copy" in pg.log()
    finally:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_refused_patch_is_rejected_with_its_document(river_pg, mongo, capture):
    """A change PostgreSQL refuses in place (a CHECK constraint) is retried change by change, read
    whole, and rejected with the whole document; the other changes of the batch are applied."""
    pg = river_pg
    client = mongo.client()
    db = f"refuse_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    rng = random.Random(4)
    coll.insert_many([make_doc(i, rng) for i in range(10)])
    river = f"refuse_{capture}"
    try:
        create_river(pg, river, mongo.uri, {"capture": capture})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.posts", river, json.dumps(mapping(river))))
        wait_synced(pg, river)
        pg.query(f'ALTER TABLE "{river}" ADD CONSTRAINT no_bad CHECK (title <> %s)', ("bad",))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        coll.update_one({"_id": "d00001"}, {"$set": {"title": "good"}})
        coll.update_one({"_id": "d00002"}, {"$set": {"title": "bad"}})
        coll.update_one({"_id": "d00003"}, {"$set": {"title": "fine"}})
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        assert pg.query(f'SELECT id, title FROM "{river}" WHERE id IN (%s, %s) ORDER BY id',
                        ("d00001", "d00003")) == [("d00001", "good"), ("d00003", "fine")]
        rejects = pg.query("SELECT document_id, operation, document->>'title', error FROM mongo_river.rejects "
                           "WHERE river = %s", (river,))
        assert [r[:3] for r in rejects] == [("d00002", "update", "bad")], rejects
        assert "no_bad" in rejects[0][3]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
