"""Review 24 of 206c33b (oplog entries read in one pass, as views into the cursor's reply): a proxy
in front of the peer rewrites chosen oplog entries (marker inserts of _id "evil:<case>") into odd or
malformed ones: "o" not a document, lsid a string / an array / corrupt, txnNumber a string, no ts,
duplicate keys, applyOps holding non-documents, synthetic partialTxn / prepared / aborted
transactions interleaved with retryable writes of other sessions. The river must reject what it
cannot read and go on; no server process may die."""

import json
import re
import struct
import time
import uuid

import bson
import pytest
from bson.binary import Binary
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from evilproxy import EvilProxy
from pgcluster import wait_for
from river import create_river

MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}}}
DB = "r24evil"
NS = f"{DB}.c"
DEATH = re.compile(r"terminated by signal|was terminated by exception")


def source_port(mongo):
    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0]
    return int(host.rsplit(":", 1)[1])


def decode(reply):
    """decode returns (head bytes after the length, body document, bytes after the body) of an OP_MSG."""
    from bson.codec_options import CodecOptions
    from bson.son import SON
    length = struct.unpack_from("<i", reply, 21)[0]
    return reply[4:21], bson.decode(reply[21:21 + length], CodecOptions(document_class=SON)), reply[21 + length:]


def encode(prefix, doc, rest):
    out = prefix + bson.encode(doc) + rest
    return struct.pack("<i", 4 + len(out)) + out


def el(key, value):
    """el returns the bytes of one BSON element."""
    return bson.encode({key: value})[4:-1]


def frame(elements):
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def lsid_of(n):
    return {"id": Binary(uuid.UUID(int=n).bytes, 4), "uid": Binary(b"\x01" * 32, 0)}


class OplogRewrite:
    """A proxy policy: each oplog entry (in a find / getMore reply of local.oplog.rs) that inserts a
    document whose _id is a key of cases is replaced by cases[_id](entry) (raw bytes)."""

    def __init__(self):
        self.cases, self.fired = {}, []

    def __call__(self, name, reply):
        if name not in ("find", "getMore"):
            return [("send", reply)]
        try:
            prefix, doc, rest = decode(reply)
        except Exception:
            return [("send", reply)]
        cursor = doc.get("cursor")
        if not isinstance(cursor, dict) or cursor.get("ns") != "local.oplog.rs":
            return [("send", reply)]
        key = "firstBatch" if "firstBatch" in cursor else "nextBatch"
        changed, out = False, []
        for entry in cursor.get(key, []):
            o = entry.get("o") if isinstance(entry, dict) else None
            marker = o.get("_id") if entry.get("op") == "i" and isinstance(o, dict) else None
            if isinstance(marker, str) and marker in self.cases:
                out.append(RawBSONDocument(self.cases[marker](entry)))
                self.fired.append(marker)
                changed = True
            else:
                out.append(entry)
        if not changed:
            return [("send", reply)]
        cursor[key] = out
        return [("send", encode(prefix, doc, rest))]


def base(entry, skip=()):
    """base returns the element bytes of entry's own fields, in order, but those in skip."""
    return [el(k, v) for k, v in entry.items() if k not in skip]


def with_fields(entry, pairs, skip=()):
    """with_fields returns entry (minus skip, and minus the lsid and txnNumber of the marker's own
    retryable insert) followed by pairs (key, value) or raw element bytes."""
    extra = [p if isinstance(p, bytes) else el(*p) for p in pairs]
    return frame(base(entry, tuple(skip) + ("lsid", "txnNumber", "stmtId", "prevOpTime")) + extra)


def insert_op(_id, n):
    return {"op": "i", "ns": NS, "o": {"_id": _id, "n": n}}


def apply_ops(entry, ops, lsid=None, txn=None, **flags):
    """apply_ops turns entry (keeping ts, wall...) into an admin.$cmd applyOps entry."""
    fields = [("op", "c"), ("ns", "admin.$cmd")]
    if lsid is not None:
        fields += [("lsid", lsid), ("txnNumber", Int64(txn))]
    o = {"applyOps": ops, **flags}
    fields.append(("o", o))
    return with_fields(entry, fields, skip=("op", "ns", "o", "ui", "o2"))


def command(entry, o, lsid, txn):
    return with_fields(entry, [("op", "c"), ("ns", "admin.$cmd"), ("lsid", lsid), ("txnNumber", Int64(txn)),
                               ("o", o)], skip=("op", "ns", "o", "ui", "o2"))


