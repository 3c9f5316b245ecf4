"""Fixtures of the integration tests: a throwaway PostgreSQL cluster and a MongoDB source.

`pg` is a PgCluster with mongo_river and pg_cron preloaded (one per test module); `mongo` is a
MongoSource: MONGO_URI when set, else the repo's MongoDB peer. After each module the server log is
checked: a process terminated by signal 6 or 11 fails the run.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from pgcluster import PgCluster  # noqa: E402
from mongo_source import start_source  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster().init()
    try:
        yield cluster
    finally:
        crashes = cluster.crashes()
        cluster.destroy()
        if crashes:
            pytest.fail("server log shows crashed processes:\n" + "\n".join(crashes))


@pytest.fixture(scope="module")
def mongo():
    source = start_source()
    if source is None:
        pytest.skip("no MongoDB source: MONGO_URI is not set and the MongoDB peer (test/mongo_peer) "
                    "is not available yet")
    try:
        yield source
    finally:
        source.stop()


@pytest.fixture(scope="module")
def river_pg(pg):
    """river_pg is `pg` with the extension created in its test database."""
    pg.query("CREATE EXTENSION IF NOT EXISTS mongo_river")
    return pg


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """pytest_runtest_makereport adds the tail of the server log to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("river_pg", "pg"):
            cluster = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if cluster is not None:
                try:
                    tail = "\n".join(cluster.log().splitlines()[-80:])
                except OSError:
                    break
                report.sections.append(("server log (last 80 lines)", tail))
                break
