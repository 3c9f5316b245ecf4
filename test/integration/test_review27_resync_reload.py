"""Review 27: the worker reloads when a resync is asked for again after one ended (RequestedResyncs:
a requested collection the worker holds in another phase). Look for reload loops (the server log
line "declaration changed, reloading" repeating) and copies that restart from scratch."""

import json
import time

from pgcluster import wait_for
from review_helpers import KEY_N_BIGINT as MAPPING
from river import create_river, wait_synced


def reloads(pg, river, since):
    return [line for line in pg.log()[since:].splitlines()
            if f'river "{river}": declaration changed, reloading' in line]


def copies(pg, river, since):
    return [line for line in pg.log()[since:].splitlines()
            if f'river "{river}", collection' in line and "initial copy" in line and ("starting" in line or "resuming" in line)]


def seed(mongo, db, colls, count):
    client = mongo.client()
    client.drop_database(db)
    out = []
    for name in colls:
        c = client[db][name]
        c.insert_many([{"_id": f"d{i:06d}", "n": i} for i in range(count)])
        out.append(c)
    return out


def test_resync_in_a_dry_run_river_does_not_loop(river_pg, mongo):
    """A dry run writes no copy progress: a resync() of a dry-run river leaves the mapping 'resync'
    in the catalog with no copy start; once the worker's copy ends, it holds the collection in
    another phase, which RequestedResyncs takes for a new request: reload, copy again, forever."""
    pg = river_pg
    river = "r27dry"
    seed(mongo, river, ["c"], 200)
    create_river(pg, river, mongo.uri, {"dry_run": True})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        time.sleep(3)
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        time.sleep(3)
        mark = len(pg.log())
        time.sleep(5)
        got_reloads, got_copies = reloads(pg, river, mark), copies(pg, river, mark)
        print(pg.query("SELECT phase, docs_copied, last_error FROM mongo_river.status WHERE river = %s", (river,)))
        assert len(got_reloads) <= 1 and len(got_copies) <= 1, \
            f"in 5 s after a dry run's resync settled: {len(got_reloads)} reloads, {len(got_copies)} copies " \
            f"(e.g. {got_copies[:2]})"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_resyncs_of_two_collections_and_again(river_pg, mongo):
    """Two collections: a resync of A (a long copy: small batches), a resync of B asked for while A
    copies, then A asked for again after its resync ended. Each copy must run, none restart from
    scratch while copying, and once all is done the worker must stop reloading."""
    pg = river_pg
    river = "r27two"
    count = 6000
    a, b = seed(mongo, river, ["a", "b"], count)
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    try:
        for c in ("a", "b"):
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (river, f"{river}.{c}", f"{river}_{c}", json.dumps(MAPPING)))
        wait_synced(pg, river)
        mark = len(pg.log())
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.a"))
        wait_for(lambda: pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s AND source = %s",
                                   (river, f"{river}.a")) or 0, 30, 0.05, "A's resync copying")
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.b"))
        samples = []
        deadline = time.time() + 60
        while time.time() < deadline:
            st = dict(pg.query("SELECT source, phase FROM mongo_river.status WHERE river = %s", (river,)))
            samples.append(pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s AND source = %s",
                                     (river, f"{river}.a")))
            if all(p == "streaming" for p in st.values()):
                break
            time.sleep(0.05)
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.a"))
        wait_for(lambda: all(p == "streaming" for p in dict(pg.query(
            "SELECT source, phase FROM mongo_river.status WHERE river = %s", (river,))).values()) and
            pg.scalar("SELECT copy_started_at IS NOT NULL FROM mongo_river.mapping_state WHERE river = %s AND source = %s",
                      (river, f"{river}.a")), 60, 0.1, "the second resync of A")
        wait_synced(pg, river)
        time.sleep(2)
        quiet = len(pg.log())
        time.sleep(4)
        got = copies(pg, river, mark)
        print("\n".join(got))
        drops = [(x, y) for x, y in zip(samples, samples[1:]) if x is not None and y is not None and y < x]
        assert drops == [], f"A's docs_copied went back during its resync: {drops[:5]}"
        started = [line for line in got if "starting" in line]
        assert len(started) == 3, f"expected 3 copies started (A, B, A again): {got}"
        assert reloads(pg, river, quiet) == [], "the worker keeps reloading after the resyncs ended"
        counts = pg.query("SELECT source, docs_copied FROM mongo_river.status WHERE river = %s ORDER BY 1", (river,))
        assert counts == [(f"{river}.a", count), (f"{river}.b", count)], counts
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_alter_river_during_a_resync_does_not_restart_the_copy(river_pg, mongo):
    """alter_river (a new batch_ms) while a resync copies: the worker reloads; the copy must resume
    from its last copied _id (README: "a crash resumes the copy where it stopped"), not start over."""
    pg = river_pg
    river = "r27alt"
    seed(mongo, river, ["c"], 8000)
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        mark = len(pg.log())
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        wait_for(lambda: (pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,)) or 0) > 500,
                 30, 0.05, "the resync copying")
        pg.query("SELECT mongo_river.alter_river(%s, options => %s)", (river, json.dumps({"batch_size": 50, "batch_ms": 150})))
        time.sleep(1)
        pg.query("SELECT mongo_river.alter_river(%s, options => %s)", (river, json.dumps({"batch_size": 60})))
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
                 60, 0.1, "the resync's end")
        got = copies(pg, river, mark)
        print("\n".join(got))
        assert len([line for line in got if "starting" in line]) == 1, f"the resync's copy started over: {got}"
        assert pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,)) == 8000
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_resync_while_stopped_then_started(river_pg, mongo):
    pg = river_pg
    river = "r27stop"
    (c,) = seed(mongo, river, ["c"], 300)
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        time.sleep(1.5)
        pg.query(f'UPDATE "{river}" SET n = -1')
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        mark = len(pg.log())
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming"
                 and pg.scalar(f'SELECT count(*) FROM "{river}" WHERE n = -1') == 0, 60, 0.1, "the resync after start")
        time.sleep(3)
        got = copies(pg, river, mark)
        assert len(got) == 1, got
        quiet = len(pg.log())
        time.sleep(3)
        assert reloads(pg, river, quiet) == []
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_resync_asked_again_while_it_copies_copies_everything(river_pg, mongo):
    """resync() of a collection whose resync is copying (a long copy: small batches). README
    "Resync": rows are upserted in place and "at the end, rows of documents that no longer exist are
    deleted". resync() empties resync_seen (the keys the running copy had seen) and resets
    copy_last_id, but the worker's batch in flight writes its copy_last_id back, and the reloaded
    worker *resumes* the copy from there: at its end, every row the first copy had passed is taken
    for a document that no longer exists and deleted (the server log: "resync deleted 5000 rows of
    documents that no longer exist"); docs_copied is short too."""
    pg = river_pg
    river = "r27again"
    count = 20000
    seed(mongo, river, ["c"], count)
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        wait_for(lambda: (pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,)) or 0) > 3000,
                 60, 0.02, "the first resync copying")
        pg.query(f'UPDATE "{river}" SET n = -1')
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        time.sleep(1)
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
                 120, 0.1, "the resyncs' end")
        damaged = pg.scalar(f'SELECT count(*) FROM "{river}" WHERE n = -1')
        present = pg.scalar(f'SELECT count(*) FROM "{river}"')
        copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
        deleted = [line for line in pg.log().splitlines() if f'river "{river}"' in line and "resync deleted" in line]
        assert present == count and damaged == 0 and copied == count, \
            f"after a second resync asked while the first copied: {present} rows for {count} documents, " \
            f"{damaged} rows never copied again, docs_copied {copied}; {deleted}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_resync_asked_during_the_initial_copy_keeps_every_row(river_pg, mongo):
    """resync() while the initial copy runs (slowed by a BEFORE ROW trigger): the worker turns the
    running copy into the resync and resumes it from its last _id; the rows the initial copy wrote
    before were never recorded as seen, so the resync's end deletes them as documents that no longer
    exist."""
    pg = river_pg
    river = "r27initre"
    count = 20000
    seed(mongo, river, ["c"], count)
    pg.query(f'CREATE TABLE "{river}" (id text PRIMARY KEY, n bigint)')
    pg.query(f"""CREATE FUNCTION "{river}_slow"() RETURNS trigger LANGUAGE plpgsql AS
                 $$BEGIN PERFORM pg_sleep(0.0002); RETURN NEW; END$$""")
    pg.query(f'CREATE TRIGGER slow BEFORE INSERT ON "{river}" FOR EACH ROW EXECUTE FUNCTION "{river}_slow"()')
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_for(lambda: (pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,)) or 0) > 3000,
                 60, 0.02, "the initial copy under way")
        assert pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "initial_copy"
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        time.sleep(1)
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
                 180, 0.2, "the copy's end")
        present = pg.scalar(f'SELECT count(*) FROM "{river}"')
        deleted = [line for line in pg.log().splitlines() if f'river "{river}"' in line and "resync deleted" in line]
        assert present == count, f"{present} rows for {count} documents after a resync asked during the initial " \
                                 f"copy; {deleted}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_unmap_and_map_again_in_one_transaction_during_a_resync(river_pg, mongo):
    """While a resync copies, the collection is unmapped and mapped again (same table, copy) in one
    transaction: the new mapping's copy must copy every document (rows damaged before are written
    again), and no row of an existing document may be deleted."""
    pg = river_pg
    river = "r27remap"
    count = 20000
    seed(mongo, river, ["c"], count)
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        wait_for(lambda: (pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,)) or 0) > 3000,
                 60, 0.02, "the resync copying")
        with pg.connect() as conn:
            with conn.cursor() as cur:
                cur.execute(f'UPDATE "{river}" SET n = -1')
                cur.execute("SELECT mongo_river.unmap_collection(%s, %s)", (river, f"{river}.c"))
                cur.execute("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                            (river, f"{river}.c", river, json.dumps(MAPPING)))
            conn.commit()
        time.sleep(1)
        wait_synced(pg, river)
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
                 120, 0.2, "the copy's end")
        present = pg.scalar(f'SELECT count(*) FROM "{river}"')
        damaged = pg.scalar(f'SELECT count(*) FROM "{river}" WHERE n = -1')
        deleted = [line for line in pg.log().splitlines() if f'river "{river}"' in line and "resync deleted" in line]
        assert present == count and damaged == 0, f"{present} rows for {count} documents, {damaged} not copied " \
                                                  f"again; {deleted}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
