#!/usr/bin/python3
"""big_docs_bench: only river_bench's 8 MiB figure: the worker's RssAnon copying N documents of
8 MiB and then streaming one update of each (every change event carries the whole document).

    /usr/bin/python3 bench/big_docs_bench.py [--docs N] [--rounds R]

Prints, per round, the worker's idle RssAnon (before the mapping), its peak while copying and its
peak while streaming, in MiB, and checks every row's blob against the source document.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "lib"))
sys.path.insert(0, HERE)

from bench_lib import WorkerWatcher, big_doc, create_river, rss_anon_kb, worker_pid  # noqa: E402
import bench_lib  # noqa: E402
from mongo_source import start_source  # noqa: E402
from pgcluster import PgCluster  # noqa: E402


def main():
    bench_lib.WorkerWatcher = FastWatcher  # river_copy's sampler too
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    pg = PgCluster(settings={"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'512MB'"}).init()
    source = start_source()
    failed = False
    try:
        pg.query("CREATE EXTENSION mongo_river")
        db = source.client().bench
        for round_ in range(args.rounds):
            create_river(pg, source, "idle")
            idle = rss_anon_kb(worker_pid(pg, "idle"))
            pg.query("SELECT mongo_river.drop_river('idle', true)")
            out = big_documents(pg, source, db, args.docs)
            print(f"big_docs_bench: {args.docs} x 8 MiB, round {round_ + 1}: worker idle {idle / 1024:.1f} MiB, "
                  f"copy peak {out['copy']['rss_anon_kb'] / 1024:.1f} MiB ({out['copy']['seconds']:.1f} s), "
                  f"stream peak (updates) {out['stream']['rss_anon_kb'] / 1024:.1f} MiB ({out['stream']['seconds']:.1f} s), "
                  f"stream peak (inserts, replacements) {out['stream_full']['rss_anon_kb'] / 1024:.1f} MiB "
                  f"({out['stream_full']['seconds']:.1f} s)",
                  flush=True)
            failed = failed or not out["same_rows"]
        if pg.crashes():
            print(f"big_docs_bench: FAILED: server crashes {pg.crashes()}")
            failed = True
    finally:
        source.stop()
        pg.destroy()
    sys.exit(1 if failed else 0)


def big_documents(pg, source, db, count):
    """big_documents is bench_lib's big_documents, every row checked against its document after each
    phase, RssAnon sampled every 5 ms."""
    out = bench_lib.big_documents(pg, source, db, count, lambda phase, n, n_of: same_rows(pg, n, n_of),
                                  FastWatcher)
    if not out["same_rows"]:
        print("big_docs_bench: FAILED: rows differ from the documents", flush=True)
    return out


class FastWatcher(WorkerWatcher):
    """FastWatcher samples every 5 ms (WorkerWatcher's 50 ms can miss a short peak)."""

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(0.005)


def same_rows(pg, count, n_of):
    """same_rows tells whether table big holds exactly the count documents, n = n_of(i)."""
    import hashlib
    rows = pg.query("SELECT id, n, md5(blob), length(blob) FROM big ORDER BY id")
    want = []
    for i in range(count):
        doc = big_doc(i)
        want.append((doc["_id"], n_of(i), hashlib.md5(doc["blob"].encode()).hexdigest(), len(doc["blob"])))
    return [tuple(r) for r in rows] == want


if __name__ == "__main__":
    main()
