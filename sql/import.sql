-- import: import_mappings (mongo-connector-postgresql mappings.json) and infer_mapping argument
-- checks: every refusal names what is wrong, and nothing is half-imported.
SET client_min_messages = warning;
SELECT mongo_river.create_river('imp', 'mongodb://127.0.0.1:1/?replicaSet=rs0');

-- A file like the tool's README example imports whole: parent, child with its foreign key, index.
SELECT t::text FROM mongo_river.import_mappings('imp', '{
  "blog": {
    "posts": {"pk": "id", "indices": ["UNIQUE INDEX posts_title_idx ON posts(title)"],
              "_id": {"dest": "id", "type": "TEXT"}, "title": {"dest": "title", "type": "TEXT"},
              "meta.views": {"dest": "views", "type": "INT"},
              "comments": {"dest": "comments", "type": "_ARRAY", "fk": "post_id"}},
    "comments": {"pk": "id", "post_id": {"dest": "post_id", "type": "TEXT"},
                 "user": {"dest": "user", "type": "TEXT"}}}}') t;
SELECT source, target, mapping FROM mongo_river.collection_map WHERE river = 'imp';
SELECT indexrelid::regclass AS index, indisunique FROM pg_index WHERE indrelid = 'posts'::regclass ORDER BY 1;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'comments'::regclass AND contype = 'f';
-- The child table's rows are found by their parent's key: an index leads with post_id.
SELECT indexdef FROM pg_indexes WHERE tablename = 'comments' ORDER BY indexname;
SELECT mongo_river.drop_river('imp', true);
SELECT mongo_river.create_river('imp', 'mongodb://127.0.0.1:1/?replicaSet=rs0');

-- The schema option creates a missing schema, owned by the river's owner; every table created is
-- returned, child tables too. mongo-connector-postgresql's "nested list of documents" file imports
-- unchanged: the inner fk, declared SERIAL after the tool's SERIAL key of the middle table, holds
-- the middle table's generated text id.
SELECT t::text FROM mongo_river.import_mappings('imp', '{
    "db_test_nested_array": {
        "col_nested": {"pk": "_id", "_id": {"type": "INT"},
                       "a": {"type": "_ARRAY", "dest": "col_array_lvl1", "fk": "id_nested"}},
        "col_array_lvl1": {"pk": "_id", "id_nested": {"type": "INT"},
                           "b": {"type": "_ARRAY", "dest": "col_array_lvl2", "fk": "id_lvl1"}},
        "col_array_lvl2": {"pk": "_id", "id_lvl1": {"type": "SERIAL"}, "f": {"type": "TEXT"}}}}',
    '{"schema": "mirror"}') t;
SELECT nspowner = (SELECT owner FROM mongo_river.river WHERE river = 'imp') AS owned_by_river_owner FROM pg_namespace WHERE nspname = 'mirror';
SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'mirror'
ORDER BY table_name, ordinal_position;
SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'mirror' ORDER BY tablename, indexname;
SELECT mongo_river.drop_river('imp', true);
DROP SCHEMA mirror;
SELECT mongo_river.create_river('imp', 'mongodb://127.0.0.1:1/?replicaSet=rs0');

-- Mapping onto an existing child table without an index on its fk column says so, with the
-- statement to run.
CREATE TABLE posts (id text PRIMARY KEY, title text);
CREATE TABLE comments (id text PRIMARY KEY, post_id text NOT NULL REFERENCES posts ON DELETE CASCADE, "user" text);
SET client_min_messages = notice;
SELECT t::text FROM mongo_river.import_mappings('imp', '{"blog": {
    "posts": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "title": {"type": "TEXT"},
              "comments": {"type": "_ARRAY", "fk": "post_id"}},
    "comments": {"pk": "id", "post_id": {"type": "TEXT"}, "user": {"type": "TEXT"}}}}',
    '{"create_table": false}') t;
