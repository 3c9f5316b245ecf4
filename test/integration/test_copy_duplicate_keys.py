"""A key that comes twice within one copy batch (outside review 21): a source that returns the same
_id twice, far apart (more than one multi-row INSERT statement of 500 rows), or two _ids with one
text under a text key (the string "5f..." and ObjectId("5f...")), with a child table that has no
position column (no primary key: its rows are not refused). An initial copy keeps a batch's rows in
scan order for CopyRows; when CopyRows refuses the duplicate, each key's last document must be
written once (as the batch's key map did), never both documents' child rows under one row. On the
commit that first kept the rows in scan order (a14f7d6) the duplicates' child rows doubled and the
two documents of one text mixed."""

import json

from evilproxy import EvilProxy
from hostile_lib import decode, encode, port_of
from pgcluster import wait_for
from river import create_river, load_posts, wait_synced


class FarDuplicate:
    """A proxy policy: a copy reply (find/getMore on ns) of 800 documents or more gets its first
    document again at index 700."""

    def __init__(self, ns):
        self.ns, self.fired = ns, 0

    def __call__(self, name, reply):
        if name not in ("find", "getMore"):
            return [("send", reply)]
        try:
            prefix, body, rest = decode(reply)
        except Exception:
            return [("send", reply)]
        cursor = body.get("cursor") or {}
        key = "firstBatch" if "firstBatch" in cursor else "nextBatch"
        batch = cursor.get(key)
        if cursor.get("ns") != self.ns or not batch or len(batch) < 800 or "title" not in batch[0]:
            return [("send", reply)]
        cursor[key] = list(batch[:700]) + [batch[0]] + list(batch[700:])
        self.fired += 1
        return [("send", encode(prefix, body, rest))]


def mapping(table, position):
    comments = {"path": "comments", "table": f"{table}_comments", "fk": "post_id",
                "columns": {"user": {"path": "user", "type": "text"}, "body": {"path": "text", "type": "text"}}}
    if position:
        comments["position"] = "pos"
    return {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "title": {"path": "title", "type": "text"}},
            "arrays": {"comments": comments}}


def run(pg, mongo, river, position):
    client = mongo.client()
    client.drop_database(river)
    coll = client[river].posts
    load_posts(coll, 4000, seed=3)
    policy = FarDuplicate(f"{river}.posts")
    proxy = EvilProxy(port_of(mongo), policy)
    create_river(pg, river, proxy.uri(), {"batch_size": 100})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{river}.posts", river, json.dumps(mapping(river, position))))
    wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
             120, 0.2, "the copy to end")
    wait_synced(pg, river, 60)
    want = {d["_id"]: len(d.get("comments") or []) for d in coll.find({})}
    got = dict(pg.query(f"SELECT p.id, (SELECT count(*) FROM {river}_comments c WHERE c.post_id = p.id) FROM {river} p"))
    parents = pg.scalar(f"SELECT count(*) FROM {river}")
    copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    proxy.close()
    assert policy.fired > 0
    wrong = sorted((k, want[k], got.get(k)) for k in want if got.get(k) != want[k])
    assert parents == len(want)
    # A document the source returned twice is copied once: status counts documents, not what the
    # replies held (on 6922d6e: 4000 + the number of repeats).
    assert copied == len(want), f"docs_copied {copied} for {len(want)} documents ({policy.fired} repeated)"
    assert not wrong, f"{len(wrong)} documents with wrong child rows (id, comments, child rows): {wrong[:5]}"


def test_far_duplicate_child_table_without_position(river_pg, mongo):
    run(river_pg, mongo, "fardup", False)


def test_far_duplicate_child_table_with_position(river_pg, mongo):
    run(river_pg, mongo, "fardup2", True)


def test_string_and_objectid_same_text_key_no_proxy(river_pg, mongo):
    """No hostile source needed: a text pk takes strings as themselves and ObjectIds as 24 hex
    digits, so the string "5f..." and ObjectId("5f...") are two documents with one key. In _id
    order every string comes before every ObjectId, so with 600 strings between them both land in
    one copy batch, in different INSERT statements. The row must then be one of the two documents
    (or the collision rejected), never a mix: the child rows of both."""
    from bson.objectid import ObjectId
    pg, river = river_pg, "oidclash"
    client = mongo.client()
    client.drop_database(river)
    oid = ObjectId("5f0000000000000000000001")
    docs = [{"_id": str(oid), "title": "string", "comments": [{"user": "s", "text": "from the string"}]}]
    docs += [{"_id": f"p{i:07d}", "title": "t", "comments": []} for i in range(600)]
    docs += [{"_id": oid, "title": "objectid", "comments": [{"user": "o", "text": "one"}, {"user": "o", "text": "two"}]}]
    client[river].posts.insert_many(docs)
    create_river(pg, river, mongo.uri, {"batch_size": 100})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             (river, f"{river}.posts", river, json.dumps(mapping(river, False))))
    wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
             120, 0.2, "the copy to end")
    wait_synced(pg, river, 60)
    title = pg.scalar(f"SELECT title FROM {river} WHERE id = %s", (str(oid),))
    children = sorted(r[0] for r in pg.query(f"SELECT body FROM {river}_comments WHERE post_id = %s", (str(oid),)))
    rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = %s", (river,))
    copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
    rows = pg.scalar(f"SELECT count(*) FROM {river}")
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    # docs_copied counts documents: these are two (one row; README, "text keys").
    assert copied == len(docs) == rows + 1, f"docs_copied {copied} for {len(docs)} documents, {rows} rows"
    allowed = {("string", ("from the string",)), ("objectid", ("one", "two")), (None, ())}
    assert (title, tuple(children)) in allowed, \
        f"row {str(oid)}: title {title!r} with child rows {children} (rejects {rejects})"


def test_repeat_in_a_batch_written_document_by_document(river_pg, mongo):
    """A batch PostgreSQL refuses (a title too long for varchar(8)) is written again document by
    document; the string and ObjectId of one text in it still make one row (two documents copied),
    and the refused document is a reject, not a copied one."""
    from bson.objectid import ObjectId
    pg, river = river_pg, "oidisol"
    client = mongo.client()
    client.drop_database(river)
    oid = ObjectId("5f0000000000000000000002")
    docs = [{"_id": str(oid), "title": "string"}, {"_id": "a-long-one", "title": "far too long a title"}]
    docs += [{"_id": f"p{i:07d}", "title": "t"} for i in range(50)]
    docs += [{"_id": oid, "title": "objectid"}]
    client[river].posts.insert_many(docs)
    create_river(pg, river, mongo.uri, {"batch_size": 100})
    flat = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                    "title": {"path": "title", "type": "varchar(8)"}}}
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.posts", river, json.dumps(flat)))
    wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
             120, 0.2, "the copy to end")
    wait_synced(pg, river, 60)
    copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
    rows = pg.scalar(f"SELECT count(*) FROM {river}")
    rejects = [r[0] for r in pg.query("SELECT document_id FROM mongo_river.rejects WHERE river = %s", (river,))]
    pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    assert rows == 51 and rejects == ["a-long-one"], f"{rows} rows, rejects {rejects}"
    assert copied == len(docs) - 1, f"docs_copied {copied} for {len(docs)} documents (rejects {rejects})"
