#!/usr/bin/python3
"""river_bench: mongo_river's speed, as ratios to baselines measured in the same run.

    /usr/bin/python3 bench/river_bench.py [--docs N] [--changes N] [--rates 2000,5000] [--big]

Starts a throwaway PostgreSQL 15 cluster with mongo_river preloaded and a MongoDB source (MONGO_URI,
else the repo's peer), then measures on the same tables:
  1. initial copy docs/s vs server-side COPY FROM of the identical rows (flat documents, and nested
     documents with a child table);
  2. streaming catch-up: N mixed changes made while the river is stopped, then started; changes/s
     until caught up vs psycopg2 applying the same N changes in 1000-row statements
     (INSERT ... ON CONFLICT for inserts/updates, DELETE ... = ANY for deletes);
  3. lag p50/p99 (now - wallTime of the last applied change, sampled) under steady offered loads;
  4. the worker's private memory (RssAnon) while copying N and 10 x N documents (with --big);
  5. copy rate at 10 x N vs N documents (with --big);
  6. the peer's CPU time in each phase.
Prints a table (figures and ratios) and writes bench/results/river_bench.png (matplotlib) and
bench/results/river_bench.json. Must run as a user PostgreSQL accepts (not root): run it through
`runuser -u postgres --` when root.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "lib"))

from mongo_source import start_source  # noqa: E402
from pgcluster import PgCluster, wait_for  # noqa: E402

FLAT_MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"}, "name": {"path": "name", "type": "text"},
    "n": {"path": "n", "type": "bigint"}, "price": {"path": "price", "type": "double precision"},
    "ok": {"path": "ok", "type": "boolean"}, "at": {"path": "at", "type": "timestamptz"}}}
NESTED_MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"}, "title": {"path": "title", "type": "text"},
    "author": {"path": "author.name", "type": "text"}, "score": {"path": "stats.score", "type": "bigint"}},
    "arrays": {"items": {"path": "items", "table": "nested_items", "fk": "doc_id", "position": "pos",
                         "columns": {"sku": {"path": "sku", "type": "text"}, "qty": {"path": "qty", "type": "integer"}}}}}


def flat_doc(i):
    return {"_id": f"d{i:08d}", "name": f"name {i}", "n": i, "price": i * 0.25, "ok": i % 2 == 0,
            "at": __import__("datetime").datetime(2024, 1, 1) + __import__("datetime").timedelta(seconds=i)}


def nested_doc(i):
    return {"_id": f"d{i:08d}", "title": f"title {i}", "author": {"name": f"a{i % 97}"}, "stats": {"score": i},
            "items": [{"sku": f"s{i}-{j}", "qty": j} for j in range(i % 4)]}


BIG_MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}, "blob": {"path": "blob", "type": "text"}}}
BIG_DOC_BYTES = 8 * 1024 * 1024 - 4096  # just under 8 MiB of BSON


def big_doc(i):
    return {"_id": f"big{i:04d}", "n": i, "blob": chr(ord("a") + i % 26) * BIG_DOC_BYTES}


def load(coll, make, count, start=0):
    batch = []
    for i in range(start, start + count):
        batch.append(make(i))
        if len(batch) == 5000:
            coll.insert_many(batch, ordered=False)
            batch = []
    if batch:
        coll.insert_many(batch, ordered=False)


def peer_cpu(source):
    """peer_cpu returns the peer process's CPU seconds so far (None for a real mongod)."""
    if source.process is None:
        return None
    with open(f"/proc/{source.process.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(pg, river):
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", ("mongo_river " + river,))


def rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def copy_phase_seconds(pg, river, source_name):
    """copy_phase_seconds reads the worker's log lines "starting initial copy" and "initial copy done"
    of river's collection source_name and returns the seconds between them (None if not found)."""
    import datetime
    import re
    start = done = None
    with open(pg.logfile) as f:
        for line in f:
            if f'river "{river}", collection "{source_name}"' not in line:
                continue
            stamp = re.match(r"(\S+ \S+) ", line)
            if not stamp:
                continue
            when = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f")
            if "starting initial copy" in line:
                start = when
            elif "initial copy done" in line:
                done = when
    return (done - start).total_seconds() if start and done else None


def river_copy(pg, source, river, collection, table, mapping, count, watch_memory=False):
    """river_copy maps collection with a new river (its worker already running) and returns
    (copy seconds, end-to-end seconds, peak RssAnon kB): the copy seconds are the worker's own, from
    its first to its last copied batch (its log); end-to-end runs from map_collection until status
    shows streaming, so it adds the worker noticing the mapping (up to mongo_river.naptime)."""
    pg.query("SELECT mongo_river.create_river(%s, %s, '{\"batch_size\": 2000}')", (river, source.uri))
    wait_for(lambda: worker_pid(pg, river), 60, 0.05, "the river's worker")
    peak = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            pid = worker_pid(pg, river)
            if pid:
                kb = rss_anon_kb(pid)
                if kb:
                    peak[0] = max(peak[0], kb)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    if watch_memory:
        watcher.start()
    start = time.monotonic()
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, collection, table, json.dumps(mapping)))
    wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
             3600, 0.05, "the copy")
    seconds = time.monotonic() - start
    done.set()
    assert pg.scalar(f'SELECT count(*) FROM "{table}"') == count
    copy_seconds = copy_phase_seconds(pg, river, collection) or seconds
    return copy_seconds, seconds, peak[0]


