"""river: helpers for integration tests of rivers: the test mapping, documents, and the row-by-row
comparison of a MongoDB collection with its PostgreSQL tables through that mapping."""

import contextlib
import json
import random
import threading
import time

import pymongo

from pgcluster import wait_for


def posts_mapping(table):
    """posts_mapping is the mapping every river test uses: nested paths, an array, a child table."""
    return {
        "pk": "id",
        "columns": {
            "id": {"path": "_id", "type": "text"},
            "title": {"path": "title", "type": "text"},
            "author_name": {"path": "author.name", "type": "text"},
            "score": {"path": "stats.score", "type": "bigint"},
            "tags": {"path": "tags", "type": "text[]"},
        },
        "arrays": {
            "comments": {"path": "comments", "table": f"{table}_comments", "fk": "post_id", "position": "pos",
                         "columns": {"user": {"path": "user", "type": "text"},
                                     "body": {"path": "text", "type": "text"}}},
        },
        "document": "doc",
    }


def make_post(i, rng):
    """make_post returns a post document with nested fields and 0-3 comments."""
    return {
        "_id": f"p{i:07d}",
        "title": f"title {i}",
        "author": {"name": rng.choice(["ada", "grace", "linus", "barbara"]), "karma": rng.randint(0, 99)},
        "stats": {"score": rng.randint(0, 10**6)},
        "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)),
        "comments": [{"user": f"u{rng.randint(0, 50)}", "text": f"comment {j}"} for j in range(rng.randint(0, 3))],
    }


def load_posts(collection, count, seed=1, batch=5000):
    """load_posts inserts count posts into collection."""
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        docs.append(make_post(i, rng))
        if len(docs) == batch:
            collection.insert_many(docs)
            docs = []
    if docs:
        collection.insert_many(docs)


def fresh_posts(mongo, db, count, seed=1):
    """fresh_posts drops database db of the source and loads count posts into db.posts (returned)."""
    client = mongo.client()
    client.drop_database(db)
    coll = client[db].posts
    load_posts(coll, count, seed)
    return coll


def expected_rows(collection):
    """expected_rows maps every document of collection through posts_mapping, as Python tuples."""
    parents, children = {}, {}
    for doc in collection.find({}):
        author = doc.get("author") if isinstance(doc.get("author"), dict) else {}
        stats = doc.get("stats") if isinstance(doc.get("stats"), dict) else {}
        tags = doc.get("tags")
        parents[doc["_id"]] = (doc.get("title"), author.get("name"), stats.get("score"),
                               list(tags) if tags is not None else None)
        for pos, comment in enumerate(doc.get("comments") or []):
            children[(doc["_id"], pos)] = (comment.get("user"), comment.get("text"))
    return parents, children


def actual_rows(pg, table):
    """actual_rows reads the target and child tables; it also returns their raw row counts."""
    rows = pg.query(f'SELECT id, title, author_name, score, tags FROM "{table}"')
    parents = {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}
    crow = pg.query(f'SELECT post_id, pos, "user", body FROM "{table}_comments"')
    children = {(r[0], r[1]): (r[2], r[3]) for r in crow}
    return parents, children, len(rows), len(crow)


def compare(pg, table, collection):
    """compare returns a list of differences between collection and its tables (empty: equal)."""
    exp_parents, exp_children = expected_rows(collection)
    parents, children, nparents, nchildren = actual_rows(pg, table)
    problems = []
    if nparents != len(parents) or nchildren != len(children):
        problems.append(f"duplicate rows: {nparents} parent rows for {len(parents)} keys, "
                        f"{nchildren} child rows for {len(children)} keys")
    for key in exp_parents.keys() - parents.keys():
        problems.append(f"missing {key}")
    for key in parents.keys() - exp_parents.keys():
        problems.append(f"extra {key}")
    for key in exp_parents.keys() & parents.keys():
        if exp_parents[key] != parents[key]:
            problems.append(f"different {key}: mongo {exp_parents[key]} pg {parents[key]}")
    if exp_children != children:
        missing = exp_children.keys() - children.keys()
        extra = children.keys() - exp_children.keys()
        diff = [k for k in exp_children.keys() & children.keys() if exp_children[k] != children[k]]
        problems.append(f"children differ: {len(missing)} missing, {len(extra)} extra, {len(diff)} different "
                        f"(e.g. {sorted(missing)[:2]} {sorted(extra)[:2]} {diff[:2]})")
    return problems


def create_river(pg, river, uri, options=None):
    pg.query("SELECT mongo_river.create_river(%s, %s, %s)", (river, uri, json.dumps(options or {})))


def map_posts(pg, river, source, table, options=None):
    return pg.scalar("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)::text",
                     (river, source, table, json.dumps(posts_mapping(table)), json.dumps(options or {})))


@contextlib.contextmanager
def synced_river(pg, mongo, river, mapping, namespaces, docs=(), options=None):
    """synced_river sets up a river the way most tests start: each namespace's database dropped and
    its collection seeded with docs, the river created over mongo with options, each "db.coll" of
    namespaces mapped (by mapping) to a table named after its database, and the initial copy done
    (wait_synced). It yields the first namespace's collection; the river and its tables are dropped
    after, also when the test fails."""
    client = mongo.client()
    collections = []
    for namespace in namespaces:
        db, coll = namespace.split(".", 1)
        client.drop_database(db)
        collections.append(client[db][coll])
        if docs:
            collections[-1].insert_many([dict(d) for d in docs])
    try:
        create_river(pg, river, mongo.uri, options)
        for namespace in namespaces:
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (river, namespace, namespace.split(".", 1)[0], json.dumps(mapping)))
        wait_synced(pg, river)
        yield collections[0]
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))


