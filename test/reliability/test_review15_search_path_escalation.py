"""Review of issue 15: the C implementations (sync_once, verify, retry_rejects, wait_for_sync) are
not SECURITY DEFINER and pin no search_path; they run their catalog SQL as the catalog's owner
(AsCatalogOwner) under the CALLER's search_path. The README: "the worker and the C functions write
catalog rows as the catalog's owner ... the owner's triggers never run with the caller's rights",
"nobody calls the implementations directly". An admin who shadows pg_catalog functions
(search_path = bobs, pg_catalog) gets them run as the catalog owner (a superuser here).

Also: a trojan trigger of bob's, fired by a superuser's sync_once, persists settings (search_path),
a temp view and a prepared statement into the superuser's session; the superuser's next plain
query then runs bob's code as superuser."""

import json

import pytest

from river import wait_synced
from test_secrets import MAPPING, as_role, auth_peer, host_intact, ok, sec  # noqa: F401

SHADOW = r"""
CREATE TABLE IF NOT EXISTS public.pwn_log (fn text, cu text, su text, super boolean);
GRANT ALL ON public.pwn_log TO PUBLIC;
CREATE OR REPLACE FUNCTION bobs.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.pwn_log VALUES ('now', current_user, session_user,
      (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user));
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE bob SUPERUSER';
  END IF;
  RETURN pg_catalog.now();
END $f$;
"""


@pytest.fixture(scope="module")
def esc(sec, auth_peer):
    pg = sec
    pg.query("CREATE SCHEMA bobs AUTHORIZATION bob")
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob3', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob3', 'sec.b', 'bob3_b', %s)",
               (json.dumps(MAPPING),)))
    wait_synced(pg, "bob3")
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('bob3')"))
    ok(as_role(pg, "bob", SHADOW))
    return pg


@pytest.mark.parametrize("call", [
    "CALL mongo_river.sync_once('bob3', '20 s', NULL)",
    "SELECT count(*) FROM mongo_river.verify('bob3')",
    "SELECT count(*) FROM mongo_river.verify('bob3', repair => true)",
    "SELECT mongo_river.retry_rejects('bob3')",
    "SELECT mongo_river.wait_for_sync('bob3', '1 s')",
    "SELECT mongo_river.discard_rejects('bob3')",
    "SELECT mongo_river.resync('bob3')",
    "SELECT mongo_river.start('bob3')",
    "SELECT mongo_river.stop('bob3')",
])
def test_admin_shadows_now_and_becomes_superuser(esc, auth_peer, call):
    pg = esc
    pg.query("ALTER ROLE bob NOSUPERUSER; TRUNCATE public.pwn_log")
    auth_peer.client().sec.b.insert_one({"_id": f"e{abs(hash(call))}", "n": 1, "ssn": 1})
    conn = pg.connect(user="bob")
    conn.autocommit = True
    error = None
    with conn.cursor() as cur:
        cur.execute("SET search_path = bobs, pg_catalog")
        try:
            cur.execute(call)
        except Exception as e:  # the call's own outcome does not matter
            error = str(e).strip()
    conn.close()
    ran = pg.query("SELECT * FROM public.pwn_log WHERE cu <> 'bob'")
    became = pg.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'bob'")
    pg.query("ALTER ROLE bob NOSUPERUSER")
    assert not ran and not became, f"{call}: bob's bobs.now() ran as {ran}; bob superuser now: {became}; " \
                                   f"call error: {error}"
    host_intact(pg, pg.postmaster)


def test_trojan_trigger_hijacks_superuser_session(esc, auth_peer):
    """bob's trigger, fired by a superuser's CALL sync_once on bob's river (say from a maintenance
    session), sets the session's search_path to bobs first. The superuser's next `SELECT now()`
    runs bob's function as superuser."""
    pg = esc
    pg.query("ALTER ROLE bob NOSUPERUSER; TRUNCATE public.pwn_log")
    ok(as_role(pg, "bob", r"""
        CREATE FUNCTION public.bob3_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN PERFORM pg_catalog.set_config('search_path', 'bobs, pg_catalog', false); RETURN NEW; END $f$;
        CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.bob3_b FOR EACH ROW EXECUTE FUNCTION public.bob3_trg()"""))
    auth_peer.client().sec.b.insert_one({"_id": "hijack", "n": 1, "ssn": 1})
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CALL mongo_river.sync_once('bob3', '20 s', NULL)")
        cur.execute("SHOW search_path")
        path = cur.fetchone()[0]
        cur.execute("SELECT now()")  # the superuser's next, innocent statement
    conn.close()
    became = pg.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'bob'")
    pg.query("ALTER ROLE bob NOSUPERUSER")
    assert path == '"$user", public' and not became, \
        f"superuser's search_path after sync_once: {path}; bob became superuser: {became}"