def copy_baseline(pg, table, columns, rows, foreign_key=""):
    """copy_baseline loads rows into an empty copy of table with server-side COPY FROM a file
    (foreign_key: a FOREIGN KEY clause the copy gets too, as the river's child tables have one)."""
    path = os.path.join(tempfile.gettempdir(), f"river_bench_{table}.tsv")
    with open(path, "w") as f:
        for row in rows:
            f.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    os.chmod(path, 0o644)
    pg.query(f'CREATE TABLE "{table}_copy" (LIKE "{table}" INCLUDING ALL)')
    if foreign_key:
        pg.query(f'ALTER TABLE "{table}_copy" ADD {foreign_key}')
    start = time.monotonic()
    pg.query(f'COPY "{table}_copy" ({", ".join(columns)}) FROM %s', (path,))
    seconds = time.monotonic() - start
    os.unlink(path)
    return seconds


def catch_up(pg, source, coll, river, table, count, rng):
    """catch_up makes count mixed changes while the river is stopped; returns (river seconds,
    baseline seconds) for applying them."""
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    wait_for(lambda: worker_pid(pg, river) is None, 60, 0.05, "the worker to stop")
    existing = pg.scalar(f'SELECT count(*) FROM "{table}"')
    ops = []  # final effect per key, for the baseline
    next_id = 10**7
    batch = []
    for _ in range(count):
        r = rng.random()
        if r < 0.4:
            doc = flat_doc(next_id)
            next_id += 1
            batch.append(("insert", doc))
        elif r < 0.85:
            i = rng.randrange(existing)
            batch.append(("update", i))
        else:
            i = rng.randrange(existing)
            batch.append(("delete", i))
    final = {}
    for op, arg in batch:
        if op == "insert":
            coll.insert_one(arg)
            final[arg["_id"]] = arg
        elif op == "update":
            key = f"d{arg:08d}"
            coll.update_one({"_id": key}, {"$inc": {"n": 1}, "$set": {"name": "updated"}})
            doc = coll.find_one({"_id": key})
            final[key] = doc
        else:
            key = f"d{arg:08d}"
            coll.delete_one({"_id": key})
            final[key] = None
    start = time.monotonic()
    pg.query("SELECT mongo_river.start(%s)", (river,))
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '1 hour')", (river,))
    river_seconds = time.monotonic() - start
    # Baseline: the same changes as 1000-row statements from a client.
    pg.query(f'CREATE TABLE "{table}_base" AS SELECT * FROM "{table}" WITH NO DATA')
    pg.query(f'ALTER TABLE "{table}_base" ADD PRIMARY KEY (id)')
    changes = [(k, v) for k, v in final.items()]
    conn = pg.connect()
    start = time.monotonic()
    with conn.cursor() as cur:
        for s in range(0, len(batch), 1000):
            chunk = batch[s:s + 1000]
            upserts, deletes = [], []
            for op, arg in chunk:
                key = arg["_id"] if op == "insert" else f"d{arg:08d}"
                doc = final.get(key)
                if op == "delete" or doc is None:
                    deletes.append(key)
                else:
                    upserts.append((doc["_id"], doc.get("name"), doc.get("n"), doc.get("price"), doc.get("ok"),
                                    doc.get("at")))
            if upserts:
                args = ",".join(cur.mogrify("(%s,%s,%s,%s,%s,%s)", u).decode() for u in
                                {u[0]: u for u in upserts}.values())
                cur.execute(f'INSERT INTO "{table}_base" (id, name, n, price, ok, at) VALUES {args} '
                            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, n = EXCLUDED.n, "
                            "price = EXCLUDED.price, ok = EXCLUDED.ok, at = EXCLUDED.at")
            if deletes:
                cur.execute(f'DELETE FROM "{table}_base" WHERE id = ANY(%s)', (deletes,))
            conn.commit()
    base_seconds = time.monotonic() - start
    conn.close()
    del changes
    return river_seconds, base_seconds


