"""Review of issue 15, item (2): DROP ROLE of a river owner refused (2BP01, whoever runs it),
REASSIGN OWNED moves rivers and is refused (42501) toward a role that cannot log in,
NOLOGIN/orphaned owners get no worker and say why. Attacked as a CREATEROLE role (dave)."""

import psycopg2
import pytest

from pgcluster import wait_for
from test_secrets import PASSWORD, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


@pytest.fixture(scope="module")
def lc(sec, auth_peer):
    pg = sec
    pg.query("CREATE ROLE dave LOGIN CREATEROLE; CREATE ROLE erin LOGIN; CREATE ROLE frank LOGIN; "
             "GRANT mongo_river_admin TO erin, frank")
    ok(as_role(pg, "erin", "SELECT mongo_river.create_river('erin_r', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "frank", "SELECT mongo_river.create_river('frank_r', %s)", (auth_peer.uri,)))
    return pg


def owners(pg):
    return dict(pg.query("SELECT river, owner::text FROM mongo_river.river ORDER BY 1"))


@pytest.mark.parametrize("sql", ["DROP ROLE erin", "DROP ROLE IF EXISTS nosuch_role, erin", "DROP USER erin",
                                 "DROP GROUP erin", "DROP ROLE frank, erin"])
def test_drop_role_of_owner_refused(lc, sql):
    pg = lc
    before = owners(pg)
    for who in ("dave", "postgres"):
        code, detail = as_role(pg, who, sql)
        assert code == "2BP01", f"{who}: {sql}: {code} {detail}"
    assert owners(pg) == before


def test_reassign_to_nologin_group_refused(lc):
    pg = lc
    before = owners(pg)
    for target in ("mongo_river_admin", "pg_monitor", "PUBLIC"):
        code, detail = as_role(pg, "postgres", f"REASSIGN OWNED BY frank TO {target}")
        assert code in ("42501", "42704", "42601", "0LP01"), f"REASSIGN OWNED BY frank TO {target}: {code} {detail}"
    assert owners(pg) == before


def test_createrole_renames_and_recreates_owner(lc):
    """dave (CREATEROLE, PostgreSQL 15) renames erin and creates a new role named erin: the river
    stays with the old role (owner is a regrole): the new erin sees nothing of it."""
    pg = lc
    ok(as_role(pg, "dave", "ALTER ROLE erin RENAME TO erin_old; CREATE ROLE erin LOGIN"))
    pg.query("GRANT mongo_river_admin TO erin")
    code, rows = as_role(pg, "erin", "SELECT river, uri FROM mongo_river.river")
    pg.query("DROP ROLE erin; ALTER ROLE erin_old RENAME TO erin")
    assert code is None and rows == [], rows


def test_nologin_owner_via_createrole(lc):
    """dave (CREATEROLE) makes frank NOLOGIN: frank's worker stops, status says why, once."""
    pg = lc
    ok(as_role(pg, "dave", "ALTER ROLE frank NOLOGIN"))
    wait_for(lambda: 'river "frank_r" has no worker' in pg.log(), 30, 0.2, "the launcher's reason")
    reason = [l for l in pg.log().splitlines() if 'river "frank_r" has no worker' in l]
    assert len(reason) == 1, reason
    assert PASSWORD not in reason
    ok(as_role(pg, "dave", "ALTER ROLE frank LOGIN"))


def test_orphan_river_does_not_break_other_admins(lc, auth_peer):
    """An owner dropped from another database leaves an orphan river: other admins still read the
    catalog and status (no error from the policies), the river gets no worker, one log line."""
    pg = lc
    pg.query("CREATE ROLE gina LOGIN; GRANT mongo_river_admin TO gina")
    ok(as_role(pg, "gina", "SELECT mongo_river.create_river('gina_r', %s)", (auth_peer.uri,)))
    conn = pg.connect(dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP ROLE gina")
    conn.close()
    results = {sql: as_role(pg, "bob", sql) for sql in ["SELECT * FROM mongo_river.river", "SELECT * FROM mongo_river.rivers",
                                                       "SELECT * FROM mongo_river.status"]}
    assert all(code is None for code, _ in results.values()), results
    assert PASSWORD not in repr(results)
    host_intact(pg, pg.postmaster)
