"""Large documents are held few times at once by the worker (issue 18: "keep a document once, not
nine times, at its peak"). The worker's RssAnon is sampled every 5 ms while it copies documents of
8 MiB, while it streams their inserts and replacements (every change event carries a whole
document), and while it copies documents of 2 MiB (a server reply holds up to 16 MiB of them unless
the getMores ask for fewer); every row must come out byte for byte as the document holds it.

The bounds are in documents' worth above the idle worker. Measured before the change: the copy of
8 MiB documents peaked at 48 MiB (6 documents: libmongoc's buffered stream, the reply, a copy of
the document, the converted text, the Datum, the heap tuple), their stream at 80 MiB (10), the copy
of 2 MiB documents at 44 MiB (16 MiB replies, twice), their backlog's stream at 30 MiB; after it:
32 MiB (4: the reply, the converted text, the Datum and the tuple), 48 MiB (6), 14 and 12 MiB."""

import base64
import hashlib
import json
import os

from pgcluster import wait_for
from river import create_river, wait_synced
from worker_memory import PeakRss, rss_anon_kb, worker_pid

MIB = 1024 * 1024
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "blob": {"path": "blob", "type": "text"}}}


def blob(i, size):
    """blob returns document i's text of size bytes: repeated letters for even i (TOAST compresses
    it), random base64 for odd i (it does not)."""
    if i % 2 == 0:
        return chr(ord("a") + i % 26) * size
    return base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode()[:size]


def same_rows(pg, table, docs):
    """same_rows lists the differences between table and docs (id -> (n, text))."""
    got = {r[0]: tuple(r[1:]) for r in pg.query(f"SELECT id, n, md5(blob), octet_length(blob) FROM {table}")}
    want = {i: (n, hashlib.md5(text.encode()).hexdigest(), len(text)) for i, (n, text) in docs.items()}
    return [i for i in sorted(set(got) | set(want)) if got.get(i) != want.get(i)]


def start(river_pg, mongo, river, coll, table):
    """start creates river with the mapping of coll onto table not yet made, and returns the worker's
    pid and idle RssAnon."""
    create_river(river_pg, river, mongo.uri, {"batch_size": 2000})
    wait_for(lambda: worker_pid(river_pg, river), 60, 0.05, f"the worker of river {river}")
    pid = worker_pid(river_pg, river)
    return pid, rss_anon_kb(pid)


def copy(river_pg, river, coll, table, pid):
    with PeakRss(pid) as watch:
        river_pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, coll, table, json.dumps(MAPPING)))
        wait_synced(river_pg, river, 300)
    return watch.peak


def test_8mib_documents_copy_and_stream_hold_each_few_times(river_pg, mongo):
    count, size = 4, 8 * MIB - 4096
    coll = mongo.client().bigdocs.eight
    coll.drop()
    docs = {}
    for i in range(count):
        docs[f"big{i}"] = (i, blob(i, size))
        coll.insert_one({"_id": f"big{i}", "n": i, "blob": docs[f"big{i}"][1]})
    pid, idle = start(river_pg, mongo, "bigdocs8", "bigdocs.eight", "eight")
    copy_peak = copy(river_pg, "bigdocs8", "bigdocs.eight", "eight", pid) - idle
    assert same_rows(river_pg, "eight", docs) == []

    with PeakRss(pid) as watch:
        for i in range(count, 2 * count):
            docs[f"big{i}"] = (i, blob(i, size))
            coll.insert_one({"_id": f"big{i}", "n": i, "blob": docs[f"big{i}"][1]})
        for i in range(count):
            docs[f"big{i}"] = (-1 - i, blob(i + 1, size))
            coll.replace_one({"_id": f"big{i}"}, {"n": -1 - i, "blob": docs[f"big{i}"][1]})
        wait_synced(river_pg, "bigdocs8", 300)
    stream_peak = watch.peak - idle
    assert same_rows(river_pg, "eight", docs) == []
    river_pg.query("SELECT mongo_river.drop_river('bigdocs8', true)")
    coll.drop()
    print(f"8 MiB documents: worker idle {idle / 1024:.1f} MiB; peak above it: copy {copy_peak / 1024:.1f} MiB, "
          f"stream {stream_peak / 1024:.1f} MiB")
    assert copy_peak < 5 * size / 1024, f"the copy held {copy_peak / 1024:.1f} MiB above idle (4 documents' worth)"
    assert stream_peak < 7 * size / 1024, f"the stream held {stream_peak / 1024:.1f} MiB above idle (6 documents)"


def test_2mib_documents_copy_in_replies_of_a_few(river_pg, mongo):
    count, size = 16, 2 * MIB
    coll = mongo.client().bigdocs.two
    coll.drop()
    docs = {}
    for i in range(count):
        docs[f"mid{i:02d}"] = (i, blob(i, size))
        coll.insert_one({"_id": f"mid{i:02d}", "n": i, "blob": docs[f"mid{i:02d}"][1]})
    pid, idle = start(river_pg, mongo, "bigdocs2", "bigdocs.two", "two")
    copy_peak = copy(river_pg, "bigdocs2", "bigdocs.two", "two", pid) - idle
    assert same_rows(river_pg, "two", docs) == []
    # A backlog of their inserts: the stream's getMores would take up to 16 MiB of events at once.
    river_pg.query("SELECT mongo_river.stop('bigdocs2')")
    wait_for(lambda: not worker_pid(river_pg, "bigdocs2"), 60, 0.05, "the worker's stop")
    for i in range(count, 2 * count):
        docs[f"mid{i:02d}"] = (i, blob(i, size))
        coll.insert_one({"_id": f"mid{i:02d}", "n": i, "blob": docs[f"mid{i:02d}"][1]})
    river_pg.query("SELECT mongo_river.start('bigdocs2')")
    wait_for(lambda: worker_pid(river_pg, "bigdocs2"), 60, 0.01, "the worker's start")
    pid = worker_pid(river_pg, "bigdocs2")
    with PeakRss(pid) as watch:
        wait_synced(river_pg, "bigdocs2", 300)
    stream_peak = watch.peak - idle
    assert same_rows(river_pg, "two", docs) == []
    river_pg.query("SELECT mongo_river.drop_river('bigdocs2', true)")
    coll.drop()
    print(f"2 MiB documents: worker idle {idle / 1024:.1f} MiB; peak above it: copy {copy_peak / 1024:.1f} MiB, "
          f"stream backlog {stream_peak / 1024:.1f} MiB")
    assert copy_peak < 10 * size / 1024, f"the copy held {copy_peak / 1024:.1f} MiB above idle (a 16 MiB reply?)"
    assert stream_peak < 10 * size / 1024, f"the stream held {stream_peak / 1024:.1f} MiB above idle (16 MiB replies?)"
