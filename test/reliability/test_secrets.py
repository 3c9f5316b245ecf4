"""Secrets: credentials stay with their owner and never crash the host.

Against the MongoDB peer with --auth (a real server cannot be given a known user by the tests, so
this module skips visibly with MONGO_URI):
- a URI whose auth mechanism needs a password and has none is refused by create_river/alter_river
  (it used to crash libmongoc's SCRAM step in the worker and in infer_mapping: a cluster restart
  loop); one already in the catalog makes its river fail visibly, never crash;
- unknown URI options are refused; a river that already has them keeps running, with one WARNING;
- password_file really works (superuser only) and so does a foreign server + user mapping;
- every attack of the secrets issue as a second admin (bob) or a plain role (carol) fails with
  42501 (or the function's own refusal) and changes nothing.

Every test also checks that the postmaster did not restart (its pid is unchanged) and that the log
has no "terminated by signal"."""

import json
import os
import re
import select

import psycopg2
import pytest

from mongo_source import MongoSource
from pgcluster import wait_for
from river import wait_synced

PASSWORD = "Sup3r-Secret-9"
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"},
                                   "ssn": {"path": "ssn", "type": "int"}}}
CATALOG = ["river", "collection_map", "mapped_table", "database_map", "rejects"]


def ok(result):
    assert result[0] is None, result
    return result[1]


def as_role(pg, role, sql, params=None):
    """as_role runs sql in a login session of role: (None, rows) or (sqlstate, message)."""
    try:
        return None, pg.query(sql, params, user=role)
    except psycopg2.Error as e:
        return e.pgcode, (e.pgerror or str(e)).strip()


def catalog(pg):
    """catalog: the declarations as a superuser sees them (positions and counters move: left out)."""
    return {t: pg.query(f"SELECT * FROM mongo_river.{t} ORDER BY 1, 2") for t in CATALOG}


def host_intact(pg, postmaster):
    """host_intact asserts the postmaster never restarted and nothing died of a signal."""
    assert pg.postmaster_pid() == postmaster, "the postmaster restarted"
    crashed = [line for line in pg.log().splitlines() if "terminated by signal" in line]
    assert not crashed, "\n".join(crashed[:5])


@pytest.fixture(scope="module")
def auth_peer(mongo):
    if not mongo.is_peer:
        pytest.skip("a source with a known user needs the MongoDB peer (--auth); MONGO_URI is a real server")
    import sys
    from mongo_source import PEER_DIR
    sys.path.insert(0, PEER_DIR)
    from peer_process import start_peer, stop_peer
    process, port = start_peer(extra_args=("--auth", f"root:{PASSWORD}"))
    source = MongoSource(f"mongodb://root:{PASSWORD}@127.0.0.1:{port}/?replicaSet=rs0&authSource=admin",
                         None, is_peer=True)
    source.port = port
    client = source.client()
    client.sec.a.insert_many([{"_id": "a1", "n": 1, "ssn": 5}, {"_id": "a2", "n": 2, "ssn": 6}])
    client.sec.b.insert_many([{"_id": "b1", "n": 1, "ssn": 7}])
    client.close()
    yield source
    stop_peer(process)


