"""Review of issue 15: helpers of mongo_river_internal that mongo_river_admin (or PUBLIC) may
EXECUTE. The implementations pass 'river:<name>' to C helpers that resolve the river's real URI
(credentials included); a helper an admin can call directly must not act on another owner's river."""

import pytest

from pgcluster import wait_for
from test_secrets import PASSWORD, as_role, auth_peer, host_intact, sec  # noqa: F401


def worker_pid(pg, river):
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", (f"mongo_river {river}",))


def test_admin_uses_alice_credentials_through_source_cut(sec):
    """bob (admin) calls _source_cut('river:alice_r', ...): it connects with alice's URI."""
    pg = sec
    results = {}
    for coll in ("a", "no_such_collection"):
        results[coll] = as_role(pg, "bob", "SELECT mongo_river_internal._source_cut('river:alice_r', 'sec', %s, true)",
                                (coll,))
    assert all(code in ("42501", "42704") for code, _ in results.values()), \
        f"bob reaches alice's source with her credentials: {results}"
    assert PASSWORD not in repr(results)
    host_intact(pg, pg.postmaster)


def test_admin_stops_alice_worker(sec):
    pg = sec
    before = wait_for(lambda: worker_pid(pg, "alice_r"), 30, 0.1, "alice's worker")
    code, detail = as_role(pg, "bob", "SELECT mongo_river_internal._stop_worker('alice_r')")
    after = worker_pid(pg, "alice_r")
    assert code == "42501" and after == before, f"bob's _stop_worker('alice_r'): {code} {detail}; " \
                                                f"alice's worker {before} -> {after}"
    host_intact(pg, pg.postmaster)


def test_admin_wakes_alice_river(sec):
    pg = sec
    code, detail = as_role(pg, "bob", "SELECT mongo_river_internal._wake('alice_r')")
    assert code == "42501", f"bob's _wake('alice_r'): {code} {detail}"


@pytest.mark.parametrize("sql", [
    "SELECT mongo_river_internal._source_cut('mongodb://root:x@127.0.0.1:1/?replicaSet=rs0&connectTimeoutMS=100', 'a', 'b', true)",
    "SELECT * FROM mongo_river_internal._live_status()",
    "SELECT mongo_river_internal._may_change('alice_r')",
    "SELECT mongo_river_internal._caller()",
])
def test_plain_role_helpers(sec, sql):
    """carol (no role) must not reach helpers that connect or read state."""
    pg = sec
    code, detail = as_role(pg, "carol", sql)
    assert code == "42501" or (code is None and "alice_r" not in repr(detail)), f"carol: {sql}: {code} {detail}"
