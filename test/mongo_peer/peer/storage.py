"""In-memory databases and collections; documents are kept as raw BSON bytes.

Writers apply writes and log them in the oplog: DirectWriter at once (optionally as a
retryable write carrying lsid/txnNumber/stmtId/prevOpTime); txn.TxnWriter buffers them.
"""
import threading
import uuid

from bson.binary import Binary
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from . import fastlog
from .errors import MongoError
from .oplog import Oplog, int_ts
from .findhint import index_insert
from .values import encode, id_key

ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}
INTERNAL_DBS = ("admin", "local", "config")


class Collection:
    """Collection holds documents as raw BSON keyed by id_key(_id), in insertion order."""

    def __init__(self, db, name, options=None):
        """__init__ makes an empty collection with a fresh UUID."""
        self.db = db
        self.name = name
        self.uuid = Binary(uuid.uuid4().bytes, 4)
        self.docs = {}
        self.options = options or {}
        # id_keys: the keys of docs in _id index order, kept as documents are inserted (see
        # findhint.index_insert), or None until an ordered read sorts them; id_holes: how many of
        # them were deleted since (skipped, then dropped, by the next ordered read).
        self.id_keys = []
        self.id_holes = 0
        self.version = 0  # counts the writes to docs (a prefetched batch is valid while unchanged)

    @property
    def ns(self):
        """ns is the collection's full name db.coll."""
        return "%s.%s" % (self.db, self.name)


def check_names(db, coll=None):
    """check_names refuses invalid database and collection names (73 InvalidNamespace)."""
    if not db or any(c in db for c in '/\\. "$\0'):
        raise MongoError(73, "Invalid database name: '%s'" % db)
    if coll is not None and (not coll or coll.startswith(".") or "$" in coll or "\0" in coll):
        raise MongoError(73, "Invalid collection name: %s" % coll)


