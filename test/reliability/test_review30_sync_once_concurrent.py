"""Review 30: two sessions CALL mongo_river.sync_once on the same stopped river at once (pg_cron
overlapping a manual call). Each change must be applied once: in a history-mode mapping a change
applied twice is a second version, and the river's counters count it twice. Held: 20 versions,
status 20; but both calls return applied = 20 and sync_runs says 40 (each counts all)."""

import json
import threading

import psycopg2

from pgcluster import wait_for
from test_secrets import as_role, auth_peer, host_intact, ok, sec  # noqa: F401

MAP = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}


def test_two_concurrent_sync_once_apply_each_change_once(sec, auth_peer):
    pg = sec
    coll = auth_peer.client().sec.c30
    coll.insert_many([{"_id": f"k{i}", "n": 0} for i in range(5)])
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('c30', %s, '{\"batch_size\": 2}')", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('c30')"))
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'c30'") is None,
             30, 0.1, "c30's worker to stop")
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('c30', 'sec.c30', 'c30_t', %s, %s)",
               (json.dumps(MAP), json.dumps({"mode": "history"}))))
    ok(as_role(pg, "bob", "CALL mongo_river.sync_once('c30', '1 min', NULL)"))
    copied = pg.scalar("SELECT count(*) FROM c30_t")
    # each row written sleeps a little: the two calls overlap
    ok(as_role(pg, "bob", r"""
        CREATE FUNCTION public.c30_slow() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $f$;
        CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON public.c30_t FOR EACH ROW EXECUTE FUNCTION public.c30_slow()"""))
    for round_ in range(1, 5):
        for i in range(5):
            coll.update_one({"_id": f"k{i}"}, {"$set": {"n": round_}})
    results = []

    def call():
        conn = pg.connect(user="bob")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("CALL mongo_river.sync_once('c30', '1 min', NULL)")
                results.append(("ok", cur.fetchone()[0]))
        except psycopg2.Error as e:
            results.append((e.pgcode, (e.pgerror or "").strip()[:200]))
        finally:
            conn.close()

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    versions = pg.scalar("SELECT count(*) FROM c30_t") - copied
    per_doc = pg.query("SELECT id, count(*) FROM c30_t GROUP BY id HAVING count(*) <> 5 ORDER BY id")
    applied = pg.scalar("SELECT sum(changes_applied) FROM mongo_river.status WHERE river = 'c30'")
    runs = pg.query("SELECT outcome, applied FROM mongo_river.sync_runs WHERE river = 'c30' ORDER BY id")[1:]
    host_intact(pg, pg.postmaster)
    assert versions == 20 and not per_doc, \
        f"two concurrent sync_once ({results}): {versions} versions for 20 changes; per document {per_doc}"
    assert applied == 20, f"status counts {applied} changes applied for 20 ({results})"
    # each call says what it applied: together, the 20 changes (not 20 each, the second re-reading
    # from the position it loaded and counting changes the first had applied)
    assert sum(r[1] for r in runs) == 20, f"the two calls report {results}, sync_runs {runs}: 20 changes"
