-- declare: create_river, alter_river, drop_river, map_collection, unmap_collection: each function
-- and each error, with SQLSTATE and message; the catalog is unchanged after every error.
SET client_min_messages = warning;

-- catalog_state summarises the catalog so that tests can show it did not change after an error.
CREATE FUNCTION regress.catalog_state() RETURNS text LANGUAGE sql AS $$
    SELECT format('rivers=%s maps=%s tables=%s rejects=%s',
        (SELECT count(*) FROM mongo_river.river), (SELECT count(*) FROM mongo_river.collection_map),
        (SELECT count(*) FROM mongo_river.mapped_table), (SELECT count(*) FROM mongo_river.rejects))
$$;

-- create_river
SELECT mongo_river.create_river('shop', 'mongodb://alice:s3cret@127.0.0.1:27017/?replicaSet=rs0',
                                '{"batch_size": 500, "on_error": "stop"}');
SELECT river, owner, uri, options, enabled FROM mongo_river.rivers;
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('shop', 'mongodb://h/')$$);
SELECT code, message, detail, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://bob:hunter2@')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.create_river('bad', 'http://example.com/')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river(NULL, 'mongodb://h/')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.create_river('bad', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.create_river('', 'mongodb://h/')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"batchsize": 5}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"capture": "tail"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"batch_size": 0}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"batch_ms": 1.5}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"dry_run": "yes"}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '[1]')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"password_file": "/nonexistent/pw"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.create_river('bad', 'mongodb://h/', '{"password_file": "relative"}')$$);
SELECT regress.catalog_state();

-- alter_river merges options (null resets a key) and checks the URI; the position is kept.
UPDATE mongo_river.progress SET position = '{"resumeAfter": {"_data": "82"}}' WHERE river = 'shop';
SELECT mongo_river.alter_river('shop', options => '{"batch_size": 100, "on_error": null, "dry_run": true}');
SELECT mongo_river.alter_river('shop', uri => 'mongodb://alice:n3w@127.0.0.2:27017/?replicaSet=rs0');
SELECT uri, options FROM mongo_river.rivers;
SELECT position FROM mongo_river.progress;
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.alter_river('nope')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.alter_river('shop', 'mongodb://')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.alter_river('shop', options => '{"capture": 1}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.alter_river(NULL)$$);
SELECT uri, options FROM mongo_river.rivers;

-- map_collection with an explicit mapping: typed table, child table with a foreign key, document column.
SELECT mongo_river.map_collection('shop', 'shop.orders', 'public.orders', $$
{"pk": "id",
 "columns": {"id": {"path": "_id", "type": "text"},
             "customer": {"path": "customer.name", "type": "text"},
             "total": {"path": "total", "type": "numeric(12,2)"},
             "placed": {"path": "placed_at", "type": "timestamptz"},
             "odd": {"path": ["key.with.dots", "x"], "type": "int"}},
 "arrays": {"items": {"path": "items", "table": "order_items", "fk": "order_id", "position": "pos",
                      "columns": {"sku": {"path": "sku", "type": "text"}, "qty": {"path": "qty", "type": "integer"}}}},
 "document": "doc"}$$);
\d orders
\d order_items
SELECT source, source_db, source_collection, target, options FROM mongo_river.collection_map;
SELECT source, relation, kind, array_path, created FROM mongo_river.mapped_table ORDER BY relation::text;
SELECT column_name, type, path, is_pk FROM mongo_river.columns ORDER BY column_name;

-- The default target name follows the name rules; strange names are just names.
SELECT mongo_river.map_collection('shop', 'shop.Order Events.2024', NULL,
    '{"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}}');
SELECT mongo_river.map_collection('shop', 'shop.x"; DROP TABLE orders; --', NULL,
    '{"pk": "x\"; DROP TABLE orders; --", "columns": {"x\"; DROP TABLE orders; --": {"path": "_id", "type": "text"}}}');
SELECT relation FROM mongo_river.mapped_table ORDER BY relation::text;
SELECT count(*) AS orders_still_there FROM orders;

-- Mapping onto an existing compatible table; its owner's privileges are checked.
CREATE TABLE existing (id text PRIMARY KEY, n bigint, extra text);
SELECT mongo_river.map_collection('shop', 'shop.existing', 'existing',
    '{"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int8"}}}');
SELECT relation, created FROM mongo_river.mapped_table WHERE relation = 'existing'::regclass;

-- map_collection errors: each leaves the catalog as it was.
SELECT regress.catalog_state();
CREATE TABLE wrong_types (id text PRIMARY KEY, n text);
CREATE TABLE no_key (id text, n bigint);
CREATE SCHEMA IF NOT EXISTS other;
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('nope', 'a.b', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'nodot', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'admin.users', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.system.views', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.orders', 'orders2', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"no_such_type"}}}')$$);
SELECT code, message, detail, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"code","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"nope","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}},"arrays":{"a":{"path":"a","table":"t1_a","columns":{}}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', 'missing_schema.t1', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', 'a.b.c', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', 'wrong_types', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"},"n":{"path":"n","type":"bigint"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', 'wrong_types', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"},"m":{"path":"m","type":"bigint"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', 'no_key', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', 'not_there', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}', '{"create_table": false}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}', '{"mode": "append"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}', '{"copy": "no"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}', '{"colour": 1}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_collection('shop', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_collection(NULL, 'a.b')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t1', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}', NULL)$$);
-- A child table that already exists with the wrong shape: the parent table created before the
-- check is rolled back with everything else.
CREATE TABLE t2_children (parent text, x int);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_collection('shop', 'shop.t2', NULL, '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}},"arrays":{"c":{"path":"c","table":"t2_children","fk":"t2_id","columns":{"x":{"path":"x","type":"int"}}}}}')$$);
SELECT to_regclass('t2') AS t2_rolled_back;
SELECT regress.catalog_state();

