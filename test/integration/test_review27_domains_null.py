"""Review 27: NULL against scalar domains (README, review 26's note: "NULL is checked against any
domain (NOT NULL, CHECK) on the copy, insert and update paths"). PostgreSQL is the oracle: a NULL
stored in a column of a NOT NULL domain (or one whose CHECK refuses NULL) is refused, so the river
must reject the document (no row holds NULL there), on every path: a missing field, $unset, a
$set to null, history mode, child tables, a domain over a domain, verify's repair."""

import json

import pytest

import review_helpers
from review_helpers import create_types
from river import synced_river, wait_synced


def setup_types(pg):
    create_types(pg, """
        CREATE DOMAIN r27_nn AS text NOT NULL;
        CREATE DOMAIN r27_chk AS integer CHECK (VALUE IS NOT NULL AND VALUE > 0);
        CREATE DOMAIN r27_nn2 AS r27_nn;""")


def rejects(pg, river):
    return review_helpers.rejects(pg, river, "document_id, operation, left(error, 120)")


def nulls(pg, table, column):
    return pg.query(f'SELECT id FROM "{table}" WHERE {column} IS NULL ORDER BY id')


MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                   "name": {"path": "name", "type": "public.r27_nn"},
                                   "qty": {"path": "qty", "type": "public.r27_chk"},
                                   "nick": {"path": "nick", "type": "public.r27_nn2"}}}


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_scalar_not_null_domains_upsert_mode(river_pg, mongo, capture):
    pg = river_pg
    setup_types(pg)
    river = f"r27dn_{capture}"
    good = {"name": "n", "qty": 1, "nick": "k"}
    docs = [{"_id": "ok", **good}, {"_id": "ok2", **good}, {"_id": "ok3", **good}, {"_id": "ok4", **good},
            {"_id": "c_noname", "qty": 1, "nick": "k"}, {"_id": "c_noqty", "name": "n", "nick": "k"},
            {"_id": "c_nonick", "name": "n", "qty": 1}]
    with synced_river(pg, mongo, river, MAPPING, [f"{river}.c"], docs, {"capture": capture}) as coll:
        coll.insert_one({"_id": "i_noname", "qty": 1, "nick": "k"})
        coll.insert_one({"_id": "i_nonick", "name": "n", "qty": 1})
        coll.update_one({"_id": "ok"}, {"$unset": {"name": ""}})
        coll.update_one({"_id": "ok2"}, {"$set": {"qty": None}})
        coll.update_one({"_id": "ok3"}, {"$unset": {"nick": ""}})
        coll.replace_one({"_id": "ok4"}, {"name": "n", "qty": 2})
        wait_synced(pg, river)
        bad = {c: nulls(pg, river, c) for c in ("name", "qty", "nick")}
        assert bad == {"name": [], "qty": [], "nick": []}, (bad, rejects(pg, river))
        got = sorted((r[0], r[1]) for r in rejects(pg, river))
        assert got == sorted([("c_noname", "copy"), ("c_noqty", "copy"), ("c_nonick", "copy"),
                              ("i_noname", "insert"), ("i_nonick", "insert"), ("ok", "update"),
                              ("ok2", "update"), ("ok3", "update"), ("ok4", "replace")]), rejects(pg, river)


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_scalar_not_null_domains_history_mode(river_pg, mongo, capture):
    """History mode: an update that $unsets a NOT NULL domain's field (applied from its description:
    the previous version with the change) must be rejected, not recorded as a version holding NULL."""
    pg = river_pg
    setup_types(pg)
    river = f"r27dh_{capture}"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": "a", "name": "n", "qty": 1, "nick": "k"}, {"_id": "b", "name": "n", "qty": 1, "nick": "k"},
                      {"_id": "c_nonick", "name": "n", "qty": 1}])
    pg.query("SELECT mongo_river.create_river(%s, %s, %s)", (river, mongo.uri, json.dumps({"capture": capture})))
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{river}.c", river, json.dumps(MAPPING), json.dumps({"mode": "history"})))
        wait_synced(pg, river)
        coll.update_one({"_id": "a"}, {"$unset": {"nick": ""}})
        coll.update_one({"_id": "b"}, {"$set": {"qty": None}})
        coll.insert_one({"_id": "i_noname", "qty": 1, "nick": "k"})
        wait_synced(pg, river)
        bad = pg.query(f'SELECT id, _operation FROM "{river}" WHERE _operation <> %s AND '
                       f'(name IS NULL OR qty IS NULL OR nick IS NULL) ORDER BY id', ("delete",))
        assert bad == [], (bad, rejects(pg, river))
        got = sorted((r[0], r[1]) for r in rejects(pg, river))
        assert got == [("a", "update"), ("b", "update"), ("c_nonick", "copy"), ("i_noname", "insert")], \
            rejects(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_not_null_domain_in_child_table(river_pg, mongo, capture):
    pg = river_pg
    setup_types(pg)
    river = f"r27dc_{capture}"
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
               "arrays": {"items": {"path": "items", "table": f"{river}_items", "fk": "parent", "position": "pos",
                                    "columns": {"sku": {"path": "sku", "type": "public.r27_nn"},
                                                "qty": {"path": "qty", "type": "public.r27_chk"}}}}}
    docs = [{"_id": "ok", "items": [{"sku": "a", "qty": 1}]},
            {"_id": "c_bad", "items": [{"sku": "a", "qty": 1}, {"qty": 2}]}]
    with synced_river(pg, mongo, river, mapping, [f"{river}.c"], docs, {"capture": capture}) as coll:
        coll.insert_one({"_id": "i_bad", "items": [{"sku": "x"}]})
        coll.update_one({"_id": "ok"}, {"$push": {"items": {"qty": 3}}})
        wait_synced(pg, river)
        bad = pg.query(f'SELECT parent, pos FROM "{river}_items" WHERE sku IS NULL OR qty IS NULL ORDER BY 1, 2')
        assert bad == [], (bad, rejects(pg, river))
        got = sorted((r[0], r[1]) for r in rejects(pg, river))
        assert got == [("c_bad", "copy"), ("i_bad", "insert"), ("ok", "update")], rejects(pg, river)


def test_verify_repair_with_not_null_domain(river_pg, mongo):
    """A row whose document lost its NOT NULL domain's field while the river was stopped: verify
    must report 'cannot be converted' (or the constraint), repaired = false, and keep the row as it
    was (never write NULL into it)."""
    pg = river_pg
    setup_types(pg)
    river = "r27dv"
    docs = [{"_id": "a", "name": "n", "qty": 1, "nick": "k"}, {"_id": "b", "name": "n", "qty": 1, "nick": "k"}]
    with synced_river(pg, mongo, river, MAPPING, [f"{river}.c"], docs) as coll:
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        import time
        time.sleep(2)
        coll.update_one({"_id": "a"}, {"$unset": {"nick": ""}})
        coll.update_one({"_id": "b"}, {"$set": {"qty": None}})
        out = pg.query("SELECT document_id, problem, repaired FROM mongo_river.verify(%s, repair => true) "
                       "ORDER BY 1", (river,))
        print(out)
        rows = pg.query(f'SELECT id, name, qty, nick FROM "{river}" ORDER BY id')
        assert rows == [("a", "n", 1, "k"), ("b", "n", 1, "k")], (rows, out, rejects(pg, river))
        assert [(r[0], r[2]) for r in out] == [("a", False), ("b", False)], out
        assert sorted((r[0], r[1]) for r in rejects(pg, river)) == [("a", "verify"), ("b", "verify")], \
            rejects(pg, river)
