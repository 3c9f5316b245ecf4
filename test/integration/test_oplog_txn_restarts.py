"""Review 25 of 27e4699 (oplog: an entry without ts is unreadable, the reader never moves back;
while a prepared / partialTxn transaction waits, the stored position stays before it and records
appliedThrough, and a restart skips the entries already applied).

A rewriting proxy (test/lib/evilproxy.py, the policy of test_oplog_hostile_entries.py) turns marker
inserts into synthetic prepared / partialTxn / commit / abort entries. Workers are terminated at
every point around them; each change must be applied once: rows, changes_applied, and the versions
of a history-mode river over the same collection (README "Capture": a restart collects the
transaction again without applying those twice; "Modes": a change seen twice is recorded once)."""

import json
import os
import re
import sys
import time

import pytest
from bson.int64 import Int64
from bson.timestamp import Timestamp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import test_oplog_hostile_entries as H  # noqa: E402  (module import: its tests are not collected here)

from evilproxy import EvilProxy  # noqa: E402
from pgcluster import wait_for  # noqa: E402
from river import create_river  # noqa: E402

DB = "r25ox"
NS = f"{DB}.c"
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}}}
DEATH = re.compile(r"terminated by signal")
URI_EXTRA = "&socketTimeoutMS=4000&connectTimeoutMS=2000"


def ins(_id, n=1):
    return {"op": "i", "ns": NS, "o": {"_id": _id, "n": n}}


def prepare(lsid, txn, *ids):
    return lambda e: H.apply_ops(e, [ins(i) for i in ids], lsid, txn, prepare=True)


def partial(lsid, txn, *ids):
    return lambda e: H.apply_ops(e, [ins(i) for i in ids], lsid, txn, partialTxn=True)


def last_of_chain(lsid, txn, count, *ids):
    return lambda e: H.apply_ops(e, [ins(i) for i in ids], lsid, txn, count=Int64(count))


def commit(lsid, txn):
    return lambda e: H.command(e, {"commitTransaction": 1, "commitTimestamp": Timestamp(1, 1)}, lsid, txn)


def abort(lsid, txn):
    return lambda e: H.command(e, {"abortTransaction": 1}, lsid, txn)


class Env:
    def __init__(self, pg, coll, policy, proxy, rivers, offset):
        self.pg, self.coll, self.policy, self.proxy, self.rivers, self.offset = pg, coll, policy, proxy, rivers, offset

    def rows(self, river):
        return dict(self.pg.query(f"SELECT id, n FROM {river}"))

    def applied(self):
        return {r: self.pg.scalar("SELECT changes_applied FROM mongo_river.status WHERE river = %s", (r,))
                for r in self.rivers}

    def pid(self, river):
        return self.pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))

    def position(self, river):
        return self.pg.scalar("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))

    def kill_all(self):
        old = {r: self.pid(r) for r in self.rivers}
        for r, pid in old.items():
            if pid:
                self.pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        for r, pid in old.items():
            # a terminated worker is restarted after a growing backoff (README): start() at once
            wait_for(lambda: self.pid(r) != pid, 20, 0.05, f"{r}'s worker to exit")
            self.pg.query("SELECT mongo_river.start(%s)", (r,))
            wait_for(lambda: self.pid(r) not in (None, pid), 150, 0.1, f"a new worker for {r}")
        time.sleep(1.5)  # the new workers read from the stored position

    def write(self, marker, builder=None):
        if builder:
            self.policy.cases[marker] = builder
        self.coll.insert_one({"_id": marker, "n": 0})

    def settle(self, sentinel):
        self.coll.insert_one({"_id": sentinel, "n": 0})
        for r in self.rivers:
            wait_for(lambda: sentinel in self.rows(r), 60, 0.1, f"{sentinel} in {r}")
            assert self.pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (r,)), r

    def versions(self, prefix):
        hist = [r for r in self.rivers if r.endswith("h")][0]
        return dict(self.pg.query(f"SELECT id, count(*) FROM {hist} WHERE id LIKE %s GROUP BY id",
                                  (prefix.replace("_", "\\_") + "%",)))

    def alive(self):
        deaths = [line for line in self.pg.log()[self.offset:].splitlines() if DEATH.search(line)]
        assert not deaths, deaths[:3]
        for r in self.rivers:
            phase, err = self.pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = %s", (r,))[0]
            assert phase == "streaming", (r, phase, err)


