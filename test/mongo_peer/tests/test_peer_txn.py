"""Multi-document transactions: isolation until commit, abort, conflicts, errors."""
import pytest
from bson.int64 import Int64
from pymongo.errors import OperationFailure

from peer_helpers import op_time, oplog_after


def test_writes_invisible_until_commit(client, db):
    db.create_collection("c")
    with client.start_session() as s:
        s.start_transaction()
        db.c.insert_one({"_id": 1}, session=s)
        # [manual:core/transactions/#transactions-and-atomicity] writes of an uncommitted
        # transaction are not visible outside it, but are visible inside it.
        assert db.c.find_one({"_id": 1}) is None
        assert db.c.find_one({"_id": 1}, session=s) == {"_id": 1}
        assert db.c.count_documents({}, session=s) == 1
        s.commit_transaction()
    assert db.c.find_one({"_id": 1}) == {"_id": 1}


def test_abort_discards(client, db):
    db.c.insert_one({"_id": 0, "n": 0})
    t0 = op_time(client)
    with client.start_session() as s:
        s.start_transaction()
        db.c.update_one({"_id": 0}, {"$inc": {"n": 1}}, session=s)
        db.c.insert_one({"_id": 1}, session=s)
        s.abort_transaction()
    # [manual:reference/method/Session.abortTransaction/] no write of the transaction persists;
    # nothing reaches the oplog.
    assert list(db.c.find()) == [{"_id": 0, "n": 0}]
    assert [e for e in oplog_after(client, t0) if e["ns"] != "%s.$cmd" % db.name] == []


def test_read_only_transaction_writes_no_oplog(client, db):
    db.c.insert_one({"_id": 0})
    t0 = op_time(client)
    with client.start_session() as s:
        with s.start_transaction():
            assert db.c.find_one({}, session=s) == {"_id": 0}
    # [server:src/mongo/db/op_observer/op_observer_impl.cpp] an empty transaction logs nothing.
    assert oplog_after(client, t0) == []


def test_write_conflict_between_transactions(client, db):
    db.c.insert_one({"_id": 0, "n": 0})
    s1, s2 = client.start_session(), client.start_session()
    try:
        s1.start_transaction()
        s2.start_transaction()
        db.c.update_one({"_id": 0}, {"$inc": {"n": 1}}, session=s1)
        with pytest.raises(OperationFailure) as e:
            db.c.update_one({"_id": 0}, {"$inc": {"n": 1}}, session=s2)
        # [manual:core/transactions-production-consideration/#in-progress-transactions-and-write-conflicts]
        # WriteConflict (112) labelled TransientTransactionError ([spec:transactions/transactions.md]).
        assert e.value.code == 112
        assert e.value.has_error_label("TransientTransactionError")
        s1.commit_transaction()
    finally:
        s1.end_session()
        s2.end_session()
    assert db.c.find_one() == {"_id": 0, "n": 1}


def test_no_such_transaction(client, db):
    with client.start_session() as s:
        lsid = s.session_id
    with pytest.raises(OperationFailure) as e:
        # A txnNumber above any the pooled session used for retryable writes of earlier tests
        # (a lower one is TransactionTooOld, 225).
        db.command("find", "c", lsid=lsid, txnNumber=Int64(1 << 40),
                   autocommit=False)
    # [server:src/mongo/base/error_codes.yml] NoSuchTransaction = 251.
    assert e.value.code == 251


def test_duplicate_key_aborts_transaction(client, db):
    db.c.insert_one({"_id": 1})
    with client.start_session() as s:
        s.start_transaction()
        with pytest.raises(OperationFailure) as e:
            db.c.insert_one({"_id": 1}, session=s)
        assert e.value.code == 11000
        # [manual:core/transactions/] an error inside a transaction aborts it: further commands
        # fail with NoSuchTransaction (251).
        with pytest.raises(OperationFailure) as e:
            db.c.insert_one({"_id": 2}, session=s)
        assert e.value.code == 251
        s.abort_transaction()


def test_large_transaction_is_an_apply_ops_chain(own_peer):
    c, _proc, _port = own_peer("--max-txn-ops-per-oplog-entry", "2")
    coll = c.t.c
    coll.insert_one({"_id": 0})
    t0 = c.admin.command("ping")["operationTime"]
    with coll.watch(max_await_time_ms=200) as cs:
        with c.start_session() as s:
            with s.start_transaction():
                for i in range(1, 6):
                    coll.insert_one({"_id": i}, session=s)
        evs = []
        while len(evs) < 5:
            ev = cs.try_next()
            if ev is not None:
                evs.append(ev)
    ents = list(c.local["oplog.rs"].find({"ts": {"$gt": t0}, "op": "c"}))
    # [server:src/mongo/db/repl/README.md] "Unprepared Transactions Oplog Application": large
    # transactions are several applyOps entries linked by prevOpTime, all but the last with
    # o.partialTxn: true.  The peer switch mirrors mongod's
    # maxNumberOfTransactionOperationsInSingleOplogEntry server parameter.
    assert [len(e["o"]["applyOps"]) for e in ents] == [2, 2, 1]
    assert [e["o"].get("partialTxn", False) for e in ents] == [True, True, False]
    assert ents[1]["prevOpTime"]["ts"] == ents[0]["ts"]
    assert ents[2]["prevOpTime"]["ts"] == ents[1]["ts"]
    # Change events of the whole transaction carry the commit (last entry) clusterTime.
    assert [e["documentKey"]["_id"] for e in evs] == [1, 2, 3, 4, 5]
    assert {e["clusterTime"] for e in evs} == {ents[2]["ts"]}


