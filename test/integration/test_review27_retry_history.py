"""Review 27: retry_rejects into a history-mode mapping. README "Recovering from rejects": "each
reject is re-applied from the document's *current* state in MongoDB ...; a document deleted since
removes its row"; "Modes": `_operation` is one of copy, insert, update, replace, delete, and the
view <table>_latest has "the latest version of each document, deleted ones hidden"."""

import json
import time

from review_helpers import KEY_N_BIGINT as MAPPING
from river import create_river, wait_synced


def test_retry_into_history_is_the_latest_version(river_pg, mongo):
    pg = river_pg
    river = "r27rh"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": "a", "n": 1}, {"_id": "b", "n": 1}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{river}.c", river, json.dumps(MAPPING), json.dumps({"mode": "history"})))
        wait_synced(pg, river)
        pg.query(f'ALTER TABLE "{river}" ADD CONSTRAINT small CHECK (n < 100)')
        coll.update_one({"_id": "a"}, {"$set": {"n": 500}})
        coll.update_one({"_id": "b"}, {"$set": {"n": 600}})
        wait_synced(pg, river)
        rej = pg.query("SELECT document_id, operation FROM mongo_river.rejects WHERE river = %s ORDER BY 1", (river,))
        assert rej == [("a", "update"), ("b", "update")], rej
        coll.delete_one({"_id": "b"})
        wait_synced(pg, river)
        pg.query(f'ALTER TABLE "{river}" DROP CONSTRAINT small')
        resolved = pg.scalar("SELECT mongo_river.retry_rejects(%s)", (river,))
        versions = pg.query(f'SELECT id, _operation, n, _cluster_time FROM "{river}" ORDER BY id, _cluster_time, _position')
        latest = pg.query(f'SELECT id, n FROM "{river}_latest" ORDER BY id')
        print("resolved", resolved, "versions", versions, "latest", latest)
        assert resolved == 2, (resolved, versions)
        assert latest == [("a", 500)], f"_latest after retry_rejects: {latest}; versions {versions}"
        ops = {v[1] for v in versions}
        # (README now lists 'retry': a reject retry_rejects applied, at the source's time then)
        assert ops <= {"copy", "insert", "update", "replace", "delete", "retry"}, f"_operation values {ops}"
        assert all(v[3] > 0 for v in versions if v[1] == "retry"), versions
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
