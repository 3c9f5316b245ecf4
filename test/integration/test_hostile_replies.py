"""A hostile or broken source: one malformed reply, then normal replies (review 18).

A proxy (test/lib/evilproxy.py) in front of the source damages one chosen reply: its header's
messageLength one byte short, or longer with garbage (an unknown section kind, or a second body
section) after the body, its opCode OP_REPLY (with and without closing the connection) or
OP_COMPRESSED, or the length of the batch's first document (huge, or 3). Before the fix libmongoc
parsed such replies as they came: the worker or backend died of SIGSEGV/SIGABRT (PostgreSQL then
restarts every process), or the rest of the batch was dropped with no error. Whatever the reply,
no process may die, and the river must end with exactly the source's documents: during the copy
(the bad reply answers the find or the first getMore), while streaming (a getMore of the change
stream or of the oplog), and in verify / infer_mapping (an ERROR, never a dead session). The peer's
corruptCursorBatch fail point (a batch whose first document claims 64 bytes more than it has) must
not end a copy with documents missing and no reject. Replies cut short (connection closed), with
odd flags, or in pieces of every size never crashed: they are here so that a check of replies keeps
them working.
"""

import contextlib
import hashlib
import json
import os
import random
import re
import struct
import time

import psycopg2
import pytest

from evilproxy import EvilProxy, passthrough
from pgcluster import wait_for
from river import create_river

MIB = 1024 * 1024
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "blob": {"path": "blob", "type": "text"}}}
# A short socket timeout: a reply that never completes is given up quickly.
URI_OPTIONS = "&socketTimeoutMS=4000&connectTimeoutMS=2000"
DEATH = re.compile(r"terminated by signal|was terminated|reinitializing")


def with_length(reply, length):
    return struct.pack("<i", length) + reply[4:]


def with_opcode(reply, opcode):
    return reply[:12] + struct.pack("<i", opcode) + reply[16:]


def with_first_doc_length(reply, length):
    """with_first_doc_length sets the length of the first document of the reply's batch (element
    "0" of firstBatch or nextBatch); the reply's own lengths stay as they were."""
    for key in (b"nextBatch\x00", b"firstBatch\x00"):
        at = reply.find(key)
        if at > 0:
            elem = reply.find(b"\x030\x00", at)
            assert elem > 0, "a batch without documents"
            p = elem + 3
            return reply[:p] + struct.pack("<i", length) + reply[p + 4:]
    raise AssertionError("a reply without a batch")


