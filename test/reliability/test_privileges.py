"""Privileges: a plain role reads no URIs and rejects, manages no river and cannot escalate; an admin
(member of mongo_river_admin) cannot alter or drop another admin's river; a river writes only where
its owner may write (refused at map time with 42501; privileges revoked after mapping make the
worker's writes fail visibly, and they are applied once the privileges are back).

Every session here is a real login of the role (not SET ROLE), as an application would have."""

import json

import psycopg2
import pytest

from pgcluster import wait_for
from river import wait_synced

CATALOG = ["river", "collection_map", "mapped_table", "mapping_state", "progress", "rejects"]
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}


def as_role(pg, role, sql, params=None):
    """as_role runs sql in a login session of role: (None, rows) or (sqlstate, message)."""
    try:
        return None, pg.query(sql, params, user=role)
    except psycopg2.Error as e:
        return e.pgcode, (e.pgerror or str(e)).strip()


def catalog(pg):
    """catalog: the declarations (positions and counters move while rivers run: only their keys)."""
    got = {t: pg.query(f"SELECT * FROM mongo_river.{t} ORDER BY 1, 2") for t in CATALOG
           if t not in ("progress", "mapping_state")}
    got["progress"] = pg.query("SELECT river FROM mongo_river.progress ORDER BY 1")
    got["mapping_state"] = pg.query("SELECT river, source FROM mongo_river.mapping_state ORDER BY 1, 2")
    return got


def refused(pg, role, sql, params=None, code="42501"):
    got, detail = as_role(pg, role, sql, params)
    assert got == code, f"{role}: {sql} {params!r}: expected SQLSTATE {code}, got {got}: {detail}"
    return detail


@pytest.fixture(scope="module")
def priv(river_pg, mongo):
    pg = river_pg
    pg.query("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; "
             "GRANT mongo_river_admin TO alice, bob; GRANT CREATE ON SCHEMA public TO alice, bob, carol")
    pg.query("CREATE TABLE secret (id text PRIMARY KEY, n int); INSERT INTO secret VALUES ('s', 1); "
             "GRANT SELECT ON secret TO alice, bob")
    client = mongo.client()
    client.drop_database("priv")
    client.priv.a.insert_many([{"_id": "a1", "n": 1}, {"_id": "a2", "n": 2}])
    assert as_role(pg, "alice", "SELECT mongo_river.create_river('alice_r', %s)", (mongo.uri,))[0] is None
    assert as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'priv.a', 'alice_a', %s)",
                   (json.dumps(MAPPING),))[0] is None
    assert as_role(pg, "bob", "SELECT mongo_river.create_river('bob_r', %s)", (mongo.uri,))[0] is None
    # A river whose URI carries a password (never started: its worker would fail to log in).
    pg.query("SELECT mongo_river.create_river('pw_r', 'mongodb://app:Sup3rSecret@127.0.0.1:1/?replicaSet=rs0')")
    pg.query("SELECT mongo_river.stop('pw_r')")
    wait_synced(pg, "alice_r")
    return pg


