"""Hostile documents: type conflicts with the mapping, keys with dots, `$`, unicode and the empty
string, nesting at MongoDB's 180-level storage limit, documents up to 8 MiB, every BSON type including the
deprecated ones (symbol, undefined, DBPointer, code with scope, minKey/maxKey, timestamp, regex,
decimal128 NaN, dates before 1970 and after 2038), strings with NUL characters and invalid UTF-8.

Each document goes through the copy (inserted before the mapping) and through the stream (inserted
after it). Each must either land (its row is checked) or be in mongo_river.rejects with its reason
and its raw BSON (both checked), never both, never neither; the server never crashes (the `pg`
fixture fails the module on a process terminated by signal 6/11)."""

import datetime
import json
import math
import struct

import bson
import pytest
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

from river import create_river, wait_synced

MAPPING = {
    "pk": "id",
    "columns": {
        "id": {"path": "_id", "type": "text"},
        "n": {"path": "n", "type": "integer"},
        "s": {"path": "s", "type": "text"},
        "d": {"path": "d", "type": "timestamptz"},
        "x": {"path": "x", "type": "numeric"},
        "f": {"path": "f", "type": "double precision"},
        "b": {"path": "b", "type": "bytea"},
        "u": {"path": "u", "type": "uuid"},
        "j": {"path": "j", "type": "jsonb"},
        "dotted": {"path": ["a.b"], "type": "text"},
    },
    "document": "doc",
}
COLUMNS = ["n", "s", "d", "x", "f", "b", "u", "j", "dotted"]
MIB = 1024 * 1024


# Raw BSON, for what pymongo will not encode (deprecated types, invalid UTF-8, keys it checks).
def cstring(s):
    return (s.encode() if isinstance(s, str) else s) + b"\x00"


def string(s):
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("<i", len(data) + 1) + data + b"\x00"


def element(kind, key, payload=b""):
    return bytes([kind]) + cstring(key) + payload


def raw_document(*elements):
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def raw(doc_id, *elements):
    """raw builds a document with a string _id and the given raw elements."""
    return raw_document(element(0x02, "_id", string(doc_id)), *elements)


def encoded(doc):
    return bson.encode(doc, check_keys=False)


def nested(depth, leaf):
    """nested: depth - 1 documents inside each other; under a top-level key, the whole document is
    `depth` levels deep."""
    value = leaf
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def nested_arrays(depth):
    """nested_arrays: arrays inside each other; {"deep": nested_arrays(n)} is n + 1 levels deep."""
    value = ["leaf"]
    for _ in range(depth - 2):
        value = [value]
    return {"0": value}


def date_ms(ms):
    return element(0x09, "d", struct.pack("<q", ms))