# Each mode damages one reply (list of proxy actions).
MODES = {
    "one_short": lambda r: [("send", with_length(r, len(r) - 1))],
    "long_garbage": lambda r: [("send", with_length(r, len(r) + 64) + b"\x01" + b"\xff" * 63)],
    "long_kind0_garbage": lambda r: [("send", with_length(r, len(r) + 5) + b"\x00" + struct.pack("<i", 5))],
    "wrong_opcode": lambda r: [("send", with_opcode(r, 1))],
    "opreply_opcode": lambda r: [("send", with_opcode(r, 1)), ("close",)],
    "compressed_opcode": lambda r: [("send", with_opcode(r, 2012))],
    "doc_len_huge": lambda r: [("send", with_first_doc_length(r, 0x7FFFFF00))],
    "doc_len_small": lambda r: [("send", with_first_doc_length(r, 3))],
    # Replies that are well formed or plainly cut: these never crashed; they must keep working.
    "truncate_close": lambda r: [("send", r[:len(r) // 2]), ("close",)],
    "checksum_flag": lambda r: [("send", r[:16] + struct.pack("<I", 1) + r[20:])],
    "more_to_come_flag": lambda r: [("send", r[:16] + struct.pack("<I", 2) + r[20:])],
}


class OneShot:
    """OneShot damages (as mode says) the nth reply to one of commands that holds marker, once
    armed; every other reply passes. fired: (command, reply length) once it did."""

    def __init__(self, mode, commands, marker, nth=1, armed=True):
        self.make, self.commands, self.marker, self.nth = MODES[mode], set(commands), marker, nth
        self.armed, self.seen, self.fired = armed, 0, None

    def __call__(self, name, reply):
        if self.armed and self.fired is None and name in self.commands and self.marker in reply:
            self.seen += 1
            if self.seen == self.nth:
                self.fired = (name, len(reply))
                return self.make(reply)
        return [("send", reply)]


def source_port(mongo):
    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0]
    return int(host.rsplit(":", 1)[1])


class Survival:
    """Survival remembers the postmaster and where the server log ends; check() fails if a process
    died since (a signal, or the restart of every process that follows) or the postmaster changed."""

    def __init__(self, pg):
        pg.scalar("SELECT 1")  # after an earlier crash: recovery is over and logged
        self.pg, self.postmaster = pg, pg.postmaster_pid()
        self.offset = os.path.getsize(pg.logfile)

    def deaths(self):
        with open(self.pg.logfile, errors="replace") as f:
            f.seek(self.offset)
            return [line for line in f.read().splitlines() if DEATH.search(line)]

    def check(self, error=None):
        deaths = self.deaths()
        if deaths:
            raise AssertionError("processes died:\n" + "\n".join(deaths[:6])) from error
        assert self.pg.postmaster_pid() == self.postmaster, "the postmaster changed"


@contextlib.contextmanager
def survives(pg, cleanup):
    """survives fails the test if a process died during its block (before any other failure of
    the block, which a death explains), then runs cleanup."""
    survival = Survival(pg)
    try:
        yield survival
    except Exception as e:
        survival.check(e)
        raise
    finally:
        cleanup()
    survival.check()


def load(coll, count, big_at=None):
    """load inserts count small documents doc00000.. (and one of 1 MiB at position big_at)."""
    docs = [{"_id": f"doc{i:05d}", "n": i, "blob": "x" * (i * 37 % 2000)} for i in range(count)]
    if big_at is not None:
        docs[big_at]["blob"] = "b" * MIB
    coll.insert_many(docs)


def differences(pg, table, coll):
    """differences lists the keys whose row differs from the document (missing, extra, different),
    and duplicates."""
    want = {d["_id"]: (d.get("n"), hashlib.md5(d["blob"].encode()).hexdigest(), len(d["blob"])) for d in coll.find()}
    rows = pg.query(f"SELECT id, n, md5(blob), octet_length(blob) FROM {table}")
    got = {r[0]: tuple(r[1:]) for r in rows}
    bad = [k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
    if len(rows) != len(got):
        bad.append(f"duplicates: {len(rows)} rows for {len(got)} keys")
    return bad


def rejects(pg, river):
    return pg.query("SELECT document_id, operation, left(error, 200) FROM mongo_river.rejects WHERE river = %s",
                    (river,))


def assert_converged(pg, river, coll, shot):
    """assert_converged waits for the river to catch up, then wants every row equal to its document
    and no reject."""
    synced = pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
    status = pg.query("SELECT phase, docs_copied, last_error FROM mongo_river.status WHERE river = %s", (river,))
    assert shot.fired, f"the bad reply was never sent (status {status})"
    assert synced, f"did not catch up: {status}"
    bad, rej = differences(pg, river, coll), rejects(pg, river)
    assert bad == [] or rej, f"{len(bad)} documents lost silently (no reject): {bad[:5]}; status {status}"
    assert bad == [], f"{len(bad)} rows differ: {bad[:5]}; rejects {rej[:3]}"
    assert rej == [], f"rejects: {rej[:3]}"


def fresh(mongo, name):
    client = mongo.client()
    client.drop_database(name)
    return client, client[name].c


def river_through(pg, river, proxy, options=None):
    """river_through creates river (batch_size 10 unless options say) reading its collection through
    proxy, mapped to the table named river."""
    create_river(pg, river, proxy.uri(URI_OPTIONS), {"batch_size": 10, **(options or {})})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))


def dropping(pg, river, proxy, client):
    """dropping returns the cleanup of a test's river, proxy and source database."""
    def cleanup():
        drop(pg, river, proxy)
        client.drop_database(river)
    return cleanup


def drop(pg, river, proxy):
    try:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    finally:
        proxy.close()


# Copy: every damage once on the copy path; the find's reply (one document: the find asks for one)
# or the first getMore's (up to 100 documents); the document-length damage on both.
COPY_CASES = [("one_short", "find"), ("long_garbage", "getMore"), ("long_kind0_garbage", "find"),
              ("wrong_opcode", "getMore"), ("opreply_opcode", "find"), ("compressed_opcode", "getMore"),
              ("doc_len_huge", "find"), ("doc_len_huge", "getMore"), ("doc_len_small", "find"),
              ("doc_len_small", "getMore"), ("truncate_close", "getMore"), ("checksum_flag", "getMore"),
              ("more_to_come_flag", "find")]


@pytest.mark.parametrize("mode,target", COPY_CASES)
def test_bad_reply_during_the_copy(river_pg, mongo, mode, target):
    pg, river = river_pg, f"hc_{mode}_{target}".lower()
    client, coll = fresh(mongo, river)
    load(coll, 400, big_at=150)
    shot = OneShot(mode, [target], b"doc0")
    proxy = EvilProxy(source_port(mongo), shot)
    with survives(pg, dropping(pg, river, proxy, client)):
        # batch_size 10: the copy's getMores ask for up to 100 documents, so there are several.
        river_through(pg, river, proxy)
        assert_converged(pg, river, coll, shot)
        assert proxy.counts.get("getMore", 0) >= 3, proxy.counts


def in_pieces(name, reply):
    """in_pieces sends a reply in pieces of 1 byte to 64 KiB, pausing now and then so that they
    come in separate reads (a generator: the proxy sends each piece as it is made)."""
    rng = random.Random(len(reply))
    i = 0
    while i < len(reply):
        n = rng.choice((1, 2, 3, 7, 100, 4096, 65536))
        yield ("send", reply[i:i + n])
        i += n
        if rng.random() < 0.05:
            time.sleep(0.001)


def test_replies_in_pieces(river_pg, mongo):
    """Every reply comes in pieces (a check of replies must not need one read per reply)."""
    pg, river = river_pg, "hp_pieces"
    client, coll = fresh(mongo, river)
    load(coll, 400, big_at=150)
    proxy = EvilProxy(source_port(mongo), in_pieces)
    with survives(pg, dropping(pg, river, proxy, client)):
        river_through(pg, river, proxy)
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        coll.insert_many([{"_id": f"zz-piece{i:02d}", "n": i, "blob": "p" * i * 100} for i in range(30)])
        coll.update_many({"n": {"$lt": 20}}, {"$set": {"blob": "updated"}})
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        assert differences(pg, river, coll) == []
        assert rejects(pg, river) == []
        assert pg.query("SELECT last_error FROM mongo_river.status WHERE river = %s", (river,)) == [(None,)]


# Streaming: a getMore of the change stream / of the oplog carrying the new documents is damaged.
STREAM_CASES = [("change_stream", m) for m in ("one_short", "long_kind0_garbage", "compressed_opcode",
                                                 "doc_len_huge", "doc_len_small")] + \
               [("oplog", m) for m in ("long_garbage", "wrong_opcode", "opreply_opcode", "doc_len_huge",
                                       "doc_len_small")]


@pytest.mark.parametrize("capture,mode", STREAM_CASES)
def test_bad_reply_while_streaming(river_pg, mongo, capture, mode):
    pg, river = river_pg, f"hs_{capture}_{mode}".lower()
    client, coll = fresh(mongo, river)
    load(coll, 100)
    shot = OneShot(mode, ["getMore"], b"zz-stream", armed=False)
    proxy = EvilProxy(source_port(mongo), shot)
    with survives(pg, dropping(pg, river, proxy, client)):
        river_through(pg, river, proxy, {"capture": capture})
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        shot.armed = True
        inserted = []

        def insert_until_fired():
            # One document at a time until a getMore carries one (not the find of a reopened cursor).
            if not shot.fired:
                i = len(inserted)
                coll.insert_one({"_id": f"zz-stream{i:03d}", "n": i, "blob": "s" * i})
                inserted.append(i)
            return shot.fired
        wait_for(insert_until_fired, 30, 0.1, "the bad reply")
        print(river, "fired", shot.fired, "after", len(inserted), "inserts; replies", proxy.counts)
        coll.insert_many([{"_id": f"zz-stream{i:03d}", "n": i, "blob": "t" * i} for i in range(500, 520)])
        coll.update_many({"n": {"$lt": 10}}, {"$set": {"blob": "updated"}})
        coll.delete_one({"_id": "doc00050"})
        assert_converged(pg, river, coll, shot)


@pytest.fixture(scope="module")
def stopped_river(river_pg, mongo):
    """stopped_river is a river (through a proxy, passing everything) whose 100 documents are copied
    and 2 rows then changed behind its back; it is stopped, so that only backend calls read."""
    pg, river = river_pg, "hb_backend"
    client, coll = fresh(mongo, river)
    load(coll, 100)
    proxy = EvilProxy(source_port(mongo))
    river_through(pg, river, proxy)
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
    pg.query("SELECT mongo_river.stop(%s)", (river,))
    pg.query(f"UPDATE {river} SET n = -1 WHERE id = 'doc00007'")
    pg.query(f"DELETE FROM {river} WHERE id = 'doc00042'")
    yield river, proxy
    drop(pg, river, proxy)
    client.drop_database(river)


CALLS = {"verify": "SELECT source, document_id, problem FROM mongo_river.verify(%s) ORDER BY 2",
         "infer_mapping": "SELECT mongo_river.infer_mapping(%s, %s || '.c')"}
BACKEND_CASES = [("verify", m) for m in ("one_short", "compressed_opcode", "doc_len_huge", "doc_len_small")] + \
                [("infer_mapping", m) for m in ("long_garbage", "wrong_opcode", "doc_len_huge", "doc_len_small")]


@pytest.mark.parametrize("call,mode", BACKEND_CASES)
def test_bad_reply_to_a_backend_call(river_pg, stopped_river, call, mode):
    """The call fails with an ERROR (the session goes on) or answers as it does without the damage."""
    pg, (river, proxy) = river_pg, stopped_river
    sql, args = CALLS[call], (river,) if call == "verify" else (river, river)
    clean = pg.query(sql, args)
    if call == "verify":
        assert [r[1:] for r in clean] == [("doc00007", "different"), ("doc00042", "missing")], clean
    shot = OneShot(mode, ["find", "aggregate", "getMore"], b"doc0")
    proxy.policy = shot
    conn = pg.connect()

    def cleanup():
        proxy.policy = passthrough
        conn.close()
    with survives(pg, cleanup):
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '60s'")
            error = None
            try:
                cur.execute(sql, args)
                out = cur.fetchall()
            except psycopg2.Error as e:
                error, out = e, None
            print(call, mode, "fired", shot.fired, "error", repr(error)[:300])
            assert shot.fired, "the bad reply was never sent"
            if error is not None:
                assert not isinstance(error, psycopg2.OperationalError) and error.pgcode, \
                    f"the session died: {error!r}"
            else:
                assert out == clean, f"answered differently: {out}, without the damage: {clean}"
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)


