"""Command dispatch, reply decoration and the admin / DDL commands."""
import datetime
import time

from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.timestamp import Timestamp

from . import auth, crud, failpoints
from .errors import MongoError
from .labels import decorate_error
from .oplog import int_ts
from .storage import DirectWriter, INTERNAL_DBS
from .txn import TRANSIENT

WRITE_COMMANDS = {"insert", "update", "delete", "findAndModify", "findandmodify"}
TXN_ALLOWED = {"find", "getMore", "insert", "update", "delete", "findAndModify", "findandmodify",
               "aggregate", "count", "distinct", "commitTransaction", "abortTransaction",
               "killCursors", "create", "ping"}
ELECTION_ID = ObjectId("7fffffff0000000000000001")


class Ctx:
    """Ctx is what a command handler sees: the server, the connection, the request."""

    def __init__(self, server, conn, db, body, seqs):
        """__init__ makes the context of one command; writes go to the database directly."""
        self.server = server
        self.store = server.store
        self.conn = conn
        self.db = db
        self.body = body
        self.seqs = seqs
        self.writer = DirectWriter(server.store)
        self.in_txn = False
        self.txn = None

    def abort_txn(self):
        """abort_txn aborts the command's transaction if it is still in progress."""
        if self.txn is not None and self.txn.state == "in_progress":
            self.txn.abort()


def _local_now():
    """_local_now returns the current time as a millisecond-precision datetime."""
    now = datetime.datetime.utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def cmd_hello(ctx):
    """cmd_hello answers hello/isMaster as the primary of the replica set."""
    s = ctx.server
    me = s.address
    name = next(iter(ctx.body))
    if name == "hello":
        r = {"isWritablePrimary": True}
    else:
        r = {"ismaster": True}
        if ctx.body.get("helloOk"):
            r["helloOk"] = True
    ct = ctx.store.cluster_time()
    wall = ctx.store.oplog.last_wall or _local_now()
    optime = {"ts": ct, "t": Int64(1)}
    r.update({
        "hosts": [me], "setName": s.replset, "setVersion": 1, "secondary": False,
        "primary": me, "me": me, "electionId": ELECTION_ID,
        "lastWrite": {"opTime": optime, "lastWriteDate": wall, "majorityOpTime": optime,
                      "majorityWriteDate": wall},
        "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000,
        "maxWriteBatchSize": 100000, "localTime": _local_now(),
        "logicalSessionTimeoutMinutes": 30, "connectionId": ctx.conn.id,
        "minWireVersion": 0, "maxWireVersion": 17, "readOnly": False,
    })
    mechs = auth.supported_mechs(ctx.server.users, ctx.body)
    if mechs is not None:
        r["saslSupportedMechs"] = mechs
    spec = auth.speculative(ctx.server.users, ctx.conn, ctx.body)
    if spec is not None:
        r["speculativeAuthenticate"] = spec
    client = ctx.body.get("client")
    if isinstance(client, dict):
        app = client.get("application", {})
        if isinstance(app, dict) and "name" in app:
            ctx.conn.app_name = app["name"]
    return r


def cmd_ping(ctx):
    """cmd_ping answers ping (and the accepted no-op commands)."""
    return {}


def cmd_build_info(ctx):
    """cmd_build_info answers buildInfo."""
    return {"version": "6.0.99-mongo-peer", "gitVersion": "mongo-peer",
            "versionArray": [6, 0, 99, 0], "bits": 64, "debug": False,
            "maxBsonObjectSize": 16777216, "storageEngines": ["inMemory"],
            "modules": [], "javascriptEngine": "none", "sysInfo": "deprecated",
            "openssl": {"running": "disabled"}}


def cmd_list_databases(ctx):
    """cmd_list_databases answers listDatabases (filter, nameOnly)."""
    dbs = []
    for name in sorted(set(ctx.store.dbs) | {"admin", "local", "config"}):
        colls = ctx.store.dbs.get(name, {})
        size = sum(sum(len(r) for r in c.docs.values()) for c in colls.values())
        if name == "local":
            size += sum(len(r) for r in ctx.store.oplog.live_raws())
        dbs.append({"name": name, "sizeOnDisk": Int64(max(size, 8192)), "empty": False})
    flt = ctx.body.get("filter")
    if flt:
        from .query import matches
        dbs = [d for d in dbs if matches(d, flt)]
    if ctx.body.get("nameOnly"):
        dbs = [{"name": d["name"]} for d in dbs]
        return {"databases": dbs}
    return {"databases": dbs, "totalSize": Int64(sum(d["sizeOnDisk"] for d in dbs)),
            "totalSizeMb": Int64(0)}


