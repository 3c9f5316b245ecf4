"""CRUD commands: insert, update, delete, findAndModify, find, getMore, killCursors, count, distinct."""
from bson.int64 import Int64

from .cursors import Cursor, LiveCursor, OplogCursor, batch_reply
from .errors import MongoError
from .oplog import ts_int
from .query import matches, project, sort_docs, validate_filter
from .storage import MAX_USER_DEPTH, DirectWriter, check_depth, prepare_insert
from .update import apply_update, replacement_doc, upsert_seed
from .values import decode, encode, id_key, raw_doc, canonical_type


def _docs_arg(ctx, name):
    """_docs_arg returns a write command's documents (kind-1 sequence or body array)."""
    if name in ctx.seqs:
        return ctx.seqs[name]
    return ctx.body.get(name, []) or []


def _write_error(i, e):
    """_write_error turns a MongoError into a writeErrors entry for statement i."""
    we = {"index": i, "code": e.code}
    we.update(e.extra)
    we["errmsg"] = e.errmsg
    return we


def _finish_writes(ctx, reply, errors):
    """_finish_writes adds writeErrors to a reply (aborting a transaction on error)."""
    if errors:
        reply["writeErrors"] = errors
        if ctx.in_txn:
            ctx.abort_txn()
    return reply


TXN_WAIT_SECONDS = 60  # a transaction older than mongod's transactionLifetimeLimitSeconds aborts


def _wait_for_txns(ctx, c, keys):
    """_wait_for_txns blocks a non-transactional write while a transaction holds one of the
    documents (as mongod retries the write conflict until the transaction ends); returns True
    when it waited, so the caller re-reads the documents."""
    if ctx.in_txn or c is None or not ctx.store.txn_locks:
        return False
    import time
    waited = False
    deadline = time.monotonic() + TXN_WAIT_SECONDS
    while True:
        owners = [ctx.store.txn_locks.get((id(c), k)) for k in keys]
        owners = [o for o in owners if o is not None and o.state == "in_progress"]
        if not owners:
            return waited
        left = deadline - time.monotonic()
        if left <= 0 or ctx.server.stopping:
            for o in owners:
                o.abort()
            return True
        waited = True
        ctx.store.cond.wait(min(left, 0.2))


def _check_writable(db, name):
    """_check_writable refuses writes to local.oplog.rs (20) and system.* collections (73)."""
    if db == "local" and name == "oplog.rs":
        raise MongoError(20, "mongo-peer does not allow writes to local.oplog.rs")
    if name.startswith("system."):
        raise MongoError(73, "cannot write to '%s.%s'" % (db, name))


def cmd_insert(ctx):
    """cmd_insert runs insert: stores each document (raw bytes kept), logs it, collects
    writeErrors."""
    db, name = ctx.db, ctx.body["insert"]
    _check_writable(db, name)
    docs = _docs_arg(ctx, "documents")
    ordered = ctx.body.get("ordered", True)
    c = ctx.writer.coll(db, name, create=True)
    n = 0
    errors = []
    for i, d in enumerate(docs):
        try:
            raw = None
            if isinstance(d, (bytes, bytearray)):
                raw = bytes(d)
                d = _quick_id_doc(raw)
            if raw is not None and d is None:
                d = decode(raw)
            if raw is not None and d and next(iter(d)) == "_id" and not _needs_fix(d):
                if len(raw) > 16 * 1024 * 1024:
                    raise MongoError(2, "object to insert too large. size in bytes: %d, max "
                                        "size: 16777216" % len(raw))
                _check_id(d["_id"])
                check_depth(d, raw)
            else:
                d, raw = prepare_insert(d)
            _wait_for_txns(ctx, c, [id_key(d["_id"])])
            ctx.writer.insert(c, d, raw)
            n += 1
        except MongoError as e:
            if e.code == 112:
                raise
            errors.append(_write_error(i, e))
            if ordered or ctx.in_txn:
                break
    return _finish_writes(ctx, {"n": n}, errors)


