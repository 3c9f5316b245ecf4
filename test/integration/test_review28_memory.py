"""Review 28: "copies of large documents do not hold more memory than before" (reading ahead pauses
after a batch whose documents average 64 KiB or more or whose last document is that large; review
28 found batches of nine large documents and a small one, ~400 KiB each but the last, read ahead,
holding a batch more); and batches of 8 MiB documents. The worker's peak RssAnon growth during the
copy, reading ahead, must not exceed the same copy's without reading ahead by more than noise (1.5
MiB + 15%, the medians of three rounds)."""

import json
import statistics

from pgcluster import wait_for
from review28_lib import MAPPING, bad_lines, log_mark, set_setting, wait_streaming, worker_pid
from river import create_river
from worker_memory import PeakRss, rss_anon_kb


def load_docs(mongo, db, sizes):
    client = mongo.client()
    client.drop_database(db)
    for i, size in enumerate(sizes):
        client[db].c.insert_one({"_id": f"d{i:05d}", "n": i, "v": 0, "pad": "x" * size})


def copy_growth(pg, mongo, river, sizes, batch_size, ahead):
    set_setting(pg, "mongo_river.copy_reads_ahead", "on" if ahead else "off")
    load_docs(mongo, river, sizes)
    try:
        create_river(pg, river, mongo.uri, {"batch_size": batch_size})
        pid = wait_for(lambda: worker_pid(pg, river), 30, 0.05, "the worker")
        wait_for(lambda: pg.scalar("SELECT count(*) FROM mongo_river.status WHERE river = %s", (river,)) >= 0, 5)
        base = rss_anon_kb(pid)
        with PeakRss(pid) as peak:
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (river, f"{river}.c", river, json.dumps(MAPPING)))
            wait_streaming(pg, river, 100)
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == len(sizes)
        return (peak.peak - base) / 1024.0
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        set_setting(pg, "mongo_river.copy_reads_ahead", "on")


def compare(pg, mongo, name, sizes, batch_size):
    mark = log_mark(pg)
    # Three rounds each, alternating; the medians compared (large documents are not read ahead).
    ons, offs = [], []
    for r in range(3):
        offs.append(copy_growth(pg, mongo, f"{name}_off{r}", sizes, batch_size, False))
        ons.append(copy_growth(pg, mongo, f"{name}_on{r}", sizes, batch_size, True))
    on, off = statistics.median(ons), statistics.median(offs)
    print(f"{name}: RssAnon growth reading ahead {ons} MiB, without {offs} MiB")
    assert on <= off * 1.15 + 1.5, \
        f"{name}: the copy reading ahead grew the worker by {on:.1f} MiB, without reading ahead {off:.1f} MiB"
    assert bad_lines(pg, mark) == []


def test_mixed_large_then_small_documents(river_pg, mongo):
    sizes = ([430 * 1024] * 9 + [10]) * 20
    compare(river_pg, mongo, "r28mixed", sizes, 1)


def test_eight_mib_documents(river_pg, mongo):
    compare(river_pg, mongo, "r28big", [8 * 1024 * 1024] * 4 + [10], 100)
