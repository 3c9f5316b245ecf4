"""SCRAM authentication (peer switch --auth USER:PASSWORD)."""
import pymongo
import pytest
from pymongo.errors import OperationFailure


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_login(own_peer, mech):
    _c, _proc, port = own_peer("--auth", "river:s3cret")
    good = pymongo.MongoClient("mongodb://river:s3cret@127.0.0.1:%d/?replicaSet=rs0&"
                               "authMechanism=%s" % (port, mech), serverSelectionTimeoutMS=5000)
    # [manual:core/security-scram/] SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802 / RFC 7677).
    good.t.c.insert_one({"_id": 1})
    assert good.t.c.find_one() == {"_id": 1}
    users = good.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
    assert users == [{"user": "river", "db": "admin"}]
    good.close()


def test_wrong_password_and_unauthenticated(own_peer):
    c, _proc, port = own_peer("--auth", "river:s3cret")
    bad = pymongo.MongoClient("mongodb://river:nope@127.0.0.1:%d/?replicaSet=rs0" % port,
                              serverSelectionTimeoutMS=5000)
    with pytest.raises(OperationFailure) as e:
        bad.t.c.find_one()
    # [server:src/mongo/base/error_codes.yml] AuthenticationFailed = 18.
    assert e.value.code == 18
    with pytest.raises(OperationFailure) as e:
        c.t.c.find_one()
    # [server:src/mongo/base/error_codes.yml] Unauthorized = 13 ("requires authentication").
    assert e.value.code == 13
    assert c.admin.command("ping")["ok"] == 1  # ping needs no authentication
    bad.close()


def test_hello_advertises_mechs_and_runs_speculative_authenticate(own_peer):
    c, _proc, _port = own_peer("--auth", "river:s3cret")
    # [manual:reference/command/hello/] saslSupportedMechs: "<db.user>" returns the user's
    # SASL mechanisms (both SCRAM ones for a user created with the default mechanisms).
    r = c.admin.command("hello", saslSupportedMechs="admin.river")
    assert sorted(r["saslSupportedMechs"]) == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    # [spec:auth/auth.md] "Speculative Authentication": the handshake's speculativeAuthenticate
    # holds a saslStart; the reply's speculativeAuthenticate is the saslStart reply.
    first = b"n,,n=river,r=clientnonce0123456789"
    r = c.admin.command("hello", speculativeAuthenticate={
        "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": first, "db": "admin"})
    spec = r["speculativeAuthenticate"]
    assert spec["done"] is False and "conversationId" in spec
    assert bytes(spec["payload"]).startswith(b"r=clientnonce0123456789")
    # pymongo 3.11 and libmongoc use it: a login then needs no separate saslStart.
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        good = pymongo.MongoClient("mongodb://river:s3cret@127.0.0.1:%d/?replicaSet=rs0&"
                                   "authMechanism=%s" % (_port, mech),
                                   serverSelectionTimeoutMS=5000)
        assert good.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
        good.close()
