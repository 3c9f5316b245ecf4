"""mongo_source: the MongoDB source of integration tests.

MONGO_URI (a real mongod replica set) when set; otherwise the repo's MongoDB peer
(test/mongo_peer/). Tests that need a peer-only switch ask `is_peer` and skip visibly otherwise.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.path.join(os.path.dirname(HERE), "mongo_peer")


class MongoSource:
    """MongoSource is a running MongoDB (real or peer) with its URI."""

    def __init__(self, uri, process=None, is_peer=False):
        self.uri = uri
        self.process = process
        self.is_peer = is_peer

    def client(self, **kwargs):
        import pymongo
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=10000, **kwargs)

    def stop(self):
        if self.process is not None:
            sys.path.insert(0, PEER_DIR)
            from peer_process import stop_peer
            stop_peer(self.process)
            self.process = None


def peer_available():
    return os.path.exists(os.path.join(PEER_DIR, "peer_process.py"))


def start_source(extra_peer_args=()):
    """start_source returns a MongoSource: MONGO_URI if set, else a fresh peer (None if no peer yet)."""
    uri = os.environ.get("MONGO_URI")
    if uri:
        return MongoSource(uri)
    if not peer_available():
        return None
    sys.path.insert(0, PEER_DIR)
    from peer_process import start_peer
    process, port = start_peer(extra_args=tuple(extra_peer_args))
    return MongoSource(f"mongodb://127.0.0.1:{port}/?replicaSet=rs0", process, is_peer=True)
