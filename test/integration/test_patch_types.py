"""Updates applied in place from their descriptions (patches) write each changed column's type as
the copy does: varchar(n), a domain with a CHECK, an enum, numeric(10,2), timestamptz, uuid, jsonb,
bytea, a text[] array (its column set takes the VALUES statement: unnest would flatten an array),
NULLs from $set null and $unset, and many rows per statement (one UPDATE ... FROM unnest(...) for
each set of changed columns). The oracle: a second river copies the final collection; both tables
must hold the same rows, in each capture."""

import datetime
import json
import random
import uuid

import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128

from river import create_river, synced_river, wait_synced

MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"},
    "code": {"path": "code", "type": "varchar(5)"},
    "pos": {"path": "pos", "type": "public.patch_posint"},
    "mood": {"path": "mood", "type": "public.patch_mood"},
    "price": {"path": "price", "type": "numeric(10,2)"},
    "at": {"path": "at", "type": "timestamptz"},
    "u": {"path": "u", "type": "uuid"},
    "j": {"path": "j", "type": "jsonb"},
    "b": {"path": "b", "type": "bytea"},
    "tags": {"path": "tags", "type": "text[]"},
    "note": {"path": "note", "type": "text"}}}


def value(rng, field):
    return {
        "code": lambda: rng.choice(["a", "bb", "ccccc", None]),
        "pos": lambda: rng.choice([1, 7, 1000, None]),
        "mood": lambda: rng.choice(["sad", "ok", "happy", None]),
        "price": lambda: rng.choice([Decimal128("12.34"), 5, 7.25, None]),
        "at": lambda: rng.choice([datetime.datetime(2020, 1, 2, 3, 4, 5), None]),
        "u": lambda: rng.choice([Binary(uuid.UUID(int=rng.getrandbits(128)).bytes, 4), None]),
        "j": lambda: rng.choice([{"a": [1, {"b": None}]}, [1, 2], "s", None]),
        "b": lambda: rng.choice([Binary(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 9)))), None]),
        "tags": lambda: rng.choice([["x", "y"], [], None]),
        "note": lambda: rng.choice(["a note", "é" * 30, None]),
    }[field]()


def doc(i, rng):
    d = {"_id": f"p{i:03d}"}
    for field in MAPPING["columns"]:
        if field != "id" and rng.random() < 0.8:
            d[field] = value(rng, field)
    return d


