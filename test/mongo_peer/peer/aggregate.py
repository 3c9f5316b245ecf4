"""aggregate: $changeStream delegation and a small set of pipeline stages and expressions."""
import copy
import functools
import random

from bson.int64 import Int64

from .cursors import Cursor, batch_reply
from .errors import MongoError
from .query import MISSING, get_path, matches, project, sort_docs
from .values import compare, is_number, num_value, values_equal
from . import docdiff


def cmd_aggregate(ctx):
    """cmd_aggregate runs aggregate: change streams, $collStats, or stages over a collection."""
    b = ctx.body
    coll = b["aggregate"]
    pipeline = b.get("pipeline")
    if not isinstance(pipeline, list):
        raise MongoError(14, "'pipeline' option must be specified as an array")
    if "cursor" not in b and not b.get("explain"):
        raise MongoError(9, "The 'cursor' option is required, except for aggregate with the "
                            "explain argument")
    for i, st in enumerate(pipeline):
        if not isinstance(st, dict) or len(st) != 1:
            raise MongoError(40323, "A pipeline stage specification object must contain exactly "
                                    "one field.")
        if "$changeStream" in st and i != 0:
            raise MongoError(40602, "$changeStream is only valid as the first stage in a pipeline.")
    if pipeline and "$changeStream" in pipeline[0]:
        from .changestream import open_change_stream
        return open_change_stream(ctx, coll, pipeline, b.get("cursor"))
    if coll == 1:
        raise MongoError(73, "mongo-peer: aggregate: 1 is only supported with $changeStream")
    if pipeline and "$collStats" in pipeline[0]:
        docs = [_coll_stats(ctx, coll, pipeline[0]["$collStats"])]
        pipeline = pipeline[1:]
    elif ctx.db == "local" and coll == "oplog.rs":
        from .values import decode
        docs = [decode(r) for r in ctx.store.oplog.live_raws()]
    else:
        c = ctx.writer.coll(ctx.db, coll)
        from .values import decode
        docs = [decode(raw) for _, raw in ctx.writer.scan(c)] if c is not None else []
    if pipeline and next(iter(pipeline[-1])) in ("$out", "$merge"):
        raise MongoError(115, "mongo-peer does not support $out/$merge")
    docs = run_stages(docs, pipeline, ctx)
    cur = Cursor("%s.%s" % (ctx.db, coll), docs)
    bs = (b.get("cursor") or {}).get("batchSize")
    return batch_reply(ctx.server, cur, 101 if bs is None else bs, None, True)


def _coll_stats(ctx, coll, spec):
    """_coll_stats answers a leading $collStats stage (count and storageStats only)."""
    import datetime
    c = ctx.store.coll(ctx.db, coll)
    if c is None and not (ctx.db == "local" and coll == "oplog.rs"):
        raise MongoError(26, "Unable to retrieve storageStats in $collStats stage :: caused by :: "
                             "Collection [%s.%s] not found." % (ctx.db, coll))
    raws = ctx.store.oplog.live_raws() if c is None else list(c.docs.values())
    out = {"ns": "%s.%s" % (ctx.db, coll), "host": ctx.server.address,
           "localTime": datetime.datetime.utcnow()}
    size = sum(len(r) for r in raws)
    if "count" in spec:
        out["count"] = len(raws)
    if "storageStats" in spec:
        out["storageStats"] = {"size": size, "count": len(raws), "storageSize": size,
                               "nindexes": 1, "capped": c is None}
    return out