def collection_infos(ctx, db):
    """collection_infos returns listCollections' documents for a database."""
    out = []
    colls = dict(ctx.store.dbs.get(db, {}))
    names = sorted(colls)
    for name in names:
        c = colls[name]
        options = {k: v for k, v in c.options.items() if not k.startswith("_peer")}
        out.append({"name": name, "type": "collection", "options": options,
                    "info": {"readOnly": False, "uuid": c.uuid},
                    "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}})
    if db == "local":
        out.append({"name": "oplog.rs", "type": "collection",
                    "options": {"capped": True, "size": Int64(ctx.store.oplog.max_entries * 1024)},
                    "info": {"readOnly": False, "uuid": ctx.server.oplog_uuid}})
    return out


def cmd_list_collections(ctx):
    """cmd_list_collections answers listCollections (filter, nameOnly, cursor)."""
    from .cursors import Cursor, batch_reply
    from .query import matches
    infos = collection_infos(ctx, ctx.db)
    flt = ctx.body.get("filter") or {}
    infos = [i for i in infos if matches(i, flt)]
    if ctx.body.get("nameOnly"):
        infos = [{"name": i["name"], "type": i["type"]} for i in infos]
    cur = Cursor("%s.$cmd.listCollections" % ctx.db, infos)
    bs = (ctx.body.get("cursor") or {}).get("batchSize")
    return batch_reply(ctx.server, cur, 101 if bs is None else bs, None, True)


def cmd_list_indexes(ctx):
    """cmd_list_indexes lists the _id index and the recorded index specs."""
    from .cursors import Cursor, batch_reply
    c = ctx.store.coll(ctx.db, ctx.body["listIndexes"])
    if c is None:
        raise MongoError(26, "ns does not exist: %s.%s" % (ctx.db, ctx.body["listIndexes"]))
    idx = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}] + list(c.options.get("_peer_indexes", []))
    cur = Cursor("%s.$cmd.listIndexes.%s" % (ctx.db, c.name), idx)
    return batch_reply(ctx.server, cur, 101, None, True)


def cmd_create_indexes(ctx):
    """cmd_create_indexes records index specs (no index semantics) and logs them like mongod:
    a createIndexes entry per index on an empty collection, else a two-phase build
    (startIndexBuild + commitIndexBuild)."""
    import uuid
    from bson.binary import Binary
    name = ctx.body["createIndexes"]
    created = ctx.store.coll(ctx.db, name) is None
    c = ctx.store.get_or_create(ctx.db, name)
    idx = c.options.setdefault("_peer_indexes", [])
    before = len(idx) + 1
    new = []
    for spec in ctx.body.get("indexes", []):
        if not isinstance(spec, dict) or "key" not in spec or "name" not in spec:
            raise MongoError(9, "The 'key' and 'name' fields are required for an index spec")
        if spec.get("name") != "_id_" and not any(i["name"] == spec.get("name") for i in idx):
            d = {"v": 2}
            d.update(spec)
            idx.append(d)
            new.append(d)
    if new and ctx.store.logged(ctx.db):
        ns = "%s.$cmd" % ctx.db
        if not c.docs:
            for d in new:
                o = {"createIndexes": name}
                o.update(d)
                ctx.store.log({"op": "c", "ns": ns, "ui": c.uuid, "o": o})
        else:
            build = Binary(uuid.uuid4().bytes, 4)
            for phase in ("startIndexBuild", "commitIndexBuild"):
                ctx.store.log({"op": "c", "ns": ns, "ui": c.uuid,
                               "o": {phase: name, "indexBuildUUID": build, "indexes": new}})
    return {"numIndexesBefore": before, "numIndexesAfter": len(idx) + 1,
            "createdCollectionAutomatically": created}