# Each case: id, BSON bytes, expected outcome ('row' with column checks, 'reject' with words of the
# reason, or 'either').  Row checks compare SQL values of the mapped columns (None: SQL NULL).
def cases():
    c = []

    def add(doc_id, data, outcome, **expect):
        c.append((doc_id, data if isinstance(data, bytes) else encoded({"_id": doc_id, **data}), outcome, expect))

    # Type conflicts with the mapping.
    add("conflict_str_int", {"n": "not a number"}, "reject", words=["n"])
    add("conflict_int64_range", {"n": Int64(2**40)}, "reject", words=["n"])
    add("conflict_fraction", {"n": 1.5}, "reject", words=["n"])
    add("integral_double", {"n": 2.0}, "row", n=2)
    add("conflict_object_int", {"n": {"a": 1}}, "reject", words=["n"])
    add("conflict_array_int", {"n": [1, 2]}, "reject", words=["n"])
    add("conflict_bool_ts", {"d": True}, "reject", words=["d"])
    add("conflict_bad_date_string", {"d": "not a date"}, "reject", words=["d"])
    add("conflict_bad_uuid", {"u": "not-a-uuid"}, "reject", words=["u"])
    add("uuid_string", {"u": "12345678-1234-5678-1234-567812345678"}, "row",
        u="12345678-1234-5678-1234-567812345678")
    add("conflict_object_text", {"s": {"nested": True}}, "either")
    add("int_as_text", {"s": 42}, "either")
    # Keys.
    add("key_dots", {"a.b": "dotted value", "x.y.z": 1}, "row", dotted="dotted value",
        doc_keys={"a.b": "dotted value", "x.y.z": 1})
    add("key_dollar", {"$weird": 1, "in": {"$also": 2}}, "row", doc_keys={"$weird": 1})
    add("key_unicode", {"caf\u00e9": "\u6f22\u5b57", "\U0001f600": "\u0000".replace("\u0000", "smile"),
                        "s": "\u00e9\U0001f600\u200b"}, "row", s="\u00e9\U0001f600\u200b",
        doc_keys={"caf\u00e9": "\u6f22\u5b57"})
    add("key_empty", {"": "empty key", "s": "ok"}, "row", s="ok", doc_keys={"": "empty key"})
    # Nesting.
    # {"deep": nested(n)} is n levels deep (the top-level document is level 1): mongod stores up to
    # 180 (BSONDepth::getMaxDepthForUserStorage(); the manual's "100" is not what it enforces).
    add("nest_100", {"deep": nested(100, "leaf")}, "row")
    add("nest_180", raw("nest_180", element(0x03, "deep", encoded(nested(180, "leaf")))), "row")
    add("nest_180_arrays", raw("nest_180_arrays", element(0x04, "deep", encoded(nested_arrays(179)))), "row")
    add("nest_181", raw("nest_181", element(0x03, "deep", encoded(nested(181, "leaf")))), "either")
    # Size.
    add("big_8mib", {"s": "y" * 16, "pad": "x" * (8 * MIB - 200)}, "row", s="y" * 16, pad_len=8 * MIB - 200)
    add("big_8mib_binary", {"b": Binary(b"\x00\xff" * (4 * MIB - 100))}, "row", b_len=8 * MIB - 200)
    # Every BSON type, in the document column (and where the README says so, typed columns).
    add("t_double_special", {"f": float("nan"), "g": float("inf"), "h": float("-inf"), "z": -0.0}, "row",
        f="nan")
    add("t_decimal_nan", {"x": Decimal128("NaN")}, "row", x="NaN")
    add("t_decimal_inf", {"x": Decimal128("-Infinity")}, "row", x="-Infinity")
    add("t_decimal_big", {"x": Decimal128("1.234567890123456789012345678901234E+6144")}, "row",
        x="1.234567890123456789012345678901234E+6144")
    add("t_decimal_tiny", {"x": Decimal128("-1E-6176")}, "row", x="-1E-6176")
    add("t_objectid", {"s": ObjectId("0123456789abcdef01234567")}, "row", s="0123456789abcdef01234567")
    add("t_binary_kinds", {"b": Binary(b"\x01\x02", 0), "b1": Binary(b"f", 1), "b2": Binary(b"\x00" * 4, 2),
                           "b5": Binary(b"0123456789abcdef", 5), "b80": Binary(b"user", 0x80),
                           "u": Binary(bytes(range(16)), 4)}, "row", b=b"\x01\x02",
        u="00010203-0405-0607-0809-0a0b0c0d0e0f")
    add("t_regex", {"j": Regex("^a.*b$", "imsx"), "r": Regex("[", "")}, "row", doc_types={"j": "$regularExpression"})
    add("t_code", {"s": Code("function() { return 1; }")}, "row", s="function() { return 1; }")
    add("t_code_scope", {"j": Code("function() { return x; }", {"x": 1})}, "row", doc_types={"j": "$code"})
    add("t_minmax", {"j": MinKey(), "k": MaxKey()}, "row", doc_types={"j": "$minKey", "k": "$maxKey"})
    add("t_timestamp", {"j": Timestamp(1700000000, 7), "d": Timestamp(1700000000, 1)}, "row",
        d="2023-11-14 22:13:20", doc_types={"j": "$timestamp"})
    add("t_null", {"n": None, "s": None}, "row", n=None, s=None)
    add("t_bool", {"s": True, "j": False}, "either")
    add("t_dbref", {"j": bson.DBRef("coll", ObjectId("0123456789abcdef01234567"), "db")}, "row")
    add("t_symbol", raw("t_symbol", element(0x0E, "s", string("a symbol")), element(0x0E, "sym", string("z"))),
        "row", s="a symbol", doc_types={"sym": "$symbol"})
    add("t_undefined", raw("t_undefined", element(0x06, "n"), element(0x06, "und")), "row", n=None)
    add("t_dbpointer", raw("t_dbpointer", element(0x0C, "j", string("db.coll") + bytes.fromhex("0123456789abcdef01234567"))),
        "row", doc_types={"j": "$dbPointer"})
    scope = string("code!!!!") + encoded({"v": 1})
    add("t_code_scope_raw", raw("t_code_scope_raw", element(0x0F, "j", struct.pack("<i", 4 + len(scope)) + scope)),
        "row", doc_types={"j": "$code"})
    # Malformed BSON the peer stores as it is (a real mongod refuses it): a reject, never a crash.
    add("malformed_code_scope", raw("malformed_code_scope", element(0x0F, "j", struct.pack("<i", 25) + scope)),
        "either")
    add("malformed_string_length", raw("malformed_string_length", element(0x02, "s", struct.pack("<i", 1000) + b"ab\x00")),
        "either")
    # Dates.
    add("date_1969", {"d": datetime.datetime(1969, 12, 31, 23, 59, 59, 999000)}, "row",
        d="1969-12-31 23:59:59.999")
    add("date_1900", {"d": datetime.datetime(1900, 1, 1)}, "row", d="1900-01-01 00:00:00")
    add("date_0001", {"d": datetime.datetime(1, 1, 1)}, "row", d="0001-01-01 00:00:00")
    add("date_2038", {"d": datetime.datetime(2038, 1, 19, 3, 14, 8)}, "row",
        d="2038-01-19 03:14:08")
    add("date_9999", {"d": datetime.datetime(9999, 12, 31, 23, 59, 59)}, "row",
        d="9999-12-31 23:59:59")
    add("date_year_20000", raw("date_year_20000", date_ms(569318630400000)), "either")
    add("date_bc", raw("date_bc", date_ms(-62198755200000 - 86400000 * 366)), "either")
    add("date_int64_max", raw("date_int64_max", date_ms(2**63 - 1)), "reject", words=["d"])
    add("date_int64_min", raw("date_int64_min", date_ms(-2**63)), "reject", words=["d"])
    # NUL characters and invalid UTF-8.
    add("nul_in_text", {"s": "a\x00b"}, "reject", words=["s"])
    add("nul_in_doc_only", {"other": "a\x00b"}, "reject", words=[])
    add("nul_in_key_value_nested", {"j": {"k": "x\x00"}}, "reject", words=[])
    add("utf8_invalid_text", raw("utf8_invalid_text", element(0x02, "s", string(b"bad \xff\xfe"))), "reject",
        words=["s"])
    add("utf8_invalid_doc", raw("utf8_invalid_doc", element(0x02, "o", string(b"\xc3\x28"))), "reject", words=[])
    add("utf8_invalid_key", raw("utf8_invalid_key", element(0x02, b"k\xff", string("v"))), "either")
    add("utf8_overlong_nul", raw("utf8_overlong_nul", element(0x02, "s", string(b"\xc0\x80"))), "reject",
        words=["s"])
    # Ids the text key cannot hold (other _id types need format extjson).
    c.append(("{\"$numberInt\":\"7\"}", encoded({"_id": 7, "s": "int id"}), "reject", {"words": []}))
    c.append(("0123456789abcdef01234568", encoded({"_id": ObjectId("0123456789abcdef01234568")}), "row", {}))
    return c


