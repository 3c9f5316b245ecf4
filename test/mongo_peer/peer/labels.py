"""Error labels added to error replies the way mongod's ErrorLabelBuilder does.

TransientTransactionError inside transactions, RetryableWriteError for retryable writes and
commit/abort, ResumableChangeStreamError for failed change-stream aggregate/getMore commands,
NonResumableChangeStreamError for ChangeStreamFatalError/ChangeStreamHistoryLost.
"""
RETRIABLE = {6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
NETWORK = {6, 7, 89, 9001}
NEED_RETARGETING = {13388, 150}
SNAPSHOT = {239, 246, 250, 272}
TRANSIENT_ALWAYS = {112, 24, 267, 343, 249}
NON_RESUMABLE_CS = {280, 286}
COMMIT_OR_ABORT = {"commitTransaction", "abortTransaction"}


def labels_for(code, name, body, is_change_stream):
    """labels_for returns the labels mongod would attach to an error with this code."""
    in_txn = "txnNumber" in body and "autocommit" in body
    retryable_write = "txnNumber" in body and "autocommit" not in body
    out = []
    transient = False
    if in_txn:
        commit_or_abort = name in COMMIT_OR_ABORT
        transient = (code in TRANSIENT_ALWAYS or code in SNAPSHOT or code in NEED_RETARGETING or
                     (code == 251) or (not commit_or_abort and code in RETRIABLE))
        if transient:
            out.append("TransientTransactionError")
    retry = False
    if not transient and (retryable_write or (in_txn and name in COMMIT_OR_ABORT)):
        if code in RETRIABLE:
            out.append("RetryableWriteError")
            retry = True
    if not transient and not retry and is_change_stream and name in ("aggregate", "getMore") and \
            (code in RETRIABLE or code in NETWORK or code in NEED_RETARGETING or code in (234, 133)):
        out.append("ResumableChangeStreamError")
    elif code in NON_RESUMABLE_CS:
        out.append("NonResumableChangeStreamError")
    return out


def decorate_error(reply, name, body, is_change_stream, override=None):
    """decorate_error sets reply['errorLabels'] (override: labels given by failCommand)."""
    if reply.get("ok", 1):
        return reply
    if override is not None:
        labels = list(override)
    else:
        labels = list(reply.get("errorLabels", []))
        for lab in labels_for(reply.get("code", 0), name, body, is_change_stream):
            if lab not in labels:
                labels.append(lab)
    if labels:
        reply["errorLabels"] = labels
    else:
        reply.pop("errorLabels", None)
    return reply
