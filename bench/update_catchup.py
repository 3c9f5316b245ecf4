#!/usr/bin/python3
"""update_catchup: a small timing of catch-up on update events (issue 18, updates from diffs).

    /usr/bin/python3 bench/update_catchup.py [--docs 20000] [--updates 20000] [--capture change_stream|oplog]
                                             [--document]

Starts a throwaway cluster and the peer, copies --docs flat documents (bench/river_bench.py's flat
mapping), stops the river, makes --updates updates ($inc n, $set name, on random documents), starts
the river and prints the seconds until wait_for_sync returns, with the peer's CPU seconds meanwhile.
The machine is shared: compare runs made back to back.
"""

import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "lib"))
sys.path.insert(0, HERE)

from mongo_source import start_source  # noqa: E402
from pgcluster import PgCluster, wait_for  # noqa: E402
from river_bench import FLAT_MAPPING, flat_doc, load, peer_cpu, worker_pid  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--updates", type=int, default=20000)
    ap.add_argument("--capture", default="change_stream")
    ap.add_argument("--settings", default="", help="extra postgresql.conf lines, k=v;k=v")
    ap.add_argument("--document", action="store_true", help="map the whole document too (a document column)")
    args = ap.parse_args()
    settings = dict(kv.split("=", 1) for kv in args.settings.split(";") if kv)
    source = start_source()
    pg = PgCluster(settings=settings or None)
    try:
        pg.init()
        pg.query("CREATE EXTENSION mongo_river")
        client = source.client()
        client.drop_database("bench")
        coll = client.bench.flat
        load(coll, flat_doc, args.docs)
        pg.query("SELECT mongo_river.create_river('b', %s, %s)",
                 (source.uri, json.dumps({"capture": args.capture, "batch_size": 1000})))
        mapping = dict(FLAT_MAPPING, document="doc") if args.document else FLAT_MAPPING
        pg.query("SELECT mongo_river.map_collection('b', 'bench.flat', 'flat', %s)", (json.dumps(mapping),))
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = 'b'") == "streaming",
                 600, 0.1, "the copy")
        assert pg.scalar("SELECT mongo_river.wait_for_sync('b', '5 min')")
        pg.query("SELECT mongo_river.stop('b')")
        wait_for(lambda: worker_pid(pg, "b") is None, 60, 0.05, "the worker to stop")
        rng = random.Random(7)
        for _ in range(args.updates):
            i = rng.randrange(args.docs)
            coll.update_one({"_id": f"d{i:08d}"}, {"$inc": {"n": 1}, "$set": {"name": f"u{rng.random()}"}})
        cpu0 = peer_cpu(source)
        start = time.monotonic()
        pg.query("SELECT mongo_river.start('b')")
        assert pg.scalar("SELECT mongo_river.wait_for_sync('b', '1 hour')")
        seconds = time.monotonic() - start
        cpu = peer_cpu(source)
        rows = {r[0]: (r[1], r[2]) for r in pg.query("SELECT id, name, n FROM flat")}
        bad = sum(1 for d in coll.find({}, {"name": 1, "n": 1}) if rows.get(d["_id"]) != (d["name"], d["n"]))
        print(json.dumps({"capture": args.capture, "document": args.document, "docs": args.docs, "updates": args.updates,
                          "catch_up_s": round(seconds, 2), "updates_per_s": round(args.updates / seconds),
                          "peer_cpu_s": round(cpu - cpu0, 2) if cpu is not None else None,
                          "mismatched_rows": bad}))
    finally:
        pg.stop()
        source.stop()


if __name__ == "__main__":
    main()
