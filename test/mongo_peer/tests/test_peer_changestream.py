"""Change streams: event shapes, resume, post-batch resume tokens, invalidation, scopes."""
import datetime
import time

import pymongo
import pytest
from bson.timestamp import Timestamp

from peer_helpers import op_time


def _next(cs, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = cs.try_next()
        if ev is not None:
            return ev
    raise AssertionError("no change event within %.1fs" % timeout)


def _uuid_bytes(v):
    return v.bytes if hasattr(v, "bytes") else bytes(v)


def test_crud_event_shapes(db):
    db.create_collection("c")
    with db.c.watch(max_await_time_ms=200) as cs:
        db.c.insert_one({"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3]})
        db.c.update_one({"_id": 1}, {"$set": {"a.b": 5}, "$unset": {"a.c": 1},
                                     "$push": {"arr": 4}})
        db.c.replace_one({"_id": 1}, {"z": 1})
        db.c.delete_one({"_id": 1})
        ins, upd, rep, dele = [_next(cs) for _ in range(4)]
    ns = {"db": db.name, "coll": "c"}
    # [manual:reference/change-events/] common fields: _id (resume token {_data: <hex string>}),
    # operationType, clusterTime (Timestamp), wallTime (6.0+), ns {db, coll}, documentKey.
    for ev in (ins, upd, rep, dele):
        assert isinstance(ev["_id"]["_data"], str)
        assert isinstance(ev["clusterTime"], Timestamp)
        assert isinstance(ev["wallTime"], datetime.datetime)
        assert ev["ns"] == ns and ev["documentKey"] == {"_id": 1}
    assert ins["operationType"] == "insert"
    assert ins["fullDocument"] == {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3]}
    # [manual:reference/change-events/update/] no fullDocument by default; updatedFields uses
    # dotted paths, array elements as <field>.<index>; removedFields; truncatedArrays.
    assert upd["operationType"] == "update" and "fullDocument" not in upd
    assert upd["updateDescription"] == {"updatedFields": {"a.b": 5, "arr.3": 4},
                                        "removedFields": ["a.c"], "truncatedArrays": []}
    # [manual:reference/change-events/replace/] fullDocument is the new document.
    assert rep["operationType"] == "replace" and rep["fullDocument"] == {"_id": 1, "z": 1}
    # [manual:reference/change-events/delete/] no fullDocument.
    assert dele["operationType"] == "delete" and "fullDocument" not in dele
    toks = [e["_id"]["_data"] for e in (ins, upd, rep, dele)]
    # [manual:changeStreams/#resume-tokens] tokens are hex strings that compare in event order.
    assert toks == sorted(toks)


def test_truncated_arrays(db):
    db.c.insert_one({"_id": 1, "arr": ["x" * 40, "y" * 40, "z" * 40], "pad": "p" * 200})
    with db.c.watch(max_await_time_ms=200) as cs:
        db.c.update_one({"_id": 1}, [{"$set": {"arr": ["x" * 40]}}])
        ev = _next(cs)
    # [manual:reference/change-events/update/#mongodb-data-update.updateDescription.truncatedArrays]
    # {field, newSize} for arrays shortened by a pipeline update.
    assert ev["updateDescription"]["truncatedArrays"] == [{"field": "arr", "newSize": 1}]


def test_update_lookup(db):
    db.c.insert_one({"_id": 1, "n": 0})
    with db.c.watch(full_document="updateLookup", max_await_time_ms=200) as cs:
        db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
        ev = _next(cs)
    # [manual:changeStreams/#lookup-full-document-for-update-operations] current document.
    assert ev["fullDocument"] == {"_id": 1, "n": 1}


def test_resume_after_start_after_start_at(db):
    db.create_collection("c")
    t0 = op_time(db.client)
    with db.c.watch(max_await_time_ms=200) as cs:
        for i in range(3):
            db.c.insert_one({"_id": i})
        evs = [_next(cs) for _ in range(3)]
    # [manual:changeStreams/#resumeafter-for-change-streams] resumes after the token's event.
    with db.c.watch(resume_after=evs[0]["_id"], max_await_time_ms=200) as cs:
        assert _next(cs)["documentKey"] == {"_id": 1}
    # [manual:changeStreams/#startafter-for-change-streams] same, and also after invalidate.
    with db.c.watch(start_after=evs[1]["_id"], max_await_time_ms=200) as cs:
        assert _next(cs)["documentKey"] == {"_id": 2}
    # [manual:reference/method/db.collection.watch/] startAtOperationTime: events at or after.
    with db.c.watch(start_at_operation_time=evs[1]["clusterTime"], max_await_time_ms=200) as cs:
        assert _next(cs)["documentKey"] == {"_id": 1}
    with db.c.watch(start_at_operation_time=t0, max_await_time_ms=200) as cs:
        assert _next(cs)["documentKey"] == {"_id": 0}


def test_post_batch_resume_token_every_batch(db):
    db.create_collection("c")
    r = db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
    # [spec:change-streams/change-streams.md] servers >= 4.0.7 return postBatchResumeToken in
    # every aggregate and getMore response of a change stream.
    pbrt0 = r["cursor"]["postBatchResumeToken"]
    cid = r["cursor"]["id"]
    assert r["cursor"]["firstBatch"] == [] and cid != 0
    db.other.insert_one({"_id": 1})  # a write the stream does not report
    time.sleep(0.01)
    r = db.command("getMore", cid, collection="c", maxTimeMS=300)
    pbrt1 = r["cursor"]["postBatchResumeToken"]
    assert r["cursor"]["nextBatch"] == []
    # [spec:change-streams/change-streams.md] a quiet stream's postBatchResumeToken advances.
    assert pbrt1["_data"] > pbrt0["_data"]
    db.c.insert_one({"_id": 1})
    r = db.command("getMore", cid, collection="c", maxTimeMS=300)
    ev = r["cursor"]["nextBatch"][0]
    assert r["cursor"]["postBatchResumeToken"]["_data"] >= ev["_id"]["_data"]
    db.command("killCursors", "c", cursors=[cid])
    # resuming from a postBatchResumeToken does not repeat the event
    with db.c.watch(resume_after=r["cursor"]["postBatchResumeToken"],
                    max_await_time_ms=200) as cs:
        assert cs.try_next() is None
        db.c.insert_one({"_id": 2})
        assert _next(cs)["documentKey"] == {"_id": 2}


def test_get_more_waits_for_max_time(db):
    db.create_collection("c")
    r = db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
    cid = r["cursor"]["id"]
    start = time.monotonic()
    r = db.command("getMore", cid, collection="c", maxTimeMS=500)
    waited = time.monotonic() - start
    # [manual:reference/command/getMore/] maxTimeMS on an awaitData cursor (change streams are
    # tailable awaitData cursors [spec:change-streams/change-streams.md]).
    assert r["cursor"]["nextBatch"] == [] and r["cursor"]["id"] == cid
    assert 0.4 <= waited < 3.0
    db.command("killCursors", "c", cursors=[cid])


def test_history_lost(db):
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.c.watch(start_at_operation_time=Timestamp(1, 1))
    # [server:src/mongo/base/error_codes.yml] ChangeStreamHistoryLost = 286 when the start
    # point is older than the oldest oplog entry.
    assert e.value.code == 286


def test_history_lost_after_oplog_rollover(own_peer):
    c, _proc, _port = own_peer("--oplog-size", "5")
    coll = c.t.c
    coll.insert_one({"_id": 0})
    with coll.watch(max_await_time_ms=200) as cs:
        coll.insert_one({"_id": 1})
        tok = _next(cs)["_id"]
    coll.insert_many([{"_id": i} for i in range(2, 20)])
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        coll.watch(resume_after=tok)
    assert e.value.code == 286  # as above: resume point no longer in the oplog


def test_drop_and_rename_invalidate(client, db):
    db.create_collection("a")
    db.create_collection("b")
    with db.a.watch(max_await_time_ms=200) as cs:
        db.drop_collection("a")
        drop, inv = _next(cs), _next(cs)
        # [manual:reference/change-events/drop/] then [manual:reference/change-events/invalidate/]
        assert drop["operationType"] == "drop" and drop["ns"] == {"db": db.name, "coll": "a"}
        assert inv["operationType"] == "invalidate"
        assert not cs.alive or cs.try_next() is None
    with db.b.watch(max_await_time_ms=200) as cs:
        client.admin.command("renameCollection", "%s.b" % db.name, to="%s.z" % db.name)
        ren, inv = _next(cs), _next(cs)
        # [manual:reference/change-events/rename/] ns and to.
        assert ren["operationType"] == "rename"
        assert ren["to"] == {"db": db.name, "coll": "z"}
        assert inv["operationType"] == "invalidate"
    # [manual:changeStreams/#startafter-for-change-streams] startAfter can restart after an
    # invalidate event.
    db.create_collection("b")
    with db.b.watch(start_after=inv["_id"], max_await_time_ms=200) as cs:
        db.b.insert_one({"_id": 7})
        assert _next(cs)["documentKey"] == {"_id": 7}


def test_database_and_cluster_streams(client, db):
    other = client[db.name + "_o"]
    client.drop_database(other.name)
    db.create_collection("x")
    with db.watch(max_await_time_ms=200) as dbs, \
            client.watch(max_await_time_ms=200) as cls:
        db.x.insert_one({"_id": 1})
        db.y.insert_one({"_id": 2})
        other.z.insert_one({"_id": 3})
        client.drop_database(db.name)
        # [manual:changeStreams/#watch-a-collection--database--or-deployment] a database
        # stream sees all its collections; dropDatabase gives drop events, dropDatabase, then
        # invalidate [manual:reference/change-events/dropDatabase/].
        got = [_next(dbs) for _ in range(2)]
        assert [(e["ns"]["coll"], e["documentKey"]["_id"]) for e in got] == [("x", 1), ("y", 2)]
        kinds = [_next(dbs)["operationType"] for _ in range(4)]
        assert kinds == ["drop", "drop", "dropDatabase", "invalidate"]
        # a cluster stream (admin, allChangesForCluster) sees every user database.
        got = [_next(cls) for _ in range(3)]
        assert [e["ns"]["db"] for e in got] == [db.name, db.name, other.name]
    client.drop_database(other.name)


def test_transaction_events(client, db):
    db.create_collection("c")
    with db.c.watch(max_await_time_ms=200) as cs:
        with client.start_session() as s:
            with s.start_transaction():
                db.c.insert_one({"_id": 1}, session=s)
                db.c.insert_one({"_id": 2}, session=s)
                db.c.update_one({"_id": 1}, {"$set": {"v": 1}}, session=s)
            lsid = s.session_id
        evs = [_next(cs) for _ in range(3)]
    # [server:jstests/change_streams/apply_ops.js] events of a transaction carry lsid and
    # txnNumber; they share the commit's clusterTime ([manual:reference/change-events/] "all
    # events in a transaction have the same clusterTime").
    assert [e["operationType"] for e in evs] == ["insert", "insert", "update"]
    assert len({e["clusterTime"] for e in evs}) == 1
    for e in evs:
        assert _uuid_bytes(e["lsid"]["id"]) == _uuid_bytes(lsid["id"])
        assert e["txnNumber"] == evs[0]["txnNumber"]
    toks = [e["_id"]["_data"] for e in evs]
    assert toks == sorted(toks) and len(set(toks)) == 3
    # resuming in the middle of a transaction continues with the next operation
    with db.c.watch(resume_after=evs[0]["_id"], max_await_time_ms=200) as cs:
        assert _next(cs)["documentKey"] == {"_id": 2}


def test_match_and_project_stages(db):
    db.create_collection("c")
    with db.c.watch([{"$match": {"operationType": "insert", "fullDocument.k": {"$gt": 1}}},
                     {"$project": {"fullDocument": 1, "operationType": 1}}],
                    max_await_time_ms=200) as cs:
        db.c.insert_many([{"_id": 1, "k": 1}, {"_id": 2, "k": 2}])
        db.c.delete_one({"_id": 2})
        db.c.insert_one({"_id": 3, "k": 3})
        a, b = _next(cs), _next(cs)
    # [manual:changeStreams/#modify-change-stream-output] later stages filter/reshape events.
    assert [a["fullDocument"]["_id"], b["fullDocument"]["_id"]] == [2, 3]
    assert set(a) == {"_id", "fullDocument", "operationType"}


def test_project_stage_keeps_only_projected_fields(db):
    db.create_collection("c")
    with db.c.watch([{"$project": {"k": "$fullDocument.k"}}], max_await_time_ms=200) as cs, \
            db.c.watch([{"$project": {"operationType": 1, "k": "$fullDocument.k"}}],
                       max_await_time_ms=200) as cs2:
        db.c.insert_one({"_id": 1, "k": 5, "z": 1})
        ev, ev2 = _next(cs), _next(cs2)
    # [manual:reference/operator/aggregation/project/] $project with a computed field is an
    # inclusion projection: the output holds _id, the included and the computed fields only
    # (unlike $addFields, which keeps every field of the event).
    assert ev == {"_id": ev["_id"], "k": 5}
    assert ev2 == {"_id": ev2["_id"], "operationType": "insert", "k": 5}


def test_unknown_and_disallowed_stages(db):
    db.create_collection("c")
    # [server:src/mongo/db/pipeline/document_source.cpp] DocumentSource::parse: a stage name the
    # server does not know fails while the pipeline is parsed, with 40324.
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.c.watch([{"$bogusStage": {}}])
    assert e.value.code == 40324
    assert e.value.details["errmsg"] == "Unrecognized pipeline stage name: '$bogusStage'"
    # [server:src/mongo/db/pipeline/pipeline.cpp] validateTopLevelPipeline: a known stage that may
    # not follow $changeStream fails afterwards with IllegalOperation (20).
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.c.watch([{"$group": {"_id": 1}}])
    assert e.value.code == 20
    assert e.value.details["errmsg"] == "$group is not permitted in a $changeStream pipeline"
    # Parsing comes first: an unknown stage after a disallowed one still fails with 40324.
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.c.watch([{"$sort": {"_id": 1}}, {"$bogusStage": {}}])
    assert e.value.code == 40324


def test_resumable_error_label_and_resume(client, db):
    db.create_collection("c")
    with db.c.watch(max_await_time_ms=200) as cs:
        db.c.insert_one({"_id": 1})
        assert _next(cs)["documentKey"] == {"_id": 1}
        client.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                             data={"failCommands": ["getMore"], "errorCode": 6})
        try:
            db.c.insert_one({"_id": 2})
            # [spec:change-streams/change-streams.md] on 4.4+ servers a getMore error labelled
            # ResumableChangeStreamError ([server:src/mongo/db/error_labels.cpp]: retriable and
            # network codes on change-stream aggregate/getMore) makes the driver resume.
            assert _next(cs)["documentKey"] == {"_id": 2}
        finally:
            client.admin.command("configureFailPoint", "failCommand", mode="off")


def test_error_labels_on_change_stream_errors(client, db):
    db.create_collection("c")
    r = db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
    cid = r["cursor"]["id"]
    client.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                         data={"failCommands": ["getMore"], "errorCode": 262})
    try:
        with pytest.raises(pymongo.errors.OperationFailure) as e:
            db.command("getMore", cid, collection="c", maxTimeMS=100)
    finally:
        client.admin.command("configureFailPoint", "failCommand", mode="off")
    # [server:src/mongo/db/error_labels.cpp] isResumableChangeStreamError: ExceededTimeLimit
    # (262) is a RetriableError ([server:src/mongo/base/error_codes.yml]).
    assert "ResumableChangeStreamError" in e.value.details.get("errorLabels", [])
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.c.watch(start_at_operation_time=Timestamp(1, 1))
    # ChangeStreamHistoryLost is in category NonResumableChangeStreamError
    # ([server:src/mongo/base/error_codes.yml], [server:jstests/change_streams/error_label.js]).
    assert "NonResumableChangeStreamError" in e.value.details.get("errorLabels", [])