@pytest.mark.parametrize("target", ["find", "getMore"])
def test_damaged_copy_batch_is_not_dropped_silently(river_pg, mongo, target):
    """corruptCursorBatch "truncated" damages one batch of the copy: the find's (set as the find's
    request goes through the proxy) or the first getMore's (set while the proxy holds the find's
    reply)."""
    if not mongo.is_peer:
        pytest.skip("needs the peer's corruptCursorBatch fail point")
    pg, river = river_pg, f"hcb_{target}".lower()
    client, coll = fresh(mongo, river)
    load(coll, 400)
    fail_point = {"configureFailPoint": "corruptCursorBatch", "mode": {"times": 1},
                  "data": {"kind": "truncated", "cursor": "find", "db": river}}
    fired = []

    def on_request(name, request):
        if target == "find" and not fired and name == "find" and river.encode() in request:
            client.admin.command(fail_point)
            fired.append(name)

    def policy(name, reply):
        if target == "getMore" and not fired and name == "find" and b"doc0" in reply:
            client.admin.command(fail_point)
            fired.append(name)
        return [("send", reply)]
    proxy = EvilProxy(source_port(mongo), policy)
    proxy.on_request = on_request

    def cleanup():
        client.admin.command({"configureFailPoint": "corruptCursorBatch", "mode": "off"})
        drop(pg, river, proxy)
        client.drop_database(river)
    with survives(pg, cleanup):
        river_through(pg, river, proxy)
        synced = pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        status = pg.query("SELECT phase, docs_copied, last_error FROM mongo_river.status WHERE river = %s", (river,))
        assert fired and synced, status
        bad, rej = differences(pg, river, coll), rejects(pg, river)
        assert bad == [] or rej, f"{len(bad)} documents lost silently (no reject): {bad[:3]}..{bad[-2:]}; {status}"
        lost = set(bad) - {r[0] for r in rej}
        assert not lost, f"{len(lost)} documents missing without a reject of their own: {sorted(lost)[:5]}"