SET client_min_messages = warning;
SELECT mongo_river.drop_river('imp');
DROP TABLE comments, posts;
SELECT mongo_river.create_river('imp', 'mongodb://127.0.0.1:1/?replicaSet=rs0');

-- Refusals; the catalog and the schema stay as they were after each.
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "indices": ["INDEX i ON other_table(id)"]}}}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "indices": ["INDEX i ON c(nope)"]}}}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "indices": ["INDEX i ON c(id); DROP TABLE x"]}}}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "x": {"dest": "x", "type": "TEXT", "transform": "lambda v: v"}}}}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{"db": {"c": {"pk": "id", "a": {"dest": "a", "type": "_ARRAY"}}}}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '[1, 2]')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{"db": {"ok": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}}, "bad": {"pk": "id", "_id": {"dest": "id", "type": "NO_SUCH_TYPE"}}}}')$$);
SELECT to_regclass('ok') AS not_half_imported;
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('imp', '{}', '{"schema": 5}')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.import_mappings('nope', '{}')$$);
SELECT count(*) AS mappings FROM mongo_river.collection_map WHERE river = 'imp';

-- infer_mapping checks its arguments before it contacts the source.
SELECT code, message FROM regress.try($$SELECT mongo_river.infer_mapping('imp', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.infer_mapping('imp', 'db.c', 0)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.infer_mapping('imp', 'nodot')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.infer_mapping('nope', 'db.c')$$);
-- An unreachable source is a connection error (08xxx) naming the server, never the password.
SELECT mongo_river.alter_river('imp', 'mongodb://u:secretpw@127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=200&connectTimeoutMS=200');
SELECT code, message, (message || coalesce(detail, '')) ~ 'secretpw' AS shows_password,
       (message || coalesce(detail, '')) ~ '127.0.0.1:1' AS names_server
FROM regress.try($$SELECT mongo_river.infer_mapping('imp', 'db.c')$$);

-- wait_for_sync refuses NULLs and unknown rivers.
SELECT code, message FROM regress.try($$SELECT mongo_river.wait_for_sync(NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.wait_for_sync('nope')$$);
SELECT mongo_river.drop_river('imp');

-- Updating from 0.2.0 adds the missing fk index to child tables mongo_river created, and names the
-- statement for those it did not create.
DROP EXTENSION mongo_river;
CREATE EXTENSION mongo_river VERSION '0.2.0';
SELECT mongo_river.create_river('old', 'mongodb://127.0.0.1:1/?replicaSet=rs0');
SELECT t::text FROM mongo_river.import_mappings('old', '{"blog": {
    "posts": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
              "comments": {"type": "_ARRAY", "fk": "post_id"}},
    "comments": {"pk": "id", "post_id": {"type": "TEXT"}, "user": {"type": "TEXT"}}}}') t;
CREATE TABLE own_posts (id text PRIMARY KEY);
CREATE TABLE own_comments (id text PRIMARY KEY, post_id text NOT NULL, "user" text);
SELECT mongo_river.map_collection('old', 'blog.own', 'own_posts', '{"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
    "arrays": {"comments": {"path": "comments", "table": "own_comments", "fk": "post_id", "id": "id", "columns": {"user": {"path": "user", "type": "text"}}}}}',
    '{"create_table": false}');
SELECT tablename, indexdef FROM pg_indexes WHERE tablename IN ('comments', 'own_comments') ORDER BY 1, 2;
SET client_min_messages = notice;
ALTER EXTENSION mongo_river UPDATE;
SET client_min_messages = warning;
SELECT tablename, indexdef FROM pg_indexes WHERE tablename IN ('comments', 'own_comments') ORDER BY 1, 2;
SELECT count(*) AS index_in_extension FROM pg_depend
WHERE classid = 'pg_class'::regclass AND objid = 'comments_post_id_idx'::regclass AND deptype = 'e';
SELECT mongo_river.drop_river('old', true);
DROP TABLE own_comments, own_posts;
DROP EXTENSION mongo_river;
CREATE EXTENSION mongo_river;
