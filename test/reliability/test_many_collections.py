"""Large databases (issue 14.5): map_database of a database with many collections, with
mongo_river.max_collections set to allow it: every collection is copied and then every
collection's next change arrives. Past the cap, status and the log say so.

MANY_COLLECTIONS sets the count (default 300; the issue's long form is 2000: the test prints its
time and the server's memory); MANY_COLLECTIONS_CAPPED="COUNT:CAP" the capped run's (default 60:50).
The memory printed sums the resident size of the server's processes (shared memory counted in
each that touched it: an upper bound)."""

import json
import os
import time

from pgcluster import PgCluster, wait_for
from river import create_river

COUNT = int(os.environ.get("MANY_COLLECTIONS", "300"))
CAPPED_COUNT, CAP = (int(x) for x in os.environ.get("MANY_COLLECTIONS_CAPPED", "60:50").split(":"))


def fill(mongo, db, count):
    client = mongo.client()
    client.drop_database(db)
    for i in range(count):
        client[db][f"c{i:04d}"].insert_one({"_id": "first", "n": i})
    return client


def row_counts(pg, river):
    """row_counts returns {source: rows in its target table} of every mapped collection of river."""
    return dict(pg.query(
        "SELECT m.source, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %%s', m.target),"
        " false, true, '')))[1]::text::int FROM mongo_river.collection_map m WHERE m.river = %s", (river,)))


def server_memory_kb(pg):
    """server_memory_kb sums the resident memory (VmRSS) of the server's processes."""
    total = 0
    for pid in [pg.postmaster_pid()] + [r[0] for r in pg.query("SELECT pid FROM pg_stat_activity")]:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def run(mongo, db, count, cap):
    pg = PgCluster(settings={"mongo_river.max_collections": str(cap)}).init()
    try:
        pg.query("CREATE EXTENSION mongo_river")
        client = fill(mongo, db, count)
        t0 = time.monotonic()
        create_river(pg, db, mongo.uri)
        pg.query("SELECT mongo_river.map_database(%s, %s, %s)", (db, db, json.dumps({"mapping": "document"})))
        mapped = time.monotonic() - t0
        assert pg.scalar("SELECT count(*) FROM mongo_river.collection_map WHERE river = %s", (db,)) == count
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '600 s')", (db,))
        copied = time.monotonic() - t0
        assert set(row_counts(pg, db).values()) == {1}
        wait_for(lambda: pg.query("SELECT DISTINCT phase FROM mongo_river.status WHERE river = %s", (db,))
                 == [("streaming",)], 60, what="every collection streaming")
        t1 = time.monotonic()
        for i in range(count):
            client[db][f"c{i:04d}"].insert_one({"_id": "second", "n": i})
        wait_for(lambda: set(row_counts(pg, db).values()) == {2}, 120, interval=1,
                 what="every collection's second document")
        streamed = time.monotonic() - t1
        memory = server_memory_kb(pg)
        print(f"\n{count} collections (max_collections {cap}): map_database {mapped:.1f} s, "
              f"then copied and in sync at {copied:.1f} s, "
              f"one change per collection applied in {streamed:.1f} s, server RSS {memory / 1024:.0f} MiB")
        return pg
    except BaseException:
        pg.destroy()
        raise


def test_many_collections_every_change_arrives(mongo):
    pg = run(mongo, "many", COUNT, COUNT + 16)
    try:
        assert "max_collections" not in pg.log()
        assert not pg.crashes()
    finally:
        pg.destroy()


def test_past_max_collections_status_and_log_say_so(mongo):
    pg = run(mongo, "capped", CAPPED_COUNT, CAP)
    try:
        assert "mongo_river.max_collections" in pg.log(), "the log does not name the cap"
        notes = pg.query("SELECT DISTINCT last_error FROM mongo_river.status WHERE river = 'capped' "
                         "AND last_error LIKE '%%max_collections%%'")
        assert notes, pg.query("SELECT * FROM mongo_river.status WHERE river = 'capped' LIMIT 3")
        assert not pg.crashes()
    finally:
        pg.destroy()