def test_plain_write_waits_for_transaction(client, db):
    import threading
    import time
    db.c.insert_one({"_id": 0, "n": 0})
    s = client.start_session()
    s.start_transaction()
    db.c.update_one({"_id": 0}, {"$inc": {"n": 10}}, session=s)
    done = []
    th = threading.Thread(target=lambda: done.append(
        db.c.update_one({"_id": 0}, {"$inc": {"n": 1}}).modified_count))
    th.start()
    time.sleep(0.3)
    # [manual:core/transactions-production-consideration/#in-progress-transactions-and-write-conflicts]
    # a write outside the transaction to a document the transaction modified waits for the
    # transaction to end, then applies on top of the committed result.
    assert done == []
    s.commit_transaction()
    s.end_session()
    th.join(10)
    assert done == [1]
    assert db.c.find_one() == {"_id": 0, "n": 11}


def _apply_ops_after(c, t0):
    return list(c.local["oplog.rs"].find({"ts": {"$gt": t0}, "op": "c",
                                           "o.applyOps": {"$exists": True}}))


def test_large_transaction_split_by_size(own_peer):
    c, _proc, _port = own_peer("--max-txn-oplog-entry-bytes", "1000")
    coll = c.t.c
    coll.insert_one({"_id": 0})
    t0 = c.admin.command("ping")["operationTime"]
    with coll.watch(max_await_time_ms=200) as cs:
        with c.start_session() as s:
            with s.start_transaction():
                for i in range(1, 8):
                    coll.insert_one({"_id": i, "pad": "x" * 300}, session=s)
        evs = []
        while len(evs) < 7:
            ev = cs.try_next()
            if ev is not None:
                evs.append(ev)
    ents = _apply_ops_after(c, t0)
    # [server:src/mongo/db/op_observer_impl.cpp] (v6.0) packOperationsIntoApplyOps: an entry is
    # closed when the serialized operations so far (each + 8 bytes of array overhead) plus the
    # next operation's durable size would exceed the limit (BSONObjMaxUserSize by default; the
    # peer flag lowers it as a test would lower the 16 MB).  Ops here are ~350 B, so 2 per entry.
    assert [len(e["o"]["applyOps"]) for e in ents] == [2, 2, 2, 1]
    assert [e["o"].get("partialTxn", False) for e in ents] == [True, True, True, False]
    # [server:src/mongo/db/op_observer_impl.cpp] logOplogEntries: "The 'count' field gives the
    # total number of individual operations in the transaction, and is included on a
    # non-initial implicit commit or prepare entry".
    assert "count" not in ents[0]["o"] and ents[-1]["o"]["count"] == 7
    for a, b in zip(ents, ents[1:]):
        assert b["prevOpTime"]["ts"] == a["ts"]
    assert len({(str(e["lsid"]["id"]), e["txnNumber"]) for e in ents}) == 1
    # [manual:reference/change-events/] events of a transaction carry its lsid and txnNumber.
    assert len({(str(e["lsid"]["id"]), e["txnNumber"]) for e in evs}) == 1
    assert [e["documentKey"]["_id"] for e in evs] == list(range(1, 8))


def test_transaction_over_16mb_is_two_entries(client, db):
    coll = db.c
    coll.insert_one({"_id": 0})
    t0 = op_time(client)
    big = "x" * 1000000
    with client.start_session() as s:
        with s.start_transaction():
            for i in range(1, 19):
                coll.insert_one({"_id": i, "pad": big}, session=s)
    ents = [e for e in _apply_ops_after(client, t0)
            if e["o"]["applyOps"][0]["ns"] == coll.full_name]
    # [server:src/mongo/db/op_observer_impl.cpp] (v6.0) packOperationsIntoApplyOps with the
    # default limits (maxNumberOfTransactionOperationsInSingleOplogEntry unlimited,
    # BSONObjMaxUserSize 16 MB): sixteen ~1 MB inserts fit, the seventeenth would not.
    assert [len(e["o"]["applyOps"]) for e in ents] == [16, 2]
    assert ents[0]["o"]["partialTxn"] is True and ents[1]["o"]["count"] == 18
