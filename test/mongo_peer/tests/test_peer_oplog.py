"""local.oplog.rs: entry format, $v:2 update diffs, DDL entries, transactions, tailing, capping."""
import time

import pymongo
import pytest
from bson.int64 import Int64
from bson.timestamp import Timestamp

from peer_helpers import op_time, oplog_after


def _uuid_bytes(v):
    return v.bytes if hasattr(v, "bytes") else bytes(v)


def _entries(client, t0, ns):
    return [e for e in oplog_after(client, t0) if e["ns"] == ns]


def test_insert_update_delete_entry_format(client, db):
    t0 = op_time(client)
    db.c.insert_one({"_id": 1, "a": 1})
    db.c.update_one({"_id": 1}, {"$set": {"a": 2}})
    db.c.delete_one({"_id": 1})
    ents = _entries(client, t0, "%s.c" % db.name)
    # [server:src/mongo/db/repl/oplog_entry.idl] op i/u/d, ns, ui (collection UUID), o, o2,
    # ts, t (term), v (version 2), wall; [manual:core/replica-set-oplog/].
    assert [e["op"] for e in ents] == ["i", "u", "d"]
    ins, upd, dele = ents
    assert ins["o"] == {"_id": 1, "a": 1}
    assert upd["o2"] == {"_id": 1} and upd["o"] == {"$v": 2, "diff": {"u": {"a": 2}}}
    assert dele["o"] == {"_id": 1}
    info = db.command("listCollections", filter={"name": "c"})["cursor"]["firstBatch"][0]
    for e in ents:
        assert isinstance(e["ts"], Timestamp)
        assert e["t"] == 1 and isinstance(e["t"], Int64)
        assert e["v"] == 2 and isinstance(e["v"], Int64)
        assert e["ui"] == info["info"]["uuid"]
        assert "wall" in e
    # ts strictly increasing [manual:core/replica-set-oplog/] (oplog is ordered by ts).
    all_ts = [e["ts"] for e in oplog_after(client, t0)]
    assert all(a < b for a, b in zip(all_ts, all_ts[1:]))


BASE = {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "x": 10,
        "items": [{"k": 1}, {"k": 2}], "e": []}

# Expected diffs follow mongod's modifier-update logging:
#   [server:src/mongo/db/update/v2_log_builder.cpp] sections d (as {field: false}), u, i,
#   then s<field> sub-diffs; array sub-diffs start with a: true and use u<idx>/s<idx>;
#   a new path is logged as an insert of the new sub-document at its first new component.
#   [server:src/mongo/db/update/push_node.cpp] PushNode::logUpdate: a push that only appends to
#   a non-empty array logs each appended element (a.<idx>), anything else logs the whole array.
#   $inc/$set log the updated value of their path ([server:src/mongo/db/update/modifier_node.cpp]
#   ModifierNode::logUpdate default); [server:src/mongo/db/update/pop_node.cpp] logs the whole
#   array for $pop; $pull/$addToSet whole array: see README "Unsourced expectations" 4.
#   [manual:reference/method/db.collection.updateOne/] $unset on an array element sets null.
DIFF_CASES = [
    ({"$set": {"a.b": 5}}, {"sa": {"u": {"b": 5}}}),
    ({"$set": {"a.n": 1}}, {"sa": {"i": {"n": 1}}}),
    ({"$set": {"n.m": 1}}, {"i": {"n": {"m": 1}}}),
    ({"$set": {"x": 11, "y": 1}}, {"u": {"x": 11}, "i": {"y": 1}}),
    ({"$unset": {"x": 1, "a.c": 1}}, {"d": {"x": False}, "sa": {"d": {"c": False}}}),
    ({"$inc": {"x": 1}}, {"u": {"x": 11}}),
    ({"$inc": {"arr.1": 5}}, {"sarr": {"a": True, "u1": 7}}),
    ({"$set": {"items.0.k": 9}}, {"sitems": {"a": True, "s0": {"u": {"k": 9}}}}),
    ({"$push": {"arr": 4}}, {"sarr": {"a": True, "u3": 4}}),
    ({"$push": {"arr": {"$each": [4, 5]}}}, {"sarr": {"a": True, "u3": 4, "u4": 5}}),
    ({"$push": {"e": 1}}, {"u": {"e": [1]}}),
    ({"$push": {"arr": {"$each": [0], "$position": 0}}}, {"u": {"arr": [0, 1, 2, 3]}}),
    ({"$push": {"new": 1}}, {"i": {"new": [1]}}),
    ({"$pull": {"arr": 2}}, {"u": {"arr": [1, 3]}}),
    ({"$pop": {"arr": 1}}, {"u": {"arr": [1, 2]}}),
    ({"$pop": {"arr": -1}}, {"u": {"arr": [2, 3]}}),
    ({"$addToSet": {"arr": 9}}, {"u": {"arr": [1, 2, 3, 9]}}),
    ({"$unset": {"arr.0": 1}}, {"sarr": {"a": True, "u0": None}}),
    ({"$rename": {"x": "z"}}, {"d": {"x": False}, "i": {"z": 10}}),
]


