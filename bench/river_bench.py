#!/usr/bin/python3
"""river_bench: mongo_river's speed and memory, as ratios to baselines measured in the same run.

    /usr/bin/python3 bench/river_bench.py [--quick | --big] [--copy-docs N,N] [--nested-docs N]
        [--catch-up CHANGES@DOCS,...] [--memory-docs N] [--big-docs N] [--rates R,R] [--lag-seconds S]

Starts a throwaway PostgreSQL 15 cluster with mongo_river preloaded and a MongoDB source (MONGO_URI,
else the repo's peer), then measures, each river run next to its baseline:
  1. flat copy: the worker's copy (first to last batch) vs server COPY FROM of the same rows into a
     table with the same keys, at each --copy-docs size;
  2. nested copy + child table vs COPY of the same rows into tables with the same keys and foreign key;
  3. catch-up: CHANGES mixed changes (40% inserts, 45% updates, 15% deletes) made while the rivers
     are stopped, applied by a change-stream river and by an oplog river (capture: oplog) over the
     same collection, each timed from start() to wait_for_sync(), vs psql applying the same changes
     as 1000-row statements to a copy of the table as it was before them;
  4. lag (now - wallTime of the last applied change, sampled every 50 ms) at each offered --rates;
  5. the worker's RssAnon (/proc/PID/status) copying --memory-docs documents, and with --big-docs
     documents of 8 MiB, copied and then updated once each;
  6. the peer's CPU share of every river run: its CPU seconds (/proc/PID/stat utime + stime) over
     the run's wall seconds; at 0.85 or more (one core: the peer is single-threaded Python) the peer,
     not mongo_river, bounds that run.
Sizes: the default finishes in a few minutes on 2 cores; --quick is a smoke test of the whole
pipeline (under 2 minutes); --big takes the sizes of the README's figures (100k / 500k / 1M
documents). Explicit size options override the chosen form. Prints one table and writes
bench/results/river_bench.json (every figure) and river_bench.png (the ratios; needs matplotlib).
Must run as a user PostgreSQL accepts (not root).
"""

import argparse
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "lib"))
sys.path.insert(0, HERE)

from bench_lib import (NESTED_MAPPING, big_documents, catch_ups, copy_baseline, flat_copies, flat_copy, flat_doc,  # noqa: E402
                       lag_under_load, load, nested_doc, river_copy)
from bench_report import report  # noqa: E402
from mongo_source import start_source  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

