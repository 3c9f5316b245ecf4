"""Review 26: columns whose type is a domain over an array type (README "BSON to PostgreSQL": "a domain
over an array type ... takes arrays as its array type does, each array then checked against the
domain (copy, inserts and updates alike)"; values "are checked by PostgreSQL itself", and a copy's
rows are "byte for byte what COPY would write").

The oracle for each value is what PostgreSQL itself does with it: COPY (and an INSERT of the
literal) runs the domain's input, domain_in, which applies the base type's modifier (varchar(3),
numeric(5,2)) and the domain's NOT NULL and CHECK constraints, NULL included."""

import json

import pytest

from review_helpers import create_types, rejects
from river import synced_river, wait_synced


def setup_types(pg):
    create_types(pg, """
        CREATE DOMAIN r26_codes AS varchar(3)[];
        CREATE DOMAIN r26_prices AS numeric(5,2)[];
        CREATE DOMAIN r26_ints_nn AS integer[] NOT NULL;
        CREATE DOMAIN r26_ints_present AS integer[] CHECK (VALUE IS NOT NULL);""")


def postgres_says(pg, literal, domain):
    """postgres_says returns what PostgreSQL makes of literal stored in a column of type domain (an
    INSERT's assignment, as COPY: domain_in with the base type's modifier): its text, or the error."""
    pg.query(f"CREATE TABLE IF NOT EXISTS r26_probe_{domain} (v {domain})")
    try:
        return pg.scalar(f"INSERT INTO r26_probe_{domain} VALUES (%s) RETURNING v::text", (literal,))
    except Exception as e:  # noqa: BLE001 (the error is the answer)
        return "ERROR: " + str(e).splitlines()[0]


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_domain_over_varchar_n_array_keeps_the_length_limit(river_pg, mongo, capture):
    """A domain over varchar(3)[]: PostgreSQL refuses a 6-character element ('value too long for
    type character varying(3)'); mongo_river must reject the document, on the copy and on an insert,
    instead of storing an element the column's type cannot hold."""
    pg = river_pg
    setup_types(pg)
    assert postgres_says(pg, "{abcdef}", "r26_codes").startswith("ERROR: value too long"), \
        postgres_says(pg, "{abcdef}", "r26_codes")
    river = f"r26vc_{capture}"
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "codes": {"path": "codes", "type": "public.r26_codes"}}}
    docs = [{"_id": "ok", "codes": ["abc", "d"]}, {"_id": "long", "codes": ["abcdef"]}]
    with synced_river(pg, mongo, river, mapping, [f"{river}.c"], docs, {"capture": capture}) as coll:
        coll.insert_one({"_id": "long2", "codes": ["x", "wxyzwxyz"]})
        coll.update_one({"_id": "ok"}, {"$set": {"codes": ["abc", "toolong"]}})  # a patch
        wait_synced(pg, river)
        rows = pg.query(f'SELECT id, codes::text FROM "{river}" ORDER BY id')
        assert rows == [("ok", "{abc,d}")], (rows, rejects(pg, river))
        assert [(r[0], r[1]) for r in rejects(pg, river)] == [("long", "copy"), ("long2", "insert"),
                                                              ("ok", "update")], rejects(pg, river)


@pytest.mark.parametrize("capture", ["change_stream", "oplog"])
def test_domain_over_numeric_p_s_array_rounds_and_limits(river_pg, mongo, capture):
    """A domain over numeric(5,2)[]: PostgreSQL stores 1.5 as 1.50 and refuses 123456 ('numeric
    field overflow'). The copy and the stream's insert must do the same."""
    pg = river_pg
    setup_types(pg)
    assert postgres_says(pg, "{1.5}", "r26_prices") == "{1.50}"
    assert "overflow" in postgres_says(pg, "{123456}", "r26_prices")
    river = f"r26num_{capture}"
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "prices": {"path": "prices", "type": "public.r26_prices"}}}
    docs = [{"_id": "a", "prices": [1.5]}, {"_id": "big", "prices": [123456]}]
    with synced_river(pg, mongo, river, mapping, [f"{river}.c"], docs, {"capture": capture}) as coll:
        coll.insert_one({"_id": "b", "prices": [2.5]})
        coll.insert_one({"_id": "big2", "prices": [99999999]})
        coll.update_one({"_id": "a"}, {"$set": {"prices": [1.5, 3.25]}})  # a patch
        wait_synced(pg, river)
        rows = pg.query(f'SELECT id, prices::text FROM "{river}" ORDER BY id')
        assert rows == [("a", "{1.50,3.25}"), ("b", "{2.50}")], (rows, rejects(pg, river))
        assert sorted(r[0] for r in rejects(pg, river)) == ["big", "big2"], rejects(pg, river)


@pytest.mark.parametrize("domain", ["r26_ints_nn", "r26_ints_present"])
def test_domain_over_array_refusing_null_is_checked_for_null(river_pg, mongo, domain):
    """A domain over integer[] with NOT NULL (or CHECK (VALUE IS NOT NULL)) refuses NULL: COPY runs
    domain_in for a NULL too ('domain ... does not allow null values' / 'violates check
    constraint'). A document without the field (or with null) must be rejected, not stored as NULL
    in a column whose type forbids it."""
    pg = river_pg
    setup_types(pg)
    assert postgres_says(pg, None, domain).startswith("ERROR"), postgres_says(pg, None, domain)
    river = f"r26nn_{domain[-7:]}"
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "ns": {"path": "ns", "type": f"public.{domain}"}}}
    docs = [{"_id": "a", "ns": [1, 2]}, {"_id": "missing"}, {"_id": "null", "ns": None}]
    with synced_river(pg, mongo, river, mapping, [f"{river}.c"], docs) as coll:
        coll.insert_one({"_id": "missing2"})
        wait_synced(pg, river)
        rows = pg.query(f'SELECT id, ns::text FROM "{river}" ORDER BY id')
        assert rows == [("a", "{1,2}")], (rows, rejects(pg, river))