@pytest.mark.parametrize("update,diff", DIFF_CASES, ids=[str(u) for u, _ in DIFF_CASES])
def test_v2_diffs(client, db, update, diff):
    db.c.insert_one(dict(BASE))
    t0 = op_time(client)
    db.c.update_one({"_id": 1}, update)
    ents = _entries(client, t0, "%s.c" % db.name)
    assert len(ents) == 1
    # [server:src/mongo/db/update/update_oplog_entry_serialization.cpp] {$v: 2, diff: {...}}.
    assert ents[0]["o"] == {"$v": 2, "diff": diff}
    assert ents[0]["o2"] == {"_id": 1}


def test_noop_update_writes_no_entry(client, db):
    db.c.insert_one(dict(BASE))
    t0 = op_time(client)
    res = db.c.update_one({"_id": 1}, {"$set": {"x": 10}, "$pull": {"arr": 99}})
    # [server:src/mongo/db/exec/update_stage.cpp] a no-op update is not written to the oplog.
    assert res.modified_count == 0
    assert _entries(client, t0, "%s.c" % db.name) == []


def test_replacement_logs_full_document(client, db):
    db.c.insert_one(dict(BASE))
    t0 = op_time(client)
    db.c.replace_one({"_id": 1}, {"only": True})
    (e,) = _entries(client, t0, "%s.c" % db.name)
    # [server:src/mongo/db/update/object_replace_executor.cpp] replacements log the new document.
    assert e["op"] == "u" and e["o"] == {"_id": 1, "only": True} and e["o2"] == {"_id": 1}


def test_pipeline_update_diff_with_truncation(client, db):
    long = ["x" * 40, "y" * 40, "z" * 40]
    db.c.insert_one({"_id": 1, "arr": long, "pad": "p" * 200})
    t0 = op_time(client)
    db.c.update_one({"_id": 1}, [{"$set": {"arr": long[:2]}}])
    (e,) = _entries(client, t0, "%s.c" % db.name)
    # [server:src/mongo/db/update/document_diff_calculator.cpp] computeArrayDiff: a shorter
    # post-image array is a resize ('l': new length) under 's<field>' with a: true.
    assert e["o"] == {"$v": 2, "diff": {"sarr": {"a": True, "l": 2}}}
    t1 = op_time(client)
    db.c.update_one({"_id": 1}, [{"$set": {"pad": "q", "arr": ["n"]}}])
    (e,) = _entries(client, t1, "%s.c" % db.name)
    # computeDocDiff returns nothing when the diff is not smaller than the post-image; the
    # update is then logged as a replacement.  Here the diff is small, so it stays a diff.
    assert e["o"]["$v"] == 2
    assert e["o"]["diff"]["u"] == {"pad": "q", "arr": ["n"]}


