"""Replies stay near 4 MiB whatever the size of the documents seen first (issue 18, finding B4 of
the outside review): the copy's find, a change stream's aggregate and an oplog reader's find ask for one document, then
each getMore for about 4 MiB of documents the size of those seen. When the first document is tiny and
the next ones are 2 MiB, trusting the tiny size made the first getMore ask for the river's whole
batch size, and the source filled a 16 MiB reply (14 MB replies and a worker 28 MiB above idle were
measured). Each getMore now asks for at most twice what the previous batch held.

A TCP proxy between the worker and the source records each find, aggregate and getMore with the
batch size asked and the length of its reply; every reply of the collection's cursors must stay
within 4 MiB and one document (README: "about 4 MiB of documents the size of the last batch's"). The
copy reads a collection whose first document (in _id order) is tiny; the stream reads a backlog,
left while the worker was stopped, that starts with a tiny insert followed by 2 MiB ones, in each
capture (the oplog reader's getMores were not fitted: 14 MiB replies, 28 MiB above idle)."""

import json
import struct

import bson
import pytest

from evilproxy import EvilProxy
from pgcluster import wait_for
from river import create_river, wait_synced
from worker_memory import PeakRss, rss_anon_kb, worker_pid

MIB = 1024 * 1024
SIZE = 2 * MIB
COUNT = 16
BOUND = 4 * MIB + SIZE + 64 * 1024  # 4 MiB and one document, with room for the reply's envelope
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "blob": {"path": "blob", "type": "text"}}}


def command_of(message):
    """command_of returns the command document of an OP_MSG request (its kind-0 section), or None."""
    if struct.unpack_from("<i", message, 12)[0] != 2013 or message[20] != 0:
        return None
    length = struct.unpack_from("<i", message, 21)[0]
    try:
        return bson.decode(message[21:21 + length])
    except Exception:
        return None


class RecordingProxy(EvilProxy):
    """RecordingProxy passes everything and records each find, change stream aggregate and getMore
    request as dict(name, coll, batch, cursor, reply): the collection ("$cmd.aggregate" for a
    database's or the cluster's stream), the batch size asked (None if none), the cursor's id and
    the reply's length in bytes."""

    def __init__(self, upstream_port):
        super().__init__(upstream_port, self.reply)
        self.on_request = self.request
        self.pending = {}  # requestID -> record awaiting its reply
        self.records = []

    def request(self, name, message):
        cmd = command_of(message)
        if not cmd or name not in ("find", "aggregate", "getMore"):
            return
        if name == "getMore":
            coll, batch = cmd.get("collection"), cmd.get("batchSize")
        elif name == "find":
            coll, batch = cmd["find"], cmd.get("batchSize")
        else:
            coll = cmd["aggregate"] if isinstance(cmd["aggregate"], str) else "$cmd.aggregate"
            batch = (cmd.get("cursor") or {}).get("batchSize")
            if "$changeStream" not in ((cmd.get("pipeline") or [{}])[0] or {}):
                return
        cursor = cmd["getMore"] if name == "getMore" else None
        record = {"name": name, "coll": coll, "batch": batch, "cursor": cursor, "reply": None}
        with self.lock:
            self.pending[struct.unpack_from("<i", message, 4)[0]] = record
            self.records.append(record)

    def reply(self, name, message):
        with self.lock:
            record = self.pending.pop(struct.unpack_from("<i", message, 8)[0], None)
        if record is not None:
            record["reply"] = len(message)
            if record["name"] != "getMore":  # the cursor's id, from the first reply
                reply = command_of(message) or {}
                record["cursor"] = (reply.get("cursor") or {}).get("id")
        return [("send", message)]

    def take(self):
        """take returns the records so far and forgets them."""
        with self.lock:
            out, self.records = self.records, []
        return out


def source_port(mongo):
    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0]
    return int(host.rsplit(":", 1)[1])


def describe(records):
    return ", ".join(f"{r['name']} {r['batch']} -> {(r['reply'] or 0) / MIB:.1f} MiB" for r in records)


def large(i):
    return {"_id": f"b{i:02d}", "n": i, "blob": chr(ord("a") + i % 26) * SIZE}


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_replies_stay_near_4_mib_after_a_tiny_first_document(river_pg, mongo, capture):
    pg, river = river_pg, f"reply_bound_{capture}"
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].c
    coll.insert_one({"_id": "a0", "n": 0, "blob": ""})
    for i in range(COUNT):
        coll.insert_one(large(i))
    proxy = RecordingProxy(source_port(mongo))
    try:
        create_river(pg, river, proxy.uri(), {"batch_size": 2000, "capture": capture})
        pid = wait_for(lambda: worker_pid(pg, river), 60, 0.05, "the worker")
        idle = rss_anon_kb(pid)
        proxy.take()
        with PeakRss(pid) as copy_peak:
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river,
                                                                          json.dumps(MAPPING)))
            wait_synced(pg, river, 300)
        assert pg.scalar(f"SELECT count(*) FROM {river}") == COUNT + 1
        records = proxy.take()
        scans = {r["cursor"] for r in records if r["name"] == "find" and r["coll"] == "c"}
        copy = [r for r in records if r["name"] in ("find", "getMore") and r["cursor"] in scans]

        # The stream: a backlog (the worker stopped) that starts with a tiny insert.
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        wait_for(lambda: not worker_pid(pg, river), 60, 0.05, "the worker's stop")
        coll.insert_one({"_id": "a1", "n": -1, "blob": ""})
        for i in range(COUNT, 2 * COUNT):
            coll.insert_one(large(i))
        proxy.take()
        pg.query("SELECT mongo_river.start(%s)", (river,))
        pid = wait_for(lambda: worker_pid(pg, river), 60, 0.01, "the worker's start")
        with PeakRss(pid) as stream_peak:
            wait_synced(pg, river, 300)
        assert pg.scalar(f"SELECT count(*) FROM {river}") == 2 * COUNT + 2
        assert pg.scalar(f"SELECT count(*) FROM {river} WHERE octet_length(blob) = %s", (SIZE,)) == 2 * COUNT
        records = proxy.take()
        opener = "aggregate" if capture == "change_stream" else "find"  # (an oplog reader's find: oplog.rs)
        streams = {r["cursor"] for r in records if r["name"] == opener and r["cursor"] and
                   (capture == "change_stream" or r["coll"] == "oplog.rs")}  # (not single-batch finds)
        stream = [r for r in records if r["name"] in (opener, "getMore") and r["cursor"] in streams]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        proxy.close()
        client.drop_database(river)

    print(f"copy: {describe(copy)}; worker peak {(copy_peak.peak - idle) / 1024:.1f} MiB above idle")
    print(f"stream: {describe(stream)}; worker peak {(stream_peak.peak - idle) / 1024:.1f} MiB above idle")
    assert copy and copy[0]["name"] == "find" and copy[0]["batch"] == 1, describe(copy)
    assert max(r["reply"] or 0 for r in copy) > SIZE, "no reply held a large document: nothing was measured"
    assert all((r["reply"] or 0) <= BOUND for r in copy), "a copy reply went past 4 MiB and one document: " + \
        describe(copy)
    assert stream and stream[0]["name"] == opener and stream[0]["batch"] == 1, describe(stream)
    assert max(r["reply"] or 0 for r in stream) > SIZE, "no reply held a large event: nothing was measured"
    assert all((r["reply"] or 0) <= BOUND for r in stream), "a stream reply went past 4 MiB and one event: " + \
        describe(stream)