@pytest.fixture(scope="module")
def env(river_pg, mongo):
    if not mongo.is_peer:
        pytest.skip("needs the peer behind the proxy")
    pg = river_pg
    client = mongo.client()
    client.drop_database(DB)
    coll = client[DB].c
    coll.insert_many([{"_id": f"d{i}", "n": i} for i in range(3)])
    policy = H.OplogRewrite()
    proxy = EvilProxy(H.source_port(mongo), policy)
    rivers = ["r25ox", "r25oxh"]
    for r in rivers:
        create_river(pg, r, proxy.uri(URI_EXTRA), {"capture": "oplog", "batch_size": 10})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (r, NS, r, json.dumps(MAPPING), json.dumps({"mode": "history"} if r.endswith("h") else {})))
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (r,))
    e = Env(pg, coll, policy, proxy, rivers, len(pg.log()))
    e.client = client
    e.mongo = mongo
    yield e
    for r in rivers:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (r,))
    proxy.close()
    client.drop_database(DB)


def check(env, prefix, present, absent, changes, before, sentinel):
    env.settle(sentinel)
    env.alive()
    got = {r: env.applied()[r] - before[r] for r in env.rivers}
    for r in env.rivers:
        rows = env.rows(r) if not r.endswith("h") else dict(
            env.pg.query(f"SELECT id, n FROM {r}_latest"))
        missing = [k for k in present if k not in rows]
        extra = [k for k in absent if k in rows]
        assert not missing and not extra, f"{r}: missing {missing}, applied though aborted {extra}"
    versions = env.versions(prefix)
    twice = {k: v for k, v in versions.items() if v != 1}
    assert not twice, f"history mode recorded changes twice: {twice}"
    assert got == {r: changes for r in env.rivers}, f"changes_applied counted {got} for {changes} changes"


# Restart points around one prepared transaction: (name, kill before the later inserts, after
# them, after the commit / abort)
POINTS = ["none", "after_prepare", "after_inserts", "after_end", "every"]
# Each kill costs a restart backoff (seconds, growing): the default runs one point (both ends), the
# size knob OPLOG_RESTART_POINTS=all (or a comma-separated list) all of them and the long tests.
ALL = os.environ.get("OPLOG_RESTART_POINTS") == "all"
RUN_POINTS = POINTS if ALL else os.environ.get("OPLOG_RESTART_POINTS", "after_inserts").split(",")


@pytest.mark.parametrize("point", RUN_POINTS)
@pytest.mark.parametrize("end", ["commit", "abort"])
def test_prepared_restart_points(env, point, end):
    p = f"pp{end[0]}{POINTS.index(point)}_"
    lsid = H.lsid_of(2000 + POINTS.index(point) * 2 + (end == "abort"))
    before = env.applied()
    env.write(p + "prep", prepare(lsid, 1, p + "txa", p + "txb"))
    time.sleep(0.8)
    if point in ("after_prepare", "every"):
        env.kill_all()
    for i in range(4):
        env.write(p + f"w{i}")
    for r in env.rivers:
        wait_for(lambda: p + "w3" in env.rows(r), 30, 0.1, f"the inserts after the prepare in {r}")
    print("position while the transaction waits:", env.position(env.rivers[0]))
    if point in ("after_inserts", "every"):
        env.kill_all()
    env.write(p + "end", (commit if end == "commit" else abort)(lsid, 1))
    time.sleep(0.8)
    if point in ("after_end", "every"):
        env.kill_all()
    for i in range(2):
        env.write(p + f"z{i}")
    txn = [p + "txa", p + "txb"]
    check(env, p, present=[p + f"w{i}" for i in range(4)] + [p + "z0", p + "z1"] + (txn if end == "commit" else []),
          absent=[] if end == "commit" else txn, changes=6 + (2 if end == "commit" else 0) + 1, before=before,
          sentinel=p + "sent")


