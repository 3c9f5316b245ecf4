"""Source faults: MongoDB's failCommand fail point on the source (errors on find, getMore and
aggregate; closeConnection; blockConnection), the source restarting (peer only: --dbpath, stopped
and started again on the same port), an unreachable host and a wrong password (peer only: --auth).

In each case the river shows the problem in mongo_river.status (phase 'retrying', last_error),
retries with a capped backoff (0.5 s doubling to 30 s, read from the server log's "retrying in N ms"
lines) and, once the fault is gone, converges: river.compare finds PostgreSQL equal to MongoDB,
without duplicates, and the status is healthy again. Fail points only hit the river's connections
(appName "mongo_river"), so the tests' own writers keep writing through the faults.

Sizes: RELIABILITY_DOCS (default 2000) documents per collection. Randomised writers print their seed
(RELIABILITY_SEED replays it)."""

import os
import re
import shutil
import sys
import tempfile
import time

import pytest

from figures import seed_for
from mongo_source import PEER_DIR, MongoSource
from pgcluster import free_port, wait_for
from river import Writer, compare, create_river, load_posts, map_posts, wait_synced

DOCS = int(os.environ.get("RELIABILITY_DOCS", "2000"))
APP = "mongo_river"  # the appName the extension's connections announce


def river_status(pg, river):
    """river_status: {source: (phase, last_error)} of a river."""
    return {r[0]: (r[1], r[2]) for r in pg.query(
        "SELECT source, phase, last_error FROM mongo_river.status WHERE river = %s", (river,))}


def retrying(pg, river):
    """retrying returns the last_error of a river in phase 'retrying' (None while it is not)."""
    st = river_status(pg, river)
    for phase, error in st.values():
        if phase == "retrying" and error:
            return error
    return None


def backoffs(pg, river):
    """backoffs: the river's successive retry delays (ms), from the server log."""
    pattern = re.compile(r'mongo_river: river "' + re.escape(river) + r'": .*; retrying in (\d+) ms')
    return [int(m.group(1)) for m in pattern.finditer(pg.log())]


def check_backoff(delays):
    """check_backoff: every delay is 0.5 s after a success or twice the previous one, capped at 30 s."""
    for prev, cur in zip(delays, delays[1:]):
        assert cur in (500, min(prev * 2, 30000)), f"backoff {prev} ms then {cur} ms: {delays}"
    assert all(500 <= d <= 30000 for d in delays), delays


def fail_point(client, mode, **data):
    """fail_point configures failCommand on the source for the river's connections only."""
    if mode == "off":
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        return
    client.admin.command({"configureFailPoint": "failCommand", "mode": mode,
                          "data": {"appName": APP, **data}})


def converged(pg, river, table, coll, figures, timeout=120):
    """converged waits until the river caught up, then compares; records the figures. (That the
    status is healthy again is test_status_is_healthy_again_after_a_fault's business.)"""
    wait_synced(pg, river, timeout)
    problems = compare(pg, table, coll)
    figures(lost=sum(1 for p in problems if p.startswith("missing")),
            duplicates=sum(1 for p in problems if p.startswith("duplicate")))
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(scope="module")
def fault_mongo(mongo):
    """fault_mongo is the module's source; skips when failCommand is not available (a real mongod
    without enableTestCommands)."""
    client = mongo.client()
    try:
        fail_point(client, "off")
    except Exception as e:  # noqa: BLE001 - reported in the skip
        pytest.skip(f"the source does not take configureFailPoint failCommand (mongod needs "
                    f"--setParameter enableTestCommands=1): {e}")
    yield mongo
    fail_point(client, "off")


def start_river(pg, mongo, name, docs=DOCS, options=None, uri=None):
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].posts
    load_posts(coll, docs, seed=len(name))
    create_river(pg, name, uri or mongo.uri, {"batch_size": 200, **(options or {})})
    return client, coll


