"""Review 30: CALL mongo_river.sync_once (a procedure committing per batch, a refused row's batch
rolled back and written again row by row) called where it may not end transactions, or where a
refused row's rollback meets other SPI connections: inside an explicit transaction block, from a
function, from a PL/pgSQL procedure with an EXCEPTION block, from a DO block, with a trigger whose
own dynamic SQL fails. After each: the session works as its role, no backend died, nothing lost
(a later plain CALL brings every good document, the refused ones are rejects), a sync_runs row.

Found on 6df5b23: from a PL/pgSQL block with an EXCEPTION clause the backend dies of SIGSEGV (even
with no refused row): Transaction::~Transaction's new loop finishes SPI connections down to none,
then SPI_rollback dereferences a NULL _SPI_current (the commit before, 5e68cb0^, gave a clean
error); inside BEGIN a refused row ends the session with FATAL "BeginInternalSubTransaction:
unexpected state ABORT" (5e68cb0^: ERROR 2D000); from a function: XX000 "portal snapshots (0) did
not account for all active snapshots (2)" (no check of the call's atomic context)."""

import json
import time

import psycopg2
import pytest

from pgcluster import wait_for
from test_secrets import as_role, auth_peer, host_intact, ok, sec  # noqa: F401

MAP = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}


@pytest.fixture(scope="module")
def r30(sec, auth_peer):
    pg = sec
    auth_peer.client().sec.r30.insert_many([{"_id": f"init{i}", "n": i} for i in range(3)])
    ok(as_role(pg, "bob", "CREATE TABLE public.r30_t (id text PRIMARY KEY, n int CHECK (n >= 0))"))
    ok(as_role(pg, "bob", r"""
        CREATE FUNCTION public.r30_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
        DECLARE x int;
        BEGIN
          IF NEW.n = 777 THEN EXECUTE 'SELECT 1 / (n - n) FROM public.r30_t LIMIT 1' INTO x; END IF;
          IF NEW.n = 778 THEN EXECUTE format('SELECT %s::int', quote_literal('not a number')) INTO x; END IF;
          IF NEW.n = 50 THEN PERFORM pg_sleep(3); END IF;
          RETURN NEW;
        END $f$;
        CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.r30_t FOR EACH ROW EXECUTE FUNCTION public.r30_trg()"""))
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('r30', %s, '{\"batch_size\": 4}')", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('r30')"))
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'r30'") is None,
             30, 0.1, "r30's worker to stop")
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('r30', 'sec.r30', 'r30_t', %s)", (json.dumps(MAP),)))
    ok(as_role(pg, "bob", "CALL mongo_river.sync_once('r30', '1 min', NULL)"))
    assert pg.scalar("SELECT count(*) FROM r30_t") == 3
    return pg


def crash_lines(pg):
    return [line for line in pg.log().splitlines() if "terminated by signal" in line]


def no_new_crash(pg, before, what):
    new = crash_lines(pg)[len(before):]
    assert not new, f"{what}: a backend crashed: " + "; ".join(new)


def identity(cur):
    cur.execute("SELECT 1, current_user, mongo_river_internal._caller(), "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
    return cur.fetchone()


def add_docs(auth_peer, tag, bad_n):
    """six good documents and one PostgreSQL refuses (bad_n, None: none) in the middle of a batch."""
    docs = [{"_id": f"{tag}{i}", "n": i} for i in range(3)] + \
           ([{"_id": f"{tag}_bad", "n": bad_n}] if bad_n is not None else []) + \
           [{"_id": f"{tag}{i}", "n": i} for i in range(3, 6)]
    auth_peer.client().sec.r30.insert_many(docs)


def settle(pg, tag):
    """a plain CALL afterwards: every good document of tag applied, the refused one a reject."""
    result = as_role(pg, "bob", "CALL mongo_river.sync_once('r30', '1 min', NULL)")
    good = pg.scalar("SELECT count(*) FROM r30_t WHERE id LIKE %s AND id NOT LIKE '%%bad'", (f"{tag}%",))
    rejected = pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'r30' AND document_id = %s",
                         (f"{tag}_bad",))
    return result, good, rejected