OPERATORS = r"""
CREATE OR REPLACE FUNCTION bobs.log_if_super(what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
    INSERT INTO public.pwn_log VALUES (what, current_user, session_user, true);
  END IF;
END $f$;
CREATE OR REPLACE FUNCTION bobs.nameeq(a name, b name) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM bobs.log_if_super('name='); RETURN pg_catalog.nameeq(a, b); END $f$;
CREATE OR REPLACE FUNCTION bobs.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM bobs.log_if_super('text='); RETURN pg_catalog.texteq(a, b); END $f$;
CREATE OR REPLACE FUNCTION bobs.int8eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM bobs.log_if_super('int8='); RETURN pg_catalog.int8eq(a, b); END $f$;
CREATE OR REPLACE FUNCTION bobs.uuid_eq(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM bobs.log_if_super('uuid='); RETURN pg_catalog.uuid_eq(a, b); END $f$;
CREATE OR REPLACE FUNCTION bobs.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM bobs.log_if_super('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $f$;
CREATE OR REPLACE FUNCTION bobs.lower(a text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM bobs.log_if_super('lower'); RETURN pg_catalog.lower(a); END $f$;
DROP OPERATOR IF EXISTS bobs.= (name, name); DROP OPERATOR IF EXISTS bobs.= (text, text);
DROP OPERATOR IF EXISTS bobs.= (bigint, bigint); DROP OPERATOR IF EXISTS bobs.= (uuid, uuid);
CREATE OPERATOR bobs.= (LEFTARG = name, RIGHTARG = name, FUNCTION = bobs.nameeq);
CREATE OPERATOR bobs.= (LEFTARG = text, RIGHTARG = text, FUNCTION = bobs.texteq);
CREATE OPERATOR bobs.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = bobs.int8eq);
CREATE OPERATOR bobs.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = bobs.uuid_eq);
"""


@pytest.mark.parametrize("call", [
    "SELECT count(*) FROM mongo_river.verify('bob3')",
    "SELECT count(*) FROM mongo_river.verify('bob3', repair => true)",
    "SELECT mongo_river.retry_rejects('bob3')",
    "SELECT mongo_river.wait_for_sync('bob3', '1 s')",
    "SELECT mongo_river.discard_rejects('bob3')",
    "SELECT mongo_river.infer_mapping('bob3', 'sec.b')",
    "SELECT mongo_river.alter_river('bob3', NULL, '{\"batch_size\": 9}')",
    "SELECT * FROM mongo_river.status",
    "SELECT * FROM mongo_river.rivers",
])
def test_admin_shadows_operators(esc, call):
    """The same with operators (= on name, text, bigint, uuid) and a few common functions."""
    pg = esc
    pg.query("TRUNCATE public.pwn_log")
    ok(as_role(pg, "bob", OPERATORS))
    conn = pg.connect(user="bob")
    conn.autocommit = True
    error = None
    with conn.cursor() as cur:
        cur.execute("SET search_path = bobs, pg_catalog")
        try:
            cur.execute(call)
        except Exception as e:
            error = str(e).strip()
    conn.close()
    ran = pg.query("SELECT DISTINCT fn, cu FROM public.pwn_log")
    assert not ran, f"{call}: bob's shadows ran as superuser: {ran}; call error: {error}"
    host_intact(pg, pg.postmaster)


def test_owner_role_setting_reaches_worker_catalog_writes(esc, auth_peer):
    """bob needs no call at all: ALTER ROLE bob SET search_path (any role may set its own) is applied
    to the worker, which logs in as bob and writes catalog rows as the catalog owner (a superuser)
    with unqualified now(): bob's bobs.now() runs as superuser inside his own river's worker."""
    pg = esc
    pg.query("ALTER ROLE bob NOSUPERUSER; TRUNCATE public.pwn_log")
    ok(as_role(pg, "bob", "DROP OPERATOR IF EXISTS bobs.= (name, name); DROP OPERATOR IF EXISTS bobs.= (text, text); "
                          "DROP OPERATOR IF EXISTS bobs.= (bigint, bigint); DROP OPERATOR IF EXISTS bobs.= (uuid, uuid)"))
    ok(as_role(pg, "bob", "DROP TRIGGER IF EXISTS t ON public.bob3_b"))
    ok(as_role(pg, "bob", "ALTER ROLE bob SET search_path = bobs, pg_catalog"))
    try:
        ok(as_role(pg, "bob", "SELECT mongo_river.start('bob3')"))
        auth_peer.client().sec.b.insert_one({"_id": "worker_pwn", "n": 1, "ssn": 1})
        wait_synced(pg, "bob3", 60)
        became = pg.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'bob'")
        ran = pg.query("SELECT DISTINCT fn, cu, su FROM public.pwn_log")
    finally:
        pg.query("ALTER ROLE bob RESET search_path; ALTER ROLE bob NOSUPERUSER")
        pg.query("SELECT mongo_river.stop('bob3')")
    assert not ran and not became, f"bob's bobs.now() ran in the worker as {ran}; bob became superuser: {became}"
    host_intact(pg, pg.postmaster)
