"""BSON value helpers: codec options, MongoDB's cross-type order, equality, _id keys."""
import datetime
import math
import re
import struct
import threading

import bson
from bson.binary import Binary, UuidRepresentation
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

# UNSPECIFIED keeps binary subtypes 3 and 4 as Binary so documents round-trip unchanged.
CODEC = CodecOptions(uuid_representation=UuidRepresentation.UNSPECIFIED)
RAW_CODEC = CodecOptions(document_class=RawBSONDocument,
                         uuid_representation=UuidRepresentation.UNSPECIFIED)

MISSING = object()
_SLOW_LOCK = threading.Lock()

EPOCH = datetime.datetime(1970, 1, 1)


DATE_MIN = datetime.datetime(1, 1, 1)
DATE_MAX = datetime.datetime(9999, 12, 31, 23, 59, 59, 999000)
_UNPACK_LONG = struct.Struct("<q").unpack_from


def _get_date_clamped(data, view, position, dummy0, opts, dummy1):
    """_get_date_clamped decodes a BSON date, clamping it to datetime's range."""
    ms = _UNPACK_LONG(data, position)[0]
    try:
        return bson._millis_to_datetime(ms, opts), position + 8
    except (OverflowError, ValueError):
        return (DATE_MIN if ms < 0 else DATE_MAX), position + 8


_SLOW_GETTERS = dict(bson._ELEMENT_GETTER)
_SLOW_GETTERS[bson._maybe_ord(bson.BSONDAT)] = _get_date_clamped


def _py_element_to_dict(data, view, position, obj_end, opts):
    """_py_element_to_dict decodes one element with the clamping date getter."""
    element_type = data[position]
    position += 1
    element_name, position = bson._get_c_string(data, view, position, opts)
    value, position = _SLOW_GETTERS[element_type](data, view, position, obj_end, opts,
                                                  element_name)
    return element_name, value, position


def _slow_decode(raw):
    """_slow_decode is bson's pure-Python decoder with dates outside datetime's range clamped."""
    data, view = bson.get_data_and_view(raw)
    _, end = bson._get_object_size(data, 0, len(data))
    with _SLOW_LOCK:
        saved = bson._element_to_dict
        bson._element_to_dict = _py_element_to_dict
        try:
            return bson._elements_to_dict(data, view, 4, end, CODEC)
        finally:
            bson._element_to_dict = saved


def decode(raw):
    """decode turns raw BSON into a dict; out-of-range dates decode clamped (see README)."""
    try:
        return bson.decode(raw, CODEC)
    except bson.errors.InvalidBSON as e:
        # A date past datetime's range: ValueError ("year ... is out of range") or, for the
        # int64 extremes (the river's whole-bracket resume filter sends Date(-2**63)),
        # OverflowError ("Python int too large to convert to C int").
        if not isinstance(e.__context__, (OverflowError, ValueError)) and \
                "out of range" not in str(e) and "year" not in str(e):
            raise
        return _slow_decode(raw)


def encode(doc):
    """encode encodes a document with the peer's codec options."""
    return bson.encode(doc, codec_options=CODEC)


def raw_doc(raw):
    """raw_doc wraps raw BSON bytes as a RawBSONDocument (embedded unchanged by bson.encode)."""
    return RawBSONDocument(raw, RAW_CODEC)


def is_number(v):
    """is_number tells whether v is a BSON number (not a boolean)."""
    return isinstance(v, (int, float, Decimal128)) and not isinstance(v, bool)


def canonical_type(v):
    """canonical_type ranks a value as bsontypes.h canonicalizeBSONType does."""
    if isinstance(v, bool):
        return 40
    if v is None:
        return 5
    if is_number(v):
        return 10
    if isinstance(v, Code):  # before str: pymongo's Code is a str
        return 65 if v.scope else 60
    if isinstance(v, str):
        return 15
    if isinstance(v, (dict, RawBSONDocument)):
        return 20
    if isinstance(v, (list, tuple)):
        return 25
    if isinstance(v, (bytes, Binary)):
        return 30
    if isinstance(v, ObjectId):
        return 35
    if isinstance(v, datetime.datetime):
        return 45
    if isinstance(v, Timestamp):
        return 47
    if isinstance(v, (Regex, re.Pattern)):
        return 50
    if isinstance(v, DBRef):
        return 20  # a {$ref, $id} sub-document decodes as DBRef
    if isinstance(v, MinKey):
        return -1
    if isinstance(v, MaxKey):
        return 127
    return 100


def num_value(v):
    """num_value returns a Python number comparable across int/float/Decimal128."""
    if isinstance(v, Decimal128):
        d = v.to_decimal()
        if d.is_nan():
            return float("nan")
        return d
    return v


def date_ms(d):
    """date_ms returns a datetime as milliseconds since the epoch."""
    if d.tzinfo is not None:
        d = d.replace(tzinfo=None) - d.utcoffset()
    delta = d - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _cmp(a, b):
    """_cmp returns -1, 0 or 1 as a < b, a == b, a > b."""
    return (a > b) - (a < b)


