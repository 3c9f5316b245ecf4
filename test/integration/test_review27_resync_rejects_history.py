"""Review 27: a resync's copy that rejects a document (README "Resync": "the row of a rejected
document stays (a resync deletes only rows of documents that no longer exist)"). In history mode a
resync records a 'delete' version for documents that no longer exist; a document that exists but is
rejected again by the resync must not get one (the <table>_latest view would hide it)."""

import json

import pytest

from review_helpers import KEY_N_BIGINT as MAPPING
from river import create_river, wait_synced


@pytest.mark.parametrize("mode", ["upsert", "history"])
def test_resync_keeps_a_rejected_document(river_pg, mongo, mode):
    pg = river_pg
    river = f"r27rr_{mode}"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": "a", "n": 1}, {"_id": "b", "n": 1}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{river}.c", river, json.dumps(MAPPING), json.dumps({"mode": mode})))
        wait_synced(pg, river)
        pg.query(f'ALTER TABLE "{river}" ADD CONSTRAINT small CHECK (n IS NULL OR n < 100)')
        coll.update_one({"_id": "a"}, {"$set": {"n": 500}})
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        wait_synced(pg, river)
        view = f'"{river}_latest"' if mode == "history" else f'"{river}"'
        rows = pg.query(f"SELECT id, n FROM {view} ORDER BY id")
        rej = pg.query("SELECT document_id, operation FROM mongo_river.rejects WHERE river = %s ORDER BY id", (river,))
        versions = pg.query(f'SELECT id, _operation, n FROM "{river}" ORDER BY id, _cluster_time') \
            if mode == "history" else None
        counted = pg.scalar("SELECT rejects FROM mongo_river.status WHERE river = %s", (river,))
        print(rows, rej, versions, counted)
        assert rows == [("a", 1), ("b", 1)], f"after the resync: {rows}; rejects {rej}; versions {versions}"
        assert counted == 1, f"status.rejects {counted} for one rejected document; rejects {rej}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
