"""Change streams (aggregate with a leading $changeStream stage) built from the oplog.

Resume tokens are {_data: <upper-case hex>}: '82' + the 8-byte clusterTime (big-endian), a
token type (00 high-water mark, 80 event), the 4-byte txnOpIndex, a fromInvalidate byte, then
the hex of a small BSON document with the collection UUID and documentKey.  Tokens therefore
sort as strings in event order.  A high-water-mark token at ts T means 'every event before T'.
"""
import binascii
import collections
import struct
import time

from .errors import MongoError
from .oplog import int_ts, ts_int
from .cursors import MAX_BATCH_BYTES
from .values import decode, encode, id_key

SPEC_FIELDS = {"fullDocument", "fullDocumentBeforeChange", "resumeAfter", "startAfter",
               "startAtOperationTime", "allChangesForCluster", "showExpandedEvents",
               "allowToRunOnConfigDB", "allowToRunOnSystemNS"}
HIDDEN_DBS = ("admin", "config", "local")
ErrorAllChanges = 31123
INVALIDATE_FILTERED = object()  # an invalidate event a later stage filtered out
# A known stage that may not follow $changeStream: ErrorCodes::IllegalOperation
# ([server:src/mongo/db/pipeline/pipeline.cpp] validateTopLevelPipeline); a stage name mongod does
# not know fails earlier, while the pipeline is parsed, with 40324
# ([server:src/mongo/db/pipeline/document_source.cpp] DocumentSource::parse).
ERR_STAGE_NOT_ALLOWED = 20
ERR_UNKNOWN_STAGE = 40324
CHANGE_STREAM_STAGES = ("$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot",
                        "$replaceWith", "$redact")
# Stage names mongod 6.0/7.0 parses (aggregation-pipeline reference); internal "$_" stages too.
KNOWN_STAGES = frozenset((
    "$addFields", "$bucket", "$bucketAuto", "$changeStream", "$changeStreamSplitLargeEvent",
    "$collStats", "$count", "$currentOp", "$densify", "$documents", "$facet", "$fill",
    "$geoNear", "$graphLookup", "$group", "$indexStats", "$limit", "$listCatalog",
    "$listLocalSessions", "$listSampledQueries", "$listSearchIndexes", "$listSessions",
    "$lookup", "$match", "$merge", "$out", "$planCacheStats", "$project", "$queryStats",
    "$redact", "$replaceRoot", "$replaceWith", "$sample", "$search", "$searchMeta", "$set",
    "$setWindowFields", "$shardedDataDistribution", "$skip", "$sort", "$sortByCount",
    "$unionWith", "$unset", "$unwind", "$vectorSearch"))


def make_token(ts, event=True, txn_index=0, from_invalidate=False, extra=None):
    """make_token builds a resume token {_data: hex} (layout in the module comment)."""
    head = b"\x82" + struct.pack(">Q", ts) + (b"\x80" if event else b"\x00") + \
        struct.pack(">I", txn_index) + (b"\x01" if from_invalidate else b"\x00")
    tail = encode(extra) if extra else b""
    return {"_data": binascii.hexlify(head + tail).decode().upper()}


def token_key(token):
    """token_key returns the sortable (ts, type, txnOpIndex, fromInvalidate) of a resume token."""
    try:
        data = binascii.unhexlify(token["_data"])
        if data[0] != 0x82 or len(data) < 15:
            raise ValueError
        ts = struct.unpack(">Q", data[1:9])[0]
        return (ts, data[9], struct.unpack(">I", data[10:14])[0], data[14])
    except Exception:
        raise MongoError(260, "Failed to parse resume token %r; it was not produced by this "
                              "server (mongo-peer)" % (token,))


def _ns_doc(ns):
    """_ns_doc splits 'db.coll' into the event's ns document."""
    db, _, coll = ns.partition(".")
    return {"db": db, "coll": coll}


# MAX_EVENT_BYTES is mongod's BSONObjMaxInternalSize (16 MiB + 16 KiB), the largest document it
# will build, change events included.
MAX_EVENT_BYTES = 16 * 1024 * 1024 + 16 * 1024


