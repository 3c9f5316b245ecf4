"""Unreadable events and documents: one bad change event or document never stalls a river.

The peer's corruptCursorBatch fail point (peer only) damages the first document of the next cursor
batch: a change event without ns, one whose _id (resume token) is not a token, one without
operationType, a document without _id (in a change event, or in the initial copy). With on_error
'reject' (the default) the river records a reject (raw bytes kept, reason given) and streams the
changes that follow; with on_error 'stop' it stops in phase 'error' naming the problem. A batch whose
BSON is truncated (its first document claims more bytes than it has) is a malformed reply: refused
whole, the connection closed, and read again from the last resume token (README "A malformed
reply"), so the event arrives intact and nothing is rejected."""

import pytest

from pgcluster import wait_for
from river import create_river, load_posts, map_posts, wait_synced


def corrupt(client, kind, db, cursor, times=1):
    client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": {"times": times},
                          "data": {"kind": kind, "db": db, "cursor": cursor}})


@pytest.fixture(scope="module")
def peer(mongo):
    if not mongo.is_peer:
        pytest.skip("needs the peer's corruptCursorBatch fail point (a real MongoDB never sends these)")
    client = mongo.client()
    yield mongo, client
    client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": "off"})


def rejects(pg, river):
    return pg.query("SELECT source, operation, document_id, raw IS NOT NULL AND length(raw) > 0, error "
                    "FROM mongo_river.rejects WHERE river = %s ORDER BY id", (river,))


def start(pg, mongo, client, river, options=None, docs=50):
    client.drop_database(river)
    load_posts(client[river].posts, docs, seed=7)
    create_river(pg, river, mongo.uri, options or {})
    map_posts(pg, river, f"{river}.posts", river)
    wait_synced(pg, river, 60)


def arrives(pg, river, doc_id, timeout=30):
    wait_for(lambda: pg.scalar(f"SELECT count(*) FROM {river} WHERE id = %s", (doc_id,)), timeout, 0.1,
             f"document {doc_id} in {river}")


CASES = {
    # kind: (expected source, operation, words of the error)
    "noNs": ("{db}.posts", "insert", "no ns"),
    "badId": ("{db}.posts", "insert", "no _id (resume token)"),
    "noType": ("{db}.posts", "unreadable", "no operationType"),
    "noDocId": ("{db}.posts", "insert", "has no _id"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_unreadable_event_is_rejected_and_the_river_goes_on(river_pg, peer, kind):
    pg, (mongo, client) = river_pg, peer
    river = "bad_" + kind.lower()
    start(pg, mongo, client, river)
    try:
        corrupt(client, kind, river, "changeStream")
        client[river].posts.insert_one({"_id": "damaged", "title": "damaged in transit"})
        got = wait_for(lambda: rejects(pg, river), 30, 0.1, f"a reject for the {kind} event")
        source, operation, document_id, has_raw, error = got[0]
        print(f"{kind}: reject source={source!r} operation={operation!r} id={document_id!r} error={error!r}")
        want_source, want_operation, words = CASES[kind]
        assert source == want_source.format(db=river)
        assert operation == want_operation
        assert has_raw, "the raw bytes are kept"
        assert words in error
        # The river moved past it: a later change arrives, and the status is healthy.
        client[river].posts.insert_one({"_id": "after", "title": "after the damaged event"})
        arrives(pg, river, "after")
        assert len(rejects(pg, river)) == 1
        phase, last_error = pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = %s",
                                     (river,))[0]
        assert phase == "streaming", (phase, last_error)
        # retry_rejects re-reads the document the reject names (its document_id, from the event's
        # documentKey): it arrives and the reject goes. It used to take the event's own _id (the
        # resume token) for the document's: nothing found, the reject counted resolved and deleted,
        # the document never applied. A reject naming no document stays.
        resolved = pg.scalar("SELECT mongo_river.retry_rejects(%s)", (river,))
        if document_id:
            assert document_id == "damaged", document_id
            assert resolved == 1, rejects(pg, river)
            assert pg.scalar(f"SELECT title FROM {river} WHERE id = 'damaged'") == "damaged in transit"
            assert rejects(pg, river) == []
        else:
            assert resolved == 0 and len(rejects(pg, river)) == 1, rejects(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_truncated_batch_is_read_again(river_pg, peer):
    pg, (mongo, client) = river_pg, peer
    river = "bad_truncated"
    start(pg, mongo, client, river)
    try:
        with open(pg.logfile, errors="replace") as f:
            f.seek(0, 2)
            log_from = f.tell()
        corrupt(client, "truncated", river, "changeStream")
        client[river].posts.insert_one({"_id": "damaged", "title": "damaged in transit"})
        arrives(pg, river, "damaged")
        client[river].posts.insert_one({"_id": "after", "title": "after the damaged batch"})
        arrives(pg, river, "after")
        assert rejects(pg, river) == []
        assert pg.scalar(f"SELECT title FROM {river} WHERE id = 'damaged'") == "damaged in transit"
        with open(pg.logfile, errors="replace") as f:
            f.seek(log_from)
            log = f.read()
        assert "the server sent a malformed reply" in log, "the refused batch is named in the server log"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_copied_document_without_id_is_rejected(river_pg, peer):
    pg, (mongo, client) = river_pg, peer
    river = "bad_copy"
    client.drop_database(river)
    load_posts(client[river].posts, 300, seed=8)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 50})
        # map_collection lists the source's collections (a cursor the peer counts as "find"): the
        # fail point is set after it, while the river is stopped, so the copy's find gets it.
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        map_posts(pg, river, f"{river}.posts", river)
        corrupt(client, "noDocId", river, "find")
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river, 60)
        got = rejects(pg, river)
        assert len(got) == 1, got
        source, operation, document_id, has_raw, error = got[0]
        assert (source, operation, has_raw) == (f"{river}.posts", "copy", True)
        assert "has no _id" in error
        assert pg.scalar(f"SELECT count(*) FROM {river}") == 299
        client[river].posts.insert_one({"_id": "after", "title": "after the copy"})
        arrives(pg, river, "after")
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_on_error_stop_names_the_unreadable_event(river_pg, peer):
    pg, (mongo, client) = river_pg, peer
    river = "bad_stop"
    start(pg, mongo, client, river, {"on_error": "stop"})
    try:
        corrupt(client, "noNs", river, "changeStream")
        client[river].posts.insert_one({"_id": "damaged", "title": "x"})
        error = wait_for(lambda: pg.scalar(
            "SELECT last_error FROM mongo_river.status WHERE river = %s AND phase = 'error'", (river,)), 30, 0.1,
            "phase error")
        print(f"on_error stop: {error!r}")
        assert "unreadable change event" in error and "no ns" in error and river in error
        assert rejects(pg, river) == []
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