# Replies out of place (review 19): well formed, but not the answer to the request awaiting one.
# libmongoc 1.23 checks neither responseTo nor that an OP_MSG request gets an OP_MSG reply: an
# OP_REPLY answering a getMore or find killed the process (SIGSEGV), and a reply sent twice answered
# the next command (docs_copied above the documents copied, junk rejects).
OP_REPLY = 1


def as_op_reply(reply):
    """as_op_reply frames an OP_MSG reply's body as a well-formed OP_REPLY (one document)."""
    request_id, response_to = struct.unpack_from("<ii", reply, 4)
    body_len = struct.unpack_from("<i", reply, 21)[0]
    payload = struct.pack("<iqii", 0, 0, 0, 1) + reply[21:21 + body_len]
    return struct.pack("<iiii", 16 + len(payload), request_id, response_to, OP_REPLY) + payload


def unsolicited_ok():
    body = struct.pack("<I", 0) + b"\0" + bson_ok()
    return struct.pack("<iiii", 16 + len(body), 99, 0, 2013) + body


def bson_ok():
    return struct.pack("<i", 17) + b"\x01ok\0" + struct.pack("<d", 1.0) + b"\0"


MODES.update({
    "as_op_reply": lambda r: [("send", as_op_reply(r))],
    "twice": lambda r: [("send", r + r)],
    "plus_unsolicited": lambda r: [("send", r + unsolicited_ok())],
})
OUT_OF_PLACE = ["as_op_reply", "twice", "plus_unsolicited"]


