"""Review 27: retry_rejects on rejects whose raw is not (valid) BSON: truncated, lengths that lie,
nested documents whose lengths run past their parent, _id paths through non-documents. Each must
be kept (not resolved), and no process may die."""

import random
import re
import struct

import bson

from review_helpers import KEY_N_BIGINT as MAPPING
from river import synced_river

DEATH = re.compile(r"terminated by signal|was terminated by exception")


def variants():
    good = bson.encode({"_id": {"_data": "826"}, "operationType": "update", "documentKey": {"_id": "a"},
                        "o2": {"_id": "a"}, "o": {"_id": "a", "n": 1}})
    out = [b"", b"\x00", b"not bson at all", b"\x05\x00\x00\x00\x00", b"\x05\x00\x00\x00\x01",
           struct.pack("<i", 1 << 30) + b"\x00" * 8, struct.pack("<i", -5) + b"\x00",
           b"\x10\x00\x00\x00\x03documentKey\x00" + b"\x00",
           # documentKey whose inner length runs past the outer document
           b"\x1a\x00\x00\x00\x03documentKey\x00\xff\x00\x00\x00\x02_id\x00\x00",
           # o2 a string, o an array holding an _id key
           bson.encode({"o2": "x", "o": [{"_id": "a"}], "documentKey": 5})]
    rng = random.Random(27)
    for _ in range(60):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(4, len(b))] = rng.randrange(256)
        out.append(bytes(b))
    for cut in (5, 9, 20, len(good) - 1):
        out.append(struct.pack("<i", cut) + good[4:cut])
    return out


def test_retry_of_broken_raws(river_pg, mongo):
    pg = river_pg
    river = "r27fuzz"
    offset = len(pg.log())
    with synced_river(pg, mongo, river, MAPPING, [f"{river}.c"], [{"_id": "a", "n": 1}]):
        ids = []
        for raw in variants():
            ids.append(pg.scalar("INSERT INTO mongo_river.rejects (river, source, document_id, operation, raw, error) "
                                 "VALUES (%s, %s, 'a', 'update', %s, 'test') RETURNING id", (river, f"{river}.c", raw)))
        resolved = pg.scalar("SELECT mongo_river.retry_rejects(%s)", (river,))
        deaths = [line for line in pg.log()[offset:].splitlines() if DEATH.search(line)]
        assert not deaths, deaths[:3]
        print("resolved", resolved, "of", len(ids))
        assert pg.query(f'SELECT id, n FROM "{river}"') == [("a", 1)]