def test_plain_role_reads_no_uris_and_manages_nothing(priv, mongo, figures):
    pg = priv
    before = catalog(pg)
    statements = [
        "SELECT uri FROM mongo_river.river",
        "SELECT * FROM mongo_river.rivers",
        "SELECT * FROM mongo_river.rejects",
        "SELECT * FROM mongo_river.progress",
        "SELECT * FROM mongo_river.collection_map",
        "SELECT * FROM mongo_river.status",
        "SELECT * FROM mongo_river.columns",
        "SELECT mongo_river.create_river('carol_r', 'mongodb://127.0.0.1:1/')",
        "SELECT mongo_river.alter_river('alice_r', 'mongodb://evil:1/')",
        "SELECT mongo_river.alter_river('alice_r', options => '{\"batch_size\": 1}')",
        "SELECT mongo_river.drop_river('alice_r')",
        "SELECT mongo_river.drop_river('alice_r', true)",
        "SELECT mongo_river.stop('alice_r')",
        "SELECT mongo_river.start('pw_r')",
        "SELECT mongo_river.map_collection('alice_r', 'priv.b', 'carol_b', '{\"pk\": \"id\", \"columns\": "
        "{\"id\": {\"path\": \"_id\", \"type\": \"text\"}}}')",
        "SELECT mongo_river.unmap_collection('alice_r', 'priv.a')",
        "SELECT mongo_river.map_database('alice_r', 'priv')",
        "SELECT mongo_river.infer_mapping('alice_r', 'priv.a')",
        "SELECT * FROM mongo_river.import_mappings('alice_r', '{}')",
        "SELECT mongo_river.resync('alice_r')",
        "SELECT * FROM mongo_river.verify('alice_r')",
        "SELECT mongo_river.retry_rejects('alice_r')",
        "SELECT mongo_river.discard_rejects('alice_r')",
        "SELECT mongo_river.wait_for_sync('alice_r', '1 s')",
        "CALL mongo_river.sync_once('pw_r', '1 s')",
        # internal functions and direct catalog writes
        "SELECT mongo_river_internal._check_uri('mongodb://h/')",
        "SELECT mongo_river_internal._live_status()",
        "SELECT mongo_river_internal._list_collections('alice_r', 'priv')",
        "INSERT INTO mongo_river.river (river, owner, uri) VALUES ('carol_r', 'carol', 'mongodb://h/')",
        "UPDATE mongo_river.river SET owner = 'carol'",
        "DELETE FROM mongo_river.rejects",
        # escalation
        "GRANT mongo_river_admin TO carol",
        "SET ROLE mongo_river_admin",
        "SET ROLE alice",
        "CREATE OR REPLACE FUNCTION mongo_river.redact_uri(text) RETURNS text LANGUAGE sql AS 'SELECT $1'",
        "ALTER TABLE mongo_river.river OWNER TO carol",
        "ALTER TABLE alice_a OWNER TO carol",
        "INSERT INTO alice_a VALUES ('carol', 1)",
    ]
    problems = []
    for sql in statements:
        code, detail = as_role(pg, "carol", sql)
        if code != "42501":
            problems.append(f"carol: {sql}: expected 42501, got {code}: {detail}")
        if code is None and "Sup3rSecret" in repr(detail):
            problems.append(f"carol read a password: {sql}")
    figures(hostile=len(statements))
    assert not problems, "\n".join(problems)
    assert catalog(pg) == before
    # redact_uri is everyone's, and shows no password.
    assert as_role(pg, "carol", "SELECT mongo_river.redact_uri('mongodb://u:Sup3rSecret@h/')")[1] == \
        [("mongodb://u:****@h/",)]
    # Admins read URIs (that is the role's purpose), but the view redacts passwords.
    assert as_role(pg, "bob", "SELECT uri FROM mongo_river.rivers WHERE river = 'pw_r'")[1] == \
        [("mongodb://app:****@127.0.0.1:1/?replicaSet=rs0",)]


def test_admin_cannot_alter_or_drop_another_admins_river(priv, figures):
    pg = priv
    before = catalog(pg)
    statements = [
        "SELECT mongo_river.alter_river('alice_r', 'mongodb://evil:1/')",
        "SELECT mongo_river.alter_river('alice_r', options => '{\"dry_run\": true}')",
        "SELECT mongo_river.drop_river('alice_r')",
        "SELECT mongo_river.drop_river('alice_r', true)",
        "SELECT mongo_river.stop('alice_r')",
        "SELECT mongo_river.start('alice_r')",
        "SELECT mongo_river.map_collection('alice_r', 'priv.b', 'bob_b', '{\"pk\": \"id\", \"columns\": "
        "{\"id\": {\"path\": \"_id\", \"type\": \"text\"}}}')",
        "SELECT mongo_river.unmap_collection('alice_r', 'priv.a')",
        "SELECT mongo_river.map_database('alice_r', 'priv')",
        "SELECT mongo_river.resync('alice_r')",
        "SELECT mongo_river.retry_rejects('alice_r')",
        "SELECT mongo_river.discard_rejects('alice_r')",
        "SELECT * FROM mongo_river.verify('alice_r', repair => true)",
        "CALL mongo_river.sync_once('alice_r', '1 s')",
        "SELECT mongo_river.alter_river('pw_r', 'mongodb://evil:1/')",  # a superuser's river
        "SELECT mongo_river.drop_river('pw_r')",
        # alice's tables are hers
        "DROP TABLE alice_a",
        "INSERT INTO alice_a VALUES ('bob', 1)",
    ]
    problems = []
    for sql in statements:
        code, detail = as_role(pg, "bob", sql)
        if code != "42501":
            problems.append(f"bob: {sql}: expected 42501, got {code}: {detail}")
    figures(hostile=len(statements))
    assert not problems, "\n".join(problems)
    assert catalog(pg) == before


