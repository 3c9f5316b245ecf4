"""Review 20: oplog capture's fitted getMores (find for 1 entry, then what 4 MiB holds of the entries
seen, at most as many as read, at most batch_size) must never stall a river, lose or duplicate rows.

README ("Exactly once", "Capture"): each batch (at most batch_size changes or 4 MiB) is applied with
the river's position; nothing lost, nothing applied twice; capture: oplog applies i/u/d entries.
A stopped river meets thousands of changes (inserts, updates, deletes, a tiny entry followed by
1.5 MiB ones, updates of those) and must end with rows equal to the source, with batch_size 3 (every
getMore capped at 3) and 5000 (fitted sizes grow by doubling); then a live burst while streaming.
"""

import hashlib
import json

import pytest

from river import create_river

MIB = 1024 * 1024
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "blob": {"path": "blob", "type": "text"}}}


def differences(pg, table, coll):
    want = {d["_id"]: (d.get("n"), hashlib.md5(d.get("blob", "").encode()).hexdigest()) for d in coll.find()}
    rows = pg.query(f"SELECT id, n, md5(coalesce(blob, '')) FROM {table}")
    got = {r[0]: tuple(r[1:]) for r in rows}
    bad = [k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
    if len(rows) != len(got):
        bad.append(f"duplicates: {len(rows)} rows for {len(got)} keys")
    return bad


def changes(coll, start, count):
    """changes makes count small inserts from start, updates every 4th, deletes every 7th, and then a
    tiny insert followed by six 1.5 MiB documents, two of them updated."""
    coll.insert_many([{"_id": f"s{i:06d}", "n": i, "blob": "x" * (i % 97)} for i in range(start, start + count)])
    for i in range(start, start + count, 4):
        coll.update_one({"_id": f"s{i:06d}"}, {"$set": {"n": -i}})
    coll.delete_many({"_id": {"$in": [f"s{i:06d}" for i in range(start, start + count, 7)]}})
    coll.insert_one({"_id": f"tiny{start}", "n": 0})
    for j in range(6):
        coll.insert_one({"_id": f"big{start}_{j}", "n": j, "blob": chr(ord("a") + j) * (3 * MIB // 2)})
    coll.update_one({"_id": f"big{start}_1"}, {"$set": {"n": 100}})
    coll.update_one({"_id": f"big{start}_4"}, {"$set": {"blob": "z" * MIB}})


@pytest.mark.parametrize("batch_size", [3, 5000])
def test_oplog_catch_up_and_stream_equal_the_source(river_pg, mongo, batch_size):
    pg, river = river_pg, f"r20o_{batch_size}"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": f"a{i}", "n": i} for i in range(5)])
    create_river(pg, river, mongo.uri, {"capture": "oplog", "batch_size": batch_size})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river,
                                                                       json.dumps(MAPPING)))
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        changes(coll, 0, 3000)
        pg.query("SELECT mongo_river.start(%s)", (river,))
        synced = pg.scalar("SELECT mongo_river.wait_for_sync(%s, '240 s')", (river,))
        status = pg.query("SELECT phase, changes_applied, last_error FROM mongo_river.status WHERE river = %s",
                          (river,))
        assert synced, f"catch-up did not end: {status}"
        bad = differences(pg, river, coll)
        assert bad == [], f"{len(bad)} rows differ after catch-up: {bad[:5]}; status {status}"
        # A live burst while streaming.
        changes(coll, 10000, 1000)
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '180 s')", (river,)), status
        bad = differences(pg, river, coll)
        assert bad == [], f"{len(bad)} rows differ after streaming: {bad[:5]}"
        assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (river,)) == 0
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        client.drop_database(river)
