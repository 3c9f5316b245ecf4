"""Review 25 of ffd2307 (a copy batch converts each document into the storage of the previous
batch's rows; short texts are kept and overwritten in place by AssignText). Anything left over from
one document, batch or mapping that leaks into another row is silent corruption.

Each test builds a collection whose fields change type from document to document (short and long
strings, ObjectIds, ints, doubles, dates, null, missing, documents, arrays, booleans), copies it
with a small batch_size (many batches), and compares every row, value by value:
  * with a reference river that got the same documents through its change stream (each document
    converted into fresh storage, written by statements), and
  * for the columns where the expected text is plain (strings, ObjectIds, null, missing), with
    values computed here from the documents.
docs_copied and the rejects are checked too."""

import datetime
import json
import time

import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId

from pgcluster import wait_for
from river import create_river, wait_synced

DEATH = "terminated by signal"


def phase(pg, river):
    return pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,))


def copied(pg, river):
    return pg.scalar("SELECT sum(docs_copied) FROM mongo_river.status WHERE river = %s", (river,))


def key_of(document_id):
    """key_of: a reject's or verify's document_id (an ObjectId as {"$oid": ...}) as the text key."""
    if document_id and document_id.startswith('{"$oid"'):
        return json.loads(document_id)["$oid"]
    return document_id


def rejects(pg, river):
    return sorted(key_of(r[0]) for r in pg.query(
        "SELECT document_id FROM mongo_river.rejects WHERE river = %s", (river,)))


LONG = "L" * 100  # a text whose string has more than 64 bytes of capacity