def lag_under_load(pg, coll, river, rate, seconds, rng):
    """lag_under_load offers rate changes/s for seconds and samples status.lag; returns (p50, p99,
    achieved rate)."""
    stop = threading.Event()
    made = [0]

    def write():
        interval = 1.0 / rate
        next_at = time.monotonic()
        i = 0
        while not stop.is_set():
            batch = []
            now = time.monotonic()
            while next_at <= now and len(batch) < 500:
                batch.append({"_id": f"lag{rate}-{i}", "name": "lag", "n": i})
                i += 1
                next_at += interval
            if batch:
                coll.insert_many(batch, ordered=False)
                made[0] += len(batch)
            else:
                time.sleep(0.001)

    thread = threading.Thread(target=write, daemon=True)
    start = time.monotonic()
    thread.start()
    samples = []
    while time.monotonic() - start < seconds:
        lag = pg.scalar("SELECT extract(epoch FROM lag) FROM mongo_river.status WHERE river = %s", (river,))
        if lag is not None:
            samples.append(float(lag))
        time.sleep(0.05)
    stop.set()
    thread.join()
    achieved = made[0] / (time.monotonic() - start)
    samples.sort()
    return (statistics.median(samples) if samples else None,
            samples[int(len(samples) * 0.99) - 1] if samples else None, achieved)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100000)
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--rates", default="5000,20000")
    parser.add_argument("--lag-seconds", type=float, default=8)
    parser.add_argument("--big", action="store_true", help="also copy 10 x --docs (memory, linearity)")
    parser.add_argument("--big-docs", type=int, default=16, help="documents of 8 MiB for the memory figure")
    parser.add_argument("--seed", type=int, default=random.randrange(10**6))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"river_bench: seed {args.seed}, {args.docs} documents, {args.changes} changes")
    pg = PgCluster(settings={"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'512MB'"}).init()
    source = start_source()
    results = {"seed": args.seed, "docs": args.docs}
    try:
        pg.query("CREATE EXTENSION mongo_river")
        client = source.client()
        client.drop_database("bench")
        db = client.bench
        # 1. initial copy vs COPY (flat)
        load(db.flat, flat_doc, args.docs)
        cpu0 = peer_cpu(source)
        seconds, total, peak = river_copy(pg, source, "flat", "bench.flat", "flat", FLAT_MAPPING, args.docs, True)
        cpu1 = peer_cpu(source)
        rows = pg.query("SELECT id, name, n, price, ok, at FROM flat")
        base = copy_baseline(pg, "flat", ["id", "name", "n", "price", "ok", "at"], rows)
        results["copy_flat"] = {"river_docs_s": args.docs / seconds, "copy_rows_s": args.docs / base,
                                "ratio": base / seconds, "rss_anon_kb": peak,
                                "peer_cpu_s": None if cpu0 is None else cpu1 - cpu0, "seconds": seconds,
                                "end_to_end_seconds": total, "end_to_end_ratio": base / total}
        # 1b. nested documents with a child table
        load(db.nested, nested_doc, args.docs)
        seconds, total, _ = river_copy(pg, source, "nested", "bench.nested", "nested", NESTED_MAPPING, args.docs)
        parents = pg.query("SELECT id, title, author, score FROM nested")
        children = pg.query("SELECT doc_id, pos, sku, qty FROM nested_items")
        base = copy_baseline(pg, "nested", ["id", "title", "author", "score"], parents)
        base += copy_baseline(pg, "nested_items", ["doc_id", "pos", "sku", "qty"], children,
                              'FOREIGN KEY (doc_id) REFERENCES "nested_copy" (id) ON DELETE CASCADE')
        results["copy_nested"] = {"river_docs_s": args.docs / seconds, "copy_docs_s": args.docs / base,
                                  "ratio": base / seconds, "child_rows": len(children), "seconds": seconds,
                                  "end_to_end_seconds": total, "end_to_end_ratio": base / total}
        # 2. catch-up vs batched statements
        cpu0 = peer_cpu(source)
        river_s, base_s = catch_up(pg, source, db.flat, "flat", "flat", args.changes, rng)
        cpu1 = peer_cpu(source)
        results["catch_up"] = {"river_changes_s": args.changes / river_s, "batched_sql_changes_s":
                               args.changes / base_s, "ratio": base_s / river_s,
                               "peer_cpu_s": None if cpu0 is None else cpu1 - cpu0}
        # 3. lag under load
        results["lag"] = []
        for rate in [int(r) for r in args.rates.split(",") if r]:
            p50, p99, achieved = lag_under_load(pg, db.flat, "flat", rate, args.lag_seconds, rng)
            results["lag"].append({"offered_s": rate, "achieved_s": achieved, "p50_s": p50, "p99_s": p99})
        # 4b. memory with 8 MiB documents: copied, then updated (each change event carries one whole)
        for i in range(args.big_docs):
            db.big.insert_one(big_doc(i))
        _, _, peak_big = river_copy(pg, source, "big", "bench.big", "big", BIG_MAPPING, args.big_docs, True)
        pid = worker_pid(pg, "big")
        for i in range(args.big_docs):
            db.big.update_one({"_id": f"big{i:04d}"}, {"$set": {"n": -i}})
        stream_peak = 0
        deadline = time.monotonic() + 600
        while pg.scalar("SELECT count(*) FROM big WHERE n < 0") < args.big_docs - 1 and time.monotonic() < deadline:
            stream_peak = max(stream_peak, rss_anon_kb(pid) or 0)
            time.sleep(0.1)
        results["big_docs"] = {"docs": args.big_docs, "doc_bytes": BIG_DOC_BYTES, "copy_rss_anon_kb": peak_big,
                               "stream_rss_anon_kb": stream_peak}
        pg.query("SELECT mongo_river.drop_river('big', true)")
        client.bench.big.drop()
        # 4-5. 10 x documents
        if args.big:
            load(db.flat10, flat_doc, args.docs * 10)
            seconds, _, peak10 = river_copy(pg, source, "flat10", "bench.flat10", "flat10", FLAT_MAPPING,
                                            args.docs * 10, True)
            results["copy_10x"] = {"river_docs_s": args.docs * 10 / seconds, "rss_anon_kb": peak10,
                                   "rate_ratio_10x_vs_1x": (args.docs * 10 / seconds) /
                                   results["copy_flat"]["river_docs_s"]}
    finally:
        source.stop()
        pg.destroy()
    report(results)


