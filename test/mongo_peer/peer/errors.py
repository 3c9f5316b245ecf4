"""MongoError carries a mongod error code, its codeName and the message."""

CODE_NAMES = {
    1: "InternalError", 2: "BadValue", 9: "FailedToParse", 11: "UserNotFound",
    14: "TypeMismatch", 20: "IllegalOperation", 26: "NamespaceNotFound",
    40: "ConflictingUpdateOperators", 43: "CursorNotFound", 15: "Overflow", 45: "UserDataInconsistent",
    48: "NamespaceExists", 50: "MaxTimeMSExpired", 52: "DollarPrefixedFieldName",
59: "CommandNotFound", 66: "ImmutableField",
    72: "InvalidOptions", 73: "InvalidNamespace", 91: "ShutdownInProgress",
    96: "OperationFailed", 112: "WriteConflict", 115: "CommandNotSupported",
    136: "CappedPositionLost", 166: "CommandNotSupportedOnView",
    225: "TransactionTooOld", 251: "NoSuchTransaction", 256: "TransactionCommitted",
    260: "InvalidResumeToken", 263: "OperationNotSupportedInTransaction",
    280: "ChangeStreamFatalError", 286: "ChangeStreamHistoryLost",
    10334: "BSONObjectTooLarge", 11000: "DuplicateKey", 15974: "Location15974",
    40324: "Location40324", 40415: "Location40415", 17419: "Location17419",
    10065: "Location10065", 31253: "Location31253", 31254: "Location31254",
    11600: "InterruptedAtShutdown", 189: "PrimarySteppedDown", 10107: "NotWritablePrimary",
    13435: "NotPrimaryNoSecondaryOk", 6: "HostUnreachable", 7: "HostNotFound",
    89: "NetworkTimeout", 262: "ExceededTimeLimit", 28: "PathNotViable",
    2003: "Location2003", 31249: "Location31249",
}


def code_name(code):
    """code_name returns mongod's codeName of an error code (Location<code> when unnamed)."""
    return CODE_NAMES.get(code, "Location%d" % code)


class MongoError(Exception):
    """MongoError is raised by command handlers; the server turns it into {ok: 0, ...}."""

    def __init__(self, code, errmsg, labels=None, extra=None):
        """__init__ makes an error with a code, a message, labels and extra reply fields."""
        super().__init__(errmsg)
        self.code = code
        self.errmsg = errmsg
        self.labels = labels or []
        self.extra = extra or {}

    def to_doc(self):
        """to_doc returns the error reply {ok: 0, errmsg, code, codeName[, errorLabels]}."""
        doc = {"ok": 0.0, "errmsg": self.errmsg, "code": self.code, "codeName": code_name(self.code)}
        doc.update(self.extra)
        if self.labels:
            doc["errorLabels"] = list(self.labels)
        return doc