def rot(i, k, choices):
    return choices[(i * k + i // 7) % len(choices)]


def t_value(i):
    """t_value: what goes into the text column t (every type)."""
    return rot(i, 5, [
        f"s{i}", LONG + str(i), ObjectId(f"{i:024x}"), i, i + 0.5, None, "__missing__",
        {"a": i, "b": "x"}, [i, "y"], True, "", "é€😀" * (i % 4), datetime.datetime(2020, 1, 1 + i % 28),
        "m" * 64, "n" * 65, Int64(1 << 40),
    ])


def make_doc(i, with_bad=True):
    if i % 11 == 3:
        _id = ObjectId(f"aa{i:022x}")
    else:
        _id = f"k{i:05d}" + ("x" * 70 if i % 13 == 5 else "")  # some keys longer than 64 bytes
    doc = {"_id": _id}
    for field, k in (("t", 5), ("u", 3)):
        v = t_value(i * (1 if field == "t" else 3) + k)
        if isinstance(v, str) and v == "__missing__":
            continue
        doc[field] = v
    # varchar(12): short strings, ints, missing, null; now and then something too long (PostgreSQL
    # refuses it: the batch falls back row by row)
    v = rot(i, 3, ["ab", f"v{i}", None, "__missing__", 7, "abcdefghijkl"])
    if with_bad and i % 29 == 17:
        v = ObjectId(f"{i:024x}")  # 24 characters into varchar(12)
    if v != "__missing__":
        doc["v"] = v
    c = rot(i, 7, ["ab", "abcde", None, "__missing__", 5, ObjectId(f"{i:024x}") if False else "z"])
    if c != "__missing__":
        doc["c"] = c
    x = rot(i, 2, [f"x{i}", ObjectId(f"{i:024x}"), i, None, "__missing__", {"q": [1, {"r": "s"}]}, LONG])
    if x != "__missing__":
        doc["x"] = x
    n = rot(i, 4, [i, None, "__missing__", Int64(i * 1000), i])
    if with_bad and i % 31 == 9:
        n = {"not": "a number"}  # the converter refuses it: rejected mid-batch
    if with_bad and i % 37 == 20:
        n = 999999  # the CHECK constraint refuses it
    if n != "__missing__":
        doc["n"] = n
    items = []
    for j in range((i * 7) % 4):
        item = {"name": rot(i + j, 3, [f"it{i}.{j}", ObjectId(f"{(i * 10 + j):024x}"), None, LONG, j])}
        subs = rot(i + j, 2, [[f"s{j}", ObjectId(f"{j:024x}"), None, LONG, 3], [], None, ["only"]])
        if subs is not None:
            item["subs"] = subs
        items.append(item)
    if i % 5 != 4:
        doc["items"] = items
    if with_bad and i % 41 == 7:
        doc["t"] = "bad\x00nul"  # jsonb/text cannot hold NUL: rejected by the converter
    return doc


def mapping():
    return {
        "pk": "id",
        "columns": {
            "id": {"path": "_id", "type": "text"},
            "t": {"path": "t", "type": "text"},
            "u": {"path": "u", "type": "text"},
            "v": {"path": "v", "type": "varchar(12)"},
            "c": {"path": "c", "type": "char(5)"},
            "x": {"path": "x", "type": "text", "format": "extjson"},
            "xp": {"path": "x", "type": "boolean", "format": "presence"},
            "n": {"path": "n", "type": "bigint"},
            "tp": {"path": "t", "type": "boolean", "format": "presence"},
        },
        "arrays": {
            "items": {"path": "items", "table": "__T___items", "fk": "post_id", "position": "pos", "id": "item_id",
                      "columns": {"name": {"path": "name", "type": "text"}},
                      "arrays": {"subs": {"path": "subs", "table": "__T___subs", "fk": "item_id", "position": "pos",
                                          "columns": {"s": {"path": "$", "type": "text"}}}}},
        },
        "document": "doc",
    }


def dup_docs():
    """dup_docs: 40 string _ids that are ObjectId hex, 200 others, then the 40 ObjectIds (inserted
    last: each wins its key's row)."""
    out = []
    for i in range(40):
        d = make_doc(i * 5 + 1, with_bad=False)
        d["_id"] = f"{(i * 977):024x}"
        d["t"] = LONG + "string"
        d["items"] = [{"name": LONG, "subs": ["a", LONG, None]}] * 3
        out.append(d)
    for i in range(200):
        out.append(make_doc(i + 1000, with_bad=False))
    for i in range(40):
        d = make_doc(i * 5 + 2, with_bad=False)
        d["_id"] = ObjectId(f"{(i * 977):024x}")
        d["t"] = f"oid{i}"
        if i % 2:
            d.pop("items", None)
        out.append(d)
    return out


def small_mapping():
    return {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "t": {"path": "t", "type": "text"}}}


def map_with_check(pg, river, ns, table, m, options=None):
    """map_with_check maps ns onto table and adds a CHECK constraint in the same transaction (the
    worker never sees the mapping without it)."""
    text = json.dumps(m).replace("__T__", table)
    pg.query(f"SELECT mongo_river.map_collection(%s, %s, %s, %s, %s); "
             f"ALTER TABLE {table} ADD CONSTRAINT {table}_n_check CHECK (n IS NULL OR n <> 999999)",
             (river, ns, table, text, json.dumps(options or {})))


def table_rows(pg, table, order="1"):
    return sorted(r[0] for r in pg.query(f"SELECT row_to_json(rr)::text FROM {table} rr"))


def tables_of(table):
    return [table, f"{table}_items", f"{table}_subs"]


def diff(a, b):
    sa, sb = set(a), set(b)
    return sorted(sa - sb)[:4], sorted(sb - sa)[:4], len(a), len(b)


def expected_plain(doc, field):
    """expected_plain is the text of a string / ObjectId / null / missing value, else ... (unknown)."""
    if field not in doc or doc[field] is None:
        return None
    v = doc[field]
    if isinstance(v, str):
        return v
    if isinstance(v, ObjectId):
        return str(v)
    return ...


def check_plain(pg, table, docs, rejected):
    """check_plain compares t, u and the key with the documents for plain values."""
    rows = {r[0]: r[1:] for r in pg.query(f"SELECT id, t, u FROM {table}")}
    problems = []
    for doc in docs:
        key = str(doc["_id"])
        if key in rejected:
            if key in rows:
                problems.append(f"rejected {key} has a row {rows[key]}")
            continue
        if key not in rows:
            problems.append(f"missing {key}")
            continue
        for k, field in enumerate(("t", "u")):
            want = expected_plain(doc, field)
            if want is not ... and rows[key][k] != want:
                problems.append(f"{key}.{field}: mongo {doc.get(field, '<missing>')!r} pg {rows[key][k]!r}")
    extra = rows.keys() - {str(d["_id"]) for d in docs}
    problems += [f"extra {k}" for k in sorted(extra)[:5]]
    return problems


@pytest.fixture(scope="module")
def reference(river_pg, mongo):
    """reference: collection r25c.a (the attack documents) and r25c.b (a small flat one), with a
    reference river that received them through its change stream."""
    pg = river_pg
    client = mongo.client()
    client.drop_database("r25c")
    db = client["r25c"]
    db.create_collection("a")
    db.create_collection("b")
    db.create_collection("d")
    ref = {}
    create_river(pg, "r25ref", mongo.uri, {"batch_size": 1000})
    map_with_check(pg, "r25ref", "r25c.a", "r25ref", mapping())
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             ("r25ref", "r25c.b", "r25refb", json.dumps(small_mapping())))
    wait_for(lambda: phase(pg, "r25ref") == "streaming", 60, 0.2, "the reference river")
    wait_synced(pg, "r25ref", 60)
    docs = [make_doc(i) for i in range(700)]
    for d in docs:  # one by one: each its own change event
        db.a.insert_one(d)
    bdocs = [{"_id": f"b{i:04d}", "t": rot(i, 3, ["short", LONG, ObjectId(f"{i:024x}"), None])} for i in range(300)]
    db.b.insert_many(bdocs)
    wait_synced(pg, "r25ref", 120)
    # r25c.d: pairs of a string _id and the ObjectId of its hex (one text key), the ObjectId
    # inserted later (and sorted later by a copy's _id scan), with other fields and children
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
             ("r25ref", "r25c.d", "r25refd", json.dumps(mapping()).replace("__T__", "r25refd")))
    wait_synced(pg, "r25ref", 60)
    ddocs = dup_docs()
    for d in ddocs:
        db.d.insert_one(d)
    wait_synced(pg, "r25ref", 120)
    ref.update({t: table_rows(pg, t) for t in tables_of("r25refd")})
    ref.update({t: table_rows(pg, t) for t in tables_of("r25ref")})
    refb = table_rows(pg, "r25refb")
    ref_rejects = rejects(pg, "r25ref")
    assert not ref_rejects or True
    yield pg, mongo, db, docs, bdocs, ref, refb, ref_rejects
    pg.query("SELECT mongo_river.drop_river('r25ref', true)")