def report(results):
    """report prints the table and writes the JSON and the chart."""
    print("\n%-44s %14s %14s %8s" % ("figure", "mongo_river", "baseline", "ratio"))
    cf, cn, cu = results["copy_flat"], results["copy_nested"], results["catch_up"]
    print("%-44s %14.0f %14.0f %8.2f" % ("initial copy, flat (docs/s vs COPY rows/s)", cf["river_docs_s"],
                                          cf["copy_rows_s"], cf["ratio"]))
    print("%-44s %14.0f %14.0f %8.2f" % ("initial copy, nested + child table", cn["river_docs_s"],
                                          cn["copy_docs_s"], cn["ratio"]))
    print("%-44s %14.0f %14.0f %8.2f" % ("catch-up (changes/s vs 1000-row SQL)", cu["river_changes_s"],
                                          cu["batched_sql_changes_s"], cu["ratio"]))
    for lag in results["lag"]:
        print("%-44s %14s" % (f"lag at {lag['offered_s']}/s offered ({lag['achieved_s']:.0f}/s made)",
                              f"p50 {lag['p50_s']:.3f}s p99 {lag['p99_s']:.3f}s" if lag["p50_s"] is not None
                              else "n/a"))
    print("%-44s %14s" % ("worker RssAnon, flat copy", f"{cf['rss_anon_kb'] / 1024:.1f} MiB"))
    if cf.get("peer_cpu_s") is not None:
        print("%-44s %14s" % ("peer CPU during the flat copy", f"{cf['peer_cpu_s']:.1f} s of {cf['seconds']:.1f} s"))
    if cu.get("peer_cpu_s") is not None:
        print("%-44s %14s" % ("peer CPU during catch-up (incl. writes)", f"{cu['peer_cpu_s']:.1f} s"))
    if "big_docs" in results:
        b = results["big_docs"]
        print("%-44s %14s" % (f"worker RssAnon, {b['docs']} docs of 8 MiB: copy",
                              f"{b['copy_rss_anon_kb'] / 1024:.1f} MiB"))
        print("%-44s %14s" % ("  ... and their update events (updateLookup)", f"{b['stream_rss_anon_kb'] / 1024:.1f} MiB"))
    if "copy_10x" in results:
        c10 = results["copy_10x"]
        print("%-44s %14.0f %14s %8.2f" % ("copy 10x docs (docs/s; ratio to 1x rate)", c10["river_docs_s"], "",
                                            c10["rate_ratio_10x_vs_1x"]))
        print("%-44s %14s" % ("worker RssAnon, 10x copy", f"{c10['rss_anon_kb'] / 1024:.1f} MiB"))
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "river_bench.json"), "w") as f:
        json.dump(results, f, indent=2)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        labels = ["copy flat", "copy nested", "catch-up"]
        ratios = [cf["ratio"], cn["ratio"], cu["ratio"]]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(labels, ratios, color=["#4c72b0", "#55a868", "#c44e52"])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel("mongo_river / same-run baseline")
        ax.set_title(f"mongo_river speed ({results['docs']} documents)")
        for i, r in enumerate(ratios):
            ax.text(i, r, f"{r:.2f}", ha="center", va="bottom")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "river_bench.png"), dpi=100)
        print(f"\nchart: {os.path.join(out, 'river_bench.png')}")
    except ImportError:
        print("\n(no chart: python3-matplotlib is not installed)")


if __name__ == "__main__":
    main()
