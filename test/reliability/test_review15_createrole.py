"""Review of issue 15, as a role with CREATEROLE (PostgreSQL 15): it may grant itself any
non-superuser role, so it becomes "a role with the owner's privileges" and reads the owner's
password; with mongo_river_admin it then reaches the superuser escalations of
test_search_path_escalation.py. PostgreSQL 15 semantics, but the README's Privileges section does
not warn that CREATEROLE is enough to read every river's credentials."""

import pytest

from test_secrets import PASSWORD, as_role, auth_peer, sec  # noqa: F401


@pytest.mark.xfail(reason="PostgreSQL 15: CREATEROLE grants itself alice; README does not say so", strict=True)
def test_createrole_reads_owner_password(sec):
    pg = sec
    pg.query("CREATE ROLE dave2 LOGIN CREATEROLE")
    code, _ = as_role(pg, "dave2", "GRANT alice TO dave2; GRANT mongo_river_admin TO dave2")
    assert code is None
    code, rows = as_role(pg, "dave2", "SET ROLE alice; SELECT uri FROM mongo_river.river WHERE river = 'alice_r'")
    assert PASSWORD not in repr(rows), rows
