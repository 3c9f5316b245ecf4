"""Review of issue 15: nested calls (a mongo_river function from a trigger fired by the worker's or
another mongo_river function's writes), cursors over the set-returning functions fetched after the
function returned (WITH HOLD, across commit/rollback), views, DEFAULT expressions, prepared
statements. Expected: no crash, no postmaster restart, refusals where the README says so."""

import json

import psycopg2
import pytest

from pgcluster import wait_for
from river import wait_synced
from test_secrets import MAPPING, as_role, auth_peer, host_intact, ok, sec  # noqa: F401

NESTED = ["SELECT mongo_river.stop('{r}')", "SELECT count(*) FROM mongo_river.verify('{r}')",
          "SELECT mongo_river.wait_for_sync('{r}', '1 s')", "SELECT mongo_river.retry_rejects('{r}')",
          "SELECT mongo_river.resync('{r}')", "SELECT mongo_river.alter_river('{r}', NULL, '{{\"batch_size\": 3}}')",
          "CALL mongo_river.sync_once('{r}', '1 s', NULL)", "SELECT mongo_river.drop_river('{r}', true)"]


@pytest.fixture(scope="module")
def nc(sec, auth_peer):
    pg = sec
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('nest_r', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('nest_r', 'sec.n', 'nest_n', %s)",
               (json.dumps(MAPPING),)))
    auth_peer.client().sec.n.insert_one({"_id": "n0", "n": 0, "ssn": 0})
    wait_synced(pg, "nest_r")
    ok(as_role(pg, "alice", r"""
        CREATE TABLE public.nest_log (n int, stmt text, outcome text);
        CREATE FUNCTION public.nest_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
        DECLARE s text;
        BEGIN
          IF NEW.n >= 100 AND NOT EXISTS (SELECT 1 FROM public.nest_log l WHERE l.n = NEW.n) THEN
            s := (ARRAY[""" + ",".join("$q$" + s.format(r="nest_r") + "$q$" for s in NESTED) + r"""])[NEW.n - 99];
            BEGIN
              EXECUTE s;
              INSERT INTO public.nest_log VALUES (NEW.n, s, 'ok');
            EXCEPTION WHEN others THEN
              INSERT INTO public.nest_log VALUES (NEW.n, s, SQLSTATE || ' ' || SQLERRM);
            END;
          END IF;
          RETURN NEW;
        END $f$;
        CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.nest_n FOR EACH ROW EXECUTE FUNCTION public.nest_trg()"""))
    return pg


def test_worker_trigger_calls_mongo_river(nc, auth_peer):
    """alice's trigger, fired by her own river's worker, calls each function on that river."""
    pg = nc
    coll = auth_peer.client().sec.n
    for i, stmt in enumerate(NESTED):
        coll.insert_one({"_id": f"nest{i}", "n": 100 + i, "ssn": 1})
        try:
            wait_for(lambda: pg.query("SELECT outcome FROM nest_log WHERE n = %s", (100 + i,)) or
                     (not pg.scalar("SELECT count(*) FROM mongo_river.river WHERE river = 'nest_r'")) or None,
                     30, 0.2, f"the trigger for {stmt}")
        except TimeoutError:
            raise AssertionError(f"river stuck after nested calls: {stmt}\nlog: "
                                 f"{pg.query('SELECT * FROM nest_log ORDER BY n')}\nstatus: "
                                 f"{pg.query('SELECT * FROM mongo_river.status WHERE river = %s', ('nest_r',))}\n" +
                                 "\n".join(l for l in pg.log().splitlines() if "nest_r" in l or "sec.n" in l)[-4000:])
        host_intact(pg, pg.postmaster)
        if pg.scalar("SELECT NOT enabled FROM mongo_river.river WHERE river = 'nest_r'"):
            ok(as_role(pg, "alice", "SELECT mongo_river.start('nest_r')"))
    print(pg.query("SELECT * FROM nest_log ORDER BY n"))
    host_intact(pg, pg.postmaster)


@pytest.mark.parametrize("srf", ["SELECT * FROM mongo_river.verify('alice_r')",
                                 "SELECT * FROM mongo_river.verify('alice_r', NULL, NULL, true)",
                                 "SELECT * FROM mongo_river.import_mappings('alice_r', "
                                 "'{\"sec\": {\"a\": {\"pk\": \"_id\", \"_id\": {\"type\": \"TEXT\"}}}}'::jsonb, "
                                 "'{\"schema\": \"imp\"}')"])