def cmd_drop_indexes(ctx):
    """cmd_drop_indexes drops recorded index specs and logs each drop."""
    name = ctx.body["dropIndexes"]
    c = ctx.store.coll(ctx.db, name)
    if c is None:
        raise MongoError(26, "ns not found %s.%s" % (ctx.db, name))
    idx = c.options.get("_peer_indexes", [])
    n = len(idx) + 1
    which = ctx.body.get("index")
    if which == "*":
        gone = list(idx)
    else:
        wanted = which if isinstance(which, list) else [which]
        gone = []
        for w in wanted:
            if w == "_id_" or w == {"_id": 1}:
                raise MongoError(72, "cannot drop _id index")
            hit = [i for i in idx if i["name"] == w or i.get("key") == w]
            if not hit:
                raise MongoError(27, "index not found with name [%s]" % (w,))
            gone.extend(hit)
    c.options["_peer_indexes"] = [i for i in idx if i not in gone]
    if ctx.store.logged(ctx.db):
        for spec in gone:
            ctx.store.log({"op": "c", "ns": "%s.$cmd" % ctx.db, "ui": c.uuid,
                           "o": {"dropIndexes": name, "index": spec["name"]}, "o2": spec})
    return {"nIndexesWas": n}


def cmd_create(ctx):
    """cmd_create creates a collection with its options and logs it."""
    opts = {}
    for k, v in ctx.body.items():
        if k in ("capped", "size", "max", "validator", "validationLevel", "validationAction",
                 "collation", "changeStreamPreAndPostImages"):
            opts[k] = v
    if "viewOn" in ctx.body or "timeseries" in ctx.body:
        raise MongoError(115, "mongo-peer does not support views or time series collections")
    ctx.store.create(ctx.db, ctx.body["create"], opts)
    return {}


def cmd_coll_mod(ctx):
    """cmd_coll_mod changes collection options (changeStreamPreAndPostImages, validators are
    recorded only) and logs a collMod entry."""
    name = ctx.body["collMod"]
    c = ctx.store.coll(ctx.db, name)
    if c is None:
        raise MongoError(26, "ns does not exist")
    o = {"collMod": name}
    for k, v in ctx.body.items():
        if k in ("changeStreamPreAndPostImages", "validator", "validationLevel",
                 "validationAction"):
            c.options[k] = v
            o[k] = v
    ctx.store.log({"op": "c", "ns": "%s.$cmd" % ctx.db, "ui": c.uuid, "o": o})
    return {}


def cmd_drop(ctx):
    """cmd_drop drops a collection and logs it."""
    name = ctx.body["drop"]
    if ctx.db == "local" and name == "oplog.rs":
        raise MongoError(20, "cannot drop the oplog")
    c = ctx.store.drop(ctx.db, name)
    return {"nIndexesWas": 1 + len(c.options.get("_peer_indexes", [])), "ns": c.ns}


def cmd_drop_database(ctx):
    """cmd_drop_database drops a database (not admin, local or config)."""
    if ctx.db in ("admin", "local", "config"):
        raise MongoError(20, "Dropping the '%s' database is prohibited." % ctx.db)
    ctx.store.drop_database(ctx.db)
    return {"dropped": ctx.db}


def cmd_rename(ctx):
    """cmd_rename runs renameCollection (on admin only)."""
    if ctx.db != "admin":
        raise MongoError(13, "renameCollection may only be run against the admin database.")
    src, dst = ctx.body["renameCollection"], ctx.body.get("to")
    if not isinstance(dst, str) or "." not in src or "." not in dst:
        raise MongoError(73, "Invalid target namespace: %s" % dst)
    sdb, scoll = src.split(".", 1)
    ddb, dcoll = dst.split(".", 1)
    ctx.store.rename(sdb, scoll, ddb, dcoll, bool(ctx.body.get("dropTarget")))
    return {}


def cmd_end_sessions(ctx):
    """cmd_end_sessions ends sessions."""
    ctx.server.sessions.end(ctx.body.get("endSessions", []))
    return {}


def cmd_repl_status(ctx):
    """cmd_repl_status answers replSetGetStatus for the one-member set."""
    s = ctx.server
    ct = ctx.store.cluster_time()
    optime = {"ts": ct, "t": Int64(1)}
    wall = ctx.store.oplog.last_wall or _local_now()
    return {"set": s.replset, "date": _local_now(), "myState": 1, "term": Int64(1),
            "heartbeatIntervalMillis": Int64(2000), "majorityVoteCount": 1,
            "writeMajorityCount": 1, "votingMembersCount": 1, "writableVotingMembersCount": 1,
            "optimes": {"lastCommittedOpTime": optime, "lastCommittedWallTime": wall,
                        "readConcernMajorityOpTime": optime, "appliedOpTime": optime,
                        "durableOpTime": optime, "lastAppliedWallTime": wall,
                        "lastDurableWallTime": wall},
            "members": [{"_id": 0, "name": s.address, "health": 1.0,
                         "state": 1, "stateStr": "PRIMARY",
                         "uptime": int(time.time() - s.started), "optime": optime,
                         "optimeDate": wall, "lastAppliedWallTime": wall,
                         "lastDurableWallTime": wall, "syncSourceHost": "", "syncSourceId": -1,
                         "infoMessage": "", "electionTime": int_ts(ctx.store.oplog.oldest())
                         if ctx.store.oplog.count() else Timestamp(0, 0),
                         "electionDate": datetime.datetime.utcfromtimestamp(int(s.started)),
                         "configVersion": 1, "configTerm": 1, "self": True,
                         "lastHeartbeatMessage": ""}]}


