"""bench_lib: the measurements of river_bench.py (documents, meters, copy, catch-up, lag).

Every river figure is paired with a baseline run on the same machine in the same run, and every
river run is metered for the peer's CPU share (its CPU seconds from /proc/PID/stat ÷ the run's wall
seconds, so 1.0 is one full core).
"""

import datetime
import json
import math
import os
import re
import subprocess
import tempfile
import threading
import time

from pgcluster import PG_BINDIR, wait_for
from worker_memory import rss_anon_kb, worker_pid

FLAT_COLUMNS = ["id", "name", "n", "price", "ok", "at"]
FLAT_MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"}, "name": {"path": "name", "type": "text"},
    "n": {"path": "n", "type": "bigint"}, "price": {"path": "price", "type": "double precision"},
    "ok": {"path": "ok", "type": "boolean"}, "at": {"path": "at", "type": "timestamptz"}}}
NESTED_MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"}, "title": {"path": "title", "type": "text"},
    "author": {"path": "author.name", "type": "text"}, "score": {"path": "stats.score", "type": "bigint"}},
    "arrays": {"items": {"path": "items", "table": "nested_items", "fk": "doc_id", "position": "pos",
                         "columns": {"sku": {"path": "sku", "type": "text"}, "qty": {"path": "qty", "type": "integer"}}}}}
