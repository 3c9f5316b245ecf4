#!/usr/bin/python3
"""catchup_bench: river_bench.py's catch-up figure alone, repeated, with optional traces.

    /usr/bin/python3 bench/catchup_bench.py [--docs 50000] [--changes 10000] [--reps 2]
        [--captures change_stream,oplog] [--trace strace|strace-c|perf|net|all] [--peer-log] [--settings N=V;...]

Copies --docs flat documents with a change-stream river and an oplog river (river_bench.py's flat
mapping and options), then --reps times: stops both, makes --changes mixed changes, starts each
river alone and times it from start() to wait_for_sync() against psql applying the same changes as
1000-row statements (bench_lib.catch_up, the very figure river_bench.py prints). --trace attaches
`strace -f -tt -T`, `strace -c -f -w` or `perf record -g` to each river's worker for its run, or (net)
strace to the whole server for network calls and fsyncs only (all: every call; outputs under $TMPDIR);
--peer-log starts the peer with --verbose (its command log, with each command's time, is kept).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "lib"))
sys.path.insert(0, HERE)

import bench_lib  # noqa: E402
from bench_lib import catch_up, flat_copy, flat_doc, load, restore  # noqa: E402
from mongo_source import start_source  # noqa: E402
from pgcluster import PgCluster  # noqa: E402


def traced_worker_watcher(kind, outdir):
    """traced_worker_watcher returns a WorkerWatcher class that attaches kind (strace or perf) to the
    worker it finds and stops the tracer when the run ends."""
    base = bench_lib.WorkerWatcher

    class Traced(base):
        tracer = None

        def __enter__(self):
            if kind in ("net", "all"):
                # The whole server (the worker from its fork on), network calls and fsyncs only.
                with open(os.path.join(bench_lib.PG_DATADIR, "postmaster.pid")) as f:
                    postmaster = f.readline().strip()
                out = os.path.join(outdir, f"{self.river}-server.net")
                self.tracer = subprocess.Popen(
                    ["strace", "-f", "-tt", "-T", "-o", out] +
                    ([] if kind == "all" else ["--seccomp-bpf", "-e", "trace=sendto,recvfrom,sendmsg,connect,poll,"
                                               "fdatasync,epoll_wait,clone,exit_group"]) + ["-p", postmaster], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                print(f"catchup_bench: tracing the server into {out}", flush=True)
            return super().__enter__()

        def sample(self):
            super().sample()
            if self.pid and self.tracer is None:
                out = os.path.join(outdir, f"{self.river}-{self.pid}.{kind}")
                if kind == "strace":
                    cmd = ["strace", "-f", "-tt", "-T", "-o", out, "-p", str(self.pid)]
                elif kind == "strace-c":
                    cmd = ["strace", "-c", "-f", "-w", "-o", out, "-p", str(self.pid)]
                else:
                    # PERF_CALL_GRAPH=dwarf: call chains through libc and libbson (no frame pointers).
                    graph = os.environ.get("PERF_CALL_GRAPH", "fp")
                    cmd = ["perf", "record", "-F", "4999", "--call-graph", graph, "-o", out, "-p", str(self.pid)]
                self.tracer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                print(f"catchup_bench: tracing worker {self.pid} into {out}", flush=True)

        def __exit__(self, *exc):
            result = super().__exit__(*exc)
            if self.tracer is not None:
                self.tracer.send_signal(2)
                self.tracer.wait()
            return result

    return Traced


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=50000)
    ap.add_argument("--changes", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--captures", default="change_stream,oplog")
    ap.add_argument("--trace", choices=["strace", "strace-c", "perf", "net", "all"])
    ap.add_argument("--peer-log", action="store_true")
    ap.add_argument("--settings", default="", help="extra server settings, name=value;name=value")
    ap.add_argument("--seed", type=int, default=random.randrange(10**6))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    captures = [c for c in args.captures.split(",") if c]
    outdir = tempfile.mkdtemp(prefix="catchup_bench-")
    if args.trace:
        bench_lib.WorkerWatcher = traced_worker_watcher(args.trace, outdir)
    settings = {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'512MB'"}
    settings.update(kv.split("=", 1) for kv in args.settings.split(";") if kv)
    pg = PgCluster(settings=settings).init()
    bench_lib.PG_DATADIR = pg.datadir
    source = start_source(["--verbose"] if args.peer_log else ())
    print(f"catchup_bench: seed {args.seed}, {args.changes} changes on {args.docs} documents, "
          f"{args.reps} rounds, captures {captures}, outputs in {outdir}", flush=True)
    runs = []
    try:
        pg.query("CREATE EXTENSION mongo_river")
        client = source.client()
        client.drop_database("bench")
        coll = client.bench.flat
        load(coll, flat_doc, args.docs)
        rivers = []
        for capture in captures:
            name, table = ("cs", "flat") if capture == "change_stream" else ("op", "flat_op")
            flat_copy(pg, source, coll, name, table, args.docs, capture, baseline=False)
            rivers.append((name, capture, table))
        touched = set()
        for rep in range(args.reps):
            if touched:
                restore(coll, touched, args.docs)
                touched.clear()
                for name, _, _ in rivers:
                    pg.scalar("SELECT mongo_river.wait_for_sync(%s, '5 min')", (name,))
            out = catch_up(pg, source, coll, rivers, args.changes, rng, touched)
            runs.append(out)
            line = [f"round {rep + 1}: psql {out['psql_changes_s']:.0f}/s"]
            for capture, c in out["captures"].items():
                line.append(f"{capture} {c['changes_s']:.0f}/s ratio {c['ratio']:.2f} peer {c['peer_share']:.2f} "
                            f"worker {c['worker_share']:.2f} start {c['worker_start_s']:.2f}s "
                            f"same {c['same_rows_as_baseline']}")
            print("catchup_bench: " + "; ".join(line), flush=True)
            for name, _, _ in rivers:
                pg.query("SELECT mongo_river.start(%s)", (name,))
            for name, _, _ in rivers:
                pg.scalar("SELECT mongo_river.wait_for_sync(%s, '5 min')", (name,))
        print("catchup_bench: crashes: %s" % pg.crashes(), flush=True)
    finally:
        if args.peer_log and source.process is not None:
            print(f"catchup_bench: peer log {source.process.peer_log}", flush=True)
        source.stop()
        pg.destroy()
    with open(os.path.join(outdir, "runs.json"), "w") as f:
        json.dump(runs, f, indent=1)
    wrong = [c for r in runs for c in r["captures"].values() if not c["same_rows_as_baseline"]]
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
