"""evilproxy: a message-aware TCP proxy in front of a MongoDB server, for tests of a hostile source.

Each reply (server -> client) is cut out whole (by its header's messageLength) and paired with the
command name of the request it answers (requests are parsed in order; OP_MSG requests with
moreToCome get no reply). `policy(name, reply)` returns the actions for it: ("send", bytes) writes
bytes to the client, ("close",) closes both sockets of that connection, ("stall",) passes nothing
more on that connection (its replies are read and dropped: the source seems alive but silent). The
default passes every
reply unchanged. `on_request(name, request)`, when set, is called before a request goes on (it
may change the server's state first). `counts` tells how many replies each command got.
"""

import socket
import struct
import threading

OP_MSG = 2013


OP_QUERY = 2004


def command_name(message):
    """command_name returns the command of an OP_MSG request (its body's first key), "q:" and the
    query's first key for a legacy OP_QUERY (the handshake's "q:isMaster"), else None."""
    if len(message) >= 27 and struct.unpack_from("<i", message, 12)[0] == OP_QUERY:
        at = message.find(b"\0", 20) + 1 + 8 + 4 + 1  # the collection's name, skip, return, doc length, type
        end = message.find(b"\0", at)
        return "q:" + message[at:end].decode("utf-8", "replace") if at > 13 and end > 0 else None
    if len(message) < 27 or struct.unpack_from("<i", message, 12)[0] != OP_MSG or message[20] != 0:
        return None
    end = message.find(b"\0", 26)
    return message[26:end].decode("utf-8", "replace") if end > 0 else None


def passthrough(name, reply):
    return [("send", reply)]


def messages(sock):
    """messages yields the whole wire messages read from sock until it closes or breaks."""
    buffer = bytearray()
    while True:
        try:
            data = sock.recv(1 << 20)
        except OSError:
            return
        if not data:
            return
        buffer += data
        while len(buffer) >= 4:
            length = struct.unpack_from("<i", buffer)[0]
            if length < 16 or len(buffer) < length:
                break
            message = bytes(buffer[:length])
            del buffer[:length]
            yield message


class EvilProxy:
    """EvilProxy listens on 127.0.0.1 (port: self.port) and forwards to upstream_port."""

    def __init__(self, upstream_port, policy=passthrough):
        self.upstream_port = upstream_port
        self.policy = policy
        self.on_request = None
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets = []
        self.counts = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def uri(self, options=""):
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true{options}"

    def close(self):
        """close stops listening and closes every connection."""
        for sock in [self.listener] + self.sockets:
            _shut(sock)
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            names = []  # the commands awaiting a reply on this connection, in order
            cv = threading.Lock()
            threading.Thread(target=self._requests, args=(client, server, names, cv), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, names, cv), daemon=True).start()

    def _requests(self, src, dst, names, cv):
        for message in messages(src):
            name = command_name(message)
            flags = struct.unpack_from("<I", message, 16)[0] if len(message) >= 20 else 0
            if not flags & 2:  # moreToCome: no reply comes
                with cv:
                    names.append(name)
            if self.on_request:
                self.on_request(name, message)
            try:
                dst.sendall(message)
            except OSError:
                break
        _shut(src, dst)

    def _replies(self, src, dst, names, cv):
        stalled = False
        for reply in messages(src):
            with cv:
                name = names.pop(0) if names else None
            with self.lock:
                self.counts[name] = self.counts.get(name, 0) + 1
            if stalled:
                continue
            try:
                for action in self.policy(name, reply):
                    if action[0] == "send":
                        dst.sendall(action[1])
                    elif action[0] == "close":
                        _shut(src, dst)
                        return
                    elif action[0] == "stall":
                        stalled = True
                        break
            except OSError:
                break
        _shut(src, dst)


def _shut(*socks):
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
