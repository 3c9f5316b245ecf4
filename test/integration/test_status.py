"""status under load: live counters and lag from shared memory, and the oplog-window margin with its
warning (log + NOTIFY)."""

import time

import pytest

from pgcluster import wait_for
from river import Writer, create_river, load_posts, map_posts, status, wait_synced


def live(pg, river, source):
    row = pg.query("SELECT phase, docs_copied, changes_applied, lag, oplog_margin, last_source_time "
                   "FROM mongo_river.status WHERE river = %s AND source = %s", (river, source))
    return row[0]


def test_lag_and_counters_under_load(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("loaded")
    coll = client.loaded.posts
    load_posts(coll, 500, seed=41)
    create_river(pg, "loaded", mongo.uri, {"batch_ms": 200})
    map_posts(pg, "loaded", "loaded.posts", "loaded_posts")
    wait_synced(pg, "loaded")
    writer = Writer(coll, seed=42, first_new_id=10**6, pause=0.002)
    writer.next_id = 10**6
    writer.start()
    lags = []
    applied = []
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            phase, copied, changes, lag, margin, last = live(pg, "loaded", "loaded.posts")
            assert phase == "streaming"
            if lag is not None:
                lags.append(lag.total_seconds())
            applied.append(changes)
            time.sleep(0.2)
    finally:
        writer.stop()
    wait_synced(pg, "loaded")
    # Counters grow while streaming (live, between catalog writes) and lag stays small under load.
    assert applied[-1] > applied[0], applied
    assert max(lags) < 5, f"lag under load: {lags}"
    # Caught up and idle: lag is 0.
    wait_for(lambda: live(pg, "loaded", "loaded.posts")[3] is not None and
             live(pg, "loaded", "loaded.posts")[3].total_seconds() == 0, 10, 0.1, "lag 0 when idle")
    pg.query("SELECT mongo_river.drop_river('loaded', true)")


def test_oplog_margin_is_measured(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("margin")
    coll = client.margin.posts
    load_posts(coll, 100, seed=43)
    # Any margin is below a day (the warning itself fires only on an oplog losing history).
    pg.query("ALTER SYSTEM SET mongo_river.oplog_margin_warning = '1d'")
    pg.query("SELECT pg_reload_conf()")
    listener = pg.connect()
    listener.autocommit = True
    listener.cursor().execute("LISTEN mongo_river")
    try:
        create_river(pg, "margin", mongo.uri)
        map_posts(pg, "margin", "margin.posts", "margin_posts")
        wait_synced(pg, "margin")
        wait_for(lambda: live(pg, "margin", "margin.posts")[4] is not None, 30, 0.2, "the oplog margin")
        margin = live(pg, "margin", "margin.posts")[4].total_seconds()
        oldest = next(client.local["oplog.rs"].find({}, {"ts": 1}).sort("$natural", 1).limit(1))["ts"].time
        position = pg.scalar("SELECT reached >> 32 FROM mongo_river.progress WHERE river = 'margin'")
        assert abs(margin - (position - oldest)) <= 15, (margin, position, oldest)
        # Whether it warns depends on the oplog losing history: test_monitoring.py checks both ways.
    finally:
        listener.close()
        pg.query("ALTER SYSTEM RESET mongo_river.oplog_margin_warning")
        pg.query("SELECT pg_reload_conf()")
    pg.query("SELECT mongo_river.drop_river('margin', true)")