@pytest.mark.skipif(not ALL, reason="long (restart backoffs, 2-3 min); OPLOG_RESTART_POINTS=all runs it")
def test_two_prepared_at_once(env):
    """P1, P2 prepared; inserts; kill; C1; inserts; kill; abort of P2; kill; inserts."""
    p = "two_"
    l1, l2 = H.lsid_of(3001), H.lsid_of(3002)
    before = env.applied()
    env.write(p + "p1", prepare(l1, 4, p + "a1"))
    env.write(p + "p2", prepare(l2, 4, p + "b1", p + "b2"))
    env.write(p + "w0")
    env.write(p + "w1")
    for r in env.rivers:
        wait_for(lambda: p + "w1" in env.rows(r), 30, 0.1, "w1")
    env.kill_all()
    env.write(p + "c1", commit(l1, 4))
    env.write(p + "w2")
    for r in env.rivers:
        wait_for(lambda: p + "w2" in env.rows(r) and p + "a1" in env.rows(r), 30, 0.1, "w2 and a1")
    print("position:", env.position(env.rivers[0]))
    env.kill_all()
    env.write(p + "ab2", abort(l2, 4))
    time.sleep(0.8)
    env.kill_all()
    env.write(p + "w3")
    check(env, p, present=[p + "a1", p + "w0", p + "w1", p + "w2", p + "w3"], absent=[p + "b1", p + "b2"],
          changes=5 + 1, before=before, sentinel=p + "sent")


@pytest.mark.skipif(not ALL, reason="long (restart backoffs, 2-3 min); OPLOG_RESTART_POINTS=all runs it")
def test_partial_chain_restarts(env):
    """A partialTxn chain (3 entries) with other writes and a kill between each entry."""
    p = "chain_"
    l1 = H.lsid_of(4001)
    before = env.applied()
    env.write(p + "c1", partial(l1, 9, p + "a"))
    env.write(p + "w0")
    time.sleep(0.8)
    env.kill_all()
    env.write(p + "c2", partial(l1, 9, p + "b"))
    env.write(p + "w1")
    time.sleep(0.8)
    env.kill_all()
    env.write(p + "c3", last_of_chain(l1, 9, 3, p + "c"))
    env.write(p + "w2")
    time.sleep(0.8)
    env.kill_all()
    check(env, p, present=[p + x for x in ("a", "b", "c", "w0", "w1", "w2")], absent=[], changes=6 + 1,
          before=before, sentinel=p + "sent")


@pytest.mark.skipif(not ALL, reason="long (restart backoffs); OPLOG_RESTART_POINTS=all runs it")
def test_prepared_then_decreasing_and_duplicate_ts(env):
    """While a prepared transaction waits: an insert whose ts goes back (Timestamp(1, 1)) and one
    whose ts repeats the previous entry's, then a kill; the river must not stall nor apply twice, and
    the one going back is rejected, not lost."""
    p = "dts_"
    lsid = H.lsid_of(5001)
    before = env.applied()
    seen = {}

    def remember(e):
        seen["ts"] = e["ts"]
        return H.with_fields(e, [])

    env.write(p + "prep", prepare(lsid, 2, p + "t"))
    env.write(p + "w0", remember)
    env.write(p + "back", lambda e: H.with_fields(e, [("ts", Timestamp(1, 1))], skip=("ts",)))
    env.write(p + "same", lambda e: H.with_fields(e, [("ts", seen.get("ts", e["ts"]))], skip=("ts",)))
    env.write(p + "w1")
    for r in env.rivers:
        wait_for(lambda: p + "w1" in env.rows(r), 30, 0.1, "w1")
    print("position:", env.position(env.rivers[0]))
    env.kill_all()
    env.write(p + "end", commit(lsid, 2))
    env.kill_all()
    # The entry going back cannot be placed: rejected with why (it was skipped as older than the
    # copy, its change lost: review 25 finding d), in every river; the rest applied once.
    check(env, p, present=[p + x for x in ("t", "w0", "same", "w1")], absent=[p + "back"], changes=4 + 1,
          before=before, sentinel=p + "sent")
    for r in env.rivers:
        errors = [e for (e,) in env.pg.query("SELECT error FROM mongo_river.rejects WHERE river = %s AND document_id = %s",
                                             (r, p + "back"))]
        assert errors and all("goes back" in e for e in errors), (r, errors)