def run_copy(reference, river, options, map_options=None, two=False, during=None):
    pg, mongo, db, docs, bdocs, ref, refb, ref_rejects = reference
    create_river(pg, river, mongo.uri, options)
    map_with_check(pg, river, "r25c.a", river, mapping(), map_options)
    if two:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, "r25c.b", river + "b", json.dumps(small_mapping())))
    if during:
        during(pg, river)
    wait_for(lambda: all(p == "streaming" for (p,) in pg.query(
        "SELECT phase FROM mongo_river.status WHERE river = %s", (river,))), 240, 0.2, "the copy to end")
    wait_synced(pg, river, 120)


def assert_same(pg, reference, river, two=False, skip_plain=False, dedupe=False):
    _, mongo, db, docs, bdocs, ref, refb, ref_rejects = reference
    got_rejects = rejects(pg, river)
    if dedupe:  # a resync re-copies and rejects the same documents again (one reject per copy)
        got_rejects = sorted(set(got_rejects))
    problems = []
    for mine, theirs in zip(tables_of(river), tables_of("r25ref")):
        a = [r.replace(f'"{river}', '"r25ref') for r in table_rows(pg, mine)]
        a = table_rows(pg, mine)
        b = ref[theirs]
        if sorted(a) != sorted(b):
            problems.append(f"{mine} != {theirs}: only copy {diff(a, b)[0]}, only stream {diff(a, b)[1]}, "
                            f"rows {len(a)} vs {len(b)}")
    if two:
        a = table_rows(pg, river + "b")
        if a != refb:
            problems.append(f"{river}b != r25refb: {diff(a, refb)}")
        bplain = {r[0]: r[1] for r in pg.query(f"SELECT id, t FROM {river}b")}
        for d in bdocs:
            want = expected_plain(d, "t")
            if want is not ... and bplain.get(d["_id"], "<none>") != want:
                problems.append(f"b {d['_id']}: {d.get('t')!r} pg {bplain.get(d['_id'], '<none>')!r}")
    if not skip_plain:
        problems += check_plain(pg, river, docs, set(ref_rejects))
    assert got_rejects == ref_rejects, f"rejects differ: copy {got_rejects} stream {ref_rejects}"
    assert not problems, "\n".join(problems[:20])
    log = pg.log()
    assert DEATH not in log, [line for line in log.splitlines() if DEATH in line][:3]


