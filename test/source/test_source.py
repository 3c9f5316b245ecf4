"""test_source: the source stage (src/mongo/) against a live MongoDB.

Builds the PG-free core (`make libmongo_river_core.a` at the top), the source stage's unit tests
and the live GoogleTest binary (test/source/Makefile), then runs the binary against MONGO_URI when
set, else against the repo's MongoDB peer. Peer-only checks (a tiny oplog for "history lost", a
peer with --auth for a wrong password) run against extra peers and skip visibly on a real mongod.
A gtest failure fails the test; a gtest skip where none is expected fails it too.

Run: /usr/bin/python3 -m pytest -q test/source
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))

from mongo_source import start_source  # noqa: E402

BINARY = os.path.join(HERE, "source_live_tests")
PEER_ONLY = "HistoryLost.*:Source.WrongPassword*:Source.Standalone*"


def run(cmd, cwd=ROOT, env=None, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def binary():
    rc, out = run(["make", "-s", "--no-print-directory", "libmongo_river_core.a", "WERROR=-Werror"])
    assert rc == 0, "building libmongo_river_core.a failed:\n" + out[-5000:]
    rc, out = run(["make", "-s", "--no-print-directory", "-C", HERE, "source_live_tests"])
    assert rc == 0, "building the live source tests failed:\n" + out[-5000:]
    return BINARY


@pytest.fixture(scope="module")
def source():
    src = start_source()
    if src is None:
        pytest.skip("no MongoDB source: MONGO_URI is not set and the MongoDB peer is not available")
    try:
        yield src
    finally:
        src.stop()


def run_gtest(binary, env_extra, gtest_filter):
    env = dict(os.environ)
    env.update(env_extra)
    rc, out = run([binary, "--gtest_filter=" + gtest_filter, "--gtest_color=no"], env=env)
    print(out)
    return rc, out


def assert_gtest_ok(rc, out, may_skip=()):
    """assert_gtest_ok fails on a gtest failure, or on a skip not named in may_skip (prefixes)."""
    assert rc == 0, "live source tests failed:\n" + out[-20000:]
    skipped = set(line.split()[3] for line in out.splitlines()
                  if line.startswith("[  SKIPPED ]") and len(line.split()) > 3 and "(" in line)
    unexpected = [name for name in skipped if not name.startswith(tuple(may_skip))]
    assert not unexpected, "live source tests skipped unexpectedly: %s\n%s" % (unexpected, out[-5000:])
    assert "[  PASSED  ]" in out, out[-5000:]


def test_unit_tests_of_the_source_stage():
    rc, out = run([os.path.join(HERE, "build_unit.sh"), "--gtest_color=no"])
    assert rc == 0, "source stage unit tests failed:\n" + out[-20000:]


def test_live_source(binary, source):
    rc, out = run_gtest(binary, {"MONGO_URI": source.uri}, "-" + PEER_ONLY)
    # Fault injection needs configureFailPoint: a real mongod offers it only with enableTestCommands.
    assert_gtest_ok(rc, out, may_skip=() if source.is_peer else ("Faults.",))


def start_extra_peer(source, args):
    if not source.is_peer:
        pytest.skip("peer-only check (mongo-peer %s): skipped against MONGO_URI" % " ".join(args))
    sys.path.insert(0, os.path.join(ROOT, "test", "mongo_peer"))
    from peer_process import start_peer
    return start_peer(extra_args=tuple(args))


def test_history_lost_on_a_tiny_oplog(binary, source):
    proc, port = start_extra_peer(source, ["--oplog-size", "10"])
    from peer_process import stop_peer
    try:
        rc, out = run_gtest(binary, {"MONGO_URI": source.uri,
                                     "MONGO_SMALL_OPLOG_URI": "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port},
                            "HistoryLost.*")
        assert_gtest_ok(rc, out)
    finally:
        stop_peer(proc)


def test_wrong_password(binary, source):
    proc, port = start_extra_peer(source, ["--auth", "alice:rightpw"])
    from peer_process import stop_peer
    try:
        rc, out = run_gtest(binary, {"MONGO_URI": source.uri,
                                     "MONGO_BAD_PASSWORD_URI":
                                     "mongodb://alice:wrongpw@127.0.0.1:%d/?replicaSet=rs0" % port},
                            "Source.WrongPassword*")
        assert_gtest_ok(rc, out)
    finally:
        stop_peer(proc)


def test_standalone_is_refused(binary, source):
    proc, port = start_extra_peer(source, ["--replset", ""])
    from peer_process import stop_peer
    try:
        rc, out = run_gtest(binary, {"MONGO_URI": source.uri,
                                     "MONGO_STANDALONE_URI":
                                     "mongodb://127.0.0.1:%d/?directConnection=true" % port},
                            "Source.Standalone*")
        assert_gtest_ok(rc, out)
    finally:
        stop_peer(proc)
