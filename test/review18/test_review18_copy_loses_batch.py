"""review18: one damaged copy batch silently ends the copy. The peer's own corruptCursorBatch fail
point (kind "truncated": the first document of the next batch of a find cursor claims 64 bytes more
than it has) is set once, on the copy's find cursor; the copy must then retry (or at worst reject
what it cannot read). Instead it says "initial copy done", phase streaming, no reject, no
last_error, and every document of that batch and after it is missing."""

import json

import pytest

from pgcluster import wait_for
from river import create_river

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}}}


def corrupt(client, db, times=1, kind="truncated"):
    client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": {"times": times},
                          "data": {"kind": kind, "cursor": "find", "db": db}})


@pytest.mark.parametrize("skip_batches", [0, 1, 2])
def test_a_damaged_copy_batch_is_not_silently_dropped(river_pg, mongo, skip_batches):
    if not mongo.is_peer:
        pytest.skip("needs the peer's corruptCursorBatch fail point")
    pg = river_pg
    name = f"lossy{skip_batches}"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    coll.insert_many([{"_id": f"k{i:05d}", "n": i} for i in range(3000)])
    create_river(pg, name, mongo.uri, {"batch_size": 100})
    if skip_batches == 0:
        corrupt(client, name)
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
    else:
        # let skip_batches batches through: the find (one document) and then getMores
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
        corrupt(client, name)
    try:
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (name,))
    finally:
        client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": "off"})
    st = pg.query("SELECT phase, docs_copied, last_error, rejects FROM mongo_river.status WHERE river = %s", (name,))
    rows = pg.scalar(f"SELECT count(*) FROM {name}")
    have = {r[0] for r in pg.query(f"SELECT id FROM {name}")}
    missing = sorted({f"k{i:05d}" for i in range(3000)} - have)
    print("missing", len(missing), missing[:5], missing[-3:])
    rejects = pg.query("SELECT operation, error FROM mongo_river.rejects WHERE river = %s", (name,))
    log = [line for line in pg.log().splitlines() if f'"{name}' in line]
    print(name, "status", st, "rows", rows, "rejects", rejects, *log[-6:], sep="\n")
    assert rows == 3000 or rejects, f"{3000 - rows} documents lost silently: status {st}, no reject"
    assert rows == 3000, f"{3000 - rows} documents missing (rejects: {rejects})"
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
