"""Review 27: an unreadable change event without ns in a river of two collections (README table:
its source is then the stream's database, or '*'). README: "document_id is the _id of the event's
documentKey when that can be read (then retry_rejects re-reads the document from the source)". The
reject's source names no mapped collection, so retry_rejects skips it as "no longer mapped": the
document named by document_id is never re-read, and the reject stays with its first reason."""

import json

import pytest

from pgcluster import wait_for
from review_helpers import KEY_N_BIGINT as MAPPING
from river import create_river, wait_synced


@pytest.fixture(scope="module")
def peer(mongo):
    if not mongo.is_peer:
        pytest.skip("needs the peer's corruptCursorBatch fail point")
    client = mongo.client()
    yield mongo, client
    client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": "off"})


def test_retry_of_an_event_without_ns_in_a_two_collection_river(river_pg, peer):
    pg, (mongo, client) = river_pg, peer
    river = "r27nons"
    client.drop_database(river)
    client[river].a.insert_one({"_id": "x", "n": 1})
    client[river].b.insert_one({"_id": "y", "n": 1})
    create_river(pg, river, mongo.uri)
    try:
        for c in ("a", "b"):
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (river, f"{river}.{c}", f"{river}_{c}", json.dumps(MAPPING)))
        wait_synced(pg, river)
        client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": {"times": 1},
                              "data": {"kind": "noNs", "db": river, "cursor": "changeStream"}})
        client[river].a.insert_one({"_id": "damaged", "n": 7})
        got = wait_for(lambda: pg.query("SELECT id, source, document_id FROM mongo_river.rejects WHERE river = %s",
                                        (river,)), 30, 0.1, "the reject of the event without ns")
        print("reject:", got)
        assert got[0][2] == "damaged", got
        resolved = pg.scalar("SELECT mongo_river.retry_rejects(%s)", (river,))
        row = pg.query(f'SELECT n FROM "{river}_a" WHERE id = %s', ("damaged",))
        left = pg.query("SELECT source, document_id, error FROM mongo_river.rejects WHERE river = %s", (river,))
        # Its collection is unknown (the event has no ns): not retried, and the reject says so (it
        # was skipped silently). README: retry_rejects re-reads documents of mapped collections.
        assert resolved == 0 and row == [] and len(left) == 1, \
            f"retry_rejects resolved {resolved}; row {row}; rejects left {left}"
        assert left[0][2].startswith(f'not retried: "{river}" is not a mapped collection; was: '), left
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
