"""The peer's cursors (review 22 of 69c8270: a cursor builds its next batch ahead at the size last
asked, after a find too; a larger getMore takes it and reads the rest). Random find/getMore
sequences with writes from a second connection between them, checked against what a read at each
getMore would give (the documents of the find's keys as they are now, within the count asked and
the 16 MiB reply bound). PEER_CURSOR_SEEDS sets the number of random runs (40)."""

import os
import random

import bson
import pymongo
import pytest

from peer_process import start_peer, stop_peer

BOUND = 16 * 1024 * 1024 - 16 * 1024


@pytest.fixture(scope="module")
def peer():
    proc, port = start_peer()
    uri = "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port
    a = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    b = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    yield a, b
    a.close()
    b.close()
    assert stop_peer(proc) == 0


def matches(doc, flt):
    return not flt or doc.get("v", 0) in (0, 2)


def expected(live, keys, pos, asked, flt, left):
    """What a read now gives from key index pos: (ids, new pos)."""
    out, size = [], 0
    while pos < len(keys):
        if (asked and len(out) >= asked) or (left is not None and len(out) >= left):
            break
        k = keys[pos]
        d = live.get(k)
        if d is not None and matches(d, flt):
            n = len(bson.encode(d))
            if out and size + n > BOUND:
                break
            out.append(k)
            size += n
        pos += 1
    return out, pos


@pytest.mark.parametrize("seed", range(int(os.environ.get("PEER_CURSOR_SEEDS", "40"))))
def test_random_get_mores_with_writes_give_what_a_read_would(peer, seed):
    a, b = peer
    rng = random.Random(seed)
    name = "clc%d" % seed
    a.drop_database(name)
    n = 80
    big = {rng.randrange(n) for _ in range(6)}
    live = {i: {"_id": i, "v": rng.randrange(4), "pad": "x" * (3 * 1024 * 1024 if i in big else rng.randrange(50))}
            for i in range(n)}
    a[name].c.insert_many([live[i] for i in range(n)])
    flt = rng.random() < 0.4
    skip = rng.choice([0, 0, 3])
    limit = rng.choice([0, 0, 0, 30])
    first = rng.choice([None, 0, 1, 2, 5, 101])
    cmd = {"find": "c", "sort": {"_id": 1}}
    if flt:
        cmd["filter"] = {"v": {"$in": [0, 2]}}
    if skip:
        cmd["skip"] = skip
    if limit:
        cmd["limit"] = limit
    if first is not None:
        cmd["batchSize"] = first
    keys = sorted(k for k in live if matches(live[k], flt))[skip:]
    returned = 0
    want, pos = expected(live, keys, 0, 101 if first is None else first, flt,
                         (limit - returned) if limit else None)
    reply = a[name].command(cmd)["cursor"]
    got = [d["_id"] for d in reply["firstBatch"]]
    assert got == want, f"seed {seed}: find {cmd} gave {got}, a read gives {want}"
    returned += len(got)
    cid = reply["id"]
    log = [("find", first, got)]
    other = b[name].c
    for step in range(40):
        if not cid:
            break
        # writes from another connection to the documents ahead of the cursor
        for _ in range(rng.randrange(3)):
            ahead = [k for k in keys[pos:pos + 6] if k in live]
            if not ahead:
                break
            k = rng.choice(ahead)
            what = rng.choice(["update", "delete", "replace", "fam", "txn"])
            if what == "update":
                other.update_one({"_id": k}, {"$inc": {"v": 1}})
                live[k]["v"] += 1
            elif what == "delete":
                other.delete_one({"_id": k})
                live.pop(k)
            elif what == "replace":
                other.replace_one({"_id": k}, {"v": 7, "pad": "r"})
                live[k] = {"_id": k, "v": 7, "pad": "r"}
            elif what == "fam":
                other.find_one_and_update({"_id": k}, {"$set": {"v": 2, "pad": "f"}})
                live[k].update(v=2, pad="f")
            else:
                with b.start_session() as s:
                    with s.start_transaction():
                        other.update_one({"_id": k}, {"$set": {"v": 4}}, session=s)
                live[k]["v"] = 4
            log.append((what, k))
        asked = rng.choice([0, 1, 2, 3, 5, 8, 13, 40])
        want, new_pos = expected(live, keys, pos, asked, flt, (limit - returned) if limit else None)
        body = {"getMore": cid, "collection": "c"}
        if asked:
            body["batchSize"] = asked
        reply = a[name].command(body)["cursor"]
        batch = reply["nextBatch"]
        got = [d["_id"] for d in batch]
        log.append(("getMore", asked, got))
        assert got == want, f"seed {seed}: getMore of {asked} gave {got}, a read gives {want}; {log[-12:]}"
        assert all(d == live[d["_id"]] for d in batch), f"seed {seed}: stale documents; {log[-12:]}"
        pos = new_pos
        returned += len(got)
        cid = reply["id"]
    a.drop_database(name)


