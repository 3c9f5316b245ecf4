"""A river's owner: it stays a role that exists and can log in, or its river says why it waits.

- `DROP ROLE` of a role owning rivers in the database is refused (2BP01) naming them, whoever runs
  it (a CREATEROLE role that cannot see the rivers' rows too); `IF EXISTS`, missing roles and roles
  owning nothing behave as always; `DROP OWNED BY` leaves rivers alone.
- `REASSIGN OWNED BY old TO new` moves the rivers (their workers then run as new), and is refused
  (42501, nothing changed) when new cannot log in or cannot use a river's foreign server.
- A river whose owner cannot log in (`ALTER ROLE ... NOLOGIN`) or is gone (dropped from another
  database, where our guard does not see the catalog) gets no worker: status says why in last_error
  and the log says it once, never a FATAL loop; `LOGIN` again and it runs; a superuser can drop an
  orphaned river (with and without drop_tables).

The owners in these tests hold no privilege of their own (they write through the group `writers`),
so that PostgreSQL's own dependency check has nothing to say about them: only rivers tie them."""

import json

import psycopg2
import pytest

from pgcluster import wait_for
from river import wait_synced

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}
CATALOG = ["river", "collection_map", "mapped_table", "progress"]


def ok(result):
    assert result[0] is None, result
    return result[1]


def as_role(pg, role, sql, params=None, dbname=None):
    """as_role runs sql in a login session of role: (None, rows) or (sqlstate, message)."""
    try:
        return None, pg.query(sql, params, user=role, dbname=dbname)
    except psycopg2.Error as e:
        return e.pgcode, (e.pgerror or str(e)).strip()


def catalog(pg):
    return {t: pg.query(f"SELECT * FROM mongo_river.{t} ORDER BY 1, 2") for t in CATALOG if t != "progress"} | {
        "owners": pg.query("SELECT river, owner::text FROM mongo_river.river ORDER BY 1"),
        "roles": pg.query("SELECT rolname, rolcanlogin FROM pg_roles ORDER BY 1")}


def host_intact(pg, postmaster):
    assert pg.postmaster_pid() == postmaster, "the postmaster restarted"
    crashed = [line for line in pg.log().splitlines() if "terminated by signal" in line]
    assert not crashed, "\n".join(crashed[:5])


def worker_user(pg, river):
    """worker_user: the role river's worker runs as (None: no worker)."""
    return pg.scalar("SELECT usename FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", (f"mongo_river {river}",))


def last_error(pg, river):
    return pg.scalar("SELECT string_agg(last_error, ' | ') FROM mongo_river.status WHERE river = %s", (river,))


def login_failures(pg):
    """login_failures: FATAL lines of workers that could not log in as their owner."""
    return [line for line in pg.log().splitlines() if "FATAL" in line and (
        "is not permitted to log in" in line or "does not exist" in line and "role" in line)]


def notices_of(pg, sql):
    """notices_of runs sql as postgres and returns its NOTICE and WARNING messages."""
    conn = pg.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return "".join(conn.notices)
    finally:
        conn.close()