def cmd_repl_config(ctx):
    """cmd_repl_config answers replSetGetConfig."""
    s = ctx.server
    return {"config": {"_id": s.replset, "version": 1, "term": 1, "protocolVersion": Int64(1),
                       "members": [{"_id": 0, "host": s.address,
                                    "arbiterOnly": False, "buildIndexes": True, "hidden": False,
                                    "priority": 1.0, "tags": {}, "secondaryDelaySecs": Int64(0),
                                    "votes": 1}],
                       "settings": {"chainingAllowed": True}}}


def cmd_get_parameter(ctx):
    """cmd_get_parameter answers getParameter (featureCompatibilityVersion, enableTestCommands)."""
    r = {}
    b = ctx.body
    if b.get("featureCompatibilityVersion") or b.get("getParameter") == "*":
        r["featureCompatibilityVersion"] = {"version": "6.0"}
    if "enableTestCommands" in b or b.get("getParameter") == "*":
        r["enableTestCommands"] = True
    return r


def cmd_configure_fail_point(ctx):
    """cmd_configure_fail_point sets a fail point (on admin only)."""
    if ctx.db != "admin":
        raise MongoError(13, "configureFailPoint may only be run against the admin database.")
    return ctx.server.failpoints.configure(ctx.body)


def cmd_get_last_error(ctx):
    """cmd_get_last_error answers the legacy getLastError."""
    return {"n": 0, "err": None, "connectionId": ctx.conn.id}


def cmd_server_status(ctx):
    """cmd_server_status answers a minimal serverStatus."""
    return {"host": ctx.server.address, "version": "6.0.99-mongo-peer",
            "process": "mongod", "pid": Int64(ctx.server.pid),
            "uptime": float(time.time() - ctx.server.started), "localTime": _local_now(),
            "connections": {"current": len(ctx.server.conns), "available": 1000},
            "mongoPeer": {"documentLookups": Int64(ctx.store.document_lookups)}}


def cmd_append_oplog_note(ctx):
    """cmd_append_oplog_note writes a no-op oplog entry with the given data."""
    ctx.store.log({"op": "n", "ns": "", "o": ctx.body.get("data", {})})
    return {}


def cmd_whatsmyuri(ctx):
    """cmd_whatsmyuri returns the client's address."""
    return {"you": "%s:%d" % ctx.conn.addr[:2]}


def cmd_connection_status(ctx):
    """cmd_connection_status lists the connection's authenticated users."""
    users = [{"user": u, "db": "admin"} for u in sorted(ctx.conn.users)]
    roles = [{"role": "root", "db": "admin"}] if users else []
    return {"authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": roles}}


def cmd_sasl_start(ctx):
    """cmd_sasl_start starts a SCRAM conversation (334 without --auth)."""
    if not ctx.server.users.enabled:
        raise MongoError(334, "Received authentication for mechanism %s which is not enabled"
                         % ctx.body.get("mechanism"))
    return auth.sasl_start(ctx.server.users, ctx.conn, ctx.body)


def cmd_sasl_continue(ctx):
    """cmd_sasl_continue continues a SCRAM conversation."""
    return auth.sasl_continue(ctx.server.users, ctx.conn, ctx.body)


def cmd_logout(ctx):
    """cmd_logout forgets the connection's users."""
    ctx.conn.users.clear()
    return {}


def cmd_commit(ctx):
    """cmd_commit commits the session's transaction (251 if aborted; again is a no-op)."""
    if not ctx.in_txn:
        raise MongoError(251, "commitTransaction must be run within a transaction",
                         labels=TRANSIENT)
    if ctx.txn.state == "in_progress":
        ctx.txn.commit()
    elif ctx.txn.state == "aborted":
        raise MongoError(251, "Transaction %d has been aborted." % ctx.txn.txn_number,
                         labels=TRANSIENT)
    return {}


