"""review18: large documents and the copy's resume point.

- documents of 1 B .. 16 MiB mixed in one collection, with 8 MiB inserts/updates/replaces while the
  copy runs, then stop()/start() in the middle of the copy: every row equal to its document;
- getMore failing with CursorNotFound (43) / a closed connection in the middle of a copy of large
  documents: the copy resumes at the right _id (no lost, no duplicated row);
- oplog capture catching up on many small transactions (a batch that reaches the commit point ends
  there): every row equal, none lost;
- resync of large documents while they are updated."""

import hashlib
import json
import random
import threading
import time

import pytest

from pgcluster import wait_for
from river import create_river

MIB = 1024 * 1024
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "blob": {"path": "blob", "type": "text"}}}
APP = "mongo_river"


def signals(pg):
    return [line for line in pg.log().splitlines()
            if "terminated by signal" in line or "was terminated" in line or "reinitializing" in line]


@pytest.fixture(scope="module")
def checked(river_pg):
    postmaster = river_pg.postmaster_pid()
    yield river_pg
    assert signals(river_pg) == []
    assert river_pg.postmaster_pid() == postmaster


def worker_pid(pg, river):
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", ("mongo_river " + river,))


def expected(coll):
    return {d["_id"]: (d.get("n"), hashlib.md5(d["blob"].encode()).hexdigest(), len(d["blob"]))
            for d in coll.find({})}


def diff(pg, table, coll):
    want = expected(coll)
    rows = pg.query(f"SELECT id, n, md5(blob), octet_length(blob) FROM {table}")
    got = {r[0]: tuple(r[1:]) for r in rows}
    bad = [(k, want.get(k), got.get(k)) for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
    if len(rows) != len(got):
        bad.append(f"duplicates: {len(rows)} rows for {len(got)} keys")
    return bad


SIZES = [0, 1, 2, 100, 4096, 100_000, MIB - 1, MIB, 2 * MIB + 7, 4 * MIB - 100, 4 * MIB, 4 * MIB + 1,
         8 * MIB - 4096, 8 * MIB, 12 * MIB, 16 * MIB - 200]


def max_blob(coll):
    """the largest string that fits a 16 MiB document with this _id and n."""
    return 16 * MIB - 200


def load_mixed(coll, seed):
    rng = random.Random(seed)
    docs = []
    i = 0
    for rep in range(2):
        for size in SIZES:
            docs.append({"_id": f"m{i:04d}", "n": size, "blob": chr(97 + i % 26) * size})
            i += 1
            for _ in range(rng.randint(0, 40)):
                docs.append({"_id": f"m{i:04d}", "n": i, "blob": "s" * rng.randint(0, 300)})
                i += 1
    for d in docs:
        coll.insert_one(d)
    return i


def fill_16mib(coll):
    """the largest document the source accepts: grow the blob until the insert is refused."""
    size = 16 * MIB - 40
    while size > 16 * MIB - 400:
        try:
            coll.insert_one({"_id": "m9999max", "n": size, "blob": "M" * size})
            return size
        except Exception:  # noqa: BLE001
            size -= 16
    return None


def test_mixed_sizes_with_big_writes_and_stop_start_during_copy(checked, mongo):
    pg = checked
    name = "big_mixed"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    n = load_mixed(coll, 1)
    print("max document blob", fill_16mib(coll))
    create_river(pg, name, mongo.uri, {"batch_size": 50})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
    stop = threading.Event()
    errors = []

    def writer():
        rng = random.Random(7)
        j = 0
        try:
            while not stop.is_set():
                k = rng.randrange(n)
                op = rng.random()
                big = "W" * rng.choice((8 * MIB, 8 * MIB - 1, 3 * MIB, 17))
                if op < 0.3:
                    coll.update_one({"_id": f"m{k:04d}"}, {"$set": {"blob": big, "n": j}})
                elif op < 0.5:
                    coll.replace_one({"_id": f"m{k:04d}"}, {"n": j, "blob": big})
                elif op < 0.7:
                    coll.insert_one({"_id": f"n{j:05d}", "n": j, "blob": big})
                elif op < 0.8:
                    coll.delete_one({"_id": f"m{k:04d}"})
                else:
                    coll.update_one({"_id": f"m{k:04d}"}, {"$set": {"n": -j}})
                j += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        for round_no in range(3):
            wait_for(lambda: (pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (name,)) or 0)
                     > 10 * (round_no + 1) or
                     pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (name,)) == "streaming",
                     120, 0.05, "some of the copy")
            t0 = time.monotonic()
            pg.query("SELECT mongo_river.stop(%s)", (name,))
            took = time.monotonic() - t0
            print(f"round {round_no}: stop took {took:.2f}s; status",
                  pg.query("SELECT phase, docs_copied FROM mongo_river.status WHERE river = %s", (name,)))
            assert took < 5, f"stop() took {took:.1f}s"
            pg.query("SELECT mongo_river.start(%s)", (name,))
        time.sleep(3)  # writes continue a while (not a synchronisation)
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '300 s')", (name,)), \
        pg.query("SELECT * FROM mongo_river.status WHERE river = %s", (name,))
    bad = diff(pg, name, coll)
    print("rejects", pg.query("SELECT document_id, operation, error FROM mongo_river.rejects"))
    assert bad == [], bad[:10]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
    client.drop_database(name)


