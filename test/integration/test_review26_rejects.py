"""Review 26: rejects after a copy (README "Resync": "a copy's reject of a document replaces the reject
a copy before recorded for it (one row per document, new reason and time; status.rejects does not
count it twice), and at the copy's end the copy rejects of documents it has now copied, or that no
longer exist, are removed"; "Watching": status shows "the rejects (count and time of the last): ...
a document a later copy (a resync) rejects again is counted once")."""

import json

import review_helpers
from pgcluster import wait_for
from review_helpers import fresh, status_rejects
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text", "format": "extjson"},
                                   "n": {"path": "n", "type": "integer"}}}


def rejects(pg, river):
    return review_helpers.rejects(pg, river, "document_id, operation, error, document")


def phase(pg, river):
    return pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,))


def resync(pg, river, source):
    started = pg.scalar("SELECT clock_timestamp()")
    pg.query("SELECT mongo_river.resync(%s, %s)", (river, source))
    try:
        wait_for(lambda: pg.scalar("SELECT phase = 'streaming' AND copy_started_at > %s FROM mongo_river.mapping_state "
                                   "WHERE river = %s AND source = %s", (started, river, source)),
                 60, 0.05, "the resync to end")
    except TimeoutError:
        raise AssertionError(("the resync did not end", pg.query("SELECT * FROM mongo_river.status WHERE river = %s",
                                                                 (river,)), rejects(pg, river)))
    wait_synced(pg, river)