def test_admin_cannot_change_another_admins_river_with_dml(priv, figures):
    pg = priv
    before = catalog(pg)
    statements = [
        "UPDATE mongo_river.river SET uri = 'mongodb://evil:1/' WHERE river = 'alice_r'",
        "DELETE FROM mongo_river.river WHERE river = 'alice_r'",
        "UPDATE mongo_river.river SET enabled = false WHERE river = 'alice_r'",
        "DELETE FROM mongo_river.collection_map WHERE river = 'alice_r'",
        "UPDATE mongo_river.progress SET position = NULL WHERE river = 'alice_r'",
    ]
    problems = []
    for sql in statements:
        conn = pg.connect(user="bob")
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                # Row-level security hides rows of other owners' rivers from changes: 0 rows.
                if cur.rowcount:
                    problems.append(f"bob: {sql}: accepted ({cur.rowcount} rows)")
        except psycopg2.Error as e:
            if e.pgcode != "42501":
                problems.append(f"bob: {sql}: expected 42501, got {e.pgcode}")
        finally:
            conn.rollback()  # never keep it: the rest of the module needs alice's river
            conn.close()
    figures(hostile=len(statements))
    assert catalog(pg) == before
    assert not problems, "\n".join(problems)


def test_admin_cannot_escalate_through_the_river_owner(priv, mongo, figures):
    pg = priv
    client = mongo.client()
    client.priv.esc.insert_one({"_id": "before", "n": 1})
    assert as_role(pg, "bob", "SELECT mongo_river.map_collection('bob_r', 'priv.esc', 'bob_esc', %s)",
                   (json.dumps(MAPPING),))[0] is None
    wait_synced(pg, "bob_r")
    figures(hostile=2)
    code, detail = as_role(pg, "bob", "UPDATE mongo_river.river SET owner = 'postgres' WHERE river = 'bob_r'; "
                           "UPDATE mongo_river.collection_map SET target = 'secret' WHERE river = 'bob_r'; "
                           "UPDATE mongo_river.mapped_table SET relation = 'secret' WHERE river = 'bob_r'; "
                           "UPDATE mongo_river.river SET enabled = false WHERE river = 'bob_r'")
    if code is None:
        # Restart the worker so it reads its (new) owner and target, then write a document.
        wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                   "'mongo_river bob_r'") == 0, 30, 0.1, "bob's worker to stop")
        as_role(pg, "bob", "UPDATE mongo_river.river SET enabled = true WHERE river = 'bob_r'")
        wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                   "'mongo_river bob_r'") == 1, 30, 0.1, "bob's worker to start as postgres")
        print("bob's worker runs as", pg.scalar("SELECT usename FROM pg_stat_activity WHERE application_name = "
                                                 "'mongo_river bob_r'"))
        client.priv.esc.insert_one({"_id": "planted", "n": 666})
        try:
            wait_for(lambda: pg.scalar("SELECT count(*) FROM secret WHERE id = 'planted'"), 30, 0.2,
                     "the escalated worker to write into secret")
        except TimeoutError:
            pass
        planted = pg.scalar("SELECT count(*) FROM secret WHERE id = 'planted'")
        print(f"bob's catalog update was accepted; rows planted in secret: {planted}; "
              f"owner now {pg.scalar('SELECT owner::text FROM mongo_river.river WHERE river = %s', ('bob_r',))}")
        pg.query("UPDATE mongo_river.river SET owner = 'bob' WHERE river = 'bob_r'")
        pg.query("SELECT mongo_river.drop_river('bob_r')")
        pg.query("DELETE FROM secret WHERE id <> 's'")
    assert code == "42501", f"bob changed his river's owner to postgres ({code}): {detail}"


def test_map_onto_a_table_the_owner_may_not_write_is_refused(priv, figures):
    pg = priv
    before = catalog(pg)
    figures(hostile=1)
    code, detail = as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'priv.s', 'secret', %s)",
                           (json.dumps(MAPPING),))
    if code is None:
        pg.query("SELECT mongo_river.unmap_collection('alice_r', 'priv.s')")
    assert code == "42501", f"alice mapped a collection onto secret, where she has SELECT only ({code}): {detail}"
    assert catalog(pg) == before


def test_map_onto_a_table_without_any_privilege_is_refused(priv, figures):
    pg = priv
    pg.query("CREATE TABLE locked (id text PRIMARY KEY, n int)")
    before = catalog(pg)
    refused(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'priv.s', 'locked', %s)", (json.dumps(MAPPING),))
    # a schema she may not create in
    pg.query("CREATE SCHEMA closed")
    refused(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'priv.s', 'closed.t', %s)", (json.dumps(MAPPING),))
    figures(hostile=2)
    assert catalog(pg) == before


