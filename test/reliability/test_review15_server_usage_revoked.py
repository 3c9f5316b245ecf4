"""Review of issue 15: "a river's owner needs USAGE on the server". A superuser revokes alice's
USAGE on the foreign server (cutting her off from it): her river must stop using it (at its next
connection: sync_once, verify, infer_mapping, a worker restart), say why in status, and go on
where it was once USAGE is granted again (nothing lost)."""

import json

from pgcluster import wait_for
from river import wait_synced
from test_secrets import MAPPING, PASSWORD, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


def test_usage_revoked(sec, auth_peer):
    pg = sec
    pg.query("CREATE SERVER shop2 FOREIGN DATA WRAPPER mongo_river OPTIONS (uri %s)",
             (f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin",))
    pg.query("GRANT USAGE ON FOREIGN SERVER shop2 TO alice")
    pg.query(f"CREATE USER MAPPING FOR alice SERVER shop2 OPTIONS (user 'root', password '{PASSWORD}')")
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('u_r', 'server:shop2')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('u_r', 'sec.b', 'u_b', %s)", (json.dumps(MAPPING),)))
    wait_synced(pg, "u_r")
    ok(as_role(pg, "alice", "SELECT mongo_river.stop('u_r')"))
    pg.query("REVOKE USAGE ON FOREIGN SERVER shop2 FROM alice")
    results = {}
    for sql in ["SELECT mongo_river.infer_mapping('u_r', 'sec.b')", "SELECT count(*) FROM mongo_river.verify('u_r')",
                "CALL mongo_river.sync_once('u_r', '5 s', NULL)"]:
        results[sql] = as_role(pg, "alice", sql)[0]
    ok(as_role(pg, "alice", "SELECT mongo_river.start('u_r')"))
    auth_peer.client().sec.b.insert_one({"_id": "after_revoke", "n": 1, "ssn": 1})
    try:
        wait_for(lambda: pg.scalar("SELECT count(*) FROM u_b WHERE id = 'after_revoke'"), 10, 0.2, "x")
        flowed = True
    except TimeoutError:
        flowed = False
    shown = pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = 'u_r'") or ""
    assert all(code == "42501" for code in results.values()) and not flowed, \
        f"after REVOKE USAGE: {results}; worker still copies through the server: {flowed}"
    assert 'permission denied for foreign server "shop2"' in shown, f"status.last_error: {shown!r}"
    pg.query("GRANT USAGE ON FOREIGN SERVER shop2 TO alice")
    ok(as_role(pg, "alice", "SELECT mongo_river.stop('u_r')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.start('u_r')"))
    wait_for(lambda: pg.scalar("SELECT count(*) FROM u_b WHERE id = 'after_revoke'"), 60, 0.2,
             "the document inserted while USAGE was revoked, once it is granted again")
    pg.query("SELECT mongo_river.stop('u_r')")
    host_intact(pg, pg.postmaster)