def test_ddl_entries(client, db):
    t0 = op_time(client)
    db.create_collection("a")
    client.admin.command("renameCollection", "%s.a" % db.name, to="%s.b" % db.name)
    db.drop_collection("b")
    db.x.insert_one({})
    client.drop_database(db.name)
    ents = [e for e in oplog_after(client, t0) if e["ns"] == "%s.$cmd" % db.name]
    # [server:src/mongo/db/op_observer/op_observer_impl.cpp] onCreateCollection /
    # onRenameCollection / onDropCollection / onDropDatabase write 'c' entries on <db>.$cmd.
    kinds = [next(iter(e["o"])) for e in ents]
    assert kinds == ["create", "renameCollection", "drop", "create", "drop", "dropDatabase"]
    assert ents[0]["o"]["create"] == "a"
    assert ents[1]["o"]["renameCollection"] == "%s.a" % db.name
    assert ents[1]["o"]["to"] == "%s.b" % db.name
    assert ents[2]["o"] == {"drop": "b"}
    assert ents[5]["o"] == {"dropDatabase": 1}
    assert all(e["op"] == "c" for e in ents)


def test_retryable_write_fields(client, db):
    t0 = op_time(client)
    with client.start_session() as s:
        db.c.insert_one({"_id": 1}, session=s)
        lsid = s.session_id
    (e,) = _entries(client, t0, "%s.c" % db.name)
    # [server:src/mongo/db/repl/oplog_entry.idl] OperationSessionInfo (lsid, txnNumber), stmtId
    # and prevOpTime on retryable writes (pymongo retries writes by default,
    # [spec:retryable-writes/retryable-writes.md]).
    assert _uuid_bytes(e["lsid"]["id"]) == _uuid_bytes(lsid["id"])
    assert isinstance(e["txnNumber"], Int64)
    assert "stmtId" in e and "prevOpTime" in e


def test_transaction_is_one_apply_ops_entry(client, db):
    db.c.insert_one({"_id": 0, "n": 0})
    t0 = op_time(client)
    with client.start_session() as s:
        with s.start_transaction():
            db.c.insert_one({"_id": 1}, session=s)
            db.c.update_one({"_id": 0}, {"$inc": {"n": 1}}, session=s)
            db.c.delete_one({"_id": 0}, session=s)
        lsid = s.session_id
    ents = oplog_after(client, t0)
    # [manual:core/transactions-production-consideration/#oplog] a committed transaction is
    # one applyOps oplog entry; [server:src/mongo/db/op_observer/op_observer_impl.cpp]
    # onUnpreparedTransactionCommit writes op 'c' on admin.$cmd with lsid and txnNumber.
    assert len(ents) == 1
    e = ents[0]
    assert e["op"] == "c" and e["ns"] == "admin.$cmd"
    assert _uuid_bytes(e["lsid"]["id"]) == _uuid_bytes(lsid["id"])
    assert isinstance(e["txnNumber"], Int64)
    ops = e["o"]["applyOps"]
    assert [o["op"] for o in ops] == ["i", "u", "d"]
    assert ops[0]["o"] == {"_id": 1} and ops[0]["ns"] == "%s.c" % db.name
    assert ops[1]["o"] == {"$v": 2, "diff": {"u": {"n": 1}}} and ops[1]["o2"] == {"_id": 0}
    assert ops[2]["o"] == {"_id": 0}


def test_find_with_ts_filters(client, db):
    t0 = op_time(client)
    db.c.insert_many([{"_id": i} for i in range(3)])
    oplog = client.local["oplog.rs"]
    got = list(oplog.find({"ts": {"$gt": t0}, "ns": "%s.c" % db.name}))
    assert len(got) == 3
    # [manual:reference/operator/query/gte/] on Timestamp values.
    got2 = list(oplog.find({"ts": {"$gte": got[1]["ts"]}, "ns": "%s.c" % db.name}))
    assert [g["o"]["_id"] for g in got2] == [1, 2]


def test_tailable_await_data_cursor(client, db):
    db.create_collection("c")
    t0 = op_time(client)
    cur = client.local["oplog.rs"].find(
        {"ts": {"$gt": t0}, "op": {"$ne": "n"}},
        cursor_type=pymongo.CursorType.TAILABLE_AWAIT, oplog_replay=True).max_await_time_ms(400)
    start = time.monotonic()
    assert next(cur, None) is None
    waited = time.monotonic() - start
    # [manual:reference/command/getMore/] maxTimeMS on a tailable awaitData cursor bounds how
    # long getMore waits for new data; an empty batch keeps the cursor alive.
    assert cur.alive
    assert waited < 3.0
    db.c.insert_one({"_id": "tail"})
    seen = None
    deadline = time.monotonic() + 5
    while seen is None and time.monotonic() < deadline:
        seen = next(cur, None)
    assert seen is not None and seen["op"] == "i" and seen["o"] == {"_id": "tail"}
    cur.close()


