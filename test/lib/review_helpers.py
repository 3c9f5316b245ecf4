"""review_helpers: what the review tests (test/integration/test_review26_*, test_review27_*) share:
the two-column mappings they declare, types created once per cluster, the rejects and counters
they read, the check that no server process crashed, and a freshly seeded collection."""

# KEY_N_INTEGER and KEY_N_BIGINT map a collection's _id to a text key and its field n to a number.
# Read only: a test that needs another mapping builds its own.
KEY_N_INTEGER = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}
KEY_N_BIGINT = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}}}


def create_types(pg, ddl):
    """create_types runs ddl (CREATE TYPE / DOMAIN / SCHEMA statements, each ending with ';') in one
    DO block that does nothing when a type exists already (the module's cluster made it before)."""
    pg.query("DO $$ BEGIN " + ddl + " EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def rejects(pg, river, columns="document_id, operation, error"):
    """rejects returns the river's rejects (the given columns), oldest first."""
    return pg.query(f"SELECT {columns} FROM mongo_river.rejects WHERE river = %s ORDER BY id", (river,))


def status_rejects(pg, river):
    """status_rejects returns the river's rejects counter, as mongo_river.status shows it."""
    return pg.scalar("SELECT rejects FROM mongo_river.status WHERE river = %s", (river,))


def no_new_crashes(pg, before):
    """no_new_crashes asserts that the server log shows no crashed process after the first `before`
    (a count taken with len(pg.crashes()) when the test started)."""
    crashes = pg.crashes()[before:]
    assert crashes == [], crashes


def fresh(mongo, db, docs):
    """fresh drops database db and returns its collection c, seeded with docs (if any)."""
    client = mongo.client()
    client.drop_database(db)
    coll = client[db].c
    if docs:
        coll.insert_many(docs)
    return coll