def _quick_id_doc(raw):
    """_quick_id_doc returns {_id: value} of a raw document to insert without decoding it all,
    or None when the whole document must be decoded and checked: _id missing, not first, an
    array or a regex, a top-level Timestamp that may be (0, 0), or possibly too deep."""
    from .fastlog import frame, id_element
    el = id_element(raw)
    if el is None or raw[4] in (0x04, 0x0B) or (b"\x11" in raw and bytes(8) in raw) or \
            raw.count(b"\x03") + raw.count(b"\x04") >= MAX_USER_DEPTH:
        return None
    return decode(frame(el))


def _needs_fix(d):
    """_needs_fix tells whether a document has a top-level Timestamp(0, 0) to fill in."""
    from bson.timestamp import Timestamp
    return any(isinstance(v, Timestamp) and v.time == 0 and v.inc == 0 for v in d.values())


def _check_id(idv):
    """_check_id refuses arrays and regular expressions as _id (2 BadValue)."""
    from bson.regex import Regex
    if isinstance(idv, list):
        raise MongoError(2, "can't use an array for _id")
    if isinstance(idv, Regex):
        raise MongoError(2, "can't use a regex for _id")


def _id_eq(q):
    """_id_eq returns the _id of a query like {_id: <scalar>} (or None)."""
    if not isinstance(q, dict) or "_id" not in q:
        return None
    v = q["_id"]
    if isinstance(v, dict):
        if len(v) == 1 and "$eq" in v:
            v = v["$eq"]
        elif v and next(iter(v)).startswith("$"):
            return None
    if canonical_type(v) in (25,) or hasattr(v, "try_compile"):
        return None
    return (v,)


def _id_in(q):
    """_id_in returns the values of a query {_id: {$in: [...]}} (or None): a batch of lookups by _id,
    which mongod answers from the _id index."""
    if not isinstance(q, dict) or list(q) != ["_id"] or not isinstance(q["_id"], dict) or \
            list(q["_id"]) != ["$in"] or not isinstance(q["_id"]["$in"], list):
        return None
    values = q["_id"]["$in"]
    for v in values:
        if (isinstance(v, dict) and v and next(iter(v)).startswith("$")) or canonical_type(v) in (25,) or \
                hasattr(v, "try_compile"):
            return None
    return values


def _only_id(q):
    """_only_id tells whether filter q looks at _id alone (through $and/$or/$nor too), as the
    river's copy resume filter ({$or: [{_id: {$gt: last}}, {_id: {$type: ...}}...]}) does."""
    if not isinstance(q, dict) or not q:
        return False
    for k, v in q.items():
        if k in ("$and", "$or", "$nor"):
            if not isinstance(v, list) or not all(_only_id(x) for x in v):
                return False
        elif k != "_id":
            return False
    return True


def _decode_for_match(raw, id_only):
    """_decode_for_match decodes a stored document for a filter; when bson cannot decode it
    (valid BSON its pure-Python decoder refuses, e.g. some code-with-scope) and the filter only
    looks at _id, the _id element alone is enough (mongod evaluates such a filter on any
    document)."""
    import bson.errors
    try:
        return decode(raw)
    except (bson.errors.InvalidBSON, UnicodeDecodeError):
        if not id_only:
            raise
        from .fastlog import frame, id_element
        el = id_element(raw)
        if el is None:
            raise
        return decode(frame(el))


def matching(ctx, c, q, first_only=False, sort=None):
    """matching returns [(key, raw, doc)] of the documents in c that q selects."""
    validate_filter(q)
    out = []
    if c is None:
        return out
    idq = _id_eq(q)
    if idq is not None:
        key = id_key(idq[0])
        raw = ctx.writer.get(c, key)
        if raw is not None:
            d = decode(raw)
            if matches(d, q):
                out.append((key, raw, d))
        return out
    ids = _id_in(q)
    if ids is not None:
        found = {}
        for v in ids:
            key = id_key(v)
            if key in found:
                continue
            raw = ctx.writer.get(c, key)
            if raw is not None:
                found[key] = raw
        from .findhint import id_sorted
        out = [(key, raw, decode(raw)) for key, raw in id_sorted(found.items())]
        return sort_docs(out, sort, key=lambda t: t[2]) if sort else out
    from .query import raw_needles
    needles = raw_needles(q)
    id_only = _only_id(q)
    for key, raw in ctx.writer.scan(c):
        if needles and not all(x in raw for x in needles):
            continue
        d = _decode_for_match(raw, id_only)
        if matches(d, q):
            out.append((key, raw, d))
            if first_only and not sort:
                break
    if sort:
        out = sort_docs(out, sort, key=lambda t: t[2])
    return out