def writer_for(coll, name):
    seed = seed_for(name)
    w = Writer(coll, seed, first_new_id=10**6, pause=0.002)
    w.next_id = 10**6
    return w


@pytest.fixture(scope="module")
def capped_river(river_pg):
    """A river whose source never answers, created first: by the module's last test its backoff has
    had time to reach the cap."""
    pg = river_pg
    dead = f"mongodb://127.0.0.1:{free_port()}/?replicaSet=rs0&serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    create_river(pg, "capped", dead)
    pg.query("SELECT mongo_river.map_collection('capped', 'capped.c', 'capped_c', "
             "'{\"pk\": \"id\", \"columns\": {\"id\": {\"path\": \"_id\", \"type\": \"text\"}}}')")
    return time.monotonic()


@pytest.mark.parametrize("command,code", [("find", 91), ("find", 2), ("find", 11600)])
def test_command_errors_during_the_copy(river_pg, fault_mongo, capped_river, command, code, figures):
    pg, mongo = river_pg, fault_mongo
    name = f"copyfault_{command.lower()}_{code}"
    client, coll = start_river(pg, mongo, name)
    fail_point(client, "alwaysOn", failCommands=[command], errorCode=code)
    figures(faults=1)
    writer = writer_for(coll, name)
    writer.start()
    try:
        map_posts(pg, name, f"{name}.posts", name)
        error = wait_for(lambda: retrying(pg, name), 60, 0.1, f"phase retrying under {command} errors")
        assert str(code) in error or command in error, f"last_error names neither the command nor the code: {error}"
        wait_for(lambda: len(backoffs(pg, name)) >= 3, 30, 0.1, "three retries")
        fail_point(client, "off")
        wait_for(lambda: pg.scalar(f"SELECT count(*) FROM {name}") >= DOCS // 2, 60, 0.1, "the copy to go on")
    finally:
        fail_point(client, "off")
        changes = writer.stop()
    print(f"{name}: last_error {error!r}; backoffs {backoffs(pg, name)}; {changes} concurrent changes")
    check_backoff(backoffs(pg, name))
    converged(pg, name, name, coll, figures)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))


@pytest.mark.parametrize("capture,commands,code", [
    ("change_stream", ["aggregate", "getMore"], 6), ("oplog", ["aggregate", "getMore"], 6),
    ("oplog", ["getMore", "find"], 91), ("oplog", ["getMore"], 11600)])
def test_command_errors_while_streaming(river_pg, fault_mongo, capped_river, capture, commands, code, figures):
    pg, mongo = river_pg, fault_mongo
    name = f"streamfault_{capture}_{'_'.join(c.lower() for c in commands)}"
    client, coll = start_river(pg, mongo, name, docs=DOCS // 4, options={"capture": capture})
    map_posts(pg, name, f"{name}.posts", name)
    wait_synced(pg, name)
    writer = writer_for(coll, name)
    writer.start()
    try:
        fail_point(client, "alwaysOn", failCommands=commands, errorCode=code)
        figures(faults=1)
        error = wait_for(lambda: retrying(pg, name), 60, 0.1, f"phase retrying under {commands} errors")
        wait_for(lambda: len(backoffs(pg, name)) >= 3, 30, 0.1, "three retries")
        fail_point(client, "off")
    finally:
        fail_point(client, "off")
        changes = writer.stop()
    print(f"{name}: last_error {error!r}; backoffs {backoffs(pg, name)}; {changes} concurrent changes")
    check_backoff(backoffs(pg, name))
    converged(pg, name, name, coll, figures)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))


