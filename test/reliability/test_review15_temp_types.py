"""Review of issue 15: the implementations run with search_path = pg_catalog, pg_temp, so an
unqualified type name in a mapping that is not in pg_catalog resolves in the CALLER's temporary
schema. A table created with a column of a session's temporary row type loses it when the session
ends; the worker must survive that (no crash)."""

import json

import psycopg2

from pgcluster import wait_for
from test_secrets import as_role, auth_peer, host_intact, ok, sec  # noqa: F401


def test_temp_row_type_in_mapping(sec, auth_peer):
    pg = sec
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('tmp_r', %s)", (auth_peer.uri,)))
    conn = pg.connect(user="alice")
    conn.autocommit = True
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "x": {"path": "n", "type": "tt"}}}
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE tt (a int)")
        try:
            cur.execute("SELECT mongo_river.map_collection('tmp_r', 'sec.b', 'tmp_t', %s)", (json.dumps(mapping),))
            outcome = "mapped: " + repr(pg.query("SELECT attname, atttypid::regtype::text FROM pg_attribute "
                                                 "WHERE attrelid = 'tmp_t'::regclass AND attnum > 0"))
        except psycopg2.Error as e:
            outcome = f"{e.pgcode} {e.pgerror.strip()[:200]}"
    conn.close()
    print(outcome)
    auth_peer.client().sec.b.insert_one({"_id": "tmp1", "n": 5, "ssn": 1})
    if outcome.startswith("mapped"):
        wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = 'tmp_r'"), 30, 0.2,
                 "the river's state")
    status = pg.query("SELECT river, source, phase, last_error FROM mongo_river.status WHERE river = 'tmp_r'")
    host_intact(pg, pg.postmaster)
    # README: type names outside pg_catalog must be schema-qualified; 'tt' is not in pg_catalog.
    assert not outcome.startswith("mapped"), f"unqualified type resolved in the caller's pg_temp: {outcome}; " \
                                             f"after the session ended: {status}"
