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
SELECT mongo_river.drop_river('imp', true);
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
