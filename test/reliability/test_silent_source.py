"""Silent sources: a MongoDB that stops answering must never hold a worker or a backend hostage.

Three misbehaving sources: a fake server that accepts connections and never answers, one that drips
one byte every 2 s, and a TCP proxy in front of the real source that passes the handshake (and the
copy) and then stops passing the server's replies. In every state (connecting, copying, streaming)
pg_terminate_backend and stop() end the river's worker within 2 s, and a backend running verify,
infer_mapping, wait_for_sync, sync_once or map_database answers pg_cancel_backend and
statement_timeout within 2 s, with the usual SQLSTATE (57014), while the source's socket timeout
(30 s by default) has not passed. A worker waiting past 10 s for a reply shows it in the status.
Afterwards the server log has no process terminated by a signal and the postmaster never restarted."""

import socket
import struct
import threading
import time

import bson
import psycopg2
import pytest

from evilproxy import EvilProxy
from pgcluster import wait_for
from river import create_river, load_posts, map_posts, wait_synced

LIMIT = 2.0  # seconds a worker or backend may take to give up a silent source


class FakeServer(threading.Thread):
    """FakeServer accepts connections and reads what they send; mode 'silent' never writes, mode
    'drip' writes one byte every 2 s (the start of a reply header announcing a 1 MiB reply)."""

    def __init__(self, mode):
        super().__init__(daemon=True)
        self.mode = mode
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.received = 0  # bytes received on all connections
        self.closing = False

    def run(self):
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        payload = struct.pack("<iiii", 1 << 20, 1, 1, 1) + b"\0" * 64
        sent = 0
        conn.settimeout(2.0 if self.mode == "drip" else None)
        try:
            while not self.closing:
                try:
                    data = conn.recv(65536)
                    if not data:
                        return
                    self.received += len(data)
                except socket.timeout:
                    pass
                if self.mode == "drip" and self.received and sent < len(payload):
                    conn.sendall(payload[sent:sent + 1])
                    sent += 1
        except OSError:
            return
        finally:
            conn.close()

    def uri(self):
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def close(self):
        self.closing = True
        self.listener.close()


class StallProxy(EvilProxy):
    """StallProxy forwards connections to the source. Once a connection sends a command named in
    `stall`, the proxy passes nothing more on it (its replies are read and dropped): the source
    seems alive but silent. `stalled` counts the connections stalled so far, `stalled_commands`
    names the commands they stalled on."""

    def __init__(self, upstream_port):
        super().__init__(upstream_port, self._policy)
        self.stall = set()
        self.stalled = 0
        self.stalled_commands = []

    def _policy(self, name, reply):
        if name not in self.stall:
            return [("send", reply)]
        with self.lock:
            self.stalled += 1
            self.stalled_commands.append(name)
        return [("stall",)]

    def start(self):
        pass  # (EvilProxy listens from the start)


@pytest.fixture(scope="module")
def silent_pg(river_pg, mongo):
    """silent_pg is the cluster; afterwards the postmaster must be the same process and the log must
    show no process terminated by a signal (nor a restart)."""
    if not mongo.is_peer and "directConnection" not in mongo.uri:
        pass  # the proxy connects directly to the first host of a real source as well
    postmaster = river_pg.postmaster_pid()
    yield river_pg
    log = river_pg.log()
    assert "terminated by signal" not in log, [line for line in log.splitlines() if "terminated by signal" in line]
    assert "reinitializing" not in log
    assert river_pg.postmaster_pid() == postmaster, "the postmaster restarted"


def source_port(mongo):
    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0]
    return int(host.rsplit(":", 1)[1])


def worker_pid(pg, river):
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", ("mongo_river " + river,))


def gone(pg, pid):
    return not pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))


def time_until_gone(pg, pid, limit=40):
    """time_until_gone returns how long the process pid took to exit (fails after limit seconds)."""
    start = time.monotonic()
    wait_for(lambda: gone(pg, pid), limit, 0.02, f"process {pid} to exit")
    return time.monotonic() - start


