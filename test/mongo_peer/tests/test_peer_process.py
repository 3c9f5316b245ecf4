"""The mongo-peer process contract: ready line, fast start, clean exit on SIGTERM."""
import time

import pytest

from peer_helpers import MONGO_URI, start_peer, stop_peer


def test_starts_fast_and_exits_cleanly_on_sigterm():
    if MONGO_URI:
        pytest.skip("tests the mongo-peer process itself")
    t = time.monotonic()
    proc, port = start_peer()
    # Contract (ARCHITECTURE.md section 4): ready line, start in under a second.
    assert time.monotonic() - t < 1.0
    assert port > 0
    # Contract: exits cleanly (status 0) on SIGTERM.
    assert stop_peer(proc) == 0


def test_sigterm_with_blocked_get_more():
    if MONGO_URI:
        pytest.skip("tests the mongo-peer process itself")
    import pymongo
    proc, port = start_peer()
    c = pymongo.MongoClient("mongodb://127.0.0.1:%d/?replicaSet=rs0" % port)
    c.t.create_collection("c")
    r = c.t.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
    import threading
    th = threading.Thread(target=lambda: _quiet(c, r["cursor"]["id"]), daemon=True)
    th.start()
    time.sleep(0.2)
    t = time.monotonic()
    assert stop_peer(proc) == 0
    assert time.monotonic() - t < 3.0
    c.close()


def _quiet(c, cid):
    try:
        c.t.command("getMore", cid, collection="c", maxTimeMS=10000)
    except Exception:
        pass


def test_restart_with_dbpath_keeps_data_and_oplog(tmp_path):
    if MONGO_URI:
        pytest.skip("needs the peer-only switch --dbpath (restarting the source)")
    import pymongo
    proc, port = start_peer(["--dbpath", str(tmp_path)])
    c = pymongo.MongoClient("mongodb://127.0.0.1:%d/?replicaSet=rs0" % port)
    c.t.c.insert_one({"_id": 1})
    with c.t.c.watch(max_await_time_ms=200) as cs:
        c.t.c.insert_one({"_id": 2})
        token = None
        while token is None:
            ev = cs.try_next()
            token = ev["_id"] if ev else None
    last_ts = c.admin.command("ping")["operationTime"]
    c.close()
    assert stop_peer(proc) == 0
    proc, port = start_peer(["--dbpath", str(tmp_path), "--port", str(port)])
    try:
        c = pymongo.MongoClient("mongodb://127.0.0.1:%d/?replicaSet=rs0" % port)
        # Peer switch contract (README): data, collection UUIDs and oplog survive a clean restart,
        # timestamps keep increasing, and change streams resume across it.
        assert sorted(d["_id"] for d in c.t.c.find()) == [1, 2]
        assert c.admin.command("ping")["operationTime"] > last_ts
        with c.t.c.watch(resume_after=token, max_await_time_ms=200) as cs:
            c.t.c.insert_one({"_id": 3})
            ev = None
            while ev is None:
                ev = cs.try_next()
            assert ev["documentKey"] == {"_id": 3}
        c.close()
    finally:
        assert stop_peer(proc) == 0


def test_restart_with_auth_keeps_users_data_and_images(tmp_path):
    if MONGO_URI:
        pytest.skip("needs the peer-only switches --dbpath and --auth (restarting the source)")
    import pymongo
    args = ["--dbpath", str(tmp_path), "--auth", "river:s3cret"]
    proc, port = start_peer(args)
    uri = "mongodb://river:s3cret@127.0.0.1:%d/?replicaSet=rs0" % port
    c = pymongo.MongoClient(uri)
    c.t.create_collection("c", changeStreamPreAndPostImages={"enabled": True})
    t0 = c.admin.command("ping")["operationTime"]
    c.t.c.insert_one({"_id": 1, "v": 1})
    c.t.c.update_one({"_id": 1}, {"$set": {"v": 2}})
    c.close()
    assert stop_peer(proc) == 0
    proc, port = start_peer(args + ["--port", str(port)])
    try:
        c = pymongo.MongoClient(uri)
        # Peer switch contract (README): users come from --auth, data, oplog and images from
        # --dbpath.  [manual:reference/method/db.collection.watch/] fullDocumentBeforeChange
        # "required" fails the stream when no pre-image is available, so this needs it kept.
        r = c.t.command("aggregate", "c", cursor={}, pipeline=[{"$changeStream": {
            "startAtOperationTime": t0, "fullDocumentBeforeChange": "required"}}])
        evs = r["cursor"]["firstBatch"]
        assert [e["operationType"] for e in evs] == ["insert", "update"]
        assert evs[1]["fullDocumentBeforeChange"] == {"_id": 1, "v": 1}
        c.close()
    finally:
        assert stop_peer(proc) == 0
