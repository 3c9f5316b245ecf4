"""Review 24 of 206c33b: odd but valid oplog content streamed by an oplog-capture river: _id of
every BSON type, collections with dots in their names in two databases, documents with a key given
twice, a document near 16 MiB, 150-level documents updated deep inside ($v:2 diffs), replacements,
updates and deletes of rows missing in PostgreSQL."""

import datetime
import json
import struct

import bson
import pytest
from bson import Code, Decimal128, Int64, MaxKey, MinKey, ObjectId
from bson.binary import Binary
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from pgcluster import wait_for
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text", "format": "extjson"},
                                   "n": {"path": "n", "type": "bigint"}, "x": {"path": "x", "type": "text"}},
           "document": "doc"}

IDS = ["s", "", 7, Int64(1 << 40), 2.5, -0.0, ObjectId("5f0000000000000000000001"), Decimal128("1.10"),
       True, False, datetime.datetime(2020, 1, 1), Binary(b"\x00\x01", 0),
       Binary(b"\x01" * 16, 4), MinKey(), MaxKey(), Timestamp(5, 6), {"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1},
       "x" * 1000, "ünï\u2028cödé", {"": {"k": 1}}]


def by_n(pg, table):
    return {r[0]: (r[1], r[2]) for r in pg.query(f'SELECT n, x, id FROM "{table}"')}


def raw_doc(*pairs):
    body = b"".join(bson.encode({k: v})[4:-1] for k, v in pairs)
    return RawBSONDocument(struct.pack("<i", len(body) + 5) + body + b"\0")


@pytest.fixture(scope="module")
def odd(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    for d in ("r24odd", "r24odd2"):
        client.drop_database(d)
    river = "r24odd"
    create_river(pg, river, mongo.uri, {"capture": "oplog", "batch_size": 50})
    sources = {"r24odd.a.b": "odd_ab", "r24odd.c": "odd_c", "r24odd2.x.y.z": "odd_xyz"}
    for ns, table in sources.items():
        db, coll = ns.split(".", 1)
        client[db].create_collection(coll)
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, ns, table, json.dumps(MAPPING)))
    wait_synced(pg, river, 60)
    yield pg, river, client
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    for d in ("r24odd", "r24odd2"):
        client.drop_database(d)


def check_no_rejects(pg, river, sources):
    rej = pg.query("SELECT source, document_id, operation, left(error, 150) FROM mongo_river.rejects "
                   "WHERE river = %s AND source = ANY(%s)", (river, sources))
    assert not rej, rej
    assert "terminated by signal" not in pg.log()


def test_ids_of_every_type_in_dotted_collections(odd):
    pg, river, client = odd
    colls = {"odd_ab": client["r24odd"]["a.b"], "odd_xyz": client["r24odd2"]["x.y.z"]}
    for table, coll in colls.items():
        for n, _id in enumerate(IDS):
            coll.insert_one({"_id": _id, "n": n, "x": "ins"})
        for n, _id in enumerate(IDS):
            if n % 3 == 0:
                coll.update_one({"_id": _id}, {"$set": {"x": f"upd{n}"}})
            elif n % 3 == 1:
                coll.replace_one({"_id": _id}, {"n": n, "x": f"rep{n}"})
        for n, _id in enumerate(IDS):
            if n % 5 == 4:
                coll.delete_one({"_id": _id})
    wait_synced(pg, river, 60)
    for table, coll in colls.items():
        want = {d["n"]: d.get("x") for d in coll.find()}
        got = by_n(pg, table)
        assert len(got) == len(want) == pg.scalar(f'SELECT count(*) FROM "{table}"'), (table, sorted(got), sorted(want))
        bad = {n: (want.get(n), got.get(n)) for n in set(want) | set(got) if want.get(n) != (got.get(n) or (None,))[0]}
        assert not bad, f"{table}: (mongo x, pg row) {bad}"
    check_no_rejects(pg, river, ["r24odd.a.b", "r24odd2.x.y.z"])