def table_rows(pg, table):
    return pg.query(f'SELECT id, code, pos::int, mood::text, price, at, u, j, b, tags, note FROM "{table}" ORDER BY id')


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_patches_write_every_type_as_the_copy_does(river_pg, mongo, capture):
    pg = river_pg
    pg.query("DO $$ BEGIN CREATE DOMAIN patch_posint AS integer CHECK (VALUE > 0); "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.query("DO $$ BEGIN CREATE TYPE patch_mood AS ENUM ('sad', 'ok', 'happy'); "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    rng = random.Random(11)
    river = f"patch_{capture}"
    fields = [f for f in MAPPING["columns"] if f != "id"]
    with synced_river(pg, mongo, river, MAPPING, [f"{river}.c"], [doc(i, rng) for i in range(300)],
                      {"capture": capture, "batch_size": 2000}) as coll:
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        for _ in range(1500):  # a backlog: hundreds of rows per column set and statement
            key = f"p{rng.randrange(300):03d}"
            changed = rng.sample(fields, rng.randint(1, 3))
            sets = {f: value(rng, f) for f in changed if rng.random() < 0.8}
            unsets = {f: "" for f in changed if f not in sets}
            update = {}
            if sets:
                update["$set"] = sets
            if unsets:
                update["$unset"] = unsets
            coll.update_one({"_id": key}, update)
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = %s", (river,))
        assert not rejects, rejects
        # The oracle: a second river copies the collection as it is now.
        oracle = f"{river}_copy"
        create_river(pg, oracle, mongo.uri, {"capture": capture})
        try:
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (oracle, f"{river}.c", oracle, json.dumps(MAPPING)))
            wait_synced(pg, oracle)
            assert not pg.query("SELECT 1 FROM mongo_river.rejects WHERE river = %s", (oracle,))
            patched, copied = table_rows(pg, river), table_rows(pg, oracle)
            assert len(patched) == 300
            differ = [(a, b) for a, b in zip(patched, copied) if a != b]
            assert not differ, f"{len(differ)} rows differ from the copy, e.g. {differ[:2]}"
        finally:
            pg.query("SELECT mongo_river.drop_river(%s, true)", (oracle,))
        # A value the domain's CHECK refuses: the change is rejected with PostgreSQL's reason; the
        # other changes of its batch are applied.
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        coll.update_one({"_id": "p001"}, {"$set": {"pos": -5}})
        coll.update_one({"_id": "p002"}, {"$set": {"note": "after"}})
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        assert pg.scalar(f'SELECT note FROM "{river}" WHERE id = %s', ("p002",)) == "after"
        assert pg.scalar(f'SELECT pos FROM "{river}" WHERE id = %s', ("p001",)) != -5
        rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = %s", (river,))
        assert [r[0] for r in rejects] == ["p001"] and "patch_posint" in rejects[0][1], rejects


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_a_domain_over_an_array_is_copied_and_patched_with_its_check(river_pg, mongo, capture):
    """A column whose type is a domain over an array (text[] with a CHECK) takes arrays in the copy,
    in inserts and in patches, and the domain's CHECK holds on each path: a value it refuses is
    rejected with PostgreSQL's reason (it was "malformed array literal" for every array)."""
    pg = river_pg
    pg.query("DO $$ BEGIN CREATE DOMAIN patch_short_tags AS text[] CHECK (cardinality(VALUE) <= 3); "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "tags": {"path": "tags", "type": "public.patch_short_tags"},
                                       "note": {"path": "note", "type": "text"}}}
    river = f"domarr_{capture}"
    docs = [{"_id": "a", "tags": ["x", "y"], "note": "n"}, {"_id": "b", "tags": []},
            {"_id": "c", "tags": None}, {"_id": "d", "tags": ["1", "2", "3", "4"]}]
    with synced_river(pg, mongo, river, mapping, [f"{river}.c"], docs, {"capture": capture}) as coll:
        def rows():
            return pg.query(f'SELECT id, tags::text[], note FROM "{river}" ORDER BY id')

        def rejected():
            return pg.query("SELECT document_id, operation, error FROM mongo_river.rejects WHERE river = %s "
                            "ORDER BY id", (river,))

        assert rows() == [("a", ["x", "y"], "n"), ("b", [], None), ("c", None, None)], (rows(), rejected())
        assert [(r[0], r[1]) for r in rejected()] == [("d", "copy")], rejected()
        assert "patch_short_tags" in rejected()[0][2], rejected()
        coll.update_one({"_id": "a"}, {"$set": {"tags": ["z"]}})
        coll.update_one({"_id": "b"}, {"$set": {"tags": ["p", "q", "r", "s"]}})  # refused by the CHECK
        coll.insert_one({"_id": "e", "tags": ["e1"]})
        coll.update_one({"_id": "c"}, {"$set": {"tags": ["c1", "c2"], "note": "c"}})
        wait_synced(pg, river)
        assert rows() == [("a", ["z"], "n"), ("b", [], None), ("c", ["c1", "c2"], "c"), ("e", ["e1"], None)], \
            (rows(), rejected())
        assert [(r[0], r[1]) for r in rejected()][1:] == [("b", "update")], rejected()
        assert "patch_short_tags" in rejected()[1][2], rejected()
        # Verify compares the arrays as the copy wrote them: only the two refused documents differ.
        found = pg.query("SELECT document_id, problem FROM mongo_river.verify(%s)", (river,))
        assert sorted(r[0] for r in found) == ["b", "d"], found
        assert all("patch_short_tags" in r[1] for r in found if r[0] == "d"), found