def declare(pg, mongo, owner, river, coll, table):
    """declare makes owner's river read own.<coll> into table (owned by postgres, written through writers)."""
    pg.query(f"CREATE TABLE {table} (id text PRIMARY KEY, n int); "
             f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO writers")
    mongo.client().own[coll].insert_one({"_id": f"{river}-1", "n": 1})
    ok(as_role(pg, owner, "SELECT mongo_river.create_river(%s, %s)", (river, mongo.uri)))
    ok(as_role(pg, owner, "SELECT mongo_river.map_collection(%s, %s, %s, %s)",
               (river, f"own.{coll}", table, json.dumps(MAPPING))))
    wait_synced(pg, river)
    assert worker_user(pg, river) == owner


@pytest.fixture(scope="module")
def own(river_pg, mongo):
    pg = river_pg
    pg.query("CREATE ROLE writers NOLOGIN; CREATE ROLE rolemgr LOGIN CREATEROLE; "
             "CREATE ROLE dave LOGIN; CREATE ROLE erin LOGIN; CREATE ROLE gina LOGIN; CREATE ROLE hank LOGIN; "
             "GRANT mongo_river_admin TO dave, erin, gina, hank; GRANT writers TO dave, erin, gina, hank; "
             "GRANT CREATE ON SCHEMA public TO writers")
    pg.postmaster = pg.postmaster_pid()
    return pg


def test_drop_role_of_a_river_owner_is_refused(own, mongo, figures):
    pg = own
    declare(pg, mongo, "dave", "dave_r", "a", "owned_a")
    pg.query("CREATE ROLE idle_x")
    before = catalog(pg)
    problems = []
    for role, sql in [("postgres", "DROP ROLE dave"), ("postgres", "DROP ROLE IF EXISTS idle_x, dave"),
                      ("postgres", "DROP ROLE IF EXISTS no_such_role, dave"),
                      ("rolemgr", "DROP ROLE dave")]:  # rolemgr cannot see dave's river rows
        code, detail = as_role(pg, role, sql)
        if code != "2BP01" or "dave_r" not in detail or "drop_river" not in detail \
                or "REASSIGN OWNED BY dave" not in detail:
            problems.append(f"{role}: {sql}: expected 2BP01 naming dave_r with a hint, got {code}: {detail}")
    figures(attacks=4)
    assert not problems, "\n".join(problems)
    assert catalog(pg) == before, "a refused DROP ROLE changed something"
    assert worker_user(pg, "dave_r") == "dave"
    host_intact(pg, pg.postmaster)


def test_other_role_drops_still_work(own):
    pg = own
    ok(as_role(pg, "postgres", "DROP ROLE IF EXISTS no_such_role"))
    code, _ = as_role(pg, "postgres", "DROP ROLE no_such_role")
    assert code == "42704"
    ok(as_role(pg, "postgres", "DROP ROLE idle_x"))
    ok(as_role(pg, "postgres", "CREATE ROLE idle_y; GRANT mongo_river_admin TO idle_y"))
    ok(as_role(pg, "rolemgr", "DROP ROLE idle_y"))
    # A database without the extension: nothing to guard.
    ok(as_role(pg, "postgres", "CREATE ROLE idle_z; DROP ROLE idle_z", dbname="postgres"))
    # DROP OWNED BY leaves rivers alone (they are not PostgreSQL objects of the role).
    ok(as_role(pg, "postgres", "DROP OWNED BY dave"))
    assert pg.scalar("SELECT owner::text FROM mongo_river.river WHERE river = 'dave_r'") == "dave"


def test_reassign_owned_moves_rivers(own, mongo, figures):
    pg = own
    # A table the river created belongs to dave: REASSIGN OWNED moves it with the river.
    mongo.client().own.a2.insert_one({"_id": "made-1", "n": 1})
    ok(as_role(pg, "dave", "SELECT mongo_river.map_collection('dave_r', 'own.a2', 'dave_made', %s)",
               (json.dumps(MAPPING),)))
    wait_synced(pg, "dave_r")
    assert pg.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'dave_made'") == "dave"
    before = catalog(pg)
    # The new owner must be able to log in: refused before anything changes.
    code, detail = as_role(pg, "postgres", "REASSIGN OWNED BY dave TO writers")
    figures(attacks=1)
    assert code == "42501" and "writers" in detail and "log in" in detail, f"{code}: {detail}"
    assert catalog(pg) == before
    ok(as_role(pg, "postgres", "REASSIGN OWNED BY dave TO erin"))
    assert pg.scalar("SELECT owner::text FROM mongo_river.river WHERE river = 'dave_r'") == "erin"
    # The worker now runs as erin, and erin may act on the river; dave may not.
    wait_for(lambda: worker_user(pg, "dave_r") == "erin", 30, 0.1, "dave_r's worker to run as erin")
    mongo.client().own.a.insert_one({"_id": "after-reassign", "n": 2})
    ok(as_role(pg, "erin", "SELECT mongo_river.wait_for_sync('dave_r', '60 s')"))
    assert pg.scalar("SELECT n FROM owned_a WHERE id = 'after-reassign'") == 2
    assert pg.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'dave_made'") == "erin"
    code, _ = as_role(pg, "dave", "SELECT mongo_river.stop('dave_r')")
    assert code == "42501"
    ok(as_role(pg, "postgres", "DROP ROLE dave"))
    # The new owner drops the river with the table it created, now hers.
    ok(as_role(pg, "erin", "SELECT mongo_river.drop_river('dave_r', true)"))
    assert pg.scalar("SELECT to_regclass('dave_made') IS NULL")
    assert pg.scalar("SELECT to_regclass('owned_a') IS NOT NULL")
    host_intact(pg, pg.postmaster)


def test_reassign_owned_to_a_role_without_the_rivers_server(own, mongo, figures):
    """The new owner is checked as any owner: a river reading a foreign server needs USAGE on it."""
    pg = own
    pg.query("CREATE ROLE ivy LOGIN; GRANT mongo_river_admin TO ivy; GRANT writers TO ivy; "
             "CREATE TABLE owned_e (id text PRIMARY KEY, n int); "
             "GRANT SELECT, INSERT, UPDATE, DELETE ON owned_e TO writers")
    pg.query("CREATE SERVER own_srv FOREIGN DATA WRAPPER mongo_river OPTIONS (uri %s); "
             "CREATE USER MAPPING FOR PUBLIC SERVER own_srv; GRANT USAGE ON FOREIGN SERVER own_srv TO ivy",
             (mongo.uri,))
    mongo.client().own.e.insert_one({"_id": "e-1", "n": 1})
    ok(as_role(pg, "ivy", "SELECT mongo_river.create_river('ivy_r', 'server:own_srv')"))
    ok(as_role(pg, "ivy", "SELECT mongo_river.map_collection('ivy_r', 'own.e', 'owned_e', %s)", (json.dumps(MAPPING),)))
    wait_synced(pg, "ivy_r")
    before = catalog(pg)
    code, detail = as_role(pg, "postgres", "REASSIGN OWNED BY ivy TO erin")
    figures(attacks=1)
    assert code == "42501" and "own_srv" in detail, f"{code}: {detail}"
    assert catalog(pg) == before
    pg.query("GRANT USAGE ON FOREIGN SERVER own_srv TO erin; REASSIGN OWNED BY ivy TO erin")
    wait_for(lambda: worker_user(pg, "ivy_r") == "erin", 30, 0.1, "ivy_r's worker to run as erin")
    ok(as_role(pg, "erin", "SELECT mongo_river.drop_river('ivy_r')"))


def test_nologin_owner_waits_with_a_reason(own, mongo):
    pg = own
    declare(pg, mongo, "gina", "gina_r", "b", "owned_b")
    # A running worker whose owner may no longer log in stops; status says why.
    warned = notices_of(pg, "ALTER ROLE gina NOLOGIN")
    assert "WARNING" in warned and "gina_r" in warned and "LOGIN" in warned, warned
    error = wait_for(lambda: (last_error(pg, "gina_r") or "") if "log in" in (last_error(pg, "gina_r") or "")
                     else None, 30, 0.1, "gina_r's status to say its owner cannot log in")
    assert "gina" in error, error
    wait_for(lambda: worker_user(pg, "gina_r") is None, 30, 0.1, "gina_r's worker to stop")
    pg.query("ALTER ROLE gina LOGIN")
    wait_for(lambda: worker_user(pg, "gina_r") == "gina", 30, 0.1, "gina_r's worker to run again")
    mongo.client().own.b.insert_one({"_id": "after-login", "n": 2})
    wait_synced(pg, "gina_r")
    assert "log in" not in (last_error(pg, "gina_r") or "")
    # A river started while its owner cannot log in: no worker is started (no FATAL loop).
    pg.query("SELECT mongo_river.stop('gina_r'); ALTER ROLE gina NOLOGIN; SELECT mongo_river.start('gina_r')")
    wait_for(lambda: "log in" in (last_error(pg, "gina_r") or ""), 30, 0.1, "the reason in status")
    mongo.client().own.b.insert_one({"_id": "while-nologin", "n": 3})
    pg.query("ALTER ROLE gina LOGIN")
    wait_synced(pg, "gina_r")
    assert pg.scalar("SELECT n FROM owned_b WHERE id = 'while-nologin'") == 3
    failures = login_failures(pg)
    assert not failures, failures[:5]
    said = [line for line in pg.log().splitlines() if "launcher: river \"gina_r\"" in line and "log in" in line]
    assert len(said) == 2, said  # once per wait
    host_intact(pg, pg.postmaster)


def test_orphaned_river_waits_and_can_be_dropped(own, mongo):
    pg = own
    declare(pg, mongo, "hank", "hank_r", "c", "owned_c")
    declare(pg, mongo, "hank", "hank_r2", "d", "owned_d")
    # From a database without the extension, nothing knows hank owns rivers.
    ok(as_role(pg, "postgres", "DROP ROLE hank", dbname="postgres"))
    for river in ("hank_r", "hank_r2"):
        error = wait_for(lambda: (last_error(pg, river) or "") if "does not exist" in (last_error(pg, river) or "")
                         else None, 30, 0.1, f"{river}'s status to say its owner is gone")
        assert "drop_river" in error, error
        wait_for(lambda: worker_user(pg, river) is None, 30, 0.1, f"{river}'s worker to stop")
    pg.query("SELECT mongo_river.stop('hank_r'); SELECT mongo_river.start('hank_r')")
    wait_for(lambda: "does not exist" in (last_error(pg, "hank_r") or ""), 30, 0.1, "the reason in status")
    # A superuser's sync_once of the orphan says what is wrong.
    pg.query("SELECT mongo_river.stop('hank_r')")
    code, detail = as_role(pg, "postgres", "CALL mongo_river.sync_once('hank_r', '5 s')")
    assert code == "42704" and "owner" in detail and "drop_river" in detail, f"{code}: {detail}"
    # A superuser drops the orphans; drop_tables keeps the tables the gone owner did not own.
    pg.query("SELECT mongo_river.drop_river('hank_r')")
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT mongo_river.drop_river('hank_r2', true)")
    conn.close()
    assert pg.scalar("SELECT count(*) FROM mongo_river.river WHERE river LIKE 'hank%'") == 0
    assert pg.scalar("SELECT to_regclass('owned_d') IS NOT NULL")
    failures = login_failures(pg)
    assert not failures, failures[:5]
    host_intact(pg, pg.postmaster)
