"""Query filters, sort and projection with MongoDB's comparison semantics."""
import re

from bson.regex import Regex

from .errors import MongoError
from .values import (MISSING, canonical_type, compare, is_number, num_value, order_key,
                     type_name, values_equal)


def lookup(value, parts, i=0, out=None):
    """lookup collects the values a dotted path reaches, traversing arrays of documents."""
    if out is None:
        out = []
    if i == len(parts):
        out.append(value)
        return out
    p = parts[i]
    if isinstance(value, dict):
        if p in value:
            lookup(value[p], parts, i + 1, out)
        else:
            out.append(MISSING)
    elif isinstance(value, list):
        found = False
        if p.isdigit():
            idx = int(p)
            if idx < len(value):
                lookup(value[idx], parts, i + 1, out)
                found = True
        for el in value:
            if isinstance(el, dict):
                lookup(el, parts, i, out)
                found = True
        if not found:
            out.append(MISSING)
    else:
        out.append(MISSING)
    return out


def get_path(doc, path):
    """get_path returns the value at a dotted path without array expansion (MISSING if absent)."""
    cur = doc
    for p in path.split("."):
        if isinstance(cur, dict):
            if p not in cur:
                return MISSING
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            return MISSING
    return cur


def _expand(cands):
    """_expand yields each candidate and, for arrays, each of their elements."""
    for v in cands:
        if v is MISSING:
            continue
        yield v
        if isinstance(v, list):
            for el in v:
                yield el


def _regex(r):
    """_regex compiles a BSON or Python regular expression."""
    if isinstance(r, re.Pattern):
        return r
    if isinstance(r, Regex):
        return r.try_compile()
    raise MongoError(2, "$regex has to be a string")


def _regex_from(pattern, options=""):
    """_regex_from compiles a pattern with MongoDB's option letters (i, m, x, s)."""
    flags = 0
    for ch in options or "":
        flags |= {"i": re.I, "m": re.M, "x": re.X, "s": re.S}.get(ch, 0)
    if isinstance(pattern, (Regex, re.Pattern)):
        r = _regex(pattern)
        return re.compile(r.pattern, r.flags | flags)
    return re.compile(pattern, flags)


def _is_regex(v):
    """_is_regex tells whether v is a regular expression."""
    return isinstance(v, (Regex, re.Pattern))


def _eq_one(v, target):
    """_eq_one tells whether one value equals a target (a regex matches strings)."""
    if _is_regex(target):
        if isinstance(v, str):
            return _regex(target).search(v) is not None
        return _is_regex(v) and compare(v, target) == 0
    return values_equal(v, target)


def _eq(cands, target):
    """_eq tells whether any candidate equals the target (null also matches missing)."""
    if target is None:
        if any(v is MISSING or v is None for v in cands):
            return True
    for v in _expand(cands):
        if _eq_one(v, target):
            return True
    return False


_FAST = (str, int, float)


def _cmp_op(cands, target, test):
    """_cmp_op applies $gt/$gte/$lt/$lte with type bracketing to the candidates."""
    ttype = type(target)
    if ttype in _FAST and len(cands) == 1 and type(cands[0]) is ttype and \
            not (ttype is float and (target != target or cands[0] != cands[0])):
        # Fast path: one plain str/int/float value against the same type (no NaN).
        v = cands[0]
        return test((v > target) - (v < target))
    tt = canonical_type(target)
    if target is None and test(0):  # $gte/$lte null match null and missing
        if any(v is MISSING or v is None for v in cands):
            return True
    for v in _expand(cands):
        tv = canonical_type(v)
        if tv == tt or tt in (-1, 127):
            if test(compare(v, target)):
                return True
    return False


def _in(cands, targets):
    """_in tells whether any candidate equals one of the targets ($in)."""
    if not isinstance(targets, list):
        raise MongoError(2, "$in needs an array")
    return any(_eq(cands, t) for t in targets)