def wait_synced(pg, river, timeout=120):
    """wait_synced waits (with a deadline) until the river has applied everything the source has."""
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, %s::interval)", (river, f"{timeout} s")), \
        f"river {river} did not catch up within {timeout}s: " + repr(pg.query("SELECT * FROM mongo_river.status"))


def status(pg, river):
    return {row[0]: row[1:] for row in pg.query(
        "SELECT source, phase, docs_copied, changes_applied, last_error, worker_pid FROM mongo_river.status "
        "WHERE river = %s", (river,))}


class Writer(threading.Thread):
    """Writer applies random changes (inserts, updates incl. child arrays, replaces, deletes,
    multi-document transactions) to a posts collection until stopped; seeded, so a failure can be
    replayed."""

    def __init__(self, collection, seed, first_new_id=10**6, pause=0.0):
        super().__init__(daemon=True)
        self.collection = collection
        self.rng = random.Random(seed)
        self.next_id = first_new_id
        self.pause = pause
        self.stopped = threading.Event()
        self.paused = threading.Event()
        self.stepping = threading.Lock()
        self.count = 0
        self.error = None

    def step(self):
        rng, c = self.rng, self.collection
        target = f"p{rng.randint(0, self.next_id - 1 if self.next_id > 10**6 else 999):07d}"
        op = rng.random()
        if op < 0.2:
            c.insert_one(make_post(self.next_id, rng))
            self.next_id += 1
        elif op < 0.4:
            c.update_one({"_id": target}, {"$set": {"title": f"t{rng.random()}"}, "$inc": {"stats.score": 1}})
        elif op < 0.5:
            c.update_one({"_id": target}, {"$push": {"comments": {"user": "w", "text": f"x{rng.random()}"}}})
        elif op < 0.6:
            c.update_one({"_id": target}, {"$pull": {"comments": {"user": "w"}}})
        elif op < 0.7:
            c.update_one({"_id": target}, {"$unset": {"author": ""}})
        elif op < 0.8:
            c.replace_one({"_id": target}, make_post(int(target[1:]), rng))
        elif op < 0.9:
            c.delete_one({"_id": target})
        elif op < 0.95:
            c.update_one({"_id": target}, {"$pop": {"comments": -1}, "$set": {"tags": ["z"]}})
        else:
            # A multi-document transaction: it must land whole, or not at all.
            other = f"p{rng.randint(0, 999):07d}"
            with c.database.client.start_session() as session:
                with session.start_transaction():
                    c.update_one({"_id": target}, {"$set": {"title": "txn"}, "$inc": {"stats.score": 1}},
                                 session=session)
                    c.update_one({"_id": other}, {"$push": {"comments": {"user": "txn", "text": "t"}}},
                                 session=session)
                    c.insert_one(make_post(self.next_id, rng), session=session)
                    self.next_id += 1
        self.count += 1

    def run(self):
        try:
            while not self.stopped.is_set():
                if self.paused.is_set():
                    self.stopped.wait(0.01)
                    continue
                with self.stepping:
                    self.step()
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # reported by stop()
            self.error = e

    def hold(self):
        """hold pauses the writer once its current change is made (resume() continues)."""
        self.paused.set()
        with self.stepping:
            pass

    def resume(self):
        self.paused.clear()

    def stop(self):
        self.stopped.set()
        self.join(30)
        if self.error:
            raise self.error
        return self.count


def set_copy_builds_tuples(pg, on):
    """set_copy_builds_tuples sets mongo_river.copy_builds_tuples and waits until new processes (a
    river worker started afterwards) get it: a new connection shows it once the postmaster reloaded."""
    pg.query(f"ALTER SYSTEM SET mongo_river.copy_builds_tuples = {'on' if on else 'off'}")
    pg.query("SELECT pg_reload_conf()")
    wait_for(lambda: pg.scalar("SHOW mongo_river.copy_builds_tuples") == ("on" if on else "off"), 30, 0.05,
             "the postmaster to reload mongo_river.copy_builds_tuples")


# PATH_AUDIT_SQL is the body of a trigger function that records, per row, which path wrote it:
# 'copy' (COPY FROM: pg_stat_progress_copy has the backend), 'tuples' (rows written as heap tuples:
# the worker's pg_stat_activity.query says so) or 'insert' (INSERT statements).
PATH_AUDIT_SQL = """
    BEGIN
      PERFORM pg_stat_clear_snapshot();
      INSERT INTO {audit} VALUES (TG_TABLE_NAME, NEW.{key}::text,
        CASE WHEN EXISTS (SELECT 1 FROM pg_stat_progress_copy WHERE pid = pg_backend_pid()) THEN 'copy'
             WHEN (SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid())
                  = 'mongo_river: initial copy, rows written as heap tuples' THEN 'tuples'
             ELSE 'insert' END);
      RETURN NULL;
    END"""