def test_reference_rejects_what_it_should(reference):
    """Sanity: the stream river rejected the bad documents (NUL, a document into bigint, 24
    characters into varchar(12), the CHECK constraint) and nothing else."""
    pg, mongo, db, docs, bdocs, ref, refb, ref_rejects = reference
    bad = sorted(str(make_doc(i)["_id"]) for i in range(700)
                 if i % 29 == 17 or i % 31 == 9 or i % 37 == 20 or i % 41 == 7)
    assert ref_rejects == bad, (ref_rejects, bad)
    assert len(ref[("r25ref")]) == 700 - len(bad)
    assert not check_plain(pg, "r25ref", docs, set(ref_rejects))


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_copy_equals_stream(reference, batch_size):
    """The copy (copy batches of 10 * batch_size documents) equals the stream's rows, value by value;
    docs_copied counts the documents the copy wrote (700 minus the rejects)."""
    pg = reference[0]
    river = f"r25cp{batch_size}"
    try:
        run_copy(reference, river, {"batch_size": batch_size})
        assert_same(pg, reference, river)
        assert copied(pg, river) == 700 - len(reference[7]), copied(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_two_mappings_one_after_the_other(reference):
    """One river, two mappings of different shapes (9 columns + 2 child tables, then 2 columns):
    the copy batch's storage is reused from one to the other."""
    pg = reference[0]
    river = "r25two"
    try:
        run_copy(reference, river, {"batch_size": 2}, two=True)
        assert_same(pg, reference, river, two=True)
        assert copied(pg, river) == 700 - len(reference[7]) + 300, copied(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_history_mode(reference):
    """History mode copy: one version per document, values equal to the documents."""
    pg, mongo, db, docs, bdocs, ref, refb, ref_rejects = reference
    river = "r25hist"
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 2})
        m = small_mapping()
        m["columns"]["u"] = {"path": "u", "type": "text"}
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
                 (river, "r25c.a", river, json.dumps(m), json.dumps({"mode": "history"})))
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the copy to end")
        wait_synced(pg, river, 60)
        got = pg.query(f"SELECT id, t, u FROM {river}_latest")
        rows = {r[0]: r[1:] for r in got}
        bad = set(rejects(pg, river))
        problems = []
        for d in docs:
            key = str(d["_id"])
            if key in bad:
                continue
            for k, f in enumerate(("t", "u")):
                want = expected_plain(d, f)
                if want is not ... and (key not in rows or rows[key][k] != want):
                    problems.append(f"{key}.{f}: {d.get(f, '<missing>')!r} pg {rows.get(key)}")
        assert len(got) == 700 - len(bad), (len(got), bad)
        assert not problems, problems[:10]
        assert pg.scalar(f"SELECT count(*) FROM {river}") == len(got)
        assert copied(pg, river) == len(got)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_dry_run(reference):
    pg, mongo, db, docs, bdocs, ref, refb, ref_rejects = reference
    river = "r25dry"
    try:
        create_river(pg, river, mongo.uri, {"batch_size": 2, "dry_run": True})
        map_with_check(pg, river, "r25c.a", river, mapping())
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the dry run's copy to end")
        assert pg.scalar(f"SELECT count(*) FROM {river}") == 0
        # a dry run does not see PostgreSQL's refusals (varchar, CHECK): only the converter's
        conv_bad = [i for i in range(700) if i % 31 == 9 or i % 41 == 7]
        got = copied(pg, river)
        assert got == 700 - len(conv_bad), got
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_verify_after_copy(reference):
    """verify() after a copy at batch_size 1 finds nothing to repair."""
    pg = reference[0]
    river = "r25ver"
    try:
        run_copy(reference, river, {"batch_size": 1})
        assert_same(pg, reference, river)
        out = pg.query("SELECT source, document_id, problem FROM mongo_river.verify(%s)", (river,))
        print("verify:", out)
        odd = [r for r in out if key_of(r[1]) not in set(reference[7])]
        assert not odd, f"verify after the copy reports documents that were not rejected: {odd[:10]}"
        out = pg.query("SELECT source, document_id, problem, repaired FROM mongo_river.verify(%s, repair => true)",
                       (river,))
        assert not [r for r in out if r[3]], f"repair changed rows after the copy: {out[:10]}"
        assert_same(pg, reference, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_resync_mid_copy(reference):
    """resync() while the copy runs (batch_size 1, slowed by the number of batches): the result
    equals the stream's."""
    pg = reference[0]
    river = "r25rs"

    def during(pg, river):
        wait_for(lambda: (copied(pg, river) or 0) >= 50, 60, 0.01, "the copy to start")
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, "r25c.a"))

    try:
        run_copy(reference, river, {"batch_size": 1}, during=during)
        assert_same(pg, reference, river, dedupe=True)
        # resync after the copy too
        pg.query("SELECT mongo_river.resync(%s, %s)", (river, "r25c.a"))
        time.sleep(1)
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the resync to end")
        wait_synced(pg, river, 60)
        assert_same(pg, reference, river, dedupe=True)
        assert copied(pg, river) == 700 - len(reference[7]), copied(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


def test_worker_killed_mid_copy(reference):
    """pg_terminate_backend of the worker twice during the copy (batch_size 1); the resumed copy
    equals the stream's, docs_copied counts each document once."""
    pg = reference[0]
    river = "r25kill"
    killed = []

    def during(pg, river):
        for mark in (100, 350):
            try:
                wait_for(lambda: (copied(pg, river) or 0) >= mark, 60, 0.005, f"the copy to pass {mark}")
            except Exception:
                break
            pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
            if pid and phase(pg, river) == "initial_copy":
                pg.query("SELECT pg_terminate_backend(%s)", (pid,))
                killed.append((mark, copied(pg, river)))
                wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s",
                                           (river,)) not in (None, pid), 60, 0.1, "a new worker")

    try:
        run_copy(reference, river, {"batch_size": 1}, during=during)
        print("killed at", killed)
        assert_same(pg, reference, river)
        assert copied(pg, river) == 700 - len(reference[7]), (copied(pg, river), killed)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_string_and_objectid_one_key_across_batches(reference, batch_size):
    """r25c.d through a copy: each key's row is the ObjectId document's (inserted last, scanned
    last), its children too; equal to the stream's rows; docs_copied 280 documents for 240 rows."""
    pg, mongo = reference[0], reference[1]
    river = f"r25dup{batch_size}"
    try:
        create_river(pg, river, mongo.uri, {"batch_size": batch_size})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, "r25c.d", river, json.dumps(mapping()).replace("__T__", river)))
        wait_for(lambda: phase(pg, river) == "streaming", 120, 0.2, "the copy to end")
        wait_synced(pg, river, 60)
        problems = []
        for mine, theirs in zip(tables_of(river), tables_of("r25refd")):
            a, b = table_rows(pg, mine), reference[5][theirs]
            if a != b:
                problems.append(f"{mine} != {theirs}: {diff(a, b)}")
        assert not problems, "\n".join(problems)
        assert pg.scalar(f"SELECT count(*) FROM {river}") == 240
        assert not rejects(pg, river)
        assert copied(pg, river) == 280, copied(pg, river)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
