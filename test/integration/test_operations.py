"""Operating a river from SQL: verify and repair, rejects retried after the mapping is fixed,
discard_rejects, and a real pg_cron job."""

import json

import psycopg2
import pytest

from pgcluster import wait_for
from river import Writer, compare, create_river, load_posts, map_posts, wait_synced


def findings(pg, sql, params=None):
    return sorted((r[0], r[1], r[2], r[3]) for r in pg.query(sql, params))


def test_verify_reports_and_repairs_drift_while_streaming(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("verifying")
    coll = client.verifying.posts
    load_posts(coll, 2000, seed=31)
    create_river(pg, "verifying", mongo.uri, {"batch_size": 200})
    map_posts(pg, "verifying", "verifying.posts", "verifying_posts")
    wait_synced(pg, "verifying")
    assert pg.query("SELECT * FROM mongo_river.verify('verifying')") == []

    # Drift made by hand in PostgreSQL, while the river keeps streaming other changes.
    pg.query("UPDATE verifying_posts SET title = 'changed by hand' WHERE id = 'p0000010'")
    pg.query("DELETE FROM verifying_posts WHERE id = 'p0000011'")
    pg.query("INSERT INTO verifying_posts (id, title) VALUES ('ghost', 'no such document')")
    childless = pg.scalar("SELECT min(post_id) FROM verifying_posts_comments WHERE post_id > 'p0000011'")
    pg.query("DELETE FROM verifying_posts_comments WHERE post_id = %s", (childless,))
    writer = Writer(coll, seed=32, first_new_id=10**6, pause=0.002)
    writer.next_id = 10**6
    writer.start()
    try:
        found = findings(pg, "SELECT * FROM mongo_river.verify('verifying', 'verifying.posts')")
        problems = {(f[1], f[2]) for f in found}
        assert ("p0000010", "different") in problems, found
        assert ("p0000011", "missing") in problems, found
        assert ("ghost", "extra") in problems, found
        assert (childless, "different") in problems, found  # child rows are compared too
        # Sampled verify runs too (what it finds depends on the sample).
        pg.query("SELECT * FROM mongo_river.verify('verifying', sample_size => 50)")
        repaired = findings(pg, "SELECT * FROM mongo_river.verify('verifying', repair => true)")
        assert all(f[3] for f in repaired), repaired
    finally:
        writer.stop()
    wait_synced(pg, "verifying")
    problems = compare(pg, "verifying_posts", coll)
    assert not problems, "\n".join(problems[:10])
    assert pg.query("SELECT * FROM mongo_river.verify('verifying')") == []
    pg.query("SELECT mongo_river.drop_river('verifying', true)")


def test_rejects_retried_after_the_mapping_is_fixed(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("retrying")
    coll = client.retrying.items
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "qty": {"path": "qty", "type": "int"}}}
    create_river(pg, "retrying", mongo.uri)
    pg.query("SELECT mongo_river.map_collection('retrying', 'retrying.items', 'items', %s)", (json.dumps(mapping),))
    wait_synced(pg, "retrying")
    coll.insert_one({"_id": "a", "qty": 1})
    coll.insert_one({"_id": "b", "qty": "a dozen"})  # a type conflict
    coll.insert_one({"_id": "c", "qty": 3})           # later changes keep flowing
    wait_synced(pg, "retrying")
    assert pg.query("SELECT id, qty FROM items ORDER BY id") == [("a", 1), ("c", 3)]
    rejects = pg.query("SELECT id, document_id, operation, error FROM mongo_river.rejects WHERE river = 'retrying'")
    assert len(rejects) == 1 and rejects[0][1] == "b" and "qty" in rejects[0][3], rejects
    assert pg.scalar("SELECT mongo_river.retry_rejects('retrying')") == 0  # still failing: kept
    coll.update_one({"_id": "b"}, {"$set": {"qty": "two dozen"}})        # rejected again
    wait_synced(pg, "retrying")

    # Fix the mapping: qty becomes text, the table follows; then retry applies the current state.
    pg.query("SELECT mongo_river.unmap_collection('retrying', 'retrying.items')")
    pg.query("ALTER TABLE items ALTER COLUMN qty TYPE text")
    mapping["columns"]["qty"]["type"] = "text"
    pg.query("SELECT mongo_river.map_collection('retrying', 'retrying.items', 'items', %s, '{\"copy\": false}')",
             (json.dumps(mapping),))
    assert pg.scalar("SELECT mongo_river.retry_rejects('retrying')") == 2
    assert pg.query("SELECT id, qty FROM items ORDER BY id") == [("a", "1"), ("b", "two dozen"), ("c", "3")]
    assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'retrying'") == 0

    # discard_rejects
    coll.insert_one({"_id": "d", "qty": {"not": "text"}})
    pg.query("SELECT mongo_river.stop('retrying')")
    pg.query("SELECT mongo_river.start('retrying')")
    wait_synced(pg, "retrying")
    with pytest.raises(psycopg2.Error) as failure:
        pg.query("SELECT mongo_river.discard_rejects('retrying', -1)")
    assert failure.value.pgcode == "42704"
    pg.query("SELECT mongo_river.drop_river('retrying', true)")