def run_in(pg, sql, autocommit=True, setup=None):
    conn = pg.connect(user="bob")
    conn.autocommit = autocommit
    outcome = None
    with conn.cursor() as cur:
        try:
            if setup:
                cur.execute(setup)
            cur.execute(sql)
            outcome = "ok"
        except psycopg2.Error as e:
            outcome = f"{e.pgcode}: {(e.pgerror or str(e)).strip()[:300]}"
            if conn.closed:
                time.sleep(1)  # the postmaster logs a crashed backend a moment later
        if not autocommit and not conn.closed:
            conn.rollback()
        try:
            after = identity(cur)
        except (psycopg2.Error, psycopg2.InterfaceError) as e:
            after = f"session broken: {e.pgcode}: {e}"
    conn.close()
    return outcome, after


def test_sync_once_cancelled_mid_batch_keeps_session(r30, auth_peer):
    """a statement_timeout in a trigger's pg_sleep while a refused row's batch is rewritten row by row."""
    pg = r30
    tag = "cancel_"
    auth_peer.client().sec.r30.insert_many([{"_id": f"{tag}{i}", "n": i} for i in range(2)] +
                                           [{"_id": f"{tag}_bad", "n": -1}, {"_id": f"{tag}9", "n": 50}] +
                                           [{"_id": f"{tag}{i}", "n": i} for i in range(2, 6)])
    crashes = crash_lines(pg)
    outcome, after = run_in(pg, "CALL mongo_river.sync_once('r30', '30 s', NULL)",
                            setup="SET statement_timeout = '1500ms'")
    no_new_crash(pg, crashes, f"cancelled ({outcome})")
    assert isinstance(after, tuple) and after[:3] == (1, "bob", "bob"), f"after ({outcome}): {after}"
    result = as_role(pg, "bob", "CALL mongo_river.sync_once('r30', '1 min', NULL)")
    assert result[0] is None, result
    good = pg.scalar("SELECT count(*) FROM r30_t WHERE id LIKE 'cancel%' AND id NOT LIKE '%bad'")
    assert good == 7, f"after a cancelled run ({outcome}) and a plain one: {good}/7 applied"
    runs = pg.query("SELECT outcome FROM mongo_river.sync_runs WHERE river = 'r30' ORDER BY id DESC LIMIT 2")
    assert runs[0][0] == "caught_up", runs


def test_sync_once_history_mode_refused_rows_from_do_block(r30, auth_peer):
    """a history-mode mapping: refused versions (a CHECK added by the owner) in the copy and the
    stream, sync_once from a DO block (non-atomic): rejects recorded, every other version kept."""
    pg = r30
    crashes = crash_lines(pg)
    coll = auth_peer.client().sec.r30h
    coll.insert_many([{"_id": f"h{i}", "n": i} for i in range(5)] + [{"_id": "h_bad", "n": -1}])
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('r30h', %s, '{\"batch_size\": 3}')", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('r30h')"))
    wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = 'r30h'") is None,
             30, 0.1, "r30h's worker to stop")
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('r30h', 'sec.r30h', 'r30h_t', %s, %s)",
               (json.dumps(MAP), json.dumps({"mode": "history"}))))
    ok(as_role(pg, "bob", "ALTER TABLE public.r30h_t ADD CONSTRAINT n_ok CHECK (n >= 0) NOT VALID"))
    do = "DO $d$ DECLARE a bigint; BEGIN CALL mongo_river.sync_once('r30h', '30 s', a); END $d$"
    first = as_role(pg, "bob", do)
    coll.update_one({"_id": "h1"}, {"$set": {"n": -10}})
    coll.update_one({"_id": "h2"}, {"$set": {"n": 20}})
    coll.insert_one({"_id": "h9", "n": 9})
    second = as_role(pg, "bob", do)
    no_new_crash(pg, crashes, f"history ({first}, {second})")
    assert first[0] is None and second[0] is None, f"DO sync_once on a history river: {first}; {second}"
    rejected = {r[0] for r in pg.query("SELECT document_id FROM mongo_river.rejects WHERE river = 'r30h'")}
    versions = pg.scalar("SELECT count(*) FROM r30h_t")
    runs = pg.query("SELECT outcome FROM mongo_river.sync_runs WHERE river = 'r30h' ORDER BY id")
    assert {"h_bad", "h1"} <= rejected and versions >= 7 and runs == [("caught_up",), ("caught_up",)], \
        f"history: rejects {rejected}, {versions} versions kept (>= 7), runs {runs}"
    assert pg.scalar("SELECT count(*) FROM r30h_t WHERE n = 20") == 1


