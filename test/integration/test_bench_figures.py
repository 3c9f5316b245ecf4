"""The bench's row arithmetic and samplers, without a cluster (review 29): each test states what the
README says a figure is and fails where bench/bench_lib.py or bench/bench_report.py computes
something else."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))

import bench_lib  # noqa: E402
from bench_report import rows  # noqa: E402


def shown_ratio(row):
    return float(row[1].replace(",", "")) / float(row[2].replace(",", ""))


def test_a_catch_up_row_shows_one_round_whose_columns_give_its_ratio(monkeypatch):
    # Rounds of review 29's run (river seconds, ratio): medians taken column by column printed
    # 60,078 vs 66,974 changes/s (0.90) next to a ratio of 0.85.
    rounds = iter([(0.08152, 0.8483), (0.10703, 0.8321), (0.08323, 0.8970)])

    def fake(pg, source, coll, rivers, count, rng, touched=None):
        seconds, ratio = next(rounds)
        capture = {"seconds": seconds, "changes_s": count / seconds, "ratio": ratio,
                   "same_rows_as_baseline": True, "peer_share": 0.12, "worker_share": 0.3}
        return {"changes": count, "docs": 50000, "psql_s": ratio * seconds,
                "psql_changes_s": count / (ratio * seconds),
                "captures": {"change_stream": dict(capture), "oplog": dict(capture)}}
    monkeypatch.setattr(bench_lib, "catch_up", fake)
    out = bench_lib.catch_ups(None, None, None, [], 5000, None, 3, 50000)
    row = rows({"copy_flat": [], "catch_up": [out], "lag": []})[0]
    assert row[3] == "0.85", row
    assert f"{shown_ratio(row):.2f}" == row[3], f"row {row[:4]}: its columns give {shown_ratio(row):.2f}"


def test_a_flat_copy_row_shows_one_run_whose_columns_give_its_ratio(monkeypatch):
    runs = iter([(0.20, 0.10, 5000), (0.15, 0.12, 6000), (0.30, 0.11, 7000)])  # river s, COPY s, RssAnon

    def fake(pg, source, coll, river, table, count, capture="change_stream", baseline=True):
        seconds, copy_s, rss = next(runs)
        return {"docs": count, "seconds": seconds, "docs_s": count / seconds, "copy_s": copy_s,
                "copy_rows_s": count / copy_s, "ratio": copy_s / seconds, "rss_anon_kb": rss,
                "peer_share": 0.2, "worker_share": 0.8}
    monkeypatch.setattr(bench_lib, "flat_copy", fake)
    pg = type("PG", (), {"query": lambda self, *a: None})()
    out = bench_lib.flat_copies(pg, None, None, "r", "t", 50000, 3)
    row = rows({"copy_flat": [out], "catch_up": [], "lag": []})[0]
    assert row[3] == "0.50", row  # ratios 0.50, 0.80, 0.37: the median run is the first
    assert f"{shown_ratio(row):.2f}" == row[3], f"row {row[:4]}: its columns give {shown_ratio(row):.2f}"
    assert out["rss_anon_kb"] == 5000  # the memory row: the first run's


def test_a_worker_started_during_the_watch_counts_its_cpu_from_its_start(monkeypatch):
    # A catch-up's worker starts inside the timed window: its start and first batches used CPU
    # before the watcher first read it (it printed 0.00 for catch-ups of 5,000 changes).
    state = {"cpu": 0.0, "looks": 0}

    class FakeSession:
        def __init__(self, pg):
            pass

        def close(self):
            pass

    def fake_pid(session, river):
        state["looks"] += 1
        return 42 if state["looks"] >= 2 else None
    monkeypatch.setattr(bench_lib, "Session", FakeSession)
    monkeypatch.setattr(bench_lib, "worker_pid", fake_pid)
    monkeypatch.setattr(bench_lib, "rss_anon_kb", lambda pid: 1000 if pid else None)
    monkeypatch.setattr(bench_lib, "proc_cpu_seconds", lambda pid: state["cpu"])
    watcher = bench_lib.WorkerWatcher(None, "r")
    watcher.sample()       # the first look: no worker yet
    state["cpu"] = 0.06    # it starts and works
    watcher.sample()       # found
    state["cpu"] = 0.08
    watcher.sample()
    watcher.cpu_s += (watcher.cpu_last or 0) - (watcher.cpu_first or 0)
    assert abs(watcher.cpu_s - 0.08) < 1e-9, f"counted {watcher.cpu_s:.2f} s of the worker's 0.08 s"


def test_a_worker_running_before_the_watch_counts_only_what_it_used_during_it(monkeypatch):
    state = {"cpu": 5.0}

    class FakeSession:
        def __init__(self, pg):
            pass

        def close(self):
            pass
    monkeypatch.setattr(bench_lib, "Session", FakeSession)
    monkeypatch.setattr(bench_lib, "worker_pid", lambda session, river: 42)
    monkeypatch.setattr(bench_lib, "rss_anon_kb", lambda pid: 1000)
    monkeypatch.setattr(bench_lib, "proc_cpu_seconds", lambda pid: state["cpu"])
    watcher = bench_lib.WorkerWatcher(None, "r")
    watcher.sample()
    state["cpu"] = 5.25
    watcher.sample()
    watcher.cpu_s += (watcher.cpu_last or 0) - (watcher.cpu_first or 0)
    assert abs(watcher.cpu_s - 0.25) < 1e-9, watcher.cpu_s


def test_the_worker_watcher_samples_often_enough_for_an_8_mib_peak():
    # An 8 MiB document's peak lasts a few ms: 50 ms sampling read 28.8 MiB of a 36 MiB peak.
    assert bench_lib.WorkerWatcher.SAMPLE_S <= 0.005


def test_p99_is_the_nearest_rank():
    for n in (1, 37, 100, 108, 109, 120, 180):
        ordered = list(range(1, n + 1))
        p99 = bench_lib.nearest_rank(ordered, 0.99)
        assert sum(1 for v in ordered if v <= p99) >= 0.99 * n, (n, p99)
        assert sum(1 for v in ordered if v < p99) < 0.99 * n, (n, p99)


def test_a_peer_share_from_a_few_clock_ticks_is_not_called_peer_bound():
    # The 1,000-document memory copy printed "1.25 PEER" from 0.01 s of the peer's CPU.
    table = rows({"copy_flat": [], "catch_up": [], "lag": [],
                  "memory": {"docs": 1000, "rss_anon_kb": 5000, "peer_share": 1.25, "peer_cpu_s": 0.01,
                             "worker_share": 0.5, "docs_s": 1, "copy_rows_s": 1, "ratio": 1.0}})
    assert not table[0][4].endswith("PEER"), table[0]
    table = rows({"copy_flat": [], "catch_up": [], "lag": [],
                  "memory": {"docs": 1000, "rss_anon_kb": 5000, "peer_share": 0.95, "peer_cpu_s": 0.4,
                             "worker_share": 0.5, "docs_s": 1, "copy_rows_s": 1, "ratio": 1.0}})
    assert table[0][4].endswith("PEER"), table[0]
