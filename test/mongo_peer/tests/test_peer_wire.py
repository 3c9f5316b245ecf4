"""Wire protocol: legacy OP_QUERY/OP_REPLY handshake, OP_MSG sections, checksums, error shape."""
import socket
import struct

import bson
import pytest

from peer_helpers import server_address

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013  # [manual:reference/mongodb-wire-protocol/] opcodes


def _crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.fixture
def sock(client):
    host, port = server_address(client)
    s = socket.create_connection((host, port), timeout=10)
    yield s
    s.close()


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "server closed the connection"
        buf += chunk
    return buf


def _roundtrip(s, opcode, payload, request_id=7):
    s.sendall(struct.pack("<iiii", 16 + len(payload), request_id, 0, opcode) + payload)
    length, _rid, response_to, op = struct.unpack("<iiii", _recv_exact(s, 16))
    body = _recv_exact(s, length - 16)
    assert response_to == request_id  # [manual:reference/mongodb-wire-protocol/] responseTo
    return op, body


def _op_msg(s, doc, seqs=(), checksum=False):
    payload = struct.pack("<I", 1 if checksum else 0) + b"\0" + bson.encode(doc)
    for ident, docs in seqs:
        data = ident.encode() + b"\0" + b"".join(bson.encode(d) for d in docs)
        payload += b"\1" + struct.pack("<i", 4 + len(data)) + data
    if checksum:
        header = struct.pack("<iiii", 16 + len(payload) + 4, 9, 0, OP_MSG)
        payload += struct.pack("<I", _crc32c(header + payload))
    op, body = _roundtrip(s, OP_MSG, payload, request_id=9)
    assert op == OP_MSG  # [spec:message/OP_MSG.md] replies to OP_MSG are OP_MSG
    flags = struct.unpack_from("<I", body)[0]
    assert body[4] == 0
    end = len(body) - (4 if flags & 1 else 0)
    return bson.decode(body[5:end])


def test_legacy_op_query_handshake_gets_op_reply(sock):
    q = bson.encode({"isMaster": 1, "client": {"driver": {"name": "raw", "version": "0"}}})
    payload = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + q
    op, body = _roundtrip(sock, OP_QUERY, payload)
    # [manual:reference/mongodb-wire-protocol/] OP_QUERY is answered by OP_REPLY:
    # responseFlags, cursorID, startingFrom, numberReturned, documents.
    assert op == OP_REPLY
    flags, cursor_id, starting, n = struct.unpack_from("<iqii", body)
    assert (cursor_id, starting, n) == (0, 0, 1)
    doc = bson.decode(body[20:])
    # [manual:reference/command/hello/] isMaster answers with ismaster (legacy name).
    assert doc["ok"] == 1 and doc["ismaster"] is True
    assert doc["maxWireVersion"] == 17  # [server:src/mongo/db/wire_version.h] 6.0 == 17


def test_op_msg_document_sequence_and_checksum(sock):
    dbname = "t_wire_seq"
    _op_msg(sock, {"dropDatabase": 1, "$db": dbname})
    # [spec:message/OP_MSG.md] kind 1 section: size, identifier, documents; the identifier
    # names the command argument ("documents" for insert).
    r = _op_msg(sock, {"insert": "c", "$db": dbname}, [("documents", [{"_id": 1}, {"_id": 2}])])
    assert r["ok"] == 1 and r["n"] == 2
    # [spec:message/OP_MSG.md] flag bit 0 checksumPresent: a CRC-32C trails the message.
    r = _op_msg(sock, {"count": "c", "$db": dbname}, checksum=True)
    assert r["ok"] == 1 and r["n"] == 2
    _op_msg(sock, {"dropDatabase": 1, "$db": dbname})


def test_unknown_command_is_command_not_found(sock):
    r = _op_msg(sock, {"noSuchCommandAtAll": 1, "$db": "admin"})
    # [server:src/mongo/base/error_codes.yml] CommandNotFound = 59; error replies carry
    # ok: 0, errmsg, code, codeName ([manual:reference/method/db.runCommand/] response).
    assert r["ok"] == 0
    assert r["code"] == 59 and r["codeName"] == "CommandNotFound"
    assert isinstance(r["errmsg"], str) and r["errmsg"]


def test_no_compression_negotiated(sock):
    r = _op_msg(sock, {"hello": 1, "compression": ["zlib", "snappy", "zstd"], "$db": "admin"})
    # [spec:compression/OP_COMPRESSED.md] the server lists the compressors it agrees to in
    # 'compression'; a server with none enabled leaves the field out.
    if "compression" in r:
        pytest.skip("this server has compression enabled (real mongod default): %r"
                    % r["compression"])
    assert "compression" not in r


def test_more_to_come_gets_no_reply(client, db):
    from pymongo.write_concern import WriteConcern
    coll = db.get_collection("c", write_concern=WriteConcern(w=0))
    # [spec:message/OP_MSG.md] moreToCome on a request: the server sends no reply
    # (unacknowledged writes); the next command on the connection still works.
    coll.insert_one({"_id": 1})
    coll.insert_one({"_id": 2})
    deadline = __import__("time").monotonic() + 5
    while db.c.count_documents({}) < 2 and __import__("time").monotonic() < deadline:
        pass
    assert db.c.count_documents({}) == 2


def test_retryable_write_is_not_applied_twice(sock):
    import uuid
    from bson.binary import Binary
    from bson.int64 import Int64
    lsid = {"id": Binary(uuid.uuid4().bytes, 4)}
    dbname = "t_wire_retry"
    _op_msg(sock, {"dropDatabase": 1, "$db": dbname})
    cmd = {"insert": "c", "documents": [{"_id": 1}], "lsid": lsid, "txnNumber": Int64(7),
           "$db": dbname}
    first = _op_msg(sock, cmd)
    again = _op_msg(sock, cmd)
    # [spec:retryable-writes/retryable-writes.md] a retry with the same lsid and txnNumber
    # returns the original result and does not write again (raw socket: pymongo would put its
    # own session on the command).
    assert first["n"] == 1 and again["n"] == 1 and "writeErrors" not in again
    assert _op_msg(sock, {"count": "c", "$db": dbname})["n"] == 1
    _op_msg(sock, {"dropDatabase": 1, "$db": dbname})
