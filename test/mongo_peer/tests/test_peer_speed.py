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
    assert fast == read([{"$match": {}}])


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
