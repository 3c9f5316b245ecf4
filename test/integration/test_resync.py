"""Resync: by hand with resync(), and automatically when the source's oplog no longer reaches back
to a stopped river's position (peer only: it needs --oplog-size). Readers never see an empty table."""

import threading

import pytest

from mongo_source import start_source
from pgcluster import wait_for
from river import compare, create_river, load_posts, map_posts, status, wait_synced


def test_resync_by_hand_repairs_drift_without_emptying_the_table(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("handresync")
    coll = client.handresync.posts
    load_posts(coll, 3000, seed=21)
    create_river(pg, "handresync", mongo.uri, {"batch_size": 200})
    map_posts(pg, "handresync", "handresync.posts", "handresync_posts")
    wait_synced(pg, "handresync")
    # Drift made by hand in PostgreSQL: a changed row, a deleted row, an extra row.
    pg.query("UPDATE handresync_posts SET title = 'drifted' WHERE id = 'p0000005'")
    pg.query("DELETE FROM handresync_posts WHERE id = 'p0000006'")
    pg.query("INSERT INTO handresync_posts (id, title) VALUES ('ghost', 'not in mongo')")
    assert compare(pg, "handresync_posts", coll)

    counts = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            counts.append(pg.scalar("SELECT count(*) FROM handresync_posts"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        pg.query("SELECT mongo_river.resync('handresync', 'handresync.posts')")
        wait_for(lambda: status(pg, "handresync")["handresync.posts"][0] == "resync", 30, 0.02, "the resync to start")
        wait_for(lambda: status(pg, "handresync")["handresync.posts"][0] == "streaming", 120, 0.1,
                 "the resync to finish")
    finally:
        done.set()
        thread.join()
    wait_synced(pg, "handresync")
    assert not compare(pg, "handresync_posts", coll)
    assert min(counts) >= 3000, f"a reader saw {min(counts)} rows during the resync"
    pg.query("SELECT mongo_river.drop_river('handresync', true)")


def test_history_lost_resyncs_automatically(river_pg):
    source = start_source(["--oplog-size", "300"])
    if source is None or not source.is_peer:
        if source is not None:
            source.stop()
        pytest.skip("needs the MongoDB peer's --oplog-size (a real mongod's oplog is sized in MB)")
    pg = river_pg
    try:
        client = source.client()
        coll = client.lost.posts
        load_posts(coll, 500, seed=22)
        create_river(pg, "lost", source.uri)
        map_posts(pg, "lost", "lost.posts", "lost_posts")
        wait_synced(pg, "lost")
        pg.query("SELECT mongo_river.stop('lost')")
        wait_for(lambda: status(pg, "lost")["lost.posts"][4] is None, 30, 0.05, "the worker to stop")
        # Far more changes than the oplog keeps, deletes included.
        for i in range(0, 400):
            coll.update_one({"_id": f"p{i:07d}"}, {"$set": {"title": f"while stopped {i}"}})
        coll.delete_many({"_id": {"$in": [f"p{i:07d}" for i in range(400, 450)]}})
        pg.query("SELECT mongo_river.start('lost')")
        wait_for(lambda: "resyncing its collections" in pg.log(), 60, 0.1, "the river to notice the lost history")
        wait_for(lambda: status(pg, "lost")["lost.posts"][0] == "streaming", 120, 0.1, "the resync to finish")
        wait_synced(pg, "lost")
        problems = compare(pg, "lost_posts", coll)
        assert not problems, "\n".join(problems[:10])
        pg.query("SELECT mongo_river.drop_river('lost', true)")
    finally:
        source.stop()
