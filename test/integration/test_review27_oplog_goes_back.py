"""Review 27: oplog entries whose ts goes back, inside transactions and around restarts (README,
"Capture": "An entry whose ts goes back ... moves nothing and cannot be placed ...: its changes are
rejected with why, and retry_rejects reads their documents again"). Uses the `evil` proxy of
test_oplog_hostile_entries.py, which rewrites the oplog entries of marker inserts."""

import time

import pytest

from bson.int64 import Int64
from bson.timestamp import Timestamp

from pgcluster import wait_for
from test_oplog_hostile_entries import (NS, apply_ops, assert_alive, command, evil, insert_op,  # noqa: F401
                                        last_reject_id, lsid_of, rejects_of, rows, with_fields)


def txn_entry(e, ops, lsid, txn, ts=None, **flags):
    """txn_entry: an applyOps entry of a transaction, with its ts replaced by ts when given."""
    fields = [("op", "c"), ("ns", "admin.$cmd"), ("lsid", lsid), ("txnNumber", Int64(txn)),
              ("o", {"applyOps": ops, **flags})]
    skip = ("op", "ns", "o", "ui", "o2")
    if ts is not None:
        fields.append(("ts", ts))
        skip += ("ts",)
    return with_fields(e, fields, skip=skip)


def test_transaction_whose_last_applyops_goes_back_can_be_retried(evil):
    """A partialTxn chain whose last applyOps (the commit) has a ts going back: its transaction's
    inserts are rejected ("goes back"), each reject's document_id naming its document. The README
    says retry_rejects reads their documents again: the documents exist at the source (the marker
    inserts), so retry_rejects must resolve both rejects and the rows must appear."""
    pg, river, coll, policy, offset = evil
    L = lsid_of(271)
    policy.cases["gbt_p1"] = lambda e: txn_entry(e, [insert_op("gbt_p1", 1)], L, 1, partialTxn=True)
    policy.cases["gbt_commit"] = lambda e: txn_entry(e, [insert_op("gbt_commit", 2)], L, 1, ts=Timestamp(1, 1),
                                                     count=Int64(2))
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "gbt_p1", "n": 1})
    coll.insert_one({"_id": "gbt_commit", "n": 2})
    coll.insert_one({"_id": "gbt_after", "n": 3})
    wait_for(lambda: "gbt_after" in rows(pg, river), 30, 0.1, "the sentinel after the transaction")
    rejected = rejects_of(pg, river, since)
    print("rejects:", rejected)
    assert_alive(pg, river, offset)
    # (A reader opened again from before the transaction can meet it again: a reject more of the same
    # document, never a lost one; see test_oplog_hostile_entries.py.)
    assert sorted(set(r[2] for r in rejected)) == ["gbt_commit", "gbt_p1"], rejected
    assert all("goes back" in r[4] for r in rejected), rejected
    resolved = sum(pg.scalar("SELECT mongo_river.retry_rejects(%s, %s)", (river, r[0])) for r in rejected)
    resolved = 2 if resolved == len(rejected) else resolved
    left = pg.query("SELECT document_id, left(error, 100) FROM mongo_river.rejects WHERE river = %s AND id > %s",
                    (river, since))
    got = rows(pg, river)
    assert resolved == 2 and left == [] and got.get("gbt_p1") == 1 and got.get("gbt_commit") == 2, \
        f"retry_rejects resolved {resolved}; rejects left {left}; rows {got.get('gbt_p1')}, {got.get('gbt_commit')}"


def test_prepared_transaction_whose_commit_goes_back_can_be_retried(evil):
    """A prepared transaction whose commitTransaction entry has a ts going back: the transaction's
    insert is rejected ("goes back", raw = the commitTransaction entry). retry_rejects must re-read
    the document (it exists at the source) and resolve the reject."""
    pg, river, coll, policy, offset = evil
    L = lsid_of(272)
    policy.cases["gbp_prep"] = lambda e: txn_entry(e, [insert_op("gbp_prep", 5)], L, 1, prepare=True)
    policy.cases["gbp_commit"] = lambda e: with_fields(
        e, [("op", "c"), ("ns", "admin.$cmd"), ("lsid", L), ("txnNumber", Int64(1)),
            ("o", {"commitTransaction": 1, "commitTimestamp": Timestamp(1, 1)}), ("ts", Timestamp(1, 1))],
        skip=("op", "ns", "o", "ui", "o2", "ts"))
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "gbp_prep", "n": 5})
    coll.insert_one({"_id": "gbp_commit", "n": 6})
    coll.insert_one({"_id": "gbp_after", "n": 7})
    wait_for(lambda: "gbp_after" in rows(pg, river), 30, 0.1, "the sentinel after the transaction")
    rejected = rejects_of(pg, river, since)
    print("rejects:", rejected)
    assert_alive(pg, river, offset)
    assert [r[2] for r in rejected] == ["gbp_prep"] and "goes back" in rejected[0][4], rejected
    # (its own reject: the earlier tests' rejects of this river are resolvable too)
    resolved = pg.scalar("SELECT mongo_river.retry_rejects(%s, %s)", (river, rejected[0][0]))
    left = pg.query("SELECT document_id, left(error, 100) FROM mongo_river.rejects WHERE river = %s AND id > %s",
                    (river, since))
    assert resolved == 1 and left == [] and rows(pg, river).get("gbp_prep") == 5, \
        f"retry_rejects resolved {resolved}; rejects left {left}; row {rows(pg, river).get('gbp_prep')}"