CASES = {
    # a DO block at top level (non-atomic): must work like a plain CALL
    "do_block": dict(sql="DO $d$ DECLARE a bigint; BEGIN CALL mongo_river.sync_once('r30', '30 s', a); END $d$"),
    # an explicit transaction block: CALL is atomic there (must be a clean error, never half-done)
    "txn_block": dict(sql="CALL mongo_river.sync_once('r30', '30 s', NULL)", autocommit=False),
    # a function: atomic too
    "function": dict(setup=r"""
        CREATE OR REPLACE FUNCTION public.r30_fn() RETURNS text LANGUAGE plpgsql AS $f$
        DECLARE a bigint;
        BEGIN CALL mongo_river.sync_once('r30', '30 s', a); RETURN a::text; END $f$""",
                     sql="SELECT public.r30_fn()"),
    # a procedure whose block has an EXCEPTION clause (a subtransaction is open around the CALL)
    "proc_exception_block": dict(setup=r"""
        CREATE OR REPLACE PROCEDURE public.r30_proc(INOUT msg text DEFAULT NULL) LANGUAGE plpgsql AS $p$
        DECLARE a bigint;
        BEGIN
          BEGIN
            CALL mongo_river.sync_once('r30', '30 s', a);
            msg := 'applied ' || a;
          EXCEPTION WHEN others THEN
            msg := SQLSTATE || ' ' || SQLERRM;
          END;
        END $p$""", sql="CALL public.r30_proc()"),
}


@pytest.mark.parametrize("bad_n", [None, -1, 777, 778])
@pytest.mark.parametrize("case", list(CASES))
def test_sync_once_with_refused_row_in_context(r30, auth_peer, case, bad_n):
    pg = r30
    spec = CASES[case]
    tag = f"{case}_{abs(bad_n or 0)}_"
    crashes = crash_lines(pg)
    if spec.get("setup"):
        ok(as_role(pg, "bob", spec["setup"]))
    runs_before = pg.scalar("SELECT count(*) FROM mongo_river.sync_runs WHERE river = 'r30'")
    add_docs(auth_peer, tag, bad_n)
    outcome, after = run_in(pg, spec["sql"], autocommit=spec.get("autocommit", True))
    no_new_crash(pg, crashes, f"{case} ({outcome})")
    assert isinstance(after, tuple) and after[:3] == (1, "bob", "bob") and not after[3], \
        f"{case}: after sync_once ({outcome}) the session is {after}"
    assert not (outcome or "").startswith("XX") and "unexpected state" not in (outcome or ""), \
        f"{case}: sync_once in this context failed with an internal error: {outcome}"
    if case == "do_block":
        assert outcome == "ok", f"DO block: {outcome}"
        runs_after = pg.scalar("SELECT count(*) FROM mongo_river.sync_runs WHERE river = 'r30'")
        assert runs_after > runs_before, "no sync_runs row for the DO block's run"
    result, good, rejected = settle(pg, tag)
    assert result[0] is None, f"{case}: the plain CALL after it failed: {result}"
    assert good == 6 and rejected == (bad_n is not None), \
        f"{case} ({outcome}): afterwards {good}/6 good documents applied, {rejected} reject for {tag}_bad"
    last = pg.query("SELECT outcome, error FROM mongo_river.sync_runs WHERE river = 'r30' ORDER BY id DESC LIMIT 1")
    assert last and last[0][0] == "caught_up", f"{case}: last sync_runs row {last}"
    no_new_crash(pg, crashes, f"{case} ({outcome})")