def corrupt_doc_element(key):
    """corrupt_doc_element returns a document element whose inner string claims 200 bytes."""
    inner = b"\x02id\x00" + struct.pack("<i", 200) + b"abc\x00"
    sub = struct.pack("<i", len(inner) + 5) + inner + b"\0"
    return b"\x03" + key.encode() + b"\0" + sub


@pytest.fixture(scope="module")
def evil(river_pg, mongo):
    if not mongo.is_peer:
        pytest.skip("needs the peer behind the proxy")
    pg = river_pg
    client = mongo.client()
    client.drop_database(DB)
    coll = client[DB].c
    coll.insert_many([{"_id": f"d{i}", "n": i} for i in range(5)])
    policy = OplogRewrite()
    proxy = EvilProxy(source_port(mongo), policy)
    policy.proxy = proxy
    river = "r24evil"
    create_river(pg, river, proxy.uri("&socketTimeoutMS=4000&connectTimeoutMS=2000"),
                 {"capture": "oplog", "batch_size": 10})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, NS, river, json.dumps(MAPPING)))
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
    offset = len(pg.log())
    yield pg, river, coll, policy, offset
    try:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
    finally:
        proxy.close()
        client.drop_database(DB)


def rows(pg, river):
    return dict(pg.query(f"SELECT id, n FROM {river}"))


def rejects_of(pg, river, since_id):
    return pg.query("SELECT id, source, document_id, operation, left(error, 160) FROM mongo_river.rejects "
                    "WHERE river = %s AND id > %s ORDER BY id", (river, since_id))


def last_reject_id(pg, river):
    return pg.scalar("SELECT coalesce(max(id), 0) FROM mongo_river.rejects WHERE river = %s", (river,))


def assert_alive(pg, river, offset):
    deaths = [line for line in pg.log()[offset:].splitlines() if DEATH.search(line)]
    assert not deaths, "processes died:\n" + "\n".join(deaths[:5])
    phase, err = pg.query("SELECT phase, last_error FROM mongo_river.status WHERE river = %s", (river,))[0]
    assert phase in ("streaming",), f"phase {phase}, last_error {err}"


def run_marker(evil, case, builder, n):
    """run_marker writes the marker of case (rewritten by builder), then a plain sentinel insert, and
    waits until the sentinel's row is there (the river went on past the marker)."""
    pg, river, coll, policy, offset = evil
    marker = f"evil:{case}"
    policy.cases[marker] = builder
    before = last_reject_id(pg, river)
    coll.insert_one({"_id": marker, "n": n})
    coll.insert_one({"_id": f"after:{case}", "n": n})
    wait_for(lambda: f"after:{case}" in rows(pg, river), 30, 0.1, f"the sentinel after {case}")
    assert marker in policy.fired, f"{case}: the proxy never saw the marker's entry"
    assert_alive(pg, river, offset)
    return rows(pg, river), rejects_of(pg, river, before)


# case: (builder of the entry, what must follow: "row" n, "reject", or "any" (no crash, goes on))
def o_target(n):
    return {"_id": None, "n": n}


CASES = {
    "o_string": (lambda e: with_fields(e, [("o", "not a document")], skip=("o",)), "reject"),
    "o_missing": (lambda e: with_fields(e, [], skip=("o",)), "reject"),
    "o_array": (lambda e: with_fields(e, [("o", [1, 2])], skip=("o",)), "reject"),
    "lsid_string": (lambda e: with_fields(e, [("lsid", "session"), ("txnNumber", Int64(5))]), "row"),
    "lsid_array": (lambda e: with_fields(e, [("lsid", [lsid_of(9)]), ("txnNumber", Int64(5))]), "row"),
    "lsid_int": (lambda e: with_fields(e, [("lsid", 7), ("txnNumber", Int64(5))]), "row"),
    "txn_string": (lambda e: with_fields(e, [("lsid", lsid_of(9)), ("txnNumber", "5")]), "row"),
    "txn_double": (lambda e: with_fields(e, [("lsid", lsid_of(9)), ("txnNumber", 5.5)]), "row"),
    "lsid_corrupt": (lambda e: with_fields(e, [corrupt_doc_element("lsid"), ("txnNumber", Int64(5))]), "reject"),
    "o_corrupt_inner": (lambda e: with_fields(e, [corrupt_doc_element("o")], skip=("o",)), "reject"),
    "ts_int64": (lambda e: with_fields(e, [("ts", Int64(1))], skip=("ts",)), "any"),
    "wall_string": (lambda e: with_fields(e, [("wall", "yesterday")], skip=("wall",)), "row"),
    "dup_op": (lambda e: with_fields(e, [("op", "d")]), "row"),
    "dup_op_int_first": (lambda e: frame([el("op", 7)] + base(e, ("lsid", "txnNumber"))), "any"),
    "dup_o": (lambda e: with_fields(e, [("o", {"_id": "evil:dup_o_second", "n": 200})]), "row"),
    "dup_o_string_first": (lambda e: frame([el("o", "x")] + base(e, ("lsid", "txnNumber"))), "reject"),
    "dup_ns": (lambda e: with_fields(e, [("ns", "zzz.c")]), "row"),
    "dup_lsid_txn": (lambda e: with_fields(e, [("lsid", lsid_of(1)), ("txnNumber", Int64(1)), ("lsid", "x"),
                                               ("txnNumber", "y")]), "row"),
    "applyops_nondocs": (lambda e: apply_ops(e, [1, "x", None, [], [insert_op("evil:nope", 1)],
                                                 insert_op("evil:applyops_nondocs", 31)]), "row31"),
    "applyops_inner_o_string": (lambda e: apply_ops(e, [{"op": "i", "ns": NS, "o": "str"}]), "reject"),
    "applyops_string": (lambda e: apply_ops(e, "not an array"), "any"),
    "applyops_deep": (lambda e: apply_ops(e, [{"op": "c", "ns": "admin.$cmd", "o": deep_apply_ops(10)}]), "reject"),
    "empty_entry": (lambda e: frame([]), "any"),
    "big_lsid": (lambda e: with_fields(e, [("lsid", {"id": "x" * (1 << 20)}), ("txnNumber", Int64(5))]), "row"),
}