def test_blocked_get_more_does_not_block_others(client, db):
    import threading
    db.create_collection("c")
    r = db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
    cid = r["cursor"]["id"]
    th = threading.Thread(target=lambda: db.command("getMore", cid, collection="c",
                                                    maxTimeMS=2000))
    th.start()
    time.sleep(0.1)
    start = time.monotonic()
    db.other.insert_one({"_id": 1})
    assert db.other.find_one() == {"_id": 1}
    # [manual:reference/command/getMore/] an awaitData getMore waits for data; other operations
    # proceed meanwhile (mongod yields while waiting).
    assert time.monotonic() - start < 1.0
    th.join()
    db.command("killCursors", "c", cursors=[cid])


def test_pre_and_post_images(client, db):
    db.create_collection("c", changeStreamPreAndPostImages={"enabled": True})
    db.create_collection("plain")
    db.c.insert_one({"_id": 1, "n": 0})
    db.plain.insert_one({"_id": 1, "n": 0})
    pipeline = [{"$changeStream": {"fullDocument": "whenAvailable",
                                   "fullDocumentBeforeChange": "whenAvailable"}}]
    r = db.command("aggregate", 1, pipeline=pipeline, cursor={})
    cid = r["cursor"]["id"]
    db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
    db.c.delete_one({"_id": 1})
    db.plain.update_one({"_id": 1}, {"$inc": {"n": 1}})
    evs = []
    deadline = time.monotonic() + 5
    while len(evs) < 3 and time.monotonic() < deadline:
        evs += db.command("getMore", cid, collection="$cmd.aggregate",
                          maxTimeMS=200)["cursor"]["nextBatch"]
    db.command("killCursors", "$cmd.aggregate", cursors=[cid])
    # [manual:changeStreams/#change-streams-with-document-pre--and-post-images] with
    # changeStreamPreAndPostImages enabled, fullDocumentBeforeChange / fullDocument
    # "whenAvailable" carry the images; without it they are null.
    upd, dele, plain = evs
    assert upd["fullDocumentBeforeChange"] == {"_id": 1, "n": 0}
    assert upd["fullDocument"] == {"_id": 1, "n": 1}
    assert dele["fullDocumentBeforeChange"] == {"_id": 1, "n": 1}
    assert plain["fullDocumentBeforeChange"] is None and plain["fullDocument"] is None



