"""Positional update paths: '$' (first array element the query matched), '$[]' (all elements)
and '$[<identifier>]' (the elements an arrayFilters entry selects)."""
from .errors import MongoError
from .query import matches


def component_key(p):
    """component_key orders path components: array indexes numerically, then names."""
    return (0, int(p), "") if p.isdigit() else (1, 0, p)


def _positional_index(doc, prefix, query):
    """_positional_index finds the array index the query matched under prefix (for '$')."""
    from .query import get_path
    arr = get_path(doc, prefix)
    if not isinstance(arr, list):
        return None
    conds = []

    def collect(q):
        """collect gathers the query conditions on the array's path (through $and)."""
        for k, v in (q or {}).items():
            if k == "$and":
                for sub in v:
                    collect(sub)
            elif k == prefix:
                conds.append(("", v))
            elif k.startswith(prefix + "."):
                conds.append((k[len(prefix) + 1:], v))
    collect(query)
    if not conds:
        return None
    for i, el in enumerate(arr):
        ok = True
        for rest, v in conds:
            if rest == "":
                if isinstance(v, dict) and "$elemMatch" in v:
                    from .query import _elem_match
                    ok = _elem_match(el, v["$elemMatch"])
                else:
                    ok = matches({"x": el}, {"x": v})
            else:
                ok = isinstance(el, dict) and matches(el, {rest: v})
            if not ok:
                break
        if ok:
            return i
    return None


def _filters_by_ident(array_filters):
    """_filters_by_ident maps each arrayFilters identifier to its filter (9 on duplicates or on
    a filter without a field)."""
    out = {}
    for f in array_filters or []:
        if not isinstance(f, dict) or not f:
            raise MongoError(9, "Cannot use an expression without a top-level field name in "
                                "arrayFilters")
        ident = next(iter(f)).split(".", 1)[0]
        if ident in out:
            raise MongoError(9, "Found multiple array filters with the same top-level field "
                                "name %s" % ident)
        out[ident] = f
    return out


def expand_positional(doc, items, query, array_filters=None):
    """expand_positional rewrites '$', '$[]' and '$[<id>]' path components into concrete array
    indexes."""
    from .query import get_path
    out = []
    for path, op, arg in items:
        parts = path.split(".")
        if not any(c == "$" or c.startswith("$[") for c in parts):
            out.append((path, op, arg))
            continue
        paths = [[]]
        for p in parts:
            if p == "$":
                new = []
                for pre in paths:
                    idx = _positional_index(doc, ".".join(pre), query)
                    if idx is None:
                        raise MongoError(2, "The positional operator did not find the match "
                                            "needed from the query.")
                    new.append(pre + [str(idx)])
                paths = new
            elif p.startswith("$[") and p != "$[]":
                ident = p[2:-1]
                filters = _filters_by_ident(array_filters)
                if ident not in filters:
                    raise MongoError(2, "No array filter found for identifier '%s' in path '%s'"
                                     % (ident, path))
                new = []
                for pre in paths:
                    arr = get_path(doc, ".".join(pre))
                    if not isinstance(arr, list):
                        raise MongoError(2, "The path '%s' must exist in the document in order "
                                            "to apply array updates." % ".".join(pre))
                    new.extend(pre + [str(i)] for i, el in enumerate(arr)
                               if matches({ident: el}, filters[ident]))
                paths = new
            elif p == "$[]":
                new = []
                for pre in paths:
                    arr = get_path(doc, ".".join(pre))
                    if not isinstance(arr, list):
                        raise MongoError(2, "The path '%s' must exist in the document in order "
                                            "to apply array updates." % ".".join(pre))
                    new.extend(pre + [str(i)] for i in range(len(arr)))
                paths = new
            else:
                paths = [pre + [p] for pre in paths]
        out.extend((".".join(pp), op, arg) for pp in paths)
    out.sort(key=lambda t: [component_key(c) for c in t[0].split(".")])
    return out
