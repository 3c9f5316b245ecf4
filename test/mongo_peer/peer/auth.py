"""SCRAM-SHA-1 / SCRAM-SHA-256 authentication (peer switch --auth USER:PASSWORD).

Without --auth every command is allowed, as on a mongod started without --auth.  With it,
users live in the admin database and a connection must authenticate (saslStart/saslContinue,
RFC 5802 / RFC 7677 as MongoDB uses them) before running anything but the handshake commands.
"""
import base64
import hashlib
import hmac
import os

from bson.binary import Binary

from .errors import MongoError

OPEN_COMMANDS = {"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "ping",
                 "buildInfo", "buildinfo", "logout", "endSessions", "getnonce",
                 "connectionStatus", "whatsmyuri"}
MECHS = {"SCRAM-SHA-1": (hashlib.sha1, 10000), "SCRAM-SHA-256": (hashlib.sha256, 15000)}


class Users:
    """Users holds the --auth credentials and derived SCRAM keys."""

    def __init__(self, specs):
        """__init__ reads USER:PASSWORD specs; SCRAM keys are derived on first use."""
        self.passwords = {}
        for spec in specs or []:
            user, _, password = spec.partition(":")
            self.passwords[user] = password
        self.keys = {}

    @property
    def enabled(self):
        """enabled tells whether --auth users exist (authentication required)."""
        return bool(self.passwords)

    def scram_keys(self, user, mech):
        """scram_keys returns (salt, iterations, StoredKey, ServerKey) of a user for a mechanism."""
        k = (user, mech)
        if k not in self.keys:
            hfn, iters = MECHS[mech]
            pw = self.passwords[user]
            if mech == "SCRAM-SHA-1":
                pw = hashlib.md5(("%s:mongo:%s" % (user, pw)).encode()).hexdigest()
            salt = os.urandom(16 if mech == "SCRAM-SHA-1" else 28)
            salted = hashlib.pbkdf2_hmac(hfn().name, pw.encode(), salt, iters)
            client_key = hmac.new(salted, b"Client Key", hfn).digest()
            server_key = hmac.new(salted, b"Server Key", hfn).digest()
            self.keys[k] = (salt, iters, hfn(client_key).digest(), server_key)
        return self.keys[k]


def _fields(msg):
    """_fields parses a SCRAM message 'a=1,b=2' into a dict."""
    out = {}
    for part in msg.split(","):
        if len(part) > 1 and part[1] == "=":
            out[part[0]] = part[2:]
    return out


def _fail():
    """_fail returns the 18 AuthenticationFailed error."""
    return MongoError(18, "Authentication failed.")


def sasl_start(users, conn, body):
    """sasl_start answers the client-first message with the server-first message."""
    mech = body.get("mechanism")
    if mech not in MECHS:
        raise MongoError(334, "Received authentication for mechanism %s which is not enabled"
                         % mech)
    payload = bytes(body.get("payload", b"")).decode()
    if not payload.startswith("n,"):
        raise _fail()
    bare = payload.split(",", 2)[2]
    f = _fields(bare)
    user = f.get("n", "").replace("=2C", ",").replace("=3D", "=")
    if user not in users.passwords:
        raise _fail()
    salt, iters, stored_key, server_key = users.scram_keys(user, mech)
    nonce = f.get("r", "") + base64.b64encode(os.urandom(24)).decode()
    first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), iters)
    conn.sasl = {"mech": mech, "user": user, "bare": bare, "first": first, "nonce": nonce,
                 "stored": stored_key, "server": server_key, "step": 1,
                 "skip_empty": bool((body.get("options") or {}).get("skipEmptyExchange"))}
    return {"conversationId": 1, "done": False, "payload": Binary(first.encode())}


def sasl_continue(users, conn, body):
    """sasl_continue checks the client proof and answers with the server signature."""
    st = getattr(conn, "sasl", None)
    if st is None:
        raise MongoError(17, "No SASL session state found")
    hfn = MECHS[st["mech"]][0]
    if st["step"] == 2:
        conn.sasl = None
        conn.users.add(st["user"])
        return {"conversationId": 1, "done": True, "payload": Binary(b"")}
    msg = bytes(body.get("payload", b"")).decode()
    f = _fields(msg)
    if f.get("r") != st["nonce"] or "p" not in f:
        conn.sasl = None
        raise _fail()
    without_proof = msg[:msg.rindex(",p=")]
    auth_msg = ",".join([st["bare"], st["first"], without_proof]).encode()
    sig = hmac.new(st["stored"], auth_msg, hfn).digest()
    proof = base64.b64decode(f["p"])
    client_key = bytes(a ^ b for a, b in zip(proof, sig))
    if len(proof) != len(sig) or not hmac.compare_digest(hfn(client_key).digest(), st["stored"]):
        conn.sasl = None
        raise _fail()
    server_sig = base64.b64encode(hmac.new(st["server"], auth_msg, hfn).digest()).decode()
    payload = Binary(("v=%s" % server_sig).encode())
    if st["skip_empty"]:
        conn.sasl = None
        conn.users.add(st["user"])
        return {"conversationId": 1, "done": True, "payload": payload}
    st["step"] = 2
    return {"conversationId": 1, "done": False, "payload": payload}


def check_access(users, conn, name):
    """check_access refuses commands on unauthenticated connections when --auth is on."""
    if users.enabled and not conn.users and name not in OPEN_COMMANDS:
        raise MongoError(13, "command %s requires authentication" % name)


def supported_mechs(users, body):
    """supported_mechs returns the mechanisms of hello's saslSupportedMechs user, or None."""
    who = body.get("saslSupportedMechs")
    if not users.enabled or not isinstance(who, str):
        return None
    _, _, user = who.partition(".")
    return list(MECHS) if user in users.passwords else None


def speculative(users, conn, body):
    """speculative runs the saslStart a driver embeds in its handshake as
    speculativeAuthenticate (auth spec, "Speculative Authentication") and returns its reply,
    or None (no --auth, no such field, or a failure: the driver then authenticates normally)."""
    spec = body.get("speculativeAuthenticate")
    if not users.enabled or not isinstance(spec, dict) or not spec.get("saslStart"):
        return None
    try:
        return sasl_start(users, conn, spec)
    except MongoError:
        return None