def cmd_abort(ctx):
    """cmd_abort aborts the session's transaction (256 if committed, 251 if aborted)."""
    if not ctx.in_txn:
        raise MongoError(251, "abortTransaction must be run within a transaction")
    if ctx.txn.state == "committed":
        raise MongoError(256, "Transaction %d has been committed." % ctx.txn.txn_number)
    if ctx.txn.state == "aborted":
        raise MongoError(251, "Transaction %d has been aborted." % ctx.txn.txn_number)
    ctx.txn.abort()
    return {}


def cmd_aggregate(ctx):
    """cmd_aggregate hands aggregate to the aggregate module."""
    from .aggregate import cmd_aggregate as agg
    return agg(ctx)


def cmd_db_stats(ctx):
    """cmd_db_stats answers a minimal dbStats."""
    colls = ctx.store.dbs.get(ctx.db, {})
    n = sum(len(c.docs) for c in colls.values())
    size = sum(sum(len(r) for r in c.docs.values()) for c in colls.values())
    return {"db": ctx.db, "collections": len(colls), "views": 0, "objects": n,
            "dataSize": float(size), "storageSize": float(size), "indexes": len(colls)}


def cmd_coll_stats(ctx):
    """cmd_coll_stats answers a minimal collStats; local.oplog.rs as mongod's capped oplog (its
    caps as max entries and maxSize bytes, the size listCollections reports)."""
    if ctx.db == "local" and ctx.body["collStats"] == "oplog.rs":
        return _oplog_stats(ctx)
    c = ctx.store.coll(ctx.db, ctx.body["collStats"])
    if c is None:
        raise MongoError(26, "Collection [%s.%s] not found." % (ctx.db, ctx.body["collStats"]))
    size = sum(len(r) for r in c.docs.values())
    return {"ns": c.ns, "count": len(c.docs), "size": size, "storageSize": size,
            "nindexes": 1, "capped": bool(c.options.get("capped"))}


def _oplog_stats(ctx):
    """_oplog_stats describes local.oplog.rs as collStats does a capped collection."""
    oplog = ctx.store.oplog
    size = sum(len(r) for r in oplog.live_raws())
    n = oplog.count()
    return {"ns": "local.oplog.rs", "count": n, "size": size, "avgObjSize": size // n if n else 0,
            "storageSize": size, "capped": True, "max": Int64(oplog.max_entries),
            "maxSize": Int64(oplog.max_entries * 1024), "nindexes": 0}


HANDLERS = {
    "hello": cmd_hello, "isMaster": cmd_hello, "ismaster": cmd_hello, "ping": cmd_ping,
    "buildInfo": cmd_build_info, "buildinfo": cmd_build_info,
    "listDatabases": cmd_list_databases, "listCollections": cmd_list_collections,
    "listIndexes": cmd_list_indexes, "createIndexes": cmd_create_indexes,
    "dropIndexes": cmd_drop_indexes, "deleteIndexes": cmd_drop_indexes, "create": cmd_create, "drop": cmd_drop,
    "collMod": cmd_coll_mod,
    "dropDatabase": cmd_drop_database, "renameCollection": cmd_rename,
    "insert": crud.cmd_insert, "update": crud.cmd_update, "delete": crud.cmd_delete,
    "findAndModify": crud.cmd_find_and_modify, "findandmodify": crud.cmd_find_and_modify,
    "find": crud.cmd_find, "getMore": crud.cmd_get_more, "killCursors": crud.cmd_kill_cursors,
    "count": crud.cmd_count, "distinct": crud.cmd_distinct, "aggregate": cmd_aggregate,
    "endSessions": cmd_end_sessions, "commitTransaction": cmd_commit,
    "abortTransaction": cmd_abort, "replSetGetStatus": cmd_repl_status,
    "replSetGetConfig": cmd_repl_config, "getParameter": cmd_get_parameter,
    "configureFailPoint": cmd_configure_fail_point, "getLastError": cmd_get_last_error,
    "getlasterror": cmd_get_last_error, "serverStatus": cmd_server_status,
    "appendOplogNote": cmd_append_oplog_note, "whatsmyuri": cmd_whatsmyuri,
    "connectionStatus": cmd_connection_status, "dbStats": cmd_db_stats,
    "collStats": cmd_coll_stats, "killAllSessions": cmd_ping, "refreshSessions": cmd_ping,
    "logout": cmd_logout, "getFreeMonitoringStatus": cmd_ping,
    "saslStart": cmd_sasl_start, "saslContinue": cmd_sasl_continue,
}

