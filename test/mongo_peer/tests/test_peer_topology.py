"""hello/isMaster as the primary of a one-member replica set, $clusterTime and operationTime."""
import datetime

from bson.timestamp import Timestamp

from peer_helpers import server_address


def test_hello_primary_fields(client):
    r = client.admin.command("hello")
    me = "%s:%d" % server_address(client)
    # [manual:reference/command/hello/] replica set fields of a primary.
    assert r["isWritablePrimary"] is True and r["secondary"] is False
    assert r["setName"] == "rs0"
    assert r["primary"] == me and r["me"] == me and me in r["hosts"]
    # [manual:reference/command/hello/] limits reported by every mongod.
    assert r["maxBsonObjectSize"] == 16777216
    assert r["maxMessageSizeBytes"] == 48000000
    assert r["maxWriteBatchSize"] == 100000
    assert r["logicalSessionTimeoutMinutes"] == 30
    # [server:src/mongo/db/wire_version.h] WIRE_VERSION_60 = 17; minWireVersion 0 on mongod.
    assert r["maxWireVersion"] == 17 and r["minWireVersion"] == 0
    assert isinstance(r["connectionId"], int)
    assert isinstance(r["localTime"], datetime.datetime)
    # [manual:reference/command/hello/] lastWrite.opTime / lastWriteDate on replica set members.
    assert isinstance(r["lastWrite"]["opTime"]["ts"], Timestamp)
    assert isinstance(r["lastWrite"]["lastWriteDate"], datetime.datetime)


def test_is_master_legacy_name(client):
    r = client.admin.command("isMaster")
    # [manual:reference/command/isMaster/] the legacy command reports 'ismaster', not
    # 'isWritablePrimary'.
    assert r["ismaster"] is True and "isWritablePrimary" not in r


def test_cluster_time_and_operation_time(client):
    r = client.admin.command("ping")
    # [manual:reference/command/ping/] ok: 1. [spec:sessions/driver-sessions.md] gossip of
    # $clusterTime {clusterTime, signature {hash, keyId}}; [manual:reference/read-concern/]
    # operationTime on replica set replies.
    assert r["ok"] == 1
    ct = r["$clusterTime"]
    assert isinstance(ct["clusterTime"], Timestamp)
    assert set(ct["signature"]) == {"hash", "keyId"}
    assert isinstance(r["operationTime"], Timestamp)


def test_cluster_time_advances_with_writes(client, db):
    t0 = client.admin.command("ping")["operationTime"]
    res = db.command("insert", "c", documents=[{"_id": 1}])
    # [manual:reference/read-concern/] operationTime of a write is its oplog time, later than
    # anything before it.
    assert res["operationTime"] > t0


def test_build_info_version(client):
    r = client.admin.command("buildInfo")
    # [manual:reference/command/buildInfo/] version string and versionArray.
    assert r["version"].startswith("6.0.")
    assert r["versionArray"][:2] == [6, 0]


def test_repl_set_get_status(client):
    r = client.admin.command("replSetGetStatus")
    # [manual:reference/command/replSetGetStatus/] set, myState 1 (PRIMARY), members.
    assert r["set"] == "rs0" and r["myState"] == 1
    assert r["members"][0]["stateStr"] == "PRIMARY" and r["members"][0]["self"] is True
