"""Fixtures for the mongo-peer conformance suite.

Without MONGO_URI every session starts one peer (peer_process.start_peer) and the tests talk
to it with pymongo.  With MONGO_URI=mongodb://.../?replicaSet=rs0 the same tests run against a
real mongod 6.0 replica set started with --setParameter enableTestCommands=1; tests that need a
peer-only switch (e.g. --oplog-size) skip themselves with a reason.

Sources cited in the tests (short names used in comments):
  [manual:X]   https://www.mongodb.com/docs/v6.0/X
  [server:X]   github.com/mongodb/mongo, file X (master unless a version is named)
  [spec:X]     github.com/mongodb/specifications, file source/X
  [wiki:failCommand] github.com/mongodb/mongo/wiki/The-%22failCommand%22-fail-point
"""
import os
import re
import sys

import pymongo
import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peer_process import start_peer, stop_peer  # noqa: E402

MONGO_URI = os.environ.get("MONGO_URI")



@pytest.fixture(scope="session")
def peer_uri():
    if MONGO_URI:
        yield MONGO_URI
        return
    proc, port = start_peer()
    yield "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port
    rc = stop_peer(proc)
    assert rc == 0, "mongo-peer exited with %r; log in %s" % (rc, proc.peer_log)


@pytest.fixture(scope="session")
def client(peer_uri):
    c = pymongo.MongoClient(peer_uri, serverSelectionTimeoutMS=5000)
    yield c
    c.close()


@pytest.fixture
def db(client, request):
    name = "t_" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:50]
    client.drop_database(name)
    yield client[name]
    client.drop_database(name)


@pytest.fixture
def own_peer():
    """own_peer(extra_args) starts a private peer with peer-only switches; skips on real mongod."""
    procs = []

    def start(*extra):
        if MONGO_URI:
            pytest.skip("needs the peer-only switch %s; not available on a real mongod" % (extra,))
        proc, port = start_peer(list(extra))
        procs.append(proc)
        return pymongo.MongoClient("mongodb://127.0.0.1:%d/?replicaSet=rs0" % port,
                                   serverSelectionTimeoutMS=5000), proc, port
    yield start
    for p in procs:
        stop_peer(p)
