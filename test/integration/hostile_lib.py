"""hostile_lib: helpers of the hostile-source tests (from review 20): an authenticated peer, replies decoded and re-encoded
for a proxy policy, and a river whose worker is stopped (so that only the tested backend talks)."""

import json
import time
import struct

import bson
import psycopg2
import pymongo
from bson.codec_options import CodecOptions
from bson.son import SON

from evilproxy import EvilProxy
from river import create_river

OP_REPLY = 1
OPTIONS = CodecOptions(document_class=SON)
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"}}}
URI_OPTIONS = "&authSource=admin&socketTimeoutMS=4000&connectTimeoutMS=2000"


def port_of(source):
    return int(source.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0].rsplit(":", 1)[1])


def admin_client(source):
    return pymongo.MongoClient(source.uri.replace("mongodb://", "mongodb://river:secret@"),
                               serverSelectionTimeoutMS=10000)


def decode(reply):
    """decode returns (head bytes after the length, body document, bytes after the body)."""
    opcode = struct.unpack_from("<i", reply, 12)[0]
    head = 36 if opcode == OP_REPLY else 21  # OP_REPLY's fields, or OP_MSG's flag bits and kind 0
    length = struct.unpack_from("<i", reply, head)[0]
    return reply[4:head], bson.decode(reply[head:head + length], OPTIONS), reply[head + length:]


def encode(prefix, doc, rest):
    out = prefix + bson.encode(doc) + rest
    return struct.pack("<i", 4 + len(out)) + out


class DocRewrite:
    """DocRewrite is a proxy policy: while on, every reply's body goes through change(name, doc),
    which edits doc in place and returns True when it changed it; fired counts the changed replies."""

    def __init__(self, change):
        self.change, self.on, self.fired, self.names = change, False, 0, []

    def __call__(self, name, reply):
        if not self.on:
            return [("send", reply)]
        try:
            prefix, doc, rest = decode(reply)
        except Exception:
            return [("send", reply)]
        if not self.change(name, doc):
            return [("send", reply)]
        self.fired += 1
        self.names.append(name)
        return [("send", encode(prefix, doc, rest))]


def proxied_river(pg, river, source, policy, uri_options=URI_OPTIONS, options=None, stopped=True):
    """proxied_river loads river.c (10 documents), creates river reading it through a proxy with
    policy, maps it, and stops its worker when stopped (the policy is still off). Returns the proxy."""
    client = admin_client(source)
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"d{i}", "n": i} for i in range(10)])
    proxy = EvilProxy(port_of(source), policy)
    uri = proxy.uri(uri_options).replace("mongodb://", "mongodb://river:secret@")
    create_river(pg, river, uri, options or {"batch_size": 10})
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, f"{river}.c", river, json.dumps(MAPPING)))
    if stopped:
        pg.query("SELECT mongo_river.stop(%s)", (river,))
    return proxy


def drop_river(pg, river, proxy):
    try:
        pg.query("SELECT mongo_river.drop_river(%s, true) FROM mongo_river.rivers WHERE river = %s", (river, river))
    finally:
        proxy.close()


def session(pg, timeout="60s"):
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"SET statement_timeout = '{timeout}'")
    return conn


def infer(conn, river):
    """infer runs infer_mapping(river, river.c) in conn and returns its mapping."""
    with conn.cursor() as cur:
        cur.execute("SELECT mongo_river.infer_mapping(%s, %s)", (river, f"{river}.c"))
        return cur.fetchone()[0]


def failing_infer(pg, river, timeout="60s"):
    """failing_infer runs infer in a session of its own, which must fail: returns (the error, the
    seconds it took)."""
    conn = session(pg, timeout)
    started = time.monotonic()
    try:
        infer(conn, river)
    except psycopg2.Error as e:
        return e, time.monotonic() - started
    finally:
        conn.close()
    raise AssertionError("infer_mapping answered")
