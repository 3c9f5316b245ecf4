"""persist: keep the peer's data across a restart (peer switch --dbpath DIR).

The whole state (collections with their UUIDs and raw documents, the oplog, the last
timestamp, change-stream pre- and post-images) is written to DIR/mongo-peer.state when the
peer stops cleanly (SIGTERM/SIGINT) and loaded when it starts.  There is no journal: a killed
peer (SIGKILL) restarts from the state of its last clean stop.
"""
import os
import pickle

from .storage import Collection

STATE_FILE = "mongo-peer.state"
FORMAT = 1


def save(store, dbpath):
    """save writes the store atomically (callers hold store.lock)."""
    os.makedirs(dbpath, exist_ok=True)
    dbs = {}
    for db, colls in store.dbs.items():
        dbs[db] = {name: (bytes(c.uuid), c.options, c.docs) for name, c in colls.items()}
    state = {"format": FORMAT, "dbs": dbs, "tss": store.oplog.tss[store.oplog.head:],
             "raws": store.oplog.live_raws(),
             "last_ts": store.oplog.last_ts, "trimmed_max": store.oplog.trimmed_max,
             "images": store.images}
    path = os.path.join(dbpath, STATE_FILE)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(store, dbpath):
    """load restores a saved state into a fresh store; returns False when there is none."""
    from bson.binary import Binary
    path = os.path.join(dbpath, STATE_FILE)
    if not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        state = pickle.load(f)
    if state.get("format") != FORMAT:
        raise RuntimeError("%s has an unknown format" % path)
    store.dbs = {}
    for db, colls in state["dbs"].items():
        for name, (uuid_bytes, options, docs) in colls.items():
            c = Collection(db, name, options)
            c.uuid = Binary(uuid_bytes, 4)
            c.docs = docs
            c.id_keys = None  # sorted by the first ordered read
            store.dbs.setdefault(db, {})[name] = c
    oplog = store.oplog
    oplog.tss = list(state["tss"])
    oplog.raws = list(state["raws"])
    oplog.evs = [None] * len(oplog.raws)
    oplog.metas = [None] * len(oplog.raws)
    oplog.last_ts = max(oplog.last_ts, state["last_ts"])
    oplog.trimmed_max = state["trimmed_max"]
    oplog.head = 0
    oplog.trim()
    store.images = dict(state.get("images", {}))  # change-stream pre-/post-images
    return True
