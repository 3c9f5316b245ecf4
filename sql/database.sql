-- database: map_database option validation (the source is not contacted before the options pass).
SET client_min_messages = warning;
SELECT mongo_river.create_river('dbr', 'mongodb://127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=200');
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"includes": ["a*"]}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"include": "a*"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"exclude": [1]}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"exclude": [""]}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"schema": ""}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"table_prefix": 3}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"mapping": "flat"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"copy": "yes"}')$$);
SELECT code, message, hint FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '[]')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_database('dbr', 'admin')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_database('dbr', 'sh.op')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_database('dbr', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_database(NULL, 'shop')$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', NULL)$$);
SELECT code, message FROM regress.try($$SELECT mongo_river.map_database('nope', 'shop')$$);
-- Valid options reach the source, which is unreachable here: a connection error, nothing recorded.
SELECT code FROM regress.try($$SELECT mongo_river.map_database('dbr', 'shop', '{"include": ["a*", "b?"], "exclude": ["tmp_*"], "schema": "mirror", "table_prefix": "m_", "mapping": "document", "copy": false}')$$);
SELECT count(*) AS database_maps FROM mongo_river.database_map;
SELECT to_regnamespace('mirror') AS schema_rolled_back;

-- Glob patterns: * any run, ? one character, everything else literal.
SELECT mongo_river_internal._glob_matches('orders_2024', 'orders_*'), mongo_river_internal._glob_matches('orders', 'orders_*'),
       mongo_river_internal._glob_matches('a.b', 'a?b'), mongo_river_internal._glob_matches('axb', 'a.b'),
       mongo_river_internal._glob_matches('(x)+', '(x)+'), mongo_river_internal._glob_matches('tmp', '*');
SELECT mongo_river.drop_river('dbr');
