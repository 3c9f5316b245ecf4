"""review18 (diagnostic): gdb attached to a streaming worker, then one reply whose messageLength is
one byte short (mode one_short) or whose document length is 3 (doc_len_small, oplog capture):
prints the worker's backtrace at the crash."""

import json
import os
import subprocess
import tempfile

import pytest

from evilproxy import EvilProxy
from pgcluster import wait_for
from river import create_river
from test_review18_evil_replies import MAPPING, MODES, load, source_port, worker_pid


@pytest.mark.parametrize("mode,capture", [("one_short", "change_stream"), ("doc_len_small", "oplog"),
                                          ("wrong_opcode", "change_stream")])
def test_backtrace(river_pg, mongo, mode, capture):
    pg = river_pg
    name = f"bt_{mode}_{capture}"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    load(coll, seed=5, small=50, big=())
    armed = {"v": False, "fired": None}

    def policy(n, r, s):
        if armed["v"] and armed["fired"] is None and n == "getMore" and b"zz-bt" in r:
            armed["fired"] = len(r)
            return MODES[mode](r)
        return [("send", r, 0)]
    proxy = EvilProxy(source_port(mongo))
    proxy.policy = policy
    proxy.start()
    out = tempfile.NamedTemporaryFile(prefix="gdb-", suffix=".txt", delete=False).name
    try:
        create_river(pg, name, proxy.uri("&socketTimeoutMS=4000"), {"capture": capture})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (name,))
        pid = worker_pid(pg, name)
        gdb = subprocess.Popen(["gdb", "-p", str(pid), "-batch", "-nx",
                                "-ex", "handle all nostop noprint pass",
                                "-ex", "handle SIGSEGV stop print nopass", "-ex", "handle SIGABRT stop print nopass",
                                "-ex", "continue", "-ex", "bt 40", "-ex", "kill"],
                               stdout=open(out, "w"), stderr=subprocess.STDOUT)
        def traced():
            with open(f"/proc/{pid}/status") as f:
                return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)
        wait_for(traced, 60, 0.1, "gdb attached")
        armed["v"] = True
        coll.insert_one({"_id": "zz-bt", "n": 1, "blob": "x"})
        try:
            gdb.wait(60)
        except subprocess.TimeoutExpired:
            gdb.kill()
        text = open(out).read()
        print(f"=== {name}: fired {armed['fired']}\n" + "\n".join(
            line for line in text.splitlines() if line.startswith("#") or "signal" in line.lower()))
    finally:
        try:
            pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
        finally:
            proxy.close()
            os.unlink(out)