def deep_apply_ops(levels):
    o = {"applyOps": [insert_op("evil:deep", 1)]}
    for _ in range(levels):
        o = {"applyOps": [{"op": "c", "ns": "admin.$cmd", "o": o}]}
    return o


@pytest.mark.parametrize("case", list(CASES))
def test_odd_entry(evil, case):
    builder, want = CASES[case]
    n = 1000 + list(CASES).index(case)
    got, rej = run_marker(evil, case, builder, n)
    marker = f"evil:{case}"
    print(case, "row:", got.get(marker), "rejects:", rej)
    if want == "row":
        assert got.get(marker) == n, f"{case}: row {got.get(marker)!r}, rejects {rej}"
    elif want == "row31":
        assert got.get(marker) == 31, f"{case}: row {got.get(marker)!r}, rejects {rej}"
    elif want == "reject":
        assert marker not in got, f"{case}: a row for an unreadable entry: {got.get(marker)}"
        assert rej, f"{case}: entry neither applied nor rejected"


def test_synthetic_transactions_interleaved(evil):
    """A partialTxn chain of session 1 (txnNumber 3) with retryable writes of session 1 (txnNumber 2),
    session 2 (txnNumber 3), a string and an array lsid between its entries; a prepared transaction
    committed; a prepared one aborted; an entry with a corrupt lsid while a transaction waits."""
    pg, river, coll, policy, offset = evil
    L1, L2, L3, L4, L5 = (lsid_of(i) for i in (101, 102, 103, 104, 105))
    plan = [
        ("tx_p1", lambda e: apply_ops(e, [insert_op("tx_a", 1), insert_op("tx_a2", 1)], L1, 3, partialTxn=True)),
        ("tx_rw1", lambda e: with_fields(e, [("lsid", L1), ("txnNumber", Int64(2))])),
        ("tx_rw2", lambda e: with_fields(e, [("lsid", L2), ("txnNumber", Int64(3))])),
        ("tx_rw3", lambda e: with_fields(e, [("lsid", "L1"), ("txnNumber", Int64(3))])),
        ("tx_rw4", lambda e: with_fields(e, [("lsid", [L1]), ("txnNumber", Int64(3))])),
        ("px_prep", lambda e: apply_ops(e, [insert_op("px_a", 1)], L3, 1, prepare=True)),
        ("ab_prep", lambda e: apply_ops(e, [insert_op("ab_a", 1)], L4, 1, prepare=True)),
        ("tx_bad", lambda e: with_fields(e, [corrupt_doc_element("lsid"), ("txnNumber", Int64(3))])),
        ("tx_p2", lambda e: apply_ops(e, [insert_op("tx_b", 1)], L1, 3, partialTxn=True)),
        ("l5_p", lambda e: apply_ops(e, [insert_op("l5_a", 1)], L5, 8, partialTxn=True)),
        ("tx_commit", lambda e: apply_ops(e, [insert_op("tx_c", 1)], L1, 3, count=Int64(4))),
        ("px_commit", lambda e: command(e, {"commitTransaction": 1, "commitTimestamp": Timestamp(1, 1)}, L3, 1)),
        ("ab_abort", lambda e: command(e, {"abortTransaction": 1}, L4, 1)),
        ("l5_abort", lambda e: command(e, {"abortTransaction": 1}, L5, 8)),
    ]
    for marker, builder in plan:
        policy.cases[marker] = builder
    before_rej = last_reject_id(pg, river)
    for i, (marker, _) in enumerate(plan):
        coll.insert_one({"_id": marker, "n": 500 + i})
        if marker == "tx_rw4":
            # The retryable writes are applied while session 1's transaction waits; it is not.
            wait_for(lambda: {"tx_rw1", "tx_rw2", "tx_rw3", "tx_rw4"} <= rows(pg, river).keys(), 30, 0.1,
                     "the retryable writes during the open transaction")
            assert "tx_a" not in rows(pg, river), "a part of an open transaction was applied"
    coll.insert_one({"_id": "tx_after", "n": 1})
    wait_for(lambda: "tx_after" in rows(pg, river), 30, 0.1, "the sentinel after the transactions")
    print("rows:", sorted(k for k in rows(pg, river) if not k.startswith("evil")))
    print("progress:", pg.query("SELECT position, reached, phase, caught_up FROM mongo_river.progress WHERE river = %s", (river,)))
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '30 s')", (river,)), \
        pg.query("SELECT * FROM mongo_river.status WHERE river = %s", (river,))
    got = rows(pg, river)
    assert_alive(pg, river, offset)
    print("rejects:", rejects_of(pg, river, before_rej))
    for key in ("tx_a", "tx_a2", "tx_b", "tx_c", "px_a", "tx_rw1", "tx_rw2", "tx_rw3", "tx_rw4"):
        assert key in got, f"{key} missing; rows {sorted(k for k in got if not k.startswith('evil'))}"
    for key in ("ab_a", "l5_a"):
        assert key not in got, f"{key} of an aborted transaction was applied"