def test_partial_txn_entry_going_back_is_not_applied(evil):
    """README: an entry whose ts goes back "cannot be placed ...: its changes are rejected with why".
    A partialTxn entry (the first of a chain) whose ts goes back, then the chain's commit (ts going
    forward): the going-back entry's insert is applied with the transaction, without a reject."""
    pg, river, coll, policy, offset = evil
    L = lsid_of(273)
    policy.cases["gbq_p1"] = lambda e: txn_entry(e, [insert_op("gbq_p1", 1)], L, 1, ts=Timestamp(1, 1),
                                                 partialTxn=True)
    policy.cases["gbq_commit"] = lambda e: txn_entry(e, [insert_op("gbq_commit", 2)], L, 1, count=Int64(2))
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "gbq_p1", "n": 1})
    coll.insert_one({"_id": "gbq_commit", "n": 2})
    coll.insert_one({"_id": "gbq_after", "n": 3})
    wait_for(lambda: "gbq_after" in rows(pg, river), 30, 0.1, "the sentinel after the transaction")
    rejected = rejects_of(pg, river, since)
    got = rows(pg, river)
    print("rejects:", rejected, "rows:", got.get("gbq_p1"), got.get("gbq_commit"))
    assert_alive(pg, river, offset)
    assert "gbq_p1" not in got and any(r[2] == "gbq_p1" and "goes back" in r[4] for r in rejected), \
        f"the change of a partialTxn entry going back: row {got.get('gbq_p1')}, rejects {rejected}"


def test_entry_going_back_first_after_a_restart_is_rejected(evil):
    """The first entry a restarted worker reads has a ts older than the stored position (the
    position the worker committed before it was terminated): it goes back as much as one read
    before it in the same run, and must be rejected the same way, not applied (README: "older than
    the mapping's copy, applying it could undo a later change")."""
    pg, river, coll, policy, offset = evil
    coll.insert_one({"_id": "gbr_before", "n": 1})
    wait_for(lambda: "gbr_before" in rows(pg, river), 30, 0.1, "the row before the restart")
    time.sleep(0.5)
    pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
    position = pg.query("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))[0][0]
    pg.query("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(1)
    policy.cases["gbr_first"] = lambda e: with_fields(e, [("ts", Timestamp(1, 1))], skip=("ts",))
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "gbr_first", "n": 2})
    coll.insert_one({"_id": "gbr_after", "n": 3})
    wait_for(lambda: "gbr_after" in rows(pg, river), 60, 0.1, "the row after the restart")
    got = rows(pg, river)
    rejected = rejects_of(pg, river, since)
    print("position before the restart", position, "rejects", rejected)
    assert "gbr_first" in policy.fired
    assert "gbr_first" not in got and any(r[2] == "gbr_first" and "goes back" in r[4] for r in rejected), \
        f"an entry older than the stored position {position}, first after a restart: row {got.get('gbr_first')}, " \
        f"rejects {rejected}"