def terminate_and_stop(pg, river, stuck):
    """terminate_and_stop: pg_terminate_backend of the river's worker, then stop(), each while the
    worker is stuck (stuck() says so) must end it within LIMIT seconds."""
    pid = wait_for(lambda: worker_pid(pg, river), 30, 0.05, f"the worker of {river}")
    wait_for(stuck, 30, 0.05, f"the worker of {river} to wait on the source")
    time.sleep(0.3)
    pg.query("SELECT pg_terminate_backend(%s)", (pid,))
    took = time_until_gone(pg, pid)
    print(f"{river}: pg_terminate_backend ended the worker in {took:.2f} s")
    assert took < LIMIT, f"pg_terminate_backend took {took:.1f} s"
    # The launcher starts the worker again (the river is enabled); stop() must end that one too.
    pid = wait_for(lambda: (p := worker_pid(pg, river)) != pid and p, 30, 0.05, f"a new worker of {river}")
    wait_for(stuck, 30, 0.05, f"the new worker of {river} to wait on the source")
    time.sleep(0.3)
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    took = time_until_gone(pg, pid)
    print(f"{river}: stop() ended the worker in {took:.2f} s")
    assert took < LIMIT, f"stop() took {took:.1f} s"


@pytest.mark.parametrize("mode", ["silent", "drip"])
def test_worker_connecting_to_a_silent_server(silent_pg, mode):
    pg = silent_pg
    server = FakeServer(mode)
    server.start()
    river = f"connect_{mode}"
    try:
        create_river(pg, river, server.uri())
        pg.query("SELECT mongo_river.map_collection(%s, 'x.y', %s, %s::jsonb)",
                 (river, river, '{"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}}'))
        seen = [0]

        def stuck():
            # A new connection (or a new handshake) reached the server since the last check.
            if server.received > seen[0]:
                seen[0] = server.received
                return True
            return False
        terminate_and_stop(pg, river, stuck)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        server.close()


@pytest.fixture(scope="module")
def proxied(silent_pg, mongo):
    proxy = StallProxy(source_port(mongo))
    proxy.start()
    yield silent_pg, mongo, proxy
    proxy.close()


def stalled_since(proxy):
    """stalled_since returns a condition that is true once per new stalled connection counted since
    stalled_since was called: take it before the worker can stall (a stall that happened before the
    baseline would never be seen), and each later wait needs a stall of its own."""
    seen = [proxy.stalled]

    def stuck():
        if proxy.stalled > seen[0]:
            seen[0] = proxy.stalled
            return True
        return False
    return stuck


def test_worker_copying_from_a_source_gone_silent(proxied):
    pg, mongo, proxy = proxied
    river = "silent_copy"
    client = mongo.client()
    client.drop_database(river)
    load_posts(client[river].posts, 3000, seed=3)
    proxy.stall = {"find"}
    stuck = stalled_since(proxy)
    try:
        create_river(pg, river, proxy.uri(), {"batch_size": 100})
        map_posts(pg, river, f"{river}.posts", river)
        terminate_and_stop(pg, river, stuck)
        assert "find" in proxy.stalled_commands
    finally:
        proxy.stall = set()
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


class CopyGetMoreStall:
    """A proxy policy: the replies to the copy's getMores on ns pass until `after` of them have, then
    the connection stalls (the copy's reader thread, reading ahead, waits on it)."""

    def __init__(self, proxy, ns, after):
        self.proxy, self.ns, self.after, self.passed = proxy, ns, after, 0

    def __call__(self, name, reply):
        if name == "getMore" and reply_cursor_ns(reply) == self.ns:
            if self.passed >= self.after:
                with self.proxy.lock:
                    self.proxy.stalled += 1
                    self.proxy.stalled_commands.append(name)
                return [("stall",)]
            self.passed += 1
        return [("send", reply)]


def reply_cursor_ns(reply):
    """reply_cursor_ns returns the cursor.ns of an OP_MSG reply (None if it has none)."""
    try:
        length = struct.unpack_from("<i", reply, 21)[0]
        return (bson.decode(reply[21:21 + length]).get("cursor") or {}).get("ns")
    except Exception:
        return None