def _do_update_one(ctx, c, key, old, u, q=None, array_filters=None, in_place=False):
    """_do_update_one updates one stored doc; returns (new_doc, modified).  in_place lets the
    update modify `old` (a throwaway decode) instead of a copy."""
    idv = old.get("_id")
    if isinstance(u, dict) and u and next(iter(u)).startswith("$"):
        new, diff = apply_update(old, u, idv, query=q, array_filters=array_filters,
                                 in_place=in_place)
        if diff is None:
            return new, False
        raw = encode(new)
        check_depth(new, raw, update=True)
        ctx.writer.update(c, key, idv, raw, diff)
        return new, True
    if isinstance(u, list):
        from .aggregate import pipeline_update
        new, o = pipeline_update(old, u)
        if o is None:
            return new, False
        check_depth(new, update=True)
        ctx.writer.update(c, key, idv, encode(new), o)
        return new, True
    new = replacement_doc(old, u)
    raw = encode(new)
    if raw == encode(old):
        return new, False
    check_depth(new, update=True)
    ctx.writer.update(c, key, idv, raw, raw_doc(raw))
    return new, True


def _do_upsert(ctx, c, q, u):
    """_do_upsert inserts the document an upsert builds from the query and the update."""
    seed = upsert_seed(q)
    if isinstance(u, dict) and u and next(iter(u)).startswith("$"):
        new, _ = apply_update(seed, u, seed.get("_id"), inserting=True)
    elif isinstance(u, list):
        from .aggregate import pipeline_update
        new, _ = pipeline_update(seed, u)
    else:
        new = replacement_doc({"_id": seed["_id"]} if "_id" in seed else {}, u)
    new, raw = prepare_insert(new, upsert=True)
    ctx.writer.insert(c, new, raw)
    return new


def cmd_update(ctx):
    """cmd_update runs update: each statement's matches are updated (or upserted) and logged."""
    db, name = ctx.db, ctx.body["update"]
    _check_writable(db, name)
    ups = _docs_arg(ctx, "updates")
    ordered = ctx.body.get("ordered", True)
    c = ctx.writer.coll(db, name)
    n = modified = 0
    upserted = []
    errors = []
    for i, st in enumerate(ups):
        if isinstance(st, (bytes, bytearray)):
            st = decode(st)
        try:
            q, u = st.get("q", {}), st.get("u")
            if u is None:
                raise MongoError(9, "BSON field 'update.updates.u' is missing but a required field")
            multi = st.get("multi", False)
            if multi and isinstance(u, dict) and u and not next(iter(u)).startswith("$"):
                raise MongoError(9, "multi update is not supported for replacement-style update")
            hits = matching(ctx, c, q, first_only=not multi)
            while _wait_for_txns(ctx, c, [h[0] for h in hits]):
                hits = matching(ctx, c, q, first_only=not multi)
            if not multi:
                hits = hits[:1]
            for key, raw, d in hits:
                _, mod = _do_update_one(ctx, c, key, d, u, q, st.get("arrayFilters"),
                                        in_place=True)
                n += 1
                modified += int(mod)
            if not hits and st.get("upsert"):
                if c is None:
                    c = ctx.writer.coll(db, name, create=True)
                new = _do_upsert(ctx, c, q, u)
                n += 1
                upserted.append({"index": i, "_id": new["_id"]})
        except MongoError as e:
            if e.code == 112:
                raise
            errors.append(_write_error(i, e))
            if ordered or ctx.in_txn:
                break
    reply = {"n": n, "nModified": modified}
    if upserted:
        reply["upserted"] = upserted
    return _finish_writes(ctx, reply, errors)


