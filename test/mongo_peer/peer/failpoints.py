"""The failCommand fail point, configured like mongod's configureFailPoint test command."""
from .errors import MongoError

RETRYABLE_WRITE_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
EXEMPT = {"configureFailPoint"}


class FailPoints:
    """FailPoints holds the active failCommand configuration (callers hold the store lock)."""

    def __init__(self):
        """__init__ makes the fail point table (failCommand and corruptCursorBatch off)."""
        self.fail_command = None  # dict(mode, times, data)
        self.corrupt_batch = None  # dict(times, data): see corrupt()

    def configure(self, body):
        """configure sets or clears failCommand (or corruptCursorBatch) from a configureFailPoint
        command."""
        name = body.get("configureFailPoint")
        if name == "corruptCursorBatch":
            return self.configure_corrupt(body)
        if name != "failCommand":
            raise MongoError(2, "mongo-peer only implements the failCommand and corruptCursorBatch "
                             "fail points, not %r" % (name,))
        mode = body.get("mode")
        data = body.get("data", {}) or {}
        if mode == "off":
            self.fail_command = None
        elif mode == "alwaysOn":
            self.fail_command = {"times": None, "skip": 0, "data": data}
        elif isinstance(mode, dict) and "times" in mode:
            t = int(mode["times"])
            self.fail_command = {"times": t, "skip": 0, "data": data} if t > 0 else None
        elif isinstance(mode, dict) and "skip" in mode:
            self.fail_command = {"times": None, "skip": int(mode["skip"]), "data": data}
        else:
            raise MongoError(2, "unknown fail point mode %r" % (mode,))
        if self.fail_command is not None and not isinstance(data.get("failCommands"), list):
            self.fail_command = None
            raise MongoError(2, "failCommand fail point requires data.failCommands (array)")
        return {"count": 0}

    def check(self, cmd_name, app_name):
        """check returns the fail point data if this command must fail now (consuming one use)."""
        fp = self.fail_command
        if fp is None or cmd_name in EXEMPT:
            return None
        data = fp["data"]
        if cmd_name not in data.get("failCommands", []):
            return None
        want_app = data.get("appName")
        if want_app is not None and want_app != app_name:
            return None
        if fp["skip"] > 0:
            fp["skip"] -= 1
            return None
        if fp["times"] is not None:
            fp["times"] -= 1
            if fp["times"] <= 0:
                self.fail_command = None
        return data


def error_reply(data, retryable_write):
    """error_reply builds the reply of a command failed by failCommand (None: no error)."""
    if "errorCode" not in data:
        return None
    code = int(data["errorCode"])
    return MongoError(code, "Failing command via 'failCommand' failpoint")


# corruptCursorBatch (peer only, for tests of readers facing a broken server): the next cursor
# batches (firstBatch/nextBatch with at least one document) of cursors on data.db (any database when
# absent) of data.cursor's kind ("changeStream" or "find"; any when absent) are damaged as data.kind
# says, in the first document of the batch:
#   noNs        the change event loses its ns
#   badId       the change event's _id (its resume token) becomes a string
#   noDocId     the document (a change event's fullDocument and documentKey) loses its _id
#   noType      the change event loses its operationType
#   truncated   the document's length says 64 bytes more than it has: the batch is not valid BSON
CORRUPT_KINDS = {"noNs", "badId", "noDocId", "noType", "truncated"}


def _configure_corrupt(self, body):
    """configure_corrupt sets or clears corruptCursorBatch (mode off, alwaysOn or {times: n})."""
    mode = body.get("mode")
    data = body.get("data", {}) or {}
    if mode == "off":
        self.corrupt_batch = None
        return {"count": 0}
    if data.get("kind") not in CORRUPT_KINDS:
        raise MongoError(2, "corruptCursorBatch needs data.kind, one of %s" % sorted(CORRUPT_KINDS))
    if mode == "alwaysOn":
        self.corrupt_batch = {"times": None, "data": data}
    elif isinstance(mode, dict) and "times" in mode:
        t = int(mode["times"])
        self.corrupt_batch = {"times": t, "data": data} if t > 0 else None
    else:
        raise MongoError(2, "unknown fail point mode %r" % (mode,))
    return {"count": 0}


def _corrupt_check(self, ns, kind):
    """corrupt_check returns the corruptCursorBatch data if a batch of a cursor on ns of kind
    ("changeStream" or "find") must be damaged now (consuming one use)."""
    fp = self.corrupt_batch
    if fp is None:
        return None
    data = fp["data"]
    if data.get("db") is not None and ns.split(".", 1)[0] != data["db"]:
        return None
    if data.get("cursor") is not None and data["cursor"] != kind:
        return None
    if fp["times"] is not None:
        fp["times"] -= 1
        if fp["times"] <= 0:
            self.corrupt_batch = None
    return data


FailPoints.configure_corrupt = _configure_corrupt
FailPoints.corrupt_check = _corrupt_check


def corrupt_document(raw, kind):
    """corrupt_document returns the BSON bytes raw damaged as kind says (see CORRUPT_KINDS)."""
    import struct
    from bson import decode as bson_decode, encode as bson_encode
    from bson.codec_options import CodecOptions
    if kind == "truncated":
        return struct.pack("<i", len(raw) + 64) + raw[4:]
    doc = bson_decode(raw, CodecOptions(document_class=dict, tz_aware=True))
    if kind == "noNs":
        doc.pop("ns", None)
    elif kind == "badId":
        doc["_id"] = "not a resume token"
    elif kind == "noType":
        doc.pop("operationType", None)
    elif kind == "noDocId":
        for key in ("fullDocument", "documentKey"):
            if isinstance(doc.get(key), dict):
                doc[key].pop("_id", None)
        if "fullDocument" not in doc and "documentKey" not in doc:
            doc.pop("_id", None)
    return bson_encode(doc)
