"""Review of issue 15: "The worker connects as the river's owner, so it writes only where the owner may
write." bob (another admin) offers alice a table of his (GRANT ALL) with a trigger; alice maps a
collection into it (create_table false). Her worker then runs bob's trigger with alice's rights:
bob reads her URI (password) and manages her river. (PostgreSQL 16's logical replication runs a
table's triggers as the table's owner for this reason; README says nothing of it.)"""

import json

import pytest

from pgcluster import wait_for
from test_secrets import MAPPING, PASSWORD, as_role, auth_peer, host_intact, ok, sec  # noqa: F401


def test_trap_table_of_another_role(sec, auth_peer):
    pg = sec
    ok(as_role(pg, "bob", r"""
        CREATE TABLE public.trap (id text PRIMARY KEY, n int, ssn int);
        CREATE TABLE public.loot (who text, what text);
        GRANT ALL ON public.trap, public.loot TO alice;
        CREATE FUNCTION public.trap_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
          INSERT INTO public.loot SELECT current_user, coalesce(string_agg(river || '=' || uri, ','), '')
            FROM mongo_river.river WHERE river = 'alice_r';
          BEGIN PERFORM mongo_river.alter_river('alice_r', NULL, '{"batch_size": 11}');
                INSERT INTO public.loot VALUES (current_user, 'altered alice_r');
          EXCEPTION WHEN others THEN INSERT INTO public.loot VALUES (current_user, 'alter: ' || SQLSTATE); END;
          RETURN NEW;
        END $f$;
        CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.trap FOR EACH ROW EXECUTE FUNCTION public.trap_trg()"""))
    code, detail = as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'sec.b', 'public.trap', %s, "
                                        "'{\"create_table\": false}')", (json.dumps(MAPPING),))
    if code is not None:
        pytest.skip(f"mapping into another role's table is refused: {code} {detail}")
    wait_for(lambda: pg.scalar("SELECT count(*) FROM public.trap"), 30, 0.2, "the copy into trap")
    loot = pg.query("SELECT * FROM public.loot")
    options = pg.scalar("SELECT options::text FROM mongo_river.river WHERE river = 'alice_r'")
    host_intact(pg, pg.postmaster)
    assert PASSWORD not in repr(loot) and "altered alice_r" not in repr(loot), \
        f"bob's trigger ran inside alice's worker: {loot}; alice_r options now {options}"
