"""evilproxy: a message-aware TCP proxy in front of the MongoDB peer that misbehaves on replies.

Each reply (server -> client) is cut out whole (its header's messageLength), matched with the
command of the request it answers (OP_MSG requests are parsed in order), and handed to
`policy(name, reply, state)`, which returns the list of actions to take: ("send", bytes, chunk)
writes bytes in writes of `chunk` bytes (0: at once), ("close",) closes both sockets, ("stall",)
stops passing anything on that connection (the proxy keeps reading and discarding)."""

import random
import socket
import struct
import threading
import time


def command_name(message):
    if len(message) < 27 or struct.unpack_from("<i", message, 12)[0] != 2013 or message[20] != 0:
        return None
    end = message.find(b"\0", 26)
    return message[26:end].decode("utf-8", "replace") if end > 0 else None


def passthrough(name, reply, state):
    return [("send", reply, 0)]


class EvilProxy(threading.Thread):
    def __init__(self, upstream_port):
        super().__init__(daemon=True)
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.policy = passthrough
        self.lock = threading.Lock()
        self.sockets = []
        self.counts = {}
        self.events = []

    def uri(self, extra=""):
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true{extra}"

    def run(self):
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
            state = {"names": [], "stalled": False, "closed": False, "cv": threading.Condition(), "n": 0}
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self.requests, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self.replies, args=(server, client, state), daemon=True).start()

    def requests(self, src, dst, state):
        buffer = bytearray()
        try:
            while True:
                data = src.recv(1 << 20)
                if not data:
                    break
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= struct.unpack_from("<i", buffer)[0]:
                    length = struct.unpack_from("<i", buffer)[0]
                    if length <= 0:
                        break
                    msg = bytes(buffer[:length])
                    del buffer[:length]
                    name = command_name(msg)
                    flags = struct.unpack_from("<I", msg, 16)[0] if len(msg) >= 20 else 0
                    if not (flags & 2):  # moreToCome: no reply
                        with state["cv"]:
                            state["names"].append(name)
                dst.sendall(data)
        except OSError:
            pass
        self.shut(src, dst)

    def shut(self, *socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def replies(self, src, dst, state):
        buffer = bytearray()
        try:
            while True:
                data = src.recv(1 << 20)
                if not data:
                    break
                if state["stalled"]:
                    continue
                buffer += data
                while len(buffer) >= 16 and len(buffer) >= struct.unpack_from("<i", buffer)[0]:
                    length = struct.unpack_from("<i", buffer)[0]
                    reply = bytes(buffer[:length])
                    del buffer[:length]
                    with state["cv"]:
                        name = state["names"].pop(0) if state["names"] else None
                    with self.lock:
                        self.counts[name] = self.counts.get(name, 0) + 1
                    state["n"] += 1
                    for action in self.policy(name, reply, state):
                        if action[0] == "send":
                            _, payload, chunk = action
                            if not chunk:
                                dst.sendall(payload)
                            else:
                                for i in range(0, len(payload), chunk):
                                    dst.sendall(payload[i:i + chunk])
                        elif action[0] == "sendsplit":  # random small writes, with tiny pauses
                            _, payload, rng = action
                            i = 0
                            while i < len(payload):
                                n = rng.choice((1, 1, 2, 3, 7, 100, 4096, 65536))
                                dst.sendall(payload[i:i + n])
                                i += n
                                if rng.random() < 0.01:
                                    time.sleep(0.001)
                        elif action[0] == "close":
                            self.events.append(("close", name))
                            state["closed"] = True
                            self.shut(src, dst)
                            src.close()
                            dst.close()
                            return
                        elif action[0] == "stall":
                            self.events.append(("stall", name))
                            state["stalled"] = True
                            break
                    if state["stalled"]:
                        break
        except OSError:
            pass
        self.shut(dst)

    def close(self):
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass
