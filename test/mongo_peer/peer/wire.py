"""Wire protocol framing: OP_MSG, legacy OP_QUERY and OP_REPLY."""
import itertools
import struct

import bson

from .values import CODEC, decode

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
OP_COMPRESSED = 2012

MSG_CHECKSUM = 1
MSG_MORE_TO_COME = 2
MSG_EXHAUST_ALLOWED = 1 << 16

HEADER = struct.Struct("<iiii")


class ProtocolError(Exception):
    pass


class Request:
    """Request is one parsed client message."""

    def __init__(self, request_id, opcode):
        """__init__ makes an empty request of an opcode."""
        self.request_id = request_id
        self.opcode = opcode
        self.flags = 0
        self.body = None          # decoded command document (dict)
        self.raw_sequences = {}   # identifier -> list of raw document bytes
        self.full_collection = None  # OP_QUERY only
        self.more_to_come = False


def read_exact(sock, n):
    """read_exact reads n bytes or returns None when the peer closed the socket."""
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(sock):
    """read_message reads and parses one message; None on EOF."""
    head = read_exact(sock, 16)
    if head is None:
        return None
    length, request_id, _response_to, opcode = HEADER.unpack(head)
    if length < 16 or length > 48000000:
        raise ProtocolError("bad message length %d" % length)
    payload = read_exact(sock, length - 16)
    if payload is None:
        return None
    req = Request(request_id, opcode)
    if opcode == OP_MSG:
        _parse_msg(req, payload)
    elif opcode == OP_QUERY:
        _parse_query(req, payload)
    else:
        raise ProtocolError("unsupported opcode %d" % opcode)
    return req


def _doc_len(buf, pos):
    """_doc_len reads the int32 length of the BSON document at pos."""
    return struct.unpack_from("<i", buf, pos)[0]


def _parse_msg(req, payload):
    """_parse_msg parses OP_MSG sections: the body (kind 0) and document sequences (kind 1)."""
    (flags,) = struct.unpack_from("<I", payload, 0)
    req.flags = flags
    req.more_to_come = bool(flags & MSG_MORE_TO_COME)
    end = len(payload) - (4 if flags & MSG_CHECKSUM else 0)
    pos = 4
    while pos < end:
        kind = payload[pos]
        pos += 1
        if kind == 0:
            n = _doc_len(payload, pos)
            req.body = decode(payload[pos:pos + n])
            pos += n
        elif kind == 1:
            size = _doc_len(payload, pos)
            sec_end = pos + size
            p = pos + 4
            z = payload.index(b"\0", p)
            ident = payload[p:z].decode()
            p = z + 1
            docs = []
            while p < sec_end:
                n = _doc_len(payload, p)
                docs.append(payload[p:p + n])
                p += n
            req.raw_sequences.setdefault(ident, []).extend(docs)
            pos = sec_end
        else:
            raise ProtocolError("unknown OP_MSG section kind %d" % kind)
    if req.body is None:
        raise ProtocolError("OP_MSG without a body section")


def _parse_query(req, payload):
    """_parse_query parses a legacy OP_QUERY (unwrapping $query)."""
    (flags,) = struct.unpack_from("<i", payload, 0)
    req.flags = flags
    z = payload.index(b"\0", 4)
    req.full_collection = payload[4:z].decode()
    pos = z + 1 + 8  # numberToSkip, numberToReturn
    n = _doc_len(payload, pos)
    query = decode(payload[pos:pos + n])
    # Legacy wrapped form {$query: {...}, $readPreference: ...}
    if "$query" in query:
        inner = dict(query["$query"])
        for k, v in query.items():
            if k != "$query" and k not in inner:
                inner[k] = v
        query = inner
    req.body = query


_ids = itertools.count(1)


def _new_request_id():
    """_new_request_id returns the next reply request id."""
    return next(_ids) & 0x7FFFFFFF


def encode_msg(response_to, doc_bytes, flags=0):
    """encode_msg frames an OP_MSG reply with one kind-0 section."""
    body = struct.pack("<I", flags) + b"\0" + doc_bytes
    return HEADER.pack(16 + len(body), _new_request_id(), response_to, OP_MSG) + body


def encode_reply(response_to, doc_bytes, flags=0):
    """encode_reply frames a legacy OP_REPLY carrying one document."""
    body = struct.pack("<iqii", flags, 0, 0, 1) + doc_bytes
    return HEADER.pack(16 + len(body), _new_request_id(), response_to, OP_REPLY) + body


def encode_doc(doc):
    """encode_doc encodes a reply document with the peer's codec options."""
    return bson.encode(doc, codec_options=CODEC)
