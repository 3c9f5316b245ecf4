"""TCP server: one thread per connection, command dispatch, signals."""
import gc
import itertools
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid

from bson.binary import Binary

from . import wire
from .commands import CloseConnection, dispatch
from .cursors import CursorRegistry
from .errors import MongoError
from .auth import Users
from .failpoints import FailPoints
from .storage import Store
from .txn import Sessions

_conn_ids = itertools.count(1)
NOOP_INTERVAL = 10


class Connection:
    def __init__(self, sock, addr):
        """__init__ wraps an accepted socket with its per-connection state."""
        self.sock = sock
        self.addr = addr
        self.id = next(_conn_ids)
        self.app_name = None
        self.users = set()
        self.sasl = None


class Server:
    """Server owns the listening socket and the shared state every connection uses."""

    def __init__(self, host="127.0.0.1", port=27017, replset="rs0", oplog_size=1000000,
                 verbose=False, auth_users=None, max_txn_ops_per_entry=2**31 - 1,
                 dbpath=None, max_txn_entry_bytes=16 * 1024 * 1024):
        """__init__ makes the server and its shared state (loading --dbpath data)."""
        self.host = host
        self.port = port
        self.replset = replset
        self.verbose = verbose
        self.store = Store(oplog_size, max_txn_ops_per_entry, max_txn_entry_bytes)
        self.dbpath = dbpath
        if dbpath:
            from . import persist
            with self.store.lock:
                if persist.load(self.store, dbpath):
                    self.store.log({"op": "n", "ns": "", "o": {"msg": "mongo-peer restarted"}})
        self.cursors = CursorRegistry()
        self.sessions = Sessions(self.store)
        self.failpoints = FailPoints()
        self.users = Users(auth_users)
        self.oplog_uuid = Binary(uuid.uuid4().bytes, 4)
        self.conns = {}
        self.stopping = False
        self.started = time.time()
        self.pid = os.getpid()
        self.listener = None
        self.last_noop_check = 0.0

    @property
    def address(self):
        """address is host:port as clients should name this server ([v6]:port for IPv6)."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    def bind(self):
        """bind opens the listening socket (port 0: the kernel picks one)."""
        ls = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                           socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        if self.host in ("0.0.0.0", ""):
            self.host = "127.0.0.1"
        elif self.host == "::":
            self.host = "::1"
        self.listener = ls

    def serve_forever(self):
        """serve_forever accepts connections (one thread each) until stopped, then saves the
        --dbpath data."""
        self.listener.settimeout(0.2)
        while not self.stopping:
            self._periodic_noop()
            try:
                sock, addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping:
                    break
                raise
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, addr)
            t = threading.Thread(target=self._serve_conn, args=(conn,), daemon=True,
                                 name="conn%d" % conn.id)
            t.start()
        try:
            self.listener.close()
        except OSError:
            pass
        if self.dbpath:
            from . import persist
            with self.store.lock:
                persist.save(self.store, self.dbpath)

    def _periodic_noop(self):
        """_periodic_noop writes a no-op oplog entry after 10 idle seconds, as mongod does."""
        now = time.monotonic()
        if now - self.last_noop_check < 1.0:
            return
        self.last_noop_check = now
        with self.store.lock:
            last = self.store.oplog.last_ts >> 32
            if time.time() - last >= NOOP_INTERVAL:
                self.store.log({"op": "n", "ns": "", "o": {"msg": "periodic noop"}})

    def stop(self, *_args):
        """stop asks the server to stop and wakes waiting getMores."""
        self.stopping = True
        with self.store.lock:
            self.store.cond.notify_all()

    def _serve_conn(self, conn):
        """_serve_conn reads requests from one connection and sends the replies."""
        self.conns[conn.id] = conn
        try:
            while not self.stopping:
                req = wire.read_message(conn.sock)
                if req is None:
                    break
                out = self._handle(conn, req)
                if out is None:
                    continue
                conn.sock.sendall(out)
                after, conn.after_reply = getattr(conn, "after_reply", None), None
                if after is not None:
                    with self.store.lock:
                        after()
        except CloseConnection:
            pass
        except (ConnectionError, OSError, wire.ProtocolError) as e:
            if self.verbose:
                print("connection %d: %s" % (conn.id, e), file=sys.stderr)
        finally:
            self.conns.pop(conn.id, None)
            try:
                conn.sock.close()
            except OSError:
                pass

    def _handle(self, conn, req):
        """_handle runs one request and returns the framed reply (None for moreToCome)."""
        if req.opcode == wire.OP_QUERY:
            db = req.full_collection.split(".", 1)[0]
            if not req.full_collection.endswith(".$cmd"):
                reply = {"$err": "mongo-peer supports OP_QUERY only for commands", "code": 5739101}
                return wire.encode_reply(req.request_id, wire.encode_doc(reply), flags=2)
        else:
            db = req.body.get("$db", "admin")
        body = req.body
        started = time.monotonic()
        try:
            reply = dispatch(self, conn, db, body, req.raw_sequences)
        except CloseConnection:
            raise
        except MongoError as e:
            reply = e.to_doc()
        except Exception as e:  # a peer bug must not look like a network error
            traceback.print_exc()
            reply = MongoError(1, "mongo-peer internal error: %r" % (e,)).to_doc()
        try:
            data = wire.encode_doc(reply)
        except Exception as e:
            traceback.print_exc()
            data = wire.encode_doc(MongoError(1, "mongo-peer could not encode reply: %r" % (e,))
                                   .to_doc())
        if self.verbose:
            name = next(iter(body), "?")
            status = "ok" if reply.get("ok") else "error %s %s" % (reply.get("code"),
                                                                    reply.get("errmsg"))
            print("conn%d %s.%s %s %.1fms %s" % (conn.id, db, name, body.get(name, ""),
                                                 (time.monotonic() - started) * 1000, status),
                  file=sys.stderr, flush=True)
        if req.opcode == wire.OP_QUERY:
            return wire.encode_reply(req.request_id, data)
        if req.more_to_come:
            return None
        return wire.encode_msg(req.request_id, data)


def main(argv=None):
    """main parses the command line, starts the server and serves until SIGTERM/SIGINT."""
    import argparse
    p = argparse.ArgumentParser(prog="mongo-peer",
                                description="MongoDB 6.0 single-node replica set look-alike")
    p.add_argument("--port", type=int, default=27017)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--replset", default="rs0")
    p.add_argument("--oplog-size", type=int, default=1000000,
                   help="maximum number of oplog entries kept (default 1000000)")
    p.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                   help="require SCRAM authentication; defines a user in admin (repeatable)")
    p.add_argument("--max-txn-ops-per-oplog-entry", type=int, default=2**31 - 1, metavar="N",
                   help="split committed transactions into applyOps chains of at most N "
                        "operations (mongod's maxNumberOfTransactionOperationsInSingleOplogEntry)")
    p.add_argument("--max-txn-oplog-entry-bytes", type=int, default=16 * 1024 * 1024,
                   metavar="N",
                   help="start a new applyOps entry of a committed transaction when its "
                        "operations would exceed N bytes (default 16777216, mongod's "
                        "BSONObjMaxUserSize)")
    p.add_argument("--dbpath", metavar="DIR",
                   help="keep the data across restarts: saved to DIR on SIGTERM, loaded at start")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    # Millions of long-lived documents and oplog entries make Python's full (generation 2)
    # collections the largest cost of a write-heavy run; the peer creates few reference
    # cycles, so collect young objects often and old ones rarely.
    gc.set_threshold(100000, 50, 1000)
    server = Server(args.host, args.port, args.replset, args.oplog_size, args.verbose, args.auth,
                    args.max_txn_ops_per_oplog_entry, args.dbpath,
                    args.max_txn_oplog_entry_bytes)
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    server.bind()
    print("mongo-peer ready: waiting for connections on %s (replset %s)"
          % (server.address, server.replset), flush=True)
    server.serve_forever()
    return 0