@pytest.fixture(scope="module")
def sec(river_pg, auth_peer):
    pg = river_pg
    pg.query("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; "
             "CREATE ROLE nologin_admin NOLOGIN; "
             "GRANT mongo_river_admin TO alice, bob, nologin_admin; GRANT CREATE ON SCHEMA public TO alice, bob; "
             "CREATE TABLE victim (id text PRIMARY KEY); GRANT SELECT ON victim TO bob")
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('alice_r', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'sec.a', 'alice_a', %s)",
               (json.dumps(MAPPING),)))
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob_r', %s)",
                   (f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0",)))
    pg.query("SELECT mongo_river.stop('bob_r')")
    wait_synced(pg, "alice_r")
    pg.postmaster = pg.postmaster_pid()
    return pg


def no_password_uris(port):
    return [f"mongodb://root@127.0.0.1:{port}/?replicaSet=rs0&authSource=admin",
            f"mongodb://root:@127.0.0.1:{port}/?replicaSet=rs0&authSource=admin",
            f"mongodb://root@127.0.0.1:{port}/?replicaSet=rs0&authMechanism=SCRAM-SHA-256",
            f"mongodb://root@127.0.0.1:{port}/?replicaSet=rs0&authMechanism=PLAIN"]


def test_uri_without_password_is_refused(sec, auth_peer, figures):
    pg = sec
    before = catalog(pg)
    for uri in no_password_uris(auth_peer.port):
        for sql, params in [("SELECT mongo_river.create_river('nopw', %s)", (uri,)),
                            ("SELECT mongo_river.alter_river('alice_r', %s)", (uri,))]:
            code, detail = as_role(pg, "alice", sql, params)
            assert code == "22023", f"{uri}: expected 22023, got {code}: {detail}"
            assert "password" in detail and "HINT" in detail, detail
    # MONGODB-X509 and GSSAPI need no password.
    pg.query("SELECT mongo_river.create_river('x509', %s)",
             (f"mongodb://CN=client@127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authMechanism=MONGODB-X509",))
    pg.query("SELECT mongo_river.stop('x509'); SELECT mongo_river.drop_river('x509')")
    figures(attacks=8)
    assert catalog(pg) == before
    host_intact(pg, pg.postmaster)


def test_river_already_without_password_fails_without_crash(sec, auth_peer):
    """A river whose URI has no password (declared before the check existed) fails visibly in its
    worker and in infer_mapping, and never crashes a process."""
    pg = sec
    uri = no_password_uris(auth_peer.port)[0]
    pg.query("ALTER TABLE mongo_river.river DISABLE TRIGGER USER")
    try:
        pg.query("INSERT INTO mongo_river.river (river, owner, uri) VALUES ('old_nopw', 'alice', %s); "
                 "INSERT INTO mongo_river.progress (river) VALUES ('old_nopw')", (uri,))
    finally:
        pg.query("ALTER TABLE mongo_river.river ENABLE TRIGGER USER")
    code, detail = as_role(pg, "alice", "SELECT mongo_river.infer_mapping('old_nopw', 'sec.a')")
    assert code == "22023" and "password" in detail, f"{code}: {detail}"
    error = wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.progress WHERE river = 'old_nopw'"
                                       " AND last_error LIKE '%password%'"), 30, 0.1, "the worker's error")
    assert PASSWORD not in error
    host_intact(pg, pg.postmaster)
    pg.query("SELECT mongo_river.drop_river('old_nopw')")


def test_unknown_uri_option(sec, auth_peer, figures):
    pg = sec
    before = catalog(pg)
    uri = auth_peer.uri + "&bogusOption=1"
    for sql in ["SELECT mongo_river.create_river('bogus', %s)", "SELECT mongo_river.alter_river('alice_r', %s)"]:
        code, detail = as_role(pg, "alice", sql, (uri,))
        assert code == "22023" and "bogusoption" in detail.lower(), detail
        assert "HINT" in detail and PASSWORD not in detail, detail
    figures(attacks=2)
    assert catalog(pg) == before
    # A river declared before the check keeps running, with one WARNING.
    client = auth_peer.client()
    client.sec.old.insert_one({"_id": "o1", "n": 1})
    pg.query("ALTER TABLE mongo_river.river DISABLE TRIGGER USER")
    try:
        pg.query("INSERT INTO mongo_river.river (river, owner, uri) VALUES ('old_bogus', 'alice', %s); "
                 "INSERT INTO mongo_river.progress (river) VALUES ('old_bogus')", (uri,))
    finally:
        pg.query("ALTER TABLE mongo_river.river ENABLE TRIGGER USER")
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('old_bogus', 'sec.old', 'old_bogus_t', %s)",
               (json.dumps(MAPPING),)))
    wait_synced(pg, "old_bogus")
    assert pg.scalar("SELECT count(*) FROM old_bogus_t") == 1
    warnings = [line for line in pg.log().splitlines() if "WARNING" in line and "bogusoption" in line.lower()
                and "old_bogus" in line]
    assert len(warnings) == 1, warnings
    pg.query("SELECT mongo_river.drop_river('old_bogus', true)")
    host_intact(pg, pg.postmaster)


