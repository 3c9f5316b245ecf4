"""Hostile SQL input: NULL for every argument of every SQL function of the extension, injection-shaped
river names, collections, targets, column names and types, absurd options, a 10,000-column mapping.

Every refusal must carry a real SQLSTATE (never XX000, never a crash: the `pg` fixture fails the
module if the server log shows a process terminated by signal 6/11), and the catalog must be
unchanged afterwards (row counts of river, collection_map, mapped_table, mapping_state, rejects, and
the user tables of the schema). Injection-shaped names that are legal SQL identifiers may be
accepted, but then they must be used as written (quoted), never executed."""

import json

import psycopg2
import pytest

from river import create_river, wait_synced

CATALOG = ["river", "collection_map", "mapped_table", "mapping_state", "rejects"]
INJECT = 'x"; DROP TABLE t; --'
INJECT_COLUMN = "a'); DROP TABLE t; --"
SMALL_MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}


def catalog(pg):
    """catalog returns the row counts of the catalog tables and the list of user tables."""
    counts = {t: pg.scalar(f"SELECT count(*) FROM mongo_river.{t}") for t in CATALOG}
    counts["tables"] = sorted(r[0] for r in pg.query(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
        "AND c.relkind IN ('r', 'v', 'p')"))
    return counts


def attempt(pg, sql, params=None):
    """attempt runs sql and returns (None, result) or (sqlstate, message)."""
    try:
        return None, pg.query(sql, params)
    except psycopg2.Error as e:
        return e.pgcode, (e.pgerror or str(e)).strip()


def assert_clean_refusal(pg, sql, params=None, allowed=None, may_succeed=False):
    """assert_clean_refusal runs a hostile statement: it must succeed (if may_succeed) or fail with a
    real SQLSTATE (in `allowed` when given), leaving the catalog unchanged; returns the SQLSTATE."""
    before = catalog(pg)
    code, detail = attempt(pg, sql, params)
    if code is None:
        assert may_succeed, f"{sql} {params!r} was accepted: {detail}"
        return None
    assert code != "XX000" and code is not None and len(code) == 5, f"{sql} {params!r}: SQLSTATE {code}: {detail}"
    if allowed:
        assert code in allowed, f"{sql} {params!r}: SQLSTATE {code} (expected one of {allowed}): {detail}"
    assert catalog(pg) == before, f"{sql} {params!r} failed ({code}) but changed the catalog"
    return code


@pytest.fixture(scope="module")
def sql_pg(river_pg, mongo):
    pg = river_pg
    pg.query("CREATE TABLE t (x int)")
    pg.query("INSERT INTO t VALUES (1)")
    client = mongo.client()
    client.drop_database("hostile_sql")
    client.hostile_sql.c.insert_one({"_id": "one", "n": 1})
    create_river(pg, "r", mongo.uri)
    pg.query("SELECT mongo_river.map_collection('r', 'hostile_sql.c', 'r_c', %s)", (json.dumps(SMALL_MAPPING),))
    wait_synced(pg, "r")
    return pg


def valid_argument(name, uri):
    """valid_argument is a sensible value for an argument of the extension's functions, by name."""
    return {
        "river": "r", "uri": uri, "options": "{}", "drop_tables": False, "source": "hostile_sql.c",
        "target": "r_c", "mapping": json.dumps(SMALL_MAPPING), "mappings": "{}", "database": "hostile_sql",
        "sample_size": 10, "repair": False, "id": None, "timeout": "1 s", "applied": None,
    }[name]


# Arguments the README documents as taking NULL (a default meaning "keep", "infer", "all", ...).
NULL_ALLOWED = {("alter_river", "uri"), ("alter_river", "options"), ("map_collection", "target"),
                ("map_collection", "mapping"), ("resync", "source"), ("verify", "source"),
                ("verify", "sample_size"), ("retry_rejects", "id"), ("discard_rejects", "id"),
                ("sync_once", "applied"), ("redact_uri", "uri")}


