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

import fixtures  # noqa: E402
from fixtures import pytest_runtest_makereport  # noqa: E402,F401  (installs the hook)
from figures import record  # noqa: E402


@pytest.fixture(scope="module")
def pg(request):
    yield from fixtures.cluster(lambda crashes: record(request.module.__name__, crashes=len(crashes)))


@pytest.fixture(scope="module")
def mongo():
    yield from fixtures.source()


@pytest.fixture(scope="module")
def river_pg(pg):
    """river_pg is `pg` with the extension created in its test database."""
    return fixtures.with_extension(pg)


@pytest.fixture
def figures(request):
    """figures(**counts) records figures of the calling test (faults=, hostile=, lost=, duplicates=)."""
    def add(**counts):
        record(request.node.nodeid, **counts)
    return add