class Store:
    """Store is the whole server state; every access holds store.lock."""

    def __init__(self, oplog_size, max_txn_ops_per_entry=2**31 - 1,
                 max_txn_entry_bytes=16 * 1024 * 1024):
        """__init__ makes an empty store whose oplog starts with 'initiating set'."""
        self.max_txn_ops_per_entry = max(1, int(max_txn_ops_per_entry))
        self.max_txn_entry_bytes = max(1, int(max_txn_entry_bytes))
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.dbs = {}
        self.txn_locks = {}
        self.images = {}  # (ts, txnOpIndex) -> (pre-image raw, post-image raw) for pre/post images
        # document_lookups counts reads of documents by _id (find {_id: v} with limit 1, each _id of
        # a find {_id: {$in: [...]}}, and fullDocument: updateLookup): serverStatus shows it as
        # mongoPeer.documentLookups.
        self.document_lookups = 0
        self.oplog = Oplog(oplog_size)
        with self.lock:
            self.log({"op": "n", "ns": "", "o": {"msg": "initiating set"}})

    def coll(self, db, name):
        """coll returns the collection db.name or None."""
        return self.dbs.get(db, {}).get(name)

    def log(self, entry, ts=None):
        """log appends an oplog entry given as a dict and returns its ts."""
        ts = self.oplog.append(entry, ts)
        self._logged(ts)
        return ts

    def log_bytes(self, head, tail, event=None, meta=None):
        """log_bytes writes an entry given as element bytes (see Oplog.append_bytes)."""
        ts = self.oplog.append_bytes(head, tail, event, meta)
        self._logged(ts)
        return ts

    def _logged(self, ts):
        """_logged wakes waiting readers and now and then drops the images of entries the
        capped oplog no longer holds."""
        self.cond.notify_all()
        if self.images and len(self.images) > 1000 and ts & 0x3FF == 0:
            oldest = self.oplog.oldest() or 0
            for k in [k for k in self.images if k[0] < oldest]:
                del self.images[k]

    def cluster_time(self):
        """cluster_time returns the newest oplog timestamp as a bson Timestamp."""
        return int_ts(self.oplog.last_ts)

    def logged(self, db):
        """logged tells whether writes to database db are logged (not local, not config)."""
        return db not in ("local", "config")

    def create(self, db, name, options=None, must_not_exist=True):
        """create makes a collection and logs its create entry (48 if it exists)."""
        check_names(db, name)
        existing = self.coll(db, name)
        if existing is not None:
            if must_not_exist:
                raise MongoError(48, "Collection %s.%s already exists." % (db, name))
            return existing
        c = Collection(db, name, options)
        self.dbs.setdefault(db, {})[name] = c
        if self.logged(db):
            o = {"create": name}
            for k, v in (options or {}).items():
                o[k] = v
            o["idIndex"] = ID_INDEX
            self.log({"op": "c", "ns": "%s.$cmd" % db, "ui": c.uuid, "o": o})
        return c

    def get_or_create(self, db, name):
        """get_or_create returns the collection, creating (and logging) it if needed."""
        c = self.coll(db, name)
        if c is None:
            c = self.create(db, name)
        return c

    def drop(self, db, name):
        """drop removes a collection and logs the drop (26 if missing); returns it."""
        c = self.coll(db, name)
        if c is None:
            raise MongoError(26, "ns not found")
        del self.dbs[db][name]
        if not self.dbs[db]:
            del self.dbs[db]
        if self.logged(db):
            self.log({"op": "c", "ns": "%s.$cmd" % db, "ui": c.uuid, "o": {"drop": name},
                      "o2": {"numRecords": len(c.docs)}})
        return c

    def drop_database(self, db):
        """drop_database drops every collection of db, then logs dropDatabase."""
        for name in list(self.dbs.get(db, {})):
            self.drop(db, name)
        if self.logged(db):
            self.log({"op": "c", "ns": "%s.$cmd" % db, "o": {"dropDatabase": 1}})

    def rename(self, src_db, src, dst_db, dst, drop_target=False):
        """rename moves a collection (dropTarget optional) and logs renameCollection."""
        c = self.coll(src_db, src)
        if c is None:
            raise MongoError(26, "Source collection %s.%s does not exist" % (src_db, src))
        check_names(dst_db, dst)
        target = self.coll(dst_db, dst)
        o = {"renameCollection": "%s.%s" % (src_db, src), "to": "%s.%s" % (dst_db, dst),
             "stayTemp": False}
        if target is not None:
            if not drop_target:
                raise MongoError(48, "target namespace exists")
            o["dropTarget"] = target.uuid
            del self.dbs[dst_db][dst]
        del self.dbs[src_db][src]
        if not self.dbs[src_db]:
            del self.dbs[src_db]
        c.db, c.name = dst_db, dst
        self.dbs.setdefault(dst_db, {})[dst] = c
        self.log({"op": "c", "ns": "%s.$cmd" % src_db, "ui": c.uuid, "o": o})


def prepare_insert(doc, upsert=False):
    """prepare_insert validates a document for insert and returns (doc, raw) with _id first;
    upsert checks the depth as an update does."""
    if "_id" not in doc:
        new = {"_id": ObjectId()}
        new.update(doc)
        doc = new
    elif next(iter(doc)) != "_id":
        new = {"_id": doc["_id"]}
        new.update((k, v) for k, v in doc.items() if k != "_id")
        doc = new
    idv = doc["_id"]
    if isinstance(idv, list):
        raise MongoError(2, "can't use an array for _id")
    from bson.regex import Regex
    if isinstance(idv, Regex):
        raise MongoError(2, "can't use a regex for _id")
    check_depth(doc, update=upsert)
    for k, v in doc.items():
        if isinstance(v, Timestamp) and v.time == 0 and v.inc == 0:
            import time
            doc[k] = Timestamp(int(time.time()), 1)
    raw = encode(doc)
    if len(raw) > 16 * 1024 * 1024:
        raise MongoError(2, "object to insert too large. size in bytes: %d, max size: 16777216"
                         % len(raw))
    return doc, raw