def functions(pg):
    rows = pg.query("SELECT p.proname, p.prokind, p.proargnames, "
                    "ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) "
                    "FROM pg_proc p WHERE p.pronamespace = 'mongo_river'::regnamespace "
                    "AND p.proname !~ '^_' ORDER BY p.proname")
    return [(r[0], r[1], list(r[2] or [])[:len(r[3])], r[3]) for r in rows]


def call_sql(name, kind, argnames, argtypes):
    args = ", ".join(f"%s::{t}" for t in argtypes)
    return f"CALL mongo_river.{name}({args})" if kind == "p" else f"SELECT * FROM mongo_river.{name}({args})"


def test_every_function_and_argument_is_listed(sql_pg):
    """The suite knows every public function (a new one must be added to valid_argument)."""
    names = {f[0] for f in functions(sql_pg)}
    assert {"create_river", "alter_river", "drop_river", "map_collection", "unmap_collection", "map_database",
            "infer_mapping", "import_mappings", "start", "stop", "resync", "verify", "retry_rejects",
            "discard_rejects", "sync_once", "wait_for_sync", "redact_uri"} <= names, names
    for name, kind, argnames, argtypes in functions(sql_pg):
        for a in argnames:
            valid_argument(a, "mongodb://x/")  # KeyError: an argument this suite does not know


def test_null_for_every_argument_of_every_function(sql_pg, mongo, figures):
    pg = sql_pg
    tried = 0
    outcomes = []
    for name, kind, argnames, argtypes in functions(pg):
        positions = list(range(len(argnames))) + (["all"] if len(argnames) > 1 else [])
        for pos in positions:
            params = [None if (pos == "all" or i == pos) else valid_argument(a, mongo.uri)
                      for i, a in enumerate(argnames)]
            if name == "create_river" and pos != "all":
                params[0] = params[0] and "null_probe"  # a fresh name: the call must fail on the NULL
            sql = call_sql(name, kind, argnames, argtypes)
            tried += 1
            before = catalog(pg)
            code, detail = attempt(pg, sql, params)
            arg = "all" if pos == "all" else argnames[pos]
            outcomes.append((name, arg, code))
            if code is None:
                assert (name, arg) in NULL_ALLOWED, f"{name}({arg} => NULL) was accepted: {detail}"
                if name == "redact_uri":
                    assert detail == [(None,)]
                continue
            assert code != "XX000" and len(code) == 5, f"{name}({arg} => NULL): SQLSTATE {code}: {detail}"
            if (name, arg) not in NULL_ALLOWED:
                assert code == "22004", f"{name}({arg} => NULL): SQLSTATE {code}, expected 22004: {detail}"
                assert "NULL" in detail and (arg == "all" or arg in detail), detail
            assert catalog(pg) == before, f"{name}({arg} => NULL) failed with {code} but changed the catalog"
    print("\n".join(f"{n}({a} => NULL): {c or 'ok'}" for n, a, c in outcomes))
    figures(hostile=tried)
    assert pg.scalar("SELECT count(*) FROM t") == 1
    assert pg.scalar("SELECT count(*) FROM mongo_river.river WHERE river = 'null_probe'") == 0


def test_injection_shaped_names_are_quoted_never_executed(sql_pg, mongo, figures):
    pg = sql_pg
    client = mongo.client()
    coll = client["hostile_sql"][INJECT]
    coll.insert_one({"_id": "k1", "a": "v1"})
    before = catalog(pg)
    create_river(pg, INJECT, mongo.uri)
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       INJECT_COLUMN: {"path": "a", "type": "text"}}}
    target = pg.scalar("SELECT mongo_river.map_collection(%s, %s, %s, %s)::text",
                       (INJECT, f"hostile_sql.{INJECT}", '"' + INJECT.replace('"', '""') + '"', json.dumps(mapping)))
    assert target == '"x""; DROP TABLE t; --"'
    wait_synced(pg, INJECT)
    coll.insert_one({"_id": "k2", "a": "v2"})
    wait_synced(pg, INJECT)
    rows = pg.query(f'SELECT id, "{INJECT_COLUMN.replace(chr(34), chr(34) * 2)}" FROM {target} ORDER BY id')
    assert rows == [("k1", "v1"), ("k2", "v2")]
    assert pg.scalar("SELECT count(*) FROM t") == 1, "table t was dropped"
    assert pg.scalar("SELECT uri FROM mongo_river.rivers WHERE river = %s", (INJECT,)) == mongo.uri
    status = pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = %s", (INJECT,))
    assert status == [("streaming", None)], status
    pg.query("SELECT mongo_river.drop_river(%s, true)", (INJECT,))
    assert catalog(pg) == before
    figures(hostile=4)


