"""failCommand fail point ([wiki:failCommand]; real mongod needs enableTestCommands=1)."""
import time

import pymongo
import pytest
from pymongo.errors import AutoReconnect, OperationFailure


@pytest.fixture
def fp(client):
    def set_fp(mode, **data):
        client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)
    yield set_fp
    client.admin.command("configureFailPoint", "failCommand", mode="off")


def test_times_error_code(db, fp):
    fp({"times": 1}, failCommands=["find"], errorCode=2)
    with pytest.raises(OperationFailure) as e:
        db.command("find", "c")
    # [wiki:failCommand] mode {times: n} fails the next n matching commands with errorCode.
    assert e.value.code == 2
    assert db.command("find", "c")["ok"] == 1


def test_always_on_and_off(client, db, fp):
    fp("alwaysOn", failCommands=["count"], errorCode=8)
    for _ in range(3):
        with pytest.raises(OperationFailure) as e:
            db.command("count", "c")
        assert e.value.code == 8
    # [wiki:failCommand] commands not listed in failCommands are unaffected.
    assert db.command("find", "c")["ok"] == 1
    client.admin.command("configureFailPoint", "failCommand", mode="off")
    assert db.command("count", "c")["ok"] == 1


def test_error_labels(db, fp):
    fp({"times": 1}, failCommands=["find"], errorCode=2, errorLabels=["MyLabel"])
    with pytest.raises(OperationFailure) as e:
        db.command("find", "c")
    # [wiki:failCommand] errorLabels replaces the labels of the error reply.
    assert e.value.has_error_label("MyLabel")


def test_retryable_write_error_is_retried(db, fp):
    fp({"times": 1}, failCommands=["insert"], errorCode=91)
    # [spec:retryable-writes/retryable-writes.md] servers >= 4.4 label retryable errors with
    # RetryableWriteError; the driver retries once, so the insert succeeds exactly once.
    db.c.insert_one({"_id": 1})
    assert db.c.count_documents({}) == 1


def test_close_connection(peer_uri, db, fp):
    c = pymongo.MongoClient(peer_uri, retryReads=False, retryWrites=False,
                            serverSelectionTimeoutMS=5000)
    try:
        c.admin.command("ping")
        fp({"times": 1}, failCommands=["find"], closeConnection=True)
        # [wiki:failCommand] closeConnection: the server closes the connection without reply.
        with pytest.raises(AutoReconnect):
            c[db.name].command("find", "c")
        assert c[db.name].command("find", "c")["ok"] == 1
    finally:
        c.close()


def test_block_connection(db, fp):
    fp({"times": 1}, failCommands=["find"], blockConnection=True, blockTimeMS=400)
    start = time.monotonic()
    assert db.command("find", "c")["ok"] == 1
    # [wiki:failCommand] blockConnection + blockTimeMS delays the command by that long.
    assert time.monotonic() - start >= 0.35


def test_app_name_filter(peer_uri, db, fp):
    other = pymongo.MongoClient(peer_uri, appname="victim", serverSelectionTimeoutMS=5000)
    try:
        fp("alwaysOn", failCommands=["find"], errorCode=2, appName="victim")
        # [wiki:failCommand] appName restricts the fail point to clients with that appName.
        assert db.command("find", "c")["ok"] == 1
        with pytest.raises(OperationFailure):
            other[db.name].command("find", "c")
    finally:
        other.close()


def test_corrupt_cursor_batch_is_peer_only_and_damages_one_batch(client, db):
    """corruptCursorBatch (peer only): the next batch's first document loses its _id, once."""
    if "mongo-peer" not in client.admin.command("buildInfo").get("version", ""):
        pytest.skip("corruptCursorBatch is the peer's own fail point")
    db.cc.delete_many({})
    db.cc.insert_many([{"_id": i, "v": i} for i in range(3)])
    client.admin.command("configureFailPoint", "corruptCursorBatch", mode={"times": 1},
                         data={"kind": "noDocId", "db": db.name, "cursor": "find"})
    try:
        first = db.command("find", "cc", sort={"_id": 1})["cursor"]["firstBatch"]
        assert "_id" not in first[0] and first[0]["v"] == 0 and first[1]["_id"] == 1
        again = db.command("find", "cc", sort={"_id": 1})["cursor"]["firstBatch"]
        assert again[0]["_id"] == 0
        with pytest.raises(OperationFailure):
            client.admin.command("configureFailPoint", "corruptCursorBatch", mode="alwaysOn",
                                 data={"kind": "nonsense"})
    finally:
        client.admin.command("configureFailPoint", "corruptCursorBatch", mode="off")
