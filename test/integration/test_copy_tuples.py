"""The initial copy's two bulk paths write the same rows: documents with odd values of every
mapped type go through heap tuples (mongo_river.copy_builds_tuples on) and through COPY FROM text
(off) into two sets of tables with defaults, identity, generated columns, a CHECK constraint, a
BEFORE ROW trigger and a foreign key; the tables are then compared row by row, byte for byte (each
row's text and its binary send form)."""

import datetime
import json
import random
import uuid

from bson.binary import Binary
from bson.decimal128 import Decimal128

from pgcluster import wait_for
from river import PATH_AUDIT_SQL, create_river, set_copy_builds_tuples, wait_synced

ODD_TEXTS = ["", "plain", "tab\there", "new\nline", "cr\rlf\r\n", "back\\slash", "\\N", "\\.", "NULL",
             "quote\"s and 'single'", "{braces,comma}", "ünïcödé ✓ 𝄞 😀", " lead and trail ", "a" * 3000]


def odd_document(i, rng):
    """odd_document returns document i: values of every mapped kind, odd ones often, fields missing
    or null at random."""
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=rng.randint(-10**12, 4 * 10**12))
    doc = {
        "_id": f"d{i:05d}",
        "s": rng.choice(ODD_TEXTS),
        "short": rng.choice(["", "ab", "x\ty", "ü"]),
        "small": rng.randint(-32768, 32767),
        "mid": rng.choice([rng.randint(-2**31 + 1, 2**31 - 1), 0, 7]),
        "big": rng.choice([rng.randint(-2**63, 2**63 - 1), -1, 2**53 + 1]),
        "f": rng.choice([0.1, -0.0, 1e308, 5e-324, float("nan"), float("inf"), -float("inf"), 1 / 3,
                         rng.uniform(-1e6, 1e6), 12, 2**60]),
        "f4": rng.choice([0.1, 3.4e38, -1.5, float("nan"), float("inf"), 1e-40, rng.uniform(-100, 100), 3]),
        "n": rng.choice([Decimal128("1.50"), Decimal128("-0.000"), Decimal128("NaN"), Decimal128("Infinity"),
                         Decimal128("1E+30"), Decimal128("123456789012345678901234.5678"), 42, 2**62, 0.25,
                         Decimal128("-1.0E-20")]),
        "n2": rng.choice([Decimal128("123.456"), Decimal128("0.005"), Decimal128("-99999999.99"), 5, 0.125]),
        "b": rng.choice([True, False]),
        "t": t,
        "t_ts": t,
        "t_ts0": t,
        "t_d": t,
        "u": Binary(uuid.UUID(int=rng.getrandbits(128)).bytes, 4),
        "by": Binary(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))) + b"\\\t\n\x00", 0),
        "j": {"a": rng.choice(ODD_TEXTS), "n": rng.choice([1, 1.5, 10**18, -0.0]), "l": [1, None, {"x": "y"}],
              "d": t, "dec": Decimal128("1.10")},
        "jt": {"z": 1, "a": [True, None], "s": rng.choice(ODD_TEXTS)},
        "tags": rng.choice([[], ["a", None, "b"], [rng.choice(ODD_TEXTS) for _ in range(3)], None]),
        "nums": rng.choice([[], [1, None, 2**40], [-5]]),
        "decs": rng.choice([[Decimal128("1.0"), None, Decimal128("NaN")], [], [3, 0.5]]),
        "times": rng.choice([[t, None, t + datetime.timedelta(microseconds=1000)], []]),
        "items": [{"name": rng.choice(ODD_TEXTS[:6]), "qty": rng.randint(0, 100),
                   "price": rng.choice([Decimal128("9.99"), 3, 2.5])} for _ in range(rng.randint(0, 3))],
    }
    for key in list(doc):
        if key != "_id" and rng.random() < 0.08:
            if rng.random() < 0.5:
                del doc[key]
            else:
                doc[key] = None
    return doc


