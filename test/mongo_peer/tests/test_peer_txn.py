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
        db.command("find", "c", lsid=lsid, txnNumber=Int64(5),
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
