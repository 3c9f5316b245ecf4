"""Start and stop a mongo-peer process from tests (importable from anywhere).

    from peer_process import start_peer, stop_peer
    proc, port = start_peer()            # or start_peer(["--oplog-size", "50"])
    ... MongoClient("mongodb://127.0.0.1:%d/?replicaSet=rs0" % port) ...
    stop_peer(proc)

The peer binds port 0 (the kernel picks a free port) unless extra_args contain --port; the
port is read from the 'ready' line, waiting at most `timeout` seconds.  The peer's stderr goes
to a temporary file whose path is proc.peer_log (removed by stop_peer when empty).
"""
import os
import re
import select
import signal
import subprocess
import tempfile
import time

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mongo-peer")
PYTHON = "/usr/bin/python3"


def start_peer(extra_args=(), timeout=10.0):
    """start_peer launches mongo-peer and returns (process, port) once it prints 'ready'."""
    args = list(extra_args)
    if "--port" not in args:
        args = ["--port", "0"] + args
    log = tempfile.NamedTemporaryFile(prefix="mongo-peer-", suffix=".log", delete=False)
    proc = subprocess.Popen([PYTHON, PEER] + args, stdout=subprocess.PIPE, stderr=log,
                            stdin=subprocess.DEVNULL)
    proc.peer_log = log.name
    log.close()
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            stop_peer(proc)
            with open(proc.peer_log, errors="replace") as f:
                raise RuntimeError("mongo-peer did not become ready: %s" % f.read()[-2000:])
        r, _, _ = select.select([proc.stdout], [], [], left)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                continue
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    if "ready" not in line:
        stop_peer(proc)
        raise RuntimeError("unexpected first line from mongo-peer: %r" % line)
    port = int(re.findall(r":(\d+)\b", line.split("(")[0])[-1])
    return proc, port


def stop_peer(proc, timeout=10.0):
    """stop_peer sends SIGTERM, waits for exit (SIGKILL after timeout) and returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    log = getattr(proc, "peer_log", None)
    if log and os.path.exists(log) and os.path.getsize(log) == 0:
        os.unlink(log)  # keep only logs with something in them (tracebacks, --verbose)
    return proc.returncode
