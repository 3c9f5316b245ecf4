"""Review 30: USAGE on a river's foreign server checked at every connection. USAGE held through a
group role and revoked from the group; the worker's retries (no hot loop, no log spam, no
password anywhere); GRANT again with the worker left running (no stop/start): it must go on by
itself with nothing lost; a non-owner probing the river learns nothing about its server."""

import json
import time

from pgcluster import wait_for
from river import wait_synced
from test_secrets import MAPPING, PASSWORD, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


def test_usage_via_group_revoked_then_granted_without_restart(sec, auth_peer):
    pg = sec
    pg.query("CREATE SERVER s30 FOREIGN DATA WRAPPER mongo_river OPTIONS (uri %s)",
             (f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin",))
    pg.query("CREATE ROLE s30_users NOLOGIN; GRANT s30_users TO alice; "
             "GRANT USAGE ON FOREIGN SERVER s30 TO s30_users")
    pg.query(f"CREATE USER MAPPING FOR alice SERVER s30 OPTIONS (user 'root', password '{PASSWORD}')")
    coll = auth_peer.client().sec.u30
    coll.insert_one({"_id": "u0", "n": 0, "ssn": 0})
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('u30', 'server:s30')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('u30', 'sec.u30', 'u30_t', %s)", (json.dumps(MAPPING),)))
    wait_synced(pg, "u30")

    # revoked from the group: cut off at the next connection
    ok(as_role(pg, "alice", "SELECT mongo_river.stop('u30')"))
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'u30'") is None,
             30, 0.1, "u30's worker to stop")
    pg.query("REVOKE USAGE ON FOREIGN SERVER s30 FROM s30_users")
    coll.insert_one({"_id": "u_during", "n": 1, "ssn": 1})
    so = as_role(pg, "alice", "CALL mongo_river.sync_once('u30', '5 s', NULL)")
    assert so[0] == "42501", f"sync_once after REVOKE from the group: {so}"
    run = pg.query("SELECT outcome, error FROM mongo_river.sync_runs WHERE river = 'u30' ORDER BY id DESC LIMIT 1")
    assert run and run[0][0] == "error" and "permission denied" in (run[0][1] or ""), f"sync_runs: {run}"

    # a non-owner (bob, an admin too) learns nothing of alice's server through her river
    for sql in ["SELECT mongo_river.infer_mapping('u30', 'sec.u30')",
                "SELECT count(*) FROM mongo_river.verify('u30')",
                "CALL mongo_river.sync_once('u30', '5 s', NULL)"]:
        code, message = as_role(pg, "bob", sql)
        assert code == "42501" and "s30" not in str(message), f"bob: {sql}: {code} {message}"

    log_before = len(pg.log())
    ok(as_role(pg, "alice", "SELECT mongo_river.start('u30')"))
    wait_for(lambda: "permission denied" in (pg.scalar(
        "SELECT last_error FROM mongo_river.status WHERE river = 'u30'") or ""), 30, 0.2, "status to say why")
    time.sleep(8)
    log = pg.log()[log_before:]
    retries = [line for line in log.splitlines() if 'river "u30"' in line and "retrying" in line]
    assert 1 <= len(retries) <= 6, f"{len(retries)} retry lines in ~8 s:\n" + "\n".join(retries[:10])
    shown = pg.query("SELECT coalesce(last_error, '') FROM mongo_river.status WHERE river = 'u30'")
    everything = log + repr(shown) + repr(pg.query("SELECT * FROM mongo_river.sync_runs"))
    assert PASSWORD not in everything, "the user mapping's password shows in the log, status or sync_runs"
    assert pg.scalar("SELECT count(*) FROM u30_t WHERE id = 'u_during'") == 0, "copied while revoked"

    # granted again, the worker left alone: it must go on by itself (backoff is at most 30 s)
    pg.query("GRANT USAGE ON FOREIGN SERVER s30 TO s30_users")
    coll.insert_one({"_id": "u_after", "n": 2, "ssn": 2})
    try:
        wait_for(lambda: pg.scalar("SELECT count(*) FROM u30_t WHERE id IN ('u_during', 'u_after')") == 2,
                 50, 0.5, "x")
        flowed = True
    except TimeoutError:
        flowed = False
    state = pg.query("SELECT phase, last_error, worker_pid FROM mongo_river.status WHERE river = 'u30'")
    assert flowed, f"50 s after GRANT USAGE (no restart) the river has not gone on: {state}"
    ok(as_role(pg, "alice", "SELECT mongo_river.stop('u30')"))
    host_intact(pg, pg.postmaster)


def test_usage_revoked_while_the_worker_runs_then_a_copy_starts(sec, auth_peer):
    """the worker holds its connection; REVOKE, then a new mapping: its copy opens a second
    connection (reading ahead), which must be refused; GRANT again: the copy completes."""
    pg = sec
    pg.query("CREATE SERVER s31 FOREIGN DATA WRAPPER mongo_river OPTIONS (uri %s)",
             (f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin",))
    pg.query("GRANT USAGE ON FOREIGN SERVER s31 TO alice")
    pg.query(f"CREATE USER MAPPING FOR alice SERVER s31 OPTIONS (user 'root', password '{PASSWORD}')")
    client = auth_peer.client()
    client.sec.v31.insert_many([{"_id": f"v{i}", "n": i, "ssn": i} for i in range(3)])
    client.sec.w31.insert_many([{"_id": f"w{i}", "n": i, "ssn": i} for i in range(50)])
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('v31', 'server:s31')"))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('v31', 'sec.v31', 'v31_t', %s)", (json.dumps(MAPPING),)))
    wait_synced(pg, "v31")
    pg.query("REVOKE USAGE ON FOREIGN SERVER s31 FROM alice")
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('v31', 'sec.w31', 'w31_t', %s)", (json.dumps(MAPPING),)))
    wait_for(lambda: "permission denied" in (pg.scalar(
        "SELECT string_agg(coalesce(last_error, ''), ' ') FROM mongo_river.status WHERE river = 'v31'") or ""),
        30, 0.2, "status to say the copy's connection was refused")
    copied = pg.scalar("SELECT count(*) FROM w31_t")
    assert copied == 0, f"{copied} documents copied after REVOKE"
    pg.query("GRANT USAGE ON FOREIGN SERVER s31 TO alice")
    client.sec.v31.insert_one({"_id": "v_after", "n": 9, "ssn": 9})
    wait_for(lambda: pg.scalar("SELECT count(*) FROM w31_t") == 50 and
             pg.scalar("SELECT count(*) FROM v31_t WHERE id = 'v_after'") == 1, 50, 0.5,
             "the copy and the stream after GRANT")
    ok(as_role(pg, "alice", "SELECT mongo_river.stop('v31')"))
    host_intact(pg, pg.postmaster)
