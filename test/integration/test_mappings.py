"""Mappings from outside: mongo-connector-postgresql's mappings.json (the two reference files of
../shared/examples), and mappings inferred by sampling a collection through the MongoDB source."""

import json
import os

import psycopg2
import pytest

from river import wait_synced

# The reference files live in the shared folder beside the checkout (MONGO_RIVER_EXAMPLES overrides).
EXAMPLES = os.environ.get("MONGO_RIVER_EXAMPLES") or os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                                  "shared", "examples")


def example(name):
    path = os.path.join(EXAMPLES, name)
    if not os.path.exists(path):
        pytest.skip(f"reference file {path} is not beside this checkout")
    with open(path) as f:
        return f.read()


def columns(pg, table):
    return pg.query("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))


def test_import_posts_comments_unchanged(river_pg, mongo):
    pg = river_pg
    pg.query("SELECT mongo_river.create_river('imports', %s)", (mongo.uri,))
    tables = pg.query("SELECT t::text FROM mongo_river.import_mappings('imports', %s) t",
                      (example("mcp-pg-mappings-posts-comments.json"),))
    assert tables == [("posts",), ("comments",)]  # every table the import created
    # Each parent change deletes its comments by post_id: an index leads with it.
    assert pg.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'comments' "
                     "AND indexdef LIKE '%(post_id)'") == 1
    assert sorted(c[0] for c in columns(pg, "posts")) == ["description", "id"]
    assert sorted(c[0] for c in columns(pg, "comments")) == ["comment", "id", "post_id", "user"]
    fk = pg.query("SELECT conrelid::regclass::text, confrelid::regclass::text, pg_get_constraintdef(oid) "
                  "FROM pg_constraint WHERE contype = 'f' AND conrelid = 'comments'::regclass")
    assert fk == [("comments", "posts", "FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE")]

    # The river fills them with the document of that tool's README.
    client = mongo.client()
    client.drop_database("my_mongo_database")
    client.my_mongo_database.posts.insert_one({
        "_id": "p1", "name": "Check out the mongo -> postgres connector", "content": "Inspiring blog post",
        "comments": [{"user": "Elon Musk", "comment": "What a revolution !"},
                     {"user": "Kevin P. Ryan", "comment": "Nice !"}]})
    wait_synced(pg, "imports")
    assert pg.query("SELECT id, description FROM posts") == [("p1", "Inspiring blog post")]
    assert pg.query('SELECT post_id, "user", comment FROM comments ORDER BY id') == [
        ("p1", "Elon Musk", "What a revolution !"), ("p1", "Kevin P. Ryan", "Nice !")]
    pg.query("SELECT mongo_river.drop_river('imports', true)")


def test_import_sample_refuses_impossible_indices_whole(river_pg, mongo):
    pg = river_pg
    pg.query("SELECT mongo_river.create_river('imports2', %s)", (mongo.uri,))
    before = pg.query("SELECT count(*) FROM mongo_river.collection_map")
    with pytest.raises(psycopg2.Error) as failure:
        pg.query("SELECT mongo_river.import_mappings('imports2', %s)", (example("mcp-pg-mappings-sample.json"),))
    error = failure.value
    message = error.pgerror
    assert error.pgcode == "22023", message
    assert "category_idx" in message and "LeadMonitoring".lower() in message.lower(), message
    assert pg.query("SELECT count(*) FROM mongo_river.collection_map") == before
    assert pg.scalar("SELECT to_regclass('my_mongo_collection')") is None
    pg.query("SELECT mongo_river.drop_river('imports2')")


def test_inferred_mapping_is_accepted_and_creates_typed_tables(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("inferred")
    client.inferred.orders.insert_many([
        {"_id": i, "customer": {"name": f"c{i}", "address": {"city": "Paris"}}, "total": i * 1.5,
         "count": i, "paid": i % 2 == 0, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
         "labels": ["x", "y"]} for i in range(1, 60)])
    pg.query("SELECT mongo_river.create_river('inferring', %s)", (mongo.uri,))
    mapping = pg.scalar("SELECT mongo_river.infer_mapping('inferring', 'inferred.orders', 50)")
    assert mapping["pk"] == "id"
    assert mapping["columns"]["id"]["type"] == "bigint"
    assert mapping["columns"]["customer_name"]["path"] == "customer.name"
    assert mapping["columns"]["total"]["type"] == "double precision"
    assert mapping["columns"]["paid"]["type"] == "boolean"
    assert mapping["columns"]["labels"]["type"] == "text[]"
    assert "items" in mapping["arrays"]
    target = pg.scalar("SELECT mongo_river.map_collection('inferring', 'inferred.orders', NULL, %s)::text",
                       (json.dumps(mapping),))
    assert target == "orders"
    types = dict(columns(pg, "orders"))
    assert types["id"] == "bigint" and types["paid"] == "boolean" and types["labels"] == "text[]"
    wait_synced(pg, "inferring")
    assert pg.scalar("SELECT count(*) FROM orders") == 59
    child = mapping["arrays"]["items"]["table"]
    assert pg.scalar(f'SELECT count(*) FROM "{child}"') == 118
    # map_collection without a mapping infers one itself.
    client.inferred.other.insert_one({"_id": "o1", "n": 1})
    assert pg.scalar("SELECT mongo_river.map_collection('inferring', 'inferred.other')::text") == "other"
    pg.query("SELECT mongo_river.drop_river('inferring', true)")