def test_get_more_blocks_until_timeout(client, db):
    t0 = op_time(client)
    r = client.local.command("find", "oplog.rs", filter={"ts": {"$gt": t0}, "op": "x"},
                             tailable=True, awaitData=True)
    cid = r["cursor"]["id"]
    assert cid != 0
    start = time.monotonic()
    r = client.local.command("getMore", cid, collection="oplog.rs", maxTimeMS=500)
    waited = time.monotonic() - start
    # [manual:reference/command/getMore/] waits up to maxTimeMS, then returns an empty batch
    # and the same cursor id.
    assert r["cursor"]["nextBatch"] == [] and r["cursor"]["id"] == cid
    assert 0.4 <= waited < 3.0
    client.local.command("killCursors", "oplog.rs", cursors=[cid])


def test_oplog_is_capped(own_peer):
    c, _proc, _port = own_peer("--oplog-size", "20")
    first = c.local["oplog.rs"].find_one()
    c.t.c.insert_many([{"_id": i} for i in range(50)])
    ents = list(c.local["oplog.rs"].find())
    # Peer switch: --oplog-size N keeps the newest N entries (a capped collection drops its
    # oldest documents, [manual:core/capped-collections/]).
    assert len(ents) == 20
    assert ents[-1]["o"] == {"_id": 49}
    assert first["ts"] < ents[0]["ts"]


def test_tailing_cursor_lost_position(own_peer):
    c, _proc, _port = own_peer("--oplog-size", "10")
    c.t.create_collection("c")
    t0 = c.admin.command("ping")["operationTime"]
    c.t.c.insert_one({"_id": -1})
    r = c.local.command("find", "oplog.rs", filter={"ts": {"$gt": t0}}, tailable=True,
                        awaitData=True)
    assert r["cursor"]["firstBatch"][0]["o"] == {"_id": -1}
    c.t.c.insert_many([{"_id": i} for i in range(30)])
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        c.local.command("getMore", r["cursor"]["id"], collection="oplog.rs")
    # [server:src/mongo/base/error_codes.yml] CappedPositionLost = 136 when a tailable cursor's
    # last position was deleted from the capped collection (pymongo's Cursor hides this error
    # for tailable cursors and just reports alive == False, hence the raw command).
    assert e.value.code == 136


def test_latest_entry_by_natural_order(client, db):
    db.c.insert_many([{"_id": i} for i in range(3)])
    last = client.local["oplog.rs"].find_one({"op": "i", "ns": "%s.c" % db.name},
                                             sort=[("$natural", -1)])
    # [manual:reference/operator/meta/natural/] $natural: -1 returns documents in reverse
    # insertion order; for the oplog that is newest first.
    assert last["o"] == {"_id": 2}


def test_positional_updates(client, db):
    db.c.insert_one({"_id": 1, "items": [{"k": 1, "q": 0}, {"k": 2, "q": 0}], "n": [1, 2]})
    t0 = op_time(client)
    db.c.update_one({"_id": 1, "items.k": 2}, {"$inc": {"items.$.q": 5}})
    db.c.update_one({"_id": 1}, {"$inc": {"n.$[]": 10}})
    ents = _entries(client, t0, "%s.c" % db.name)
    # [manual:reference/operator/update/positional/] '$' is the first matched array element;
    # [manual:reference/operator/update/positional-all/] '$[]' is every element.  The oplog
    # holds the resolved indexes ([server:src/mongo/db/update/v2_log_builder.cpp]).
    assert ents[0]["o"] == {"$v": 2, "diff": {"sitems": {"a": True, "s1": {"u": {"q": 5}}}}}
    assert ents[1]["o"] == {"$v": 2, "diff": {"sn": {"a": True, "u0": 11, "u1": 12}}}
    assert db.c.find_one()["items"][1]["q"] == 5