def test_map_again_counts_the_copys_rejects(river_pg, mongo):
    """unmap_collection, then map_collection again (copy: true): the new mapping's copy rejects the
    same three documents. Its status row must count them (status.rejects 3, as the first mapping's
    copy did); the copy finds the first mapping's copy rejects of those documents, takes them for
    "rejected again" and counts nothing, so status says 0 rejects while mongo_river.rejects holds
    three rows of this copy."""
    pg = river_pg
    river, source = "r26remap", "r26remap.c"
    fresh(mongo, river, [{"_id": f"k{i}", "n": i if i % 2 else f"bad{i}"} for i in range(6)])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 3, 30, 0.05, "3 rejects")
        pg.query("SELECT mongo_river.unmap_collection(%s, %s)", (river, source))
        # (the worker restarted, so that it takes the new mapping: see test_review26_remap.py)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_for(lambda: phase(pg, river) == "streaming", 60, 0.05, "the new mapping's copy")
        wait_synced(pg, river)
        # The first mapping's rejects stay (unmap_collection keeps them; discard_rejects drops them); the
        # new mapping's copy records its own, and counts them.
        assert sorted((r[0], r[1]) for r in rejects(pg, river)) == \
            [("k0", "copy"), ("k0", "copy"), ("k2", "copy"), ("k2", "copy"), ("k4", "copy"), ("k4", "copy")], \
            rejects(pg, river)
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 3
        assert status_rejects(pg, river) == 3, (status_rejects(pg, river), rejects(pg, river))
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_documents_whose_id_texts_collide_keep_a_reject_each(river_pg, mongo):
    """document_id is a text: a string _id is itself, any other _id its Extended JSON. The int _id 1
    and the string _id that spells 1's Extended JSON are two documents (the extjson key keeps them
    apart: two rows when both convert), both rejected. A copy's reject finds the "earlier copy
    reject" by that text alone: after a resync both documents share one reject row, holding the
    later document only; the other document's reject (its raw BSON, needed by retry_rejects) is
    gone."""
    pg = river_pg
    river, source = "r26collide", "r26collide.c"
    coll = fresh(mongo, river, [{"_id": 1, "n": "bad int"}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: len(rejects(pg, river)) == 1, 30, 0.05, "the int _id's reject")
        id_text = rejects(pg, river)[0][0]  # the Extended JSON of 1
        coll.insert_one({"_id": id_text, "n": "bad string"})  # another document, whose text is the same
        coll.insert_one({"_id": 2, "n": 2})
        wait_synced(pg, river)
        keys = [r[0] for r in pg.query(f'SELECT id FROM "{river}"')]
        assert len(keys) == 1, keys
        resync(pg, river, source)
        got = rejects(pg, river)
        # Each document still rejected has its reject: the int's and the string's.
        errors = sorted(r[2] for r in got)
        assert any("bad int" in e for e in errors) and any("bad string" in e for e in errors), got
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_a_copy_finds_only_its_own_documents_rejects(river_pg, mongo):
    """The same collision in one copy: the initial copy rejects the int _id 1 and then the string _id
    spelling its Extended JSON; the second reject is taken for the first one "rejected again": one
    row for two rejected documents, and status.rejects 1."""
    pg = river_pg
    river, source = "r26collide1", "r26collide1.c"
    probe = fresh(mongo, river, [{"_id": 1, "n": "bad int"}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: len(rejects(pg, river)) == 1, 30, 0.05, "the int _id's reject")
        id_text = rejects(pg, river)[0][0]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    probe.insert_one({"_id": id_text, "n": "bad string"})
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        wait_for(lambda: phase(pg, river) == "streaming", 60, 0.05, "the copy")
        got = rejects(pg, river)
        assert len(got) == 2, got
        assert status_rejects(pg, river) == 2, (status_rejects(pg, river), got)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_a_document_rejected_by_its_insert_and_again_by_a_resync_is_counted_once(river_pg, mongo):
    """README (Watching): "a document a later copy (a resync) rejects again is counted once". A
    document inserted after the copy with a value the column refuses is rejected by the stream
    (operation insert); a resync rejects it again. status.rejects must say 1 for that one document
    (the insert's reject stays, as it should); it says 2, and the document has two reject rows, so
    retry_rejects retries it twice."""
    pg = river_pg
    river, source = "r26insres", "r26insres.c"
    coll = fresh(mongo, river, [{"_id": "ok", "n": 1}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        coll.insert_one({"_id": "bad", "n": "not a number"})
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 1, 30, 0.05, "the insert's reject")
        resync(pg, river, source)
        got = rejects(pg, river)
        assert ("bad", "insert") in [(r[0], r[1]) for r in got], got  # the stream's reject stays
        assert status_rejects(pg, river) == 1, (status_rejects(pg, river), got)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_empty_string_id_rejected_again_is_counted_once(river_pg, mongo):
    """MongoDB allows the _id "" (an empty string). Its reject's document_id is stored as NULL (an
    empty text is taken for "no _id"), so a copy never finds its earlier copy reject: each resync
    inserts another reject (the old one is dropped at the end) and counts it again. README: "a
    document a later copy (a resync) rejects again is counted once"; and its document_id should say
    "" (retry_rejects and verify key on it), not NULL, which means "the _id could not be read"."""
    pg = river_pg
    river, source = "r26emptyid", "r26emptyid.c"
    fresh(mongo, river, [{"_id": "", "n": "bad"}, {"_id": "x", "n": 1}])
    plain = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(plain)))
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 1, 30, 0.05, "the reject")
        resync(pg, river, source)
        got = rejects(pg, river)
        assert status_rejects(pg, river) == 1, (status_rejects(pg, river), got)
        assert [(r[0], r[1]) for r in got] == [("", "copy")], got
        assert status_rejects(pg, river) == 1, (status_rejects(pg, river), got)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_resync_keeps_the_row_of_a_document_that_exists(river_pg, mongo):
    """README (Resync): "rows are upserted in place and, at the end, rows of documents that no longer
    exist are deleted". A document whose later version the stream rejected (its row keeps the last
    version PostgreSQL accepted) still exists; the resync rejects it again, does not count it as
    seen, and deletes its row at the end: the table loses a document the source has."""
    pg = river_pg
    river, source = "r26keeprow", "r26keeprow.c"
    coll = fresh(mongo, river, [{"_id": "a", "n": 1}, {"_id": "b", "n": 2}])
    plain = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(plain)))
        wait_synced(pg, river)
        coll.update_one({"_id": "a"}, {"$set": {"n": "no longer a number"}})
        wait_synced(pg, river)
        wait_for(lambda: status_rejects(pg, river) == 1, 30, 0.05, "the update's reject")
        assert pg.query(f'SELECT id, n FROM "{river}" ORDER BY id') == [("a", 1), ("b", 2)]
        resync(pg, river, source)
        assert [(r[0], r[1]) for r in rejects(pg, river)] == [("a", "update"), ("a", "copy")], rejects(pg, river)
        assert pg.query(f'SELECT id FROM "{river}" ORDER BY id') == [("a",), ("b",)], rejects(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
