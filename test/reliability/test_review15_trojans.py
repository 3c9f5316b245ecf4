"""Review of issue 15 (privilege model): trojans, nested calls, recorded caller, direct calls.

Each test states what the README promises and asserts it. A failing assertion is a break."""

import json

import psycopg2
import pytest

from pgcluster import wait_for
from river import wait_synced
from test_secrets import (MAPPING, PASSWORD, as_role, auth_peer, host_intact, ok,  # noqa: F401
                          sec)

IMPLS = {
    "alter_river": "('alice_r', NULL, '{\"batch_size\": 5}')",
    "create_river": "('x_r', 'mongodb://h/', '{}')",
    "discard_rejects": "('alice_r', NULL)",
    "drop_river": "('alice_r', false)",
    "import_mappings": "('alice_r', '{}'::jsonb, '{}')",
    "infer_mapping": "('alice_r', 'sec.a', 10)",
    "map_collection": "('alice_r', 'sec.b', 'x_t', NULL, '{}')",
    "map_database": "('alice_r', 'sec', '{}')",
    "resync": "('alice_r', NULL)",
    "retry_rejects": "('alice_r', NULL)",
    "start": "('alice_r')",
    "stop": "('alice_r')",
    "unmap_collection": "('alice_r', 'sec.a')",
    "verify": "('alice_r', NULL, NULL, false)",
    "wait_for_sync": "('alice_r', '1 s')",
}

TRIGGER = r"""
CREATE TABLE public.bob_log (op text, cu text, su text, caller text, sp text, note text);
GRANT ALL ON public.bob_log TO PUBLIC;
CREATE FUNCTION public.bob_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE c text; n text := '';
BEGIN
  BEGIN c := mongo_river_internal._caller(); EXCEPTION WHEN others THEN c := 'err ' || SQLSTATE; END;
  BEGIN PERFORM mongo_river.alter_river('alice_r', NULL, '{"batch_size": 7}'); n := n || 'alter_alice_OK;';
  EXCEPTION WHEN others THEN n := n || 'alter:' || SQLSTATE || ';'; END;
  BEGIN n := n || 'rivers:' || coalesce((SELECT string_agg(river || '=' || uri, ',') FROM mongo_river.river), '') || ';';
  EXCEPTION WHEN others THEN n := n || 'read:' || SQLSTATE || ';'; END;
  BEGIN n := n || 'rej:' || coalesce((SELECT string_agg(document::text, ',') FROM mongo_river.rejects
                                      WHERE river = 'alice_r'), '') || ';';
  EXCEPTION WHEN others THEN n := n || 'rejread:' || SQLSTATE || ';'; END;
  BEGIN PERFORM set_config('search_path', 'bobs, pg_catalog', false); n := n || 'sp_set;';
  EXCEPTION WHEN others THEN n := n || 'sp:' || SQLSTATE || ';'; END;
  BEGIN PERFORM set_config('work_mem', '1234kB', false); n := n || 'wm_set;';
  EXCEPTION WHEN others THEN n := n || 'wm:' || SQLSTATE || ';'; END;
  BEGIN EXECUTE 'CREATE TEMP VIEW trojan_view AS SELECT 1 AS x'; n := n || 'temp_OK;';
  EXCEPTION WHEN others THEN n := n || 'temp:' || SQLSTATE || ';'; END;
  BEGIN EXECUTE 'PREPARE trojan_stmt AS SELECT 1'; n := n || 'prepare_OK;';
  EXCEPTION WHEN others THEN n := n || 'prepare:' || SQLSTATE || ';'; END;
  BEGIN PERFORM set_config('role', 'postgres', false); n := n || 'role_OK:' || current_user || ';';
  EXCEPTION WHEN others THEN n := n || 'role:' || SQLSTATE || ';'; END;
  BEGIN PERFORM set_config('session_authorization', 'postgres', false); n := n || 'sessauth_OK:' || current_user || ';';
  EXCEPTION WHEN others THEN n := n || 'sessauth:' || SQLSTATE || ';'; END;
  INSERT INTO public.bob_log VALUES (TG_OP, current_user, session_user, c, current_setting('search_path'), n);
  RETURN NEW;
END $f$;
"""


@pytest.fixture(scope="module")
def rev(sec, auth_peer):
    pg = sec
    pg.query("CREATE ROLE dave LOGIN CREATEROLE")
    pg.query("CREATE SCHEMA bobs AUTHORIZATION bob")
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob2', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob2', 'sec.b', 'bob_b', %s)",
               (json.dumps(MAPPING),)))
    wait_synced(pg, "bob2")
    ok(as_role(pg, "bob", TRIGGER))
    ok(as_role(pg, "bob", "CREATE TRIGGER bob_t BEFORE INSERT OR UPDATE ON public.bob_b "
                          "FOR EACH ROW EXECUTE FUNCTION public.bob_trg()"))
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('bob2')"))
    return pg


