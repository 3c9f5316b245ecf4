"""Review 28: a copy that reads ahead opens a second connection to the source, on a reader thread.
Hostile sources treat only that second connection badly: refused at accept, closed before its first
reply, closed after its first batch, silent in its handshake, a malformed reply. The river's own
connection is always served. Promises: the copy ends with exactly the source's rows (read on the
river's connection when the second is refused, with a log line), a worker asked to stop ends within
2 s while the thread waits on a silent second connection, the thread's libmongoc log lines reach
the server log, and no server process is ever terminated by a signal."""

import json
import struct
import time

import pytest

from pgcluster import wait_for
from review28_lib import (MAPPING, ConnProxy, bad_lines, diff, got_rows, load, log_mark, source_port,
                          time_until_gone, wait_streaming, want_rows, worker_pid)
from river import create_river

LIMIT = 2.0


@pytest.fixture
def proxy(mongo):
    p = ConnProxy(source_port(mongo))
    yield p
    p.close()


def start_river(pg, proxy, river, options="", river_options=None):
    """start_river creates river over proxy without mappings and waits until its worker has opened its
    own connection (every later connection is someone else's: the copy's reader thread, a backend)."""
    create_river(pg, river, proxy.uri(options), river_options or {"batch_size": 100})
    wait_for(lambda: worker_pid(pg, river), 30, 0.05, f"the worker of {river}")
    wait_for(lambda: any(len(c.commands) >= 2 for c in proxy.conns), 30, 0.05, "the worker's connection")
    time.sleep(0.5)
    return len(proxy.conns)


def map_c(pg, river, table=None):
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{river}.c", table or river, json.dumps(MAPPING)))


def drop(pg, river):
    pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


def check_rows(pg, river, coll):
    problems = diff(got_rows(pg, river), want_rows(coll))
    assert problems == "", f"river {river}: {problems}"