FORMS = {
    "quick": {"catch_up_runs": 1, "copy_runs": 1, "copy_docs": "2000", "nested_docs": 2000, "catch_up": "1000@2000", "memory_docs": 10000,
              "big_docs": 2, "lag_seconds": 2.0},
    "short": {"catch_up_runs": 3, "copy_runs": 5, "copy_docs": "50000", "nested_docs": 50000, "catch_up": "10000@50000", "memory_docs": 200000,
              "big_docs": 4, "lag_seconds": 6.0},
    "big": {"catch_up_runs": 3, "copy_runs": 3, "copy_docs": "100000,500000", "nested_docs": 100000, "catch_up": "20000@100000,50000@500000",
            "memory_docs": 1000000, "big_docs": 16, "lag_seconds": 10.0},
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--quick", action="store_const", dest="form", const="quick", help="smoke-test sizes")
    form.add_argument("--big", action="store_const", dest="form", const="big", help="the README's sizes")
    parser.add_argument("--copy-docs", help="flat copy sizes, comma-separated")
    parser.add_argument("--copy-runs", type=int, help="flat copies of each size (their medians are shown)")
    parser.add_argument("--catch-up-runs", type=int, help="catch-up rounds of each size (their medians are shown)")
    parser.add_argument("--nested-docs", type=int)
    parser.add_argument("--catch-up", help="CHANGES@DOCS,...: DOCS must be one of the copy sizes")
    parser.add_argument("--memory-docs", type=int, help="documents copied for the RssAnon figure")
    parser.add_argument("--big-docs", type=int, help="documents of 8 MiB for the RssAnon figure")
    parser.add_argument("--rates", default="5000,20000", help="offered changes/s for the lag figure")
    parser.add_argument("--lag-seconds", type=float)
    parser.add_argument("--seed", type=int, default=random.randrange(10**6))
    parser.add_argument("--results", default=os.path.join(HERE, "results"),
                        help="where river_bench.json and .png go (default bench/results)")
    args = parser.parse_args()
    args.form = args.form or "short"
    for key, value in FORMS[args.form].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.copy_docs = sorted(int(n) for n in str(args.copy_docs).split(",") if n)
    args.catch_up = {int(d): int(c) for c, d in (item.split("@") for item in args.catch_up.split(",") if item)}
    missing = set(args.catch_up) - set(args.copy_docs)
    if missing:
        parser.error(f"--catch-up sizes {sorted(missing)} are not among --copy-docs {args.copy_docs}")
    args.rates = [int(r) for r in args.rates.split(",") if r]
    return args


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    print(f"river_bench: {args.form} form, seed {args.seed}: flat copy {args.copy_docs}, nested "
          f"{args.nested_docs}, catch-up {args.catch_up} (docs: changes), memory {args.memory_docs}, "
          f"{args.big_docs} x 8 MiB, lag at {args.rates}/s for {args.lag_seconds} s", flush=True)
    settings = {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'512MB'"}
    # RIVER_BENCH_SETTINGS="name=value,..." adds server settings (e.g. mongo_river.copy_builds_tuples=off
    # measures the COPY FROM text path of the initial copy against the heap tuple path).
    for item in filter(None, os.environ.get("RIVER_BENCH_SETTINGS", "").split(",")):
        name, value = item.split("=", 1)
        settings[name.strip()] = value.strip()
    pg = PgCluster(settings=settings).init()
    source = start_source()
    results = {"form": args.form, "seed": args.seed, "source": "peer" if source.is_peer else "MONGO_URI",
               "copy_flat": [], "catch_up": [], "lag": []}
    try:
        pg.query("CREATE EXTENSION mongo_river")
        client = source.client()
        client.drop_database("bench")
        db = client.bench
        lag_river = None
        for docs in args.copy_docs:
            coll = db[f"flat{docs}"]
            load(coll, flat_doc, docs)
            step(f"flat copy of {docs} documents")
            results["copy_flat"].append(flat_copies(pg, source, coll, f"cs{docs}", f"flat{docs}", docs,
                                                    args.copy_runs))
            if docs in args.catch_up:
                step(f"oplog river's copy of {docs} documents")
                results["copy_flat"][-1]["oplog_capture"] = flat_copy(
                    pg, source, coll, f"op{docs}", f"flat{docs}_op", docs, "oplog")
                step(f"catch-up of {args.catch_up[docs]} changes on {docs} documents, both captures")
                results["catch_up"].append(catch_ups(pg, source, coll, [
                    (f"cs{docs}", "change_stream", f"flat{docs}"), (f"op{docs}", "oplog", f"flat{docs}_op")],
                    args.catch_up[docs], rng, args.catch_up_runs, docs))
                pg.query("SELECT mongo_river.drop_river(%s, true)", (f"op{docs}",))
                pg.query("SELECT mongo_river.start(%s)", (f"cs{docs}",))
            if lag_river is None:
                lag_river = (f"cs{docs}", coll)
            else:
                pg.query("SELECT mongo_river.drop_river(%s, true)", (f"cs{docs}",))
                coll.drop()
        step(f"lag at {args.rates} changes/s")
        for rate in args.rates:
            results["lag"].append(lag_under_load(pg, source, lag_river[1], lag_river[0], rate, args.lag_seconds))
        pg.query("SELECT mongo_river.drop_river(%s, true)", (lag_river[0],))
        lag_river[1].drop()

        step(f"nested copy of {args.nested_docs} documents")
        load(db.nested, nested_doc, args.nested_docs)
        pg.query("CHECKPOINT")
        nested = river_copy(pg, source, "nested", "bench.nested", "nested", NESTED_MAPPING, args.nested_docs)
        parents = pg.query("SELECT id, title, author, score FROM nested")
        children = pg.query("SELECT doc_id, pos, sku, qty FROM nested_items")
        base = copy_baseline(pg, "nested", ["id", "title", "author", "score"], parents)
        base += copy_baseline(pg, "nested_items", ["doc_id", "pos", "sku", "qty"], children,
                              'FOREIGN KEY (doc_id) REFERENCES "nested_copy" (id) ON DELETE CASCADE')
        nested.update({"child_rows": len(children), "copy_s": base, "copy_docs_s": args.nested_docs / base,
                       "ratio": base / nested["seconds"], "end_to_end_ratio": base / nested["end_to_end_seconds"]})
        results["copy_nested"] = nested
        pg.query("SELECT mongo_river.drop_river('nested', true)")
        pg.query("DROP TABLE nested_items_copy, nested_copy")
        db.nested.drop()

        step(f"{args.big_docs} documents of 8 MiB")
        results["big_docs"] = big_documents(pg, source, db, args.big_docs)

        step(f"memory: copy of {args.memory_docs} documents")
        load(db.mem, flat_doc, args.memory_docs)
        results["memory"] = flat_copy(pg, source, db.mem, "mem", "mem", args.memory_docs)
        pg.query("SELECT mongo_river.drop_river('mem', true)")
        db.mem.drop()
        crashes = pg.crashes()
        results["server_crashes"] = crashes
    finally:
        source.stop()
        pg.destroy()
    report(results, args.results)
    wrong = list(differing(results))
    if wrong or results.get("server_crashes"):
        print(f"river_bench: FAILED: rows differ from the baseline in {wrong}; "
              f"server crashes: {results.get('server_crashes')}", flush=True)
        sys.exit(1)


def differing(value, where="results"):
    """differing yields the places in the results whose rows differ from their baseline's."""
    if isinstance(value, dict):
        if value.get("same_rows_as_baseline") is False:
            yield where
        for key, item in value.items():
            yield from differing(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from differing(item, f"{where}[{i}]")


def step(what):
    print(f"river_bench: {what}", flush=True)


if __name__ == "__main__":
    main()