def hostile_calls(uri):
    """hostile_calls: (sql, params, allowed SQLSTATEs or None) that must all be refused cleanly."""
    m = lambda **cols: json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, **cols}})  # noqa: E731
    mc = "SELECT mongo_river.map_collection('r', %s, %s, %s)"
    return [
        # names
        ("SELECT mongo_river.create_river(%s, %s)", ("", uri), None),
        ("SELECT mongo_river.create_river(%s, %s)", ("r", uri), {"42710"}),
        ("SELECT mongo_river.create_river(%s, %s)", ("u1", "mongodb://h/'); DROP TABLE t; --"), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s)", ("u2", "postgres://h/"), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s)", ("u3", "mongodb://"), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s)", ("u4", "mongodb://h:99999999/"), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s)", ("u5", "mongodb://h/" + "a" * 100000), None),
        ("SELECT mongo_river.create_river(%s, %s)", ("u6", "mongodb://h/\u00e9\u6f22?replicaSet=\U0001f600"), None),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o1", uri, '{"batch_size": -1}'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o2", uri, '{"batch_size": 1e100}'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o3", uri, '{"batch_size": "1; DROP TABLE t"}'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o4", uri, '{"capture": "x\\"; DROP TABLE t; --"}'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o5", uri, '[1, 2]'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o6", uri, '"text"'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o7", uri, '{"batch_ms": 2147483648}'), {"22023"}),
        ("SELECT mongo_river.create_river(%s, %s, %s)", ("o8", uri, '{"password_file": "/etc/shadow", "x": 1}'),
         {"22023", "42501"}),
        ("SELECT mongo_river.alter_river(%s, %s)", ("r", "mongodb://h/'); DROP TABLE t; --"), {"22023"}),
        ("SELECT mongo_river.alter_river(%s, NULL, %s)", ("r", '{"batch_size": 0}'), {"22023"}),
        ("SELECT mongo_river.drop_river(%s)", (INJECT,), {"42704"}),
        ("SELECT mongo_river.start(%s)", ("nope'); DROP TABLE t; --",), {"42704"}),
        # sources and targets
        (mc, ("nodot", "t2", m()), {"22023"}),
        (mc, (".c", "t2", m()), {"22023"}),
        (mc, ("d.", "t2", m()), {"22023"}),
        (mc, ("d.c\x01", "t2", m()), None),
        (mc, ("$cmd.c", "t2", m()), None),
        (mc, ("admin.system.users", "t2", m()), None),
        (mc, ("hostile_sql.e", "t; DROP TABLE t; --", m()), {"42602"}),
        (mc, ("hostile_sql.e", "nosuchschema.t2", m()), {"3F000"}),
        (mc, ("hostile_sql.e", "a.b.c.d", m()), {"42602"}),
        (mc, ("hostile_sql.e", "t", m()), None),  # an existing table without the columns
        (mc, ("hostile_sql.e", "pg_catalog.pg_class", m()), None),
        (mc, ("hostile_sql.e", "mongo_river.river", m()), None),
        (mc, ("hostile_sql.e", "x" * 100, m()), None),
        # mappings
        (mc, ("hostile_sql.d", "t2", m(n={"path": "n", "type": "int; DROP TABLE t"})), None),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "n", "type": "text) ; DROP TABLE t; --"})), None),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "n", "type": "nosuchtype"})), {"42704"}),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "n", "type": ""})), None),
        (mc, ("hostile_sql.d", "t2", m(**{"": {"path": "n", "type": "text"}})), {"22023"}),
        (mc, ("hostile_sql.d", "t2", m(**{"x" * 64: {"path": "n", "type": "text"}})), {"22023", "42602"}),
        (mc, ("hostile_sql.d", "t2", m(**{"a\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"):
                                         {"path": "n", "type": "text"}})), None),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "", "type": "text"})), None),
        (mc, ("hostile_sql.d", "t2", m(n={"path": [], "type": "text"})), None),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "a..b", "type": "text"})), None),
        (mc, ("hostile_sql.d", "t2", m(n={"path": 5, "type": "text"})), {"22023"}),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "n", "type": "text", "format": "sql"})), {"22023"}),
        (mc, ("hostile_sql.d", "t2", m(id={"path": "n", "type": "text"})), {"22023"}),
        (mc, ("hostile_sql.d", "t2", m(n={"path": "n", "type": "text", "evil": "DROP TABLE t"})), {"22023"}),
        (mc, ("hostile_sql.d", "t2", json.dumps({"pk": "missing", "columns": {}})), {"22023", "42703"}),
        (mc, ("hostile_sql.d", "t2", "[]"), {"22023"}),
        (mc, ("hostile_sql.d", "t2", '"DROP TABLE t"'), {"22023"}),
        (mc, ("hostile_sql.d", "t2", json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
                                                "document": "id"})), {"22023", "42701"}),
        (mc, ("hostile_sql.d", "t2", json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
                                                "arrays": {"a": {"path": "a", "table": "t", "fk": "x",
                                                                 "position": "x", "columns": {}}}})), None),
        (mc, ("hostile_sql.d", "t2", json.dumps(nested_json(200))), {"22023"}),
        ("SELECT mongo_river.map_collection('r', %s, %s, %s, %s)",
         ("hostile_sql.d", "t2", m(), '{"mode": "history; DROP TABLE t"}'), {"22023"}),
        ("SELECT mongo_river.map_database('r', %s, %s)", ("hostile_sql", '{"schema": "a\\"; DROP TABLE t; --", "x": 1}'),
         {"22023"}),
        ("SELECT mongo_river.map_database('r', %s, %s)", ("hostile_sql", '{"include": "not-an-array"}'), {"22023"}),
        ("SELECT mongo_river.map_database('r', %s)", ("",), {"22023"}),
        ("SELECT mongo_river.map_database('r', %s)", ("admin",), {"22023"}),
        ("SELECT * FROM mongo_river.import_mappings('r', %s)",
         ('{"db": {"c": {"pk": "id", "indices": ["INDEX i ON t(x); DROP TABLE t"], '
          '"_id": {"dest": "id", "type": "TEXT"}}}}',), {"22023", "42P01"}),
        ("SELECT * FROM mongo_river.import_mappings('r', %s)",
         ('{"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, '
          '"f": {"dest": "f", "type": "TEXT", "transform": "os.system(1)"}}}}',), {"22023", "0A000"}),
        ("SELECT mongo_river.infer_mapping('r', %s, %s)", ("hostile_sql.c", -5), {"22023"}),
        ("SELECT mongo_river.infer_mapping('r', %s, %s)", ("hostile_sql.c", 2147483647), None),
        ("SELECT * FROM mongo_river.verify('r', %s)", ("no.such'); DROP TABLE t; --",), {"42704", "22023"}),
        ("SELECT * FROM mongo_river.verify('r', NULL, %s)", (-1,), {"22023"}),
        ("SELECT mongo_river.retry_rejects('r', %s)", (-1,), {"42704"}),
        ("SELECT mongo_river.wait_for_sync('r', %s)", ("-1 day",), {"22023"}),
        ("SELECT mongo_river.resync('r', %s)", ("hostile_sql.notmapped",), {"42704"}),
        ("SELECT mongo_river.unmap_collection('r', %s)", ("hostile_sql.notmapped",), {"42704"}),
    ]