BIG_MAPPING = {"pk": "id", "columns": {
    "id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}, "blob": {"path": "blob", "type": "text"}}}
BIG_DOC_BYTES = 8 * 1024 * 1024 - 4096  # just under 8 MiB of BSON
EPOCH = datetime.datetime(2024, 1, 1)


def flat_doc(i):
    return {"_id": f"d{i:08d}", "name": f"name {i}", "n": i, "price": i * 0.25, "ok": i % 2 == 0,
            "at": EPOCH + datetime.timedelta(seconds=i)}


def nested_doc(i):
    return {"_id": f"d{i:08d}", "title": f"title {i}", "author": {"name": f"a{i % 97}"}, "stats": {"score": i},
            "items": [{"sku": f"s{i}-{j}", "qty": j} for j in range(i % 4)]}


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


def proc_cpu_seconds(pid):
    """proc_cpu_seconds returns utime + stime of process pid (all its threads) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeerMeter:
    """PeerMeter measures one run: its wall seconds and the peer's CPU seconds over the same window
    (cpu and share stay None for a real mongod, whose process is not ours)."""

    def __init__(self, source):
        self.pid = source.process.pid if source.process is not None else None
        self.wall = self.cpu = self.share = None

    def __enter__(self):
        self.cpu0 = proc_cpu_seconds(self.pid) if self.pid else None
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        if self.pid:
            self.cpu = proc_cpu_seconds(self.pid) - self.cpu0
            self.share = self.cpu / self.wall if self.wall > 0 else None
        return False

    def as_dict(self, window=None):
        """as_dict returns the figures; window: the seconds to divide by instead of the wall time (a
        copy's own window inside the metered one)."""
        share = self.share if window is None or self.cpu is None else self.cpu / window
        return {"peer_wall_s": self.wall, "peer_cpu_s": self.cpu, "peer_share": share}


class Session:
    """Session is one autocommit connection kept open for polling (a connection per poll would add a
    backend start to every sample, on the same 2 cores as the run being measured)."""

    def __init__(self, pg):
        self.conn = pg.connect()
        self.conn.autocommit = True

    def scalar(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None

    def close(self):
        self.conn.close()


class WorkerWatcher:
    """WorkerWatcher samples river's worker in a thread: peak_kb is the highest RssAnon seen (every
    5 ms: the peak of an 8 MiB document lasts a few ms, a 50 ms sampler missed it), cpu_s the
    worker's CPU seconds over the watch: from the first sample for a worker already running when the
    watch began, from its start (0) for one started later (a catch-up's worker, a restart). While no
    worker runs, it is looked up every 50 ms (a query)."""

    SAMPLE_S = 0.005
    LOOKUP_S = 0.05

    def __init__(self, pg, river):
        self.session, self.river, self.peak_kb, self.cpu_s = Session(pg), river, 0, 0.0
        self.pid = self.cpu_first = self.cpu_last = None
        self.started = False  # the first look was made (a worker found after it started meanwhile)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self):
        kb = rss_anon_kb(self.pid) if self.pid else None
        if kb is None:
            self.cpu_s += (self.cpu_last or 0) - (self.cpu_first or 0)
            self.cpu_first = self.cpu_last = None
            try:
                self.pid = worker_pid(self.session, self.river)
            except Exception:
                self.pid = None
            born_inside = self.started
            self.started = True
            if not self.pid:
                return
            kb = rss_anon_kb(self.pid)
            if kb is None:
                return
            if born_inside:
                self.cpu_first = 0.0  # a new process: all its CPU was used inside the watch
        self.peak_kb = max(self.peak_kb, kb)
        try:
            cpu = proc_cpu_seconds(self.pid)
        except OSError:
            return
        if self.cpu_first is None:
            self.cpu_first = cpu
        self.cpu_last = cpu

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.SAMPLE_S if self.pid else self.LOOKUP_S)

    def __enter__(self):
        self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.sample()  # the last reading (or the first look at a worker started since the last lookup)
        self.cpu_s += (self.cpu_last or 0) - (self.cpu_first or 0)
        self.session.close()
        return False


def worker_share(worker, meter, window=None):
    """worker_share returns the worker's CPU seconds and share (cores) over meter's run (or window
    seconds)."""
    window = window or meter.wall
    return {"worker_cpu_s": worker.cpu_s, "worker_share": worker.cpu_s / window if window else None}


def copy_phase_seconds(pg, river, source_name):
    """copy_phase_seconds reads the worker's log lines "starting initial copy" and "initial copy done"
    of river's collection source_name and returns the seconds between them (None if not found)."""
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


def create_river(pg, source, river, capture="change_stream"):
    options = {"batch_size": 2000, "capture": capture}
    pg.query("SELECT mongo_river.create_river(%s, %s, %s)", (river, source.uri, json.dumps(options)))
    wait_for(lambda: worker_pid(pg, river), 60, 0.05, f"the worker of river {river}")


def river_copy(pg, source, river, collection, table, mapping, count, capture="change_stream"):
    """river_copy creates river (capture: change_stream or oplog), maps collection onto table and
    waits for the copy. Returns a dict: seconds (the worker's own, first to last copied batch, from
    its log), end_to_end_seconds (map_collection until status shows streaming: adds the worker
    noticing the mapping), rss_anon_kb (peak), and the peer's and the worker's CPU over the end-to-end
    window, their shares taken over the copy's own seconds (neither has much to do outside them)."""
    create_river(pg, source, river, capture)
    poll = Session(pg)
    with WorkerWatcher(pg, river) as rss, PeerMeter(source) as meter:
        poll.scalar("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, collection, table, json.dumps(mapping)))
        wait_for(lambda: poll.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
                 3600, 0.02, f"the copy of river {river}")
    poll.close()
    got = pg.scalar(f'SELECT count(*) FROM "{table}"')
    assert got == count, f"river {river} copied {got} of {count} documents"
    seconds = copy_phase_seconds(pg, river, collection) or meter.wall
    return {"docs": count, "seconds": seconds, "end_to_end_seconds": meter.wall, "docs_s": count / seconds,
            "rss_anon_kb": rss.peak_kb, **meter.as_dict(seconds), **worker_share(rss, meter, seconds)}


def copy_baseline(pg, table, columns, rows, foreign_key=""):
    """copy_baseline loads rows into an empty copy of table (same keys and indexes) with server-side
    COPY FROM a file and returns its seconds (foreign_key: a FOREIGN KEY clause the copy gets too, as
    the river's child tables have one)."""
    path = os.path.join(tempfile.gettempdir(), f"river_bench_{table}.tsv")
    with open(path, "w") as f:
        for row in rows:
            f.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    os.chmod(path, 0o644)
    pg.query(f'CREATE TABLE "{table}_copy" (LIKE "{table}" INCLUDING ALL)')
    if foreign_key:
        pg.query(f'ALTER TABLE "{table}_copy" ADD {foreign_key}')
    pg.query("CHECKPOINT")
    start = time.monotonic()
    pg.query(f'COPY "{table}_copy" ({", ".join(columns)}) FROM %s', (path,))
    seconds = time.monotonic() - start
    os.unlink(path)
    return seconds


def flat_copy(pg, source, coll, river, table, count, capture="change_stream", baseline=True):
    """flat_copy copies coll (already loaded) with a new river and, with baseline, times server
    COPY of the same rows into a table with the same keys. Returns the figures."""
    pg.query("CHECKPOINT")
    out = river_copy(pg, source, river, coll.full_name, table, FLAT_MAPPING, count, capture)
    if baseline:
        rows = pg.query(f'SELECT {", ".join(FLAT_COLUMNS)} FROM "{table}"')
        base = copy_baseline(pg, table, FLAT_COLUMNS, rows)
        pg.query(f'DROP TABLE "{table}_copy"')
        out.update({"copy_s": base, "copy_rows_s": count / base, "ratio": base / out["seconds"],
                    "end_to_end_ratio": base / out["end_to_end_seconds"]})
    return out


def flat_copies(pg, source, coll, river, table, count, runs):
    """flat_copies is flat_copy repeated: the first run's river and table stay (later figures use
    them), each further run copies coll again with a river and table of its own, dropped after. A
    single copy and COPY of 50k rows vary by a third from run to run on a shared 2-core machine, so
    the figures are those of the median run (median_run: the median ratio, with that run's rates and
    CPU shares), each run under "runs"; rss_anon_kb stays the first run's."""
    out = flat_copy(pg, source, coll, river, table, count)
    every = [out]
    for run in range(1, runs):
        every.append(flat_copy(pg, source, coll, f"{river}_run{run}", f"{table}_run{run}", count))
        pg.query("SELECT mongo_river.drop_river(%s, true)", (f"{river}_run{run}",))  # and its table
    if runs > 1:
        out = dict(median_run(every, "ratio"))
        out["runs"] = [{k: r[k] for k in ("seconds", "copy_s", "ratio", "worker_share", "peer_share") if k in r}
                       for r in every]
        out["rss_anon_kb"] = every[0]["rss_anon_kb"]  # the first run's (the memory row says so)
    return out


def median_run(runs, key):
    """median_run returns the run whose key is the median of the runs' (the upper middle one of an
    even count): its figures are shown together, so that a row's columns agree with its ratio (the
    median of each column taken apart mixes runs)."""
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[len(ordered) // 2]


def make_changes(coll, existing, count, rng):
    """make_changes makes count mixed changes (40% inserts, 45% updates of random existing documents,
    15% deletes) as single-document writes sent 1000 to a bulk (each its own oplog entry and change
    event) and returns (ops, final): the ops in order, and each touched key's final document (None:
    deleted), modelled here rather than read back."""
    from pymongo import DeleteOne, InsertOne, UpdateOne
    ops, final, writes = [], {}, []
    next_id = 10**7
    for _ in range(count):
        r = rng.random()
        if r < 0.4:
            doc = flat_doc(next_id)
            next_id += 1
            ops.append(("insert", doc["_id"]))
            final[doc["_id"]] = dict(doc)
            writes.append(InsertOne(doc))
        else:
            i = rng.randrange(existing)
            key = f"d{i:08d}"
            if key not in final:
                final[key] = flat_doc(i)
            if r < 0.85:
                ops.append(("update", key))
                if final[key] is not None:
                    final[key] = dict(final[key], n=final[key]["n"] + 1, name="updated")
                writes.append(UpdateOne({"_id": key}, {"$inc": {"n": 1}, "$set": {"name": "updated"}}))
            else:
                ops.append(("delete", key))
                final[key] = None
                writes.append(DeleteOne({"_id": key}))
    for s in range(0, len(writes), 1000):
        coll.bulk_write(writes[s:s + 1000], ordered=True)
    return ops, final


def baseline_sql(pg, table, ops, final):
    """baseline_sql writes the changes as psql input: per 1000 changes one transaction with one
    INSERT ... ON CONFLICT DO UPDATE (inserts and updates, each key's final state) and one
    DELETE ... = ANY; returns the file's path."""
    conn = pg.connect()
    path = os.path.join(tempfile.gettempdir(), f"river_bench_{table}_changes.sql")
    try:
        with conn.cursor() as cur, open(path, "w") as f:
            for s in range(0, len(ops), 1000):
                upserts, deletes = {}, []
                for _, key in ops[s:s + 1000]:
                    doc = final[key]
                    if doc is None:
                        deletes.append(key)
                    else:
                        upserts[key] = tuple(doc[c] for c in ("_id", "name", "n", "price", "ok", "at"))
                f.write("BEGIN;\n")
                if upserts:
                    values = ",".join(cur.mogrify("(%s,%s,%s,%s,%s,%s)", u).decode() for u in upserts.values())
                    f.write(f'INSERT INTO "{table}" (id, name, n, price, ok, at) VALUES {values} '
                            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, n = EXCLUDED.n, "
                            "price = EXCLUDED.price, ok = EXCLUDED.ok, at = EXCLUDED.at;\n")
                if deletes:
                    f.write(cur.mogrify(f'DELETE FROM "{table}" WHERE id = ANY(%s);\n', (deletes,)).decode())
                f.write("COMMIT;\n")
    finally:
        conn.close()
    return path


def table_digest(pg, table):
    return pg.scalar(f'SELECT count(*) || \':\' || coalesce(md5(string_agg(({", ".join(FLAT_COLUMNS)})::text, \',\' '
                     f'ORDER BY id)), \'\') FROM "{table}"')


def catch_up(pg, source, coll, rivers, count, rng, touched=None):
    """catch_up stops rivers (each a (name, capture, table) over the same collection coll), makes
    count mixed changes, then starts each river alone and times it from start() until
    wait_for_sync() returns; the baseline is psql applying the same changes as 1000-row statements
    to a copy of the table as it was before them (same keys). Every river's table must end equal to
    the baseline's. touched, a set, receives the keys the changes touched (see restore)."""
    for name, _, _ in rivers:
        pg.query("SELECT mongo_river.stop(%s)", (name,))
    table0 = rivers[0][2]
    base_table = f"{table0}_base"
    pg.query(f'CREATE TABLE "{base_table}" (LIKE "{table0}" INCLUDING ALL)')
    pg.query(f'INSERT INTO "{base_table}" SELECT * FROM "{table0}"')
    pg.query(f'VACUUM ANALYZE "{base_table}"')
    existing = pg.scalar(f'SELECT count(*) FROM "{table0}"')
    ops, final = make_changes(coll, existing, count, rng)
    if touched is not None:
        touched.update(final)
    out = {"changes": count, "docs": existing, "captures": {}}
    for name, capture, table in rivers:
        pg.query("CHECKPOINT")
        poll = Session(pg)
        with WorkerWatcher(pg, name) as worker, PeerMeter(source) as meter:
            poll.scalar("SELECT mongo_river.start(%s)", (name,))
            wait_for(lambda: worker_pid(poll, name), 60, 0.01, f"the worker of river {name}")
            started = time.monotonic() - meter.t0
            synced = poll.scalar("SELECT mongo_river.wait_for_sync(%s, '1 hour')", (name,))
        poll.close()
        assert synced, f"river {name} did not catch up within an hour"
        out["captures"][capture] = {"river": name, "seconds": meter.wall, "changes_s": count / meter.wall,
                                    "worker_start_s": started, **meter.as_dict(), **worker_share(worker, meter)}
    path = baseline_sql(pg, base_table, ops, final)
    pg.query("CHECKPOINT")
    start = time.monotonic()
    subprocess.run([os.path.join(PG_BINDIR, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.dsn(),
                    "-f", path], check=True, stdout=subprocess.DEVNULL)
    base = time.monotonic() - start
    os.unlink(path)
    out.update({"psql_s": base, "psql_changes_s": count / base})
    expect = table_digest(pg, base_table)
    for name, capture, table in rivers:
        c = out["captures"][capture]
        c["ratio"] = base / c["seconds"]
        c["same_rows_as_baseline"] = table_digest(pg, table) == expect
    pg.query(f'DROP TABLE "{base_table}"')
    return out


def restore(coll, keys, docs):
    """restore puts the documents of keys back as they were loaded (and deletes inserted ones), so that
    the next round's changes start from the loaded collection of docs documents again (make_changes
    models each touched document from its loaded state)."""
    from pymongo import DeleteOne, ReplaceOne
    writes = []
    for key in sorted(keys):
        i = int(key[1:])
        writes.append(ReplaceOne({"_id": key}, flat_doc(i), upsert=True) if i < docs else DeleteOne({"_id": key}))
    for s in range(0, len(writes), 1000):
        coll.bulk_write(writes[s:s + 1000], ordered=True)


def catch_ups(pg, source, coll, rivers, count, rng, runs, docs):
    """catch_ups is catch_up repeated runs times over coll's docs loaded documents, each round from
    them again (restore, then the rivers synced): like the flat copies, one round's ratio can be a
    third off the next on a shared 2-core machine, so each capture's figures are those of its median
    round (median_run by ratio: its changes_s, seconds, CPU shares and that round's psql_changes_s),
    its rounds under "runs"; same_rows_as_baseline holds when it held in every round."""
    every, touched = [], set()
    for run in range(runs):
        if run:
            restore(coll, touched, docs)
            touched.clear()
            for name, _, _ in rivers:
                pg.scalar("SELECT mongo_river.wait_for_sync(%s, '10 min')", (name,))
        every.append(catch_up(pg, source, coll, rivers, count, rng, touched))
    out = {k: v for k, v in every[0].items() if k not in ("psql_s", "psql_changes_s")}  # per capture now
    out["captures"] = {}
    for capture in every[0]["captures"]:
        rounds = [dict(r["captures"][capture], psql_changes_s=r["psql_changes_s"]) for r in every]
        merged = dict(median_run(rounds, "ratio"))
        if runs > 1:
            merged["runs"] = [{k: c[k] for k in ("seconds", "ratio", "worker_share", "peer_share") if k in c}
                              for c in rounds]
        merged["same_rows_as_baseline"] = all(c["same_rows_as_baseline"] for c in rounds)
        out["captures"][capture] = merged
    return out


def _lag_writer(uri, db, coll, rate, seconds, made):
    """_lag_writer (a process of its own, so that the sampling does not slow it) inserts rate
    documents/s into db.coll for seconds, in batches of whatever is due (at most 500)."""
    import pymongo
    client = pymongo.MongoClient(uri)
    target = client[db][coll]
    interval = 1.0 / rate
    start = next_at = time.monotonic()
    i = 0
    while time.monotonic() < start + seconds:
        batch = []
        now = time.monotonic()
        while next_at <= now and len(batch) < 500:
            batch.append({"_id": f"lag{rate}-{i}", "name": "lag", "n": i})
            i += 1
            next_at += interval
        if batch:
            target.insert_many(batch, ordered=False)
            made.value += len(batch)
        else:
            time.sleep(0.001)
    client.close()


def nearest_rank(ordered, q):
    """nearest_rank returns the q-quantile of the sorted list ordered by the nearest-rank method (the
    smallest value with at least q of the values at or below it)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def lag_under_load(pg, source, coll, river, rate, seconds):
    """lag_under_load offers rate inserts/s for seconds (from another process) and samples
    status.lag every 50 ms; returns p50, p99, the rate achieved and the peer's CPU share."""
    import multiprocessing
    made = multiprocessing.Value("q", 0)
    writer = multiprocessing.get_context("fork").Process(
        target=_lag_writer, args=(source.uri, coll.database.name, coll.name, rate, seconds, made))
    samples = []
    poll = Session(pg)
    with WorkerWatcher(pg, river) as worker, PeerMeter(source) as meter:
        writer.start()
        while meter.t0 + seconds > time.monotonic():
            lag = poll.scalar("SELECT extract(epoch FROM lag) FROM mongo_river.status WHERE river = %s", (river,))
            if lag is not None:
                samples.append(float(lag))
            time.sleep(0.05)
        writer.join()
    poll.close()
    assert writer.exitcode == 0, f"the lag writer failed ({writer.exitcode})"
    made = made.value
    samples.sort()
    return {"offered_s": rate, "achieved_s": made / meter.wall, "samples": len(samples),
            "p50_s": samples[len(samples) // 2] if samples else None,
            "p99_s": nearest_rank(samples, 0.99) if samples else None, **meter.as_dict(),
            **worker_share(worker, meter)}


def big_documents(pg, source, db, count, check=None, watcher=None):
    """big_documents copies count documents of 8 MiB, then streams one update of each (applied
    from its update description: the event is small), then count inserts of new ones and count
    replacements (each of those events carries a whole document), watching the worker's RssAnon
    in each run. check(phase, count, n_of), if given, is called after each phase ("copy",
    "update", "full") with the documents the table should then hold (n of document i = n_of(i))."""
    watcher = watcher or WorkerWatcher
    for i in range(count):
        db.big.insert_one(big_doc(i))
    out = {"docs": count, "doc_bytes": BIG_DOC_BYTES}
    out["copy"] = river_copy(pg, source, "big", "bench.big", "big", BIG_MAPPING, count)
    checks = [check("copy", count, lambda i: i)] if check else []
    poll = Session(pg)
    with watcher(pg, "big") as rss, PeerMeter(source) as meter:
        for i in range(count):
            db.big.update_one({"_id": f"big{i:04d}"}, {"$set": {"n": -1 - i}})
        wait_for(lambda: poll.scalar("SELECT count(*) FROM big WHERE n < 0") == count, 600, 0.05,
                 "the updates of the 8 MiB documents")
    out["stream"] = {"seconds": meter.wall, "rss_anon_kb": rss.peak_kb, **meter.as_dict(), **worker_share(rss, meter)}
    if check:
        checks.append(check("update", count, lambda i: -1 - i))
    with watcher(pg, "big") as rss, PeerMeter(source) as meter:
        for i in range(count, 2 * count):
            db.big.insert_one(big_doc(i))
        for i in range(count):
            db.big.replace_one({"_id": f"big{i:04d}"}, big_doc(i))
        wait_for(lambda: poll.scalar("SELECT count(*) = %s AND count(*) FILTER (WHERE n < 0) = 0 FROM big",
                                     (2 * count,)), 600, 0.05, "the inserts and replacements of the 8 MiB documents")
    out["stream_full"] = {"seconds": meter.wall, "rss_anon_kb": rss.peak_kb, **meter.as_dict(),
                          **worker_share(rss, meter)}
    poll.close()
    if check:
        checks.append(check("full", 2 * count, lambda i: i))
        out["same_rows"] = all(checks)
    pg.query("SELECT mongo_river.drop_river('big', true)")
    db.big.drop()
    return out