def test_coll_mod_enables_images_and_required(client, db):
    db.create_collection("c")
    db.c.insert_one({"_id": 1, "n": 0})
    spec = [{"$changeStream": {"fullDocumentBeforeChange": "required"}}]
    r = db.command("aggregate", "c", cursor={}, pipeline=spec)
    db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.command("getMore", r["cursor"]["id"], collection="c", maxTimeMS=500)
    # [manual:reference/method/db.collection.watch/] "required": the event fails when no
    # pre-image is available (ChangeStreamFatalError, [server:src/mongo/base/error_codes.yml]).
    assert e.value.code == 280
    db.command("collMod", "c", changeStreamPreAndPostImages={"enabled": True})
    r = db.command("aggregate", "c", cursor={}, pipeline=spec)
    db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
    got = db.command("getMore", r["cursor"]["id"], collection="c", maxTimeMS=500)
    # [manual:reference/command/collMod/] changeStreamPreAndPostImages can be enabled later.
    assert got["cursor"]["nextBatch"][0]["fullDocumentBeforeChange"] == {"_id": 1, "n": 1}
    db.command("killCursors", "c", cursors=[r["cursor"]["id"]])


def test_show_expanded_events(client, db):
    r = db.command("aggregate", 1, cursor={},
                   pipeline=[{"$changeStream": {"showExpandedEvents": True}}])
    cid = r["cursor"]["id"]
    db.create_collection("c")
    db.c.create_index("x", name="x_1")
    db.c.insert_one({"_id": 1})
    db.command("collMod", "c", changeStreamPreAndPostImages={"enabled": True})
    db.c.drop_index("x_1")
    evs = []
    deadline = time.monotonic() + 5
    while len(evs) < 5 and time.monotonic() < deadline:
        evs += db.command("getMore", cid, collection="$cmd.aggregate",
                          maxTimeMS=200)["cursor"]["nextBatch"]
    db.command("killCursors", "$cmd.aggregate", cursors=[cid])
    # [server:jstests/change_streams/ddl_create_event.js] showExpandedEvents adds create events
    # with operationDescription {idIndex, ...} and collectionUUID on events;
    # [manual:reference/change-events/] createIndexes, dropIndexes and modify events (6.0).
    assert [e["operationType"] for e in evs] == ["create", "createIndexes", "insert", "modify",
                                                 "dropIndexes"]
    uuid = db.command("listCollections", filter={"name": "c"})["cursor"]["firstBatch"][0][
        "info"]["uuid"]
    assert all(e["collectionUUID"] == uuid for e in evs)
    assert evs[0]["operationDescription"] == {"idIndex": {"v": 2, "key": {"_id": 1},
                                                          "name": "_id_"}}
    assert evs[1]["operationDescription"]["indexes"][0]["name"] == "x_1"
    assert evs[3]["operationDescription"] == {"changeStreamPreAndPostImages": {"enabled": True}}


