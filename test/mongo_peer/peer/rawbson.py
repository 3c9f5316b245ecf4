"""Replies built from pre-encoded BSON: batches are concatenated raw documents, never re-encoded.

A cursor batch of N stored documents costs one join of their bytes with the array keys
("0", "1", ... written directly) instead of a bson.encode of N Python objects.
"""
import struct

from bson.raw_bson import RawBSONDocument

from .values import RAW_CODEC, encode

_KEYS = []  # _KEYS[i] is the element header of an embedded document at array index i
_INT32 = struct.Struct("<i")
_INT64 = struct.Struct("<q")


def _keys(n):
    """_keys returns the first n array element headers (type 0x03, index, NUL), cached."""
    if len(_KEYS) < n:
        _KEYS.extend(b"\x03" + str(i).encode() + b"\x00" for i in range(len(_KEYS), n + 1024))
    return _KEYS


def as_bytes(item):
    """as_bytes returns the BSON bytes of a stored document, a RawBSONDocument or a dict."""
    if isinstance(item, (bytes, bytearray)):
        return item
    if isinstance(item, RawBSONDocument):
        return item.raw
    return encode(item)


def array_element(name, raws):
    """array_element returns the bytes of element `name` holding the array of documents raws
    (each a bytes object)."""
    n = len(raws)
    parts = [None] * (2 * n)
    parts[0::2] = _keys(n)[:n]
    parts[1::2] = raws
    body = b"".join(parts)
    return b"\x04" + name.encode() + b"\x00" + _INT32.pack(len(body) + 5) + body + b"\x00"


def _elements(doc):
    """_elements returns the element bytes of a dict (its BSON encoding without the frame)."""
    return encode(doc)[4:-1]


def cursor_reply(key, docs, extra, cid, ns):
    """cursor_reply returns {cursor: {<key>: docs, **extra, id: cid, ns}} with the cursor
    sub-document pre-encoded (a RawBSONDocument), in mongod's field order."""
    if not all(map(bytes.__instancecheck__, docs)):
        docs = [as_bytes(d) for d in docs]
    body = [array_element(key, docs)]
    if extra:
        body.append(_elements(extra))
    body.append(b"\x12id\x00" + _INT64.pack(cid))
    nsb = ns.encode()
    body.append(b"\x02ns\x00" + _INT32.pack(len(nsb) + 1) + nsb + b"\x00")
    inner = b"".join(body)
    raw = _INT32.pack(len(inner) + 5) + inner + b"\x00"
    return {"cursor": RawBSONDocument(raw, RAW_CODEC)}
