"""The launcher background worker: present, waits for the extension, survives SIGHUP, comes back
after SIGKILL (which makes the postmaster restart every backend)."""

import os
import signal

from pgcluster import wait_for

LAUNCHER = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river launcher'"


def launcher_pid(pg):
    rows = pg.query(LAUNCHER, dbname="postgres")
    return rows[0][0] if rows else None


def test_launcher_runs_and_waits_for_the_extension(pg):
    pid = wait_for(lambda: launcher_pid(pg), 30, what="the launcher in pg_stat_activity")
    wait_for(lambda: "extension not created in database" in pg.log(), 10,
             what="the launcher to notice the extension is missing")
    # It waits instead of exiting: the same process is still there several naptimes later.
    log_before = pg.log().count("mongo_river launcher started")
    pg.query("SELECT pg_sleep(1)")  # five naptimes (200 ms) pass
    assert launcher_pid(pg) == pid
    assert pg.log().count("mongo_river launcher started") == log_before

    pg.query("CREATE EXTENSION mongo_river")
    wait_for(lambda: "mongo_river launcher: extension found" in pg.log(), 10,
             what="the launcher to notice the extension")
    assert launcher_pid(pg) == pid


def test_launcher_survives_sighup_and_reloads(pg):
    pid = wait_for(lambda: launcher_pid(pg), 30, what="the launcher")
    pg.query("ALTER SYSTEM SET mongo_river.naptime = 321")
    pg.query("SELECT pg_reload_conf()")
    wait_for(lambda: "reloaded its configuration (naptime = 321 ms)" in pg.log(), 10,
             what="the launcher to log the reload")
    assert launcher_pid(pg) == pid
    pg.query("ALTER SYSTEM RESET mongo_river.naptime")
    pg.query("SELECT pg_reload_conf()")


def test_launcher_comes_back_after_sigkill(pg):
    pid = wait_for(lambda: launcher_pid(pg), 30, what="the launcher")
    os.kill(pid, signal.SIGKILL)
    # SIGKILL of any backend makes the postmaster terminate all of them and reinitialise.
    wait_for(lambda: "all server processes terminated; reinitializing" in pg.log(), 30,
             what="crash recovery to start")
    pg.wait_ready()
    new_pid = wait_for(lambda: launcher_pid(pg), 30, what="the launcher to come back")
    assert new_pid != pid
    # The extension created before the crash is found again.
    assert pg.scalar("SELECT extversion FROM pg_extension WHERE extname = 'mongo_river'") is not None


def test_launcher_stops_promptly_on_sigterm_and_is_restarted(pg):
    pid = wait_for(lambda: launcher_pid(pg), 30, what="the launcher")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: launcher_pid(pg) not in (None, pid), 30,
             what="the postmaster to start the launcher again")
    assert "mongo_river launcher shutting down" in pg.log()