# The nesting limit of stored documents: [server:src/mongo/bson/bson_depth.h]
# getMaxDepthForUserStorage() = kDefaultMaxAllowableDepth (200) - kExtraSystemDepthLevels (20),
# the 20 levels kept for oplog entries and other wrappers of a stored document.
MAX_USER_DEPTH = 180


def _few_containers(doc, limit):
    """_few_containers tells whether doc holds fewer than limit embedded documents and arrays
    (then it cannot be nested limit levels deep), walking at most limit of them."""
    stack, n = [doc], 0
    while stack:
        v = stack.pop()
        for x in (v.values() if isinstance(v, dict) else v):
            if isinstance(x, (dict, list)):
                n += 1
                if n >= limit:
                    return False
                stack.append(x)
    return True


def check_depth(doc, raw=None, update=False):
    """check_depth refuses documents nested deeper than MAX_USER_DEPTH levels, the top-level
    document being the first, with ErrorCodes::Overflow (15); empty documents and arrays do not
    count (an element must sit at level 181). An insert fails with the message of
    [server:src/mongo/db/ops/insert.cpp] validateDepth (6.0+: "Empty subdocuments do not count
    toward the depth"), an update or upsert result with that of
    [server:src/mongo/db/update/storage_validation.cpp] storageValid. With the raw bytes at hand
    it skips the walk when fewer than MAX_USER_DEPTH embedded documents or arrays (type bytes
    0x03/0x04, or for a large document the containers of its tree) can possibly be present."""
    from .values import element_depth
    if raw is not None and len(raw) < 65536:
        if raw.count(b"\x03") + raw.count(b"\x04") < MAX_USER_DEPTH:
            return
    elif _few_containers(doc, MAX_USER_DEPTH):  # a large document: its tree, not its bytes
        return
    if element_depth(doc) <= MAX_USER_DEPTH:
        return
    if update:
        raise MongoError(15, "Document exceeds maximum nesting depth of %d" % MAX_USER_DEPTH)
    raise MongoError(15, "cannot insert document because it exceeds %d levels of nesting"
                     % MAX_USER_DEPTH)


def dup_key_error(c, idv):
    """dup_key_error builds the 11000 DuplicateKey error of an _id."""
    return MongoError(11000, "E11000 duplicate key error collection: %s index: _id_ dup key: "
                             "{ _id: %s }" % (c.ns, _shell_repr(idv)),
                      extra={"keyPattern": {"_id": 1}, "keyValue": {"_id": idv}})


def _shell_repr(v):
    """_shell_repr renders an _id the way mongod's error messages show it."""
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, ObjectId):
        return "ObjectId('%s')" % v
    return repr(v)