def run_stages(docs, pipeline, ctx):
    """run_stages runs pipeline stages over a list of decoded documents."""
    for st in pipeline:
        name, arg = next(iter(st.items()))
        if name == "$match":
            docs = [d for d in docs if matches(d, arg)]
        elif name == "$project":
            docs = [_project(d, arg) for d in docs]
        elif name in ("$addFields", "$set"):
            docs = [_add_fields(d, arg) for d in docs]
        elif name == "$unset":
            fields = [arg] if isinstance(arg, str) else arg
            docs = [project(d, {f: 0 for f in fields}) for d in docs]
        elif name == "$sort":
            docs = sort_docs(docs, arg)
        elif name == "$skip":
            docs = docs[int(arg):]
        elif name == "$limit":
            docs = docs[:int(arg)]
        elif name == "$count":
            docs = [{arg: len(docs)}] if docs else []
        elif name == "$sample":
            n = int(arg.get("size", 0))
            docs = random.sample(docs, min(n, len(docs)))
        elif name == "$group":
            docs = _group(docs, arg)
        elif name in ("$replaceRoot", "$replaceWith"):
            expr = arg["newRoot"] if name == "$replaceRoot" else arg
            new = []
            for d in docs:
                v = evaluate(expr, d)
                if not isinstance(v, dict):
                    raise MongoError(40228, "'newRoot' expression must evaluate to an object")
                new.append(v)
            docs = new
        elif name == "$unwind":
            docs = _unwind(docs, arg)
        else:
            raise MongoError(40324, "Unrecognized pipeline stage name: '%s'" % name)
    return docs


def _flatten_projection(spec, prefix=""):
    """_flatten_projection turns nested projection documents ({a: {b: 1}}) into dotted paths;
    values that are expressions stay as they are."""
    out = {}
    for k, v in spec.items():
        path = prefix + k
        if isinstance(v, dict) and v and not next(iter(v)).startswith("$"):
            out.update(_flatten_projection(v, path + "."))
        else:
            out[path] = v
    return out


def _project(d, spec):
    """_project applies a $project stage (inclusion, exclusion and computed fields)."""
    spec = _flatten_projection(spec)
    simple = {}
    computed = {}
    for k, v in spec.items():
        if isinstance(v, (bool, int, float)) and not isinstance(v, dict):
            simple[k] = v
        else:
            computed[k] = v
    if not computed:
        return project(d, simple)
    # Computed fields make it an inclusion projection: _id (unless excluded), the included
    # fields and the computed ones; nothing else of the input survives.
    excluded = [k for k, v in simple.items() if not v and k != "_id"]
    if excluded:
        raise MongoError(31254, "Invalid $project :: caused by :: Cannot do exclusion on field "
                                "%s in inclusion projection" % excluded[0])
    inclusion = {k: v for k, v in simple.items() if v and k != "_id"}
    out = {}
    if simple.get("_id", 1) and "_id" in d:
        out["_id"] = d["_id"]
    if inclusion:
        inclusion["_id"] = 0
        out.update(project(d, inclusion))
    for k, expr in computed.items():
        _set_path(out, k, evaluate(expr, d))
    return out


def _add_fields(d, spec):
    """_add_fields applies $addFields/$set to a copy of a document."""
    out = copy.deepcopy(d)
    for k, expr in spec.items():
        v = evaluate(expr, d)
        if v is MISSING:
            continue
        _set_path(out, k, v)
    return out


def _set_path(doc, path, v):
    """_set_path sets a dotted path as $addFields does: through arrays, in every element."""
    _set_parts(doc, path.split("."), v)


def _set_parts(cur, parts, v):
    """_set_parts sets (or removes, for $$REMOVE) a computed field along parts."""
    p = parts[0]
    if len(parts) == 1:
        if v is MISSING:
            cur.pop(p, None)
        else:
            cur[p] = copy.deepcopy(v)
        return
    nxt = cur.get(p)
    if isinstance(nxt, list):
        for i, el in enumerate(nxt):
            if not isinstance(el, dict):
                el = {}
                nxt[i] = el
            _set_parts(el, parts[1:], v)
        return
    if not isinstance(nxt, dict):
        nxt = {}
        cur[p] = nxt
    _set_parts(nxt, parts[1:], v)


