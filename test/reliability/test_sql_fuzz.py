"""SQL-level fuzz (issue 14, "Done when" 2): every public function of schema mongo_river is called
with hostile and random arguments (NULLs, empty and huge strings, odd Unicode, names of other
objects, odd URIs) from several sessions at once, while another session keeps dropping and
re-creating the rivers the others use (drop_river during wait_for_sync, sync_once, verify, resync,
map_database). It runs for SQL_FUZZ_SECONDS (default 60) and fails if the server ever restarts:
"terminated by signal", "server process ... was terminated" in the log, or a changed postmaster
start time. Errors are fine as long as they carry a SQLSTATE; internal errors (XX000) are printed.

URIs with a user and no password (`root@`, `root:@`, `%00@`) used to crash libmongoc's SCRAM step
(issue 14.1): each userinfo shape runs in its own cluster, so that a crash does not hide anything
else. SQL_FUZZ_SEED replays a run (the seed is printed)."""

import json
import os
import random
import re
import threading
import time
from collections import Counter

import psycopg2
import pytest

from figures import record
from mongo_source import start_source
from pgcluster import PgCluster

SECONDS = float(os.environ.get("SQL_FUZZ_SECONDS", "60"))
SESSIONS = int(os.environ.get("SQL_FUZZ_SESSIONS", "4"))
RIVERS = ["fz0", "fz1", "fz2"]
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "int"}}}
# Calls the fuzz makes often, as the issue asks, besides every other function.
CONCURRENT = ["wait_for_sync", "sync_once", "verify", "resync", "map_database"]

ODD_UNICODE = ["\u202e\u0041\u0301", "\ufeff", "\U0010ffff", "\U0001f600" * 20, "\u0001\u007f", "é漢字",
               "\u00a0", "a\u0300\u0301\u0302\u0303", "\u2028\u2029", "\\x00", "%00"]


def hostile_strings(rng):
    return ["", " ", "a" * rng.choice([63, 64, 255, 10_000, 1_000_000]), rng.choice(ODD_UNICODE),
            'x"; DROP TABLE t; --', "'; SELECT pg_sleep(10); --", "pg_class", "pg_catalog.pg_class",
            "mongo_river.river", "information_schema.tables", "public.t", "t", "mongo_river", "%s%s%n",
            "..", ".", "$cmd", "\t\n"]


def odd_uris(mongo_uri, rng):
    """odd_uris: URIs of every shape except a user without a password (issue 14.1, see below)."""
    hostport = re.match(r"mongodb://([^/]+)/", mongo_uri).group(1)
    return [mongo_uri, mongo_uri, "mongodb://127.0.0.1:1/", f"mongodb://u:p@{hostport}/?replicaSet=rs0",
            f"mongodb://u:p%00x@{hostport}/", f"mongodb://%C3%A9:%F0%9F%98%80@{hostport}/",
            "mongodb+srv://nowhere.invalid/", "mongodb://", "mongodb:///", "mongodb://h/?replicaSet=",
            f"mongodb://{hostport}/?authMechanism=MONGODB-X509", f"mongodb://{hostport}/?authMechanism=BOGUS",
            f"mongodb://{hostport}/?serverSelectionTimeoutMS=-1", f"mongodb://{hostport}/?socketTimeoutMS=1",
            f"mongodb://{hostport},{hostport},{hostport}/?replicaSet=rs0", "mongodb://[::1]:1/",
            "mongodb://h:0/", "mongodb://h:65536/", "mongodb://" + "h" * 300 + "/", "postgres://h/",
            f"mongodb://{hostport}/" + "a" * rng.choice([100, 100_000]), rng.choice(ODD_UNICODE)]