def cmd_delete(ctx):
    """cmd_delete runs delete: each statement removes its matches (limit 0 or 1)."""
    db, name = ctx.db, ctx.body["delete"]
    _check_writable(db, name)
    dels = _docs_arg(ctx, "deletes")
    ordered = ctx.body.get("ordered", True)
    c = ctx.writer.coll(db, name)
    n = 0
    errors = []
    for i, st in enumerate(dels):
        if isinstance(st, (bytes, bytearray)):
            st = decode(st)
        try:
            limit = st.get("limit", 0)
            if limit not in (0, 1):
                raise MongoError(9, "The limit field in delete objects must be 0 or 1. Got %s" % limit)
            hits = matching(ctx, c, st.get("q", {}), first_only=limit == 1)
            while _wait_for_txns(ctx, c, [h[0] for h in hits]):
                hits = matching(ctx, c, st.get("q", {}), first_only=limit == 1)
            if limit == 1:
                hits = hits[:1]
            for key, raw, d in hits:
                ctx.writer.delete(c, key, d["_id"])
                n += 1
        except MongoError as e:
            if e.code == 112:
                raise
            errors.append(_write_error(i, e))
            if ordered or ctx.in_txn:
                break
    return _finish_writes(ctx, {"n": n}, errors)


def cmd_find_and_modify(ctx):
    """cmd_find_and_modify runs findAndModify (update, remove, upsert, new, fields)."""
    b = ctx.body
    name = b.get("findAndModify", b.get("findandmodify"))
    c = ctx.writer.coll(ctx.db, name)
    q = b.get("query", {}) or {}
    remove = b.get("remove", False)
    u = b.get("update")
    if remove and u is not None:
        raise MongoError(9, "Cannot specify both an update and remove=true")
    if not remove and u is None:
        raise MongoError(9, "Either an update or remove=true must be specified")
    hits = matching(ctx, c, q, first_only=True, sort=b.get("sort"))[:1]
    while _wait_for_txns(ctx, c, [h[0] for h in hits]):
        hits = matching(ctx, c, q, first_only=True, sort=b.get("sort"))[:1]
    fields = b.get("fields")
    if remove:
        if not hits:
            return {"lastErrorObject": {"n": 0}, "value": None}
        key, raw, d = hits[0]
        ctx.writer.delete(c, key, d["_id"])
        return {"lastErrorObject": {"n": 1}, "value": project(d, fields)}
    if hits:
        key, raw, d = hits[0]
        new, _ = _do_update_one(ctx, c, key, d, u, q, b.get("arrayFilters"))
        val = new if b.get("new") else d
        return {"lastErrorObject": {"n": 1, "updatedExisting": True}, "value": project(val, fields)}
    if b.get("upsert"):
        if c is None:
            c = ctx.writer.coll(ctx.db, name, create=True)
        new = _do_upsert(ctx, c, q, u)
        return {"lastErrorObject": {"n": 1, "updatedExisting": False, "upserted": new["_id"]},
                "value": project(new, fields) if b.get("new") else None}
    return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}


def _oplog_start(flt):
    """_oplog_start derives the ts below which no matching oplog entry can lie."""
    ts = flt.get("ts") if isinstance(flt, dict) else None
    if isinstance(ts, dict):
        if "$gt" in ts and hasattr(ts["$gt"], "inc"):
            return ts_int(ts["$gt"])
        if "$gte" in ts and hasattr(ts["$gte"], "inc"):
            return max(0, ts_int(ts["$gte"]) - 1)
    elif ts is not None and hasattr(ts, "inc"):
        return max(0, ts_int(ts) - 1)
    return 0