def evaluate(expr, doc):
    """evaluate computes an aggregation expression against doc (a small subset)."""
    if isinstance(expr, str):
        if expr.startswith("$$"):
            if expr == "$$ROOT" or expr == "$$CURRENT":
                return doc
            if expr == "$$REMOVE":
                return MISSING
            raise MongoError(17276, "Use of undefined variable: %s" % expr[2:])
        if expr.startswith("$"):
            return get_path(doc, expr[1:])
        return expr
    if isinstance(expr, list):
        return [evaluate(e, doc) for e in expr]
    if isinstance(expr, dict):
        if len(expr) == 1 and next(iter(expr)).startswith("$"):
            op, arg = next(iter(expr.items()))
            return _operator(op, arg, doc)
        return {k: evaluate(v, doc) for k, v in expr.items()}
    return expr


def _args(arg, doc):
    """_args evaluates an operator's arguments (one or a list), missing values as null."""
    vals = [evaluate(a, doc) for a in (arg if isinstance(arg, list) else [arg])]
    return [None if v is MISSING else v for v in vals]


def _operator(op, arg, doc):
    """_operator evaluates one expression operator."""
    if op in ("$literal", "$const"):
        return arg
    a = _args(arg, doc)
    if op in ("$add", "$sum"):
        nums = [x for x in (a[0] if op == "$sum" and len(a) == 1 and isinstance(a[0], list) else a)
                if is_number(x)]
        return _sum(nums)
    if op == "$subtract":
        return num_value(a[0]) - num_value(a[1])
    if op == "$multiply":
        r = 1
        for x in a:
            r = r * num_value(x)
        return r
    if op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$cmp"):
        c = compare(a[0], a[1])
        return {"$eq": c == 0, "$ne": c != 0, "$gt": c > 0, "$gte": c >= 0, "$lt": c < 0,
                "$lte": c <= 0, "$cmp": c}[op]
    if op == "$and":
        return all(_truthy(x) for x in a)
    if op == "$or":
        return any(_truthy(x) for x in a)
    if op == "$not":
        return not _truthy(a[0])
    if op == "$cond":
        if isinstance(arg, dict):
            c, t, f = arg["if"], arg["then"], arg["else"]
        else:
            c, t, f = arg
        return evaluate(t, doc) if _truthy(evaluate(c, doc)) else evaluate(f, doc)
    if op == "$ifNull":
        for x in a:
            if x is not None:
                return x
        return None
    if op == "$concat":
        return None if any(x is None for x in a) else "".join(a)
    if op == "$toLower":
        return (a[0] or "").lower()
    if op == "$toUpper":
        return (a[0] or "").upper()
    if op == "$size":
        if not isinstance(a[0], list):
            raise MongoError(17124, "The argument to $size must be an array")
        return len(a[0])
    if op == "$type":
        from .values import type_name
        return "missing" if a[0] is None and evaluate(arg, doc) is MISSING else type_name(a[0])
    if op == "$toString":
        return None if a[0] is None else str(a[0])
    if op == "$in":
        return any(values_equal(a[0], x) for x in a[1])
    if op == "$arrayElemAt":
        arr, i = a
        return arr[int(i)] if isinstance(arr, list) and -len(arr) <= int(i) < len(arr) else MISSING
    raise MongoError(168, "Unrecognized expression '%s'" % op)


def _truthy(v):
    """_truthy tells whether a value is true for $cond/$and/$or/$not."""
    return not (v is None or v is MISSING or v is False or (is_number(v) and num_value(v) == 0))


def _sum(nums):
    """_sum adds numbers keeping MongoDB's result type (int, long, double, decimal)."""
    if not nums:
        return 0
    if any(isinstance(x, float) for x in nums):
        return float(sum(float(num_value(x)) for x in nums))
    from bson.decimal128 import Decimal128
    if any(isinstance(x, Decimal128) for x in nums):
        from decimal import Decimal
        return Decimal128(sum(Decimal(str(num_value(x))) for x in nums))
    total = sum(int(x) for x in nums)
    if any(isinstance(x, Int64) for x in nums) or not (-2**31 <= total < 2**31):
        return Int64(total)
    return total