@pytest.mark.parametrize("commands", [["find"], ["aggregate", "getMore"]])
def test_connections_closed(river_pg, fault_mongo, capped_river, commands, figures):
    """closeConnection: the source drops the socket without replying, a few times, then always."""
    pg, mongo = river_pg, fault_mongo
    name = "closed_" + "_".join(c.lower() for c in commands)
    client, coll = start_river(pg, mongo, name, docs=DOCS // 2)
    writer = writer_for(coll, name)
    writer.start()
    try:
        fail_point(client, {"times": 3}, failCommands=commands, closeConnection=True)
        if commands == ["find"]:  # the copy's reads: before the mapping
            fail_point(client, "alwaysOn", failCommands=commands, closeConnection=True)
            map_posts(pg, name, f"{name}.posts", name)
            error = wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying with connections closed")
        else:
            map_posts(pg, name, f"{name}.posts", name)
            wait_synced(pg, name, 120)  # the copy finished through transient closed connections
            fail_point(client, "alwaysOn", failCommands=commands, closeConnection=True)
            error = wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying with connections closed")
        figures(faults=2)
        fail_point(client, "off")
    finally:
        fail_point(client, "off")
        changes = writer.stop()
    print(f"{name}: last_error {error!r}; backoffs {backoffs(pg, name)}; {changes} concurrent changes")
    check_backoff(backoffs(pg, name))
    converged(pg, name, name, coll, figures)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))


def test_blocked_connections(river_pg, fault_mongo, capped_river, figures):
    """blockConnection: commands held for 3 s on a river whose socketTimeoutMS is 1.5 s time out (then
    retrying); held for 0.3 s, the river is slow but correct."""
    pg, mongo = river_pg, fault_mongo
    name = "blocked"
    sep = "&" if "?" in mongo.uri else "?"
    client, coll = start_river(pg, mongo, name, docs=DOCS // 2,
                               uri=mongo.uri + sep + "socketTimeoutMS=1500")
    writer = writer_for(coll, name)
    writer.start()
    try:
        fail_point(client, {"times": 20}, failCommands=["find", "getMore", "aggregate"], blockConnection=True,
                   blockTimeMS=300)
        map_posts(pg, name, f"{name}.posts", name)
        wait_synced(pg, name, 120)  # the copy finished through slow commands
        fail_point(client, "alwaysOn", failCommands=["getMore", "aggregate", "find"], blockConnection=True,
                   blockTimeMS=3000)
        figures(faults=2)
        error = wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying with commands blocked")
        fail_point(client, "off")
    finally:
        fail_point(client, "off")
        changes = writer.stop()
    print(f"{name}: last_error {error!r}; backoffs {backoffs(pg, name)}; {changes} concurrent changes")
    check_backoff(backoffs(pg, name))
    converged(pg, name, name, coll, figures)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))


def test_unreachable_host_then_alter_river(river_pg, fault_mongo, capped_river, figures):
    pg, mongo = river_pg, fault_mongo
    name = "unreachable"
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].posts
    load_posts(coll, DOCS // 2, seed=5)
    dead = f"mongodb://127.0.0.1:{free_port()}/?replicaSet=rs0&serverSelectionTimeoutMS=500"
    create_river(pg, name, dead)
    map_posts(pg, name, f"{name}.posts", name)
    figures(faults=1)
    error = wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying with an unreachable host")
    wait_for(lambda: len(backoffs(pg, name)) >= 4, 30, 0.1, "four retries")
    delays = backoffs(pg, name)
    assert delays[:4] == [500, 1000, 2000, 4000], delays
    assert pg.scalar("SELECT count(*) FROM unreachable") == 0
    print(f"{name}: last_error {error!r}; backoffs {delays}")
    pg.query("SELECT mongo_river.alter_river(%s, %s)", (name, mongo.uri))
    converged(pg, name, name, coll, figures, timeout=90)
    check_backoff(backoffs(pg, name))
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))


def own_peer(args):
    """own_peer starts a peer of this test's own (with peer-only switches): (MongoSource, port)."""
    sys.path.insert(0, PEER_DIR)
    from peer_process import start_peer
    process, port = start_peer(extra_args=tuple(args))
    return process, port


