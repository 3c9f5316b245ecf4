#!/usr/bin/python3
"""peer_bench: throughput of the project's MongoDB test peer (test/mongo_peer).

    /usr/bin/python3 bench/peer_bench.py [--docs N] [--reps R] [--uri URI]

Starts a private peer (or uses --uri), then in one run measures:
  * inserts/s   insert_many of N small documents (~150 B each) in batches of 1000;
  * scan docs/s a plain find({}) over the N documents, read to the end (best of R), and (with
                libmongoc) the same sorted by _id, as the product's copy reads;
  * events/s    a collection change stream opened at the first insert's operationTime,
                read until it returned the N insert events (best of R), and (with libmongoc)
                the same through a $match on the namespace, as the product's streams read;
  * oplog       (with libmongoc) entries/s of a tailable find on local.oplog.rs with a namespace
                filter, as the product's oplog mode reads;
and the peer's CPU time (user+system, from /proc/PID/stat) spent in each phase, so the figures
show whether the peer or the client bounds them.  The reads are measured twice: with pymongo
(RawBSONDocument results, documents are not decoded into dicts) and, when a C compiler and
libmongoc (pkg-config libmongoc-1.0) are available, with the small libmongoc reader
test/mongo_peer/c_client/bench_reader.c (built into a temporary directory), since pymongo
itself cannot read 500k documents/s.  Default N finishes well under a minute.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "mongo_peer"))

import pymongo  # noqa: E402
from bson.codec_options import CodecOptions  # noqa: E402
from bson.raw_bson import RawBSONDocument  # noqa: E402

from peer_process import start_peer, stop_peer  # noqa: E402

RAW = CodecOptions(document_class=RawBSONDocument)


def cpu_seconds(pid):
    """cpu_seconds returns the user+system CPU time of process pid (0 when unknown)."""
    if pid is None:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_doc(i):
    """make_doc returns the i-th benchmark document (about 150 bytes of BSON)."""
    return {"_id": i, "name": "user%08d" % i, "email": "user%08d@example.com" % i,
            "age": i % 90, "score": i * 0.5, "active": bool(i & 1),
            "tags": ["alpha", "beta"], "zip": "%05d" % (i % 100000)}


def build_reader():
    """build_reader compiles the libmongoc reader; returns its path or None."""
    import shutil
    import subprocess
    import tempfile
    src = os.path.join(HERE, "..", "test", "mongo_peer", "c_client", "bench_reader.c")
    if not shutil.which("cc") or not shutil.which("pkg-config"):
        return None
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmongoc-1.0"],
                               check=True, capture_output=True, text=True).stdout.split()
        out = os.path.join(tempfile.mkdtemp(prefix="peer-bench-"), "bench_reader")
        subprocess.run(["cc", "-O2", "-o", out, src] + flags, check=True, capture_output=True)
        return out
    except (subprocess.CalledProcessError, OSError):
        return None


def c_read(reader, pid, uri, args):
    """c_read runs the libmongoc reader; returns (count, its seconds, peer CPU seconds)."""
    import subprocess
    c0 = cpu_seconds(pid)
    out = subprocess.run([reader, uri, "bench", "docs"] + [str(a) for a in args], check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), cpu_seconds(pid) - c0


def timed(pid, fn):
    """timed runs fn() and returns (its result, wall seconds, peer CPU seconds)."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, cpu_seconds(pid) - c0