class ChangeStreamCursor:
    """ChangeStreamCursor turns oplog entries into change events for one scope."""

    tailable = True

    def __init__(self, ctx, scope_db, scope_coll, spec, post_stages, ns):
        """__init__ validates the start point (resumeAfter, startAfter, startAtOperationTime or
        now; 286 when it left the oplog) and the options of a stream."""
        self.id = 0
        self.ns = ns
        self.db = scope_db
        self.coll = scope_coll  # None for a database stream; db None for the cluster
        self.spec = spec
        self.stages = post_stages
        self.full_document = spec.get("fullDocument", "default")
        self.before_change = spec.get("fullDocumentBeforeChange", "off")
        self.expanded = bool(spec.get("showExpandedEvents"))
        self.pending = collections.deque()  # (token key, token, event dict or bytes)
        self.lsid = None
        # fast: the kinds of events pre-encoded at write time (fastlog) that are valid for this
        # stream: images and fullDocument lookups change delete/replace/update events.
        self.fast = set()
        self.match_cache = {}  # (ns, operationType) -> whether the $match stages keep the event
        self.match_only = bool(self.stages) and all(
            isinstance(st, dict) and list(st) == ["$match"] and _ns_type_filter(st["$match"])
            for st in self.stages)
        if not self.expanded and (not self.stages or self.match_only):
            self.fast.add("insert")
            if self.before_change == "off":
                self.fast.update(("delete", "replace"))
                if self.full_document == "default":
                    self.fast.add("update")
        oplog = ctx.store.oplog
        start = None
        if spec.get("resumeAfter") is not None and spec.get("startAfter") is not None:
            raise MongoError(50865, "Do not specify both 'resumeAfter' and 'startAfter' in a "
                                    "$changeStream stage")
        tok = spec.get("resumeAfter") or spec.get("startAfter")
        if tok is not None:
            start = token_key(tok)
            if start[3] and spec.get("resumeAfter") is not None:
                raise MongoError(260, "Attempting to resume a change stream using 'resumeAfter' "
                                      "is not allowed from an invalidate notification.")
        elif spec.get("startAtOperationTime") is not None:
            start = (ts_int(spec["startAtOperationTime"]), 0, 0, 0)
        if start is None:
            self.after = (oplog.last_ts, 0xFF, 0xFFFFFFFF, 1)
            self.scanned = oplog.last_ts
        else:
            oldest = oplog.oldest()
            if oldest is None or start[0] < oldest or oplog.trimmed_max >= start[0]:
                raise MongoError(286, "Resume of change stream was not possible, as the resume "
                                      "point may no longer be in the oplog.")
            self.after = start
            self.scanned = start[0] - 1
        self.last_token = None

    def _in_scope(self, ns):
        """_in_scope tells whether namespace ns belongs to the stream's scope."""
        db, _, coll = ns.partition(".")
        if self.db is None:
            return db not in HIDDEN_DBS
        if db != self.db:
            return False
        if self.coll is None:
            return not coll.startswith("system.")
        return coll == self.coll

    def _events_for(self, store, ts, e):
        """_events_for turns one oplog entry into the stream's events (none, one or several)."""
        out = []
        op = e["op"]
        if op == "c" and "applyOps" in e["o"]:
            if e["o"].get("partialTxn"):
                return out  # events come with the entry that ends the chain
            txn = {}
            if "txnNumber" in e:
                txn["txnNumber"] = e["txnNumber"]
            if "lsid" in e:
                txn["lsid"] = e["lsid"]
            for i, inner in enumerate(self._chain_ops(store, e)):
                ev = self._crud_event(store, ts, e["wall"], inner, i, txn)
                if ev is not None:
                    out.append(ev)
            return out
        if op in ("i", "u", "d"):
            ev = self._crud_event(store, ts, e["wall"], e, 0, {})
            return [ev] if ev is not None else []
        if op != "c":
            return out
        db = e["ns"].split(".", 1)[0]
        o = e["o"]
        wall = e["wall"]
        if "drop" in o:
            ns = "%s.%s" % (db, o["drop"])
            if self._in_scope(ns):
                out.append(self._base(ts, "drop", wall, {"ns": _ns_doc(ns)}, 0,
                                      {"u": e.get("ui")}))
                if self.coll is not None:
                    out.append(self._invalidate(ts, wall))
        elif "renameCollection" in o:
            src, dst = o["renameCollection"], o["to"]
            if self._in_scope(src):
                fields = {"ns": _ns_doc(src), "to": _ns_doc(dst)}
                if self.expanded:
                    desc = {"to": _ns_doc(dst)}
                    if "dropTarget" in o:
                        desc["dropTarget"] = o["dropTarget"]
                    fields["operationDescription"] = desc
                out.append(self._base(ts, "rename", wall, fields, 0, {"u": e.get("ui")}))
                if self.coll is not None:
                    out.append(self._invalidate(ts, wall))
            elif self.coll is not None and self._in_scope(dst) and "dropTarget" in o:
                out.append(self._invalidate(ts, wall))
        elif self.expanded and ("create" in o or "createIndexes" in o or "commitIndexBuild" in o
                                or "dropIndexes" in o or "collMod" in o):
            ev = self._expanded_ddl(ts, wall, db, e)
            if ev is not None:
                out.append(ev)
        elif "dropDatabase" in o:
            if (self.db is None and db not in HIDDEN_DBS) or (self.db == db and self.coll is None):
                out.append(self._base(ts, "dropDatabase", wall, {"ns": {"db": db}}, 0, None))
                if self.db is not None:
                    out.append(self._invalidate(ts, wall))
        return out

    def _expanded_ddl(self, ts, wall, db, e):
        """_expanded_ddl builds the showExpandedEvents DDL events (create, createIndexes,
        dropIndexes, modify) with their operationDescription."""
        o = e["o"]
        cmd = next(iter(o))
        ns = "%s.%s" % (db, o[cmd])
        if not self._in_scope(ns):
            return None
        if cmd == "create":
            kind, desc = "create", {k: v for k, v in o.items() if k != "create"}
        elif cmd == "createIndexes":
            spec = {k: v for k, v in o.items() if k != "createIndexes"}
            kind, desc = "createIndexes", {"indexes": [spec]}
        elif cmd == "commitIndexBuild":
            kind, desc = "createIndexes", {"indexes": o.get("indexes", [])}
        elif cmd == "dropIndexes":
            kind, desc = "dropIndexes", {"indexes": [e.get("o2", {"name": o.get("index")})]}
        else:
            kind, desc = "modify", {k: v for k, v in o.items() if k != "collMod"}
        return self._base(ts, kind, wall, {"ns": _ns_doc(ns), "operationDescription": desc}, 0,
                          {"u": e.get("ui")}, uuid=e.get("ui"))

    def _chain_ops(self, store, e):
        """_chain_ops returns the operations of a transaction, following prevOpTime back through
        the partialTxn entries of a multi-entry transaction."""
        ops = list(e["o"]["applyOps"])
        prev = (e.get("prevOpTime") or {}).get("ts")
        oplog = store.oplog
        while prev is not None and (prev.time or prev.inc):
            i = oplog.index_at_or_after(ts_int(prev))
            if i >= len(oplog) or oplog.tss[i] != ts_int(prev):
                raise MongoError(286, "Resume of change stream was not possible, as the resume "
                                      "point may no longer be in the oplog.")
            pe = oplog.decoded(i)
            if not pe["o"].get("partialTxn"):
                break
            ops = list(pe["o"]["applyOps"]) + ops
            prev = (pe.get("prevOpTime") or {}).get("ts")
        return ops

    def _base(self, ts, optype, wall, fields, txn_index, extra, txn=None, uuid=None):
        """_base builds an event's common fields in mongod's order."""
        ev = {"_id": make_token(ts, True, txn_index, False, extra), "operationType": optype,
              "clusterTime": int_ts(ts)}
        if self.expanded:
            if uuid is None and extra:
                uuid = extra.get("u")
            if uuid is not None:
                ev["collectionUUID"] = uuid
        ev["wallTime"] = wall
        if txn:
            ev.update(txn)
        ev.update(fields)
        return ev

    def _invalidate(self, ts, wall):
        """_invalidate builds the invalidate event that ends a collection or database stream."""
        return {"_id": make_token(ts, True, 0, True, None), "operationType": "invalidate",
                "clusterTime": int_ts(ts), "wallTime": wall}

    def _crud_event(self, store, ts, wall, e, txn_index, txn):
        """_crud_event builds the insert/update/replace/delete event of a CRUD operation."""
        ns = e["ns"]
        if not self._in_scope(ns):
            return None
        op = e["op"]
        o = e["o"]
        if op == "i":
            key = {"_id": o["_id"]}
            extra = {"u": e.get("ui"), "k": key}
            return self._base(ts, "insert", wall, {"fullDocument": o, "ns": _ns_doc(ns),
                                                   "documentKey": key}, txn_index, extra, txn)
        if op == "d":
            key = {"_id": o["_id"]}
            fields = {"ns": _ns_doc(ns), "documentKey": key}
            self._add_pre_image(store, ts, txn_index, fields)
            return self._base(ts, "delete", wall, fields, txn_index,
                              {"u": e.get("ui"), "k": key}, txn)
        key = {"_id": e["o2"]["_id"]}
        extra = {"u": e.get("ui"), "k": key}
        if "$v" in o and "diff" in o:
            fields = {}
            if self.full_document == "updateLookup":
                fields["fullDocument"] = self._lookup(store, ns, key["_id"])
            elif self.full_document in ("whenAvailable", "required"):
                fields["fullDocument"] = self._image(store, ts, txn_index, 1,
                                                     self.full_document == "required")
            fields["ns"] = _ns_doc(ns)
            fields["documentKey"] = key
            fields["updateDescription"] = update_description(o["diff"])
            self._add_pre_image(store, ts, txn_index, fields)
            return self._base(ts, "update", wall, fields, txn_index, extra, txn)
        fields = {"fullDocument": o, "ns": _ns_doc(ns), "documentKey": key}
        self._add_pre_image(store, ts, txn_index, fields)
        return self._base(ts, "replace", wall, fields, txn_index, extra, txn)

    def _image(self, store, ts, txn_index, which, required):
        """_image returns the stored pre- (which 0) or post-image (1) of an event, or None."""
        img = store.images.get((ts, txn_index))
        raw = img[which] if img else None
        if raw is None and required:
            raise MongoError(280, "Change stream was configured to require a %s for all update, "
                                  "delete and replace events, but the %s was not available for "
                                  "event" % (("pre-image", "pre-image") if which == 0 else
                                             ("post-image", "post-image")))
        return decode(raw) if raw is not None else None

    def _add_pre_image(self, store, ts, txn_index, fields):
        """_add_pre_image adds fullDocumentBeforeChange when the stream asks for it."""
        if self.before_change in ("whenAvailable", "required"):
            fields["fullDocumentBeforeChange"] = self._image(store, ts, txn_index, 0,
                                                             self.before_change == "required")

    def _lookup(self, store, ns, idv):
        """_lookup returns the current version of a document (fullDocument: updateLookup)."""
        store.document_lookups += 1
        db, _, coll = ns.partition(".")
        c = store.coll(db, coll)
        if c is None:
            return None
        raw = c.docs.get(id_key(idv))
        return decode(raw) if raw is not None else None

    def _fill(self, server, want):
        """_fill converts oplog entries after the scan position into pending events."""
        store = server.store
        oplog = store.oplog
        if oplog.trimmed_max > self.scanned and not self.pending:
            raise MongoError(286, "Resume of change stream was not possible, as the resume "
                                  "point may no longer be in the oplog.")
        i = oplog.index_after(self.scanned)
        n = len(oplog)
        needles = self._needles()
        tss, evs, pending = oplog.tss, oplog.evs, self.pending
        fast = self.fast
        while i < n and len(pending) < want:
            ts = tss[i]
            cached = evs[i] if fast else None
            if cached is not None and cached[1] in fast:
                # Pre-encoded at write time (fastlog): no decode, no encode.
                i += 1
                self.scanned = ts
                k = (ts, 0x80, 0, 0)
                if k > self.after and self._in_scope(cached[0]) and \
                        (not self.stages or self._kept(cached[0], cached[1])):
                    pending.append((k, {"_data": cached[2]}, cached[3]))
                continue
            raw = oplog.raws[i]
            i += 1
            self.scanned = ts
            if ts < self.after[0]:
                continue
            if needles and not any(x in raw for x in needles):
                continue
            e = decode(raw)
            for ev in self._events_for(store, ts, e):
                k = token_key(ev["_id"])
                if k <= self.after:
                    continue
                tok = ev["_id"]
                ev = self._apply_stages(ev)
                if ev is not None:
                    pending.append((k, tok, ev))

    def _kept(self, ns, kind):
        """_kept tells whether the stream's $match stages keep a pre-encoded event: they only
        look at operationType, ns and to (see _ns_type_filter), so the answer depends on
        (ns, operationType) alone and is computed once on {operationType, ns}."""
        key = (ns, kind)
        keep = self.match_cache.get(key)
        if keep is None:
            from .aggregate import run_stages
            view = {"operationType": kind, "ns": _ns_doc(ns)}
            keep = bool(run_stages([view], self.stages, None))
            self.match_cache[key] = keep
        return keep

    def _needles(self):
        """_needles lists byte strings one of which any relevant oplog entry must contain."""
        if self.db is None:
            return None
        if self.coll is None:
            return [("%s." % self.db).encode(), b"applyOps"]
        return [("%s.%s" % (self.db, self.coll)).encode(), ("%s.$cmd" % self.db).encode(),
                b"applyOps"]

    def _apply_stages(self, ev):
        """_apply_stages runs the stream's later stages on an event (280 if _id changed)."""
        if not self.stages:
            return ev
        from .aggregate import run_stages
        tok = ev["_id"]
        is_inv = ev["operationType"] == "invalidate"
        res = run_stages([ev], self.stages, None)
        if not res:
            return INVALIDATE_FILTERED if is_inv else None
        out = res[0]
        if out.get("_id") != tok:
            raise MongoError(280, "Encountered an event whose _id field, which contains the "
                                  "resume token, was modified by the pipeline. Modifying the _id "
                                  "field of an event makes it impossible to resume the stream "
                                  "from that point. Only transformations that retain the "
                                  "unmodified _id field are allowed.")
        return out

    def read_ahead(self, server, batch_size):
        """read_ahead converts the oplog entries after the last reply into pending events (up to
        batch_size) while the client reads that reply, when the stream's events depend on the
        oplog alone (no fullDocument lookup, no pre-image): the next getMore hands them out as it
        would have converted them itself."""
        if self.full_document != "default" or self.before_change != "off" or not batch_size or \
                len(self.pending) >= batch_size:
            return
        try:
            self._fill(server, batch_size)
        except MongoError:
            pass  # the next getMore meets it again

    def next_batch(self, server, batch_size, max_time_ms, first):
        """next_batch returns the next events (waiting up to maxTimeMS on a getMore) and the
        postBatchResumeToken."""
        if batch_size is None:
            want = 101 if first else 1000000
        else:
            want = batch_size if (batch_size or first) else 1000000
        self._fill(server, want)
        if not self.pending and not first:
            deadline = time.monotonic() + (max_time_ms if max_time_ms else 1000) / 1000.0
            while not self.pending:
                left = deadline - time.monotonic()
                if left <= 0 or server.stopping:
                    break
                server.store.cond.wait(min(left, 0.5))
                self._fill(server, want)
        out = []
        done = False
        size = 0
        last = None
        pending = self.pending
        while pending and len(out) < want:
            k, tok, ev = pending[0]
            if ev is INVALIDATE_FILTERED:
                pending.popleft()
                done = True
                break
            data = ev if isinstance(ev, bytes) else encode(ev)
            n = len(data)
            if n > MAX_EVENT_BYTES:
                # An event over 16 MB fails the stream with BSONObjectTooLarge (manual:
                # reference/operator/aggregation/changeStreamSplitLargeEvent, "Definition");
                # the message's wording follows BSONObj's size check (unsourced detail).
                raise MongoError(10334, "BSONObj size: %d (0x%X) is invalid. Size must be between "
                                        "0 and 16793600(16MB) First element: _id: %r"
                                 % (n, n, tok))
            if out and size + n > MAX_BATCH_BYTES:
                break
            size += n
            pending.popleft()
            out.append(data)
            last = (k, tok)
            self.after = k
            self.last_token = tok
            if not isinstance(ev, bytes) and ev.get("operationType") == "invalidate":
                done = True
                break
        if pending and not done and out:
            pbrt = last[1]
        else:
            hwm = max(self.scanned + 1, self.after[0])
            if out and last[0][0] >= hwm:
                pbrt = last[1]
            else:
                pbrt = make_token(hwm, False)
        return out, done, {"postBatchResumeToken": pbrt}