def nested_json(depth):
    """nested_json: a mapping whose column path is an object nested `depth` levels deep."""
    value = "x"
    for _ in range(depth):
        value = {"a": value}
    return {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": value, "type": "text"}}}


def test_hostile_declarations_are_refused_cleanly(sql_pg, mongo, figures):
    pg = sql_pg
    calls = hostile_calls(mongo.uri)
    seen = []
    accepted = []
    problems = []
    for sql, params, allowed in calls:
        before = catalog(pg)
        code, detail = attempt(pg, sql, params)
        seen.append((params, code))
        if code is None:
            accepted.append((sql, params))
            continue
        if code == "XX000" or len(code) != 5:
            problems.append(f"{sql} {params!r:.300}: SQLSTATE {code}: {detail}")
        elif allowed and code not in allowed:
            problems.append(f"{sql} {params!r:.300}: SQLSTATE {code} (expected one of {sorted(allowed)}): {detail}")
        if catalog(pg) != before:
            problems.append(f"{sql} {params!r:.300} failed ({code}) but changed the catalog")
    print("\n".join(f"{c or 'accepted'}: {p!r:.120}" for p, c in seen))
    figures(hostile=len(calls))
    assert not problems, "\n\n".join(problems)
    assert pg.scalar("SELECT count(*) FROM t") == 1, "table t was dropped"
    # Accepted calls: only where the README allows it, and the river still works.
    # (a long URI path, non-ASCII URI parts, a collection name with a control character — all legal
    # for MongoDB —, and a negative wait_for_sync timeout, which just returns at once).
    for sql, params in accepted:
        assert params[0] in ("u5", "u6", "d.c\x01", "-1 day"), f"accepted: {sql} {params!r}"
    if pg.scalar("SELECT count(*) FROM mongo_river.collection_map WHERE source = 'd.c\x01'"):
        pg.query("SELECT mongo_river.unmap_collection('r', 'd.c\x01')")
    for name in ("u5", "u6"):
        if pg.scalar("SELECT count(*) FROM mongo_river.river WHERE river = %s", (name,)):
            pg.query("SELECT mongo_river.drop_river(%s)", (name,))


def test_ten_thousand_column_mapping_is_refused_cleanly(sql_pg, figures):
    pg = sql_pg
    columns = {"id": {"path": "_id", "type": "text"}}
    for i in range(10000):
        columns[f"c{i}"] = {"path": f"f{i}", "type": "int"}
    mapping = json.dumps({"pk": "id", "columns": columns, "document": "doc"})
    code = assert_clean_refusal(pg, "SELECT mongo_river.map_collection('r', 'hostile_sql.wide', 'wide', %s)",
                                (mapping,), allowed={"54011", "22023"})
    assert pg.scalar("SELECT to_regclass('public.wide')") is None
    # The same against an existing table, and as an import.
    pg.query("CREATE TABLE wide_existing (id text PRIMARY KEY)")
    assert_clean_refusal(pg, "SELECT mongo_river.map_collection('r', 'hostile_sql.wide', 'wide_existing', %s)",
                         (mapping,), allowed={"42703", "54011", "22023"})
    connector = {"hostile_sql": {"wide": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
                                          **{f"f{i}": {"dest": f"c{i}", "type": "INT"} for i in range(10000)}}}}
    assert_clean_refusal(pg, "SELECT * FROM mongo_river.import_mappings('r', %s)", (json.dumps(connector),),
                         allowed={"54011", "22023"})
    pg.query("DROP TABLE wide_existing")
    figures(hostile=3)
    print(f"10,000-column mapping refused with {code}")


def test_target_already_mapped_is_a_clear_error(sql_pg, mongo, figures):
    pg = sql_pg
    create_river(pg, "second", mongo.uri)
    figures(hostile=1)
    try:
        code = assert_clean_refusal(pg, "SELECT mongo_river.map_collection('second', 'hostile_sql.other', 'r_c', %s)",
                                    (json.dumps(SMALL_MAPPING),))
        _, detail = attempt(pg, "SELECT mongo_river.map_collection('second', 'hostile_sql.other', 'r_c', %s)",
                            (json.dumps(SMALL_MAPPING),))
        print(f"second mapping onto r_c: {code}: {detail}")
        assert code in ("42710", "55000", "42P07"), detail
        assert "r_c" in detail and "HINT" in detail, detail
    finally:
        pg.query("SELECT mongo_river.drop_river('second')")