def protocol_error(pg, sql, args):
    """protocol_error runs sql in a session of its own: (rows, None) if it answers, else (None,
    (SQLSTATE, message)); the session must live on."""
    conn = pg.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            try:
                cur.execute(sql, args)
                out, error = cur.fetchall(), None
            except psycopg2.Error as e:
                assert e.pgcode, f"the session died: {e!r}"
                out, error = None, (e.pgcode, str(e).splitlines()[0])
            cur.execute("SELECT 1")
        return out, error
    finally:
        conn.close()


@pytest.mark.parametrize("mode,target", [(m, t) for m in OUT_OF_PLACE for t in ("getMore", "stream")])
def test_reply_out_of_place_in_the_worker(river_pg, mongo, mode, target):
    """The reply to a copy's getMore, or to a change stream's getMore carrying a new document."""
    pg, river = river_pg, f"ho_{mode}_{target}".lower()
    client, coll = fresh(mongo, river)
    load(coll, 200)
    marker = b"doc0" if target == "getMore" else b"zz-"
    shot = OneShot(mode, ["getMore"], marker, armed=target == "getMore")
    proxy = EvilProxy(source_port(mongo), shot)
    with survives(pg, dropping(pg, river, proxy, client)) as survival:
        river_through(pg, river, proxy)
        if target == "stream":
            assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
            shot.armed = True
            wait_for(lambda: shot.fired or coll.insert_one({"_id": f"zz-{time.monotonic_ns()}", "n": 1,
                                                             "blob": "s"}) and False, 30, 0.1, "the bad reply")
            coll.update_many({"n": {"$lt": 10}}, {"$set": {"blob": "updated"}})
        assert_converged(pg, river, coll, shot)
        copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
        assert copied == 200, f"docs_copied {copied} for 200 documents"
        assert survival.deaths() == []


HANDSHAKE = {
    # The handshake's reply twice: the copy answers the next command (an OP_REPLY to an OP_MSG).
    "hello_twice": lambda r: [("send", r + r)],
    # A hello agreeing to compression the driver did not offer (libmongoc would compress).
    "hello_compression": lambda r: [("send", with_compression(r))],
}


