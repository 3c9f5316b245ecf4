"""Review 20: a hello reply whose replica-set member lists hold a non-string must not kill a process.

README ("A malformed reply"): libmongoc 1.23 trusts what a source sends; "a damaged reply … made it
abort or read out of bounds, which restarted the whole PostgreSQL server", and every reply is now
checked before libmongoc reads it. The check is structural (plus compression and SCRAM counts): it
passes a well-formed hello whose `hosts` array holds a number. libmongoc's SDAM
(_mongoc_topology_description_add_new_servers) hands bson_iter_utf8() of every member, NULL for a
non-string, to mongoc_topology_description_add_server, which compares it with strcasecmp. A river
whose URI names a replica set (`replicaSet=rs0`, the usual URI) meets it at its first hello.
Promise: an error (08xxx), never a process terminated by a signal (a postmaster restart).
Malformed member strings ("", a 1000-character name, "[::1") crash it too (SIGSEGV after "Failed to
parse uri for …"). A member this host cannot resolve, or a list long enough that statement_timeout
fires while libmongoc adds it, deadlocks the backend in libmongoc (see the tests' docstrings).
"""

import json
import os
import re
import signal
import threading
import time

import psycopg2
import pytest

from evilproxy import EvilProxy
from pgcluster import wait_for
from hostile_lib import DocRewrite, MAPPING, admin_client, port_of, session
from river import create_river

DEATH = re.compile(r"terminated by signal|was terminated|reinitializing")


def members(field, value):
    def change(name, doc):
        if "maxWireVersion" in doc and "setName" in doc:
            address = doc.get("me")
            doc[field] = [address, value] if field == "hosts" else [value]
            if field != "hosts":
                doc["hosts"] = [address]
            return True
        return False
    return change


@pytest.mark.parametrize("field,value", [("hosts", 5), ("passives", None), ("arbiters", {"a": 1}),
                                         ("hosts", ""), ("hosts", "h" * 1000 + ":27017"), ("hosts", "[::1")],
                         ids=["hosts_int", "passives_null", "arbiters_doc", "hosts_empty_string",
                              "hosts_long_name", "hosts_open_bracket"])
def test_a_non_string_member_is_an_error_not_a_crash(river_pg, auth_source, field, value):
    pg, river = river_pg, f"r20m_{field}_{abs(hash(repr(value))) % 10000}"
    client = admin_client(auth_source)
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"d{i}", "n": i} for i in range(10)])
    rewrite = DocRewrite(members(field, value))
    proxy = EvilProxy(port_of(auth_source), rewrite)
    # The proxy forwards to the peer, whose hello names itself in hosts and me: keep them, so that the
    # topology is the proxied primary (the peer's own address is reachable too).
    uri = (f"mongodb://river:secret@127.0.0.1:{proxy.port}/?replicaSet=rs0&authSource=admin"
           "&socketTimeoutMS=4000&connectTimeoutMS=2000&serverSelectionTimeoutMS=3000")
    pg.scalar("SELECT 1")
    offset = os.path.getsize(pg.logfile)
    postmaster = pg.postmaster_pid()
    try:
        create_river(pg, river, uri, {"batch_size": 10})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river,
                                                                       json.dumps(MAPPING)))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        rewrite.on = True
        conn = session(pg)
        error = None
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT mongo_river.infer_mapping(%s, %s)", (river, f"{river}.c"))
        except psycopg2.Error as e:
            error = e
        finally:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        # A dead backend shows as a closed connection; its log line comes once the postmaster noticed.
        wait_for(lambda: pg.scalar("SELECT 1") == 1, 60, 0.2, "the server answering")

        def logged_deaths():
            with open(pg.logfile, errors="replace") as f:
                f.seek(offset)
                return [line for line in f.read().splitlines() if DEATH.search(line)]
        closed = error is not None and "closed the connection unexpectedly" in str(error)
        deaths = wait_for(logged_deaths, 10, 0.1, "the death's log line") if closed else logged_deaths()
        assert rewrite.fired, "no hello reply went through the proxy"
        assert not deaths, f"infer_mapping with hello {field} [.., {value!r}]: processes died: {deaths[:4]}; error {error}"
        assert pg.postmaster_pid() == postmaster
    finally:
        rewrite.on = False
        deadline = time.monotonic() + 60
        while True:  # after a crash the server restarts: drop once it answers again
            try:
                pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s",
                         (river, river))
                break
            except psycopg2.Error:
                if time.monotonic() > deadline:
                    raise
                pg.wait_ready(5)
        proxy.close()