def stop_own_peer(process):
    sys.path.insert(0, PEER_DIR)
    from peer_process import stop_peer
    return stop_peer(process)


def test_source_restarts(river_pg, mongo, capped_river, figures):
    """The peer stopped (SIGTERM: it saves its data to --dbpath) while the river streams, then started
    again on the same port, twice: retrying while it is down, then converged."""
    if not mongo.is_peer:
        pytest.skip("restarting the source needs the MongoDB peer (--dbpath); MONGO_URI is a real server")
    pg = river_pg
    dbpath = tempfile.mkdtemp(prefix="mongo_river_peer_db_")
    port = free_port()
    process, _ = own_peer(["--dbpath", dbpath, "--port", str(port)])
    try:
        source = MongoSource(f"mongodb://127.0.0.1:{port}/?replicaSet=rs0", process, is_peer=True)
        name = "restarts"
        client = source.client()
        coll = client[name].posts
        load_posts(coll, DOCS // 2, seed=6)
        create_river(pg, name, source.uri, {"batch_size": 200})
        map_posts(pg, name, f"{name}.posts", name)
        wait_synced(pg, name)
        for round_no in range(2):
            writer = writer_for(coll, f"{name}[{round_no}]")
            writer.next_id = 10**6 + round_no * 10**5
            writer.start()
            time.sleep(0.3)  # writes in flight while the source goes away (not a synchronisation)
            changes = writer.stop()
            client.close()
            assert stop_own_peer(process) == 0
            figures(faults=1)
            error = wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying while the source is down")
            print(f"round {round_no}: {changes} changes before the stop; last_error {error!r}")
            process, _ = own_peer(["--dbpath", dbpath, "--port", str(port)])
            client = source.client()
            coll = client[name].posts
            converged(pg, name, name, coll, figures, timeout=90)
        check_backoff(backoffs(pg, name))
        pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
        client.close()
    finally:
        stop_own_peer(process)
        shutil.rmtree(dbpath, ignore_errors=True)


def test_wrong_password(river_pg, mongo, capped_river, figures):
    """A peer with --auth: a wrong password gives phase retrying with an authentication error (and no
    password anywhere); alter_river with the right one converges."""
    if not mongo.is_peer:
        pytest.skip("a source with a known user needs the MongoDB peer (--auth); MONGO_URI is a real server")
    pg = river_pg
    process, port = own_peer(["--auth", "river:Right-Pass-1"])
    try:
        good = f"mongodb://river:Right-Pass-1@127.0.0.1:{port}/?replicaSet=rs0&authSource=admin"
        bad = f"mongodb://river:Wrong-Pass-2@127.0.0.1:{port}/?replicaSet=rs0&authSource=admin"
        source = MongoSource(good, None, is_peer=True)
        client = source.client()
        name = "password"
        coll = client[name].posts
        load_posts(coll, DOCS // 4, seed=7)
        create_river(pg, name, bad)
        map_posts(pg, name, f"{name}.posts", name)
        figures(faults=1)
        error = wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying with a wrong password")
        print(f"{name}: last_error {error!r}")
        assert re.search(r"auth", error, re.I), f"last_error does not say authentication failed: {error}"
        wait_for(lambda: len(backoffs(pg, name)) >= 2, 30, 0.1, "two retries")
        pg.query("SELECT mongo_river.alter_river(%s, %s)", (name, good))
        converged(pg, name, name, coll, figures, timeout=90)
        log = pg.log()
        for secret in ("Wrong-Pass-2", "Right-Pass-1"):
            leaked = [line for line in log.splitlines() if secret in line and "STATEMENT" not in line
                      and "statement:" not in line]
            assert not leaked, f"a password in the server log: {leaked[:3]}"
        assert pg.scalar("SELECT uri FROM mongo_river.rivers WHERE river = %s", (name,)).count("****") == 1
        pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
        client.close()
    finally:
        stop_own_peer(process)


def test_backoff_is_capped_at_30_seconds(river_pg, capped_river, figures):
    """The river created first, whose source never answers: its delays double from 0.5 s and stay at
    30 s (16 s, then 30 s, never 32 s). Waits until the cap is reached (about 35 s after creation)."""
    pg = river_pg
    figures(faults=1)
    wait_for(lambda: 30000 in backoffs(pg, "capped"), max(5.0, 60 - (time.monotonic() - capped_river)), 0.5,
             "the backoff to reach 30 s")
    delays = backoffs(pg, "capped")
    print(f"capped: backoffs {delays}")
    assert delays[:7] == [500, 1000, 2000, 4000, 8000, 16000, 30000], delays
    check_backoff(delays)
    assert retrying(pg, "capped")
    pg.query("SELECT mongo_river.drop_river('capped', true)")



def test_status_is_healthy_again_after_a_fault(river_pg, fault_mongo, capped_river, figures):
    pg, mongo = river_pg, fault_mongo
    name = "healthy_again"
    client, coll = start_river(pg, mongo, name, docs=DOCS // 4)
    map_posts(pg, name, f"{name}.posts", name)
    wait_synced(pg, name)
    fail_point(client, "alwaysOn", failCommands=["getMore", "aggregate"], errorCode=91)
    figures(faults=1)
    try:
        wait_for(lambda: retrying(pg, name), 60, 0.1, "phase retrying")
    finally:
        fail_point(client, "off")
    coll.insert_one({"_id": "after the fault", "title": "x"})
    wait_synced(pg, name)
    assert pg.scalar(f"SELECT count(*) FROM {name} WHERE id = 'after the fault'") == 1
    try:
        wait_for(lambda: river_status(pg, name) == {f"{name}.posts": ("streaming", None)}, 15, 0.2,
                 "the status to be healthy again")
    finally:
        print(f"{name}: status after recovery {river_status(pg, name)}")
        pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))


@pytest.mark.parametrize("fault", ["error_11600", "close_connection"])
def test_persistent_getmore_faults_of_a_change_stream_are_shown_or_absorbed(river_pg, fault_mongo, capped_river,
                                                                             fault, figures):
    """getMore failing always on a change stream: libmongoc resumes the stream by itself (a new
    aggregate), so the river may absorb the fault; but then it must keep applying every change.
    Either the status shows the fault (retrying) or a burst of 500 inserts arrives whole. (libmongoc's
    own change stream helper resumes without bound inside one read; the river's reader runs its own
    aggregate/getMore cursor, resumes once and then reports the fault.)"""
    pg, mongo = river_pg, fault_mongo
    name = f"getmore_{fault}"
    client, coll = start_river(pg, mongo, name, docs=200)
    map_posts(pg, name, f"{name}.posts", name)
    wait_synced(pg, name)
    data = {"errorCode": 11600} if fault == "error_11600" else {"closeConnection": True}
    fail_point(client, "alwaysOn", failCommands=["getMore"], **data)
    figures(faults=1)
    try:
        coll.insert_many([{"_id": f"burst{i:04d}", "title": "burst"} for i in range(500)])

        def shown_or_applied():
            if retrying(pg, name):
                return "shown: " + retrying(pg, name)
            if pg.scalar(f"SELECT count(*) FROM {name} WHERE title = 'burst'") == 500:
                return "absorbed: all applied"
            return None

        try:
            outcome = wait_for(shown_or_applied, 60, 0.2, "the fault to be shown or the burst applied")
        finally:
            print(f"{name}: {pg.scalar(f'SELECT count(*) FROM {name} WHERE title = %s', ('burst',))} of 500 "
                  f"applied; status {pg.query('SELECT phase, lag, last_error FROM mongo_river.status WHERE river = %s', (name,))}")
        print(f"{name}: {outcome}")
    finally:
        fail_point(client, "off")
    wait_synced(pg, name)
    assert not compare(pg, name, coll)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