def test_big_transaction_going_back_stores_its_entry_once_per_operation(evil):
    """A committed applyOps transaction of N inserts whose ts goes back: each of its N changes is
    rejected, and each reject's raw is a copy of the whole entry (N operations): N x N operations of
    raw in the worker's memory and in rejects. With N = 800 that is some 30 MB for a 40 kB entry;
    a 16 MB entry of 300,000 small inserts would need terabytes (the worker dies). Each reject's
    raw must be bounded by what concerns its own change, not the whole transaction."""
    pg, river, coll, policy, offset = evil
    n = 800
    L = lsid_of(275)
    ops = [insert_op(f"gbbig_{i:04d}", i) for i in range(n)]
    policy.cases["gbbig"] = lambda e: txn_entry(e, ops, L, 1, ts=Timestamp(1, 1))
    coll.insert_one({"_id": "gbbig_pre", "n": 0})  # an entry read before it in this worker's run
    wait_for(lambda: "gbbig_pre" in rows(pg, river), 30, 0.1, "the row before")
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "gbbig", "n": 1})
    coll.insert_one({"_id": "gbbig_after", "n": 2})
    wait_for(lambda: "gbbig_after" in rows(pg, river), 60, 0.2, "the sentinel after the big transaction")
    count, total, biggest = pg.query("SELECT count(*), sum(octet_length(raw)), max(octet_length(raw)) "
                                     "FROM mongo_river.rejects WHERE river = %s AND id > %s", (river, since))[0]
    got = rows(pg, river)
    print("rejects", count, "raw bytes", total, "largest", biggest, "rows", sum(1 for k in got if k.startswith("gbbig_0")),
          "fired", policy.fired[-2:], rejects_of(pg, river, since)[:2])
    assert_alive(pg, river, offset)
    assert count == n, count
    assert biggest < 2000, f"{count} rejects of one transaction hold {total} bytes of raw ({biggest} each): " \
                           f"each a copy of the whole {n}-operation entry"


def test_entry_going_back_first_after_the_initial_copy_is_rejected(evil):
    """No restart needed: a new river (over the same proxy) copies the collection and then reads an
    entry whose ts goes back before any other entry: the worker has no entry "read before it", so
    the entry is taken as in order, and then dropped as older than the mapping's copy: neither
    applied nor rejected (review 25's finding d, still there for the first entry of a run)."""
    pg, river, coll, policy, offset = evil
    fresh = "r27fresh"
    import json as _json
    from river import create_river as _create
    _create(pg, fresh, policy.proxy.uri("&socketTimeoutMS=4000&connectTimeoutMS=2000"),
            {"capture": "oplog", "batch_size": 10})
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (fresh, NS, fresh, _json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                                                          "n": {"path": "n", "type": "bigint"}}})))
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (fresh,))
        time.sleep(1)
        policy.cases["gbs_first"] = lambda e: with_fields(e, [("ts", Timestamp(1, 1))], skip=("ts",))
        since = last_reject_id(pg, fresh)
        coll.insert_one({"_id": "gbs_first", "n": 2})
        coll.insert_one({"_id": "gbs_after", "n": 3})
        wait_for(lambda: "gbs_after" in rows(pg, fresh), 60, 0.1, "the row after")
        got = rows(pg, fresh)
        rejected = rejects_of(pg, fresh, since)
        assert "gbs_first" not in got and any(r[2] == "gbs_first" and "goes back" in r[4] for r in rejected), \
            f"the first entry after the copy, going back: row {got.get('gbs_first')}, rejects {rejected}"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (fresh,))


# Last in the module: it leaves the shared river's position in the future.
@pytest.mark.xfail(reason="left (README, Capture): one entry of a broken source whose ts is in the future moves "
                          "the position there; later changes are rejected as going back, and after a restart not "
                          "read at all", strict=True)
def test_one_entry_from_the_future_loses_every_later_change_after_a_restart(evil):
    """One entry (of a namespace the river does not map) whose ts is far ahead of the source's time:
    every later entry then "goes back" (rejected), and the stored position jumps to the future, so a
    restarted worker reads nothing after it: later changes are neither applied nor rejected
    (silently lost; wait_for_sync says caught up). README, "Exactly once": "nothing lost"."""
    pg, river, coll, policy, offset = evil
    policy.cases["gbf_future"] = lambda e: with_fields(e, [("ns", "r27other.c"), ("ts", Timestamp(2**31, 1))],
                                                       skip=("ns", "ts"))
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "gbf_future", "n": 1})
    coll.insert_one({"_id": "gbf_next", "n": 2})
    wait_for(lambda: "gbf_next" in rows(pg, river) or any(r[2] == "gbf_next" for r in rejects_of(pg, river, since)),
             30, 0.1, "the entry after the future one, applied or rejected")
    pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
    pg.query("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(1)
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,)) not in (None, pid),
             60, 0.2, "a new worker")
    time.sleep(2)
    coll.insert_one({"_id": "gbf_later", "n": 3})
    deadline = time.time() + 30
    seen = False
    while time.time() < deadline and not seen:
        seen = "gbf_later" in rows(pg, river) or any(r[2] == "gbf_later" for r in rejects_of(pg, river, since))
        time.sleep(0.2)
    position = pg.query("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))
    assert seen, f"an insert after the restart was neither applied nor rejected; position {position}, " \
                 f"rejects {rejects_of(pg, river, since)}"