def test_worker_copy_reading_ahead_from_a_source_gone_silent(proxied):
    """The copy's reader thread reads the next batch while the worker writes the last one; the source
    stops answering its getMores after the copy's first batches. The worker then waits for the
    thread: after 10 s the status shows the silence, and pg_terminate_backend and stop() end it
    within 2 s (the thread's read gives up with it)."""
    pg, mongo, proxy = proxied
    river = "silent_ahead"
    client = mongo.client()
    client.drop_database(river)
    load_posts(client[river].posts, 3000, seed=6)
    policy = CopyGetMoreStall(proxy, f"{river}.posts", 12)
    proxy.policy = policy
    try:
        create_river(pg, river, proxy.uri(), {"batch_size": 100})
        stuck = stalled_since(proxy)
        map_posts(pg, river, f"{river}.posts", river)
        wait_for(stuck, 60, 0.05, "the copy's getMore to stall")
        assert pg.scalar("SELECT count(*) FROM silent_ahead") > 0, "no batch was copied before the stall"
        error = wait_for(lambda: pg.scalar(
            "SELECT last_error FROM mongo_river.status WHERE river = %s AND phase = 'retrying' "
            "AND last_error LIKE '%%no reply from the source%%'", (river,)), 20, 0.1,
            "the status to show the silent source")
        print(f"{river}: the status says {error!r}")
        assert "(reading ahead on a thread)" in pg.log()
        pid = worker_pid(pg, river)
        pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        took = time_until_gone(pg, pid)
        print(f"{river}: pg_terminate_backend ended the worker in {took:.2f} s")
        assert took < LIMIT, f"pg_terminate_backend took {took:.1f} s"
        # The new worker's copy stalls again (the policy stalls every later getMore of the copy).
        stuck = stalled_since(proxy)
        pid = wait_for(lambda: (p := worker_pid(pg, river)) != pid and p, 30, 0.05, f"a new worker of {river}")
        wait_for(stuck, 30, 0.05, "the new worker's copy to stall")
        time.sleep(0.3)
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        took = time_until_gone(pg, pid)
        print(f"{river}: stop() ended the worker in {took:.2f} s")
        assert took < LIMIT, f"stop() took {took:.1f} s"
    finally:
        proxy.policy = proxy._policy
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_worker_streaming_from_a_source_gone_silent(proxied):
    pg, mongo, proxy = proxied
    river = "silent_stream"
    client = mongo.client()
    client.drop_database(river)
    load_posts(client[river].posts, 200, seed=4)
    try:
        create_river(pg, river, proxy.uri())
        map_posts(pg, river, f"{river}.posts", river)
        wait_synced(pg, river, 60)
        proxy.stall = {"getMore"}
        # The status shows the wait once the source has been silent for 10 s.
        stalled = wait_for(stalled_since(proxy), 30, 0.05, "a stalled getMore")
        assert stalled
        start = time.monotonic()
        error = wait_for(lambda: pg.scalar(
            "SELECT last_error FROM mongo_river.status WHERE river = %s AND phase = 'retrying' "
            "AND last_error LIKE '%%no reply from the source%%'", (river,)), 20, 0.1,
            "the status to show the silent source")
        print(f"{river}: after {time.monotonic() - start:.1f} s the status says {error!r}")
        proxy.stall = set()
        # The worker gives up at the socket timeout (30 s), reconnects and streams again.
        client[river].posts.insert_one({"_id": "after-silence", "title": "t"})
        wait_for(lambda: pg.scalar(f"SELECT count(*) FROM {river} WHERE id = 'after-silence'"), 60, 0.2,
                 "the river to stream again after the silence")
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,))
                 == "streaming", 30, 0.1, "phase streaming again")
        stuck = stalled_since(proxy)
        proxy.stall = {"getMore"}
        terminate_and_stop(pg, river, stuck)
    finally:
        proxy.stall = set()
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.fixture(scope="module")
def stopped_river(proxied):
    """stopped_river: a river through the proxy with one mapped, copied collection, then stopped
    (sync_once needs a stopped river; the backends' calls are then alone on the proxy)."""
    pg, mongo, proxy = proxied
    river = "silent_sql"
    client = mongo.client()
    client.drop_database(river)
    load_posts(client[river].posts, 300, seed=5)
    create_river(pg, river, proxy.uri())
    map_posts(pg, river, f"{river}.posts", river)
    wait_synced(pg, river, 60)
    pid = worker_pid(pg, river)
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    if pid:
        wait_for(lambda: gone(pg, pid), 30, 0.05, "the worker to exit")
    client[river].posts.insert_one({"_id": "pending", "title": "x"})
    yield pg, mongo, proxy, river
    proxy.stall = set()
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