def test_pipeline_update_larger_diff_logs_replacement(client, db):
    db.c.insert_one({"_id": 1, "a": 1})
    t0 = op_time(client)
    db.c.update_one({"_id": 1}, [{"$set": {"a": 2, "b": 3}}])
    (e,) = _entries(client, t0, "%s.c" % db.name)
    # [server:src/mongo/db/update/document_diff_calculator.cpp] computeDocDiff gives up when the
    # diff is not smaller than the post-image; the update is then logged as the full document
    # ([server:src/mongo/db/update/pipeline_executor.cpp]).
    assert e["o"] == {"_id": 1, "a": 2, "b": 3}


# Pipeline-update cases of [server:jstests/replsets/v2_delta_oplog_entries.js]: the server logs a
# $v:2 delta ("delta"), a replacement ("replacement") or nothing ("none"), and the post-image.
G = "_" * 100
PIPELINE_CASES = [
    ({"x": 3, "y": 3, "padding": G}, [{"$unset": ["x", "y"]}], {"padding": G}, "delta"),
    ({"x": "notSoLargeString", "y": 0}, [{"$set": {"a": "foo", "y": 999}}],
     {"x": "notSoLargeString", "y": 999, "a": "foo"}, "delta"),
    ({"x": "notSoLargeString", "subObj": {"a": 1, "b": 2}}, [{"$set": {"subObj.a": "foo", "y": 1}}],
     {"x": "notSoLargeString", "subObj": {"a": "foo", "b": 2}, "y": 1}, "delta"),
    ({"x": "notSoLargeString", "subObj": {"a": Int64(1), "b": 2}}, [{"$set": {"subObj.a": 1, "y": 1}}],
     {"x": "notSoLargeString", "subObj": {"a": 1, "b": 2}, "y": 1}, "delta"),
    ({"subObj": {"a": 1, "b": 2}}, [{"$set": {"subObj.c": "foo"}}],
     {"subObj": {"a": 1, "b": 2, "c": "foo"}}, "delta"),
    ({"toRemove": "foo", "subObj": {"a": 1, "b": 2}}, [{"$project": {"subObj": 1}}],
     {"subObj": {"a": 1, "b": 2}}, "delta"),
    ({"x": "foo", "subObj": {"a": 1, "toRemove": 2}, "padding": G},
     [{"$project": {"subObj": {"a": 1}, "padding": 1}}], {"subObj": {"a": 1}, "padding": G}, "delta"),
    ({"x": "foo", "subObj": {"a": 1, "b": 2}},
     [{"$replaceRoot": {"newRoot": {"x": "foo", "subObj": {"a": 1, "b": 2}}}}],
     {"x": "foo", "subObj": {"a": 1, "b": 2}}, "none"),
    ({"x": "foo", "subObj": {"a": 1, "b": 2}},
     [{"$replaceRoot": {"newRoot": {"newField": "z" * 26}}}], {"newField": "z" * 26}, "replacement"),
    ({"padding": G, "arrField": [{"x": 1}, {"x": 2}]}, [{"$set": {"arrField.x": 5}}],
     {"padding": G, "arrField": [{"x": 5}, {"x": 5}]}, "delta"),
    ({"x": "foo", "y": "bar", "z": "baz"},
     [{"$replaceRoot": {"newRoot": {"z": "baz", "y": "bar", "x": "foo"}}}],
     {"z": "baz", "y": "bar", "x": "foo"}, "delta"),
    ({"padding": G, "a": [1, 2, 3, 4, 5]}, [{"$set": {"a": [1, 2, 999, 4, 5]}}],
     {"padding": G, "a": [1, 2, 999, 4, 5]}, "delta"),
    ({"padding": G, "a": [1, 2, 3]}, [{"$set": {"a": [1, 2, 3, 4, 5]}}],
     {"padding": G, "a": [1, 2, 3, 4, 5]}, "delta"),
    ({"padding": G, "a": [1, {"b": 10}, 3]}, [{"$set": {"a": [1, {"b": 9}]}}],
     {"padding": G, "a": [1, {"b": 9}]}, "delta"),
]


