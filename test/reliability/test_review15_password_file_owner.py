"""Review of issue 15, item (3): "A river whose password_file a superuser set is a superuser's to
alter: its owner may not change its URI (hosts, user, mechanism: where that password is sent) nor
its options (42501)." Attacked as the river's owner (alice, a mongo_river_admin)."""

import json
import os
import sys

import pytest

from mongo_source import MongoSource, PEER_DIR
from pgcluster import wait_for
from river import wait_synced
from test_secrets import MAPPING, PASSWORD, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


@pytest.fixture(scope="module")
def evil_peer():
    """A second MongoDB (the attacker's host) that accepts the same user: whoever connects to it
    with the password_file's password gets its documents, which shows the password was sent."""
    sys.path.insert(0, PEER_DIR)
    from peer_process import start_peer, stop_peer
    process, port = start_peer(extra_args=("--auth", f"root:{PASSWORD}"))
    client = MongoSource(f"mongodb://root:{PASSWORD}@127.0.0.1:{port}/?replicaSet=rs0&authSource=admin",
                         None, is_peer=True).client()
    client.sec.b.insert_many([{"_id": "EVIL1", "n": 1, "ssn": 1}, {"_id": "EVIL2", "n": 2, "ssn": 2}])
    client.close()
    yield port
    stop_peer(process)


@pytest.fixture(scope="module")
def pf(sec, auth_peer):
    pg = sec
    path = os.path.join(pg.base, "pf.pw")
    with open(path, "w") as f:
        f.write(PASSWORD + "\n")
    uri = f"mongodb://root@127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin"
    # A superuser declares a river for alice with a password_file (then hands it to her).
    pg.query("SELECT mongo_river.create_river('alice_pf', %s, %s)", (uri, json.dumps({"password_file": path})))
    pg.query("SELECT mongo_river.stop('alice_pf')")
    pg.path = path
    return pg


def river_row(pg, name):
    return pg.query("SELECT uri, options, owner::text FROM mongo_river.river WHERE river = %s", (name,))


def test_owner_may_not_change_options_of_password_file_river(pf, auth_peer):
    pg = pf
    # alice's river: a superuser set the password_file on it.
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('alice_pf2', %s, '{\"capture\": \"change_stream\"}')",
               (auth_peer.uri,)))
    pg.query("SELECT mongo_river.stop('alice_pf2')")
    # (one call with both is refused: the URI is checked before the new options apply, 22023)
    pg.query("SELECT mongo_river.alter_river('alice_pf2', NULL, %s)", (json.dumps({"password_file": pg.path}),))
    pg.query("SELECT mongo_river.alter_river('alice_pf2', %s)",
             (f"mongodb://root@127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin",))
    before = river_row(pg, "alice_pf2")
    results = {}
    for label, sql in [
            ("batch_size", "SELECT mongo_river.alter_river('alice_pf2', NULL, '{\"batch_size\": 5}')"),
            ("drop password_file", "SELECT mongo_river.alter_river('alice_pf2', NULL, '{\"password_file\": null}')"),
            ("uri + drop password_file",
             "SELECT mongo_river.alter_river('alice_pf2', 'mongodb://root@127.0.0.1:1/?replicaSet=rs0', "
             "'{\"password_file\": null}')"),
            ("uri", "SELECT mongo_river.alter_river('alice_pf2', 'mongodb://root@127.0.0.1:1/?replicaSet=rs0')")]:
        code, detail = as_role(pg, "alice", sql)
        results[label] = code
    after = river_row(pg, "alice_pf2")
    # dropping the password_file leaves a URI without password: the function's own refusal (22023)
    assert all(code in ("42501", "22023") for code in results.values()) and after == before, \
        f"alice's alter_river on her password_file river: {results}; row before {before} after {after}"


def test_owner_redirects_password_file_through_her_foreign_server(pf, auth_peer, evil_peer):
    """alice's river names her own foreign server; a superuser adds a password_file. alice then
    changes the server's URI (ALTER SERVER, plain PostgreSQL DDL she owns) to her own host: the
    worker sends the superuser's password there."""
    pg = pf
    pg.query("GRANT USAGE ON FOREIGN DATA WRAPPER mongo_river TO alice")
    ok(as_role(pg, "alice", "CREATE SERVER alice_srv FOREIGN DATA WRAPPER mongo_river OPTIONS (uri %s)",
               (f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin",)))
    ok(as_role(pg, "alice", "CREATE USER MAPPING FOR alice SERVER alice_srv OPTIONS (user 'root', password 'x')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('alice_srv_r', 'server:alice_srv')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.stop('alice_srv_r')"))
    code, detail = as_role(pg, "postgres", "SELECT mongo_river.alter_river('alice_srv_r', NULL, %s)",
                           (json.dumps({"password_file": pg.path}),))
    # A password_file never goes with a foreign server (its owner may move it with ALTER SERVER).
    assert code == "22023", (code, detail)
    return
    # alice moves the server to her host, drops the password from her mapping.
    moved = as_role(pg, "alice", "ALTER SERVER alice_srv OPTIONS (SET uri %s)",
                    (f"mongodb://127.0.0.1:{evil_peer}/?replicaSet=rs0&authSource=admin",))
    ok(as_role(pg, "alice", "ALTER USER MAPPING FOR alice SERVER alice_srv OPTIONS (DROP password)"))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_srv_r', 'sec.b', 'alice_srv_b', %s)",
               (json.dumps(MAPPING),)))
    ok(as_role(pg, "alice", "SELECT mongo_river.start('alice_srv_r')"))
    got = wait_for(lambda: pg.scalar("SELECT count(*) FROM alice_srv_b WHERE id LIKE 'EVIL%'") or
                   pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = 'alice_srv_r'"),
                   30, 0.2, "the river to connect or fail")
    evil = pg.scalar("SELECT count(*) FROM alice_srv_b WHERE id LIKE 'EVIL%'")
    assert moved[0] is not None or not evil, \
        f"ALTER SERVER by alice: {moved}; rows copied from alice's host with the password_file's password: {evil}"
    host_intact(pg, pg.postmaster)
