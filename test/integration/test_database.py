"""Whole-database rivers: map_database with include/exclude patterns, schema and prefix; collections
created after the river started are mapped, copied and streamed without stopping the rest."""

import json

from pgcluster import wait_for
from river import wait_synced


def tables(pg, schema):
    return sorted(r[0] for r in pg.query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r'", (schema,)))


def rows(pg, table):
    return {r[0]: r[1] for r in pg.query(f"SELECT id, document FROM mirror.{table}")}


def test_database_mirrored_with_patterns_schema_prefix_and_late_collections(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("whole")
    db = client.whole
    db.orders.insert_many([{"_id": i, "total": i * 2.5, "customer": {"name": f"c{i}"}} for i in range(50)])
    db["Weird.Name-1"].insert_many([{"_id": f"w{i}", "v": i} for i in range(5)])
    db.tmp_scratch.insert_one({"_id": 1, "junk": True})
    db.create_collection("empty_yet")
    pg.query("SELECT mongo_river.create_river('whole', %s)", (mongo.uri,))
    pg.query("SELECT mongo_river.map_database('whole', 'whole', %s)",
             (json.dumps({"schema": "mirror", "table_prefix": "m_", "exclude": ["tmp_*"], "mapping": "document"}),))
    assert tables(pg, "mirror") == ["m_empty_yet", "m_orders", "m_weird_name_1"]
    wait_synced(pg, "whole")
    assert len(rows(pg, "m_orders")) == 50
    assert rows(pg, "m_weird_name_1")["w3"]["v"] == 3

    # A collection created after the river started: found by its first change, copied, streamed.
    db.late.insert_many([{"_id": f"l{i}", "n": i} for i in range(20)])
    db.orders.update_one({"_id": 1}, {"$set": {"total": 99}})  # the rest keeps flowing
    wait_for(lambda: "m_late" in tables(pg, "mirror"), 60, 0.2, "the new collection to be mapped")
    db.late.insert_one({"_id": "l_after", "n": 100})
    db.empty_yet.insert_one({"_id": "first", "n": 1})
    db.tmp_later.insert_one({"_id": 1})  # excluded by pattern: never mapped
    wait_for(lambda: pg.scalar("SELECT count(*) FROM mongo_river.status WHERE river = 'whole' "
                               "AND phase <> 'streaming'") == 0, 60, 0.2, "every mapping to stream")
    wait_synced(pg, "whole")
    assert len(rows(pg, "m_late")) == 21
    assert rows(pg, "m_orders")[1]["total"] == 99
    assert rows(pg, "m_empty_yet")["first"]["n"] == 1
    assert tables(pg, "mirror") == ["m_empty_yet", "m_late", "m_orders", "m_weird_name_1"]
    sources = sorted(r[0] for r in pg.query("SELECT source FROM mongo_river.collection_map WHERE river = 'whole'"))
    assert sources == ["whole.Weird.Name-1", "whole.empty_yet", "whole.late", "whole.orders"]

    # A collection taken out with unmap_collection is not mapped again.
    pg.query("SELECT mongo_river.unmap_collection('whole', 'whole.late')")
    db.late.insert_one({"_id": "l_unmapped", "n": 1})
    # The worker sees the insert (new collections are found by their first change) and passes it by.
    wait_synced(pg, "whole")
    assert "whole.late" not in [r[0] for r in pg.query("SELECT source FROM mongo_river.collection_map")]
    pg.query("SELECT mongo_river.drop_river('whole', true)")


def test_inferred_database_mapping_types_columns(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("inferdb")
    client.inferdb.things.insert_many([{"_id": i, "name": f"n{i}", "size": {"w": i, "h": 2 * i}} for i in range(10)])
    pg.query("SELECT mongo_river.create_river('inferdb', %s)", (mongo.uri,))
    pg.query("SELECT mongo_river.map_database('inferdb', 'inferdb', '{\"schema\": \"inferred_schema\"}')")
    wait_synced(pg, "inferdb")
    assert pg.query("SELECT id, name, size_w, size_h FROM inferred_schema.things WHERE id = 3") == [(3, "n3", 3, 6)]
    pg.query("SELECT mongo_river.drop_river('inferdb', true)")
