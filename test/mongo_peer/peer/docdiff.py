"""docdiff computes a $v:2 diff between a pre- and post-image, as mongod does for pipeline updates.

Walking both documents in order: equal fields are skipped, same-named objects/arrays are diffed
recursively (falling back to a 'u' of the whole value when the sub-diff is not smaller), other
changes are 'u'; fields missing from the post-image are 'd', remaining post fields are 'i'.
Arrays diff element-wise ('u<i>'/'s<i>'), and a shorter post array gets 'l' (new length).  When
the whole diff is not smaller than the post-image, the caller logs a replacement instead.
"""
from .values import encode


def _size(v):
    """_size returns a value's encoded BSON size."""
    return len(encode({"": v}))


def _beq(a, b):
    """_beq tells whether two values are the same BSON (type and bytes)."""
    return type(a) is type(b) and _size(a) == _size(b) and encode({"": a}) == encode({"": b})


def _sub(pre, post):
    """_sub diffs two sub-documents or two arrays."""
    if isinstance(pre, dict):
        return doc_diff(pre, post)
    return array_diff(pre, post)


def array_diff(pre, post):
    """array_diff returns the diff of two arrays (u<i>, s<i>, l for a shorter array), or None
    when it would not be smaller than post."""
    entries = {}
    n = 0
    for a, b in zip(pre, post):
        if not _beq(a, b):
            if type(a) is type(b) and isinstance(a, (dict, list)):
                sd = _sub(a, b)
                if sd is None:
                    entries[n] = ("u", b)
                else:
                    entries[n] = ("s", sd)
            else:
                entries[n] = ("u", b)
        n += 1
    for b in post[n:]:
        entries[n] = ("u", b)
        n += 1
    out = {"a": True}
    if len(pre) > len(post):
        out["l"] = len(post)
    for i in sorted(entries):
        kind, v = entries[i]
        out[("u%d" if kind == "u" else "s%d") % i] = v
    return out if _size(out) < _size(post) else None


def doc_diff(pre, post):
    """doc_diff returns the diff document, or None when it would not be smaller than post."""
    d, u, i, subs = {}, {}, {}, {}
    pre_items = list(pre.items())
    post_items = list(post.items())
    pi = qi = 0
    deletes = []
    while pi < len(pre_items) and qi < len(post_items):
        pk, pv = pre_items[pi]
        qk, qv = post_items[qi]
        if pk == qk and _beq(pv, qv):
            pi += 1
            qi += 1
            continue
        if pk == qk:
            if type(pv) is type(qv) and isinstance(pv, (dict, list)):
                sd = _sub(pv, qv)
                if sd is None:
                    u[pk] = qv
                else:
                    subs[pk] = sd
            else:
                u[pk] = qv
            pi += 1
            qi += 1
        else:
            deletes.append(pk)
            pi += 1
    for pk, _ in pre_items[pi:]:
        d[pk] = False
    for qk, qv in post_items[qi:]:
        i[qk] = qv
        if qk in deletes:
            deletes.remove(qk)
    for k in deletes:
        d[k] = False
    out = {}
    if d:
        out["d"] = d
    if u:
        out["u"] = u
    if i:
        out["i"] = i
    for k, v in subs.items():
        out["s" + k] = v
    return out if _size(out) < _size(post) else None