@pytest.mark.parametrize("seed", range(int(os.environ.get("PEER_CURSOR_SEEDS", "40")) // 4))
def test_two_cursors_interleaved_on_one_connection(peer, seed):
    """Two cursors of one collection on one connection (maxPoolSize 1), their getMores
    interleaved with random sizes and writes between: each batch is what a read would give."""
    a, b = peer
    rng = random.Random(1000 + seed)
    name = "cltwo%d" % seed
    a.drop_database(name)
    live = {i: {"_id": i, "v": i % 3, "pad": "p" * rng.randrange(30)} for i in range(60)}
    a[name].c.insert_many([live[i] for i in range(60)])
    one = pymongo.MongoClient(a.address[0], a.address[1], directConnection=True, maxPoolSize=1)
    try:
        cursors = []
        for desc in (1, -1):
            size = rng.choice([0, 1, 3, 7])
            reply = one[name].command({"find": "c", "sort": {"_id": desc}, "batchSize": size})["cursor"]
            keys = sorted(live, reverse=desc < 0)
            want, pos = expected(live, keys, 0, size, False, None)
            assert [d["_id"] for d in reply["firstBatch"]] == want
            cursors.append([reply["id"], keys, pos])
        for step in range(40):
            live_cursors = [c for c in cursors if c[0]]
            if not live_cursors:
                break
            cur = rng.choice(live_cursors)
            if rng.random() < 0.5:
                k = rng.choice(list(live))
                if rng.random() < 0.5:
                    b[name].c.delete_one({"_id": k})
                    live.pop(k)
                else:
                    b[name].c.update_one({"_id": k}, {"$set": {"pad": "u%d" % step}})
                    live[k]["pad"] = "u%d" % step
            asked = rng.choice([0, 1, 2, 4, 9])
            want, pos = expected(live, cur[1], cur[2], asked, False, None)
            body = {"getMore": cur[0], "collection": "c"}
            if asked:
                body["batchSize"] = asked
            reply = one[name].command(body)["cursor"]
            got = [d["_id"] for d in reply["nextBatch"]]
            assert got == want, f"seed {seed} step {step}: getMore of {asked} gave {got}, a read gives {want}"
            assert all(d == live[d["_id"]] for d in reply["nextBatch"])
            cur[0], cur[2] = reply["id"], pos
    finally:
        one.close()
        a.drop_database(name)


@pytest.mark.xfail(strict=True, reason="known deviation: a LiveCursor's keys are fixed at the find (test/mongo_peer/README.md)")
def test_document_inserted_ahead_of_an_open_cursor_is_returned(peer):
    """mongod's find in _id order is an index scan that resumes at its position on each getMore
    (no snapshot between getMores): a document inserted after the find with a larger _id than the
    cursor has reached is returned. The peer's LiveCursor fixes its keys at the find, so it is
    missing (pre-existing: LiveCursor models deletes and updates, not inserts)."""
    a, b = peer
    name = "clins"
    a.drop_database(name)
    a[name].c.insert_many([{"_id": i} for i in range(10)])
    reply = a[name].command({"find": "c", "sort": {"_id": 1}, "batchSize": 2})["cursor"]
    assert [d["_id"] for d in reply["firstBatch"]] == [0, 1]
    b[name].c.insert_one({"_id": 100})
    b[name].c.insert_one({"_id": 5.5})
    got = []
    cid = reply["id"]
    while cid:
        reply = a[name].command({"getMore": cid, "collection": "c"})["cursor"]
        got += [d["_id"] for d in reply["nextBatch"]]
        cid = reply["id"]
    a.drop_database(name)
    assert got == [2, 3, 4, 5, 5.5, 6, 7, 8, 9, 100], got


@pytest.mark.parametrize("then", ["drop", "recreate"])
def test_get_more_after_the_collection_is_dropped_fails(peer, then):
    """mongod kills a collection's cursors when it is dropped: the next getMore fails
    (QueryPlanKilled 175, or CursorNotFound 43), it never returns the dropped documents. The peer's
    LiveCursor keeps reading the dropped Collection object (whose version no write moves any more,
    so a batch built ahead stays valid too) and returned the dropped documents (review 22)."""
    a, b = peer
    name = "cldrop" + then
    a.drop_database(name)
    a[name].c.insert_many([{"_id": i} for i in range(10)])
    reply = a[name].command({"find": "c", "sort": {"_id": 1}, "batchSize": 2})["cursor"]
    b[name].c.drop()
    if then == "recreate":
        b[name].c.insert_many([{"_id": i, "new": True} for i in range(3)])
    try:
        out = a[name].command({"getMore": reply["id"], "collection": "c", "batchSize": 2})["cursor"]["nextBatch"]
    except pymongo.errors.OperationFailure as e:
        assert e.code in (43, 175, 237), e
        return
    finally:
        a.drop_database(name)
    assert False, f"getMore after {then} returned {out}"
