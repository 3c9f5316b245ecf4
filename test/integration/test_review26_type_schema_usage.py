"""Review 26: ArrayDomainBase, the converter's new question to the catalog, looks each mapping type
it cannot name up *by name* (parseTypeString), as the river's owner, in the worker. Looking a name
up in a schema needs USAGE on that schema; writing a column of that type does not (the writer works
by type oid, as PostgreSQL does: an INSERT into a table whose enum lives in a schema you cannot use
works). A river whose owner lost USAGE on the schema of an enum (or any type the converter does not
know) used to stream; now the worker cannot even build the mapping's writer."""

import json

from pgcluster import wait_for
from river import wait_synced


def test_enum_in_a_schema_without_usage(river_pg, mongo):
    pg = river_pg
    river, source = "r26usage", "r26usage.c"
    pg.query("DO $$ BEGIN CREATE ROLE r26owner LOGIN IN ROLE mongo_river_admin; "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.query("DROP SCHEMA IF EXISTS r26_priv CASCADE; CREATE SCHEMA r26_priv; "
             "CREATE TYPE r26_priv.mood AS ENUM ('sad', 'ok'); GRANT USAGE ON SCHEMA r26_priv TO r26owner; "
             "GRANT CREATE ON SCHEMA public TO r26owner")
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_many([{"_id": "a", "m": "sad"}])
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "m": {"path": "m", "type": "r26_priv.mood"}}}
    try:
        pg.query("SELECT mongo_river.create_river(%s, %s)", (river, mongo.uri), user="r26owner")
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(mapping)),
                 user="r26owner")
        wait_synced(pg, river)
        assert pg.query(f'SELECT id, m::text FROM "{river}"') == [("a", "sad")]
        # The owner can still write the table (the type is used by oid) ...
        pg.query("REVOKE USAGE ON SCHEMA r26_priv FROM r26owner")
        pg.query(f"""INSERT INTO "{river}" SELECT 'by-hand', 'ok'""", user="r26owner")
        pg.query(f"""DELETE FROM "{river}" WHERE id = 'by-hand'""", user="r26owner")
        # ... and so can its river, after a restart of its worker.
        pg.query("SELECT mongo_river.stop(%s)", (river,), user="r26owner")
        pg.query("SELECT mongo_river.start(%s)", (river,), user="r26owner")
        coll.insert_one({"_id": "b", "m": "ok"})
        try:
            wait_for(lambda: pg.query(f'SELECT count(*) FROM "{river}"')[0][0] == 2, 30, 0.1, "b")
        except TimeoutError:
            pass
        status = pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = %s", (river,))
        assert pg.query(f'SELECT id, m::text FROM "{river}" ORDER BY id') == [("a", "sad"), ("b", "ok")], status
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        pg.query("DROP SCHEMA IF EXISTS r26_priv CASCADE; REVOKE CREATE ON SCHEMA public FROM r26owner")