class DirectWriter:
    """DirectWriter applies writes immediately and logs one oplog entry per write."""

    def __init__(self, store, lsid=None, txn_number=None):
        """__init__ makes a writer; lsid and txn_number make its writes retryable."""
        self.store = store
        self.lsid = lsid
        self.txn_number = txn_number
        self.stmt = 0
        self.prev = None
        self.session_el = None

    def coll(self, db, name, create=False):
        """coll returns the collection db.name, creating it when asked."""
        c = self.store.coll(db, name)
        if c is None and create:
            c = self.store.create(db, name)
        return c

    def scan(self, c):
        """scan returns the (key, raw) pairs of a collection in natural order."""
        return list(c.docs.items())

    def count(self, c):
        """count returns how many documents c holds (from its size, as mongod's count without a
        query reads the collection's metadata)."""
        return len(c.docs)

    def get(self, c, key):
        """get returns the raw document stored under key, or None."""
        return c.docs.get(key)

    def _log(self, c, op, o_el, o2_el, event=None):
        """_log writes a CRUD entry from element bytes (o, o2), with the retryable-write fields
        (lsid, txnNumber, stmtId, prevOpTime) when the writer has them; returns its ts."""
        if not self.store.logged(c.db):
            return None
        h = fastlog.head(op, c.ns, c.uuid)
        if self.lsid is not None and self.txn_number is not None:
            if self.session_el is None:
                self.session_el = encode({"lsid": oplog_lsid(self.lsid),
                                          "txnNumber": Int64(self.txn_number)})[4:-1]
            pre = self.session_el + h + o_el + o2_el + b"\x10stmtId\x00" + \
                fastlog._I32.pack(self.stmt)
            self.stmt += 1
            prev = 0 if self.prev is None else (self.prev.time << 32 | self.prev.inc)
            tail = b"\x03prevOpTime\x00" + fastlog.frame(
                fastlog.ts_el("ts", prev) + b"\x12t\x00" +
                fastlog._I64.pack(-1 if self.prev is None else 1))
            ts = self.store.log_bytes(pre, tail, event, (op, c.ns))
            self.prev = int_ts(ts)
            return ts
        return self.store.log_bytes(h + o_el + o2_el, b"", event, (op, c.ns))

    def insert(self, c, doc, raw):
        """insert stores a new document and logs it (with its pre-encoded change event)."""
        key = id_key(doc["_id"])
        if key in c.docs:
            raise dup_key_error(c, doc["_id"])
        c.docs[key] = raw
        c.version += 1
        index_insert(c, key)
        kd = fastlog.key_doc(raw, doc["_id"])
        ns, ui = c.ns, c.uuid
        self._log(c, "i", b"\x03o\x00" + raw, b"\x03o2\x00" + kd,
                  lambda ts, wall: (ns, "insert") +
                  fastlog.event_bytes("insert", ts, wall, ns, ui, kd, raw))

    def update(self, c, key, idv, new_raw, o):
        """update replaces a stored document and logs the diff (o) or the replacement."""
        pre = c.docs.get(key)
        c.docs[key] = new_raw
        c.version += 1
        kd = fastlog.key_doc(new_raw, idv)
        event = None
        if isinstance(o, RawBSONDocument):
            ns, ui = c.ns, c.uuid
            o_el = b"\x03o\x00" + o.raw
            event = (lambda ts, wall: (ns, "replace") +
                     fastlog.event_bytes("replace", ts, wall, ns, ui, kd, o.raw))
        else:
            ns, ui = c.ns, c.uuid
            o_el = b"\x03o\x00" + encode(o)
            event = (lambda ts, wall: fastlog.update_event(ts, wall, ns, ui, kd, o))
        ts = self._log(c, "u", o_el, b"\x03o2\x00" + kd, event)
        if ts is not None and images_enabled(c):
            self.store.images[(ts, 0)] = (pre, new_raw)

    def delete(self, c, key, idv):
        """delete removes a stored document and logs {_id} (with its change event)."""
        pre = c.docs.pop(key)
        c.version += 1
        c.id_holes += 1
        kd = fastlog.key_doc(pre, idv)
        ns, ui = c.ns, c.uuid
        ts = self._log(c, "d", b"\x03o\x00" + kd, b"",
                       lambda ts, wall: (ns, "delete") +
                       fastlog.event_bytes("delete", ts, wall, ns, ui, kd))
        if ts is not None and images_enabled(c):
            self.store.images[(ts, 0)] = (pre, None)


def images_enabled(c):
    """images_enabled tells whether a collection records change-stream pre- and post-images."""
    opt = c.options.get("changeStreamPreAndPostImages")
    return isinstance(opt, dict) and bool(opt.get("enabled"))


def oplog_lsid(lsid):
    """oplog_lsid adds the user digest mongod stores with a session id (SHA-256 of no user)."""
    import hashlib
    out = {"id": lsid.get("id")} if isinstance(lsid, dict) else {"id": lsid}
    out["uid"] = hashlib.sha256(b"").digest()
    return out
