"""Review 28: documents changed, deleted and inserted at the source all through a copy that reads
ahead, for both captures, both copy paths (copy_builds_tuples on/off), history mode, and a resync.
Each copy batch is slowed by a statement trigger (so the reader thread has the next batch ready
long before it is written, and the stream is read between batches). Afterwards the table (history:
its _latest view) must equal the source: no deleted document back, no row older than its document,
nothing missing, nothing twice."""

import json
import random
import threading
import time

import pytest

from pgcluster import wait_for
from review28_lib import (MAPPING, bad_lines, diff, got_rows, load, log_mark, set_setting, wait_streaming,
                          want_rows)
from river import create_river, wait_synced

COUNT = 6000


class Churn(threading.Thread):
    """Churn deletes, updates and inserts random documents of coll until stopped (seeded)."""

    def __init__(self, coll, seed):
        super().__init__(daemon=True)
        self.coll, self.rng, self.stopped, self.ops, self.error = coll, random.Random(seed), threading.Event(), 0, None

    def run(self):
        try:
            while not self.stopped.is_set():
                i = self.rng.randrange(COUNT)
                op = self.rng.random()
                key = f"d{i:05d}"
                if op < 0.3:
                    self.coll.delete_one({"_id": key})
                elif op < 0.7:
                    self.coll.update_one({"_id": key}, {"$inc": {"v": 1}})
                elif op < 0.85:
                    self.coll.replace_one({"_id": key}, {"n": i, "v": 100 + self.ops}, upsert=True)
                else:
                    self.coll.insert_one({"_id": f"d{i:05d}x{self.ops}", "n": -i, "v": 0})
                self.ops += 1
                if self.ops % 5 == 0:
                    time.sleep(0.01)
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self):
        self.stopped.set()
        self.join(30)
        if self.error:
            raise self.error


def slow_trigger(pg, table, seconds):
    pg.query(f"""CREATE OR REPLACE FUNCTION "{table}_slow"() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$""")
    pg.query(f'CREATE TRIGGER slow AFTER INSERT ON "{table}" FOR EACH STATEMENT EXECUTE FUNCTION "{table}_slow"()')


def run(pg, mongo, river, capture="change_stream", mode="upsert", seed=1, resync=False, churn_class=None):
    mark = log_mark(pg)
    coll = load(mongo, river, COUNT)
    table = river
    churn = None
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100, "capture": capture})
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, f"{river}.c", table, json.dumps(MAPPING), json.dumps({"mode": mode})))
        if resync:
            pg.query("SELECT mongo_river.start(%s)", (river,))
            wait_streaming(pg, river, 60)
            pg.query("SELECT mongo_river.stop(%s)", (river,))
        if mode != "history":  # (history inserts row by row: a statement trigger would fire per row)
            slow_trigger(pg, table, 0.3)
        churn = (churn_class or Churn)(coll, seed)
        churn.start()
        pg.query("SELECT mongo_river.start(%s)", (river,))
        if resync:
            pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        wait_streaming(pg, river, 100)
        churn.finish()
        # (the statement trigger slows the stream's batches too: it goes once the copy is over)
        pg.query(f'DROP TRIGGER IF EXISTS slow ON "{table}"')
        wait_synced(pg, river, 120)
        view = f"{table}_latest" if mode == "history" else table
        want = want_rows(coll)
        try:
            wait_for(lambda: diff(got_rows(pg, view), want) == "", 30, 0.2, "the rows to settle")
        except TimeoutError:
            pass
        problems = diff(got_rows(pg, view), want)
        log = pg.log()[mark:]
        assert "(reading ahead on a thread)" in log, "the copy did not read ahead"
        assert problems == "", f"river {river} ({capture}, {mode}, {churn.ops} changes during the copy): {problems}"
    finally:
        if churn is not None:
            churn.stopped.set()
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        pg.query(f'DROP TABLE IF EXISTS "{table}"')
    assert bad_lines(pg, mark) == []


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
@pytest.mark.parametrize("tuples", ["on", "off"])
def test_churn_during_copy(river_pg, mongo, capture, tuples):
    set_setting(river_pg, "mongo_river.copy_builds_tuples", tuples)
    try:
        run(river_pg, mongo, f"r28churn_{capture[:2]}_{tuples}", capture, seed=hash((capture, tuples)) & 0xffff)
    finally:
        set_setting(river_pg, "mongo_river.copy_builds_tuples", "on")


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_churn_during_history_copy(river_pg, mongo, capture):
    run(river_pg, mongo, f"r28hist_{capture[:2]}", capture, mode="history", seed=7)


def test_churn_during_resync(river_pg, mongo):
    run(river_pg, mongo, "r28resync", resync=True, seed=11)


def test_dry_run_reads_ahead_and_writes_nothing(river_pg, mongo):
    pg, river = river_pg, "r28dry"
    mark = log_mark(pg)
    load(mongo, river, 5000)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100, "dry_run": True})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
        wait_streaming(pg, river, 60)
        copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 0, "a dry run wrote rows"
        assert copied == 5000, f"a dry run counted {copied} documents copied of 5000"
        assert "(reading ahead on a thread)" in pg.log()[mark:]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
    assert bad_lines(pg, mark) == []


class TxnChurn(Churn):
    """TxnChurn deletes and updates documents inside multi-document transactions (an applyOps entry
    in the oplog, events sharing lsid/txnNumber in a change stream)."""

    def run(self):
        try:
            client = self.coll.database.client
            while not self.stopped.is_set():
                with client.start_session() as session:
                    with session.start_transaction():
                        for _ in range(4):
                            i = self.rng.randrange(COUNT)
                            if self.rng.random() < 0.4:
                                self.coll.delete_one({"_id": f"d{i:05d}"}, session=session)
                            else:
                                self.coll.update_one({"_id": f"d{i:05d}"}, {"$inc": {"v": 1}}, session=session)
                            self.ops += 1
                time.sleep(0.005)
        except Exception as e:  # reported by finish()
            self.error = e


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_transactions_during_copy(river_pg, mongo, capture):
    run(river_pg, mongo, f"r28txn_{capture[:2]}", capture, seed=23, churn_class=TxnChurn)