def compare(a, b):
    """compare orders two BSON values like mongod's BSONElement::woCompare (no collation)."""
    ta, tb = canonical_type(a), canonical_type(b)
    if ta != tb:
        return _cmp(ta, tb)
    if ta == 10:
        x, y = num_value(a), num_value(b)
        xn = isinstance(x, float) and math.isnan(x)
        yn = isinstance(y, float) and math.isnan(y)
        if xn or yn:
            return _cmp(not xn, not yn)
        return _cmp(x, y)
    if ta == 15:
        return _cmp(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
    if ta == 20:
        return compare_docs(a.as_doc() if isinstance(a, DBRef) else a,
                            b.as_doc() if isinstance(b, DBRef) else b)
    if ta == 25:
        for x, y in zip(a, b):
            c = compare(x, y)
            if c:
                return c
        return _cmp(len(a), len(b))
    if ta == 30:
        sa = a.subtype if isinstance(a, Binary) else 0
        sb = b.subtype if isinstance(b, Binary) else 0
        c = _cmp(len(a), len(b)) or _cmp(sa, sb)
        return c or _cmp(bytes(a), bytes(b))
    if ta == 35:
        return _cmp(a.binary, b.binary)
    if ta == 40:
        return _cmp(a, b)
    if ta == 45:
        return _cmp(date_ms(a), date_ms(b))
    if ta == 47:
        return _cmp((a.time, a.inc), (b.time, b.inc))
    if ta == 50:
        pa = a.pattern if isinstance(a.pattern, str) else a.pattern.decode()
        pb = b.pattern if isinstance(b.pattern, str) else b.pattern.decode()
        return _cmp(pa, pb) or _cmp(str(a.flags), str(b.flags))
    if ta in (60, 65):
        return _cmp(str(a), str(b))
    if ta == 55:
        return _cmp((a.collection, str(a.id)), (b.collection, str(b.id)))
    return 0


def compare_docs(a, b):
    """compare_docs orders two documents field by field (type, name, value), as mongod does."""
    ia, ib = list(a.items()), list(b.items())
    for (ka, va), (kb, vb) in zip(ia, ib):
        c = _cmp(canonical_type(va), canonical_type(vb))
        if c:
            return c
        c = _cmp(ka.encode(), kb.encode())
        if c:
            return c
        c = compare(va, vb)
        if c:
            return c
    return _cmp(len(ia), len(ib))


def values_equal(a, b):
    """values_equal tells whether two values compare equal (1 == 1.0)."""
    return compare(a, b) == 0


def id_key(v):
    """id_key makes a hashable key with mongod's _id equality (1 == 1.0, field order matters)."""
    t = canonical_type(v)
    if t == 10:
        x = num_value(v)
        if isinstance(x, float) and math.isnan(x):
            return (10, "nan")
        return (10, x)
    if t == 20:
        if isinstance(v, DBRef):
            v = v.as_doc()
        return (20, tuple((k, id_key(x)) for k, x in v.items()))
    if t == 25:
        return (25, tuple(id_key(x) for x in v))
    if t == 30:
        return (30, a_subtype(v), bytes(v))
    if t == 45:
        return (45, date_ms(v))
    if t == 47:
        return (47, v.time, v.inc)
    if t == 50:
        return (50, str(v.pattern), str(v.flags))
    if t in (-1, 127, 5):
        return (t,)
    if t in (55, 60, 65, 100):
        return (t, repr(v))
    return (t, v)


def a_subtype(v):
    """a_subtype returns a binary value's subtype (0 for plain bytes)."""
    return v.subtype if isinstance(v, Binary) else 0


def element_depth(v):
    """element_depth returns the deepest level holding an element inside v: 1 for a document
    with only scalars, 0 for an empty one or a scalar (storage_validation's recursionLevel)."""
    if isinstance(v, dict):
        vals = v.values()
    elif isinstance(v, list):
        vals = v
    else:
        return 0
    return max((1 + element_depth(x) for x in vals), default=0)


def type_name(v):
    """type_name returns the $type alias of a value (double, string, object...)."""
    t = canonical_type(v)
    if t == 10:
        if isinstance(v, float):
            return "double"
        if isinstance(v, Decimal128):
            return "decimal"
        if isinstance(v, Int64) or not (-2**31 <= v < 2**31):
            return "long"
        return "int"
    return {5: "null", 15: "string", 20: "object", 25: "array", 30: "binData",
            35: "objectId", 40: "bool", 45: "date", 47: "timestamp", 50: "regex",
            -1: "minKey", 127: "maxKey", 60: "javascript", 65: "javascriptWithScope",
            55: "dbPointer"}.get(t, "unknown")


class _EmptyArray:
    """EMPTY_ARRAY stands for [] as a sort key: it sorts like undefined (after MinKey, before null)."""


EMPTY_ARRAY = _EmptyArray()


def order_key(v):
    """order_key maps a BSON value to a Python key that sorts like compare()."""
    if v is EMPTY_ARRAY:
        return (0,)
    t = canonical_type(v)
    if t == 10:
        x = num_value(v)
        if isinstance(x, float) and math.isnan(x):
            return (10, 0, 0)
        return (10, 1, x)
    if t == 15:
        return (15, v.encode("utf-8", "surrogatepass"))
    if t == 20:
        if isinstance(v, DBRef):
            v = v.as_doc()
        return (20, tuple((canonical_type(x), k.encode(), order_key(x)) for k, x in v.items()))
    if t == 25:
        return (25, tuple(order_key(x) for x in v))
    if t == 30:
        return (30, len(v), a_subtype(v), bytes(v))
    if t == 35:
        return (35, v.binary)
    if t == 40:
        return (40, bool(v))
    if t == 45:
        return (45, date_ms(v))
    if t == 47:
        return (47, v.time, v.inc)
    if t == 50:
        p = v.pattern if isinstance(v.pattern, str) else v.pattern.decode()
        return (50, p, str(v.flags))
    if t in (-1, 5, 127):
        return (t,)
    return (t, str(v))
