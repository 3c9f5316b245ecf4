"""verify at the edges (issue 16): one document that cannot be converted never fails the run,
mappings still copying are not reported as missing rows, and doubles are compared by value."""

import json

from river import create_river, wait_synced


def findings(pg, sql, params=None):
    return sorted((r[0], r[1], r[2], r[3]) for r in pg.query(sql, params))


def test_verify_repair_survives_a_document_it_cannot_convert(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("edge_verify")
    coll = client.edge_verify.orders
    coll.insert_many([{"_id": "a", "total": 1.5}, {"_id": "big", "total": 1e20}, {"_id": "c", "total": 2},
                      {"_id": "d", "total": 3}])
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "total": {"path": "total", "type": "numeric(12,2)"}}}
    create_river(pg, "edge_verify", mongo.uri)
    pg.query("SELECT mongo_river.map_collection('edge_verify', 'edge_verify.orders', 'edge_orders', %s)",
             (json.dumps(mapping),))
    wait_synced(pg, "edge_verify")
    assert pg.query("SELECT id, total::text FROM edge_orders ORDER BY id") == [("a", "1.50"), ("c", "2.00"),
                                                                               ("d", "3.00")]
    pg.query("UPDATE edge_orders SET total = 99 WHERE id = 'a'")
    pg.query("DELETE FROM edge_orders WHERE id = 'c'")

    found = findings(pg, "SELECT * FROM mongo_river.verify('edge_verify')")
    problems = {f[1]: f[2] for f in found}
    assert problems.get("a") == "different", found
    assert problems.get("c") == "missing", found
    # Not "missing": the document has no row because its value does not fit the column.
    assert problems.get("big", "").startswith("cannot be converted: "), found
    assert '"total"' in problems["big"] and "numeric field overflow" in problems["big"], found
    assert "d" not in problems, found

    pg.query("DELETE FROM mongo_river.rejects WHERE river = 'edge_verify'")
    repaired = findings(pg, "SELECT * FROM mongo_river.verify('edge_verify', 'edge_verify.orders', repair => true)")
    assert [(f[1], f[3]) for f in repaired] == [("a", True), ("big", False), ("c", True)], repaired
    assert "numeric field overflow" in repaired[1][2], repaired
    assert pg.query("SELECT id, total::text FROM edge_orders ORDER BY id") == [("a", "1.50"), ("c", "2.00"),
                                                                               ("d", "3.00")]
    rejects = pg.query("SELECT document_id, operation, error FROM mongo_river.rejects WHERE river = 'edge_verify'")
    assert len(rejects) == 1 and rejects[0][0] == "big" and rejects[0][1] == "verify", rejects
    assert '"total"' in rejects[0][2], rejects
    # A nightly repair run does not pile up rejects of the same document.
    pg.query("SELECT * FROM mongo_river.verify('edge_verify', repair => true)")
    assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'edge_verify'") == 1
    pg.query("SELECT mongo_river.drop_river('edge_verify', true)")


def test_verify_says_a_mapping_is_still_copying(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("edge_copying")
    client.edge_copying.items.insert_many([{"_id": i, "v": i} for i in range(20)])
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "bigint"}, "v": {"path": "v", "type": "int"}}}
    create_river(pg, "edge_copying", mongo.uri)
    pg.query("SELECT mongo_river.stop('edge_copying')")
    pg.query("SELECT mongo_river.map_collection('edge_copying', 'edge_copying.items', 'edge_items', %s)",
             (json.dumps(mapping),))
    assert pg.scalar("SELECT phase FROM mongo_river.mapping_state WHERE river = 'edge_copying'") == "pending"
    found = pg.query("SELECT * FROM mongo_river.verify('edge_copying')")
    assert len(found) == 1, found
    source, document_id, problem, repaired = found[0]
    assert (source, document_id, repaired) == ("edge_copying.items", None, False), found
    assert problem.startswith("not verified: the collection is still being copied (phase pending"), found
    assert pg.query("SELECT * FROM mongo_river.verify('edge_copying', repair => true)") == found
    assert pg.scalar("SELECT count(*) FROM edge_items") == 0
    pg.query("SELECT mongo_river.start('edge_copying')")
    wait_synced(pg, "edge_copying")
    assert pg.query("SELECT * FROM mongo_river.verify('edge_copying')") == []
    pg.query("SELECT mongo_river.drop_river('edge_copying', true)")


def test_verify_compares_doubles_by_value(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("edge_doubles")
    coll = client.edge_doubles.points
    coll.insert_one({"_id": "p", "x": 0.1, "y": 1e-7})
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "x": {"path": "x", "type": "jsonb"}},
               "document": "doc"}
    create_river(pg, "edge_doubles", mongo.uri)
    pg.query("SELECT mongo_river.map_collection('edge_doubles', 'edge_doubles.points', 'edge_points', %s)",
             (json.dumps(mapping),))
    wait_synced(pg, "edge_doubles")
    assert pg.query("SELECT * FROM mongo_river.verify('edge_doubles')") == []
    # The same doubles in both text forms: river 0.2.0's %.20g, and the shortest round-trip form.
    for x, doc in (("0.10000000000000000555",
                    '{"_id": "p", "x": 0.10000000000000000555, "y": 0.000000099999999999999995475}'),
                   ("0.1", '{"_id": "p", "x": 0.1, "y": 0.0000001}')):
        pg.query("UPDATE edge_points SET x = %s::jsonb, doc = %s::jsonb", (x, doc))
        assert pg.query("SELECT * FROM mongo_river.verify('edge_doubles')") == [], x
    # A different value is still different.
    pg.query("UPDATE edge_points SET x = '0.1000000000000001'::jsonb")
    assert [f[2] for f in pg.query("SELECT * FROM mongo_river.verify('edge_doubles')")] == ["different"]
    pg.query("SELECT mongo_river.drop_river('edge_doubles', true)")
