"""Review 24 of 206c33b: oplog-capture rivers under multi-document transactions split over applyOps
chains (the peer packs 2 operations an entry, partialTxn on all but the last), aborted transactions,
and retryable writes (lsid + txnNumber on plain CRUD entries) of several sessions at once; then the
worker is terminated while it catches up on such a backlog. The table must equal the collection
and changes_applied must count each change of the oplog once."""

import json
import random
import threading
import time

import pymongo
import pytest
from pymongo.errors import OperationFailure, PyMongoError

from pgcluster import wait_for
from river import create_river, wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "v": {"path": "v", "type": "text"}}}


def ops_in_oplog(client, ns, after_ts):
    """ops_in_oplog counts the i/u/d operations on ns after after_ts: plain entries and the
    operations of applyOps entries (all of them: partial entries of a transaction committed later,
    or of one aborted later, as a reader that did not look at the end would)."""
    committed, plain, txns = 0, 0, {}
    for e in client.local["oplog.rs"].find({"ts": {"$gt": after_ts}}).sort("$natural", 1):
        if e.get("op") in ("i", "u", "d") and e.get("ns") == ns:
            plain += 1
        elif e.get("op") == "c" and isinstance(e.get("o"), dict) and "applyOps" in e["o"]:
            key = (str(e.get("lsid")), e.get("txnNumber"))
            mine = sum(1 for op in e["o"]["applyOps"] if op.get("ns") == ns and op.get("op") in ("i", "u", "d"))
            txns[key] = txns.get(key, 0) + mine
            if not e["o"].get("partialTxn"):
                committed += txns.pop(key)
        elif e.get("op") == "c" and isinstance(e.get("o"), dict) and "abortTransaction" in e["o"]:
            txns.pop((str(e.get("lsid")), e.get("txnNumber")), None)
    return plain + committed


def last_ts(client):
    return next(client.local["oplog.rs"].find().sort("$natural", -1).limit(1))["ts"]


def compare(pg, table, coll):
    want = {d["_id"]: (d.get("n"), d.get("v")) for d in coll.find()}
    got = {r[0]: (r[1], r[2]) for r in pg.query(f'SELECT id, n, v FROM "{table}"')}
    return [(k, want.get(k), got.get(k)) for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]


class Load:
    """Load runs transaction threads and retryable-write threads against coll's namespace, each with
    its own client (its own sessions); seeded."""

    def __init__(self, uri, db, seed, txn_threads=3, rw_threads=3, rounds=15):
        self.uri, self.db, self.seed, self.rounds = uri, db, seed, rounds
        self.threads = [threading.Thread(target=self.txn, args=(i,)) for i in range(txn_threads)] + \
                       [threading.Thread(target=self.retryable, args=(i,)) for i in range(rw_threads)]
        self.errors, self.committed, self.aborted = [], 0, 0
        self.lock = threading.Lock()

    def run(self):
        for t in self.threads:
            t.start()
        for t in self.threads:
            t.join()
        assert not self.errors, self.errors[:3]

    def step(self, coll, rng, tag, session=None):
        k = f"k{rng.randrange(60):02d}"
        kind = rng.choice(["inc", "set", "insert", "delete", "replace", "upsert"])
        if kind == "inc":
            coll.update_one({"_id": k}, {"$inc": {"n": 1}}, session=session)
        elif kind == "set":
            coll.update_one({"_id": k}, {"$set": {"v": f"{tag}-{rng.random():.6f}"}}, session=session)
        elif kind == "insert":
            coll.insert_one({"_id": f"{tag}-{rng.randrange(10**9)}", "n": 1, "v": tag}, session=session)
        elif kind == "delete":
            coll.delete_one({"_id": k}, session=session)
        elif kind == "replace":
            coll.replace_one({"_id": k}, {"n": rng.randrange(100), "v": f"r{tag}"}, session=session)
        else:
            coll.update_one({"_id": k}, {"$set": {"n": 7, "v": f"u{tag}"}}, upsert=True, session=session)

    def txn(self, i):
        rng = random.Random(self.seed * 100 + i)
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=10000)
        coll = client[self.db].c
        try:
            for r in range(self.rounds):
                with client.start_session() as s:
                    s.start_transaction()
                    try:
                        for j in range(rng.randint(1, 7)):
                            self.step(coll, rng, f"t{i}.{r}.{j}", s)
                        if rng.random() < 0.25:
                            s.abort_transaction()
                            with self.lock:
                                self.aborted += 1
                        else:
                            s.commit_transaction()
                            with self.lock:
                                self.committed += 1
                    except OperationFailure as e:
                        if e.code != 112 and "TransientTransactionError" not in (e.details or {}).get("errorLabels", []):
                            raise
                        if s.in_transaction:
                            s.abort_transaction()
        except PyMongoError as e:
            self.errors.append(f"txn thread {i}: {e!r}")
        finally:
            client.close()

    def retryable(self, i):
        rng = random.Random(self.seed * 1000 + i)
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=10000, retryWrites=True)
        coll = client[self.db].c
        try:
            for r in range(self.rounds * 4):
                try:
                    self.step(coll, rng, f"w{i}.{r}")
                except OperationFailure as e:
                    if e.code != 112:
                        raise
        except PyMongoError as e:
            self.errors.append(f"retryable thread {i}: {e!r}")
        finally:
            client.close()


def fresh(peer, db):
    client = peer.client()
    client.drop_database(db)
    coll = client[db].c
    coll.insert_many([{"_id": f"k{i:02d}", "n": 0, "v": ""} for i in range(50)])
    return client, coll


