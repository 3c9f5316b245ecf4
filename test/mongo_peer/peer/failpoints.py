"""The failCommand fail point, configured like mongod's configureFailPoint test command."""
from .errors import MongoError

RETRYABLE_WRITE_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
EXEMPT = {"configureFailPoint"}


class FailPoints:
    """FailPoints holds the active failCommand configuration (callers hold the store lock)."""

    def __init__(self):
        """__init__ makes the fail point table (failCommand off)."""
        self.fail_command = None  # dict(mode, times, data)

    def configure(self, body):
        """configure sets or clears failCommand from a configureFailPoint command."""
        name = body.get("configureFailPoint")
        if name != "failCommand":
            raise MongoError(2, "mongo-peer only implements the failCommand fail point, not %r"
                             % (name,))
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
