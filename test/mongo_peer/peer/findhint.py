"""find with `hint` and `min`/`max` index bounds (only the `_id` index has semantics here).

A copy that resumes across BSON type brackets reads `find({}).hint({_id: 1}).min({_id: X})`:
the bounds are index keys, compared in BSON order across types (min inclusive, max
exclusive), and the results come in index order.  Errors follow jstests/core/minmax.js.
"""
import operator

from .errors import MongoError
from .query import matches, project, sort_docs
from .values import compare, decode, id_key, order_key

ID_INDEX_NAMES = ("_id_",)
_PLAIN = (15, 35, 40, 45, 47)  # id_key brackets whose keys already sort like compare()
_C_SORTABLE = {10, 15, 35, 40, 45, 47, -1, 5, 127}
_NAN_KEY = (10, "nan")


def _simple_order(k):
    """_simple_order maps an id_key to a key that sorts like values.compare (within and across
    brackets), or None for brackets (documents, binary, regex, code...) that need order_key."""
    t = k[0]
    if t == 10:
        return (10, 0, 0) if k[1] == "nan" else (10, 1, k[1])
    if t in _PLAIN or t in (-1, 5, 127):
        return k
    return None


def id_order(key, raw):
    """id_order returns the index-order sort key of a stored document from its id_key (its
    dict key), decoding the document only for unusual _id types."""
    s = _simple_order(key)
    return s if s is not None else order_key(decode(raw)["_id"])


def value_order(v):
    """value_order returns the sort key id_order gives a document whose _id is v."""
    s = _simple_order(id_key(v))
    return s if s is not None else order_key(v)


def id_sorted(pairs, direction=1):
    """id_sorted orders (key, raw) pairs by _id as the _id index does (descending for -1).
    When every _id is a number (no NaN), string, ObjectId, boolean, date, timestamp, null,
    MinKey or MaxKey, the id_keys themselves sort in BSON order and are compared in C."""
    pairs = list(pairs)
    first = operator.itemgetter(0)
    brackets = set(map(first, map(first, pairs)))
    if brackets <= _C_SORTABLE and not (10 in brackets and _NAN_KEY in map(first, pairs)):
        return sorted(pairs, key=first, reverse=direction < 0)
    return sorted(pairs, key=lambda kv: id_order(kv[0], kv[1]), reverse=direction < 0)


def index_insert(c, key):
    """index_insert notes a key just stored in collection c in c.id_keys, the keys in _id index
    order, as mongod's _id index takes each insert: one that sorts after the last is appended;
    any other drops the order (None), and the next ordered read sorts the keys again."""
    keys = c.id_keys
    if keys is None:
        return
    if key[0] in _C_SORTABLE and key != _NAN_KEY and (not keys or keys[-1] < key):
        keys.append(key)
    else:
        c.id_keys = None


def id_index_keys(c):
    """id_index_keys returns the keys of collection c (its committed documents) in _id index
    order: the kept order without the deleted keys, or a sort (kept for later reads when the
    keys compare in C, as index_insert needs)."""
    keys = c.id_keys
    if keys is not None and c.id_holes:
        keys = c.id_keys = list(filter(c.docs.__contains__, keys))
    c.id_holes = 0
    if keys is None:
        keys = [k for k, _ in id_sorted(c.docs.items())]
        brackets = set(map(operator.itemgetter(0), keys))
        if brackets <= _C_SORTABLE and not (10 in brackets and _NAN_KEY in keys):
            c.id_keys = keys
    return keys


def _index_of(c, hint):
    """_index_of returns "_id", "$natural", "other" or None (no such index) for a hint."""
    if isinstance(hint, str):
        if hint in ID_INDEX_NAMES:
            return "_id"
        specs = c.options.get("_peer_indexes", []) if c is not None else []
        return "other" if any(s.get("name") == hint for s in specs) else None
    if not isinstance(hint, dict) or not hint:
        raise MongoError(2, "hint must be either a string or nested object")
    keys = list(hint)
    if keys[0] == "$natural":
        return "$natural"
    if keys == ["_id"] and hint["_id"] in (1, 1.0):
        return "_id"
    specs = c.options.get("_peer_indexes", []) if c is not None else []
    return "other" if any(dict(s.get("key", {})) == dict(hint) for s in specs) else None


def _check_bounds(mn, mx, index):
    """_check_bounds validates min/max against the hinted index (jstests/core/minmax.js)."""
    if index == "$natural":
        raise MongoError(2, "error processing query: planner returned error :: caused by :: "
                            "min and max are incompatible with $natural")
    if mn is not None and mx is not None and list(mn) != list(mx):
        raise MongoError(51176, "min() and max() must have the same field names")
    if index != "_id":
        raise MongoError(2, "mongo-peer supports min()/max() only with the _id index")
    for b in (mn, mx):
        if b is not None and list(b) != ["_id"]:
            raise MongoError(51174, "The index chosen is not consistent with min/max")
    if mn is not None and mx is not None and compare(mn["_id"], mx["_id"]) >= 0:
        raise MongoError(51175, "Invalid query: max must be greater than min")


def hinted_find(ctx, c, b, flt):
    """hinted_find returns the (raw, doc) results of a find with hint/min/max in index order,
    or None when the find has none of them (or a hint that changes nothing)."""
    hint, mn, mx = b.get("hint"), b.get("min"), b.get("max")
    if hint is None and mn is None and mx is None:
        return None
    if hint is None or hint == {}:
        raise MongoError(51173, "When using min()/max() a hint of which index to use must be "
                                "provided")
    if c is None:
        return []  # a missing collection has no indexes to check: mongod returns nothing
    index = _index_of(c, hint)
    if index is None:
        raise MongoError(2, "error processing query: planner returned error :: caused by :: "
                            "hint provided does not correspond to an existing index")
    if mn is not None or mx is not None:
        _check_bounds(mn, mx, index)
    elif index != "_id":
        return None
    lo = value_order(mn["_id"]) if mn is not None else None
    hi = value_order(mx["_id"]) if mx is not None else None
    out = []
    for key, raw in id_sorted(ctx.writer.scan(c)):
        k = id_order(key, raw)
        if (lo is not None and k < lo) or (hi is not None and k >= hi):
            continue
        d = decode(raw) if flt or b.get("sort") or b.get("projection") else None
        if flt and not matches(d, flt):
            continue
        out.append((raw, d))
    sort = b.get("sort")
    if sort:
        return sort_docs(out, sort, key=lambda t: t[1])
    return out


def hinted_items(ctx, c, b, flt):
    """hinted_items returns the documents (raw, or projected dicts) of a hinted find, or None."""
    hits = hinted_find(ctx, c, b, flt)
    if hits is None:
        return None
    proj = b.get("projection")
    if proj:
        return [project(d, proj) for _, d in hits]
    return [raw for raw, _ in hits]