def superuser_session(pg, statements):
    """Runs statements in one superuser session; returns what the session looks like afterwards."""
    conn = pg.connect()
    conn.autocommit = True
    out = {}
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        cur.execute("SELECT current_user, session_user, current_setting('search_path'), "
                    "current_setting('work_mem'), to_regclass('pg_temp.trojan_view') IS NOT NULL, "
                    "(SELECT count(*) FROM pg_prepared_statements WHERE name = 'trojan_stmt')")
        out = dict(zip(["cu", "su", "sp", "wm", "temp", "prep"], cur.fetchone()))
    conn.close()
    return out


def check_trojan(pg, after, what):
    log = pg.query("SELECT * FROM public.bob_log")
    pg.query("DELETE FROM public.bob_log")
    assert log, f"{what}: bob's trigger never ran"
    problems = []
    for op, cu, su, caller, sp, note in log:
        if cu != "bob":
            problems.append(f"trigger ran as {cu}")
        if caller not in (None, "bob"):
            problems.append(f"recorded caller inside bob's trigger: {caller}")
        for bad in ("alter_alice_OK", "temp_OK", "prepare_OK", "role_OK", "sessauth_OK", "alice_r="):
            if bad in note:
                problems.append(f"{bad} in {note}")
    opts = pg.scalar("SELECT options::text FROM mongo_river.river WHERE river = 'alice_r'")
    if '"batch_size": 7' in opts:
        problems.append("alice_r altered from bob's trigger")
    if after["sp"] != "\"$user\", public" or after["wm"] == "1234kB":
        problems.append(f"superuser session's settings changed by bob's trigger: {after}")
    if after["temp"] or after["prep"] or after["cu"] != "postgres":
        problems.append(f"superuser session left with bob's objects/identity: {after}")
    assert not problems, f"{what}: {problems}\nlog: {log}"


def test_trojan_trigger_superuser_sync_once(rev, auth_peer):
    """A superuser's (pg_cron's) CALL sync_once on bob's river fires bob's trigger: it must run as
    bob, with bob recorded, and leave nothing in the superuser's session."""
    pg = rev
    auth_peer.client().sec.b.insert_one({"_id": "s1", "n": 1, "ssn": 1})
    after = superuser_session(pg, ["CALL mongo_river.sync_once('bob2', '30 s', NULL)"])
    assert pg.scalar("SELECT count(*) FROM bob_b WHERE id = 's1'") == 1
    check_trojan(pg, after, "sync_once")
    host_intact(pg, pg.postmaster)


def test_trojan_trigger_superuser_verify_repair(rev, auth_peer):
    pg = rev
    pg.query("ALTER TABLE bob_b DISABLE TRIGGER bob_t; DELETE FROM bob_b WHERE id = 'b1'; "
             "ALTER TABLE bob_b ENABLE TRIGGER bob_t")
    after = superuser_session(pg, ["SELECT * FROM mongo_river.verify('bob2', repair => true)"])
    assert pg.scalar("SELECT count(*) FROM bob_b WHERE id = 'b1'") == 1
    check_trojan(pg, after, "verify(repair)")
    host_intact(pg, pg.postmaster)


def test_trojan_trigger_superuser_retry_rejects(rev, auth_peer):
    pg = rev
    client = auth_peer.client()
    client.sec.b.insert_one({"_id": "r1", "n": 1, "ssn": "not-a-number"})
    pg.query("CALL mongo_river.sync_once('bob2', '30 s', NULL)")
    pg.query("DELETE FROM public.bob_log")
    assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'bob2'") >= 1
    client.sec.b.update_one({"_id": "r1"}, {"$set": {"ssn": 3}})
    after = superuser_session(pg, ["SELECT mongo_river.retry_rejects('bob2')"])
    assert pg.scalar("SELECT count(*) FROM bob_b WHERE id = 'r1'") == 1
    check_trojan(pg, after, "retry_rejects")
    host_intact(pg, pg.postmaster)


def test_implementations_not_callable_directly(rev):
    """Nobody but the catalog owner calls mongo_river_internal.<impl> directly (42501)."""
    pg = rev
    wrong = []
    for role in ("alice", "bob", "carol", "dave"):
        for fn, args in IMPLS.items():
            sql = f"SELECT * FROM mongo_river_internal.{fn}{args}"
            if fn == "sync_once":
                continue
            code, detail = as_role(pg, role, sql)
            if code != "42501":
                wrong.append(f"{role}: {fn} -> {code} {str(detail)[:120]}")
        code, detail = as_role(pg, role, "CALL mongo_river_internal.sync_once('alice_r', '1 s', NULL)")
        if code != "42501":
            wrong.append(f"{role}: sync_once -> {code} {str(detail)[:120]}")
    assert not wrong, wrong
    host_intact(pg, pg.postmaster)