def cmd_find(ctx):
    """cmd_find runs find on a collection or on local.oplog.rs and returns the first batch."""
    b = ctx.body
    name = b["find"]
    flt = b.get("filter", {}) or {}
    validate_filter(flt)
    ns = "%s.%s" % (ctx.db, name)
    limit = int(b.get("limit", 0) or 0)
    single = bool(b.get("singleBatch", False))
    if limit < 0:
        limit, single = -limit, True
    batch_size = b.get("batchSize")
    if batch_size is not None and batch_size < 0:
        raise MongoError(51024, "BSON field 'batchSize' value must be >= 0, actual value '%d'" % batch_size)
    if ctx.db == "local" and name == "oplog.rs":
        if b.get("sort") or b.get("projection") or b.get("skip"):
            if b.get("tailable"):
                raise MongoError(2, "mongo-peer: sort/projection/skip are not supported on a "
                                    "tailable oplog cursor")
        if b.get("sort") or b.get("projection") or b.get("skip"):
            items = _oplog_query(ctx, flt, b.get("sort") or {}, int(b.get("skip", 0) or 0), limit)
            if b.get("projection"):
                items = [project(d, b["projection"]) for d in items]
            return _list_cursor(ctx, ns, items, b, limit, single, batch_size)
        cur = OplogCursor(ns, flt, _oplog_start(flt), limit, bool(b.get("tailable")),
                          bool(b.get("awaitData")), single)
        cur.lsid = b.get("lsid")
        return batch_reply(ctx.server, cur, 101 if batch_size is None else batch_size,
                           b.get("maxTimeMS"), True)
    if b.get("tailable"):
        c = ctx.store.coll(ctx.db, name)
        if c is not None and not c.options.get("capped"):
            raise MongoError(2, "error processing query: ns=%s tailable cursor requested on non "
                                "capped collection" % ns)
    if list(flt) == ["_id"]:
        idf = flt["_id"]
        if isinstance(idf, dict) and list(idf) == ["$in"] and isinstance(idf["$in"], list):
            ctx.store.document_lookups += len(idf["$in"])
        elif limit == 1 and not (isinstance(idf, dict) and any(k.startswith("$") for k in idf)):
            ctx.store.document_lookups += 1
    c = ctx.writer.coll(ctx.db, name)
    sort = b.get("sort")
    proj = b.get("projection")
    skip = int(b.get("skip", 0) or 0)
    from .findhint import hinted_items
    hinted = hinted_items(ctx, c, b, flt)
    if hinted is not None:
        return _list_cursor(ctx, ns, hinted[skip:], b, limit, single, batch_size)
    if c is not None and not proj and isinstance(ctx.writer, DirectWriter):
        # Outside a transaction, documents are read when each batch is built (see LiveCursor).
        if not flt and _id_sort(sort):  # the copy's read: the _id index's order, no sort
            from .findhint import id_index_keys
            keys = id_index_keys(c)[skip:] if _id_sort(sort) > 0 else id_index_keys(c)[::-1][skip:]
            cur = LiveCursor(ns, c, keys, flt, limit, single)
            cur.lsid = b.get("lsid")
            return _work_ahead(ctx, cur, batch_reply(ctx.server, cur, 101 if batch_size is None else batch_size,
                                                     b.get("maxTimeMS"), True), batch_size or 0)
        else:
            pairs = ctx.writer.scan(c) if not flt and not sort else \
                [(key, raw) for key, raw, _ in matching(ctx, c, flt, sort=sort)]
        pairs = pairs[skip:]
        keys, raws = (list(t) for t in zip(*pairs)) if pairs else ([], [])
        cur = LiveCursor(ns, c, keys, flt, limit, single, raws=raws)
        cur.lsid = b.get("lsid")
        return _work_ahead(ctx, cur, batch_reply(ctx.server, cur, 101 if batch_size is None else batch_size,
                                                 b.get("maxTimeMS"), True), batch_size or 0)
    if not flt and not sort and not proj:
        items = [raw for _, raw in ctx.writer.scan(c)] if c is not None else []
    else:
        hits = matching(ctx, c, flt, sort=sort)
        if proj:
            items = [project(d, proj) for _, _, d in hits]
        else:
            items = [raw for _, raw, _ in hits]
    return _list_cursor(ctx, ns, items[skip:], b, limit, single, batch_size)


def _id_sort(sort):
    """_id_sort returns 1 or -1 for a sort on _id alone, else 0."""
    if isinstance(sort, dict) and len(sort) == 1 and "_id" in sort and sort["_id"] in (1, -1):
        return int(sort["_id"])
    return 0


