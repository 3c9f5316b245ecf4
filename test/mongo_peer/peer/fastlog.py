"""Byte-level oplog entries and change events for single-document writes (the hot path).

bson.encode costs microseconds per (sub-)document, so an insert's oplog entry and its change
event are assembled here from pre-encoded pieces: the stored document's raw bytes, its `_id`
element cut out of them, and cached per-collection headers.  The results are byte-identical to
what oplog.Oplog.append and changestream.ChangeStreamCursor build from dicts (the conformance
suite and tests/test_peer_speed.py compare them).
"""
import binascii
import struct

from .values import encode

_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_TS = struct.Struct("<II")
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16,
          0x7F: 0, 0xFF: 0}
_HEADS = {}  # (op, ns, ui bytes) -> element bytes "op", "ns", "ui"
_NS_DOCS = {}  # ns -> element bytes of ns: {db, coll}


def cstr(name):
    """cstr returns name as a BSON C string."""
    return name.encode() + b"\x00"


def frame(elements):
    """frame wraps element bytes into a BSON document."""
    return _I32.pack(len(elements) + 5) + elements + b"\x00"


def string_el(name, value):
    """string_el returns a BSON string element."""
    v = value.encode()
    return b"\x02" + cstr(name) + _I32.pack(len(v) + 1) + v + b"\x00"


def update_event(ts, wall_ms, ns, ui, key, o):
    """update_event returns (ns, "update", token hex, bytes) of the default update event of a
    $v:2 diff entry (o), or None for other update entries."""
    if not isinstance(o, dict) or "diff" not in o or "$v" not in o:
        return None
    from .changestream import update_description
    desc = encode(update_description(o["diff"]))
    return (ns, "update") + event_bytes("update", ts, wall_ms, ns, ui, key, desc=desc)


def id_element(raw):
    """id_element returns the bytes of a raw document's first element when it is `_id` of a
    fixed-size, string, binary or document type; None otherwise (callers then use bson)."""
    if raw[5:9] != b"_id\x00":
        return None
    t = raw[4]
    n = _FIXED.get(t)
    if n is None:
        if t == 0x02:
            n = 4 + _I32.unpack_from(raw, 9)[0]
        elif t == 0x05:
            n = 5 + _I32.unpack_from(raw, 9)[0]
        elif t in (0x03, 0x04):
            n = _I32.unpack_from(raw, 9)[0]
        else:
            return None
    return raw[4:9 + n]


def key_doc(raw, idv):
    """key_doc returns the BSON document {_id: ...} of a stored document."""
    el = id_element(raw) if raw is not None else None
    return frame(el) if el is not None else encode({"_id": idv})


def head(op, ns, ui):
    """head returns the cached "op", "ns", "ui" elements of an entry."""
    k = (op, ns, bytes(ui))
    h = _HEADS.get(k)
    if h is None:
        h = string_el("op", op) + string_el("ns", ns) + \
            b"\x05ui\x00" + _I32.pack(16) + b"\x04" + bytes(ui)
        if len(_HEADS) > 10000:
            _HEADS.clear()
        _HEADS[k] = h
    return h


def ts_el(name, ts):
    """ts_el returns a BSON timestamp element for the integer timestamp ts."""
    return b"\x11" + cstr(name) + _TS.pack(ts & 0xFFFFFFFF, ts >> 32)


def oplog_tail(ts, wall_ms):
    """oplog_tail returns the ts, t, v, wall elements every oplog entry carries."""
    return b"\x11ts\x00" + _TS.pack(ts & 0xFFFFFFFF, ts >> 32) + b"\x12t\x00" + _I64.pack(1) + \
        b"\x12v\x00" + _I64.pack(2) + b"\x09wall\x00" + _I64.pack(wall_ms)


def ns_doc_el(ns):
    """ns_doc_el returns the element ns: {db, coll} of a change event."""
    el = _NS_DOCS.get(ns)
    if el is None:
        db, _, coll = ns.partition(".")
        el = b"\x03ns\x00" + frame(string_el("db", db) + string_el("coll", coll))
        if len(_NS_DOCS) > 10000:
            _NS_DOCS.clear()
        _NS_DOCS[ns] = el
    return el


def token_hex(ts, ui, key):
    """token_hex is changestream.make_token(ts, True, 0, False, {u: ui, k: key}) from bytes."""
    extra = frame(b"\x05u\x00" + _I32.pack(16) + b"\x04" + bytes(ui) + b"\x03k\x00" + key)
    data = b"\x82" + struct.pack(">Q", ts) + b"\x80\x00\x00\x00\x00\x00" + extra
    return binascii.hexlify(data).decode().upper()


def event_bytes(kind, ts, wall_ms, ns, ui, key, full=None, desc=None):
    """event_bytes returns (token hex, event bytes) of an insert/replace/delete/update event
    with the default options: _id, operationType, clusterTime, wallTime, [fullDocument], ns,
    documentKey, [updateDescription]."""
    tok = token_hex(ts, ui, key)
    body = [b"\x03_id\x00" + frame(string_el("_data", tok)), string_el("operationType", kind),
            ts_el("clusterTime", ts), b"\x09wallTime\x00" + _I64.pack(wall_ms)]
    if full is not None:
        body.append(b"\x03fullDocument\x00" + full)
    body.append(ns_doc_el(ns))
    body.append(b"\x03documentKey\x00" + key)
    if desc is not None:
        body.append(b"\x03updateDescription\x00" + desc)
    return tok, frame(b"".join(body))
