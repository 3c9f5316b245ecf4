"""A hostile source's SCRAM challenge asks for 2,000,000,000 PBKDF2 iterations (review 19).

libmongoc computes the iterations the server's challenge names, in one call that nothing interrupts:
with i=2000000000 a backend's verify ignored pg_cancel_backend and a worker ignored stop() and
pg_terminate_backend for many minutes. The reply check refuses a challenge above 1,000,000
iterations: verify fails at once with 08P01 saying so, the worker retries and shows it in
last_error, stop() ends it promptly. The challenge comes in saslStart's reply or, with speculative
authentication, in the handshake's hello reply: the proxy raises the count wherever it is.
"""

import struct
import time

import bson
import psycopg2
import pytest
from bson.codec_options import CodecOptions
from bson.son import SON

from evilproxy import EvilProxy
from hostile_lib import admin_client, port_of
from pgcluster import wait_for
from river import create_river

OP_REPLY = 1
OPTIONS = CodecOptions(document_class=SON)
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}}}


def raise_iterations(payload, count):
    if b",i=" not in payload:
        return payload
    return payload.rpartition(b",i=")[0] + b",i=" + str(count).encode()


class Challenge:
    """Challenge passes every reply, raising a SCRAM challenge's iteration count once on is set."""

    def __init__(self, count):
        self.count, self.on, self.fired = count, False, 0

    def __call__(self, name, reply):
        if not self.on or b"payload" not in reply:
            return [("send", reply)]
        opcode = struct.unpack_from("<i", reply, 12)[0]
        head = 36 if opcode == OP_REPLY else 21  # OP_REPLY's fields, or OP_MSG's flags and kind 0
        length = struct.unpack_from("<i", reply, head)[0]
        doc, rest = bson.decode(reply[head:head + length], OPTIONS), reply[head + length:]
        hit = False
        for holder in (doc, doc.get("speculativeAuthenticate")):
            if isinstance(holder, dict) and isinstance(holder.get("payload"), bytes):
                holder["payload"] = raise_iterations(holder["payload"], self.count)
                hit = True
        if not hit:
            return [("send", reply)]
        self.fired += 1
        out = reply[4:head] + bson.encode(doc) + rest
        return [("send", struct.pack("<i", 4 + len(out)) + out)]


def test_an_unbounded_iteration_count_is_refused(river_pg, auth_source):
    pg, river = river_pg, "hs_scram"
    client = admin_client(auth_source)
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"d{i}", "n": i} for i in range(10)])
    challenge = Challenge(2_000_000_000)
    proxy = EvilProxy(port_of(auth_source), challenge)
    uri = proxy.uri("&authSource=admin&socketTimeoutMS=4000&connectTimeoutMS=2000").replace(
        "mongodb://", "mongodb://river:secret@")
    try:
        create_river(pg, river, uri, {"batch_size": 10})
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river,
                                                                       __import__("json").dumps(MAPPING)))
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '40 s')", (river,))
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        challenge.on = True
        conn = pg.connect()
        conn.autocommit = True
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute("SET statement_timeout = '60s'")
                with pytest.raises(psycopg2.Error) as failed:
                    cur.execute("SELECT count(*) FROM mongo_river.verify(%s)", (river,))
        finally:
            conn.close()
        took = time.monotonic() - started
        assert challenge.fired, "no SCRAM challenge went through the proxy"
        assert failed.value.pgcode == "08P01", failed.value
        assert "SCRAM challenge" in str(failed.value) and "1000000" in str(failed.value), failed.value
        assert took < 10, f"verify took {took:.1f} s"
        # The worker: refused the same way, retrying, and stop() ends it at once.
        pg.query("SELECT mongo_river.start(%s)", (river,))
        error = wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = %s", (river,)),
                         30, 0.2, "the worker's error")
        assert "SCRAM challenge" in error, error
        started = time.monotonic()
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        assert time.monotonic() - started < 5
        # A challenge mongod could send (the peer's own count) works as before.
        challenge.on = False
        pg.query("SELECT mongo_river.start(%s)", (river,))
        client[river].c.insert_one({"_id": "after", "n": 99})
        assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '40 s')", (river,))
        assert pg.scalar(f"SELECT n FROM {river} WHERE id = 'after'") == 99
    finally:
        challenge.on = False
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
        proxy.close()
        client.drop_database(river)
