"""sync_once (CALL mongo_river.sync_once: a procedure that commits each batch itself) meets a row
PostgreSQL refuses (a CHECK constraint) in a batch of the copy and in a batch of changes. The batch
is rolled back and written again a row at a time, the refused document recorded as a reject, as in
a worker: the call must return what it applied, the reject must be in mongo_river.rejects and the
run in sync_runs as caught up. (It failed with 2D000 "invalid transaction termination": the batch's
rollback met a catalog read's SPI connection left open by the error, and the rollback's own error
replaced the reject; nothing after the refused row was applied.)"""

import json

import psycopg2

from pgcluster import wait_for

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                   "n": {"path": "n", "type": "bigint"}}}


def test_sync_once_records_a_row_postgresql_refuses_as_a_reject_and_goes_on(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("so_rej")
    coll = client.so_rej.c
    coll.insert_many([{"_id": f"a{i:03d}", "n": i} for i in range(50)] + [{"_id": "a_bad", "n": -1}])
    pg.query("CREATE TABLE so_rej (id text PRIMARY KEY, n bigint CHECK (n >= 0))")
    try:
        pg.query("SELECT mongo_river.create_river('so_rej', %s, '{\"batch_size\": 10}')", (mongo.uri,))
        pg.query("SELECT mongo_river.stop('so_rej')")
        wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'so_rej'") is None,
                 30, 0.05, "the worker to stop")
        pg.query("SELECT mongo_river.map_collection('so_rej', 'so_rej.c', 'so_rej', %s)", (json.dumps(MAPPING),))
        # the copy: 51 documents, one refused
        pg.query("CALL mongo_river.sync_once('so_rej', '1 min')")
        assert pg.scalar("SELECT count(*) FROM so_rej") == 50
        # changes: inserts and an update, one of each refused
        coll.insert_many([{"_id": f"b{i:03d}", "n": i} for i in range(20)] + [{"_id": "b_bad", "n": -5}])
        coll.update_one({"_id": "a007"}, {"$set": {"n": -7}})
        coll.update_one({"_id": "a008"}, {"$set": {"n": 80}})
        applied = pg.scalar("CALL mongo_river.sync_once('so_rej', '1 min')")
        assert applied >= 21, applied
        assert pg.scalar("SELECT count(*) FROM so_rej WHERE id LIKE 'b%'") == 20
        assert pg.scalar("SELECT n FROM so_rej WHERE id = 'a008'") == 80
        assert pg.scalar("SELECT n FROM so_rej WHERE id = 'a007'") == 7  # the refused update left it
        rejected = {r[0] for r in pg.query("SELECT document_id FROM mongo_river.rejects WHERE river = 'so_rej'")}
        assert {"a_bad", "b_bad", "a007"} <= rejected, rejected
        runs = pg.query("SELECT outcome, error FROM mongo_river.sync_runs WHERE river = 'so_rej' ORDER BY id")
        assert runs == [("caught_up", None), ("caught_up", None)], runs
    finally:
        pg.query("SELECT mongo_river.drop_river('so_rej', true)")
        pg.query("DROP TABLE IF EXISTS so_rej")


def test_sync_once_refuses_to_start_where_it_cannot_commit(river_pg, mongo):
    # Inside BEGIN ... COMMIT, from a function, or under an EXCEPTION clause its first commit (or a
    # batch's rollback) would fail midway (a FATAL, an internal error, a crash before review 30):
    # it refuses at once with 2D000 and the session goes on.
    pg = river_pg
    pg.query("SELECT mongo_river.create_river('so_ctx', %s)", (mongo.uri,))
    pg.query("SELECT mongo_river.stop('so_ctx')")
    conn = pg.connect()
    try:
        with conn.cursor() as cur:  # psycopg2 opens a transaction block
            try:
                cur.execute("CALL mongo_river.sync_once('so_ctx', '5 s')")
                raise AssertionError("sync_once ran inside a transaction block")
            except psycopg2.Error as e:
                assert e.pgcode == "2D000", e.pgerror
                assert "cannot run inside a transaction block" in e.pgerror, e.pgerror
            conn.rollback()
            cur.execute("DO $$ DECLARE a bigint; BEGIN CALL mongo_river.sync_once('so_ctx', '5 s', a); "
                        "RAISE EXCEPTION 'it ran'; "
                        "EXCEPTION WHEN invalid_transaction_termination THEN RAISE NOTICE 'refused'; END $$")
            conn.commit()
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
        pg.query("SELECT mongo_river.drop_river('so_ctx', true)")