def test_document_lookups_are_counted(db):
    # Peer-only (mongo_river's tests read it to tell which updates were looked up): serverStatus
    # mongoPeer.documentLookups counts documents read by _id: a find {_id: v} with limit 1 (a
    # driver's lookup), each _id of a find {_id: {$in: [...]}}, and each update event's fullDocument:
    # updateLookup; other reads do not count.
    def count():
        return db.client.admin.command("serverStatus")["mongoPeer"]["documentLookups"]

    db.c.insert_many([{"_id": i, "n": 0} for i in range(3)])
    start = count()
    assert db.c.find_one({"_id": 1}) == {"_id": 1, "n": 0}
    assert count() == start + 1
    list(db.c.find({"_id": {"$gte": 0}}).limit(1))
    list(db.c.find({}))
    assert count() == start + 1
    assert len(list(db.c.find({"_id": {"$in": [0, 2, 7]}}))) == 2
    assert count() == start + 4
    start += 3
    with db.c.watch(max_await_time_ms=200) as cs:
        db.c.update_one({"_id": 2}, {"$set": {"n": 1}})
        _next(cs)
    assert count() == start + 1
    with db.c.watch(full_document="updateLookup", max_await_time_ms=200) as cs:
        db.c.update_one({"_id": 2}, {"$set": {"n": 2}})
        assert _next(cs)["fullDocument"] == {"_id": 2, "n": 2}
    assert count() == start + 2


def test_events_read_ahead_keep_order_with_writes_between(client, db):
    """Events converted ahead of a getMore (while the client reads the last reply) and events
    written after them come once each, in oplog order, and resuming from any event's token
    gives the rest."""
    db.create_collection("c")
    with db.c.watch(batch_size=2, max_await_time_ms=200) as cs:
        db.c.insert_many([{"_id": i} for i in range(6)])
        got = [_next(cs) for _ in range(3)]                  # aggregate + getMores: read ahead
        db.c.insert_one({"_id": 6})
        db.c.delete_one({"_id": 0})
        db.c.update_one({"_id": 1}, {"$set": {"v": 1}})
        got += [_next(cs) for _ in range(6)]
    seen = [(e["operationType"], e["documentKey"]["_id"]) for e in got]
    assert seen == [("insert", i) for i in range(7)] + [("delete", 0), ("update", 1)]
    with db.c.watch(resume_after=got[2]["_id"], max_await_time_ms=200) as cs:
        rest = [_next(cs) for _ in range(6)]
    assert [(e["operationType"], e["documentKey"]["_id"]) for e in rest] == seen[3:]
