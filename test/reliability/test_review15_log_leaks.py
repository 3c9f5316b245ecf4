"""Review of issue 15: "A failing statement of ours whose text carries a MongoDB URI with a password
is logged without its STATEMENT: line." Variations where the statement carries our call but the
error comes from elsewhere, or the URI reaches the log through CONTEXT."""

import pytest

from test_secrets import as_role, auth_peer, sec  # noqa: F401

SECRET = "Lg7Secret"
URI = f"mongodb://root:{SECRET}@127.0.0.1:1/?replicaSet=rs0"
BAD = URI + "&bogusOption=1"

CASES = [
    ("ours, in a DO block through EXECUTE",
     f"DO $$ BEGIN EXECUTE 'SELECT mongo_river.create_river(''lk1'', ''{BAD}'')'; END $$"),
    ("ours, in a DO block through PERFORM",
     f"DO $$ BEGIN PERFORM mongo_river.create_river('lk2', '{BAD}'); END $$"),
    ("our call succeeds, the statement fails after it",
     f"SELECT mongo_river.create_river('lk3', '{URI}'), 1/0"),
    ("our call succeeds, the transaction fails at the next statement",
     f"SELECT mongo_river.create_river('lk4', '{URI}'); SELECT 1/0"),
    ("alter_river through a prepared statement",
     f"PREPARE a(text) AS SELECT mongo_river.alter_river('alice_r', $1); EXECUTE a('{BAD}')"),
    ("create_river in a SQL function body",
     f"CREATE OR REPLACE FUNCTION public.mk() RETURNS void LANGUAGE sql AS $$ SELECT mongo_river.create_river('lk5', '{BAD}') $$; "
     "SELECT public.mk()"),
]


@pytest.mark.parametrize("label,sql", CASES, ids=[c[0] for c in CASES])
def test_no_password_in_log(sec, label, sql):
    pg = sec
    before = len(pg.log())
    code, detail = as_role(pg, "alice", sql)
    logged = [line for line in pg.log()[before:].splitlines() if SECRET in line]
    for river in ("lk1", "lk2", "lk3", "lk4", "lk5"):
        pg.query("SELECT mongo_river.drop_river(r) FROM (SELECT %s::name r) s "
                 "WHERE EXISTS (SELECT 1 FROM mongo_river.river WHERE river = r)", (river,))
    assert not logged, f"{label} ({code}): the password reached the server log:\n" + "\n".join(logged)
