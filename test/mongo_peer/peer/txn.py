"""Logical sessions, retryable writes and multi-document transactions."""
import time

from bson.int64 import Int64
from bson.timestamp import Timestamp

from .errors import MongoError
from .findhint import index_insert
from .storage import dup_key_error, images_enabled, oplog_lsid
from .values import id_key, raw_doc

TRANSIENT = ["TransientTransactionError"]
LIFETIME_SECONDS = 60  # mongod's transactionLifetimeLimitSeconds default
BSON_OBJ_MAX_USER_SIZE = 16 * 1024 * 1024  # mongod's BSONObjMaxUserSize


class TxnWriter:
    """TxnWriter buffers a transaction's writes in per-collection overlays (invisible to others)."""

    def __init__(self, store, session, txn_number):
        """__init__ starts an empty transaction of a session."""
        self.store = store
        self.session = session
        self.txn_number = txn_number
        self.overlays = {}  # Collection -> {key: raw or None}
        self.ops = []
        self.images = []  # per op: (pre raw, post raw) or None
        self.state = "in_progress"
        self.started = time.monotonic()

    def coll(self, db, name, create=False):
        """coll returns the collection db.name, creating it (outside the transaction) when asked."""
        c = self.store.coll(db, name)
        if c is None and create:
            c = self.store.create(db, name)
        return c

    def scan(self, c):
        """scan returns the (key, raw) pairs the transaction sees: committed data under its
        overlay."""
        ov = self.overlays.get(c)
        if not ov:
            return list(c.docs.items())
        out = []
        for k, raw in c.docs.items():
            if k in ov:
                if ov[k] is not None:
                    out.append((k, ov[k]))
            else:
                out.append((k, raw))
        for k, raw in ov.items():
            if k not in c.docs and raw is not None:
                out.append((k, raw))
        return out

    def count(self, c):
        """count returns how many documents the transaction sees in c."""
        return len(self.scan(c))

    def get(self, c, key):
        """get returns the raw document under key as the transaction sees it, or None."""
        ov = self.overlays.get(c)
        if ov is not None and key in ov:
            return ov[key]
        return c.docs.get(key)

    def _claim(self, c, key):
        """_claim takes the write lock on a document for this transaction (112 WriteConflict if
        another transaction holds it); returns the collection's overlay."""
        owner = self.store.txn_locks.get((id(c), key))
        if owner is not None and owner is not self and owner.state == "in_progress" and \
                time.monotonic() - owner.started > LIFETIME_SECONDS:
            owner.abort()
        if owner is not None and owner is not self and owner.state == "in_progress":
            raise MongoError(112, "WriteConflict error: this operation conflicted with another "
                                  "operation. Please retry your operation or multi-document "
                                  "transaction.", labels=TRANSIENT)
        self.store.txn_locks[(id(c), key)] = self
        return self.overlays.setdefault(c, {})

    def insert(self, c, doc, raw):
        """insert buffers an insert in the overlay and the operation list."""
        key = id_key(doc["_id"])
        if self.get(c, key) is not None:
            raise dup_key_error(c, doc["_id"])
        self._claim(c, key)[key] = raw
        self.ops.append({"op": "i", "ns": c.ns, "ui": c.uuid, "o": raw_doc(raw),
                         "o2": {"_id": doc["_id"]}})
        self.images.append(None)

    def update(self, c, key, idv, new_raw, o):
        """update buffers an update (and its images when the collection records them)."""
        pre = self.get(c, key)
        self._claim(c, key)[key] = new_raw
        self.ops.append({"op": "u", "ns": c.ns, "ui": c.uuid, "o": o, "o2": {"_id": idv}})
        self.images.append((pre, new_raw) if images_enabled(c) else None)

    def delete(self, c, key, idv):
        """delete buffers a delete (and its pre-image when the collection records it)."""
        pre = self.get(c, key)
        self._claim(c, key)[key] = None
        self.ops.append({"op": "d", "ns": c.ns, "ui": c.uuid, "o": {"_id": idv}})
        self.images.append((pre, None) if images_enabled(c) else None)

    def _release(self):
        """_release drops the transaction's document locks and wakes waiting writers."""
        for c, ov in self.overlays.items():
            for key in ov:
                if self.store.txn_locks.get((id(c), key)) is self:
                    del self.store.txn_locks[(id(c), key)]
        self.store.cond.notify_all()  # wake non-transactional writes waiting for this one

    def commit(self):
        """commit publishes the overlays and logs one applyOps entry (nothing if read-only)."""
        for c, ov in self.overlays.items():
            live = self.store.coll(c.db, c.name) is c
            if live and ov:
                c.version += 1
            for key, raw in ov.items():
                if not live:
                    continue
                if raw is None:
                    if c.docs.pop(key, None) is not None:
                        c.id_holes += 1
                else:
                    if key not in c.docs:
                        index_insert(c, key)
                    c.docs[key] = raw
        self._release()
        self.state = "committed"
        if self.ops:
            self._log_apply_ops()

    def _log_apply_ops(self):
        """_log_apply_ops writes the transaction as one applyOps entry, or as a chain linked by
        prevOpTime (o.partialTxn: true on all but the last, which carries o.count), packed as
        mongod 6.0's packOperationsIntoApplyOps (op_observer_impl.cpp) does: an entry is closed
        when it holds maxNumberOfTransactionOperationsInSingleOplogEntry operations
        (--max-txn-ops-per-oplog-entry) or when the next operation's size would take the
        serialized operations (each counted with 8 bytes of array overhead) past
        BSONObjMaxUserSize, 16 MB (--max-txn-oplog-entry-bytes); a lone larger operation
        still gets an entry of its own."""
        from .values import encode
        limit = self.store.max_txn_ops_per_entry
        max_bytes = self.store.max_txn_entry_bytes
        chunks, cur, size = [], [], 0
        for op in self.ops:
            n = len(encode(op))
            if cur and (len(cur) >= limit or size + durable_size(op) > max_bytes):
                chunks.append(cur)
                cur, size = [], 0
            cur.append(op)
            size += n + 8
        chunks.append(cur)
        lsid = oplog_lsid(self.session.lsid)
        prev, prev_t = Timestamp(0, 0), Int64(-1)
        for i, chunk in enumerate(chunks):
            o = {"applyOps": chunk}
            if i < len(chunks) - 1:
                o["partialTxn"] = True
            elif len(chunks) > 1:
                o["count"] = Int64(len(self.ops))
            ts = self.store.log({"lsid": lsid, "txnNumber": Int64(self.txn_number), "op": "c",
                                 "ns": "admin.$cmd", "o": o,
                                 "prevOpTime": {"ts": prev, "t": prev_t}})
            prev, prev_t = Timestamp(ts >> 32, ts & 0xFFFFFFFF), Int64(1)
        for i, img in enumerate(self.images):
            if img is not None:
                self.store.images[(ts, i)] = img

    def abort(self):
        """abort discards the transaction's writes."""
        self._release()
        self.state = "aborted"


