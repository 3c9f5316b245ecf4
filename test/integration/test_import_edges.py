"""import_mappings at the edges (issue 16.8): mongo-connector-postgresql's test scenario "nested list
of documents" (features/envs/replicate_list_of_documents_nested/mappings.json of that tool) imports
unchanged into a schema that does not exist yet, and the river fills all three levels."""

import json

from river import wait_synced

NESTED = {
    "db_test_nested_array": {
        "col_nested": {"pk": "_id", "_id": {"type": "INT"},
                       "a": {"type": "_ARRAY", "dest": "col_array_lvl1", "fk": "id_nested"}},
        "col_array_lvl1": {"pk": "_id", "id_nested": {"type": "INT"},
                           "b": {"type": "_ARRAY", "dest": "col_array_lvl2", "fk": "id_lvl1"}},
        "col_array_lvl2": {"pk": "_id", "id_lvl1": {"type": "SERIAL"}, "f": {"type": "TEXT"}},
    }
}


def test_nested_list_of_documents_imports_and_replicates(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("db_test_nested_array")
    client.db_test_nested_array.col_nested.insert_one(
        {"_id": 1, "a": [{"b": [{"f": f"x{i}"} for i in range(5)]}, {"b": [{"f": "y"}]}, {"b": []}]})
    pg.query("SELECT mongo_river.create_river('nested', %s)", (mongo.uri,))
    tables = pg.query("SELECT t::text FROM mongo_river.import_mappings('nested', %s, '{\"schema\": \"nested_mirror\"}') t",
                      (json.dumps(NESTED),))
    assert tables == [("nested_mirror.col_nested",), ("nested_mirror.col_array_lvl1",),
                      ("nested_mirror.col_array_lvl2",)]
    wait_synced(pg, "nested")
    # The tool's own checks of this scenario, with mongo_river's ids: the middle table's rows are
    # keyed "<document key>.<index>" (text) where the tool counted a SERIAL, and the inner fk holds them.
    assert pg.scalar("SELECT count(*) FROM nested_mirror.col_nested") == 1
    assert pg.scalar("SELECT count(*) FROM nested_mirror.col_array_lvl1 WHERE id_nested = 1") == 3
    assert pg.scalar("SELECT count(*) FROM nested_mirror.col_array_lvl2 WHERE id_lvl1 = '1.0'") == 5
    assert pg.query("SELECT _id, id_lvl1, f FROM nested_mirror.col_array_lvl2 WHERE id_lvl1 = '1.1'") == [
        ("1.1.0", "1.1", "y")]
    assert pg.query("SELECT * FROM mongo_river.verify('nested')") == []
    pg.query("SELECT mongo_river.drop_river('nested', true)")
    pg.query("DROP SCHEMA nested_mirror")
