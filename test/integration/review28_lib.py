"""review28_lib: helpers of the review 28 tests (a copy that reads ahead on a second connection).

ConnProxy is a message-aware TCP proxy like test/lib/evilproxy.py, but it knows each connection: a
gate decides at accept time what a new connection gets (pass, refuse: closed at once, stall: its
replies dropped), and the policy sees the connection with each reply, so a test can tell the copy
reader thread's connection (its first command after the handshake is the copy's `find`) from the
river's own and treat only that one badly."""

import os
import re
import signal
import socket
import struct
import threading
import time

import bson

from evilproxy import _shut, command_name, messages
from pgcluster import wait_for
from worker_memory import worker_pid  # noqa: F401  (the tests take it from here)

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                   "n": {"path": "n", "type": "bigint"},
                                   "v": {"path": "v", "type": "bigint"}}}

HANDSHAKE = {None, "q:isMaster", "q:ismaster", "hello", "isMaster", "ismaster", "saslStart", "saslContinue",
             "ping", "buildInfo", "getnonce", "endSessions"}


class Conn:
    """Conn is one proxied connection: its index (0 = first accepted), the commands sent on it, and
    whether it is a copy reader's (its first command after the handshake is a find)."""

    def __init__(self, index):
        self.index = index
        self.commands = []
        self.replies = 0
        self.closed = False
        self.stalled = False

    @property
    def first_command(self):
        for name in self.commands:
            if name not in HANDSHAKE:
                return name
        return None

    @property
    def reader(self):
        return self.first_command == "find"


def reply_body(reply):
    """reply_body returns an OP_MSG reply's body document (None when it cannot be read)."""
    try:
        if struct.unpack_from("<i", reply, 12)[0] != 2013:
            return None
        length = struct.unpack_from("<i", reply, 21)[0]
        return bson.decode(reply[21:21 + length])
    except Exception:
        return None


