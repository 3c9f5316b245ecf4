"""Server-side cursors: plain result cursors, tailable oplog cursors, registry and batching."""
import bisect
import itertools
import operator
import random
import time

from .errors import MongoError
from .query import matches
from .rawbson import as_bytes, cursor_reply
from .values import decode

MAX_BATCH_BYTES = 16 * 1024 * 1024 - 16 * 1024


class Cursor:
    """Cursor serves a precomputed list of results in batches."""

    tailable = False

    def __init__(self, ns, items, limit=0, single_batch=False):
        """__init__ makes a cursor over a precomputed list of results."""
        self.id = 0
        self.ns = ns
        self.items = items
        self.pos = 0
        self.limit = limit
        self.single = single_batch
        self.returned = 0
        self.lsid = None

    def exhausted(self):
        """exhausted tells whether the cursor has nothing more to return."""
        if self.limit and self.returned >= self.limit:
            return True
        return self.pos >= len(self.items)

    def next_batch(self, server, batch_size, max_time_ms, first):
        """next_batch returns (raw documents, done, extra fields) for the next batch."""
        out = []
        size = 0
        while self.pos < len(self.items):
            if batch_size and len(out) >= batch_size:
                break
            if self.limit and self.returned >= self.limit:
                break
            it = self.items[self.pos]
            if not isinstance(it, (bytes, bytearray)):
                it = as_bytes(it)  # encoded once: its size bounds the batch, the bytes are sent
                self.items[self.pos] = it
            s = len(it)
            if out and size + s > MAX_BATCH_BYTES:
                break
            out.append(it)
            size += s
            self.pos += 1
            self.returned += 1
        done = self.single or self.exhausted()
        return out, done, {}


class LiveCursor(Cursor):
    """LiveCursor serves documents by key, each read when its batch is built, as mongod's cursors
    do outside a snapshot: a document deleted after the find is not returned, an updated one is
    returned as it is now (and only if it still matches the filter). Without this, a getMore would
    hand out documents as they were at the find, which no MongoDB server does."""

    def __init__(self, ns, coll, keys, flt, limit=0, single_batch=False, raws=None):
        """__init__ makes a cursor that reads the documents of keys when batches are built."""
        super().__init__(ns, keys, limit, single_batch)
        self.coll = coll
        self.flt = flt
        self.raws = raws  # the bytes each key had when the find matched it (None: unknown)
        self.prefetched = None

    def read_ahead(self, server, batch_size):
        """read_ahead prefetches the next batch at the size the client last asked for (the find's
        or the getMore's): a next getMore of that size takes it whole, a larger one takes it and
        reads the rest (see next_batch)."""
        self.prefetch(batch_size)

    def prefetch(self, batch_size):
        """prefetch builds the batch a getMore of batch_size documents would return now, once the
        previous reply is sent (the client is busy with it): next_batch hands it out if nothing was
        written to the collection since, which is then the same batch, without the wait. The hold
        of the store's lock orders it with writes."""
        if self.exhausted() or self.single:
            return
        state = (self.pos, self.returned)
        out = self._read_batch(batch_size)
        self.prefetched = (batch_size, self.coll.version, state, (self.pos, self.returned), out)
        self.pos, self.returned = state

    def next_batch(self, server, batch_size, max_time_ms, first):
        """next_batch returns the prefetched batch when it is still what a read would give, else
        reads one (see _read_batch). A getMore asking for more than was prefetched gets the
        prefetched documents and as many more as a read of its size would have given: the same
        documents, in the same order, within the same byte bound."""
        db, _, name = self.ns.partition(".")
        if server is not None and server.store.coll(db, name) is not self.coll:
            # mongod kills a collection's cursors when it is dropped or renamed away
            raise MongoError(175, "PlanExecutor error during getMore :: caused by :: collection dropped")
        pf, self.prefetched = self.prefetched, None
        if not pf or pf[1] != self.coll.version or pf[2] != (self.pos, self.returned):
            return self._read_batch(batch_size)
        ahead, (out, done, extra) = pf[0], pf[4]
        if batch_size == ahead:
            self.pos, self.returned = pf[3]
            return pf[4]
        if not ahead or (batch_size and batch_size < ahead):
            return self._read_batch(batch_size)
        self.pos, self.returned = pf[3]
        if done or len(out) < ahead:  # the end, or the byte bound stopped it: so would the read
            return pf[4]
        more, done, _ = self._read_batch(batch_size - len(out) if batch_size else 0, sum(map(len, out)))
        return out + more, done, extra

    def _read_batch(self, batch_size, held=0):
        """_read_batch reads the next documents by key: C-level slices and maps when nothing was
        deleted or changed since the find (the scan fast path), else a loop that skips deleted
        documents and re-checks changed ones against the filter. held: bytes of the batch already
        taken (a prefetched part): the documents read fit in what is left of the byte bound."""
        cap = batch_size or (1 << 62)
        if self.limit:
            cap = min(cap, self.limit - self.returned)
        get = self.coll.docs.get
        keys, snap, flt = self.items, self.raws, self.flt
        pos, n = self.pos, len(self.items)
        raws = list(map(get, keys[pos:pos + cap]))
        if raws and None not in raws and (
                not flt or (snap is not None and
                            not any(map(operator.is_not, raws, snap[pos:pos + cap])))):
            cut = bisect.bisect_right(list(itertools.accumulate(map(len, raws))),
                                      MAX_BATCH_BYTES - held)
            out = raws[:cut if held else max(cut, 1)]
            self.pos = pos + len(out)
            self.returned += len(out)
            return out, self.single or self.exhausted(), {}
        out = []
        size = held
        while pos < n and len(out) < cap:
            raw = get(keys[pos])
            if raw is not None and flt and (snap is None or raw is not snap[pos]) and \
                    not matches(decode(raw), flt):
                raw = None
            if raw is not None:
                s = len(raw)
                if size and size + s > MAX_BATCH_BYTES:
                    break
                out.append(raw)
                size += s
            pos += 1
        self.pos = pos
        self.returned += len(out)
        done = self.single or self.exhausted()
        return out, done, {}