def value(rng, name, argtype, uris):
    """value returns a random, often hostile, value for argument name of type argtype."""
    if rng.random() < 0.08:
        return None
    if argtype == "name":
        return rng.choice(RIVERS * 4 + ["nope", "", "x" * 100, rng.choice(ODD_UNICODE), "pg_class", "mongo_river",
                                        'x"; DROP TABLE t; --'])
    if argtype == "text":
        if name == "uri":
            return rng.choice(uris)
        if name == "source":
            return rng.choice(["fuzz.c0", "fuzz.c1", "fuzz.c2", "fuzz.nope", "nodot", ".", "fuzz.", ".c",
                               "admin.system.users", "local.oplog.rs", "config.system.sessions", "fuzz.$cmd",
                               "fuzz." + rng.choice(ODD_UNICODE), "fuzz." + "c" * 300] + hostile_strings(rng))
        if name == "target":
            return rng.choice([f"fz_t{rng.randrange(5)}", f"fz_s.t{rng.randrange(3)}", "fz_s.\"A b\""]
                              + hostile_strings(rng))
        if name == "database":
            return rng.choice(["fuzz", "fuzz", "admin", "local", "config", "nope", "fuzz*"] + hostile_strings(rng))
        return rng.choice(hostile_strings(rng))
    if argtype == "jsonb":
        pool = ["{}", "[]", '"x"', "null", "1e400", "{\"\": {}}", "[" * 3000 + "]" * 3000,
                json.dumps({"k" * 1000: "v" * 100_000})]
        if name == "mapping":
            pool += [json.dumps(MAPPING)] * 4 + ['{"pk": "id", "columns": {}}',
                     json.dumps({"pk": "id", "columns": {f"c{i}": {"path": "x", "type": "text"} for i in range(2000)}}),
                     json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "pg_class"}}}),
                     json.dumps({"pk": "id", "columns": {"id": {"path": "_id", "type": "text; DROP TABLE t"}}})]
        elif name == "options":
            pool += ['{"copy": false}', '{"include": ["c*"]}', '{"exclude": ["*"]}', '{"schema": "fz_s"}',
                     '{"batch_size": 1e308}', '{"password_file": "/etc/passwd"}', '{"password_file": "relative"}',
                     '{"capture": "oplog"}', '{"mapping": "document"}', '{"table_prefix": "' + "p" * 80 + '"}',
                     '{"mode": "history"}', '{"create_table": false}', '{"dry_run": true}']
        elif name == "mappings":
            pool += ['{"fuzz": {"c0": {"pk": "_id", "_id": {"type": "TEXT"}}}}',
                     '{"fuzz": {"c0": {"pk": "_id", "a": {"type": "_ARRAY", "dest": "x"}}}}']
        return rng.choice(pool)
    if argtype == "integer":
        return rng.choice([0, -1, 1, 5, 2**31 - 1, -2**31, rng.randrange(-10**6, 10**6)])
    if argtype == "bigint":
        return rng.choice([0, -1, 1, 2**63 - 1, -2**63, rng.randrange(-10**9, 10**9)])
    if argtype == "boolean":
        return rng.choice([True, False])
    if argtype == "interval":
        return rng.choice(["0", "-1 s", "1 ms", "1 s", "2 s", "3 s", "1 month", "-178000000 years"])
    return None


def public_functions(pg):
    rows = pg.query("SELECT p.proname, p.prokind, p.proargnames, "
                    "ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) "
                    "FROM pg_proc p WHERE p.pronamespace = 'mongo_river'::regnamespace "
                    "AND p.proname !~ '^_' ORDER BY p.proname")
    return [(r[0], r[1], list(r[2] or [])[:len(r[3])], r[3]) for r in rows]


def call(name, kind, argtypes):
    args = ", ".join(f"%s::{t}" for t in argtypes)
    return f"CALL mongo_river.{name}({args})" if kind == "p" else f"SELECT * FROM mongo_river.{name}({args})"


def crash_lines(pg):
    return [line for line in pg.log().splitlines()
            if "terminated by signal" in line or re.search(r"server process .* was terminated", line)]