def test_sync_once_catches_a_stopped_river_up(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("batch")
    coll = client.batch.posts
    load_posts(coll, 300, seed=35)
    create_river(pg, "batch", mongo.uri)
    map_posts(pg, "batch", "batch.posts", "batch_posts")
    wait_synced(pg, "batch")
    with pytest.raises(psycopg2.Error) as failure:
        pg.query("CALL mongo_river.sync_once('batch')")
    assert failure.value.pgcode == "55006", failure.value.pgerror
    pg.query("SELECT mongo_river.stop('batch')")
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'batch'") is None, 30, 0.05,
             "the worker to stop")
    writer = Writer(coll, seed=36, first_new_id=10**6)
    writer.next_id = 10**6
    for _ in range(200):
        writer.step()
    applied = pg.scalar("CALL mongo_river.sync_once('batch', '2 min')")
    assert applied > 0  # no-op writes (missing ids) make no change events
    problems = compare(pg, "batch_posts", coll)
    assert not problems, "\n".join(problems[:10])
    assert pg.scalar("CALL mongo_river.sync_once('batch')") == 0  # nothing new
    pg.query("SELECT mongo_river.drop_river('batch', true)")


def test_pg_cron_runs_verify_and_sync_once(river_pg, mongo):
    """Real pg_cron jobs (pg_cron 1.4 schedules by the minute: this waits up to two and a half minutes)."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("cron")
    coll = client.cron.posts
    load_posts(coll, 100, seed=33)
    create_river(pg, "cron", mongo.uri)
    map_posts(pg, "cron", "cron.posts", "cron_posts")
    create_river(pg, "cron_batch", mongo.uri)
    map_posts(pg, "cron_batch", "cron.posts", "cron_batch_posts")
    wait_synced(pg, "cron")
    wait_synced(pg, "cron_batch")
    pg.query("SELECT mongo_river.stop('cron_batch')")
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'cron_batch'") is None, 30,
             0.05, "the worker to stop")
    pg.query("DELETE FROM cron_posts WHERE id = 'p0000042'")
    coll.insert_one({"_id": "made_while_stopped", "title": "x"})
    pg.query("CREATE EXTENSION IF NOT EXISTS pg_cron")
    verify_job = pg.scalar("SELECT cron.schedule('mongo_river_verify', '* * * * *', "
                           "$$SELECT count(*) FROM mongo_river.verify('cron', repair => true)$$)")
    sync_job = pg.scalar("SELECT cron.schedule('mongo_river_sync', '* * * * *', "
                         "$$CALL mongo_river.sync_once('cron_batch', '1 min')$$)")

    def succeeded(job):
        return pg.scalar("SELECT count(*) FROM cron.job_run_details WHERE jobid = %s AND status = 'succeeded'", (job,))

    try:
        wait_for(lambda: succeeded(verify_job) and succeeded(sync_job), 150, 1.0, "successful pg_cron runs")
    finally:
        pg.query("SELECT cron.unschedule(%s)", (verify_job,))
        pg.query("SELECT cron.unschedule(%s)", (sync_job,))
        print(pg.query("SELECT jobid, status, return_message FROM cron.job_run_details"))
    assert pg.scalar("SELECT count(*) FROM cron_posts WHERE id = 'p0000042'") == 1
    assert pg.scalar("SELECT count(*) FROM cron_batch_posts WHERE id = 'made_while_stopped'") == 1
    # pg_cron keeps only "CALL" of a procedure; what each sync_once applied is in sync_runs.
    assert pg.scalar("SELECT return_message FROM cron.job_run_details WHERE jobid = %s AND status = 'succeeded' "
                     "LIMIT 1", (sync_job,)) == "CALL"
    runs = pg.query("SELECT applied, outcome FROM mongo_river.sync_runs WHERE river = 'cron_batch' ORDER BY id")
    assert runs and runs[0][0] >= 1 and runs[0][1] == "caught_up", runs
    pg.query("SELECT mongo_river.drop_river('cron', true)")
    pg.query("SELECT mongo_river.drop_river('cron_batch', true)")


def test_notify_on_phase_changes_and_rejects(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("notified")
    coll = client.notified.posts
    load_posts(coll, 50, seed=34)
    listener = pg.connect()
    listener.autocommit = True
    listener.cursor().execute("LISTEN mongo_river")
    create_river(pg, "notified", mongo.uri)
    map_posts(pg, "notified", "notified.posts", "notified_posts")
    wait_synced(pg, "notified")
    coll.insert_one({"_id": "bad", "stats": {"score": "high"}})
    wait_synced(pg, "notified")

    events = []

    def collected():
        listener.poll()
        while listener.notifies:
            events.append(json.loads(listener.notifies.pop(0).payload))
        return any(e.get("event") == "reject" for e in events) and \
            any(e.get("phase") == "streaming" and e.get("source") == "notified.posts" for e in events)

    wait_for(collected, 30, 0.1, "notifications")
    listener.close()
    assert {"river": "notified", "event": "phase", "phase": "streaming"} in events  # the river's own phase
    assert {"river": "notified", "source": "notified.posts", "event": "phase", "phase": "streaming"} in events
    reject = next(e for e in events if e.get("event") == "reject")
    # Anyone may LISTEN: a reject's payload names river and collection only, no _id or error text.
    assert reject == {"river": "notified", "source": "notified.posts", "event": "reject"}, reject
    pg.query("SELECT mongo_river.drop_river('notified', true)")
