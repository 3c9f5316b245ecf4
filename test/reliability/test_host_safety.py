"""Host safety of river control (issues 14.2, 14.6, 14.7, 16.5, 16.6): no SQL call crashes a
backend, drop_river and DROP EXTENSION never drop what they must not, stop() returns once the worker
has exited, start() and alter_river() wake the worker and the launcher at once.

Every test here also relies on the `pg` fixture: a "terminated by signal" line in the server log
fails the module. Tests that could crash also compare the postmaster's start time."""

import json
import re
import threading
import time

import psycopg2
import pytest

from pgcluster import PgCluster, wait_for
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}


def postmaster_start(pg):
    return pg.scalar("SELECT pg_postmaster_start_time()")


def assert_no_restart(pg, started):
    assert postmaster_start(pg) == started, "the postmaster restarted (crash recovery)"
    bad = [line for line in pg.log().splitlines()
           if "terminated by signal" in line or re.search(r"server process .* was terminated", line)]
    assert not bad, "\n".join(bad)


def worker_pid(pg, river):
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", (f"mongo_river {river}",))


def map_small(pg, river, source, table):
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, table, json.dumps(MAPPING)))


def test_drop_river_during_wait_for_sync_does_not_crash(river_pg, mongo):
    """14.2: drop_river(R) while another session waits in wait_for_sync(R)."""
    pg = river_pg
    started = postmaster_start(pg)
    client = mongo.client()
    client.drop_database("hs_wait")
    for round_ in range(3):
        river = f"hs_wait{round_}"
        client.hs_wait.c.insert_one({"_id": f"a{round_}", "n": 1})
        create_river(pg, river, mongo.uri)
        map_small(pg, river, "hs_wait.c", f"hs_wait_{round_}")
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        wait_for(lambda: worker_pid(pg, river) is None, 10, what="the worker to exit")
        client.hs_wait.c.insert_one({"_id": f"b{round_}", "n": 2})  # never arrives: wait_for_sync waits
        outcome = {}

        def wait():
            try:
                outcome["result"] = pg.scalar("SELECT mongo_river.wait_for_sync(%s, '20 s')", (river,))
            except psycopg2.Error as e:
                outcome["error"] = (e.pgcode, e.pgerror)
        waiter = threading.Thread(target=wait)
        waiter.start()
        wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                   "'SELECT mongo_river.wait_for_sync%%' AND state = 'active'"), 10,
                 what="wait_for_sync to run")
        time.sleep(0.3)  # let it poll at least once
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        waiter.join(30)
        assert not waiter.is_alive()
        assert "error" in outcome, outcome
        code, message = outcome["error"]
        assert code == "42704" and "dropped" in message, outcome
    assert_no_restart(pg, started)


def test_drop_river_skips_tables_dropped_by_hand(river_pg):
    """14.6: a table dropped by hand is skipped (no `DROP TABLE 41177`)."""
    pg = river_pg
    create_river(pg, "hs_hand", "mongodb://127.0.0.1:1/")
    map_small(pg, "hs_hand", "hs.a", "hs_hand_a")
    map_small(pg, "hs_hand", "hs.b", "hs_hand_b")
    pg.query("DROP TABLE hs_hand_a")
    pg.query("SELECT mongo_river.drop_river('hs_hand', true)")
    assert pg.scalar("SELECT to_regclass('hs_hand_b')") is None
    assert pg.scalar("SELECT count(*) FROM mongo_river.river WHERE river = 'hs_hand'") == 0