-- unmap_collection keeps the table and its rows.
INSERT INTO orders (id) VALUES ('o1');
SELECT mongo_river.unmap_collection('shop', 'shop.orders');
SELECT count(*) AS orders_rows_kept FROM orders;
SELECT code, message FROM regress.try($$SELECT mongo_river.unmap_collection('shop', 'shop.orders')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.unmap_collection('shop', NULL)$$);

-- Privileges: a plain role can neither read URIs nor manage rivers; an admin manages only the
-- rivers it owns (or whose owner's privileges it has).
CREATE ROLE regress_plain;
CREATE ROLE regress_admin LOGIN IN ROLE mongo_river_admin;  -- an owner must be able to log in
CREATE ROLE regress_admin2 LOGIN IN ROLE mongo_river_admin;
GRANT CREATE ON SCHEMA public TO regress_admin;
SET ROLE regress_plain;
SELECT code, message, detail, hint FROM regress.try($$SELECT mongo_river.create_river('p', 'mongodb://h/')$$);
SELECT code, message FROM regress.try($$SELECT uri FROM mongo_river.river$$);
SELECT code, message FROM regress.try($$SELECT uri FROM mongo_river.rivers$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.drop_river('shop')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river_internal._check_uri('mongodb://h/')$$);
RESET ROLE;
SET ROLE regress_admin;
SELECT mongo_river.create_river('admins', 'mongodb://h/?replicaSet=rs0');
SELECT mongo_river.map_collection('admins', 'a.things', 'things', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}');
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_collection('admins', 'a.orders', 'orders', '{"pk":"id","columns":{"id":{"path":"_id","type":"text"}}}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.alter_river('shop', options => '{"batch_size": 1}')$$);
RESET ROLE;
SELECT tableowner FROM pg_tables WHERE tablename = 'things';
SET ROLE regress_admin2;
SELECT code, message, detail FROM regress.try($$SELECT mongo_river.drop_river('admins')$$);
RESET ROLE;

-- drop_river: drops only the tables it created, when asked.
SELECT mongo_river.drop_river('admins', drop_tables => true);
SELECT to_regclass('things') AS things_dropped;
SELECT mongo_river.drop_river('shop', true);
SELECT to_regclass('order_events_2024') AS created_dropped, to_regclass('existing') AS existing_kept,
       to_regclass('orders') AS unmapped_orders_kept, to_regclass('order_items') AS unmapped_children_kept;
SELECT regress.catalog_state();
SELECT code, message FROM regress.try($$SELECT mongo_river.drop_river('shop')$$);
SELECT mongo_river.create_river('nulls', 'mongodb://h/');
SELECT code, message FROM regress.try($$SELECT mongo_river.drop_river('nulls', NULL)$$);
SELECT mongo_river.drop_river('nulls');
DROP TABLE orders, order_items, existing, wrong_types, no_key, t2_children;
DROP OWNED BY regress_admin, regress_admin2, regress_plain;
DROP ROLE regress_plain, regress_admin, regress_admin2;