TYPE_ALIASES = {
    "double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6,
    "objectId": 7, "bool": 8, "date": 9, "null": 10, "regex": 11, "dbPointer": 12,
    "javascript": 13, "symbol": 14, "javascriptWithScope": 15, "int": 16, "timestamp": 17,
    "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}


def _type_matches(v, t):
    """_type_matches tells whether a value has a $type (alias, number or 'number')."""
    if t == "number":
        return is_number(v)
    if isinstance(t, str):
        t = TYPE_ALIASES.get(t)
    name = type_name(v)
    return TYPE_ALIASES.get(name) == int(t)


def match_op(doc_cands, op, arg, expr):
    """match_op evaluates one query operator against the candidate values of a path."""
    c = doc_cands
    if op == "$eq":
        return _eq(c, arg)
    if op == "$ne":
        return not _eq(c, arg)
    if op == "$gt":
        return _cmp_op(c, arg, lambda r: r > 0)
    if op == "$gte":
        return _cmp_op(c, arg, lambda r: r >= 0)
    if op == "$lt":
        return _cmp_op(c, arg, lambda r: r < 0)
    if op == "$lte":
        return _cmp_op(c, arg, lambda r: r <= 0)
    if op == "$in":
        return _in(c, arg)
    if op == "$nin":
        return not _in(c, arg)
    if op == "$exists":
        present = any(v is not MISSING for v in c)
        return present if arg else not present
    if op == "$not":
        if _is_regex(arg):
            return not _eq(c, arg)
        if not isinstance(arg, dict):
            raise MongoError(2, "$not needs a regex or a document")
        return not _match_ops(c, arg)
    if op == "$regex":
        r = _regex_from(arg, expr.get("$options", ""))
        return any(isinstance(v, str) and r.search(v) for v in _expand(c))
    if op == "$options":
        return True
    if op == "$size":
        return any(isinstance(v, list) and len(v) == arg for v in c if v is not MISSING)
    if op == "$all":
        if not arg:
            return False
        return all(_eq(c, t) if not (isinstance(t, dict) and "$elemMatch" in t)
                   else match_op(c, "$elemMatch", t["$elemMatch"], t) for t in arg)
    if op == "$elemMatch":
        for v in c:
            if not isinstance(v, list):
                continue
            for el in v:
                if _elem_match(el, arg):
                    return True
        return False
    if op == "$type":
        types = arg if isinstance(arg, list) else [arg]
        for v in _expand(c):
            if any(_type_matches(v, t) for t in types):
                return True
        return False
    if op == "$mod":
        d, r = arg
        return any(is_number(v) and int(num_value(v)) % int(d) == int(r) for v in _expand(c))
    if op == "$comment":
        return True
    raise MongoError(2, "unknown operator: %s" % op)


def _elem_match(el, arg):
    """_elem_match tells whether an array element satisfies an $elemMatch argument."""
    if arg and all(k.startswith("$") for k in arg) and not any(k in ("$and", "$or", "$nor") for k in arg):
        return _match_ops([el], arg)
    return isinstance(el, dict) and matches(el, arg)


def _match_ops(cands, expr):
    """_match_ops tells whether the candidates satisfy every operator of expr."""
    return all(match_op(cands, op, arg, expr) for op, arg in expr.items())


def _is_op_doc(v):
    """_is_op_doc tells whether v is an operator document like {$gt: 1}."""
    if isinstance(v, dict) and v:
        first = next(iter(v))
        return first.startswith("$") and first not in ("$ref", "$id", "$db")
    return False


def matches(doc, flt):
    """matches tells whether doc satisfies the query filter flt."""
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(doc, f) for f in cond):
                return False
        elif key == "$or":
            if not any(matches(doc, f) for f in cond):
                return False
        elif key == "$nor":
            if any(matches(doc, f) for f in cond):
                return False
        elif key in ("$comment",):
            continue
        elif key == "$expr":
            from .aggregate import evaluate, _truthy
            if not _truthy(evaluate(cond, doc)):
                return False
        elif key == "$where" or key == "$text":
            raise MongoError(2, "%s is not supported by mongo-peer" % key)
        elif key.startswith("$"):
            raise MongoError(2, "unknown top level operator: %s" % key)
        else:
            cands = lookup(doc, key.split("."))
            if _is_op_doc(cond):
                if not _match_ops(cands, cond):
                    return False
            elif not _eq(cands, cond):
                return False
    return True


def validate_filter(flt):
    """validate_filter refuses a filter that is not a document (2 BadValue)."""
    if not isinstance(flt, dict):
        raise MongoError(2, "filter must be an object")


def _sort_value(doc, path, direction):
    """_sort_value returns a document's sort key for a path (min or max array element)."""
    cands = lookup(doc, path.split("."))
    vals = []
    for v in cands:
        if v is MISSING:
            vals.append(None)
        elif isinstance(v, list):
            if not v:
                vals.append(_EMPTY_ARRAY)
            vals.extend(v)
        else:
            vals.append(v)
    if not vals:
        return None
    best = vals[0]
    for v in vals[1:]:
        c = _cmpk(v, best)
        if (direction > 0 and c < 0) or (direction < 0 and c > 0):
            best = v
    return best


from .values import EMPTY_ARRAY as _EMPTY_ARRAY  # noqa: E402


def _cmpk(a, b):
    """_cmpk compares two values by their order keys."""
    return (order_key(a) > order_key(b)) - (order_key(a) < order_key(b))