class Session(threading.Thread):
    """Session is one client calling random functions with random arguments until the deadline."""

    def __init__(self, pg, functions, uris, seed, deadline, user="postgres", churn=False):
        super().__init__(daemon=True)
        self.pg, self.functions, self.uris, self.deadline, self.user, self.churn = \
            pg, functions, uris, deadline, user, churn
        self.rng = random.Random(seed)
        self.calls = Counter()
        self.codes = Counter()
        self.internal = Counter()
        self.lost = []
        self.conn = None

    def connect(self):
        self.conn = psycopg2.connect(self.pg.dsn(user=self.user),
                                     options="-c statement_timeout=10000 -c lock_timeout=5000")
        self.conn.autocommit = True

    def run_one(self, sql, params, label):
        self.calls[label] += 1
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                if cur.description:
                    cur.fetchmany(10)
            self.codes["ok"] += 1
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            if e.pgcode:  # e.g. 57014 statement timeout, 53200: the server answered
                self.codes[e.pgcode] += 1
                return
            self.lost.append(f"{label}: {e}")
            self.conn = None
        except psycopg2.Error as e:
            self.codes[e.pgcode or "none"] += 1
            if e.pgcode in (None, "XX000"):
                self.internal[f"{label}: {e.pgcode}: {(e.pgerror or str(e)).strip().splitlines()[0][:160]}"] += 1
        except (ValueError, UnicodeEncodeError):  # the client refused the value (e.g. NUL): nothing sent
            self.codes["client"] += 1

    def step(self):
        rng = self.rng
        if self.churn:
            # Re-create the rivers the other sessions use (with a mapping, running) when they are
            # gone, and drop one of them now and then while the others call into it.
            for river in RIVERS:
                try:
                    with self.conn.cursor() as cur:
                        cur.execute("SELECT count(*) FROM mongo_river.river WHERE river = %s", (river,))
                        exists = cur.fetchone()[0]
                except psycopg2.Error:
                    self.conn = None
                    return
                if not exists:
                    self.run_one("SELECT mongo_river.create_river(%s, %s)", (river, self.uris[0]),
                                 "churn:create_river")
                    self.run_one("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                                 (river, f"fuzz.c{rng.randrange(3)}", f"fz_{river}_{rng.randrange(3)}",
                                  json.dumps(MAPPING)), "churn:map_collection")
            time.sleep(rng.random() * 1.5)
            self.run_one("SELECT mongo_river.drop_river(%s, %s)", (rng.choice(RIVERS), rng.random() < 0.5),
                         "churn:drop_river")
            return
        if rng.random() < 0.35:
            wanted = rng.choice(CONCURRENT)
            candidates = [f for f in self.functions if f[0] == wanted] or self.functions
        else:
            candidates = self.functions
        name, kind, argnames, argtypes = rng.choice(candidates)
        if name in ("drop_river", "create_river") and rng.random() < 0.7:
            return  # rarer: the churn session drops and re-creates the rivers
        plausible = rng.random() < 0.5
        params = []
        for argname, argtype in zip(argnames, argtypes):
            v = value(rng, argname, argtype, self.uris)
            if plausible and argtype == "name":
                v = rng.choice(RIVERS)
            if plausible and argtype == "interval":
                v = rng.choice(["1 s", "2 s"])
            params.append(v)
        self.run_one(call(name, kind, argtypes), params, name)

    def run(self):
        while time.monotonic() < self.deadline:
            if self.conn is None:
                try:
                    self.connect()
                except psycopg2.OperationalError as e:
                    self.lost.append(f"connect: {e}")
                    time.sleep(0.5)
                    continue
            self.step()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture(scope="module")
def fuzz_pg(river_pg, mongo):
    pg = river_pg
    client = mongo.client()
    client.drop_database("fuzz")
    for i in range(3):
        client.fuzz[f"c{i}"].insert_many([{"_id": f"d{j}", "n": j, "x": "é" * j} for j in range(20)])
    pg.query("CREATE TABLE IF NOT EXISTS t (x int)")
    pg.query("DO $$ BEGIN CREATE ROLE fz_admin LOGIN IN ROLE mongo_river_admin; "
             "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.query("GRANT CREATE ON SCHEMA public TO fz_admin")
    pg.query("GRANT CREATE ON DATABASE mongo_river_test TO fz_admin")
    for i, river in enumerate(RIVERS):
        pg.query("SELECT mongo_river.create_river(%s, %s)", (river, mongo.uri))
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, f"fuzz.c{i}", f"fz_{river}", json.dumps(MAPPING)))
    return pg


