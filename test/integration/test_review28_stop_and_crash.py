"""Review 28: a copy reading ahead (a reader thread, a second connection) meets the ways a worker
ends: kill -9 of the worker, an immediate shutdown, a fast shutdown while the reader thread waits
on a silent source, stop()/start() again and again. Afterwards the copy resumes and the table holds
exactly the source's documents (changed and deleted ones included), the worker ended within 2 s
of a shutdown, and the server log shows no process terminated by a signal (but those the test
killed itself)."""

import json
import threading
import time

import pytest

from pgcluster import wait_for
from review28_lib import (MAPPING, ConnProxy, bad_lines, diff, got_rows, kill, load, log_mark, slow_table,
                          source_port, time_until_gone, wait_streaming, want_rows, worker_pid)
from river import create_river

LIMIT = 2.0


def map_c(pg, river):
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))


def drop(pg, river):
    pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
    pg.query(f'DROP TABLE IF EXISTS "{river}"')


def copied(pg, river):
    return pg.scalar(f'SELECT count(*) FROM "{river}"')


def change_some(coll, lo, hi, step):
    """change_some deletes and updates documents dlo..dhi at the source (every step-th)."""
    for i in range(lo, hi, step):
        coll.delete_one({"_id": f"d{i:05d}"})
        coll.update_one({"_id": f"d{i + 1:05d}"}, {"$set": {"v": 7}})


def check(pg, river, coll):
    problems = diff(got_rows(pg, river), want_rows(coll))
    assert problems == "", f"river {river}: {problems}"


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_kill9_mid_copy_resumes_exactly(river_pg, mongo, capture):
    pg, river = river_pg, f"r28kill_{capture[:2]}"
    mark = log_mark(pg)
    coll = load(mongo, river, 12000)
    slow_table(pg, river, 0.25)
    killed = []
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100, "capture": capture})
        map_c(pg, river)
        wait_for(lambda: copied(pg, river) >= 2000, 60, 0.05, "two batches copied")
        change_some(coll, 3000, 9000, 97)
        pid = worker_pid(pg, river)
        kill(pid)
        killed.append(pid)
        pg.wait_ready()
        wait_for(lambda: (p := worker_pid(pg, river)) and p != pid, 60, 0.1, "a new worker")
        change_some(coll, 9001, 11900, 89)
        wait_streaming(pg, river, 100)
        wait_for(lambda: diff(got_rows(pg, river), want_rows(coll)) == "", 30, 0.2, "the rows to settle")
        check(pg, river, coll)
    finally:
        drop(pg, river)
    assert bad_lines(pg, mark, killed) == []


def test_immediate_shutdown_mid_copy_resumes_exactly(river_pg, mongo):
    pg, river = river_pg, "r28immediate"
    mark = log_mark(pg)
    coll = load(mongo, river, 10000)
    slow_table(pg, river, 0.25)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        map_c(pg, river)
        wait_for(lambda: copied(pg, river) >= 2000, 60, 0.05, "two batches copied")
        change_some(coll, 2500, 8000, 101)
        pg.stop("immediate")
        change_some(coll, 8001, 9900, 103)
        pg.start()
        wait_streaming(pg, river, 100)
        wait_for(lambda: diff(got_rows(pg, river), want_rows(coll)) == "", 30, 0.2, "the rows to settle")
        check(pg, river, coll)
    finally:
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_fast_shutdown_while_the_reader_thread_waits_on_a_silent_source(river_pg, mongo):
    """The reader thread's getMore is never answered; a fast shutdown must end the worker within 2 s
    (and the server shut down); after a start, with the source answering again, the copy resumes."""
    pg, river = river_pg, "r28fastsilent"
    mark = log_mark(pg)
    coll = load(mongo, river, 8000)
    proxy = ConnProxy(source_port(mongo))
    stall = [True]
    proxy.policy = lambda conn, name, reply: ("stall" if stall[0] and conn.reader and name == "getMore"
                                              and conn.replies >= 1 else "send")
    try:
        create_river(pg, river, proxy.uri("&socketTimeoutMS=60000"), {"batch_size": 100})
        map_c(pg, river)
        wait_for(lambda: any(c.stalled for c in proxy.conns), 60, 0.05, "the reader thread's getMore to stall")
        time.sleep(1.0)
        pid = worker_pid(pg, river)
        assert pid, "no worker"
        stopper = threading.Thread(target=pg.stop, args=("fast",))
        started = time.monotonic()
        stopper.start()
        took = time_until_gone(pid, 60)
        stopper.join(60)
        took_server = time.monotonic() - started
        stall[0] = False
        pg.start()
        assert took < LIMIT, f"the worker took {took:.2f} s to end in a fast shutdown (server: {took_server:.2f} s)"
        wait_streaming(pg, river, 100)
        check(pg, river, coll)
    finally:
        stall[0] = False
        drop(pg, river)
        proxy.close()
    assert bad_lines(pg, mark) == []


def test_stop_start_again_and_again_during_a_copy(river_pg, mongo):
    pg, river = river_pg, "r28stopstart"
    mark = log_mark(pg)
    coll = load(mongo, river, 12000)
    slow_table(pg, river, 0.15)
    worst = 0.0
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        map_c(pg, river)
        for round_ in range(6):
            wait_for(lambda: worker_pid(pg, river), 30, 0.05, "the worker")
            time.sleep(0.4 + 0.23 * round_)
            coll.delete_one({"_id": f"d{1000 + 1500 * round_:05d}"})
            coll.update_one({"_id": f"d{1001 + 1500 * round_:05d}"}, {"$set": {"v": 3}})
            started = time.monotonic()
            pg.query("SELECT mongo_river.stop(%s)", (river,))
            worst = max(worst, time.monotonic() - started)
            pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_streaming(pg, river, 100)
        wait_for(lambda: diff(got_rows(pg, river), want_rows(coll)) == "", 30, 0.2, "the rows to settle")
        check(pg, river, coll)
        assert worst < LIMIT, f"stop() took {worst:.2f} s during a copy"
    finally:
        drop(pg, river)
    assert bad_lines(pg, mark) == []