def insert_all(coll, docs):
    """insert_all inserts raw documents; returns the ids the source refused (with its reason)."""
    refused = {}
    for doc_id, data, _, _ in docs:
        try:
            coll.insert_one(RawBSONDocument(data))
        except Exception as e:  # the source itself may refuse some (e.g. too deep)
            refused[doc_id] = str(e)[:200]
    return refused


@pytest.fixture(scope="module")
def hostile(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("hostile_docs")
    docs = cases()
    refused_copy = insert_all(client.hostile_docs.copied, docs)
    create_river(pg, "hostile", mongo.uri, {"batch_size": 16})
    for coll in ("copied", "streamed"):
        pg.query("SELECT mongo_river.map_collection('hostile', %s, %s, %s)",
                 (f"hostile_docs.{coll}", f"hostile_{coll}", json.dumps(MAPPING)))
    wait_synced(pg, "hostile", 180)
    refused_stream = insert_all(client.hostile_docs.streamed, docs)
    wait_synced(pg, "hostile", 180)
    return pg, docs, {"copied": refused_copy, "streamed": refused_stream}


def check_row(row, expect):
    """check_row compares a landed row with the case's expectations; returns problems."""
    problems = []
    values = dict(zip(COLUMNS, row[1:10]))
    doc = row[10]
    for col in COLUMNS:
        if col in expect:
            got, want = values[col], expect[col]
            if isinstance(got, memoryview):
                got = bytes(got)
            if col == "f" and want == "nan":
                ok = isinstance(got, float) and math.isnan(got)
            elif col == "x":
                ok = got is not None and str(got) == str(want) or (got is not None and str(got).lower() == str(want).lower())
                if not ok and got is not None:
                    import decimal
                    ok = decimal.Decimal(str(got)) == decimal.Decimal(want)
            else:
                ok = got == want
            if not ok:
                problems.append(f"column {col}: {got!r:.80} != {want!r:.80}")
    for key, value in expect.get("doc_keys", {}).items():
        if doc is None or doc.get(key) != value:
            problems.append(f"doc[{key!r}] = {None if doc is None else doc.get(key)!r:.80}, expected {value!r}")
    for key, marker in expect.get("doc_types", {}).items():
        if doc is None or not isinstance(doc.get(key), dict) or marker not in doc[key]:
            problems.append(f"doc[{key!r}] = {None if doc is None else doc.get(key)!r:.80}, expected {marker}")
    if "pad_len" in expect and (doc is None or len(doc.get("pad", "")) != expect["pad_len"]):
        problems.append("the 8 MiB string is not whole in doc")
    if "b_len" in expect and (values["b"] is None or len(bytes(values["b"])) != expect["b_len"]):
        problems.append("the 8 MiB binary is not whole in b")
    if doc is None:
        problems.append("doc is NULL")
    return problems


@pytest.mark.parametrize("coll", ["copied", "streamed"])
def test_every_hostile_document_lands_or_is_rejected(hostile, coll, figures):
    pg, docs, refused = hostile
    table = f"hostile_{coll}"
    # Documents are read back by id; the big ones are checked through their lengths only.
    rows = {r[0]: r for r in pg.query(
        f"SELECT id, {', '.join(c if c != 'd' else '(d AT TIME ZONE $$UTC$$)::text' for c in COLUMNS)}, CASE WHEN length(doc::text) > 1000000 THEN "
        f"jsonb_build_object('pad', repeat('x', length(doc->>'pad'))) ELSE doc END FROM {table}")}
    rejects = {}
    for r in pg.query("SELECT document_id, operation, error, raw, document IS NOT NULL FROM mongo_river.rejects "
                      "WHERE river = 'hostile' AND source = %s", (f"hostile_docs.{coll}",)):
        rejects.setdefault(r[0], []).append(r)
    problems = []
    summary = []
    for doc_id, data, outcome, expect in docs:
        if doc_id in refused[coll]:
            summary.append(f"{doc_id}: refused by the source ({refused[coll][doc_id][:80]})")
            continue
        landed, rejected = doc_id in rows, doc_id in rejects
        summary.append(f"{doc_id}: {'row' if landed else ''}{'reject: ' + rejects[doc_id][0][2][:100] if rejected else ''}")
        if landed and rejected:
            problems.append(f"{doc_id}: both a row and a reject")
        elif not landed and not rejected:
            problems.append(f"{doc_id}: neither a row nor a reject (lost)")
        elif outcome == "row" and not landed:
            problems.append(f"{doc_id}: rejected, expected a row: {rejects[doc_id][0][2]}")
        elif outcome == "reject" and not rejected:
            problems.append(f"{doc_id}: landed, expected a reject")
        if landed:
            problems += [f"{doc_id}: {p}" for p in check_row(rows[doc_id], expect if outcome == "row" else {})]
        if rejected:
            r = rejects[doc_id]
            if len(r) != 1:
                problems.append(f"{doc_id}: {len(r)} rejects")
            _, operation, error, raw_bson, _ = r[0]
            if not error:
                problems.append(f"{doc_id}: reject without a reason")
            for word in expect.get("words", []):
                if word not in error:
                    problems.append(f"{doc_id}: reason {error!r} does not name {word!r}")
            if raw_bson is None:
                problems.append(f"{doc_id}: reject without raw BSON")
            elif bytes(raw_bson) != data:
                try:
                    same_id = bson.decode(bytes(raw_bson), bson.CodecOptions(
                        unicode_decode_error_handler="replace")).get("_id") is not None
                except Exception as e:  # noqa: BLE001 - reported
                    same_id = f"undecodable: {e}"
                problems.append(f"{doc_id}: raw BSON differs from the document inserted "
                                f"({len(bytes(raw_bson))} vs {len(data)} bytes, has _id: {same_id})")
            expected_op = "copy" if coll == "copied" else "insert"
            if operation != expected_op:
                problems.append(f"{doc_id}: operation {operation!r}, expected {expected_op!r}")
    print("\n".join(summary))
    figures(hostile=len(docs) - len(refused[coll]), lost=sum(1 for p in problems if "lost" in p),
            duplicates=sum(1 for p in problems if "both" in p))
    extra = set(rows) - {d[0] for d in docs}
    assert not extra, f"rows for documents never inserted: {extra}"
    assert not problems, "\n".join(problems)
    # Whatever landed or not, the river is healthy.
    assert pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = 'hostile' AND source = %s",
                    (f"hostile_docs.{coll}",)) == [("streaming", None)]


