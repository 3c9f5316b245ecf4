"""Review 27: domains over arrays in more shapes: a domain over a domain over an array (the outer
one NOT NULL, the inner one with a CHECK on the array), an array of a domain over varchar(2), a
NOT NULL domain over an array in a child table, and in history mode. PostgreSQL is the oracle: the
INSERT of the same literal into a column of the type."""

import json

import pytest

import review_helpers
from review_helpers import create_types
from river import create_river, wait_synced


def setup_types(pg):
    create_types(pg, """
        CREATE DOMAIN r27_small_arr AS integer[] CHECK (cardinality(VALUE) < 3);
        CREATE DOMAIN r27_small_arr_nn AS r27_small_arr NOT NULL;
        CREATE DOMAIN r27_code2 AS varchar(2) CHECK (VALUE <> 'zz');
        CREATE DOMAIN r27_arr_nn AS text[] NOT NULL;""")


def rejects(pg, river):
    return sorted(review_helpers.rejects(pg, river, "document_id, operation"))


@pytest.mark.parametrize("mode", ["upsert", "history"])
def test_nested_and_element_domains(river_pg, mongo, mode):
    pg = river_pg
    setup_types(pg)
    river = f"r27dnest_{mode}"
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "xs": {"path": "xs", "type": "public.r27_small_arr_nn"},
                                       "codes": {"path": "codes", "type": "public.r27_code2[]"}}}
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    good = {"xs": [1, 2], "codes": ["ab"]}
    coll.insert_many([{"_id": "ok", **good}, {"_id": "ok2", **good}, {"_id": "ok3", **good}, {"_id": "ok4", **good},
                      {"_id": "c_long", "xs": [1, 2, 3], "codes": ["a"]},
                      {"_id": "c_noxs", "codes": ["a"]},
                      {"_id": "c_code", "xs": [1], "codes": ["abc"]},
                      {"_id": "c_zz", "xs": [1], "codes": ["zz"]}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{river}.c", river, json.dumps(mapping), json.dumps({"mode": mode})))
        wait_synced(pg, river)
        coll.insert_one({"_id": "i_long", "xs": [1, 2, 3, 4], "codes": []})
        coll.insert_one({"_id": "i_zz", "xs": [], "codes": ["ok", "zz"]})
        coll.update_one({"_id": "ok"}, {"$unset": {"xs": ""}})
        coll.update_one({"_id": "ok2"}, {"$push": {"xs": 9}})
        coll.update_one({"_id": "ok3"}, {"$set": {"codes": ["zz"]}})
        coll.update_one({"_id": "ok4"}, {"$set": {"xs": None}})
        wait_synced(pg, river)
        bad = pg.query(f'SELECT id, xs::text, codes::text FROM "{river}" WHERE xs IS NULL OR cardinality(xs) >= 3 '
                       f"OR 'zz' = ANY(codes::text[]) OR EXISTS (SELECT 1 FROM unnest(codes) c WHERE length(c) > 2)")
        assert bad == [], (bad, rejects(pg, river))
        assert rejects(pg, river) == sorted([("c_long", "copy"), ("c_noxs", "copy"), ("c_code", "copy"), ("c_zz", "copy"),
                                             ("i_long", "insert"), ("i_zz", "insert"), ("ok", "update"),
                                             ("ok2", "update"), ("ok3", "update"), ("ok4", "update")])
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_not_null_array_domain_in_child_table(river_pg, mongo):
    pg = river_pg
    setup_types(pg)
    river = "r27dnchild"
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
               "arrays": {"items": {"path": "items", "table": f"{river}_items", "fk": "parent", "position": "pos",
                                    "columns": {"tags": {"path": "tags", "type": "public.r27_arr_nn"}}}}}
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": "ok", "items": [{"tags": ["a"]}]}, {"_id": "c_bad", "items": [{"tags": ["a"]}, {}]}])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(mapping)))
        wait_synced(pg, river)
        coll.insert_one({"_id": "i_bad", "items": [{"tags": None}]})
        coll.update_one({"_id": "ok"}, {"$push": {"items": {"x": 1}}})
        wait_synced(pg, river)
        bad = pg.query(f'SELECT parent, pos FROM "{river}_items" WHERE tags IS NULL')
        assert bad == [], (bad, rejects(pg, river))
        assert rejects(pg, river) == [("c_bad", "copy"), ("i_bad", "insert"), ("ok", "update")]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