def _op_ns_filter(flt):
    """_op_ns_filter returns an oplog filter without its ts lower bound when the rest reads only
    op and ns (a replicator's tailing filter), else None.  The cursor's seek (ts > start) already
    enforces the bound, so each entry's verdict then depends on its (op, ns) alone."""
    from .query import reads_only
    if not isinstance(flt, dict):
        return None
    rest = {}
    for k, v in flt.items():
        if k == "ts":
            if not (isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("$gt", "$gte")
                    and hasattr(v[next(iter(v))], "inc")):
                return None
        else:
            rest[k] = v
    return rest if reads_only(rest, ("op", "ns")) else None


class OplogCursor:
    """OplogCursor reads local.oplog.rs in ts order; tailable cursors remember their position."""

    def __init__(self, ns, flt, start_ts, limit=0, tailable=False, await_data=False,
                 single_batch=False):
        """__init__ makes a cursor over local.oplog.rs after start_ts."""
        self.id = 0
        self.ns = ns
        self.flt = flt
        self.limit = limit
        self.tailable = tailable
        self.await_data = await_data
        self.single = single_batch
        self.returned = 0
        self.scan_ts = start_ts   # entries with ts > scan_ts are still to be examined
        from .query import raw_needles
        self.needles = raw_needles(flt)
        self.op_ns_filter = _op_ns_filter(flt)
        self.op_ns_cache = {}  # (op, ns) -> whether op_ns_filter keeps such an entry
        self.last_ts = None       # ts of the last entry returned
        self.lsid = None

    def _scan(self, server, batch_size):
        """_scan collects the next matching oplog entries after the cursor's position."""
        oplog = server.store.oplog
        if self.last_ts is not None and oplog.trimmed_max >= self.last_ts:
            raise MongoError(136, "CollectionScan died due to position in capped collection being "
                                  "deleted. Last seen record id: RecordId(%d)" % self.last_ts)
        i = oplog.index_after(self.scan_ts)
        out = []
        size = 0
        n = len(oplog)
        while i < n:
            if batch_size and len(out) >= batch_size:
                break
            if self.limit and self.returned >= self.limit:
                break
            ts, raw = oplog.entry(i)
            if out and size + len(raw) > MAX_BATCH_BYTES:
                break
            i += 1
            self.scan_ts = ts
            meta = oplog.metas[i - 1] if self.op_ns_filter is not None else None
            if meta is not None:
                keep = self.op_ns_cache.get(meta)
                if keep is None:
                    keep = matches({"op": meta[0], "ns": meta[1]}, self.op_ns_filter)
                    self.op_ns_cache[meta] = keep
                if not keep:
                    continue
            elif self.needles and not all(x in raw for x in self.needles):
                continue
            elif self.flt and not matches(decode(raw), self.flt):
                continue
            out.append(raw)
            size += len(raw)
            self.returned += 1
            self.last_ts = ts
        return out, i >= n

    def next_batch(self, server, batch_size, max_time_ms, first):
        """next_batch returns the next oplog entries, waiting on a tailable awaitData cursor."""
        out, at_end = self._scan(server, batch_size)
        if not out and self.tailable and self.await_data and not first:
            deadline = time.monotonic() + (max_time_ms if max_time_ms else 1000) / 1000.0
            while not out:
                left = deadline - time.monotonic()
                if left <= 0 or server.stopping:
                    break
                server.store.cond.wait(min(left, 0.5))
                out, at_end = self._scan(server, batch_size)
        if self.limit and self.returned >= self.limit:
            return out, True, {}
        if self.tailable:
            return out, self.single, {}
        return out, self.single or at_end, {}


