"""Hostile strings through a river (review 22 of a5e410f: IsCleanText checks eight ASCII bytes at
a time before libbson decodes UTF-8). Invalid UTF-8 and NUL characters at every offset modulo 8 of
a value, of a key inside a document converted to jsonb, and of a string _id under a text key must
be rejects; valid 2-, 3- and 4-byte sequences (at the end too) must be copied byte for byte."""

import json
import struct

from bson.raw_bson import RawBSONDocument
from evilproxy import EvilProxy
from hostile_lib import port_of
from pgcluster import wait_for
from river import create_river, wait_synced

BAD = [b"\x00", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
       b"\xff", b"\x80", b"\xf0\x9f\x98", b"\xc3"]
GOOD = [b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf"]


def string(b):
    return struct.pack("<i", len(b) + 1) + b + b"\x00"


def doc(elements):
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def el(kind, key, value):
    return bytes([kind]) + key + b"\x00" + value


def test_hostile_strings_are_rejects_and_good_ones_are_copied(river_pg, mongo):
    pg, river = river_pg, "hostiletext"
    client = mongo.client()
    client.drop_database(river)
    docs, bad_ids, good = [], set(), {}
    n = 0
    # The peer decodes what it stores, so the documents hold placeholders (a run of one capital
    # letter per piece, as long as it) that a proxy turns into the hostile bytes in copy replies.
    marks = {}
    for i, real in enumerate(BAD + GOOD):
        ok = real in GOOD
        piece = bytes([ord("A") + i]) * len(real)
        marks[piece] = real
        for off in range(16):
            for tail in (0, 1, 7):
                for where in ("value", "key", "id"):
                    if where == "key" and b"\x00" in piece:
                        continue  # a BSON key is a C string
                    n += 1
                    text = b"a" * off + piece + b"b" * tail
                    idv = text if where == "id" else b"d%06d" % n
                    meta = doc([el(0x10, text if where == "key" else b"k", struct.pack("<i", 1))])
                    title = text if where == "value" else b"t"
                    raw = doc([el(0x02, b"_id", string(idv)), el(0x02, b"title", string(title)),
                               el(0x03, b"meta", meta)])
                    docs.append(RawBSONDocument(raw))
                    if ok:
                        real_id = idv.replace(piece, real)
                        good[real_id.decode()] = (title.replace(piece, real).decode(),
                                                  (text if where == "key" else b"k").replace(piece, real).decode())
                    else:
                        bad_ids.add((where, off, tail, real))
    client[river].items.insert_many(docs)
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "title": {"path": "title", "type": "text"},
                                       "meta": {"path": "meta", "type": "jsonb"}}}
    fired = []

    def swap(raw):
        """swap puts the hostile bytes in place of the placeholders in the keys and strings of a
        document (same lengths: the BSON lengths stay right)."""
        out, i, end = bytearray(raw[:4]), 4, len(raw) - 1
        while i < end:
            kind, j = raw[i], raw.index(b"\x00", i + 1)
            key = raw[i + 1:j]
            for piece, real in marks.items():
                key = key.replace(piece, real)
            out += bytes([kind]) + key + b"\x00"
            i = j + 1
            if kind == 0x02:
                n = struct.unpack_from("<i", raw, i)[0]
                value = raw[i + 4:i + 4 + n]
                for piece, real in marks.items():
                    value = value.replace(piece, real)
                out += raw[i:i + 4] + value
                i += 4 + n
            elif kind in (0x03, 0x04):
                n = struct.unpack_from("<i", raw, i)[0]
                out += swap(raw[i:i + n])
                i += n
            elif kind == 0x10:
                out += raw[i:i + 4]
                i += 4
            else:
                raise ValueError("unexpected type %d" % kind)
        out += raw[end:]
        assert len(out) == len(raw)
        return bytes(out)

    def policy(name, reply):
        if name in ("find", "getMore"):
            for field in (b"\x04firstBatch\x00", b"\x04nextBatch\x00"):
                at = reply.find(field)
                if at >= 0 and b"meta" in reply:
                    start = at + len(field)
                    n = struct.unpack_from("<i", reply, start)[0]
                    reply = reply[:start] + swap(reply[start:start + n]) + reply[start + n:]
                    fired.append(name)
        return [("send", reply)]

    proxy = EvilProxy(port_of(mongo), policy)
    create_river(pg, river, proxy.uri(), {"batch_size": 50})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.items", river, json.dumps(mapping)))
    try:
        wait_for(lambda: pg.scalar("SELECT phase FROM mongo_river.status WHERE river = %s", (river,)) == "streaming",
                 120, 0.2, "the copy to end")
        wait_synced(pg, river, 60)
        rows = {r[0]: (r[1], r[2]) for r in pg.query(f"SELECT id, title, meta FROM {river}")}
        rejects = pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (river,))
        copied = pg.scalar("SELECT docs_copied FROM mongo_river.status WHERE river = %s", (river,))
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
        proxy.close()
    assert fired
    assert rejects == len(bad_ids), f"{rejects} rejects for {len(bad_ids)} hostile documents"
    assert set(rows) == set(good), sorted(set(rows) ^ set(good))[:5]
    for k, (title, key) in good.items():
        got_title, got_meta = rows[k]
        meta = got_meta if isinstance(got_meta, dict) else json.loads(got_meta)
        assert got_title == title and list(meta) == [key], (k, got_title, meta)
    assert copied == len(good)