def applied(pg, river):
    return pg.scalar("SELECT sum(changes_applied) FROM mongo_river.status WHERE river = %s", (river,))


@pytest.mark.parametrize("seed,document", [(1, False), (2, False), (5, True), (6, True)])
def test_transactions_and_retryable_writes_of_many_sessions(river_pg, chain_peer, seed, document):
    """document: the mapping has a document column, so every update is looked up by _id (FindById)
    while the oplog cursor's reply is held."""
    pg, db = river_pg, f"r24tx{seed}"
    client, coll = fresh(chain_peer, db)
    river = db
    create_river(pg, river, chain_peer.uri, {"capture": "oplog", "batch_size": 50})
    mapping = dict(MAPPING, document="doc") if document else MAPPING
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{db}.c", river, json.dumps(mapping)))
    try:
        wait_synced(pg, river, 60)
        start_ts, before = last_ts(client), applied(pg, river)
        load = Load(chain_peer.uri, db, seed)
        load.run()
        wait_synced(pg, river, 120)
        bad = compare(pg, river, coll)
        assert not bad, f"seed {seed}: {len(bad)} rows differ (key, mongo, pg): {bad[:8]}"
        want = ops_in_oplog(client, f"{db}.c", start_ts)
        got = applied(pg, river) - before
        partial = client.local["oplog.rs"].count_documents({"ts": {"$gt": start_ts}, "o.partialTxn": True})
        assert partial > 0, "no transaction was split over several applyOps entries"
        print(f"seed {seed}: {partial} partialTxn entries, {load.committed} transactions committed, {load.aborted} aborted; "
              f"{want} changes in the oplog, changes_applied +{got}")
        assert got == want, f"changes_applied counted {got} for {want} changes in the oplog"
        assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (river,)) == 0
        assert "terminated by signal" not in pg.log()
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        client.drop_database(db)


@pytest.mark.parametrize("seed", [3, 4])
def test_worker_killed_during_a_transaction_backlog(river_pg, chain_peer, seed):
    """The same load made while the river is stopped; the worker is terminated three times as it
    catches up (batch_size 7: transactions end up across batches)."""
    pg, db = river_pg, f"r24kill{seed}"
    client, coll = fresh(chain_peer, db)
    river = db
    create_river(pg, river, chain_peer.uri, {"capture": "oplog", "batch_size": 7})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{db}.c", river, json.dumps(MAPPING)))
    try:
        wait_synced(pg, river, 60)
        start_ts, before = last_ts(client), applied(pg, river)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        load = Load(chain_peer.uri, db, seed, rounds=120)
        load.run()
        pg.query("SELECT mongo_river.start(%s)", (river,))
        kills, during = 0, []
        for k in range(3):
            wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                       ("mongo_river " + river,)) > 0, 60, 0.05, "a worker")
            seen = during[-1] if during else 0
            wait_for(lambda: applied(pg, river) - before > seen, 60, 0.005, "progress after a restart")
            during.append(applied(pg, river) - before)
            kills += pg.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = %s", ("mongo_river " + river,))
        print("changes_applied at the kills:", during)
        wait_synced(pg, river, 120)
        bad = compare(pg, river, coll)
        assert not bad, f"seed {seed}, {kills} kills: {len(bad)} rows differ (key, mongo, pg): {bad[:8]}"
        want = ops_in_oplog(client, f"{db}.c", start_ts)
        got = applied(pg, river) - before
        print(f"seed {seed}: {kills} kills, {want} changes in the oplog, changes_applied +{got}")
        assert got == want, f"{kills} kills: changes_applied counted {got} for {want} changes in the oplog"
        assert "terminated by signal" not in pg.log()
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        client.drop_database(db)


def test_transaction_of_big_documents_split_by_size(river_pg, mongo):
    """A transaction of three 6 MiB inserts and updates of them: the peer (as mongod) packs it into
    applyOps entries of at most 16 MB each (partialTxn chain split by size)."""
    pg, db = river_pg, "r24bigtx"
    client = mongo.client()
    client.drop_database(db)
    coll = client[db].c
    coll.insert_one({"_id": "k00", "n": 0, "v": ""})
    river = db
    create_river(pg, river, mongo.uri, {"capture": "oplog", "batch_size": 10})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{db}.c", river, json.dumps(dict(MAPPING, document="doc"))))
    try:
        wait_synced(pg, river, 60)
        start_ts = last_ts(client)
        with client.start_session() as s:
            with s.start_transaction():
                for i in range(3):
                    coll.insert_one({"_id": f"big{i}", "n": i, "v": "big", "blob": chr(97 + i) * (6 << 20)}, session=s)
                coll.update_one({"_id": "k00"}, {"$set": {"v": "in txn"}}, session=s)
                coll.update_one({"_id": "big1"}, {"$set": {"v": "updated"}}, session=s)
        partial = client.local["oplog.rs"].count_documents({"ts": {"$gt": start_ts}, "o.partialTxn": True})
        wait_synced(pg, river, 120)
        bad = compare(pg, river, coll)
        assert not bad, f"{partial} partial entries: rows differ {bad}"
        sizes = dict(pg.query(f"SELECT id, length(doc->>'blob') FROM {river}"))
        assert sizes == {"k00": None, "big0": 6 << 20, "big1": 6 << 20, "big2": 6 << 20}, sizes
        assert "terminated by signal" not in pg.log()
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        client.drop_database(db)