def test_drop_river_drops_only_tables_of_the_rivers_owner(river_pg):
    """14.6: a forged mapped_table row cannot make a superuser's drop_river drop another role's table."""
    pg = river_pg
    pg.query("DO $$ BEGIN CREATE ROLE hs_alice LOGIN IN ROLE mongo_river_admin; CREATE ROLE hs_bob LOGIN; "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.query("GRANT CREATE ON SCHEMA public TO hs_alice, hs_bob")
    pg.query("CREATE TABLE hs_bobs (x int)", user="hs_bob")
    pg.query("SELECT mongo_river.create_river('hs_forge', 'mongodb://127.0.0.1:1/')", user="hs_alice")
    pg.query("SELECT mongo_river.map_collection('hs_forge', 'hs.f', 'hs_forge_f', %s)", (json.dumps(MAPPING),),
             user="hs_alice")
    # Forged by a superuser with the catalog's triggers off (admins hold no DML on the catalog), as a
    # catalog from before 0.3.0 could hold.
    pg.query("ALTER TABLE mongo_river.mapped_table DISABLE TRIGGER USER")
    try:
        pg.query("INSERT INTO mongo_river.mapped_table (river, source, relation, kind, created) "
                 "VALUES ('hs_forge', 'hs.f', 'hs_bobs', 'child', true)")
    finally:
        pg.query("ALTER TABLE mongo_river.mapped_table ENABLE TRIGGER USER")
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT mongo_river.drop_river('hs_forge', true)")
        notices = "".join(conn.notices)
    conn.close()
    assert pg.scalar("SELECT to_regclass('hs_bobs')::text") == "hs_bobs", "another role's table was dropped"
    assert pg.scalar("SELECT to_regclass('hs_forge_f')") is None
    assert "hs_bobs" in notices, notices


def test_drop_river_with_more_tables_than_locks(mongo):
    """14.6: more child tables than the lock table holds: a clear error with a hint naming
    max_locks_per_transaction, nothing dropped; after dropping some by hand drop_river finishes."""
    pg = PgCluster(settings={"max_locks_per_transaction": "10", "max_connections": "5",
                             "max_worker_processes": "4", "max_wal_senders": "0",
                             "autovacuum_max_workers": "1"}).init()
    try:
        pg.query("CREATE EXTENSION mongo_river")
        create_river(pg, "hs_many", "mongodb://127.0.0.1:1/")
        map_small(pg, "hs_many", "hs.many", "hs_many")
        count = 600
        for start in range(1, count + 1, 10):
            pg.query(f"DO $$ BEGIN FOR i IN {start}..{start + 9} LOOP "
                     "EXECUTE format('CREATE TABLE hs_child_%s (id text PRIMARY KEY)', i); END LOOP; END $$")
        pg.query("INSERT INTO mongo_river.mapped_table (river, source, relation, kind, created) "
                 "SELECT 'hs_many', 'hs.many', format('hs_child_%%s', i)::regclass, 'child', true "
                 "FROM generate_series(1, %s) i", (count,))
        with pytest.raises(psycopg2.Error) as info:
            pg.query("SELECT mongo_river.drop_river('hs_many', true)")
        error = info.value
        assert error.pgcode == "53200", error.pgerror
        assert "hs_many" in error.pgerror and "max_locks_per_transaction" in error.pgerror, error.pgerror
        assert "drop_river" in error.pgerror, error.pgerror
        assert pg.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'hs_child_%%' AND relkind = 'r'") == count
        # The documented way out: drop the tables in several transactions, then drop_river again.
        for start in range(1, count + 1, 10):
            pg.query(f"DO $$ BEGIN FOR i IN {start}..{start + 9} LOOP "
                     "EXECUTE format('DROP TABLE hs_child_%s', i); END LOOP; END $$")
        pg.query("SELECT mongo_river.drop_river('hs_many', true)")
        assert pg.scalar("SELECT count(*) FROM mongo_river.river") == 0
        assert not pg.crashes()
    finally:
        pg.destroy()


def test_stop_then_sync_once_at_once(river_pg, mongo):
    """16.5: stop(R) returns once the worker has exited; CALL sync_once(R) right after works, and
    status never says stopped while the worker runs."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("hs_stop")
    client.hs_stop.c.insert_one({"_id": "a", "n": 1})
    create_river(pg, "hs_stop", mongo.uri)
    map_small(pg, "hs_stop", "hs_stop.c", "hs_stop_c")
    wait_synced(pg, "hs_stop")
    for round_ in range(3):
        assert wait_for(lambda: worker_pid(pg, "hs_stop"), 30, what="the worker")
        client.hs_stop.c.insert_one({"_id": f"s{round_}", "n": round_})
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT mongo_river.stop('hs_stop')")
            cur.execute("SELECT phase, worker_pid FROM mongo_river.status WHERE river = 'hs_stop'")
            assert cur.fetchall() == [("stopped", None)]
            cur.execute("CALL mongo_river.sync_once('hs_stop', '30 s')")
            cur.execute("SELECT count(*) FROM hs_stop_c WHERE id = %s", (f"s{round_}",))
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT mongo_river.start('hs_stop')")
        conn.close()


def test_stop_rolled_back_keeps_the_river_running(river_pg, mongo):
    """16.5: stop() in a transaction that rolls back: the river stays enabled and its worker is
    started again."""
    pg = river_pg
    create_river(pg, "hs_rb", mongo.uri)
    map_small(pg, "hs_rb", "hs_rb.c", "hs_rb_c")
    first = wait_for(lambda: worker_pid(pg, "hs_rb"), 30, what="the worker")
    conn = pg.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT mongo_river.stop('hs_rb')")
        assert worker_pid(pg, "hs_rb") is None, "stop() returned while the worker ran"
    conn.rollback()
    conn.close()
    second = wait_for(lambda: worker_pid(pg, "hs_rb"), 15, what="the worker to start again")
    assert second != first
    pg.query("SELECT mongo_river.drop_river('hs_rb', true)")


def test_start_and_alter_river_wake_at_once(river_pg, mongo):
    """16.6: with a long naptime, start() starts the worker and alter_river() makes a backing-off
    worker try the new URI within a few seconds."""
    pg = river_pg
    pg.query("ALTER SYSTEM SET mongo_river.naptime = '60s'")
    pg.query("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: "naptime = 60000 ms" in pg.log(), 10, what="the launcher to reload")
        client = mongo.client()
        client.drop_database("hs_wake")
        client.hs_wake.c.insert_one({"_id": "a", "n": 1})
        # A URI nobody answers: the worker backs off (1 s, 2 s, 4 s, 8 s ...).
        create_river(pg, "hs_wake", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200")
        map_small(pg, "hs_wake", "hs_wake.c", "hs_wake_c")
        pg.query("SELECT mongo_river.start('hs_wake')")
        wait_for(lambda: worker_pid(pg, "hs_wake"), 5, what="start() to start the worker")
        wait_for(lambda: 'river "hs_wake"' in pg.log() and "retrying in 8000 ms" in pg.log(), 60,
                 what="the worker to back off 8 s")
        t0 = time.monotonic()
        pg.query("SELECT mongo_river.alter_river('hs_wake', %s)", (mongo.uri,))
        wait_for(lambda: pg.scalar("SELECT count(*) FROM hs_wake_c") == 1, 5,
                 what="the worker to use the new URI at once")
        assert time.monotonic() - t0 < 5
        pg.query("SELECT mongo_river.stop('hs_wake')")
        assert worker_pid(pg, "hs_wake") is None
        t0 = time.monotonic()
        pg.query("SELECT mongo_river.start('hs_wake')")
        wait_for(lambda: worker_pid(pg, "hs_wake"), 5, what="start() to start the worker at once")
        pg.query("SELECT mongo_river.drop_river('hs_wake', true)")
    finally:
        pg.query("ALTER SYSTEM RESET mongo_river.naptime")
        pg.query("SELECT pg_reload_conf()")


def test_drop_extension(mongo):
    """14.7: DROP EXTENSION without CASCADE is refused while rivers exist (also in a list, with IF
    EXISTS); with CASCADE workers exit with one LOG line, user tables stay, pg_cron jobs are named."""
    pg = PgCluster().init()
    try:
        pg.query("CREATE EXTENSION mongo_river")
        pg.query("CREATE EXTENSION pg_cron")
        client = mongo.client()
        client.drop_database("hs_ext")
        client.hs_ext.c.insert_one({"_id": "a", "n": 1})
        create_river(pg, "hs_ext", mongo.uri)
        map_small(pg, "hs_ext", "hs_ext.c", "hs_ext_c")
        wait_synced(pg, "hs_ext")
        pg.query("SELECT cron.schedule('hs_nightly', '0 3 * * *', "
                 "$$SELECT mongo_river.verify('hs_ext', 'hs_ext.c', repair => true)$$)")
        for statement in ("DROP EXTENSION mongo_river", "DROP EXTENSION IF EXISTS mongo_river",
                          "DROP EXTENSION IF EXISTS hs_nothing, mongo_river RESTRICT"):
            with pytest.raises(psycopg2.Error) as info:
                pg.query(statement)
            assert info.value.pgcode == "2BP01", (statement, info.value.pgerror)
            assert "hs_ext" in info.value.pgerror and "CASCADE" in info.value.pgerror, info.value.pgerror
            assert pg.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'mongo_river'") == 1
        pid = worker_pid(pg, "hs_ext")
        assert pid
        mark = len(pg.log())
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP EXTENSION mongo_river CASCADE")
            notices = "".join(conn.notices)
        conn.close()
        assert "hs_nightly" in notices, notices
        assert pg.scalar("SELECT count(*) FROM hs_ext_c") == 1, "a user table was dropped"
        wait_for(lambda: worker_pid(pg, "hs_ext") is None, 10, what="the worker to exit")
        time.sleep(1.5)  # the launcher's next passes must stay quiet too
        tail = pg.log()[mark:]
        worker_lines = [line for line in tail.splitlines() if f"[{pid}]" in line]
        assert len(worker_lines) == 1 and "LOG:" in worker_lines[0], worker_lines
        assert "does not exist" not in tail and "ERROR" not in tail, tail
        pg.query("CREATE EXTENSION mongo_river")  # and it can be created again
        pg.query("DROP EXTENSION mongo_river")  # no rivers: plain DROP works
        assert not pg.crashes()
    finally:
        pg.destroy()


def test_stop_while_the_worker_waits_for_our_lock(river_pg, mongo):
    """16.5: stop() ends a worker that waits for a lock the caller's own transaction holds."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("hs_lock")
    client.hs_lock.c.insert_one({"_id": "a", "n": 1})
    create_river(pg, "hs_lock", mongo.uri)
    map_small(pg, "hs_lock", "hs_lock.c", "hs_lock_c")
    wait_synced(pg, "hs_lock")
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE hs_lock_c IN ACCESS EXCLUSIVE MODE")
            client.hs_lock.c.insert_one({"_id": "b", "n": 2})
            wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                       "'mongo_river worker' AND wait_event_type = 'Lock'"), 20,
                     what="the worker to wait for the lock")
            t0 = time.monotonic()
            cur.execute("SELECT mongo_river.stop('hs_lock')")
            assert time.monotonic() - t0 < 8
            assert worker_pid(pg, "hs_lock") is None
        conn.commit()
    finally:
        conn.close()
    pg.query("CALL mongo_river.sync_once('hs_lock', '30 s')")
    assert pg.query("SELECT error FROM mongo_river.rejects WHERE river = 'hs_lock'") == [], \
        "the cancelled write became a reject"
    assert pg.scalar("SELECT count(*) FROM hs_lock_c") == 2
    pg.query("SELECT mongo_river.drop_river('hs_lock', true)")