def bounded_infer(pg, river, timeout, limit):
    """bounded_infer runs infer_mapping(river, river.c) with statement_timeout in a thread; if it has
    not returned after limit seconds its backend is killed (SIGKILL: a postmaster restart) so that
    the test ends. Returns (seconds taken, error or "hung")."""
    conn = session(pg, timeout)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT mongo_river.infer_mapping(%s, %s)", (river, f"{river}.c"))
            outcome["error"] = None
        except psycopg2.Error as e:
            outcome["error"] = e
        outcome["took"] = time.monotonic() - started
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        stack = ""
        try:
            stack = open(f"/proc/{pid}/wchan").read()
        except OSError:
            pass
        os.kill(pid, signal.SIGKILL)
        thread.join(30)
        wait_for(lambda: pg.scalar("SELECT 1") == 1, 60, 0.2, "the server back after the kill")
        return limit, f"hung (wchan {stack}); backend {pid} killed"
    conn.close()
    return outcome["took"], outcome["error"]


def river_listing(pg, auth_source, river, hosts):
    """river_listing creates river (stopped) on 10 documents through a proxy whose hello replies,
    once rewrite.on, list hosts(reply) as the replica set's members; returns (rewrite, proxy)."""
    client = admin_client(auth_source)
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"d{i}", "n": i} for i in range(10)])

    def list_hosts(name, doc):
        if "maxWireVersion" in doc and "setName" in doc:
            doc["hosts"] = hosts(doc)
            return True
        return False
    rewrite = DocRewrite(list_hosts)
    proxy = EvilProxy(port_of(auth_source), rewrite)
    uri = (f"mongodb://river:secret@127.0.0.1:{proxy.port}/?replicaSet=rs0&authSource=admin"
           "&socketTimeoutMS=4000&connectTimeoutMS=2000&serverSelectionTimeoutMS=3000")
    create_river(pg, river, uri, {"batch_size": 10})
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    return rewrite, proxy


def test_an_unresolvable_member_does_not_hang_a_backend(river_pg, auth_source):
    """A replica set whose hello names a member this host cannot resolve (internal names are common)
    must still be usable, or fail with an error; infer_mapping must never hang. libmongoc's
    mongoc_topology_reconcile sets up a scanner node for the new member while it holds the topology
    lock; with a custom stream initiator (stream_guard.cpp's Initiate) a failed setup calls
    _mongoc_topology_scanner_setup_err_cb, which takes the same lock: a self-deadlock (futex wait
    forever, deaf to statement_timeout, pg_cancel_backend and pg_terminate_backend)."""
    pg, river = river_pg, "r20m_unresolvable"
    rewrite, proxy = river_listing(pg, auth_source, river,
                                   lambda doc: [doc.get("me"), "no-such-member.invalid:27017"])
    try:
        rewrite.on = True
        took, error = bounded_infer(pg, river, "20s", 30)
        assert rewrite.fired, "no hello reply went through the proxy"
        assert not (isinstance(error, str) and error.startswith("hung")), f"infer_mapping {error}"
        assert took < 25, f"infer_mapping took {took:.1f} s: {error}"
    finally:
        rewrite.on = False
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        proxy.close()


def test_a_long_member_list_does_not_hold_a_backend(river_pg, auth_source):
    """README ("A silent source"): infer_mapping and verify answer statement_timeout promptly (57014)
    in every state, connecting included. A hello listing 30,000 members (1 MB, a well-formed reply)
    makes libmongoc's SDAM add them one by one, each after a linear search of those added
    (mongoc_topology_description_add_server): quadratic work in one call nothing interrupts."""
    pg, river = river_pg, "r20m_many"
    rewrite, proxy = river_listing(pg, auth_source, river, lambda doc: [doc.get("me")] + [
        f"10.{200 + i // 62500}.{i // 250 % 250}.{i % 250}:27017" for i in range(30000)])
    try:
        rewrite.on = True
        took, error = bounded_infer(pg, river, "2s", 30)
        assert rewrite.fired, "no hello reply went through the proxy"
        assert took < 5, f"statement_timeout 2 s answered after {took:.1f} s: {error}"
    finally:
        rewrite.on = False
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        proxy.close()