CALLS = {
    "verify": "SELECT count(*) FROM mongo_river.verify('silent_sql')",
    "infer_mapping": "SELECT mongo_river.infer_mapping('silent_sql', 'silent_sql.posts')",
    "wait_for_sync": "SELECT mongo_river.wait_for_sync('silent_sql', '1 min')",
    "sync_once": "CALL mongo_river.sync_once('silent_sql', '1 min')",
    "map_database": "SELECT mongo_river.map_database('silent_sql', 'silent_sql_db')",
}
ALL_COMMANDS = {"hello", "isMaster", "ismaster", "find", "aggregate", "getMore", "listCollections",
                "listDatabases", "count", "ping"}


def run_stuck_call(pg, proxy, sql, interrupt):
    """run_stuck_call runs sql in its own session while the proxy stalls every command, interrupts it
    (interrupt: 'cancel' = pg_cancel_backend once it waits on the source, 'timeout' = a 1 s
    statement_timeout) and returns (seconds from the interrupt to the error, the error)."""
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        if interrupt == "timeout":
            cur.execute("SET statement_timeout = '1s'")
    outcome = {}

    def call():
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            outcome["error"] = None
        except psycopg2.Error as e:
            outcome["error"] = e
        outcome["started"] = started
        outcome["ended"] = time.monotonic()

    proxy.stall = set(ALL_COMMANDS)
    before = proxy.stalled
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    try:
        wait_for(lambda: proxy.stalled > before or not thread.is_alive(), 30, 0.02, "the call to reach the source")
        if interrupt == "cancel":
            time.sleep(0.3)
            interrupted = time.monotonic()
            pg.query("SELECT pg_cancel_backend(%s)", (pid,))
        thread.join(40)
        assert not thread.is_alive(), "the call never returned"
        if interrupt == "timeout":
            interrupted = outcome["started"] + 1.0
        return outcome["ended"] - interrupted, outcome["error"]
    finally:
        proxy.stall = set()
        conn.close()


@pytest.mark.parametrize("interrupt", ["cancel", "timeout"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_backend_call_on_a_silent_source_answers_interrupts(stopped_river, name, interrupt):
    pg, mongo, proxy, river = stopped_river
    took, error = run_stuck_call(pg, proxy, CALLS[name], interrupt)
    print(f"{name}: {interrupt} answered in {took:.2f} s: {error}")
    assert error is not None, f"{name} returned instead of being interrupted"
    assert error.pgcode == "57014", f"{name}: {error.pgcode} {error}"
    assert took < LIMIT, f"{name} took {took:.1f} s to answer {interrupt}"


def test_backend_on_a_server_silent_from_the_first_byte(silent_pg):
    pg = silent_pg
    server = FakeServer("silent")
    server.start()
    river = "silent_first_byte"
    try:
        create_river(pg, river, server.uri())
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '1s'")
            start = time.monotonic()
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT mongo_river.infer_mapping(%s, 'x.y')", (river,))
            took = time.monotonic() - start
        conn.close()
        print(f"infer_mapping on a silent server: {raised.value.pgcode} after {took:.2f} s")
        assert raised.value.pgcode == "57014"
        assert took < 1.0 + LIMIT
    finally:
        pg.query("SELECT mongo_river.drop_river(%s)", (river,))
        server.close()