class ConnProxy:
    """ConnProxy listens on 127.0.0.1:self.port and forwards to upstream_port. gate(conn) -> "pass",
    "refuse" (closed at accept) or "stall" (requests go on, replies are dropped); policy(conn, name,
    reply) -> "send", "close" or "stall" (or ("send", bytes))."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.gate = lambda conn: "pass"
        self.policy = lambda conn, name, reply: "send"
        self.lock = threading.Lock()
        self.conns = []
        self.sockets = []
        self.refused = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def uri(self, options=""):
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true{options}"

    def close(self):
        for sock in [self.listener] + self.sockets:
            _shut(sock)
            try:
                sock.close()
            except OSError:
                pass

    def readers(self):
        with self.lock:
            return [c for c in self.conns if c.reader]

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                conn = Conn(len(self.conns))
                self.conns.append(conn)
            verdict = self.gate(conn)
            if verdict == "refuse":
                with self.lock:
                    self.refused += 1
                conn.closed = True
                _shut(client)
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            if verdict == "stall":
                conn.stalled = True
            with self.lock:
                self.sockets += [client, server]
            names = []
            cv = threading.Lock()
            threading.Thread(target=self._requests, args=(conn, client, server, names, cv), daemon=True).start()
            threading.Thread(target=self._replies, args=(conn, server, client, names, cv), daemon=True).start()

    def _requests(self, conn, src, dst, names, cv):
        for message in messages(src):
            name = command_name(message)
            flags = struct.unpack_from("<I", message, 16)[0] if len(message) >= 20 else 0
            with cv:
                conn.commands.append(name)
                if not flags & 2:
                    names.append(name)
            try:
                dst.sendall(message)
            except OSError:
                break
        _shut(src, dst)

    def _replies(self, conn, src, dst, names, cv):
        for reply in messages(src):
            with cv:
                name = names.pop(0) if names else None
            conn.replies += 1
            if conn.stalled:
                continue
            action = self.policy(conn, name, reply)
            try:
                if action == "send":
                    dst.sendall(reply)
                elif isinstance(action, tuple) and action[0] == "send":
                    dst.sendall(action[1])
                elif action == "close":
                    conn.closed = True
                    _shut(src, dst)
                    return
                elif action == "stall":
                    conn.stalled = True
            except OSError:
                break
        _shut(src, dst)


def source_port(mongo):
    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0]
    return int(host.rsplit(":", 1)[1])


def load(mongo, db, count, coll="c", size=0):
    """load drops db and inserts count documents {_id: dNNNNN, n, v: 0} (with a filler of size bytes)."""
    client = mongo.client()
    client.drop_database(db)
    docs = [{"_id": f"d{i:05d}", "n": i, "v": 0} for i in range(count)]
    if size:
        for d in docs:
            d["pad"] = "x" * size
    for i in range(0, count, 2000):
        client[db][coll].insert_many(docs[i:i + 2000])
    return client[db][coll]


def want_rows(coll):
    return {d["_id"]: (d["n"], d["v"]) for d in coll.find({}, {"pad": 0})}


def got_rows(pg, table):
    rows = pg.query(f'SELECT id, n, v FROM "{table}"')
    got = {r[0]: (r[1], r[2]) for r in rows}
    assert len(got) == len(rows), f"{table}: {len(rows)} rows for {len(got)} keys (duplicates)"
    return got


def diff(got, want):
    """diff describes how the table's rows differ from the source's documents ('' when equal)."""
    extra = sorted(got.keys() - want.keys())
    missing = sorted(want.keys() - got.keys())
    stale = sorted(k for k in got.keys() & want.keys() if got[k] != want[k])
    out = []
    if extra:
        out.append(f"{len(extra)} rows of documents that do not exist (deleted ones back?): {extra[:5]}")
    if missing:
        out.append(f"{len(missing)} documents missing: {missing[:5]}")
    if stale:
        out.append(f"{len(stale)} rows differ from their documents: "
                   f"{[(k, got[k], want[k]) for k in stale[:5]]}")
    return "; ".join(out)


def phases(pg, river):
    return {r[0]: r[1] for r in pg.query("SELECT source, phase FROM mongo_river.status WHERE river = %s", (river,))}


def wait_streaming(pg, river, timeout=120):
    wait_for(lambda: (p := phases(pg, river)) and all(v == "streaming" for v in p.values()), timeout, 0.1,
             f"every collection of {river} to stream: {phases(pg, river)}")


def gone(pid):
    """gone tells whether the process pid has exited (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] in "ZX"
    except OSError:
        return True


def time_until_gone(pid, limit=40):
    start = time.monotonic()
    wait_for(lambda: gone(pid), limit, 0.01, f"process {pid} to exit")
    return time.monotonic() - start


def threads(pid):
    """threads returns the ids of the threads of pid."""
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


BAD = re.compile(r"terminated by signal|server process .* was terminated|was terminated by exception"
                 r"|PANIC|TRAP:|Sanitizer|runtime error: ")


def bad_lines(pg, since=0, killed=()):
    """bad_lines lists server log lines (from character offset since) that tell of a crashed or
    killed process, but not of the pids in killed (the test killed them itself)."""
    out = []
    for line in pg.log()[since:].splitlines():
        if BAD.search(line) and not any(f"(PID {pid})" in line for pid in killed):
            out.append(line)
    return out


def log_mark(pg):
    return len(pg.log())


def set_setting(pg, name, value):
    pg.query(f"ALTER SYSTEM SET {name} = '{value}'")
    pg.query("SELECT pg_reload_conf()")
    wait_for(lambda: pg.scalar(f"SHOW {name}") == value, 30, 0.05, f"{name} = {value}")


def slow_table(pg, table, seconds, extra_columns=""):
    """slow_table creates table (id, n, v) with a statement trigger sleeping `seconds` after each
    INSERT statement: each copy batch then lasts that long."""
    pg.query(f'CREATE TABLE "{table}" (id text PRIMARY KEY, n bigint, v bigint{extra_columns})')
    pg.query(f"""CREATE OR REPLACE FUNCTION "{table}_slow"() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$""")
    pg.query(f'CREATE TRIGGER slow AFTER INSERT ON "{table}" FOR EACH STATEMENT EXECUTE FUNCTION "{table}_slow"()')


def kill(pid, sig=signal.SIGKILL):
    os.kill(pid, sig)
