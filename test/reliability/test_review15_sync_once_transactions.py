"""Review of issue 15: CALL sync_once commits per batch while it switches user ids (catalog owner
for catalog rows, the river's owner for user tables). An error in a later batch (after a commit)
must leave the caller's session as the caller: current_user, security context, recorded caller."""

import json

import psycopg2
import pytest

from river import wait_synced
from test_secrets import MAPPING, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


@pytest.fixture(scope="module")
def so(sec, auth_peer):
    pg = sec
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob4', %s, '{\"batch_size\": 1}')", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob4', 'sec.c', 'bob4_c', %s)",
               (json.dumps(MAPPING),)))
    auth_peer.client().sec.c.insert_one({"_id": "c0", "n": 0, "ssn": 0})
    wait_synced(pg, "bob4")
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('bob4')"))
    ok(as_role(pg, "bob", r"""
        CREATE FUNCTION public.bob4_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
          IF NEW.n = 99 THEN RAISE EXCEPTION 'boom in batch for %', NEW.id; END IF;
          IF NEW.n = 98 THEN PERFORM pg_sleep(5); END IF;
          RETURN NEW;
        END $f$;
        CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.bob4_c FOR EACH ROW EXECUTE FUNCTION public.bob4_trg()"""))
    return pg


def identity(cur):
    cur.execute("SELECT current_user, session_user, mongo_river_internal._caller(), "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
    return cur.fetchone()


@pytest.mark.parametrize("bad_n,timeout", [(99, None), (98, "1500ms")])
def test_error_after_commit_in_sync_once(so, auth_peer, bad_n, timeout):
    pg = so
    coll = auth_peer.client().sec.c
    base = bad_n * 100
    coll.insert_many([{"_id": f"c{base + i}", "n": i + 1, "ssn": 1} for i in range(5)] +
                     [{"_id": f"c{base + 9}", "n": bad_n, "ssn": 1}])
    conn = pg.connect(user="bob")
    conn.autocommit = True
    outcome = None
    with conn.cursor() as cur:
        if timeout:
            cur.execute(f"SET statement_timeout = '{timeout}'")
        try:
            cur.execute("CALL mongo_river.sync_once('bob4', '30 s', NULL)")
            outcome = "returned"
        except psycopg2.Error as e:
            outcome = f"{e.pgcode}: {e.pgerror.strip()[:200]}"
        cur.execute("SET statement_timeout = 0")
        after = identity(cur)
        code = None
        try:
            cur.execute("SELECT count(*) FROM mongo_river.river WHERE river = 'alice_r'")
            seen = cur.fetchone()[0]
        except psycopg2.Error as e:
            seen = e.pgcode
    conn.close()
    committed = pg.scalar("SELECT count(*) FROM bob4_c WHERE id LIKE %s", (f"c{base}%",))
    assert after[0] == "bob" and after[2] == "bob" and not after[3] and seen == 0, \
        f"after sync_once ({outcome}; {committed} rows committed): session is {after}, sees alice_r: {seen}"
    host_intact(pg, pg.postmaster)


def test_sync_once_inside_procedure_with_commit_rollback(so, auth_peer):
    """bob's procedure: CALL sync_once; ROLLBACK; COMMIT; then checks who it is."""
    pg = so
    ok(as_role(pg, "bob", r"""
        CREATE PROCEDURE public.bob_proc(INOUT who text DEFAULT NULL) LANGUAGE plpgsql AS $p$
        DECLARE a bigint;
        BEGIN
          CALL mongo_river.sync_once('bob4', '5 s', a);
          ROLLBACK;
          CALL mongo_river.sync_once('bob4', '5 s', a);
          COMMIT;
          who := current_user || '/' || mongo_river_internal._caller();
        END $p$"""))
    coll = auth_peer.client().sec.c
    coll.delete_many({"n": {"$in": [98, 99]}})
    coll.insert_one({"_id": "p1", "n": 1, "ssn": 1})
    conn = pg.connect(user="bob")
    conn.autocommit = True
    with conn.cursor() as cur:
        try:
            cur.execute("CALL public.bob_proc()")
            result = cur.fetchall()
        except psycopg2.Error as e:
            result = f"{e.pgcode}: {e.pgerror.strip()}"
        after = identity(cur)
    conn.close()
    assert result == [("bob/bob",)] and after[0] == "bob" and after[2] == "bob", (result, after)
    host_intact(pg, pg.postmaster)