def test_changes_to_rows_missing_in_postgres(odd):
    """Rows deleted behind the river's back: an update brings the row back (lookup), a delete of a
    missing row is no error, a replacement inserts it."""
    pg, river, client = odd
    coll = client["r24odd"]["c"]
    coll.insert_many([{"_id": f"m{i}", "n": i, "x": "a", "deep": {"k": i}} for i in range(6)])
    wait_synced(pg, river, 60)
    pg.query("DELETE FROM odd_c WHERE id IN ('\"m1\"', '\"m2\"', '\"m3\"')")
    assert pg.scalar("SELECT count(*) FROM odd_c") == 3
    coll.update_one({"_id": "m1"}, {"$set": {"x": "b", "deep.k": 100}})
    coll.delete_one({"_id": "m2"})
    coll.replace_one({"_id": "m3"}, {"n": 3, "x": "r"})
    coll.delete_one({"_id": "nothing-here"})
    wait_synced(pg, river, 60)
    got = {n: x for n, (x, _) in by_n(pg, "odd_c").items()}
    assert got == {0: "a", 1: "b", 3: "r", 4: "a", 5: "a"}, got
    check_no_rejects(pg, river, ["r24odd.c"])


def test_document_with_a_key_twice(odd):
    pg, river, client = odd
    coll = client["r24odd"]["c"]
    coll.insert_one(raw_doc(("_id", "dup"), ("n", 40), ("x", "first"), ("x", "second")))
    stored = coll.find_one({"_id": "dup"}, projection=None)
    coll.update_one({"_id": "dup"}, {"$set": {"n": 41}})
    wait_synced(pg, river, 60)
    row = pg.query("SELECT n, x, doc::text FROM odd_c WHERE id = %s", ('"dup"',))
    print("mongo:", stored, "pg:", row)
    assert row and row[0][0] == 41, row
    assert "terminated by signal" not in pg.log()


def test_near_16mib_document_and_deep_updates(odd):
    pg, river, client = odd
    coll = client["r24odd"]["c"]
    big = "b" * (16 * 1024 * 1024 - 4096)
    coll.insert_one({"_id": "big", "n": 50, "x": "big", "blob": big})
    coll.update_one({"_id": "big"}, {"$set": {"x": "big2", "inner.y": 1}})
    deep = leaf = {}
    for _ in range(148):
        leaf["a"] = {}
        leaf = leaf["a"]
    leaf["v"] = 1
    coll.insert_one({"_id": "deep", "n": 60, "x": "deep", "d": deep})
    path = "d." + ".".join(["a"] * 148) + ".v"
    coll.update_one({"_id": "deep"}, {"$set": {path: 2, "x": "deep2"}})
    coll.update_one({"_id": "deep"}, {"$unset": {"d." + ".".join(["a"] * 100): ""}})
    wait_synced(pg, river, 120)
    got = {n: x for n, (x, _) in by_n(pg, "odd_c").items()}
    assert got.get(50) == "big2" and got.get(60) == "deep2", got
    size = pg.scalar("SELECT length(doc->>'blob') FROM odd_c WHERE id = %s", ('"big"',))
    assert size == len(big)
    depth_doc = pg.scalar("SELECT doc->'d' FROM odd_c WHERE id = %s", ('"deep"',))
    want = coll.find_one({"_id": "deep"})["d"]
    assert depth_doc == want, "the deep document differs"
    check_no_rejects(pg, river, ["r24odd.c"])


@pytest.mark.parametrize("capture", ["oplog", "change_stream"])
def test_null_id_under_an_extjson_key(river_pg, mongo, capture):
    """_id: null is a valid, unique _id; the README says an extjson key holds "canonical Extended
    JSON of any _id, always distinct"."""
    pg, client, river = river_pg, mongo.client(), f"r24null_{capture}"
    client.drop_database(river)
    coll = client[river].c
    coll.insert_one({"_id": None, "n": 1, "x": "copied"})
    create_river(pg, river, mongo.uri, {"capture": capture})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
    try:
        wait_synced(pg, river, 60)
        coll.update_one({"_id": None}, {"$set": {"x": "streamed"}})
        wait_synced(pg, river, 60)
        rows = pg.query(f"SELECT id, n, x FROM {river}")
        rej = pg.query("SELECT operation, left(error, 120) FROM mongo_river.rejects WHERE river = %s", (river,))
        assert rows == [("null", 1, "streamed")], f"rows {rows}; rejects {rej}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        client.drop_database(river)