def test_privileges_revoked_after_mapping(priv, mongo, figures):
    """What happens when the owner loses INSERT/UPDATE on a mapped table: each change the worker
    cannot write must be visible (a reject naming the privilege, or phase retrying/error) and never
    silently dropped; once the privileges are back, retry_rejects (or the river itself) applies it."""
    pg = priv
    client = mongo.client()
    coll = client.priv.shared
    coll.insert_many([{"_id": "s1", "n": 1}, {"_id": "s2", "n": 2}])
    pg.query("CREATE TABLE shared (id text PRIMARY KEY, n int)")
    pg.query("GRANT SELECT, INSERT, UPDATE, DELETE ON shared TO alice")
    assert as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'priv.shared', 'shared', %s)",
                   (json.dumps(MAPPING),))[0] is None
    wait_synced(pg, "alice_r")
    assert pg.query("SELECT id, n FROM shared ORDER BY id") == [("s1", 1), ("s2", 2)]

    pg.query("REVOKE INSERT, UPDATE ON shared FROM alice")
    coll.insert_one({"_id": "s3", "n": 3})
    coll.update_one({"_id": "s1"}, {"$set": {"n": 10}})
    client.priv.a.insert_one({"_id": "a3", "n": 3})  # another table of the same river keeps flowing?
    figures(faults=1)

    def visible():
        rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = 'alice_r' "
                           "AND source = 'priv.shared' ORDER BY document_id")
        phase = pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = 'alice_r' "
                         "AND source = 'priv.shared'")
        if len(rejects) >= 2 or phase[0][0] in ("retrying", "error"):
            return rejects, phase
        return None

    rejects, phase = wait_for(visible, 60, 0.2, "the refused writes to show (rejects or phase)")
    print(f"after REVOKE INSERT, UPDATE: rejects {rejects}; status {phase}")
    assert pg.query("SELECT id, n FROM shared ORDER BY id") == [("s1", 1), ("s2", 2)]
    if rejects:
        assert sorted(r[0] for r in rejects) == ["s1", "s3"], rejects
        assert all("permission denied" in r[1] or "42501" in r[1] or "privilege" in r[1] for r in rejects), rejects
        wait_synced(pg, "alice_r")
        assert pg.scalar("SELECT count(*) FROM alice_a WHERE id = 'a3'") == 1
    # Privileges back: the changes arrive (retry_rejects for rejects; by itself when it was retrying).
    pg.query("GRANT INSERT, UPDATE ON shared TO alice")
    if rejects:
        assert as_role(pg, "alice", "SELECT mongo_river.retry_rejects('alice_r')")[1] == [(2,)]
    wait_synced(pg, "alice_r")
    assert pg.query("SELECT id, n FROM shared ORDER BY id") == [("s1", 10), ("s2", 2), ("s3", 3)]
    assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'alice_r'") == 0
    assert pg.query("SELECT phase FROM mongo_river.status WHERE river = 'alice_r' AND source = 'priv.shared'") == \
        [("streaming",)]


def test_row_level_security_holds_for_the_initial_copy(priv, mongo, figures):
    """The initial copy writes new rows with COPY FROM, which does not apply row-level security: a
    table where RLS applies to the river's owner must take the INSERT path, so that its policies
    hold. Here only even n may be written: odd documents land in rejects, even ones in the table."""
    pg = priv
    client = mongo.client()
    client.priv.rls.insert_many([{"_id": f"r{i}", "n": i} for i in range(1, 7)])
    pg.query("CREATE TABLE rls_t (id text PRIMARY KEY, n int); ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY; "
             "CREATE POLICY even ON rls_t USING (true) WITH CHECK (n % 2 = 0); "
             "GRANT SELECT, INSERT, UPDATE, DELETE ON rls_t TO alice")
    figures(hostile=3)
    assert as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'priv.rls', 'rls_t', %s)",
                   (json.dumps(MAPPING),))[0] is None
    wait_synced(pg, "alice_r")
    assert pg.query("SELECT id, n FROM rls_t ORDER BY id") == [("r2", 2), ("r4", 4), ("r6", 6)]
    rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = 'alice_r' "
                       "AND source = 'priv.rls' ORDER BY document_id")
    assert [r[0] for r in rejects] == ["r1", "r3", "r5"], rejects
    assert all("row-level security" in r[1] for r in rejects), rejects
    assert as_role(pg, "alice", "SELECT mongo_river.unmap_collection('alice_r', 'priv.rls')")[0] is None
    pg.query("DELETE FROM mongo_river.rejects WHERE river = 'alice_r' AND source = 'priv.rls'")