def test_internal_helpers_leak_nothing_to_other_admins(rev):
    """Helpers EXECUTE-granted to mongo_river_admin or PUBLIC must not show another owner's state:
    bob calls _live_status/_live_progress and reads status/copy_progress/columns/sync_runs."""
    pg = rev
    leaks = []
    for role in ("bob", "carol"):
        for sql in ["SELECT river, last_error FROM mongo_river_internal._live_status()",
                    "SELECT river FROM mongo_river_internal._live_progress()",
                    "SELECT river FROM mongo_river.status", "SELECT river FROM mongo_river.copy_progress",
                    "SELECT river FROM mongo_river.sync_runs",
                    "SELECT river FROM mongo_river.rejects", "SELECT river FROM mongo_river.collection_map",
                    "SELECT river FROM mongo_river.mapping_state"]:
            code, rows = as_role(pg, role, sql)
            if code is None and "alice_r" in repr(rows):
                leaks.append(f"{role}: {sql} -> {rows}")
    assert not leaks, leaks


def test_caller_after_caught_exception(rev):
    """alice's SECURITY DEFINER function, run by carol, fails inside mongo_river; carol catches it.
    Afterwards carol's session must not still carry alice (or postgres) as the recorded caller."""
    pg = rev
    ok(as_role(pg, "alice", """
        CREATE FUNCTION public.alice_fail() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
        BEGIN PERFORM mongo_river.alter_river('alice_r', NULL, '{"batch_size": -1}'); END $$;
        REVOKE ALL ON FUNCTION public.alice_fail() FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION public.alice_fail() TO carol, bob"""))
    conn = pg.connect(user="bob")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("""DO $$ BEGIN PERFORM public.alice_fail(); EXCEPTION WHEN others THEN NULL; END $$""")
        cur.execute("SELECT mongo_river_internal._caller()")
        caller_after = cur.fetchone()[0]
        cur.execute("BEGIN")
        cur.execute("SAVEPOINT s")
        try:
            cur.execute("SELECT public.alice_fail()")
        except psycopg2.Error:
            cur.execute("ROLLBACK TO SAVEPOINT s")
        cur.execute("SELECT mongo_river_internal._caller()")
        caller_after2 = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM mongo_river.river WHERE river = 'alice_r'")
        seen = cur.fetchone()[0]
        cur.execute("COMMIT")
    conn.close()
    assert caller_after in (None, "bob") and caller_after2 in (None, "bob"), (caller_after, caller_after2)
    assert seen == 0


def test_definer_function_of_bob_called_by_alice(rev):
    """bob's SECURITY DEFINER function called by alice reaches nothing of alice's."""
    pg = rev
    ok(as_role(pg, "bob", """
        CREATE FUNCTION public.bob_def() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$
        DECLARE n text := '';
        BEGIN
          BEGIN PERFORM mongo_river.stop('alice_r'); n := n || 'stop_OK;';
          EXCEPTION WHEN others THEN n := n || 'stop:' || SQLSTATE || ';'; END;
          BEGIN n := n || coalesce((SELECT string_agg(river || '=' || uri, ',') FROM mongo_river.river), '');
          EXCEPTION WHEN others THEN n := n || 'read:' || SQLSTATE; END;
          BEGIN n := n || ';v:' || (SELECT count(*) FROM mongo_river.verify('alice_r'));
          EXCEPTION WHEN others THEN n := n || ';verify:' || SQLSTATE; END;
          BEGIN n := n || ';w:' || mongo_river.wait_for_sync('alice_r', '1 s');
          EXCEPTION WHEN others THEN n := n || ';wait:' || SQLSTATE; END;
          RETURN n;
        END $$;
        GRANT EXECUTE ON FUNCTION public.bob_def() TO PUBLIC"""))
    result = ok(as_role(pg, "alice", "SELECT public.bob_def()"))[0][0]
    assert "stop_OK" not in result and "alice_r=" not in result and ";v:" not in result and ";w:" not in result, result
    assert pg.scalar("SELECT enabled FROM mongo_river.river WHERE river = 'alice_r'")


def test_alice_definer_function_for_plain_role(rev):
    """alice's definer function granted to carol manages alice's river (documented to work)."""
    pg = rev
    ok(as_role(pg, "alice", """
        CREATE FUNCTION public.alice_wait() RETURNS boolean LANGUAGE sql SECURITY DEFINER AS
        $$ SELECT mongo_river.wait_for_sync('alice_r', '20 s') $$;
        GRANT EXECUTE ON FUNCTION public.alice_wait() TO carol"""))
    assert ok(as_role(pg, "carol", "SELECT public.alice_wait()")) == [(True,)]
