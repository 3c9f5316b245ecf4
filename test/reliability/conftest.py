"""Fixtures of the reliability suites (test/reliability): the same throwaway PostgreSQL cluster and
MongoDB source as test/integration (its conftest's pattern), plus `figures`, which appends the
suite's figures (faults injected, hostile inputs tried, rows lost, duplicates, crashes) as JSON lines
to the file named by RELIABILITY_FIGURES, for scripts/reliability.sh to add up.

After each module the server log is checked: a process terminated by signal 6 or 11 fails the run
(and counts as a crash in the figures)."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, HERE)

from pgcluster import PgCluster  # noqa: E402
from mongo_source import start_source  # noqa: E402
from figures import record  # noqa: E402


@pytest.fixture(scope="module")
def pg(request):
    cluster = PgCluster().init()
    try:
        yield cluster
    finally:
        crashes = cluster.crashes()
        cluster.destroy()
        record(request.module.__name__, crashes=len(crashes))
        if crashes:
            pytest.fail("server log shows crashed processes:\n" + "\n".join(crashes))


@pytest.fixture(scope="module")
def mongo():
    source = start_source()
    if source is None:
        pytest.skip("no MongoDB source: MONGO_URI is not set and the MongoDB peer (test/mongo_peer) "
                    "is not available")
    try:
        yield source
    finally:
        source.stop()


@pytest.fixture(scope="module")
def river_pg(pg):
    """river_pg is `pg` with the extension created in its test database."""
    pg.query("CREATE EXTENSION IF NOT EXISTS mongo_river")
    return pg


@pytest.fixture
def figures(request):
    """figures(**counts) records figures of the calling test (faults=, hostile=, lost=, duplicates=)."""
    def add(**counts):
        record(request.node.nodeid, **counts)
    return add
