"""Review of issue 15: "nobody calls the implementations directly". mongo_river_internal._check_river()
is a SECURITY DEFINER trigger function (owner: the catalog's owner) that PUBLIC may EXECUTE, so any
role may attach it to a table of its own. Outside a mongo_river call it stops at _caller()
(42501); inside one (bob's trigger fired by bob's own CALL sync_once) _caller() answers bob and the
trigger runs _check_connection as the catalog owner: it reads any file the server can read as a
password_file and tells bob whether it exists, is readable, is empty (a file oracle as superuser)."""

import json
import os

import psycopg2
import pytest

from river import wait_synced
from test_secrets import MAPPING, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


def test_attach_check_river_to_own_table(sec, auth_peer):
    pg = sec
    secret_file = os.path.join(pg.base, "only_postgres_reads_this")
    with open(secret_file, "w") as f:
        f.write("\n")  # empty first line
    os.chmod(secret_file, 0o600)
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob5', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob5', 'sec.b', 'bob5_b', %s)", (json.dumps(MAPPING),)))
    wait_synced(pg, "bob5")
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('bob5')"))
    code, detail = as_role(pg, "bob", f"""
        CREATE TABLE public.fake (river name, owner regrole, uri text, options jsonb);
        INSERT INTO public.fake VALUES ('f', 'bob', 'mongodb://root@127.0.0.1:1/?replicaSet=rs0',
                                        '{{"password_file": "{secret_file}"}}'),
                                       ('g', 'bob', 'mongodb://root@127.0.0.1:1/?replicaSet=rs0',
                                        '{{"password_file": "/nonexistent/file"}}');
        CREATE TRIGGER ck BEFORE UPDATE ON public.fake FOR EACH ROW
            EXECUTE FUNCTION mongo_river_internal._check_river()""")
    attached = code is None
    outside = as_role(pg, "bob", "UPDATE public.fake SET uri = uri || '&x=1' WHERE river = 'f'")[0] if attached else None
    inside = None
    if attached:
        ok(as_role(pg, "bob", r"""
            CREATE TABLE public.oracle (river text, outcome text);
            CREATE FUNCTION public.bob5_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
            DECLARE r record;
            BEGIN
              FOR r IN SELECT river FROM public.fake LOOP
                BEGIN
                  UPDATE public.fake SET uri = 'mongodb://root@127.0.0.1:2/?replicaSet=rs0' WHERE river = r.river;
                  INSERT INTO public.oracle VALUES (r.river, 'ok');
                EXCEPTION WHEN others THEN INSERT INTO public.oracle VALUES (r.river, SQLSTATE || ' ' || SQLERRM);
                END;
              END LOOP;
              RETURN NEW;
            END $f$;
            CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.bob5_b FOR EACH ROW EXECUTE FUNCTION public.bob5_trg()"""))
        auth_peer.client().sec.b.insert_one({"_id": "oracle1", "n": 1, "ssn": 1})
        ok(as_role(pg, "bob", "CALL mongo_river.sync_once('bob5', '20 s', NULL)"))
        inside = pg.query("SELECT * FROM public.oracle ORDER BY 1")
    host_intact(pg, pg.postmaster)
    assert not attached, f"bob attached _check_river to his table; outside a call: {outside}; " \
                         f"inside his own sync_once, as the catalog owner: {inside}"
