"""Edges of a river's timeline (issue 16): the cut of copy: false mappings, source DDL older than a
mapping, rivers without mappings, rivers dropped and created again under the same name, and doubles
in jsonb (their shortest round-trip form). Both capture modes where the reader matters."""

import json

import psycopg2
import pytest

from pgcluster import free_port, wait_for
from river import compare, create_river, fresh_posts, load_posts, map_posts, posts_mapping, status, wait_synced


@pytest.fixture(autouse=True)
def drop_rivers_after(river_pg):
    """drop_rivers_after drops every river a test left (a failed one too), so that later tests get
    worker slots (mongo_river.max_workers)."""
    yield
    for (river,) in river_pg.query("SELECT river FROM mongo_river.river"):
        river_pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def worker_pid(pg, river):
    rows = pg.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                    "AND application_name = %s", ("mongo_river " + river,))
    return rows[0][0] if rows else None


def phase(pg, river, source):
    return (status(pg, river).get(source) or (None,))[0]


def ids(pg, table):
    return sorted(r[0] for r in pg.query(f'SELECT id FROM "{table}"'))


def stop_and_wait(pg, river):
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    wait_for(lambda: worker_pid(pg, river) is None, 60, 0.05, f"the worker of {river} to exit")


def unreachable_uri():
    return f"mongodb://127.0.0.1:{free_port()}/?replicaSet=rs0&serverSelectionTimeoutMS=300&connectTimeoutMS=300"


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_copy_false_gets_every_change_after_map_collection(river_pg, mongo, capture):
    """16.1: on a running river, the changes made at once after map_collection(copy: false) returned
    arrive; those made before it never do."""
    pg = river_pg
    client = mongo.client()
    db = f"late_{capture}"
    client.drop_database(db)
    other = fresh_posts(mongo, f"{db}_other", 20)
    river = f"late_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture})
    map_posts(pg, river, f"{db}_other.posts", f"late_other_{capture}")
    wait_synced(pg, river)
    late = client[db].late
    late.insert_many([{"_id": f"before{i}", "title": "before"} for i in range(10)])
    table = f"late_{capture}"
    map_posts(pg, river, f"{db}.late", table, {"copy": False})
    late.insert_many([{"_id": f"after{i}", "title": "after"} for i in range(3)])
    wait_synced(pg, river)
    assert ids(pg, table) == ["after0", "after1", "after2"]
    late.insert_one({"_id": "later", "title": "later"})
    other.insert_one({"_id": "other_later", "title": "x"})
    wait_synced(pg, river)
    assert ids(pg, table) == ["after0", "after1", "after2", "later"]
    assert not compare(pg, f"late_other_{capture}", other)
    assert phase(pg, river, f"{db}.late") == "streaming"
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_copy_false_river_started_after_its_mappings(river_pg, mongo, capture):
    """16.1: a river whose mappings are all copy: false gets the changes made between map_collection
    and the start of its worker."""
    pg = river_pg
    client = mongo.client()
    db = f"nocopy_start_{capture}"
    client.drop_database(db)
    coll = client[db].posts
    coll.insert_one({"_id": "old", "title": "old"})
    river = f"nocopy_start_{capture}"
    # Created stopped (one transaction): no worker has recorded a position before the mapping.
    conn = pg.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT mongo_river.create_river(%s, %s, %s)", (river, mongo.uri, json.dumps({"capture": capture})))
        cur.execute("SELECT mongo_river.stop(%s)", (river,))
    conn.commit()
    conn.close()
    table = f"nocopy_start_{capture}"
    map_posts(pg, river, f"{db}.posts", table, {"copy": False})
    coll.insert_many([{"_id": f"n{i}", "title": "new"} for i in range(3)])
    coll.update_one({"_id": "old"}, {"$set": {"title": "touched"}})
    pg.query("SELECT mongo_river.start(%s)", (river,))
    wait_synced(pg, river)
    assert ids(pg, table) == ["n0", "n1", "n2", "old"], pg.query("SELECT * FROM mongo_river.rejects")
    assert pg.scalar(f'SELECT title FROM "{table}" WHERE id = %s', ("old",)) == "touched"
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_copy_false_needs_the_source_and_copies_do_not(river_pg, mongo):
    """16.1: copy: false reads its cut from the source, so it refuses (08xxx, with a hint) when the
    source cannot be reached; a mapping that copies is declared without the source, silently."""
    pg = river_pg
    river = "unreachable_cut"
    create_river(pg, river, unreachable_uri())
    stop_and_wait(pg, river)
    conn = pg.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT mongo_river.map_collection(%s, 'shop.orders', 'cut_orders', %s, '{\"copy\": false}')",
                            (river, json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}})))
            assert raised.value.pgcode.startswith("08"), (raised.value.pgcode, str(raised.value))
            assert "map_collection" in raised.value.pgerror and "shop.orders" in raised.value.pgerror
            assert raised.value.diag.message_hint, "no hint"
            assert pg.scalar("SELECT count(*) FROM mongo_river.collection_map WHERE river = %s", (river,)) == 0
            del conn.notices[:]
            cur.execute("SELECT mongo_river.map_collection(%s, 'shop.orders', 'cut_orders', %s)",
                        (river, json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}})))
            assert not [n for n in conn.notices if "does not exist" in n], conn.notices
    finally:
        conn.close()
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_map_collection_says_when_the_collection_does_not_exist(river_pg, mongo):
    """17.5: map_collection on a collection the source does not have says so in a NOTICE (the
    mapping is declared all the same: the collection may be created later)."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("missing_db")
    client.missing_db.here.insert_one({"_id": 1})
    river = "missing_coll"
    create_river(pg, river, mongo.uri)
    mapping = json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}, "document": "doc"})
    conn = pg.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT mongo_river.map_collection(%s, 'missing_db.custmers', 'custmers', %s)", (river, mapping))
            notices = [n for n in conn.notices if "does not exist" in n]
            assert len(notices) == 1 and "missing_db.custmers" in notices[0], conn.notices
            del conn.notices[:]
            cur.execute("SELECT mongo_river.map_collection(%s, 'missing_db.here', 'here_table', %s)", (river, mapping))
            assert not [n for n in conn.notices if "does not exist" in n], conn.notices
    finally:
        conn.close()
    client.missing_db.custmers.insert_one({"_id": "c1"})
    wait_synced(pg, river)
    assert ids(pg, "custmers") == ["c1"]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_river_without_mappings_keeps_its_position_current(river_pg, mongo, capture):
    """16.2: a river with no mappings follows the source's time, so wait_for_sync returns true."""
    pg = river_pg
    client = mongo.client()
    river = f"empty_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture})
    wait_for(lambda: worker_pid(pg, river), 30, 0.05, "the worker")
    wait_for(lambda: pg.scalar("SELECT position IS NOT NULL FROM mongo_river.progress WHERE river = %s", (river,)),
             30, 0.05, "the river's first position")
    client.elsewhere.things.insert_one({"x": 1})
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '15 s')", (river,))
    pg.query("SELECT mongo_river.drop_river(%s)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_drop_older_than_the_mapping_is_ignored(river_pg, mongo, capture):
    """16.2: a river with no mappings, then drop, insert b, map_collection, insert c: the old drop
    does not stop the new mapping, and PostgreSQL ends equal to MongoDB."""
    pg = river_pg
    client = mongo.client()
    db = f"olddrop_{capture}"
    client.drop_database(db)
    coll = client[db].c
    coll.insert_one({"_id": "a", "title": "a"})
    river = f"olddrop_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture})
    wait_for(lambda: pg.scalar("SELECT position IS NOT NULL FROM mongo_river.progress WHERE river = %s", (river,)),
             30, 0.05, "the river's first position")
    coll.drop()
    coll.insert_one({"_id": "b", "title": "b"})
    table = f"olddrop_{capture}"
    map_posts(pg, river, f"{db}.c", table)
    coll.insert_one({"_id": "c", "title": "c"})
    wait_synced(pg, river)
    assert ids(pg, table) == ["b", "c"]
    assert phase(pg, river, f"{db}.c") == "streaming", status(pg, river)
    # A drop made now, after the copy began, still stops the mapping.
    coll.drop()
    wait_for(lambda: phase(pg, river, f"{db}.c") == "stopped", 30, 0.05, "the new drop to stop the mapping")
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_crud_replay_after_unmap_drop_recreate_map(river_pg, mongo, capture):
    """16.2: stop, unmap, drop and recreate the collection, map it again, start: PostgreSQL ends
    equal to MongoDB and the mapping streams."""
    pg = river_pg
    db = f"replay_{capture}"
    coll = fresh_posts(mongo, db, 200, seed=31)
    river = f"replay_{capture}"
    table = f"replay_{capture}"
    create_river(pg, river, mongo.uri, {"capture": capture})
    map_posts(pg, river, f"{db}.posts", table)
    wait_synced(pg, river)
    coll.update_many({"stats.score": {"$lt": 300000}}, {"$set": {"title": "low"}})
    coll.delete_many({"stats.score": {"$gt": 900000}})
    coll.insert_one({"_id": "n1", "title": "n1"})
    wait_synced(pg, river)
    assert not compare(pg, table, coll)
    stop_and_wait(pg, river)
    pg.query("SELECT mongo_river.unmap_collection(%s, %s)", (river, f"{db}.posts"))
    pg.query(f'DROP TABLE "{table}_comments", "{table}"')
    coll.drop()
    load_posts(coll, 150, seed=32)
    coll.update_one({"_id": "p0000003"}, {"$set": {"title": "after recreate"}})
    map_posts(pg, river, f"{db}.posts", table)
    pg.query("SELECT mongo_river.start(%s)", (river,))
    wait_synced(pg, river)
    coll.delete_one({"_id": "p0000004"})
    coll.insert_one({"_id": "n2", "title": "n2"})
    wait_synced(pg, river)
    assert phase(pg, river, f"{db}.posts") == "streaming", status(pg, river)
    problems = compare(pg, table, coll)
    assert not problems, "\n".join(problems[:20])
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_river_dropped_and_created_again_gets_a_worker_of_its_own(river_pg, mongo):
    """16.7: drop_river then create_river under the same name (the launcher never sees the gap): the
    old worker exits, a new one runs the new river from its own creation, and a dropDatabase made
    before the new river existed does not stop its mapping."""
    pg = river_pg
    client = mongo.client()
    river = "reborn"
    create_river(pg, river, mongo.uri)
    old_pid = wait_for(lambda: worker_pid(pg, river), 30, 0.05, "the first worker")
    wait_for(lambda: pg.scalar("SELECT position IS NOT NULL FROM mongo_river.progress WHERE river = %s", (river,)),
             30, 0.05, "the river's first position")
    coll = fresh_posts(mongo, "reborn", 300, seed=41)  # drops the database first
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT mongo_river.drop_river(%s)", (river,))
            cur.execute("SELECT mongo_river.create_river(%s, %s)", (river, mongo.uri))
            cur.execute("SELECT mongo_river.map_collection(%s, 'reborn.posts', 'reborn_posts', %s)",
                        (river, json.dumps(posts_mapping("reborn_posts"))))
        conn.commit()
    finally:
        conn.close()
    new_pid = wait_for(lambda: (worker_pid(pg, river) or old_pid) != old_pid and worker_pid(pg, river), 30, 0.05,
                       "a new worker for the new river")
    assert new_pid != old_pid
    wait_synced(pg, river)
    coll.insert_one({"_id": "after", "title": "after"})
    wait_synced(pg, river)
    assert phase(pg, river, "reborn.posts") == "streaming", status(pg, river)
    assert not compare(pg, "reborn_posts", coll)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_doubles_reach_jsonb_in_their_shortest_form(river_pg, mongo):
    """16.9: doubles in the document column, a jsonb column and rejects are stored in their shortest
    round-trip form: {x: 0.1, y: 1e-7} holds 0.1 and 1e-7."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("doubles")
    coll = client.doubles.d
    coll.insert_one({"_id": "d1", "x": 0.1, "y": 1e-7, "n": 3.0, "nested": {"z": [2.5e-300, 1.7976931348623157e308]}})
    coll.insert_one({"_id": "bad", "x": 0.1, "y": 1e-7, "n": "not a number"})
    river = "doubles"
    create_river(pg, river, mongo.uri)
    pg.query("SELECT mongo_river.map_collection('doubles', 'doubles.d', 'doubles_d', %s)", (json.dumps({
        "pk": "id",
        "columns": {"id": {"path": "_id", "type": "text"}, "x": {"path": "x", "type": "jsonb"},
                    "n": {"path": "n", "type": "double precision"}},
        "document": "doc"}),))
    wait_synced(pg, river)
    row = pg.query("SELECT doc->'x' = '0.1'::jsonb, doc @> '{\"x\": 0.1, \"y\": 1e-7}', x = '0.1'::jsonb, "
                   "doc->>'x', doc->>'y', x::text, doc->'nested'->'z'->>0, doc->'nested'->'z'->>1, doc->>'n' "
                   "FROM doubles_d WHERE id = 'd1'")[0]
    assert row[:3] == (True, True, True), row
    assert row[3] == "0.1" and row[5] == "0.1", row
    assert float(row[4]) == 1e-7 and len(row[4]) <= len("0.0000001"), row
    assert float(row[6]) == 2.5e-300 and float(row[7]) == 1.7976931348623157e308, row
    assert row[8] == "3.0", row
    reject = pg.query("SELECT document->'x' = '0.1'::jsonb, document->>'y' FROM mongo_river.rejects "
                      "WHERE river = 'doubles' AND document_id = 'bad'")
    assert reject and reject[0][0] and float(reject[0][1]) == 1e-7 and len(reject[0][1]) <= len("0.0000001"), reject
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