def durable_size(op):
    """durable_size is mongod's DurableOplogEntry::getDurableReplOperationSize of an operation:
    namespace length plus the sizes of o and o2 (the in-memory sizeof(ReplOperation) term is
    left out, see README)."""
    from .values import encode

    def size(v):
        """size returns the BSON size of an oplog field value (0 when absent)."""
        if v is None:
            return 0
        if hasattr(v, "raw"):
            return len(v.raw)
        return len(encode(v))
    return len(op["ns"]) + size(op.get("o")) + size(op.get("o2"))


class Session:
    def __init__(self, lsid):
        """__init__ makes the state of a new logical session."""
        self.lsid = lsid
        self.txn_number = -1
        self.txn = None
        self.retry_replies = {}


class Sessions:
    """Sessions maps lsid.id bytes to Session state; callers hold the store lock."""

    def __init__(self, store):
        """__init__ makes an empty session table."""
        self.store = store
        self.by_id = {}

    def get(self, lsid):
        """get returns the Session of an lsid, creating it on first use."""
        key = bytes(lsid["id"]) if isinstance(lsid, dict) and "id" in lsid else repr(lsid)
        s = self.by_id.get(key)
        if s is None:
            s = Session(lsid)
            self.by_id[key] = s
        return s

    def end(self, lsids):
        """end forgets sessions (endSessions), aborting their open transactions."""
        for lsid in lsids:
            key = bytes(lsid["id"]) if isinstance(lsid, dict) and "id" in lsid else repr(lsid)
            s = self.by_id.pop(key, None)
            if s is not None and s.txn is not None and s.txn.state == "in_progress":
                s.txn.abort()

    def txn_for(self, body, cmd):
        """txn_for returns the TxnWriter a command in a transaction runs in (starting one if asked)."""
        s = self.get(body["lsid"])
        n = int(body["txnNumber"])
        if body.get("startTransaction"):
            if n < s.txn_number or (n == s.txn_number and s.txn is not None):
                if n == s.txn_number and s.txn is not None and s.txn.state != "in_progress":
                    raise MongoError(256 if s.txn.state == "committed" else 251,
                                     "Transaction %d has been %s." % (n, s.txn.state))
                raise MongoError(225, "Cannot start transaction %d on session because a newer "
                                      "transaction %d has already started." % (n, s.txn_number))
            if s.txn is not None and s.txn.state == "in_progress":
                s.txn.abort()
            s.txn_number = n
            s.txn = TxnWriter(self.store, s, n)
            return s.txn
        if n != s.txn_number or s.txn is None:
            if n < s.txn_number:
                raise MongoError(225, "Cannot continue transaction %d on session because a newer "
                                      "transaction %d has already started." % (n, s.txn_number))
            raise MongoError(251, "Given transaction number %d does not match any in-progress "
                                  "transactions." % n, labels=TRANSIENT)
        if s.txn.state == "aborted":
            raise MongoError(251, "Transaction %d has been aborted." % n, labels=TRANSIENT)
        if s.txn.state == "committed" and cmd not in ("commitTransaction", "abortTransaction"):
            raise MongoError(256, "Transaction %d has been committed." % n)
        return s.txn
