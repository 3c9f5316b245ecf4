"""find with `hint` and `min`/`max` index bounds (only the `_id` index has semantics here).

A copy that resumes across BSON type brackets reads `find({}).hint({_id: 1}).min({_id: X})`:
the bounds are index keys, compared in BSON order across types (min inclusive, max
exclusive), and the results come in index order.  Errors follow jstests/core/minmax.js.
"""
from .errors import MongoError
from .query import matches, project, sort_docs
from .values import compare, decode, order_key

ID_INDEX_NAMES = ("_id_",)


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
    index = _index_of(c, hint)
    if index is None:
        raise MongoError(2, "error processing query: planner returned error :: caused by :: "
                            "hint provided does not correspond to an existing index")
    if mn is not None or mx is not None:
        _check_bounds(mn, mx, index)
    elif index != "_id":
        return None
    out = []
    if c is not None:
        for _key, raw in ctx.writer.scan(c):
            d = decode(raw)
            idv = d["_id"]
            if mn is not None and compare(mn["_id"], idv) > 0:
                continue
            if mx is not None and compare(idv, mx["_id"]) >= 0:
                continue
            if flt and not matches(d, flt):
                continue
            out.append((raw, d))
    sort = b.get("sort")
    if sort:
        return sort_docs(out, sort, key=lambda t: t[1])
    out.sort(key=lambda t: order_key(t[1]["_id"]))
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
