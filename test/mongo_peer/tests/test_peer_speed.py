"""Fast paths: pre-encoded oplog entries and change events, raw cursor batches, the bench."""
import os
import subprocess

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.objectid import ObjectId

from peer_helpers import MONGO_URI, op_time

RAW = CodecOptions(document_class=RawBSONDocument)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def test_pre_encoded_events_equal_built_events(client, db):
    """Events pre-encoded at write time must be the bytes the general event builder produces
    (a later $match stage makes the peer build every event from the oplog entry)."""
    t0 = op_time(client)
    coll = db.get_collection("c", codec_options=RAW)
    coll.insert_one({"_id": "abc", "x": 1, "n": {"a": [1, 2]}})
    coll.insert_one({"_id": ObjectId(), "x": [1, {"a": 2}]})
    coll.insert_one({"_id": {"k": 1, "j": "x"}, "x": 1.5})
    coll.replace_one({"_id": "abc"}, {"y": 2})
    coll.update_one({"_id": "abc"}, {"$set": {"z": 2, "arr": [1, 2, 3]}})
    coll.update_one({"_id": "abc"}, {"$unset": {"y": 1}, "$push": {"arr": 4}})
    coll.update_one({"_id": "abc"}, [{"$set": {"arr": {"$literal": [1, 2]}}}])
    coll.update_many({}, {"$inc": {"n2": 1}})
    coll.delete_one({"_id": "abc"})

    def read(extra):
        r = db.command("aggregate", "c", codec_options=RAW, cursor={}, pipeline=[
            {"$changeStream": {"startAtOperationTime": t0}}] + extra)
        return [d.raw for d in r["cursor"]["firstBatch"]]
    fast = read([])
    # [manual:reference/change-events/] insert/replace/update/delete event shapes; a $match that
    # keeps everything changes nothing.
    assert len(fast) == 11
    slow = [{"$match": {"$or": [{"fullDocument": {"$exists": True}},
                                {"fullDocument": {"$exists": False}}]}}]
    assert fast == read(slow)
    # A replicator's namespace filter (the product's) keeps the pre-encoded path; its verdict
    # must be the one the full event gets.
    ns_filter = {"$or": [{"ns.db": db.name, "ns.coll": "c"}, {"to.db": db.name, "to.coll": "c"},
                         {"operationType": "dropDatabase", "ns.db": db.name},
                         {"operationType": "invalidate"}]}
    assert read([{"$match": ns_filter}]) == fast
    only = {"operationType": {"$in": ["insert", "delete"]}, "ns.coll": {"$regex": "^c"}}
    assert read([{"$match": only}]) == read(slow + [{"$match": only}])
    assert len(read([{"$match": only}])) == 4


def test_scan_batches_are_the_stored_bytes(client, db):
    coll = db.get_collection("c", codec_options=RAW)
    db.c.insert_many([{"_id": i, "v": "x" * (i % 7)} for i in range(300)])
    raws = [d.raw for d in coll.find({}, batch_size=50)]
    # [manual:reference/command/find/] a plain find returns the documents as stored (natural
    # order for a collection scan).
    assert [d["_id"] for d in db.c.find({})] == list(range(300))
    assert len(raws) == 300 and all(isinstance(r, bytes) for r in raws)


def test_bench_script_runs():
    if MONGO_URI:
        pytest.skip("the bench starts its own peer")
    out = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench", "peer_bench.py"),
                          "--docs", "2000", "--reps", "1"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("inserts:", "scan:", "events:", "peer CPU"):
        assert word in out.stdout


def test_capped_oplog_keeps_exactly_the_newest_entries(own_peer):
    c, _proc, _port = own_peer("--oplog-size", "50")
    for i in range(0, 3000, 500):
        c.t.c.insert_many([{"_id": j} for j in range(i, i + 500)])
    ents = list(c.local["oplog.rs"].find())
    # Peer switch contract (README): --oplog-size N keeps the newest N entries (mongod caps by
    # size, [manual:core/replica-set-oplog/]); the last one is the last insert.
    assert len(ents) == 50
    assert ents[-1]["o"] == {"_id": 2999}
    assert [e["ts"] for e in ents] == sorted(e["ts"] for e in ents)
    newest = list(c.local["oplog.rs"].find().sort("$natural", -1).limit(1))
    assert newest[0]["ts"] == ents[-1]["ts"]


