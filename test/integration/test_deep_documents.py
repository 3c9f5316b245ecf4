"""Documents nested as deep as MongoDB stores them (180 levels: mongod's getMaxDepthForUserStorage(),
maxBSONDepth 200 less 20 levels for oplog entries and other wrappers) are copied and streamed, into a
`document` jsonb column and into dotted-path columns reaching their deepest field, in both captures.
Nothing is rejected and no server process dies."""

import json

import pymongo.errors
import pytest

from river import wait_synced

LEVELS = 180  # the top-level document is the first level


def nested(leaf):
    """nested returns {"d": {"a": {"a": ... {"x": leaf}}}}: d's value is level 2 of the document,
    LEVELS - 2 documents holding "a" lead to {"x": leaf}, level LEVELS."""
    inner = {"x": leaf}
    for _ in range(LEVELS - 2):
        inner = {"a": inner}
    return {"d": inner}


LEAF_PATH = ["d"] + ["a"] * (LEVELS - 2) + ["x"]  # LEVELS keys: one per level


def doc(key, leaf):
    d = {"_id": key}
    d.update(nested(leaf))
    return d


def depth(v):
    """depth counts levels as mongod's storage check does (the document itself is level 1)."""
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


def test_depth_is_the_limit(mongo):
    # The documents of this module are exactly at mongod's limit: one level more is refused.
    assert depth(doc("k", 1)) == LEVELS and len(LEAF_PATH) == LEVELS
    with pytest.raises(pymongo.errors.WriteError) as e:
        mongo.client().deep_limit.c.insert_one({"_id": 1, "w": doc("k", 1)})
    assert e.value.code == 15  # Overflow


def rejects(pg, river):
    return pg.query("SELECT document_id, operation, error FROM mongo_river.rejects WHERE river = %s", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_deep_documents_copied_and_streamed(river_pg, mongo, capture):
    pg = river_pg
    river = f"deep_{capture}"
    client = mongo.client()
    dbname = f"deep_{capture}"
    client.drop_database(dbname)
    whole, paths = client[dbname].whole, client[dbname].paths
    # Before the mapping: copied.
    whole.insert_one(doc("before", 1))
    paths.insert_one(doc("before", 1))

    pg.query("SELECT mongo_river.create_river(%s, %s, %s)", (river, mongo.uri, json.dumps({"capture": capture})))
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{dbname}.whole", f"{river}_whole",
              json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}, "document": "doc"})))
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{dbname}.paths", f"{river}_paths",
              json.dumps({"pk": "id", "columns": {
                  "id": {"path": "_id", "type": "text"},
                  # the deepest field: one key per level below the document
                  "leaf": {"path": ".".join(LEAF_PATH), "type": "bigint"},
                  # a sub-document of LEVELS - 2 levels as jsonb
                  "sub": {"path": "d.a", "type": "jsonb"}}})))
    wait_synced(pg, river)

    # After the mapping: streamed inserts, an update of the deepest field, a replace.
    whole.insert_one(doc("after", 2))
    paths.insert_one(doc("after", 2))
    whole.update_one({"_id": "before"}, {"$set": {".".join(LEAF_PATH): 3}})
    paths.update_one({"_id": "before"}, {"$set": {".".join(LEAF_PATH): 3}})
    whole.replace_one({"_id": "after"}, doc("after", 4))
    paths.replace_one({"_id": "after"}, doc("after", 4))
    wait_synced(pg, river)

    assert rejects(pg, river) == []
    # The document column holds the whole document, every level of it.
    got = dict(pg.query(f'SELECT id, doc FROM "{river}_whole"'))
    assert got == {"before": doc("before", 3), "after": doc("after", 4)}
    assert pg.query(f'SELECT id, doc #>> %s FROM "{river}_whole" ORDER BY id', (LEAF_PATH,)) == [
        ("after", "4"), ("before", "3")]
    # The dotted-path columns reach the deepest field and a deep sub-document.
    rows = pg.query(f'SELECT id, leaf, sub FROM "{river}_paths" ORDER BY id')
    assert [(r[0], r[1]) for r in rows] == [("after", 4), ("before", 3)]
    assert rows[0][2] == doc("after", 4)["d"]["a"] and rows[1][2] == doc("before", 3)["d"]["a"]

    # verify compares them without a difference; resync copies them again; infer_mapping samples
    # them (down to its own depth limit) without failing.
    assert pg.query("SELECT source, document_id, problem FROM mongo_river.verify(%s)", (river,)) == []
    pg.query("SELECT mongo_river.resync(%s)", (river,))
    wait_synced(pg, river)
    assert dict(pg.query(f'SELECT id, doc FROM "{river}_whole"')) == {"before": doc("before", 3),
                                                                      "after": doc("after", 4)}
    assert pg.query(f'SELECT id, leaf FROM "{river}_paths" ORDER BY id') == [("after", 4), ("before", 3)]
    inferred = pg.scalar("SELECT mongo_river.infer_mapping(%s, %s)", (river, f"{dbname}.whole"))
    assert inferred["pk"] == "id"
    assert rejects(pg, river) == []

    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    log = pg.log()
    assert "terminated by signal" not in log, log[-3000:]