def test_missing_ts_on_commit_and_prepare(env):
    """A prepare without ts, and a commit without ts of a prepared transaction: both are unreadable
    (rejected); what becomes of the river's position? (It must not stay before the prepare forever
    while writes go on: every restart would re-read from there.)"""
    p = "nots_"
    lsid = H.lsid_of(6001)
    env.write(p + "prep", prepare(lsid, 3, p + "t"))
    env.write(p + "w0")
    env.write(p + "end", commit(lsid, 3))
    for r in env.rivers:
        wait_for(lambda: p + "t" in env.rows(r), 30, 0.1, "the committed transaction")
    # now: a prepare whose commit has no ts
    l2 = H.lsid_of(6002)
    env.write(p + "prep2", prepare(l2, 1, p + "u"))
    rej0 = env.pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (env.rivers[0],))
    env.write(p + "end2", lambda e: H.with_fields(
        e, [("op", "c"), ("ns", "admin.$cmd"), ("lsid", l2), ("txnNumber", Int64(1)),
            ("o", {"commitTransaction": 1, "commitTimestamp": Timestamp(1, 1)})],
        skip=("op", "ns", "o", "ui", "o2", "ts")))
    for i in range(3):
        env.write(p + f"x{i}")
    for r in env.rivers:
        wait_for(lambda: p + "x2" in env.rows(r), 30, 0.1, "x2")
    time.sleep(1)
    pos = env.position(env.rivers[0])
    newest = next(env.client.local["oplog.rs"].find().sort("$natural", -1).limit(1))["ts"]
    print("position after a ts-less commit:", pos, "newest oplog entry", newest, "rows:", sorted(
        k for k in env.rows(env.rivers[0]) if k.startswith(p)))
    env.alive()
    rej = env.pg.query("SELECT operation, left(error, 120) FROM mongo_river.rejects WHERE river = %s "
                       "ORDER BY id DESC LIMIT 3", (env.rivers[0],))
    print("rejects:", rej)
    assert p + "u" not in env.rows(env.rivers[0]), f"a transaction whose commit entry was rejected as " \
        f"unreadable was applied: rejects {rej}"
    stored = json.loads(pos)
    t = stored.get("oplogAfter", {}).get("$timestamp", {}).get("t", 0)
    assert t >= newest.time - 5, f"the stored position {pos} stays before the transaction whose commit was " \
                                 f"unreadable (newest entry {newest}): every restart reads from there again"