def test_cursors_over_srf(sec, srf):
    pg = sec
    conn = pg.connect(user="alice")
    outcomes = []
    with conn.cursor() as cur:
        for script in [
                ["BEGIN", f"DECLARE c CURSOR WITH HOLD FOR {srf}", "FETCH 1 FROM c", "COMMIT", "FETCH ALL FROM c",
                 "CLOSE c"],
                ["BEGIN", f"DECLARE c CURSOR WITH HOLD FOR {srf}", "COMMIT", "FETCH ALL FROM c", "CLOSE c"],
                ["BEGIN", f"DECLARE c CURSOR WITH HOLD FOR {srf}", "FETCH 1 FROM c", "ROLLBACK"],
                ["BEGIN", "SAVEPOINT s", f"DECLARE c SCROLL CURSOR FOR {srf}", "FETCH 1 FROM c",
                 "ROLLBACK TO SAVEPOINT s", "SELECT 1", "COMMIT"],
                ["BEGIN", f"DECLARE c SCROLL CURSOR FOR {srf}", "FETCH 1 FROM c", "FETCH BACKWARD 1 FROM c",
                 "FETCH ALL FROM c", "COMMIT"],
                ["BEGIN", f"DECLARE c CURSOR FOR {srf}", "FETCH 1 FROM c", "SET ROLE bob", "FETCH ALL FROM c",
                 "COMMIT"],
                [f"PREPARE p AS {srf}", "EXECUTE p", "EXECUTE p", "DEALLOCATE p"]]:
            conn.rollback()
            conn.autocommit = True
            try:
                for sql in script:
                    cur.execute(sql)
                outcomes.append("ok")
            except psycopg2.Error as e:
                outcomes.append(f"{e.pgcode} at {sql}")
                try:
                    cur.execute("ROLLBACK")
                except psycopg2.Error:
                    pass
            try:
                cur.execute("RESET ROLE")
            except psycopg2.Error:
                pass
            cur.execute("SELECT current_user, mongo_river_internal._caller()")
            assert cur.fetchone() == ("alice", "alice")
    conn.close()
    print(outcomes)
    host_intact(pg, pg.postmaster)


def test_cursor_opened_by_alice_fetched_as_bob(sec):
    """SET ROLE bob (alice is not a member of bob: use a definer function instead): alice's definer
    function returns a refcursor over verify('alice_r') not yet fetched; bob fetches it after it
    returned, as bob."""
    pg = sec
    ok(as_role(pg, "alice", r"""
        CREATE FUNCTION public.alice_cur() RETURNS refcursor LANGUAGE plpgsql SECURITY DEFINER AS $f$
        DECLARE c refcursor := 'alice_c';
        BEGIN OPEN c FOR SELECT * FROM mongo_river.verify('alice_r'); RETURN c; END $f$;
        GRANT EXECUTE ON FUNCTION public.alice_cur() TO bob"""))
    conn = pg.connect(user="bob")
    with conn.cursor() as cur:
        cur.execute("SELECT public.alice_cur()")
        try:
            cur.execute("FETCH ALL FROM alice_c")
            outcome = cur.fetchall()
        except psycopg2.Error as e:
            outcome = e.pgcode
    conn.close()
    print(outcome)
    host_intact(pg, pg.postmaster)


def test_view_and_default(sec):
    """A view and a DEFAULT expression owned by alice that call mongo_river run as their invoker:
    bob gets 42501, not alice's rights."""
    pg = sec
    ok(as_role(pg, "alice", r"""
        CREATE VIEW public.alice_v AS SELECT * FROM mongo_river.verify('alice_r');
        CREATE TABLE public.alice_d (x int, ok boolean DEFAULT mongo_river.wait_for_sync('alice_r', '1 s'));
        GRANT SELECT ON public.alice_v TO bob; GRANT INSERT ON public.alice_d TO bob"""))
    code_v, _ = as_role(pg, "bob", "SELECT * FROM public.alice_v")
    code_d, _ = as_role(pg, "bob", "INSERT INTO public.alice_d (x) VALUES (1)")
    assert code_v == "42501" and code_d == "42501", (code_v, code_d)
    host_intact(pg, pg.postmaster)