def test_second_connection_refused_at_accept(river_pg, mongo, proxy):
    pg, river = river_pg, "r28refuse"
    mark = log_mark(pg)
    coll = load(mongo, river, 5000)
    try:
        first = start_river(pg, proxy, river)
        proxy.gate = lambda conn: "refuse" if conn.index >= first else "pass"
        map_c(pg, river)
        wait_streaming(pg, river, 90)
        check_rows(pg, river, coll)
        assert proxy.refused > 0, "no second connection was tried"
        log = pg.log()[mark:]
        assert "reading on the river's connection, without reading ahead" in log, \
            "no log line says the copy reads on the river's connection"
    finally:
        proxy.gate = lambda conn: "pass"
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_second_connection_closed_before_its_first_batch(river_pg, mongo, proxy):
    pg, river = river_pg, "r28closefind"
    mark = log_mark(pg)
    coll = load(mongo, river, 5000)
    try:
        first = start_river(pg, proxy, river)
        proxy.policy = lambda conn, name, reply: "close" if conn.index >= first and name == "find" else "send"
        map_c(pg, river)
        wait_streaming(pg, river, 90)
        check_rows(pg, river, coll)
        assert "reading on the river's connection, without reading ahead" in pg.log()[mark:]
    finally:
        proxy.policy = lambda conn, name, reply: "send"
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_second_connection_closed_after_each_first_batch(river_pg, mongo, proxy):
    """Every reader connection gets its find's reply (one batch), then is closed at its first
    getMore: a copy must still end, with exactly the source's rows, in reasonable time."""
    pg, river = river_pg, "r28closemore"
    mark = log_mark(pg)
    coll = load(mongo, river, 6000)
    try:
        first = start_river(pg, proxy, river)
        proxy.policy = lambda conn, name, reply: ("close" if conn.index >= first and conn.reader
                                                  and name == "getMore" else "send")
        map_c(pg, river)
        started = time.monotonic()
        wait_streaming(pg, river, 100)
        took = time.monotonic() - started
        check_rows(pg, river, coll)
        print(f"{river}: copy took {took:.1f} s, {len(proxy.readers())} reader connections")
    finally:
        proxy.policy = lambda conn, name, reply: "send"
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_second_connection_silent_in_its_handshake_then_falls_back(river_pg, mongo, proxy):
    """A second connection whose handshake is never answered (connectTimeoutMS 2 s): the copy
    gives up on it and reads on the river's connection."""
    pg, river = river_pg, "r28stallhs"
    mark = log_mark(pg)
    coll = load(mongo, river, 3000)
    try:
        first = start_river(pg, proxy, river, "&connectTimeoutMS=2000")
        proxy.gate = lambda conn: "stall" if conn.index >= first else "pass"
        map_c(pg, river)
        wait_streaming(pg, river, 90)
        check_rows(pg, river, coll)
        assert "reading on the river's connection, without reading ahead" in pg.log()[mark:]
    finally:
        proxy.gate = lambda conn: "pass"
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_stop_and_terminate_while_the_second_connection_is_silent_in_its_handshake(river_pg, mongo, proxy):
    """The reader thread waits in the handshake of its connection (connectTimeoutMS 60 s):
    pg_terminate_backend and stop() end the worker within 2 s."""
    pg, river = river_pg, "r28stallstop"
    mark = log_mark(pg)
    load(mongo, river, 3000)
    try:
        # (mapped while the worker is stopped: map_collection's own look at the source must pass)
        start_river(pg, proxy, river, "&connectTimeoutMS=60000&socketTimeoutMS=60000")
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        map_c(pg, river)
        first = len(proxy.conns) + 1  # the worker's own connection, then its reader thread's
        proxy.gate = lambda conn: "stall" if conn.index >= first else "pass"
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_for(lambda: any(c.stalled and c.commands for c in proxy.conns[first:]), 30, 0.05,
                 "the reader thread's connection to wait")
        time.sleep(0.5)
        pid = worker_pid(pg, river)
        pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        took = time_until_gone(pid)
        assert took < LIMIT, f"pg_terminate_backend took {took:.2f} s"
        count = len(proxy.conns)
        pid2 = wait_for(lambda: (p := worker_pid(pg, river)) != pid and p, 30, 0.05, "a new worker")
        wait_for(lambda: any(c.stalled and c.commands for c in proxy.conns[count:]), 30, 0.05,
                 "the new reader thread's connection to wait")
        time.sleep(0.5)
        started = time.monotonic()
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        took_stop = time.monotonic() - started
        took = time_until_gone(pid2)
        assert took_stop < LIMIT, f"stop() took {took_stop:.2f} s"
    finally:
        proxy.gate = lambda conn: "pass"
        drop(pg, river)
    assert bad_lines(pg, mark) == []


def test_reader_threads_libmongoc_lines_reach_the_server_log(river_pg, mongo, proxy):
    """The reader connection's first getMore reply answers no request (responseTo changed): the
    reply check's libmongoc warning, made on the reader thread, must reach the server log; the copy
    then ends with exactly the source's rows."""
    pg, river = river_pg, "r28logline"
    mark = log_mark(pg)
    coll = load(mongo, river, 4000)
    broken = []

    def policy(conn, name, reply):
        if conn.reader and name == "getMore" and not broken:
            broken.append(conn.index)
            out = bytearray(reply)
            struct.pack_into("<i", out, 8, struct.unpack_from("<i", out, 8)[0] + 7777)
            return ("send", bytes(out))
        return "send"
    try:
        start_river(pg, proxy, river)
        proxy.policy = policy
        map_c(pg, river)
        wait_streaming(pg, river, 90)
        check_rows(pg, river, coll)
        assert broken, "no reader connection sent a getMore"
        log = pg.log()[mark:]
        lines = [line for line in log.splitlines() if "libmongoc" in line and "reply: connection closed" in line]
        assert lines, "the reader thread's libmongoc warning is not in the server log"
    finally:
        proxy.policy = lambda conn, name, reply: "send"
        drop(pg, river)
    assert bad_lines(pg, mark) == []