def odd_mapping(table):
    return {
        "pk": "id",
        "columns": {
            "id": {"path": "_id", "type": "text"},
            "s": {"path": "s", "type": "text"},
            "short": {"path": "short", "type": "varchar(10)"},
            "small": {"path": "small", "type": "smallint"},
            "mid": {"path": "mid", "type": "integer"},
            "big": {"path": "big", "type": "bigint"},
            "f": {"path": "f", "type": "double precision"},
            "f4": {"path": "f4", "type": "real"},
            "n": {"path": "n", "type": "numeric"},
            "n2": {"path": "n2", "type": "numeric(10,2)"},
            "b": {"path": "b", "type": "boolean"},
            "t": {"path": "t", "type": "timestamptz"},
            "t_ts": {"path": "t_ts", "type": "timestamp"},
            "t_ts0": {"path": "t_ts0", "type": "timestamp(0) with time zone"},
            "t_d": {"path": "t_d", "type": "date"},
            "u": {"path": "u", "type": "uuid"},
            "by": {"path": "by", "type": "bytea"},
            "j": {"path": "j", "type": "jsonb"},
            "jt": {"path": "jt", "type": "json"},
            "tags": {"path": "tags", "type": "text[]"},
            "nums": {"path": "nums", "type": "bigint[]"},
            "decs": {"path": "decs", "type": "numeric[]"},
            "times": {"path": "times", "type": "timestamptz[]"},
        },
        "arrays": {
            "items": {"path": "items", "table": f"{table}_items", "fk": "thing_id", "position": "pos",
                      "columns": {"name": {"path": "name", "type": "text"},
                                  "qty": {"path": "qty", "type": "integer"},
                                  "price": {"path": "price", "type": "numeric"}}},
        },
        "document": "doc",
    }


def worker_pid(pg, river):
    rows = pg.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                    "AND application_name = %s", ("mongo_river " + river,))
    return rows[0][0] if rows else None


def table_rows(pg, table, order):
    return pg.query(f"SELECT r::text, md5(record_send(r)) FROM {table} r ORDER BY {order}")


def copy_into(pg, mongo, source, tuples):
    """copy_into copies source into fresh tables by one path; returns the table name and its audit."""
    path = "tuples" if tuples else "copy"
    table = f"odd_{path}"
    river = f"odd_{path}"
    set_copy_builds_tuples(pg, tuples)
    create_river(pg, river, mongo.uri, {"batch_size": 50})
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    wait_for(lambda: worker_pid(pg, river) is None, 60, 0.1, "the worker to stop")
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, '{}')",
             (river, source, table, json.dumps(odd_mapping(table))))
    # What COPY keeps for unmapped columns: defaults, identity, stored generated columns; a CHECK
    # constraint; a BEFORE ROW trigger (one row at a time) that changes some rows and skips others.
    pg.query(f"""ALTER TABLE {table} ADD COLUMN serial_no bigserial,
                     ADD COLUMN ident int GENERATED ALWAYS AS IDENTITY,
                     ADD COLUMN added date DEFAULT '2020-02-29',
                     ADD COLUMN upper_s text GENERATED ALWAYS AS (upper(s)) STORED,
                     ADD CONSTRAINT small_ok CHECK (small IS NULL OR small > -40000)""")
    # A volatile default makes the child table's rows go one at a time too (COPY does the same).
    pg.query(f"CREATE FUNCTION {table}_one() RETURNS int VOLATILE LANGUAGE sql AS 'SELECT 1'")
    pg.query(f"ALTER TABLE {table}_items ADD COLUMN vol int DEFAULT {table}_one()")
    pg.query(f"""CREATE FUNCTION {table}_items_before() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.qty = 13 THEN RETURN NULL; END IF;
                   NEW.name := coalesce(NEW.name, '?') || '!';
                   RETURN NEW;
                 END $$""")
    pg.query(f"CREATE TRIGGER before_row BEFORE INSERT ON {table}_items FOR EACH ROW "
             f"EXECUTE FUNCTION {table}_items_before()")
    pg.query(f"CREATE TABLE {table}_audit (tbl text, id text, path text)")
    pg.query(f"CREATE FUNCTION {table}_audit() RETURNS trigger LANGUAGE plpgsql AS $$" +
             PATH_AUDIT_SQL.format(audit=f"{table}_audit", key="id") + "$$")
    pg.query(f"CREATE TRIGGER audit AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_audit()")
    pg.query(f"CREATE FUNCTION {table}_items_audit() RETURNS trigger LANGUAGE plpgsql AS $$" +
             PATH_AUDIT_SQL.format(audit=f"{table}_audit", key="thing_id") + "$$")
    pg.query(f"CREATE TRIGGER audit AFTER INSERT ON {table}_items FOR EACH ROW "
             f"EXECUTE FUNCTION {table}_items_audit()")
    pg.query("SELECT mongo_river.start(%s)", (river,))
    wait_synced(pg, river)
    audit = dict(pg.query(f"SELECT tbl || ' ' || path, count(*) FROM {table}_audit GROUP BY 1"))
    rejects = pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = %s ORDER BY 1", (river,))
    pg.query("SELECT mongo_river.drop_river(%s, false)", (river,))
    return table, audit, rejects


