"""Outside review 21: concurrent writes during an initial copy. The source deletes or updates a document
right after it built the copy's reply holding it (as mongod can: a getMore's batch is the documents
as they were when it ran, and the client reads the reply later). The stream, read between copy
steps, applies that delete/update; a copy step that writes the (older) document from the reply
afterwards must not bring a deleted document back nor overwrite the newer version.

The proxy makes the timing deterministic: it runs the write against the peer (directly, not
through the proxy) after the peer built the reply and before it forwards the reply to the river.
Each reply is also held 60-120 ms, so the copy lasts over 10 s (the stream, whose replies grow
1, 2, 4, ... events, catches up with the copy) and the stream is read between
copy steps ("about once a second")."""

import json
import threading
import time

from evilproxy import EvilProxy
from hostile_lib import decode, port_of
from pgcluster import wait_for
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                   "n": {"path": "n", "type": "bigint"},
                                   "v": {"path": "v", "type": "bigint"}}}


class TailWriter:
    """A proxy policy: for each reply of the copy's cursor on ns, the last document of its batch is
    deleted (odd replies) or updated to v=1 (even replies) before the reply goes on."""

    def __init__(self, client, ns, delay):
        self.client, self.ns, self.delay = client, ns, delay
        self.deleted, self.updated = [], []
        self.replies = 0
        self.lock = threading.Lock()

    def __call__(self, name, reply):
        if name in ("find", "getMore"):
            try:
                _, body, _ = decode(reply)
            except Exception:
                return [("send", reply)]
            cursor = body.get("cursor") or {}
            batch = cursor.get("firstBatch", cursor.get("nextBatch"))
            # only the copy's cursor (its getMores; not the change stream's, not lookups)
            if name == "getMore" and cursor.get("ns") == self.ns and batch and "n" in batch[-1]:
                db, coll = self.ns.split(".", 1)
                with self.lock:
                    self.replies += 1
                    last = batch[-1]["_id"]
                    if self.replies % 2:
                        self.client[db][coll].delete_one({"_id": last})
                        self.deleted.append(last)
                    else:
                        self.client[db][coll].update_one({"_id": last}, {"$set": {"v": 1}})
                        self.updated.append(last)
                time.sleep(self.delay)
        return [("send", reply)]


class Background(threading.Thread):
    """Background inserts into another mapped collection of the river, ~20 a second, so that the
    stream's replies grow (each reply asks for at most as many events as it has read) and the
    stream keeps up with the source during the copy, as it does in a long real copy."""

    def __init__(self, coll):
        super().__init__(daemon=True)
        self.coll, self.stopped, self.n = coll, threading.Event(), 0

    def run(self):
        while not self.stopped.is_set():
            self.coll.insert_one({"_id": f"b{self.n:07d}", "n": self.n, "v": 0})
            self.n += 1
            self.stopped.wait(0.05)


def run_race(pg, mongo, river, batch_size, count, delay):
    client = mongo.client()
    client.drop_database(river)
    client[river].a.insert_one({"_id": "a", "n": 0, "v": 0})
    docs = [{"_id": f"d{i:05d}", "n": i, "v": 0} for i in range(count)]
    for i in range(0, count, 5000):
        client[river].c.insert_many(docs[i:i + 5000])
    policy = TailWriter(client, f"{river}.c", delay)
    proxy = EvilProxy(port_of(mongo), policy)
    background = Background(client[river].a)
    background.start()
    create_river(pg, river, proxy.uri(), {"batch_size": batch_size})
    for coll in ("a", "c"):
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"{river}.{coll}", f"{river}_{coll}", json.dumps(MAPPING)))
    wait_for(lambda: pg.scalar("SELECT count(*) FROM mongo_river.status WHERE river = %s AND phase <> 'streaming'",
                               (river,)) == 0, 300, 0.2, "the copy to end")
    background.stopped.set()
    background.join(10)
    wait_synced(pg, river, 120)
    want = {d["_id"]: (d["n"], d["v"]) for d in client[river].c.find({})}
    got = {r[0]: (r[1], r[2]) for r in pg.query(f'SELECT id, n, v FROM "{river}_c"')}
    extra = sorted(got.keys() - want.keys())
    missing = sorted(want.keys() - got.keys())
    stale = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    proxy.close()
    return policy, extra, missing, stale


def test_deleted_and_updated_during_copy(river_pg, mongo):
    policy, extra, missing, stale = run_race(river_pg, mongo, "race1", 100, 45000, 0.4)
    assert policy.deleted and policy.updated
    problems = []
    if extra:
        problems.append(f"rows of documents deleted during the copy came back: {extra[:10]} ({len(extra)} of "
                        f"{len(policy.deleted)} deleted)")
    if missing:
        problems.append(f"rows missing: {missing[:10]}")
    if stale:
        problems.append(f"rows older than their documents: {stale[:10]} ({len(stale)} of {len(policy.updated)} "
                        "updated)")
    assert problems == [], "\n".join(problems)