def test_password_file_works(sec, auth_peer, tmp_path):
    pg = sec
    path = os.path.join(pg.base, "mongo.pw")
    with open(path, "w") as f:
        f.write(PASSWORD + "\n")
    uri = f"mongodb://root@127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin"
    # Only superusers may name a file.
    code, _ = as_role(pg, "alice", "SELECT mongo_river.create_river('pwfile', %s, %s)",
                      (uri, json.dumps({"password_file": path})))
    assert code == "42501"
    pg.query("SELECT mongo_river.create_river('pwfile', %s, %s)", (uri, json.dumps({"password_file": path})))
    pg.query("SELECT mongo_river.map_collection('pwfile', 'sec.b', 'pwfile_b', %s)", (json.dumps(MAPPING),))
    wait_synced(pg, "pwfile")
    assert pg.scalar("SELECT count(*) FROM pwfile_b") == 1
    assert pg.scalar("SELECT mongo_river.infer_mapping('pwfile', 'sec.b')") is not None
    pg.query("SELECT mongo_river.drop_river('pwfile', true)")
    host_intact(pg, pg.postmaster)


def test_foreign_server_and_user_mapping(sec, auth_peer):
    pg = sec
    pg.query("CREATE SERVER shop FOREIGN DATA WRAPPER mongo_river OPTIONS (uri %s)",
             (f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin",))
    # The validator refuses passwords in the server's URI and unknown options.
    for sql in ["CREATE SERVER bad1 FOREIGN DATA WRAPPER mongo_river OPTIONS (uri 'mongodb://u:p@h/')",
                "CREATE SERVER bad2 FOREIGN DATA WRAPPER mongo_river OPTIONS (host 'h')",
                "CREATE SERVER bad3 FOREIGN DATA WRAPPER mongo_river OPTIONS (uri 'mongodb://h/?bogusOption=1')"]:
        code, _ = as_role(pg, "postgres", sql)
        assert code in ("22023", "HV00D", "HV00C"), sql
    pg.query("GRANT USAGE ON FOREIGN SERVER shop TO alice")
    pg.query(f"CREATE USER MAPPING FOR alice SERVER shop OPTIONS (user 'root', password '{PASSWORD}')")
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('fdw_r', 'server:shop')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('fdw_r', 'sec.b', 'fdw_b')"))
    wait_synced(pg, "fdw_r")
    assert pg.scalar("SELECT count(*) FROM fdw_b") == 1
    # Everything that connects uses the owner's mapping: verify, wait_for_sync, map_database.
    assert ok(as_role(pg, "alice", "SELECT count(*) FROM mongo_river.verify('fdw_r')")) == [(0,)]
    assert ok(as_role(pg, "alice", "SELECT mongo_river.wait_for_sync('fdw_r', '30 s')")) == [(True,)]
    ok(as_role(pg, "alice", "SELECT mongo_river.map_database('fdw_r', 'sec', "
                            "'{\"table_prefix\": \"fdwdb_\", \"include\": [\"a\"]}')"))
    wait_synced(pg, "fdw_r")
    assert pg.scalar("SELECT count(*) FROM fdwdb_a") >= 2
    # bob has no USAGE on the server: refused.
    code, _ = as_role(pg, "bob", "SELECT mongo_river.create_river('fdw_bob', 'server:shop')")
    assert code == "42501"
    # A server that does not exist.
    code, _ = as_role(pg, "alice", "SELECT mongo_river.create_river('fdw_x', 'server:nosuch')")
    assert code == "42704"
    pg.query("SELECT mongo_river.drop_river('fdw_r', true)")
    host_intact(pg, pg.postmaster)


def test_no_password_for_other_admins_or_in_logs(sec, auth_peer, figures):
    pg = sec
    leaks = []
    for role in ("bob", "carol"):
        for sql in ["SELECT uri FROM mongo_river.river", "SELECT * FROM mongo_river.rivers",
                    "SELECT * FROM mongo_river.status", "SELECT * FROM mongo_river.rejects"]:
            code, rows = as_role(pg, role, sql)
            if PASSWORD in repr(rows):
                leaks.append(f"{role}: {sql}")
    # The owner sees her own URI.
    assert PASSWORD in repr(as_role(pg, "alice", "SELECT uri FROM mongo_river.river")[1])
    # A failing create_river does not echo the statement (with its password) to the log.
    code, detail = as_role(pg, "alice", "SELECT mongo_river.create_river('alice_r', %s)", (auth_peer.uri,))
    assert code == "42710" and PASSWORD not in detail
    code, detail = as_role(pg, "alice", "SELECT mongo_river.create_river('leak', %s, '{\"batch_size\": 0}')",
                           (auth_peer.uri,))
    assert code == "22023" and PASSWORD not in detail
    figures(attacks=9)
    assert not leaks, leaks
    logged = [line for line in pg.log().splitlines() if PASSWORD in line]
    assert not logged, logged[:3]


def test_rejects_and_notify_stay_with_the_owner(sec, auth_peer, figures):
    pg = sec
    listener = pg.connect(user="carol")
    listener.autocommit = True
    with listener.cursor() as cur:
        cur.execute("LISTEN mongo_river")
    client = auth_peer.client()
    client.sec.a.insert_one({"_id": "bad", "n": 1, "ssn": "SSN-123-45-6789"})
    wait_for(lambda: pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'alice_r'"), 30, 0.1,
             "the reject")
    payloads = []

    def drain():
        if select.select([listener], [], [], 0.2)[0]:
            listener.poll()
        while listener.notifies:
            payloads.append(listener.notifies.pop(0).payload)
        return any('"reject"' in p for p in payloads)
    wait_for(drain, 10, 0.1, "the reject's NOTIFY")
    listener.close()
    assert not [p for p in payloads if "SSN-123" in p], payloads
    for role in ("bob", "carol"):
        code, rows = as_role(pg, role, "SELECT * FROM mongo_river.rejects")
        assert code == "42501" or rows == [], f"{role} read rejects: {rows}"
    assert as_role(pg, "alice", "SELECT count(*) FROM mongo_river.rejects WHERE river = 'alice_r'")[1] == [(1,)]
    code, _ = as_role(pg, "bob", "SELECT mongo_river.wait_for_sync('alice_r', '1 s')")
    assert code == "42501"
    figures(attacks=3)
    host_intact(pg, pg.postmaster)


def test_admin_cannot_write_the_catalog(sec, figures):
    pg = sec
    before = catalog(pg)
    alice_a = pg.scalar("SELECT 'alice_a'::regclass::oid")
    statements = [
        ("INSERT INTO mongo_river.mapped_table (river, source, relation, kind, created) "
         "VALUES ('bob_r', 'x.y', 'victim', 'child', true)", None),
        ("UPDATE mongo_river.river SET options = options || '{\"password_file\": \"/etc/passwd\"}' "
         "WHERE river = 'bob_r'", None),
        ("UPDATE mongo_river.river SET owner = 'mongo_river_admin' WHERE river = 'bob_r'", None),
        ("INSERT INTO mongo_river.river (river, owner, uri) VALUES ('bob2', 'bob', 'mongodb://h/')", None),
        ("DELETE FROM mongo_river.rejects", None),
        ("UPDATE mongo_river.collection_map SET target = %s WHERE river = 'bob_r'", (alice_a,)),
        ("SELECT mongo_river_internal._infer('mongodb://h/', 'a', 'b', 1, 't')", None),
        ("SELECT mongo_river_internal._list_collections('mongodb://h/', 'a')", None),
        ("SELECT mongo_river_internal._act_for('bob')", None),
        ("SELECT mongo_river.alter_river('bob_r', options => '{\"password_file\": \"/etc/passwd\"}')", None),
    ]
    problems = []
    for sql, params in statements:
        code, detail = as_role(pg, "bob", sql, params)
        if code != "42501":
            problems.append(f"bob: {sql}: expected 42501, got {code}: {detail}")
    # A NOLOGIN owner cannot run a river.
    code, detail = as_role(pg, "postgres", "SET ROLE nologin_admin; "
                           "SELECT mongo_river.create_river('nl', 'mongodb://127.0.0.1:1/')")
    if code != "42501":
        problems.append(f"NOLOGIN owner: expected 42501, got {code}: {detail}")
    figures(attacks=len(statements) + 1)
    assert not problems, "\n".join(problems)
    assert catalog(pg) == before
    assert pg.scalar("SELECT to_regclass('victim') IS NOT NULL")


def test_caller_is_the_outer_role(sec):
    """_caller() names the role that called the public function (its boundary's current_user), also
    inside the implementation, which runs as the catalog's owner (SECURITY DEFINER) and which only
    the entry point may run."""
    pg = sec
    assert as_role(pg, "postgres", "SET ROLE alice; SELECT mongo_river_internal._caller()")[1] == [("alice",)]
    assert not pg.scalar("SELECT prosecdef FROM pg_proc WHERE oid = 'mongo_river.drop_river(name, boolean)'"
                         "::regprocedure")
    assert pg.scalar("SELECT prosecdef AND NOT has_function_privilege('alice', p.oid, 'EXECUTE') FROM pg_proc p "
                     "WHERE oid = 'mongo_river_internal.drop_river(name, boolean)'::regprocedure")
    # bob, though an admin, reaches no function of alice's river through SECURITY DEFINER.
    code, _ = as_role(pg, "bob", "SELECT mongo_river.drop_river('alice_r', true)")
    assert code == "42501"
    assert pg.scalar("SELECT to_regclass('alice_a') IS NOT NULL")


def test_ddl_runs_as_the_river_owner(sec, figures):
    """DDL made by our SECURITY DEFINER functions runs as the river's owner, even when a superuser
    calls them: a forged "created" table (here forged by a superuser with the triggers off, as a
    catalog from before this version could hold) is never dropped by drop_river(..., true)."""
    pg = sec
    pg.query("CREATE TABLE victim2 (id text PRIMARY KEY)")
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob_r', 'sec.b', 'bob_b', %s)", (json.dumps(MAPPING),)))
    assert pg.scalar("SELECT relowner::regrole::text FROM pg_class WHERE oid = 'bob_b'::regclass") == "bob"
    # A superuser mapping for alice creates alice's table.
    pg.query("SELECT mongo_river.map_collection('alice_r', 'sec.b', 'alice_b', %s)", (json.dumps(MAPPING),))
    assert pg.scalar("SELECT relowner::regrole::text FROM pg_class WHERE oid = 'alice_b'::regclass") == "alice"
    pg.query("ALTER TABLE mongo_river.mapped_table DISABLE TRIGGER USER")
    try:
        pg.query("INSERT INTO mongo_river.mapped_table (river, source, relation, kind, created) "
                 "VALUES ('bob_r', 'sec.b', 'victim2', 'child', true)")
    finally:
        pg.query("ALTER TABLE mongo_river.mapped_table ENABLE TRIGGER USER")
    # drop_river skips a relation its owner does not own, with a NOTICE naming it, and drops the rest.
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT mongo_river.drop_river('bob_r', true)")
        notices = "".join(conn.notices)
    conn.close()
    assert "victim2" in notices, notices
    assert pg.scalar("SELECT to_regclass('victim2') IS NOT NULL"), "a table bob does not own was dropped"
    assert pg.scalar("SELECT to_regclass('bob_b') IS NULL")
    assert pg.scalar("SELECT count(*) FROM mongo_river.mapped_table WHERE relation::text = 'victim2'") == 0
    figures(attacks=1)
    host_intact(pg, pg.postmaster)
