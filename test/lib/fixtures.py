"""fixtures: the bodies of the pytest fixtures test/integration and test/reliability share.

Each conftest.py declares its fixtures and delegates to these generators, so a cluster or a source
is started, checked and stopped the same way in every suite.
"""

import pytest

from mongo_source import start_source
from pgcluster import PgCluster


def cluster(on_crashes=None):
    """cluster yields a throwaway PgCluster; afterwards it fails the module if the server log shows
    a process terminated by signal 6 or 11 (on_crashes, when given, sees the lines first)."""
    pg = PgCluster().init()
    try:
        yield pg
    finally:
        crashes = pg.crashes()
        pg.destroy()
        if on_crashes:
            on_crashes(crashes)
        if crashes:
            pytest.fail("server log shows crashed processes:\n" + "\n".join(crashes))


def source():
    """source yields the MongoDB source (MONGO_URI, else the repo's peer), or skips visibly."""
    mongo = start_source()
    if mongo is None:
        pytest.skip("no MongoDB source: MONGO_URI is not set and the MongoDB peer (test/mongo_peer) "
                    "is not available")
    try:
        yield mongo
    finally:
        mongo.stop()


def with_extension(pg):
    """with_extension creates mongo_river in the cluster's test database and returns the cluster."""
    pg.query("CREATE EXTENSION IF NOT EXISTS mongo_river")
    return pg


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """pytest_runtest_makereport adds the tail of the server log to a failed test's report (a
    conftest imports it to install it)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("river_pg", "pg"):
            pg = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if pg is not None:
                try:
                    tail = "\n".join(pg.log().splitlines()[-80:])
                except OSError:
                    break
                report.sections.append(("server log (last 80 lines)", tail))
                break