def fail_point(client, mode, **data):
    if mode == "off":
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        return
    client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": {"appName": APP, **data}})


@pytest.mark.parametrize("fault", ["cursor_not_found", "close", "error_6", "interrupted_11601"])
def test_copy_resumes_after_getmore_faults(checked, mongo, fault):
    pg = checked
    name = f"big_fault_{fault}"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    rng = random.Random(5)
    for i in range(400):
        size = rng.choice((10, 1000, 300_000, 2 * MIB, 5 * MIB)) if i % 10 == 0 else rng.randint(0, 2000)
        coll.insert_one({"_id": f"f{i:04d}", "n": i, "blob": "q" * size})
    data = {"cursor_not_found": {"errorCode": 43}, "close": {"closeConnection": True},
            "error_6": {"errorCode": 6}, "interrupted_11601": {"errorCode": 11601}}[fault]
    create_river(pg, name, mongo.uri, {"batch_size": 20})
    # the copy's 3rd and later getMores fail 4 times in a row, then every 5th one once more
    fail_point(client, {"skip": 2}, failCommands=["getMore"], **data)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
        wait_for(lambda: pg.scalar("SELECT count(*) FROM " + name) > 5, 60, 0.05, "some copied")
        for _ in range(4):
            fail_point(client, {"times": 1}, failCommands=["getMore"], **data)
            coll.update_one({"_id": f"f{rng.randrange(400):04d}"}, {"$set": {"blob": "U" * 3 * MIB}})
            time.sleep(0.5)
    finally:
        fail_point(client, "off")
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '200 s')", (name,)), \
        pg.query("SELECT * FROM mongo_river.status WHERE river = %s", (name,))
    bad = diff(pg, name, coll)
    print(fault, pg.query("SELECT phase, docs_copied, last_error FROM mongo_river.status WHERE river = %s", (name,)))
    assert bad == [], bad[:10]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
    client.drop_database(name)


@pytest.mark.parametrize("capture", ["oplog", "change_stream"])
def test_catch_up_on_many_small_transactions(checked, mongo, capture):
    pg = checked
    name = f"txn_{capture}"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    coll.insert_many([{"_id": f"t{i:05d}", "n": 0, "blob": ""} for i in range(500)])
    create_river(pg, name, mongo.uri, {"batch_size": 7, "capture": capture})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (name,))
    rng = random.Random(11)

    def txns(count):
        for j in range(count):
            with client.start_session() as s:
                with s.start_transaction():
                    for _ in range(rng.randint(1, 5)):
                        k = rng.randrange(520)
                        op = rng.random()
                        if op < 0.6:
                            coll.update_one({"_id": f"t{k:05d}"}, {"$inc": {"n": 1}, "$set": {"blob": f"b{j}"}},
                                            upsert=True, session=s)
                        elif op < 0.8:
                            coll.delete_one({"_id": f"t{k:05d}"}, session=s)
                        else:
                            coll.replace_one({"_id": f"t{k:05d}"}, {"n": j, "blob": "r" * rng.randint(0, 9)},
                                             upsert=True, session=s)
            if j % 3 == 0:
                coll.update_one({"_id": f"t{rng.randrange(500):05d}"}, {"$inc": {"n": 100}})
    # while running
    txns(300)
    # while stopped, then a catch-up
    pg.query("SELECT mongo_river.stop(%s)", (name,))
    txns(600)
    pg.query("SELECT mongo_river.start(%s)", (name,))
    t = threading.Thread(target=txns, args=(300,), daemon=True)
    t.start()
    t.join(300)
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '120 s')", (name,))
    bad = diff(pg, name, coll)
    assert bad == [], bad[:10]
    # a sync_once catch-up too
    pg.query("SELECT mongo_river.stop(%s)", (name,))
    txns(400)
    pg.query("CALL mongo_river.sync_once(%s, '2 min', NULL)", (name,))
    bad = diff(pg, name, coll)
    assert bad == [], bad[:10]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
    client.drop_database(name)


def test_resync_of_big_documents_under_updates(checked, mongo):
    pg = checked
    name = "big_resync"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    for i in range(30):
        coll.insert_one({"_id": f"r{i:03d}", "n": i, "blob": chr(65 + i % 26) * (i % 5) * 2 * MIB})
    create_river(pg, name, mongo.uri, {"batch_size": 3})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '120 s')", (name,))
    pg.query("SELECT mongo_river.resync(%s)", (name,))
    rng = random.Random(2)
    for j in range(25):
        k = rng.randrange(32)
        if rng.random() < 0.2:
            coll.delete_one({"_id": f"r{k:03d}"})
        else:
            coll.replace_one({"_id": f"r{k:03d}"}, {"n": 1000 + j, "blob": "Z" * rng.choice((1, 8 * MIB, 6 * MIB))},
                             upsert=True)
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '200 s')", (name,))
    wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (name,)) == "streaming",
             200, 0.2, "streaming after resync")
    bad = diff(pg, name, coll)
    assert bad == [], bad[:10]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
    client.drop_database(name)