NO_SESSION = {"hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo",
              "configureFailPoint", "endSessions"}


class CloseConnection(Exception):
    """CloseConnection asks the server to drop the connection without replying."""


def dispatch(server, conn, db, body, seqs):
    """dispatch runs one command and returns the reply document (a dict)."""
    if not body:
        raise MongoError(59, "no such command: ''")
    name = next(iter(body))
    handler = HANDLERS.get(name)
    retryable = (name in WRITE_COMMANDS and "txnNumber" in body and "autocommit" not in body)
    try:
        auth.check_access(server.users, conn, name)
    except MongoError as e:
        return _decorate(server, e.to_doc())
    data = None
    with server.store.lock:
        data = server.failpoints.check(name, conn.app_name)
    if data is not None:
        if data.get("blockConnection"):
            time.sleep(float(data.get("blockTimeMS", 0)) / 1000.0)
        if data.get("closeConnection"):
            raise CloseConnection()
        err = failpoints.error_reply(data, retryable)
        if err is not None:
            return _decorate(server, decorate_error(err.to_doc(), name, body,
                                                    _is_change_stream(server, name, body),
                                                    data.get("errorLabels")))
    if handler is None:
        return _decorate(server, MongoError(59, "no such command: '%s'" % name).to_doc())
    with server.store.lock:
        ctx = Ctx(server, conn, db, body, seqs)
        cs_flag = _is_change_stream(server, name, body)
        try:
            reply = _run(server, ctx, name, handler, body, retryable)
        except MongoError as e:
            reply = e.to_doc()
            if ctx.in_txn and e.code != 251 and ctx.txn is not None and \
                    name not in ("commitTransaction", "abortTransaction"):
                ctx.abort_txn()
        if data is not None and "writeConcernError" in data and reply.get("ok", 1):
            reply["writeConcernError"] = data["writeConcernError"]
        if not reply.get("ok", 1):
            decorate_error(reply, name, body, cs_flag)
        return _decorate(server, reply)


def _is_change_stream(server, name, body):
    """_is_change_stream tells whether a command opens or continues a change stream."""
    if name == "aggregate":
        p = body.get("pipeline")
        return isinstance(p, list) and bool(p) and isinstance(p[0], dict) and "$changeStream" in p[0]
    if name == "getMore":
        from .changestream import ChangeStreamCursor
        try:
            cur = server.cursors.get(int(body["getMore"]))
        except (TypeError, ValueError):
            return False
        return isinstance(cur, ChangeStreamCursor)
    return False


def _run(server, ctx, name, handler, body, retryable):
    """_run runs a handler in its session context: transaction, retryable write or plain."""
    if "lsid" in body and "txnNumber" in body and body.get("autocommit") is False:
        if name not in TXN_ALLOWED:
            raise MongoError(263, "Cannot run '%s' in a multi-document transaction." % name)
        ctx.txn = server.sessions.txn_for(body, name)
        ctx.writer = ctx.txn
        ctx.in_txn = True
        if ctx.db in INTERNAL_DBS and name in WRITE_COMMANDS:
            raise MongoError(263, "Cannot write to system collection %s within a transaction."
                             % ctx.db)
    elif retryable:
        sess = server.sessions.get(body["lsid"])
        n = int(body["txnNumber"])
        if n < sess.txn_number:
            raise MongoError(225, "Retryable write with txnNumber %d is prohibited on session "
                                  "because a newer retryable write with txnNumber %d has "
                                  "already started on this session." % (n, sess.txn_number))
        if n == sess.txn_number and n in sess.retry_replies:
            return dict(sess.retry_replies[n])
        sess.txn_number = n
        if sess.txn is not None and sess.txn.state == "in_progress":
            sess.txn.abort()
        sess.txn = None
        ctx.writer = DirectWriter(server.store, body["lsid"], n)
    reply = handler(ctx)
    if reply is None:
        reply = {}
    if retryable:
        sess = server.sessions.get(body["lsid"])
        sess.retry_replies = {int(body["txnNumber"]): dict(reply)}
    return reply


def _decorate(server, reply):
    """_decorate adds ok, $clusterTime and operationTime to a reply."""
    if "ok" not in reply:
        reply["ok"] = 1.0
    ct = server.store.cluster_time()
    reply["$clusterTime"] = {"clusterTime": ct,
                             "signature": {"hash": b"\0" * 20, "keyId": Int64(0)}}
    reply["operationTime"] = ct
    return reply
