"""Review 27: dry_run (README: "tables, rejects and the position stay untouched; status.rejects and
last_reject_at count what it would reject"), on the copy, insert, update (patch) and unreadable
paths, with both captures; a dry run restarted counts on from the catalog."""

import json
import time

import pytest

from pgcluster import wait_for
from review_helpers import KEY_N_BIGINT as MAPPING
from river import create_river


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_dry_run_counts_every_reject(river_pg, mongo, capture):
    pg = river_pg
    river = f"r27dr_{capture}"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": "ok", "n": 1}, {"_id": "c_bad", "n": "x"}, {"_id": "ok2", "n": 2}])
    create_river(pg, river, mongo.uri, {"dry_run": True, "capture": capture})
    try:
        pg.query(f'CREATE TABLE "{river}" (id text PRIMARY KEY, n bigint)')
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_for(lambda: pg.scalar("SELECT rejects FROM mongo_river.status WHERE river = %s", (river,)) == 1, 30, 0.1,
                 "the copy's reject counted")
        coll.insert_one({"_id": "i_bad", "n": "y"})
        coll.update_one({"_id": "ok"}, {"$set": {"n": "z"}})
        coll.insert_one({"_id": "i_noid_after", "n": 5})
        coll.replace_one({"_id": "ok2"}, {"n": "w"})
        time.sleep(4)
        st = pg.query("SELECT rejects, last_reject_at IS NOT NULL, phase FROM mongo_river.status WHERE river = %s",
                      (river,))
        assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (river,)) == 0
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 0
        assert st == [(4, True, "streaming")], st
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