def _mixed_ids():
    import datetime
    from bson.binary import Binary
    from bson.decimal128 import Decimal128
    from bson.int64 import Int64
    from bson.max_key import MaxKey
    from bson.min_key import MinKey
    from bson.timestamp import Timestamp
    return [MaxKey(), "b", 2.5, {"x": 1}, Binary(b"zz", 0), ObjectId("5f0000000000000000000001"),
            True, datetime.datetime(2020, 1, 1), Timestamp(5, 1), None, Int64(3),
            Decimal128("2.7"), float("nan"), -1, "a", {"a": 2}, Binary(b"a", 5), False,
            MinKey(), ObjectId("5f0000000000000000000000")]


@pytest.mark.parametrize("direction", [1, -1])
def test_id_sort_fast_path_orders_like_the_general_sort(db, direction):
    db.c.insert_many([{"_id": v, "i": i} for i, v in enumerate(_mixed_ids())])
    fast = [d["i"] for d in db.c.find({}).sort("_id", direction)]
    slow = [d["i"] for d in db.c.find({"i": {"$gte": 0}}).sort("_id", direction)]
    # [manual:reference/bson-type-comparison-order/] MinKey, null, numbers, strings, objects,
    # binData, ObjectId, booleans, dates, timestamps, MaxKey; the same page, "BinData": by
    # length, then subtype, then bytes.  [server:src/mongo/base/compare_numbers.h] NaN is less
    # than all numbers.
    assert fast == slow
    if direction == 1:
        assert fast == [18, 9, 12, 13, 2, 11, 10, 14, 1, 15, 3, 16, 4, 19, 5, 17, 6, 7, 8, 0]
    else:
        assert fast[:2] == [0, 8]
    # The copy resumes with hint {_id: 1} + min: the same order, from the bound on.
    if direction == 1:
        got = [d["i"] for d in db.c.find().hint([("_id", 1)]).min([("_id", "a")])]
        assert got == fast[fast.index(14):]


def test_oplog_namespace_filter_fast_path(client, db):
    t0 = op_time(client)
    other = client[db.name + "_x"]
    db.c.insert_many([{"_id": i} for i in range(5)])
    db.d.insert_one({"_id": 1})
    other.c.insert_one({"_id": 1})
    db.c.update_one({"_id": 1}, {"$set": {"a": 1}})
    with client.start_session() as s:
        with s.start_transaction():
            db.c.insert_one({"_id": 99}, session=s)
    db.c.delete_one({"_id": 2})
    client.admin.command("appendOplogNote", data={"msg": "hi"})
    ors = [{"ns": {"$in": [db.name + ".c"]}}, {"ns": {"$regex": "^%s_x\\." % db.name}},
           {"ns": {"$in": ["admin.$cmd", db.name + ".$cmd"]}}, {"op": "n"}]
    oplog = client.local.get_collection("oplog.rs", codec_options=RAW)
    # A tailing filter like the product's (ts lower bound + namespaces) is answered per (op, ns);
    # adding a condition on "o" (always true) makes the peer decode every entry instead.
    fast = [d.raw for d in oplog.find({"ts": {"$gt": t0}, "$or": ors})]
    slow = [d.raw for d in oplog.find({"ts": {"$gt": t0}, "$or": ors, "o": {"$exists": True}})]
    # [manual:reference/operator/query/or/] and [manual:reference/operator/query/in/] semantics.
    assert fast == slow
    ops = [(d["op"], d["ns"]) for d in client.local["oplog.rs"].find(
        {"ts": {"$gte": t0}, "$or": ors})]
    assert ("i", db.name + ".d") not in ops and ("i", db.name + "_x.c") in ops
    assert ("c", "admin.$cmd") in ops and ("n", "") in ops
