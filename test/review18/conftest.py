"""Fixtures of the review18 attacks: those of test/integration (a throwaway cluster, the peer)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
from fixtures import pytest_runtest_makereport  # noqa: E402,F401


@pytest.fixture(scope="module")
def pg():
    yield from fixtures.cluster()


@pytest.fixture(scope="module")
def mongo():
    yield from fixtures.source()


@pytest.fixture(scope="module")
def river_pg(pg):
    return fixtures.with_extension(pg)
