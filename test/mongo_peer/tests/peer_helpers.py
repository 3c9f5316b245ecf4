"""Helpers shared by the mongo-peer conformance tests (kept out of conftest.py so that they
import under a unique module name next to other test suites)."""
import os
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peer_process import start_peer, stop_peer  # noqa: E402,F401

MONGO_URI = os.environ.get("MONGO_URI")

__all__ = ["MONGO_URI", "start_peer", "stop_peer", "server_address", "op_time", "oplog_after"]


def server_address(client):
    """server_address returns (host, port) of the primary."""
    client.admin.command("ping")
    return client.address


def op_time(client):
    """op_time returns the operationTime of a no-op command: 'now' in oplog time."""
    return client.admin.command("ping")["operationTime"]


def oplog_after(client, ts, ns_prefix=None):
    """oplog_after returns the oplog entries after ts, without no-op ('n') entries."""
    q = {"ts": {"$gt": ts}, "op": {"$ne": "n"}}
    out = list(client.local["oplog.rs"].find(q))
    if ns_prefix:
        out = [e for e in out if e["ns"].startswith(ns_prefix) or e["ns"] == "admin.$cmd"]
    return out
