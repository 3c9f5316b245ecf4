"""docs_copied counts documents, each once, rejects apart (review 22 of 5f6162d, which counted rows
by key text: a history copy and a dry run counted a document returned twice twice, a numeric key's
1 and "1.0" counted once in one batch and twice across, and history mode written document by
document counted one version too few). Each test compares docs_copied with the documents the
source holds and the rows the copy left."""

import contextlib
import json

from evilproxy import EvilProxy
from hostile_lib import port_of
from pgcluster import wait_for
from river import create_river, load_posts, wait_synced
from test_copy_duplicate_keys import FarDuplicate

FLAT = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "title": {"path": "title", "type": "text"}}}


def phase(pg, river):
    return pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,))


def copied(pg, river):
    return pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))


@contextlib.contextmanager
def repeating_copy(pg, mongo, river, river_options, map_options=None):
    """repeating_copy loads 4000 posts, maps them through a source that returns one document twice
    in each large copy reply (FarDuplicate), waits for the copy and yields the proxy's policy; the
    river goes after."""
    client = mongo.client()
    client.drop_database(river)
    load_posts(client[river].posts, 4000, seed=3)
    policy = FarDuplicate(f"{river}.posts")
    proxy = EvilProxy(port_of(mongo), policy)
    try:
        create_river(pg, river, proxy.uri(), river_options)
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{river}.posts", river, json.dumps(FLAT), json.dumps(map_options or {})))
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the copy to end")
        yield policy
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        proxy.close()


def test_history_mode_document_returned_twice_counts_once(river_pg, mongo):
    """History mode: a copy batch in which the source returned one document twice. Both copies
    carry the same _position (copy:<scan start>:<_id>), so ON CONFLICT (_position) DO NOTHING
    records one version: 4000 rows. docs_copied must be 4000 too (the documents the source has),
    (failed on 5f6162d: history mode is not batched, and its key maps did not see the repeat)."""
    pg, river = river_pg, "dchist"
    with repeating_copy(pg, mongo, river, {"batch_size": 100}, {"mode": "history"}) as policy:
        wait_synced(pg, river, 60)
        rows = pg.scalar(f"SELECT count(*) FROM {river}")
        latest = pg.scalar(f"SELECT count(*) FROM {river}_latest")
        got = copied(pg, river)
    assert policy.fired > 0
    assert rows == latest == 4000, (rows, latest)
    assert got == 4000, f"docs_copied {got} for {rows} history rows of 4000 documents ({policy.fired} repeated)"


def test_dry_run_document_returned_twice_counts_once(river_pg, mongo):
    """dry_run: the same source (one document returned twice in a copy batch) and mapping as
    test_copy_duplicate_keys's, which counts 4000 when writing: a dry run counts what the real copy
    will (failed on 5f6162d: 4000 + the repeats)."""
    pg, river = river_pg, "dcdry"
    with repeating_copy(pg, mongo, river, {"batch_size": 100, "dry_run": True}) as policy:
        got = copied(pg, river)
        rows = pg.scalar(f"SELECT count(*) FROM {river}")
    assert policy.fired > 0
    assert rows == 0
    assert got == 4000, f"dry run docs_copied {got} for 4000 documents ({policy.fired} repeated)"


def run_numeric(pg, mongo, river, resync):
    """A numeric key: _id 1 (int32) and _id "1.0" (a string) are two documents to MongoDB (other
    types) and one row to PostgreSQL (1 = 1.0): docs_copied says 52 documents for the 51 rows, in
    one batch as across batches and after a resync (5f6162d said 52 or 51 depending on the path)."""
    client = mongo.client()
    client.drop_database(river)
    docs = [{"_id": 1, "title": "int"}] + [{"_id": 10 + i, "title": "t"} for i in range(50)]
    docs += [{"_id": "1.0", "title": "string"}]
    client[river].items.insert_many(docs)
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "numeric"},
                                       "title": {"path": "title", "type": "text"}}}
    create_river(pg, river, mongo.uri, {"batch_size": 100})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{river}.items", river, json.dumps(mapping)))
    try:
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the copy to end")
        wait_synced(pg, river, 60)
        if resync:
            pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.items"))
            wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the resync to end")
            wait_synced(pg, river, 60)
        rows = pg.scalar(f"SELECT count(*) FROM {river}")
        rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = %s", (river,))
        got = copied(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    assert rows == 51, (rows, rejects)
    assert got == len(docs) == 52, f"docs_copied {got} for {len(docs)} documents, {rows} rows (rejects {rejects})"


def test_numeric_key_two_texts_one_row_initial_copy(river_pg, mongo):
    run_numeric(river_pg, mongo, "dcnum", False)


def test_numeric_key_two_texts_one_row_resync(river_pg, mongo):
    run_numeric(river_pg, mongo, "dcnumrs", True)


def test_copy_resumed_after_worker_terminated_counts_each_document_once(river_pg, mongo):
    """pg_terminate_backend of the worker mid-copy (replies slowed down, one document returned
    twice in some batches): the resumed copy's docs_copied equals the rows and the source's
    count."""
    import time
    from worker_memory import worker_pid
    pg, river = river_pg, "dccrash"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].posts
    load_posts(coll, 20000, seed=5)
    dup = FarDuplicate(f"{river}.posts")

    def slow(name, reply):
        if name in ("find", "getMore"):
            time.sleep(0.15)
        return dup(name, reply)

    proxy = EvilProxy(port_of(mongo), slow)
    killed = []
    try:
        create_river(pg, river, proxy.uri(), {"batch_size": 100})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{river}.posts", river, json.dumps(FLAT)))
        for mark in (4000, 11000):
            wait_for(lambda: (copied(pg, river) or 0) >= mark, 120, 0.02, f"the copy to pass {mark}")
            pid = worker_pid(pg, river)
            if pid and phase(pg, river) == "initial_copy":
                pg.query("SELECT pg_terminate_backend(%s)", (pid,))
                killed.append((mark, copied(pg, river)))
                wait_for(lambda: worker_pid(pg, river) not in (None, pid), 60, 0.1, "a new worker")
        wait_for(lambda: phase(pg, river) == "streaming", 180, 0.2, "the copy to end")
        wait_synced(pg, river, 60)
        rows = pg.scalar(f"SELECT count(*) FROM {river}")
        got = copied(pg, river)
        saved = pg.scalar("SELECT docs_copied FROM mongo_river.mapping_state WHERE river = %s", (river,))
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        proxy.close()
    assert killed, "the worker was never terminated mid-copy"
    assert rows == 20000
    assert got == saved == 20000, f"docs_copied {got} (catalog {saved}) for {rows} rows; killed at {killed}, " \
                                  f"{dup.fired} repeats"


