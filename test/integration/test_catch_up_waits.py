"""Catch-up without idle waits (issue 18, catch-up figures): a river that has read everything the
source had when its batch began commits that position at once, rather than after a getMore that
waits for changes the source does not have yet.

The tests block every getMore of the river that follows the ones carrying the changes (the peer's
failCommand with blockConnection, as mongod's): a river that sends one before committing its last
changes misses wait_for_sync's deadline."""

import json

import pytest
from pymongo import DeleteOne, UpdateOne

from pgcluster import wait_for
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}
BLOCK_MS = 6000


def block_getmores(client, skip):
    """block_getmores makes every getMore of the river's connections after the first skip ones wait
    BLOCK_MS before it runs."""
    client.admin.command({"configureFailPoint": "failCommand", "mode": {"skip": skip},
                          "data": {"appName": "mongo_river", "failCommands": ["getMore"],
                                   "blockConnection": True, "blockTimeMS": BLOCK_MS}})


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_last_batch_of_a_catch_up_is_committed_without_waiting(river_pg, mongo, capture):
    """25 changes in batches of 10: the river started after them is synced well within BLOCK_MS
    although its next getMore blocks. (The oplog reader used to fill its last batch, 5 changes, by
    reading on: one more getMore, which waited max_await_ms, 500 ms, for nothing (here BLOCK_MS),
    before the batch was committed.)"""
    if not mongo.is_peer:
        pytest.skip("counts on the peer's first batches: the change stream's aggregate returns none, an "
                    "oplog find returns up to 101 entries")
    pg = river_pg
    client = mongo.client()
    db = f"waits_{capture}"
    client.drop_database(db)
    coll = client[db].items
    coll.insert_many([{"_id": f"k{i:03d}", "n": 0} for i in range(50)])
    river = f"waits_{capture}"
    try:
        create_river(pg, river, mongo.uri, {"capture": capture, "batch_size": 10})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.items", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        for i in range(25):
            coll.update_one({"_id": f"k{i:03d}"}, {"$inc": {"n": 1}})
        # The changes come with the first five getMores. The change stream's aggregate returns none;
        # its getMores ask for 1 event, then at most twice the last batch's: 1 + 2 + 4 + 8 + 16 >= 25.
        # The oplog's find asks for 1 entry, its getMores for at most the entries read so far and at
        # most batch_size: 1 + 1 + 2 + 4 + 8 + 10 >= 25.
        block_getmores(client, 5)
        pg.query("SELECT mongo_river.start(%s)", (river,))
        synced = pg.scalar("SELECT mongo_river.wait_for_sync(%s, %s::interval)", (river, f"{BLOCK_MS // 2} ms"))
        state = pg.query("SELECT phase, changes_applied, lag FROM mongo_river.status WHERE river = %s", (river,))
        assert synced, f"the river waited on a getMore before committing its last batch: {state}"
        assert pg.scalar(f'SELECT sum(n) FROM "{river}"') == 25
    finally:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_catch_up_finds_rows_by_index(river_pg, mongo, capture):
    """A catch-up's batched updates (applied from their descriptions) and deletes find their rows by
    the key's index, never by scanning the table: 600 updates and 300 deletes in one batch used to be
    planned (custom plans for the keys at hand) as a sequential scan per statement, 12-20 ms each on
    a 50k-row table against 2-5 ms by index. The worker's table scans are counted in
    pg_stat_user_tables (flushed when it exits)."""
    pg = river_pg
    client = mongo.client()
    db = f"byindex_{capture}"
    client.drop_database(db)
    coll = client[db].items
    coll.insert_many([{"_id": f"k{i:05d}", "n": 0} for i in range(5000)])
    river = f"byindex_{capture}"
    try:
        create_river(pg, river, mongo.uri, {"capture": capture, "batch_size": 5000})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.items", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        pg.query(f'ANALYZE "{river}"')
        scans = pg.scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = %s", (river,))
        coll.bulk_write([UpdateOne({"_id": f"k{i:05d}"}, {"$inc": {"n": 1}}) for i in range(0, 3000, 5)] +
                        [DeleteOne({"_id": f"k{i:05d}"}) for i in range(3000, 4500, 5)])
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        after = pg.scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = %s", (river,))
        assert after == scans, f"the catch-up scanned the table {after - scans} time(s)"
        assert pg.scalar(f'SELECT sum(n) FROM "{river}"') == 600
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 4700
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


def test_running_worker_reports_table_statistics(river_pg, mongo):
    """The rows a running river writes show in pg_stat_user_tables within seconds (autovacuum and
    ANALYZE go by them). The worker used to report them only when it exited, so a river that ran
    for days left its tables unvacuumed and their planner statistics at the size of the copy."""
    pg = river_pg
    client = mongo.client()
    db = "stats_seen"
    client.drop_database(db)
    coll = client[db].items
    coll.insert_many([{"_id": f"k{i:03d}", "n": 0} for i in range(100)])
    river = "stats_seen"
    try:
        create_river(pg, river, mongo.uri)
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{db}.items", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        coll.update_many({}, {"$inc": {"n": 1}})
        coll.delete_many({"_id": {"$lt": "k010"}})
        wait_synced(pg, river)
        wait_for(lambda: pg.scalar("SELECT n_tup_upd >= 90 AND n_tup_del >= 10 FROM pg_stat_user_tables "
                                   "WHERE relname = %s", (river,)), 10, 0.1,
                 "the running worker's table statistics")
        assert pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                         ("mongo_river " + river,)) == 1, "the worker exited"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
