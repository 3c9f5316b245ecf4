"""Review 26: a domain over text[] whose elements need quoting in an array literal (commas, quotes,
braces, backslashes, the word NULL, empty strings, spaces), copied by both copy paths (heap tuples,
and PostgreSQL's COPY FROM text with mongo_river.copy_builds_tuples off), inserted and patched:
each element must arrive as it is in MongoDB."""

import pytest

from river import set_copy_builds_tuples, synced_river, wait_synced

ODD = ["a,b", '"q"', "NULL", "{x}", "back\\slash", "", " padded ", "null", "é\u00e9"]


@pytest.mark.parametrize("tuples", [True, False])
def test_odd_elements(river_pg, mongo, tuples):
    pg = river_pg
    pg.query("DO $$ BEGIN CREATE DOMAIN r26_free AS text[] CHECK (cardinality(VALUE) < 100); "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    set_copy_builds_tuples(pg, tuples)
    try:
        river = f"r26odd_{'t' if tuples else 'c'}"
        mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                           "t": {"path": "t", "type": "public.r26_free"},
                                           "plain": {"path": "t", "type": "text[]"}}}
        docs = [{"_id": "a", "t": ODD}, {"_id": "b", "t": [None, "x"]}]
        with synced_river(pg, mongo, river, mapping, [f"{river}.c"], docs) as coll:
            coll.insert_one({"_id": "c", "t": ODD})
            coll.update_one({"_id": "b"}, {"$set": {"t": list(reversed(ODD))}})
            wait_synced(pg, river)
            rows = pg.query(f'SELECT id, t::text[], plain FROM "{river}" ORDER BY id')
            assert rows == [("a", ODD, ODD), ("b", list(reversed(ODD)), list(reversed(ODD))), ("c", ODD, ODD)], \
                (rows, pg.query("SELECT * FROM mongo_river.rejects"))
    finally:
        set_copy_builds_tuples(pg, True)