def string_and_objectid(pg, mongo, river, batch_size, extra=(), options=None):
    from bson.objectid import ObjectId
    client = mongo.client()
    client.drop_database(river)
    oid = ObjectId("5f0000000000000000000001")
    docs = [{"_id": str(oid), "title": "string"}] + list(extra)
    docs += [{"_id": f"p{i:07d}", "title": "t"} for i in range(600)]
    docs += [{"_id": oid, "title": "objectid"}]
    client[river].posts.insert_many(docs)
    create_river(pg, river, mongo.uri, {"batch_size": batch_size})
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "title": {"path": "title", "type": "varchar(8)"}}}
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
             (river, f"{river}.posts", river, json.dumps(mapping), json.dumps(options or {})))
    try:
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the copy to end")
        wait_synced(pg, river, 60)
        rows = pg.scalar(f"SELECT count(*) FROM {river}")
        rejects = sorted(r[0] for r in pg.query("SELECT document_id FROM mongo_river.rejects WHERE river = %s",
                                                (river,)))
        got = copied(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    return rows, rejects, got


def test_string_and_objectid_of_one_text_in_two_copy_batches_count_as_in_one(river_pg, mongo):
    """The existing test's source (the string "5f...01", 600 strings, ObjectId("5f...01")) with
    batch_size 1 (copy batches of 10 documents) and 100 (1000): the two documents of one text land
    in different batches or in one; the table has 601 rows, docs_copied is 602 either way (5f6162d
    counted 601 in one batch, 602 across: the count depended on where batches end)."""
    for batch_size in (1, 100):
        rows, rejects, got = string_and_objectid(river_pg, mongo, f"dctwob{batch_size}", batch_size)
        assert rows == 601 and not rejects, (rows, rejects)
        assert got == 602, f"docs_copied {got} for 602 documents, {rows} rows, copy batches of {10 * batch_size}"


def test_repeat_with_rejects_of_both_kinds_in_one_batch(river_pg, mongo):
    """One copy batch with the two _ids of one text, a document PostgreSQL refuses (varchar(8))
    and one the converter refuses (invalid UTF-8): 604 documents, 601 rows, two rejects,
    docs_copied 602."""
    from bson.raw_bson import RawBSONDocument
    body = b"\x02_id\x00\x04\x00\x00\x00bad\x00\x02title\x00\x03\x00\x00\x00\xc3(\x00"
    bad_utf8 = RawBSONDocument((len(body) + 5).to_bytes(4, "little") + body + b"\x00")
    extra = [{"_id": "long", "title": "far too long a title"}, bad_utf8]
    rows, rejects, got = string_and_objectid(river_pg, mongo, "dcmix", 100, extra)
    assert rows == 601 and len(rejects) == 2, (rows, rejects)
    assert got == 602, f"docs_copied {got} for 604 documents, {rows} rows (rejects {rejects})"


def test_history_two_ids_of_one_text_count_the_same_with_or_without_a_refused_document(river_pg, mongo):
    """History mode keeps both documents of one text (two versions, two positions): 602 rows,
    docs_copied 602. Add one document PostgreSQL refuses to that batch: it is written document by
    document, the two versions are still both appended (603 documents, 1 reject, 602 rows):
    docs_copied 602 (5f6162d said 601)."""
    hist = {"mode": "history"}
    rows, rejects, got = string_and_objectid(river_pg, mongo, "dchplain", 100, (), hist)
    assert rows == 602 and not rejects and got == 602, (rows, rejects, got)
    extra = [{"_id": "long", "title": "far too long a title"}]
    rows, rejects, got = string_and_objectid(river_pg, mongo, "dchisol", 100, extra, hist)
    assert rows == 602 and rejects == ["long"], (rows, rejects)
    assert got == rows, f"docs_copied {got} for {rows} history rows (rejects {rejects}); 602 without the reject"


def test_resync_with_a_document_returned_twice_counts_once(river_pg, mongo):
    """resync() through a source that returns a document twice in a copy batch: docs_copied
    restarts and ends at 4000, the rows."""
    pg, river = river_pg, "dcrsdup"
    with repeating_copy(pg, mongo, river, {"batch_size": 100}) as policy:
        wait_synced(pg, river, 60)
        first = policy.fired
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.posts"))
        wait_for(lambda: policy.fired > first and phase(pg, river) == "streaming", 120, 0.2, "the resync to end")
        wait_synced(pg, river, 60)
        rows = pg.scalar(f"SELECT count(*) FROM {river}")
        got = copied(pg, river)
    assert rows == 4000
    assert got == 4000, f"docs_copied {got} after the resync ({policy.fired} repeats)"