def _group(docs, spec):
    """_group applies a $group stage."""
    if "_id" not in spec:
        raise MongoError(15955, "a group specification must include an _id")
    groups = []
    index = {}
    from .values import id_key
    for d in docs:
        key = evaluate(spec["_id"], d)
        if key is MISSING:
            key = None
        k = id_key(key)
        if k not in index:
            index[k] = len(groups)
            groups.append((key, []))
        groups[index[k]][1].append(d)
    out = []
    for key, members in groups:
        g = {"_id": key}
        for field, acc in spec.items():
            if field == "_id":
                continue
            (op, expr), = acc.items()
            vals = [evaluate(expr, m) for m in members]
            g[field] = _accumulate(op, vals)
        out.append(g)
    return out


def _accumulate(op, vals):
    """_accumulate computes one accumulator ($sum, $avg, $min...) over a group's values."""
    present = [v for v in vals if v is not MISSING]
    if op == "$sum":
        return _sum([v for v in present if is_number(v)])
    if op == "$avg":
        nums = [float(num_value(v)) for v in present if is_number(v)]
        return sum(nums) / len(nums) if nums else None
    if op in ("$min", "$max"):
        vals2 = [v for v in present if v is not None]
        if not vals2:
            return None
        key = functools.cmp_to_key(compare)
        return min(vals2, key=key) if op == "$min" else max(vals2, key=key)
    if op == "$first":
        return vals[0] if vals and vals[0] is not MISSING else None
    if op == "$last":
        return vals[-1] if vals and vals[-1] is not MISSING else None
    if op == "$push":
        return present
    if op == "$addToSet":
        out = []
        for v in present:
            if not any(values_equal(v, x) for x in out):
                out.append(v)
        return out
    if op == "$count":
        return len(vals)
    raise MongoError(15952, "unknown group operator '%s'" % op)


def _unwind(docs, arg):
    """_unwind applies an $unwind stage (a path, or {path, preserveNullAndEmptyArrays})."""
    path = arg if isinstance(arg, str) else arg["path"]
    keep = isinstance(arg, dict) and arg.get("preserveNullAndEmptyArrays")
    field = path[1:]
    out = []
    for d in docs:
        v = get_path(d, field)
        if isinstance(v, list) and v:
            for el in v:
                nd = copy.deepcopy(d)
                _set_path(nd, field, el)
                out.append(nd)
        elif isinstance(v, list) or v is MISSING or v is None:
            if keep:
                out.append(d)
        else:
            out.append(d)
    return out


def pipeline_update(doc, pipeline):
    """pipeline_update runs an update pipeline; returns (new_doc, oplog o or None for no-op)."""
    for st in pipeline:
        name = next(iter(st))
        if name not in ("$addFields", "$set", "$project", "$unset", "$replaceRoot",
                        "$replaceWith"):
            raise MongoError(ErrorPipelineStage, "%s is not allowed to be used within an update"
                             % name)
    new = run_stages([doc], pipeline, None)[0]
    if "_id" in doc:
        if "_id" in new and not values_equal(new["_id"], doc["_id"]):
            raise MongoError(66, "After applying the update, the (immutable) field '_id' was "
                                 "found to have been altered to _id: %r" % (new["_id"],))
        rest = {k: v for k, v in new.items() if k != "_id"}
        new = {"_id": doc["_id"]}
        new.update(rest)
    from .values import encode
    if encode(new) == encode(doc):
        return new, None
    diff = docdiff.doc_diff(doc, new)
    if diff is None:
        from .values import raw_doc
        return new, raw_doc(encode(new))
    return new, {"$v": 2, "diff": diff}


ErrorPipelineStage = 72