@pytest.mark.parametrize("pre,pipeline,post,kind", PIPELINE_CASES,
                         ids=[str(p) for _, p, _, _ in PIPELINE_CASES])
def test_pipeline_update_entries(client, db, pre, pipeline, post, kind):
    for stage in pipeline:  # the jstest's $replaceRoot documents carry the _id
        if "$replaceRoot" in stage:
            stage["$replaceRoot"]["newRoot"] = dict({"_id": 1}, **stage["$replaceRoot"]["newRoot"])
    db.c.insert_one(dict({"_id": 1}, **pre))
    t0 = op_time(client)
    db.c.update_one({"_id": 1}, pipeline)
    assert db.c.find_one() == dict({"_id": 1}, **post)
    ents = _entries(client, t0, "%s.c" % db.name)
    if kind == "none":
        assert ents == []
        return
    (e,) = ents
    assert e["op"] == "u" and e["o2"] == {"_id": 1}
    if kind == "delta":
        assert list(e["o"]) == ["$v", "diff"] and e["o"]["$v"] == 2
        assert all(k[0] in "iusd" for k in e["o"]["diff"])
    else:
        assert "$v" not in e["o"]


def test_array_filters(client, db):
    db.c.insert_one({"_id": 1, "c": [{"u": "a", "n": 1}, {"u": "w", "n": 2}, {"u": "w", "n": 3}]})
    t0 = op_time(client)
    db.c.update_one({"_id": 1}, {"$inc": {"c.$[x].n": 10}}, array_filters=[{"x.u": "w"}])
    (e,) = _entries(client, t0, "%s.c" % db.name)
    # [manual:reference/operator/update/positional-filtered/] $[<identifier>] updates the
    # elements matching arrayFilters; the oplog holds the resolved indexes.
    assert e["o"] == {"$v": 2, "diff": {"sc": {"a": True, "s1": {"u": {"n": 12}},
                                               "s2": {"u": {"n": 13}}}}}


def test_index_ddl_entries(client, db):
    db.create_collection("empty")
    db.full.insert_one({"_id": 1, "x": 1})
    t0 = op_time(client)
    db.empty.create_index("x", name="x_1")
    db.full.create_index("x", name="x_1")
    db.full.drop_index("x_1")
    ents = [e for e in oplog_after(client, t0) if e["ns"] == "%s.$cmd" % db.name]
    # [server:src/mongo/db/op_observer/op_observer_impl.cpp] onCreateIndex logs createIndexes
    # (an empty collection builds at once); onStartIndexBuild/onCommitIndexBuild log the
    # two-phase build of a non-empty collection; onDropIndex logs dropIndexes with the spec in o2.
    assert [next(iter(e["o"])) for e in ents] == ["createIndexes", "startIndexBuild",
                                                  "commitIndexBuild", "dropIndexes"]
    assert ents[0]["o"]["createIndexes"] == "empty" and ents[0]["o"]["key"] == {"x": 1}
    assert ents[1]["o"]["indexes"][0]["name"] == "x_1"
    assert ents[1]["o"]["indexBuildUUID"] == ents[2]["o"]["indexBuildUUID"]
    assert ents[3]["o"] == {"dropIndexes": "full", "index": "x_1"}
    assert ents[3]["o2"]["key"] == {"x": 1}
    opts = db.command("listCollections", filter={"name": "full"})["cursor"]["firstBatch"][0]
    assert opts["options"] == {}


def test_oplog_coll_stats_report_its_caps(client, db):
    # [server:src/mongo/db/stats/storage_stats.cpp] collStats of a capped collection: capped, max
    # (document cap, 0 when none) and maxSize (bytes); size and count of what it holds.
    db.c.insert_one({"_id": 1})
    stats = client.local.command("collStats", "oplog.rs")
    assert stats["ns"] == "local.oplog.rs" and stats["capped"] is True
    assert stats["count"] >= 1 and stats["size"] > 0
    assert stats["maxSize"] > 0 and stats["max"] >= 0
    assert stats["count"] <= stats["max"] or stats["max"] == 0