def test_hostile_updates_and_deletes(hostile, mongo, figures):
    """A good document updated into a hostile state is rejected (its row keeps the last good state),
    updated back is applied; a hostile document deleted removes nothing else."""
    pg = hostile[0]
    coll = mongo.client().hostile_docs.streamed
    coll.update_one({"_id": "integral_double"}, {"$set": {"n": "now a string"}})
    coll.update_one({"_id": "uuid_string"}, {"$set": {"s": "nul \x00 inside"}})
    wait_synced(pg, "hostile")
    assert pg.query("SELECT n FROM hostile_streamed WHERE id = 'integral_double'") == [(2,)]
    errors = dict(pg.query("SELECT document_id, error FROM mongo_river.rejects WHERE river = 'hostile' "
                           "AND source = 'hostile_docs.streamed' AND operation = 'update'"))
    assert set(errors) == {"integral_double", "uuid_string"}, errors
    coll.update_one({"_id": "integral_double"}, {"$set": {"n": 5}})
    coll.update_one({"_id": "uuid_string"}, {"$set": {"s": "clean"}})
    coll.delete_one({"_id": "nul_in_text"})
    coll.delete_one({"_id": "t_symbol"})
    wait_synced(pg, "hostile")
    assert pg.query("SELECT n, s FROM hostile_streamed WHERE id IN ('integral_double', 'uuid_string') ORDER BY id") == \
        [(5, None), (None, "clean")]
    assert pg.scalar("SELECT count(*) FROM hostile_streamed WHERE id = 't_symbol'") == 0
    figures(hostile=4)