def test_sql_fuzz(fuzz_pg, mongo, figures):
    pg = fuzz_pg
    seed = int(os.environ.get("SQL_FUZZ_SEED", random.randrange(10**9)))
    print(f"\ntest_sql_fuzz: seed {seed} (SQL_FUZZ_SEED={seed} replays it), {SECONDS:.0f} s, {SESSIONS} sessions")
    started = pg.scalar("SELECT pg_postmaster_start_time()")
    functions = public_functions(pg)
    names = {f[0] for f in functions}
    assert set(CONCURRENT) | {"drop_river", "create_river"} <= names, names
    uris = odd_uris(mongo.uri, random.Random(seed))
    deadline = time.monotonic() + SECONDS
    sessions = [Session(pg, functions, uris, seed + i, deadline, user="fz_admin" if i % 2 else "postgres")
                for i in range(SESSIONS)]
    sessions.append(Session(pg, functions, uris, seed + 1000, deadline, churn=True))
    for s in sessions:
        s.start()
    for s in sessions:
        s.join(SECONDS + 120)
    calls = sum((s.calls for s in sessions), Counter())
    codes = sum((s.codes for s in sessions), Counter())
    internal = sum((s.internal for s in sessions), Counter())
    lost = [line for s in sessions for line in s.lost]
    total = sum(calls.values())
    print(f"{total} calls: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in codes.most_common()))
    for line, count in internal.most_common(30):
        print(f"internal error x{count}: {line}")
    figures(hostile=total)
    record("test_sql_fuzz", sql_fuzz_calls=total, sql_fuzz_internal=sum(internal.values()),
           sql_fuzz_seconds=int(SECONDS))
    assert not any(s.is_alive() for s in sessions), "a fuzz session did not finish"
    assert pg.scalar("SELECT pg_postmaster_start_time()") == started, "the postmaster restarted"
    assert not crash_lines(pg), "\n".join(crash_lines(pg))
    assert not lost, "connections lost:\n" + "\n".join(lost[:20])
    assert set(names) <= set(calls) | {"redact_uri"} or SECONDS < 30, f"never called: {set(names) - set(calls)}"


USERINFO = ["root@", "root:@", "%00@", "root%00@", "@", ":@", ":pw@",
            "root:secret@", "root:wrong@", "%00:%00@", "root:%00@"]


@pytest.mark.parametrize("userinfo", USERINFO)
def test_uri_userinfo_shapes(userinfo):
    """Every odd userinfo shape is refused or fails cleanly, never crashes: from a backend
    (infer_mapping, verify, wait_for_sync) and from the river's worker. Each shape runs in its own
    cluster and source, so that a crash restarts only this test's server. The shapes with a user and
    no password used to crash libmongoc's SCRAM step (issue 14.1): they are refused now."""
    source = start_source(extra_peer_args=["--auth", "root:secret"])
    if source is None or not source.is_peer:
        if source:
            source.stop()
        pytest.skip("needs the MongoDB peer (--auth)")
    pg = PgCluster().init()
    try:
        pg.query("CREATE EXTENSION mongo_river")
        started = pg.scalar("SELECT pg_postmaster_start_time()")
        hostport = re.match(r"mongodb://([^/]+)/", source.uri).group(1)
        uri = f"mongodb://{userinfo}{hostport}/?replicaSet=rs0&authSource=admin&serverSelectionTimeoutMS=2000"
        good = f"mongodb://root:secret@{hostport}/?replicaSet=rs0&authSource=admin"
        source.client(username="root", password="secret", authSource="admin").db.c.insert_one({"_id": "a", "n": 1})
        pg.query("SELECT mongo_river.create_river('ok', %s)", (good,))
        pg.query("SELECT mongo_river.map_collection('ok', 'db.c', 'c', %s)", (json.dumps(MAPPING),))
        created = True
        try:
            pg.query("SELECT mongo_river.alter_river('ok', %s)", (uri,))  # the worker tries it at once
        except psycopg2.Error as e:
            assert e.pgcode and e.pgcode != "XX000", f"alter_river: {e}"
            created = False
        for sql in ("SELECT mongo_river.infer_mapping('ok', 'db.c')",
                    "SELECT * FROM mongo_river.verify('ok', 'db.c')",
                    "SELECT mongo_river.wait_for_sync('ok', '3 s')"):
            try:
                pg.query(sql)
            except psycopg2.Error as e:
                assert e.pgcode and e.pgcode != "XX000", f"{sql}: {e}"
        if created:
            time.sleep(2)  # the worker's retries
        assert not crash_lines(pg), "\n".join(crash_lines(pg))
        assert pg.scalar("SELECT pg_postmaster_start_time()") == started
    finally:
        pg.destroy()
        source.stop()