def test_switch_change_stream_to_oplog_with_a_prepare_first(env):
    """A river in capture change_stream (stored position: a resume token) is switched to oplog;
    the first entry its oplog reader meets is a prepare, then 4 inserts are applied, then the worker
    is terminated, then the commit. Each insert must be applied once (changes_applied 4 + 1 + 1 + 1)."""
    pg = env.pg
    river = "r25oxsw"
    create_river(pg, river, env.proxy.uri(URI_EXTRA), {"capture": "change_stream", "batch_size": 10})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
             (river, NS, river, json.dumps(MAPPING), json.dumps({"mode": "history"})))
    try:
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        env.coll.insert_one({"_id": "sw_cs", "n": 1})
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        time.sleep(1)
        pg.query("SELECT mongo_river.alter_river(%s, NULL, %s)", (river, json.dumps({"capture": "oplog"})))
        print("stored position at the switch:", pg.scalar("SELECT position FROM mongo_river.progress "
                                                          "WHERE river = %s", (river,)))
        lsid = H.lsid_of(7001)
        env.write("sw_prep", prepare(lsid, 1, "sw_t"))
        pg.query("SELECT mongo_river.start(%s)", (river,))
        applied0 = pg.scalar("SELECT changes_applied FROM mongo_river.status WHERE river = %s", (river,)) or 0
        for i in range(4):
            env.write(f"sw_w{i}")
        wait_for(lambda: pg.scalar(f"SELECT count(DISTINCT id) FROM {river} WHERE id LIKE 'sw\\_w%%'") == 4,
                 60, 0.1, "the inserts after the prepare")
        time.sleep(1)
        pos = pg.scalar("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))
        print("position while the transaction waits:", pos)
        pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
        applied1 = pg.scalar("SELECT changes_applied FROM mongo_river.status WHERE river = %s", (river,))
        pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
                 not in (None, pid), 60, 0.1, "a new worker")
        time.sleep(2)
        env.write("sw_end", commit(lsid, 1))
        env.write("sw_after")
        wait_for(lambda: "sw_after" in dict(pg.query(f"SELECT id, n FROM {river}")), 60, 0.1, "sw_after")
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        versions = dict(pg.query(f"SELECT id, count(*) FROM {river} WHERE id LIKE 'sw%%' GROUP BY id"))
        applied2 = pg.scalar("SELECT changes_applied FROM mongo_river.status WHERE river = %s", (river,))
        print("versions", versions, "applied", applied0, applied1, applied2)
        env.alive()
        assert "sw_t" in versions, versions
        twice = {k: v for k, v in versions.items() if v != 1}
        assert not twice, f"position {pos} at the kill; versions recorded twice: {twice}"
        assert applied2 - applied1 == 2, f"position {pos} at the kill; changes_applied counted " \
            f"{applied2 - applied1} after the restart for 2 changes (the prepared transaction's insert and sw_after)"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_switch_oplog_to_change_stream_while_a_prepare_waits(env):
    """A history-mode oplog river with a prepared transaction waiting and 4 inserts applied after
    it (stored: oplogAfter before the prepare, appliedThrough) is switched to change_stream. The
    change stream starts after oplogAfter: are the 4 inserts recorded twice?"""
    pg = env.pg
    river = "r25oxsw2"
    create_river(pg, river, env.proxy.uri(URI_EXTRA), {"capture": "oplog", "batch_size": 10})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
             (river, NS, river, json.dumps(MAPPING), json.dumps({"mode": "history"})))
    try:
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        lsid = H.lsid_of(7101)
        env.write("sv_prep", prepare(lsid, 1, "sv_t"))
        for i in range(4):
            env.write(f"sv_w{i}")
        wait_for(lambda: pg.scalar(f"SELECT count(DISTINCT id) FROM {river} WHERE id LIKE 'sv\\_w%%'") == 4,
                 60, 0.1, "the inserts after the prepare")
        time.sleep(1)
        pos = pg.scalar("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        time.sleep(1)
        pg.query("SELECT mongo_river.alter_river(%s, NULL, %s)", (river, json.dumps({"capture": "change_stream"})))
        pg.query("SELECT mongo_river.start(%s)", (river,))
        env.write("sv_after")
        wait_for(lambda: "sv_after" in dict(pg.query(f"SELECT id, n FROM {river}")), 60, 0.1, "sv_after")
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        versions = dict(pg.query(f"SELECT id, count(*) FROM {river} WHERE id LIKE 'sv\\_w%%' GROUP BY id"))
        print("position at the switch", pos, "versions", versions)
        env.alive()
        twice = {k: v for k, v in versions.items() if v != 1}
        assert not twice, f"position {pos} at the switch; versions recorded twice: {twice}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