def sort_docs(docs, spec, key=lambda d: d):
    """sort_docs orders docs by a sort spec {path: 1|-1}; arrays use min (asc) / max (desc)."""
    items = list(spec.items())
    if not items:
        return list(docs)
    if items[0][0] == "$natural":
        return list(docs) if items[0][1] >= 0 else list(docs)[::-1]
    for _, d in items:
        if isinstance(d, dict):
            raise MongoError(2, "$meta sort is not supported by mongo-peer")
    out = list(docs)
    # Stable sorts from the last key to the first give the compound order.
    for path, d in reversed(items):
        d = 1 if d >= 0 else -1
        out.sort(key=lambda x: order_key(_sort_value(key(x), path, d)), reverse=d < 0)
    return out


def project(doc, proj):
    """project applies an inclusion or exclusion projection (with $slice) to a decoded doc."""
    if not proj:
        return doc
    include_id = True
    incl, excl, slices = [], [], {}
    for k, v in proj.items():
        if isinstance(v, dict):
            if "$slice" in v:
                slices[k] = v["$slice"]
                continue
            raise MongoError(2, "projection operator %s is not supported by mongo-peer" % list(v)[0])
        on = bool(v) if not isinstance(v, str) else True
        if k == "_id":
            include_id = on
            continue
        (incl if on else excl).append(k)
    if incl and excl:
        raise MongoError(31254, "Cannot do exclusion on field %s in inclusion projection" % excl[0])
    if incl:
        out = {}
        if include_id and "_id" in doc:
            out["_id"] = doc["_id"]
        tree = _path_tree(incl + list(slices))
        res = _include(doc, tree)
        for k, v in res.items():
            if k != "_id":
                out[k] = v
    else:
        out = _exclude(doc, _path_tree(excl))
        if not include_id:
            out.pop("_id", None)
    for k, n in slices.items():
        _apply_slice(out, k.split("."), n)
    return out


def _path_tree(paths):
    """_path_tree turns dotted projection paths into a nested dict."""
    tree = {}
    for p in paths:
        node = tree
        parts = p.split(".")
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                node[part] = True
            else:
                nxt = node.get(part)
                if nxt is True:
                    break
                node = node.setdefault(part, {})
    return tree


def _include(doc, tree):
    """_include keeps the fields of an inclusion projection tree."""
    out = {}
    for k, v in doc.items():
        if k not in tree:
            continue
        t = tree[k]
        if t is True:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _include(v, t)
        elif isinstance(v, list):
            out[k] = [_include(e, t) for e in v if isinstance(e, dict)]
    return out


def _exclude(doc, tree):
    """_exclude drops the fields of an exclusion projection tree."""
    out = {}
    for k, v in doc.items():
        t = tree.get(k)
        if t is True:
            continue
        if t is None:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _exclude(v, t)
        elif isinstance(v, list):
            out[k] = [_exclude(e, t) if isinstance(e, dict) else e for e in v]
        else:
            out[k] = v
    return out


def _apply_slice(doc, parts, n):
    """_apply_slice applies a $slice projection to the array at parts."""
    cur = doc
    for p in parts[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        cur = cur[p]
    if not isinstance(cur, dict):
        return
    v = cur.get(parts[-1])
    if not isinstance(v, list):
        return
    if isinstance(n, list):
        skip, lim = n
        if skip < 0:
            skip = max(0, len(v) + skip)
        cur[parts[-1]] = v[skip:skip + lim]
    elif n >= 0:
        cur[parts[-1]] = v[:n]
    else:
        cur[parts[-1]] = v[n:]


def raw_needles(flt):
    """raw_needles returns the encoded string values of flt's top-level string equalities: each
    must occur in the raw BSON of a matching document (as the field or as an element of it), so
    documents lacking one can be skipped without decoding."""
    import struct
    out = []
    if not isinstance(flt, dict):
        return out
    for k, v in flt.items():
        if isinstance(v, str) and not k.startswith("$") and "." not in k:
            data = v.encode("utf-8")
            out.append(struct.pack("<i", len(data) + 1) + data + b"\x00")
    return out


def reads_only(flt, fields):
    """reads_only tells whether a filter reads no top-level field but those in fields (through
    $and/$or/$nor; any other operator, such as $expr, counts as reading everything)."""
    if not isinstance(flt, dict):
        return False
    for k, v in flt.items():
        if k in ("$and", "$or", "$nor"):
            if not isinstance(v, list) or not all(reads_only(x, fields) for x in v):
                return False
        elif k.startswith("$") or k.split(".")[0] not in fields:
            return False
    return True