def main():
    """main runs the three measurements and prints one line per figure."""
    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=200000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--uri", help="measure this server instead of a private peer")
    p.add_argument("--pid", type=int, help="with --uri: the server's process id, for its CPU time")
    a = p.parse_args()
    proc = None
    if a.uri:
        uri, pid = a.uri, a.pid
    else:
        proc, port = start_peer()
        uri, pid = "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port, proc.pid
    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        coll = client.bench.get_collection("docs", codec_options=RAW)
        coll.drop()
        docs = [make_doc(i) for i in range(a.docs)]
        from bson import encode
        avg = sum(len(encode(d)) for d in docs[:1000]) / 1000.0
        start = client.admin.command("ping")["operationTime"]

        def insert():
            """insert writes the documents in batches of 1000."""
            for i in range(0, len(docs), 1000):
                coll.insert_many(docs[i:i + 1000], ordered=True)
        _, wall, cpu = timed(pid, insert)
        print("inserts:  %9.0f docs/s   (%d docs of ~%.0f B, %.2f s, peer CPU %.2f s)"
              % (a.docs / wall, a.docs, avg, wall, cpu))

        def scan():
            """scan reads find({}) to the end and returns the count."""
            n = 0
            for _ in coll.find({}):
                n += 1
            return n
        best = None
        for _ in range(a.reps):
            n, wall, cpu = timed(pid, scan)
            assert n == a.docs, n
            if best is None or wall < best[0]:
                best = (wall, cpu)
        wall, cpu = best
        print("scan:     %9.0f docs/s   (pymongo find({}), %.3f s, peer CPU %.3f s = %.0f "
              "docs/CPU-s)" % (a.docs / wall, wall, cpu, a.docs / cpu if cpu else 0))
        reader = build_reader()
        if reader:
            best = min((c_read(reader, pid, uri, ["scan", a.docs]) for _ in range(a.reps)),
                       key=lambda r: r[1])
            n, wall, cpu = best
            assert n == a.docs, n
            print("scan:     %9.0f docs/s   (libmongoc find({}), %.3f s, peer CPU %.3f s = %.0f "
                  "docs/CPU-s)" % (a.docs / wall, wall, cpu, a.docs / cpu if cpu else 0))
            best = min((c_read(reader, pid, uri, ["idscan", a.docs]) for _ in range(a.reps)),
                       key=lambda r: r[1])
            n, wall, cpu = best
            assert n == a.docs, n
            print("scan:     %9.0f docs/s   (libmongoc find({}).sort({_id: 1}), %.3f s, peer CPU "
                  "%.3f s)" % (a.docs / wall, wall, cpu))

        def events():
            """events reads the insert events of the bench collection and returns their count."""
            n = 0
            with coll.watch(start_at_operation_time=start, batch_size=None,
                            max_await_time_ms=500) as cs:
                while n < a.docs:
                    ev = cs.try_next()
                    if ev is not None:
                        n += 1
            return n
        best = None
        for _ in range(a.reps):
            n, wall, cpu = timed(pid, events)
            if best is None or wall < best[0]:
                best = (wall, cpu)
        wall, cpu = best
        print("events:   %9.0f events/s (pymongo change stream, %.3f s, peer CPU %.3f s = %.0f "
              "events/CPU-s)" % (a.docs / wall, wall, cpu, a.docs / cpu if cpu else 0))
        if reader:
            best = min((c_read(reader, pid, uri, ["events", a.docs, start.time, start.inc])
                        for _ in range(a.reps)), key=lambda r: r[1])
            n, wall, cpu = best
            print("events:   %9.0f events/s (libmongoc change stream, %.3f s, peer CPU %.3f s = "
                  "%.0f events/CPU-s)" % (a.docs / wall, wall, cpu, a.docs / cpu if cpu else 0))
            best = min((c_read(reader, pid, uri, ["nsevents", a.docs, start.time, start.inc])
                        for _ in range(a.reps)), key=lambda r: r[1])
            n, wall, cpu = best
            print("events:   %9.0f events/s (libmongoc change stream + $match on ns, %.3f s, peer "
                  "CPU %.3f s)" % (a.docs / wall, wall, cpu))
            best = min((c_read(reader, pid, uri, ["oplog", a.docs, start.time, start.inc])
                        for _ in range(a.reps)), key=lambda r: r[1])
            n, wall, cpu = best
            print("oplog:    %9.0f entries/s (libmongoc tailing local.oplog.rs, namespace filter, "
                  "%.3f s, peer CPU %.3f s)" % (a.docs / wall, wall, cpu))
        print("peer CPU total: %.2f s" % cpu_seconds(pid))
        client.close()
    finally:
        if proc is not None:
            stop_peer(proc)


if __name__ == "__main__":
    main()