def test_copy_tuples_equal_copy_text(river_pg, mongo):
    pg = river_pg
    seed = random.randrange(10**9)
    print(f"seed {seed}")
    rng = random.Random(seed)
    client = mongo.client()
    client.drop_database("odd")
    docs = [odd_document(i, rng) for i in range(1500)]
    client.odd.things.insert_many(docs)
    try:
        copy_table, copy_audit, copy_rejects = copy_into(pg, mongo, "odd.things", False)
        tuples_table, tuples_audit, tuples_rejects = copy_into(pg, mongo, "odd.things", True)
    finally:
        set_copy_builds_tuples(pg, True)
    # Each path wrote every row it was given (no batch fell back to INSERT).
    assert set(k.split(" ")[1] for k in copy_audit) == {"copy"}, copy_audit
    assert set(k.split(" ")[1] for k in tuples_audit) == {"tuples"}, tuples_audit
    assert sorted(copy_audit.values()) == sorted(tuples_audit.values())
    assert copy_rejects == tuples_rejects
    assert len(copy_rejects) < 100, copy_rejects[:5]
    copied = table_rows(pg, copy_table, "id")
    built = table_rows(pg, tuples_table, "id")
    assert len(copied) == 1500 - len(copy_rejects)
    diff = [(a, b) for a, b in zip(copied, built) if a != b]
    assert len(copied) == len(built) and not diff, f"seed {seed}: {diff[:3]}"
    copied = table_rows(pg, f"{copy_table}_items", "thing_id, pos")
    built = table_rows(pg, f"{tuples_table}_items", "thing_id, pos")
    assert len(copied) > 500
    diff = [(a, b) for a, b in zip(copied, built) if a != b]
    assert len(copied) == len(built) and not diff, f"seed {seed}: {diff[:3]}"
    # The odd values are there: NaN, infinities, -0, odd texts, empty and NULL-holding arrays.
    assert pg.scalar(f"SELECT count(*) FROM {tuples_table} WHERE f = 'NaN' OR f4 = 'Infinity' "
                     "OR n = 'NaN'") > 0
    assert pg.scalar(f"SELECT count(*) FROM {tuples_table} WHERE s LIKE E'%\\t%' OR s LIKE '%\\\\%'") > 0
    assert pg.scalar(f"SELECT count(*) FROM {tuples_table} WHERE tags = '{{}}' OR array_position(tags, NULL) > 0") > 0


def test_partitioned_target_goes_through_copy(river_pg, mongo):
    """A partitioned target takes COPY FROM (which routes rows to partitions), never tuples."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("parted")
    client.parted.things.insert_many([{"_id": f"k{i:04d}", "n": i} for i in range(300)])
    pg.query("CREATE TABLE parted (id text PRIMARY KEY, n bigint) PARTITION BY HASH (id)")
    pg.query("CREATE TABLE parted_0 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)")
    pg.query("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)")
    pg.query("CREATE TABLE parted_audit (tbl text, id text, path text)")
    pg.query("CREATE FUNCTION parted_audit() RETURNS trigger LANGUAGE plpgsql AS $$" +
             PATH_AUDIT_SQL.format(audit="parted_audit", key="id") + "$$")
    pg.query("CREATE TRIGGER audit AFTER INSERT ON parted FOR EACH ROW EXECUTE FUNCTION parted_audit()")
    create_river(pg, "parted", mongo.uri)
    pg.query("SELECT mongo_river.map_collection('parted', 'parted.things', 'parted', %s, '{}')",
             (json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                                  "n": {"path": "n", "type": "bigint"}}}),))
    wait_synced(pg, "parted")
    assert pg.scalar("SELECT count(*) FROM parted_0") + pg.scalar("SELECT count(*) FROM parted_1") == 300
    assert pg.scalar("SELECT count(*) FROM parted_0") > 0 and pg.scalar("SELECT count(*) FROM parted_1") > 0
    assert dict(pg.query("SELECT path, count(*) FROM parted_audit GROUP BY 1")) == {"copy": 300}
    pg.query("SELECT mongo_river.drop_river('parted', false)")
