"""Review 28: what users do while a copy reads ahead: pg_reload_conf toggling copy_reads_ahead,
alter_river, resync, unmap_collection + map again, mapping another collection, drop_river, many
rivers copying at once. The copy's reader thread must run with every signal blocked. Afterwards each
table equals its source and no server process was terminated by a signal."""

import json
import threading
import time

from pgcluster import wait_for
from review28_lib import (MAPPING, bad_lines, diff, got_rows, load, log_mark, set_setting, slow_table, threads,
                          wait_streaming, want_rows, worker_pid)
from river import create_river, wait_synced


def map_c(pg, river, coll="c", table=None):
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{river}.{coll}", table or river, json.dumps(MAPPING)))


def drop(pg, river, *tables):
    pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
    for t in tables or (river,):
        pg.query(f'DROP TABLE IF EXISTS "{t}"')


def settle(pg, river, table, coll):
    wait_streaming(pg, river, 100)
    wait_synced(pg, river, 60)
    problems = diff(got_rows(pg, table), want_rows(coll))
    assert problems == "", f"river {river}, table {table}: {problems}"


def sigblk(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    return None


def test_reader_thread_blocks_every_signal(river_pg, mongo):
    pg, river = river_pg, "r28signals"
    mark = log_mark(pg)
    coll = load(mongo, river, 8000)
    slow_table(pg, river, 0.3)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        map_c(pg, river)
        pid = wait_for(lambda: worker_pid(pg, river), 30, 0.05, "the worker")
        tids = wait_for(lambda: [t for t in threads(pid) if t != pid], 30, 0.02, "the reader thread")
        masks = {t: sigblk(pid, t) for t in tids}
        for tid, mask in masks.items():
            for sig in (1, 2, 3, 10, 12, 13, 14, 15, 17):  # HUP INT QUIT USR1 USR2 PIPE ALRM TERM CHLD
                assert mask is None or mask & (1 << (sig - 1)), \
                    f"thread {tid} of worker {pid} does not block signal {sig}: SigBlk {mask:016x}"
        settle(pg, river, river, coll)
    finally:
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_reload_toggling_reads_ahead_during_copies(river_pg, mongo):
    pg, river = river_pg, "r28toggle"
    mark = log_mark(pg)
    coll = load(mongo, river, 10000)
    slow_table(pg, river, 0.1)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        map_c(pg, river)
        for i in range(8):
            set_setting(pg, "mongo_river.copy_reads_ahead", "off" if i % 2 == 0 else "on")
            coll.delete_one({"_id": f"d{1000 * i + 500:05d}"})
            coll.update_one({"_id": f"d{1000 * i + 501:05d}"}, {"$set": {"v": 9}})
            pg.query("SELECT mongo_river.stop(%s)", (river,)) if i % 3 == 2 else None
            pg.query("SELECT mongo_river.start(%s)", (river,)) if i % 3 == 2 else None
            time.sleep(0.3)
        set_setting(pg, "mongo_river.copy_reads_ahead", "on")
        pg.query(f'DROP TRIGGER slow ON "{river}"')
        settle(pg, river, river, coll)
    finally:
        set_setting(pg, "mongo_river.copy_reads_ahead", "on")
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_alter_resync_remap_and_map_another_during_a_copy(river_pg, mongo):
    pg, river = river_pg, "r28ops"
    mark = log_mark(pg)
    coll = load(mongo, river, 10000)
    other = mongo.client()[river].o
    other.insert_many([{"_id": f"o{i:05d}", "n": i, "v": 0} for i in range(3000)])
    slow_table(pg, river, 0.15)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        map_c(pg, river)
        wait_for(lambda: pg.scalar(f'SELECT count(*) FROM "{river}"') >= 1000, 60, 0.05, "a batch")
        pg.query("SELECT mongo_river.alter_river(%s, NULL, %s)", (river, json.dumps({"batch_size": 70})))
        coll.delete_many({"_id": {"$gte": "d03000", "$lt": "d03100"}})
        time.sleep(0.5)
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, f"{river}.c"))
        coll.update_many({"_id": {"$gte": "d05000", "$lt": "d05100"}}, {"$set": {"v": 5}})
        time.sleep(0.7)
        map_c(pg, river, "o", f"{river}_o")
        time.sleep(0.5)
        pg.query("SELECT mongo_river.unmap_collection(%s, %s)", (river, f"{river}.c"))
        coll.delete_many({"_id": {"$gte": "d07000", "$lt": "d07050"}})
        pg.query(f'TRUNCATE "{river}"')
        map_c(pg, river)
        time.sleep(0.5)
        pg.query(f'DROP TRIGGER slow ON "{river}"')
        settle(pg, river, river, coll)
        settle(pg, river, f"{river}_o", other)
    finally:
        drop(pg, river, river, f"{river}_o")
    assert bad_lines(pg, mark) == []


def test_drop_river_mid_copy_and_terminate(river_pg, mongo):
    pg, river = river_pg, "r28dropmid"
    mark = log_mark(pg)
    load(mongo, river, 8000)
    slow_table(pg, river, 0.2)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 100})
        map_c(pg, river)
        wait_for(lambda: pg.scalar(f'SELECT count(*) FROM "{river}"') >= 1000, 60, 0.05, "a batch")
        pid = worker_pid(pg, river)
        pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: (p := worker_pid(pg, river)) and p != pid, 30, 0.05, "a new worker")
        time.sleep(0.5)
        pid = worker_pid(pg, river)
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        wait_for(lambda: not worker_pid(pg, river), 10, 0.05, "the worker to end")
    finally:
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_many_rivers_copying_at_once(river_pg, mongo):
    pg = river_pg
    mark = log_mark(pg)
    rivers = [f"r28many{i}" for i in range(6)]
    colls = {}
    try:
        for i, river in enumerate(rivers):
            colls[river] = load(mongo, river, 4000 + 500 * i)
            create_river(pg, river, mongo.uri, {"batch_size": 50 + 10 * i, "capture": "oplog" if i % 2 else "change_stream"})
        for river in rivers:
            map_c(pg, river)
        time.sleep(0.5)
        for river in rivers:
            colls[river].delete_one({"_id": "d02001"})
            colls[river].update_one({"_id": "d03001"}, {"$set": {"v": 4}})
        for river in rivers:
            settle(pg, river, river, colls[river])
    finally:
        for river in rivers:
            drop(pg, river)
    assert bad_lines(pg, mark) == []