def with_compression(reply):
    """with_compression adds compression: ["zlib"] to the handshake's OP_REPLY document."""
    assert struct.unpack_from("<i", reply, 12)[0] == OP_REPLY
    doc = reply[36:]
    names = b"\x020\0" + struct.pack("<i", 5) + b"zlib\0"
    element = b"\x04compression\0" + struct.pack("<i", 4 + len(names) + 1) + names + b"\0"
    doc = struct.pack("<i", len(doc) + len(element)) + doc[4:-1] + element + b"\0"
    out = reply[4:36] + doc
    return struct.pack("<i", 4 + len(out)) + out


@pytest.mark.parametrize("mode,call", [(m, c) for m in OUT_OF_PLACE for c in ("verify", "infer_mapping")] +
                         [(m, "verify") for m in HANDSHAKE])
def test_reply_out_of_place_in_a_backend(river_pg, stopped_river, mode, call):
    """A backend call whose find (or handshake) gets a reply out of place fails with 08P01, saying
    what the source sent, or answers right; the session and every process live on."""
    pg, (river, proxy) = river_pg, stopped_river
    sql, args = CALLS[call], (river,) if call == "verify" else (river, river)
    clean = pg.query(sql, args)
    if mode in HANDSHAKE:
        make = HANDSHAKE[mode]
        fired = []

        def shot(name, reply):
            if not fired and name and name.startswith("q:"):
                fired.append(name)
                return make(reply)
            return [("send", reply)]
        proxy.policy = shot
    else:
        shot = OneShot(mode, ["find", "aggregate"], b"doc0")
        proxy.policy = shot

    def cleanup():
        proxy.policy = passthrough
    with survives(pg, cleanup):
        out, error = protocol_error(pg, sql, args)
        print(call, mode, "error", error)
        assert fired if mode in HANDSHAKE else shot.fired, "the bad reply was never sent"
        if error is None:  # the call read again, or a stray reply came after its last command
            assert out == clean, f"answered differently: {out}, without the damage: {clean}"
            return
        assert error[0] == "08P01", error
        words = {"as_op_reply": "OP_REPLY to an OP_MSG request", "twice": "reply to no request",
                 "plus_unsolicited": "reply to no request", "hello_twice": "reply to no request",
                 "hello_compression": "compression (zlib)"}[mode]
        assert words in error[1], error
        proxy.policy = passthrough
        assert pg.query(sql, args) == clean, "the next call answers as before"


def test_river_refuses_a_source_agreeing_to_compression(river_pg, mongo):
    """Every handshake agrees to zlib: create_river refuses the source and says why (and sends no
    OP_COMPRESSED request, which libmongoc would, even with compressors in the URI)."""
    pg, river = river_pg, "ho_compression"
    client, coll = fresh(mongo, river)
    load(coll, 10)
    compressed = []

    def on_request(name, request):
        if struct.unpack_from("<i", request, 12)[0] == 2012:
            compressed.append(name)

    def policy(name, reply):
        if name and name.startswith("q:"):
            return [("send", with_compression(reply))]
        return [("send", reply)]
    proxy = EvilProxy(source_port(mongo), policy)
    proxy.on_request = on_request

    def cleanup():
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        proxy.close()
        client.drop_database(river)
    with survives(pg, cleanup):
        try:  # create_river or map_collection may connect to the source first
            create_river(pg, river, proxy.uri(URI_OPTIONS + "&compressors=zlib"), {"batch_size": 10})
            pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                     (river, f"{river}.c", river, json.dumps(MAPPING)))
            message = wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = %s",
                                                 (river,)), 30, 0.2, "the river's error")
        except psycopg2.Error as e:
            assert e.pgcode == "08P01", e
            message = str(e)
        assert "compression (zlib), which the driver did not offer" in message, message
        assert not pg.scalar("SELECT count(*) FROM mongo_river.rivers r JOIN mongo_river.status s USING (river) "
                             "WHERE river = %s AND s.phase = 'streaming'", (river,))
        assert compressed == [], f"compressed requests: {compressed}"
