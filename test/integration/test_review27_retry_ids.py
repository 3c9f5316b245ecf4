"""Review 27: retry_rejects finds the document a reject names by the text of its _id (document_id)
among raw's own _id, documentKey._id, o2._id and o._id. A change event's own _id is its resume
token; a hostile source can send any value there (README: "an event whose _id (resume token) cannot
be read" is rejected with the event as raw and document_id = the documentKey's _id). Two _ids of
different types can share a document_id text (int 1 and the string '{"$numberInt":"1"}')."""

import json
import time

import bson
from bson.int64 import Int64

from river import synced_river

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "jsonb"}, "n": {"path": "n", "type": "bigint"}}}
SHARED = '{"$numberInt":"1"}'


def add_reject(pg, river, source, document_id, raw, operation="update"):
    return pg.scalar("INSERT INTO mongo_river.rejects (river, source, document_id, operation, raw, error) "
                     "VALUES (%s, %s, %s, %s, %s, 'test') RETURNING id",
                     (river, source, document_id, operation, raw))


def test_retry_of_an_event_whose_token_shares_the_document_id_text(river_pg, mongo):
    """The reject names the document whose _id is the string '{"$numberInt":"1"}' (documentKey._id);
    the event's own _id (its unreadable resume token) is int 1, whose text is the same. The
    document changed at the source while the river was stopped: retry_rejects must read *that*
    document, not the one with _id 1."""
    pg = river_pg
    river = "r27ids"
    docs = [{"_id": 1, "n": 10}, {"_id": SHARED, "n": 20}]
    with synced_river(pg, mongo, river, MAPPING, [f"{river}.c"], docs) as coll:
        rows = dict(pg.query(f'SELECT id::text, n FROM "{river}"'))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        time.sleep(1.5)
        coll.update_one({"_id": SHARED}, {"$set": {"n": 21}})
        coll.update_one({"_id": 1}, {"$set": {"n": 11}})
        event = {"_id": 1, "operationType": "update", "ns": {"db": river, "coll": "c"},
                 "documentKey": {"_id": SHARED}, "updateDescription": {"updatedFields": {"n": 21}, "removedFields": []}}
        rid = add_reject(pg, river, f"{river}.c", SHARED, bson.encode(event))
        resolved = pg.scalar("SELECT mongo_river.retry_rejects(%s, %s)", (river, rid))
        after = dict(pg.query(f'SELECT id::text, n FROM "{river}"'))
        left = pg.query("SELECT error FROM mongo_river.rejects WHERE id = %s", (rid,))
        print("rows before", rows, "after", after, "resolved", resolved)
        # The reject names the string _id; it is resolved only when that document's row is current.
        assert after[json.dumps(SHARED)] == 21 or left, \
            f"retry_rejects resolved {resolved}; rows before {rows}, after {after}; reject left {left}"