def _ns_type_filter(flt):
    """_ns_type_filter tells whether a $match filter only reads operationType, ns and to, as a
    replicator's namespace filter does; then a CRUD event's fate depends on its namespace and
    type alone."""
    from .query import reads_only
    return reads_only(flt, ("operationType", "ns", "to"))


def update_description(diff):
    """update_description turns a $v:2 diff into updatedFields/removedFields/truncatedArrays."""
    updated, removed, truncated = {}, [], []

    def walk(d, prefix):
        """walk collects the changes of an object diff below prefix."""
        for k, v in d.items():
            if k == "d":
                removed.extend(prefix + f for f in v)
            elif k in ("u", "i"):
                for f, val in v.items():
                    updated[prefix + f] = val
            elif k.startswith("s"):
                sub = v
                name = prefix + k[1:]
                if sub.get("a") is True:
                    walk_array(sub, name)
                else:
                    walk(sub, name + ".")

    def walk_array(d, name):
        """walk_array collects the changes of an array diff of field name."""
        for k, v in d.items():
            if k == "a":
                continue
            if k == "l":
                truncated.append({"field": name, "newSize": v})
            elif k.startswith("u"):
                updated["%s.%s" % (name, k[1:])] = v
            elif k.startswith("s"):
                if v.get("a") is True:
                    walk_array(v, "%s.%s" % (name, k[1:]))
                else:
                    walk(v, "%s.%s." % (name, k[1:]))

    walk(diff, "")
    return {"updatedFields": updated, "removedFields": removed, "truncatedArrays": truncated}


