"""Fixtures of the integration tests: a throwaway PostgreSQL cluster and a MongoDB source.

`pg` is a PgCluster with mongo_river and pg_cron preloaded (one per test module); `mongo` is a
MongoSource: MONGO_URI when set, else the repo's MongoDB peer. After each module the server log is
checked: a process terminated by signal 6 or 11 fails the run. The bodies are in test/lib/fixtures.py.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

import fixtures  # noqa: E402
from fixtures import pytest_runtest_makereport  # noqa: E402,F401  (installs the hook)


@pytest.fixture(scope="module")
def pg():
    yield from fixtures.cluster()


@pytest.fixture(scope="module")
def mongo():
    yield from fixtures.source()


@pytest.fixture(scope="module")
def river_pg(pg):
    """river_pg is `pg` with the extension created in its test database."""
    return fixtures.with_extension(pg)


@pytest.fixture(scope="module")
def auth_source():
    """auth_source is a peer of its own that requires authentication (user river, password
    secret); the tests that use it are skipped against MONGO_URI."""
    from mongo_source import start_source
    source = start_source(["--auth", "river:secret"])
    if source is None or not source.is_peer:
        pytest.skip("needs the peer (started with --auth)")
    yield source
    source.stop()


@pytest.fixture(scope="module")
def chain_peer():
    """chain_peer is a peer of its own whose transactions are logged as applyOps chains of at most
    2 operations per entry (partialTxn on all but the last); skipped against MONGO_URI."""
    from mongo_source import start_source
    source = start_source(["--max-txn-ops-per-oplog-entry", "2"])
    if source is None or not source.is_peer:
        pytest.skip("needs the peer")
    yield source
    source.stop()