def test_entry_without_ts_keeps_the_position(evil):
    """An insert entry without ts (then a transaction left open, so that the stored position stays
    where that entry put it), then the worker is terminated: the stored position must not fall back
    to 0,0 (a restart from there reads the whole oplog again, or finds it lost and resyncs)."""
    pg, river, coll, policy, offset = evil
    L9 = lsid_of(109)
    policy.cases["ts_none"] = lambda e: with_fields(e, [], skip=("ts",))
    policy.cases["ts_open"] = lambda e: apply_ops(e, [insert_op("ts_txn", 1)], L9, 1, partialTxn=True)
    policy.cases["ts_commit"] = lambda e: apply_ops(e, [insert_op("ts_txn2", 1)], L9, 1, count=Int64(2))
    before = pg.query("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))[0][0]
    since = last_reject_id(pg, river)
    coll.insert_one({"_id": "ts_none", "n": 1})
    coll.insert_one({"_id": "ts_open", "n": 1})
    coll.insert_one({"_id": "ts_after", "n": 1})
    # The entry without a time is unreadable: rejected, with why (the rows around it are applied).
    wait_for(lambda: "ts_after" in rows(pg, river), 30, 0.1, "the row after the ts-less entry")
    wait_for(lambda: any("no timestamp" in r[4] for r in rejects_of(pg, river, since)), 30, 0.1,
             "the reject of the ts-less entry")
    assert "ts_none" not in rows(pg, river)
    time.sleep(1)
    position = pg.query("SELECT position FROM mongo_river.progress WHERE river = %s", (river,))[0][0]
    copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
    pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (river,))
    pg.query("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(3)
    coll.insert_one({"_id": "ts_commit", "n": 1})
    coll.insert_one({"_id": "ts_after2", "n": 1})
    wait_for(lambda: "ts_after2" in rows(pg, river), 60, 0.2, "the river after the restart")
    assert_alive(pg, river, offset)
    phases = pg.query("SELECT phase, docs_copied, last_error FROM mongo_river.status WHERE river = %s", (river,))
    print("position before", before, "after the ts-less entry", position, "copied", copied, "status now", phases)
    resyncs = [line for line in pg.log()[offset:].splitlines() if "r24evil" in line and "resync" in line.lower()]
    assert not resyncs and '"t" : 0, "i" : 0' not in position, \
        f"one entry without ts: stored position {position} (was {before}); after a restart: {resyncs[:1]}"


def test_entry_whose_ts_goes_back_is_rejected_not_lost(evil):
    """An insert entry whose ts is older than the entries read before it (only a broken source: the
    oplog is in ts order), and one whose ts repeats the last one's. The repeat is applied; the one
    going back was skipped when older than the mapping's copy, its change silently lost (review 25,
    finding d): now it is rejected with why, the river goes on, and retry_rejects (which re-reads the
    document) applies it."""
    pg, river, coll, policy, offset = evil
    seen = {}

    def remember(e):
        seen["ts"] = e["ts"]
        return with_fields(e, [])

    policy.cases["tsb_before"] = remember
    policy.cases["tsb_back"] = lambda e: with_fields(e, [("ts", Timestamp(1, 1))], skip=("ts",))
    policy.cases["tsb_same"] = lambda e: with_fields(e, [("ts", seen.get("ts", e["ts"]))], skip=("ts",))
    since = last_reject_id(pg, river)
    for i, key in enumerate(("tsb_before", "tsb_back", "tsb_same", "tsb_after")):
        coll.insert_one({"_id": key, "n": 70 + i})
    wait_for(lambda: "tsb_after" in rows(pg, river), 30, 0.1, "the row after the entry going back")
    got = rows(pg, river)
    rejected = rejects_of(pg, river, since)
    assert got.get("tsb_before") == 70 and got.get("tsb_same") == 72, (got, rejected)
    assert "tsb_back" not in got and [(r[2], r[3]) for r in rejected] == [("tsb_back", "insert")], rejected
    assert "goes back" in rejected[0][4], rejected
    assert pg.scalar("SELECT mongo_river.retry_rejects(%s, %s)", (river, rejected[0][0])) == 1
    assert rows(pg, river).get("tsb_back") == 71
    assert_alive(pg, river, offset)


def test_worker_killed_while_a_prepared_transaction_waits(evil):
    """A prepared transaction (applyOps prepare: true) waits for its commitTransaction while 5 plain
    inserts after it are applied and committed (the stored position stays before the prepare). The
    workers of this river and of a history-mode river over the same collection are terminated, then
    the transaction commits. README, "Exactly once": after a crash "nothing applied twice"; history
    mode: "a change seen twice is recorded once". changes_applied must count 7 changes."""
    pg, river, coll, policy, offset = evil
    hist = "r24evilh"
    create_river(pg, hist, policy.proxy.uri("&socketTimeoutMS=4000&connectTimeoutMS=2000"),
                 {"capture": "oplog", "batch_size": 10})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s, %s)",
             (hist, NS, hist, json.dumps(MAPPING), json.dumps({"mode": "history"})))
    try:
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (hist,))
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (river,))
        L7 = lsid_of(107)
        policy.cases["pw_prep"] = lambda e: apply_ops(e, [insert_op("pw_a", 1)], L7, 1, prepare=True)
        policy.cases["pw_commit"] = lambda e: command(e, {"commitTransaction": 1, "commitTimestamp": Timestamp(1, 1)},
                                                      L7, 1)
        applied = {r: pg.scalar("SELECT changes_applied FROM mongo_river.status WHERE river = %s", (r,))
                   for r in (river, hist)}
        coll.insert_one({"_id": "pw_prep", "n": 0})
        for i in range(5):
            coll.insert_one({"_id": f"pw_{i}", "n": i})
        wait_for(lambda: {f"pw_{i}" for i in range(5)} <= rows(pg, river).keys() and
                 pg.scalar(f"SELECT count(DISTINCT id) FROM {hist} WHERE id LIKE 'pw\\_%%'") == 5,
                 30, 0.1, "the inserts after the prepared transaction")
        time.sleep(0.5)
        for r in (river, hist):
            pid = pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (r,))
            pg.query("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(1)
        for r in (river, hist):
            wait_for(lambda: pg.scalar("SELECT worker_pid FROM mongo_river.status WHERE river = %s", (r,)),
                     60, 0.1, "a new worker")
        time.sleep(2)
        coll.insert_one({"_id": "pw_commit", "n": 0})
        coll.insert_one({"_id": "pw_after", "n": 0})
        for r in (river, hist):
            assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '60 s')", (r,)), r
        assert_alive(pg, river, offset)
        got = rows(pg, river)
        assert "pw_a" in got and "pw_after" in got, sorted(got)
        versions = pg.query(f"SELECT id, count(*) FROM {hist} WHERE id LIKE 'pw%%' GROUP BY id ORDER BY id")
        counted = {r: pg.scalar("SELECT changes_applied FROM mongo_river.status WHERE river = %s", (r,)) - applied[r]
                   for r in (river, hist)}
        print("history versions:", versions, "changes_applied deltas:", counted)
        assert all(n == 1 for _, n in versions), f"history mode recorded a change twice: {versions}"
        assert counted == {river: 7, hist: 7}, f"changes_applied counted {counted} for 7 changes"
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (hist,))