def open_change_stream(ctx, coll, pipeline, cursor_opts):
    """open_change_stream validates the $changeStream stage and returns the first batch reply."""
    from .cursors import batch_reply
    spec = pipeline[0]["$changeStream"]
    if not isinstance(spec, dict):
        raise MongoError(50808, "$changeStream stage expects a document as argument")
    for k in spec:
        if k not in SPEC_FIELDS:
            raise MongoError(40415, "BSON field '$changeStream.%s' is an unknown field." % k)
    if ctx.in_txn:
        raise MongoError(263, "Operation not permitted in transaction :: caused by :: $changeStream"
                              " cannot run in a multi-document transaction")
    fd = spec.get("fullDocument", "default")
    if fd not in ("default", "updateLookup", "whenAvailable", "required"):
        raise MongoError(2, "'%s' is not a valid value for fullDocument" % fd)
    fdb = spec.get("fullDocumentBeforeChange", "off")
    if fdb not in ("off", "whenAvailable", "required"):
        raise MongoError(2, "'%s' is not a valid value for fullDocumentBeforeChange" % fdb)
    # mongod parses every stage first (an unknown name fails there), then checks that each
    # parsed stage may run in a change stream.
    names = [next(iter(st)) for st in pipeline[1:]]
    for name in names:
        if name not in KNOWN_STAGES and not name.startswith("$_internal"):
            raise MongoError(ERR_UNKNOWN_STAGE, "Unrecognized pipeline stage name: '%s'" % name)
    for name in names:
        if name not in CHANGE_STREAM_STAGES:
            raise MongoError(ERR_STAGE_NOT_ALLOWED, "%s is not permitted in a $changeStream "
                                                    "pipeline" % name)
    db = ctx.db
    if coll == 1 or coll is None:
        if spec.get("allChangesForCluster"):
            if db != "admin":
                raise MongoError(ErrorAllChanges, "$changeStream may only be run on admin when "
                                                  "allChangesForCluster is true")
            scope_db, scope_coll, ns = None, None, "admin.$cmd.aggregate"
        else:
            if db in HIDDEN_DBS:
                raise MongoError(73, "$changeStream may not be opened on the internal %s database"
                                 % db)
            scope_db, scope_coll, ns = db, None, "%s.$cmd.aggregate" % db
    else:
        if db in HIDDEN_DBS:
            raise MongoError(73, "$changeStream may not be opened on the internal %s database" % db)
        if spec.get("allChangesForCluster"):
            raise MongoError(ErrorAllChanges, "$changeStream may only be run on admin when "
                                              "allChangesForCluster is true")
        scope_db, scope_coll, ns = db, coll, "%s.%s" % (db, coll)
    cur = ChangeStreamCursor(ctx, scope_db, scope_coll, spec, pipeline[1:], ns)
    cur.lsid = ctx.body.get("lsid")
    bs = (cursor_opts or {}).get("batchSize")
    return batch_reply(ctx.server, cur, bs, None, True)