def _oplog_query(ctx, flt, sort, skip, limit):
    """_oplog_query evaluates a non-tailable oplog find; $natural order is served without a sort."""
    oplog = ctx.store.oplog
    keys = list(sort)
    if not keys or keys == ["$natural"]:
        backwards = bool(keys) and sort["$natural"] < 0
        start = oplog.index_after(_oplog_start(flt)) if not backwards else oplog.head
        idx = range(len(oplog) - 1, start - 1, -1) if backwards else range(start, len(oplog))
        out = []
        want = skip + limit if limit else None
        from .query import raw_needles
        needles = raw_needles(flt)
        for i in idx:
            if needles and not all(x in oplog.raws[i] for x in needles):
                continue
            d = decode(oplog.raws[i])
            if matches(d, flt):
                out.append(d)
                if want is not None and len(out) >= want:
                    break
        return out[skip:]
    items = [d for d in (decode(r) for r in oplog.live_raws()) if matches(d, flt)]
    return sort_docs(items, sort)[skip:]


def _list_cursor(ctx, ns, items, b, limit, single, batch_size):
    """_list_cursor returns the first batch of a cursor over precomputed results."""
    cur = Cursor(ns, items, limit, single)
    cur.lsid = b.get("lsid")
    return batch_reply(ctx.server, cur, 101 if batch_size is None else batch_size,
                       b.get("maxTimeMS"), True)


def cmd_get_more(ctx):
    """cmd_get_more returns the next batch of a cursor (43 if unknown, 13 on another namespace)."""
    b = ctx.body
    cid = int(b["getMore"])
    cur = ctx.server.cursors.get(cid)
    if cur is None:
        raise MongoError(43, "cursor id %d not found" % cid)
    coll = b.get("collection")
    if coll is not None and cur.ns != "%s.%s" % (ctx.db, coll):
        raise MongoError(13, "Requested getMore on namespace '%s.%s', but cursor belongs to a "
                             "different namespace %s" % (ctx.db, coll, cur.ns))
    if getattr(cur, "busy", False):
        raise MongoError(2, "cursor id %d is already in use" % cid)
    cur.busy = True
    try:
        return _work_ahead(ctx, cur, batch_reply(ctx.server, cur, b.get("batchSize") or 0, b.get("maxTimeMS"), False),
                           b.get("batchSize") or 0)
    except MongoError:
        ctx.server.cursors.kill(cid)
        raise
    finally:
        cur.busy = False


def _work_ahead(ctx, cur, reply, size):
    """_work_ahead has a cursor that stays open work ahead while the client reads reply (see its
    read_ahead), and returns reply."""
    ahead = getattr(cur, "read_ahead", None)
    if ahead is not None and cur.id and ctx.server.cursors.get(cur.id) is cur:
        server = ctx.server
        ctx.conn.after_reply = lambda: ahead(server, size)
    return reply


def cmd_kill_cursors(ctx):
    """cmd_kill_cursors forgets the listed cursors."""
    killed, missing = [], []
    for cid in ctx.body.get("cursors", []):
        (killed if ctx.server.cursors.kill(int(cid)) else missing).append(Int64(int(cid)))
    return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [],
            "cursorsUnknown": []}


def cmd_count(ctx):
    """cmd_count counts the documents a query matches (skip and limit applied)."""
    b = ctx.body
    c = ctx.writer.coll(ctx.db, b["count"])
    q = b.get("query") or {}
    if c is None:
        n = 0
    elif not q:
        n = ctx.writer.count(c)
    else:
        n = len(matching(ctx, c, q))
    skip = int(b.get("skip", 0) or 0)
    n = max(0, n - skip)
    limit = abs(int(b.get("limit", 0) or 0))
    if limit:
        n = min(n, limit)
    return {"n": n}


def cmd_distinct(ctx):
    """cmd_distinct returns the distinct values of a field, in BSON order."""
    from .query import lookup
    from .values import MISSING, values_equal
    b = ctx.body
    c = ctx.writer.coll(ctx.db, b["distinct"])
    key = b.get("key")
    if not isinstance(key, str):
        raise MongoError(14, "BSON field 'distinct.key' is the wrong type, expected type 'string'")
    vals = []
    for _, _, d in matching(ctx, c, b.get("query") or {}):
        for v in lookup(d, key.split(".")):
            if v is MISSING:
                continue
            for x in (v if isinstance(v, list) else [v]):
                if not any(values_equal(x, y) for y in vals):
                    vals.append(x)
    vals = sort_docs(vals, {"v": 1}, key=lambda x: {"v": x})
    return {"values": vals}