CURSOR_TIMEOUT = 600.0  # mongod's cursorTimeoutMillis default (10 minutes)


class CursorRegistry:
    def __init__(self):
        """__init__ makes an empty registry."""
        self.cursors = {}
        self.last_sweep = time.monotonic()

    def _sweep(self):
        """_sweep drops cursors idle for longer than the cursor timeout (once a minute)."""
        now = time.monotonic()
        if now - self.last_sweep < 60:
            return
        self.last_sweep = now
        for cid, cur in list(self.cursors.items()):
            if now - getattr(cur, "last_used", now) > CURSOR_TIMEOUT and not getattr(cur, "busy", False):
                del self.cursors[cid]

    def register(self, cur):
        """register gives a cursor a fresh id and keeps it."""
        self._sweep()
        cur.last_used = time.monotonic()
        while True:
            cid = random.getrandbits(62) + 1
            if cid not in self.cursors:
                break
        cur.id = cid
        self.cursors[cid] = cur
        return cid

    def get(self, cid):
        """get returns the cursor with id cid (refreshing its idle time) or None."""
        cur = self.cursors.get(cid)
        if cur is not None:
            cur.last_used = time.monotonic()
        return cur

    def kill(self, cid):
        """kill forgets the cursor with id cid; tells whether it existed."""
        return self.cursors.pop(cid, None) is not None


def batch_reply(server, cur, batch_size, max_time_ms, first, keep=True):
    """batch_reply produces {cursor: {firstBatch|nextBatch, id, ns, ...}} and registers/kills."""
    docs, done, extra = cur.next_batch(server, batch_size, max_time_ms, first)
    if docs and server.failpoints.corrupt_batch is not None:
        from .failpoints import corrupt_document
        kind = "changeStream" if type(cur).__name__ == "ChangeStreamCursor" else "find"
        data = server.failpoints.corrupt_check(cur.ns, kind)
        if data is not None:
            docs = [as_bytes(d) for d in docs]
            docs[0] = corrupt_document(docs[0], data["kind"])
    if done:
        if cur.id:
            server.cursors.kill(cur.id)
        cid = 0
    else:
        cid = cur.id or server.cursors.register(cur)
    # mongod writes the batch, then id and ns; postBatchResumeToken follows the batch.
    return cursor_reply("firstBatch" if first else "nextBatch", docs, extra, cid, cur.ns)
