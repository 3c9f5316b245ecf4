"""pgcluster: a throwaway PostgreSQL cluster for integration tests.

PgCluster runs initdb in a temporary directory, starts the server on its own port and Unix socket
directory with mongo_river (and pg_cron) preloaded, and hands out psycopg2 connections. Everything
waits for a condition with a deadline; nothing sleeps blindly.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2

# PG_BINDIR runs another PostgreSQL tree (scripts/sanitize.sh: a relocated copy with a sanitized module).
PG_BINDIR = os.environ.get("PG_BINDIR") or subprocess.run(
    ["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()


def free_port():
    """free_port asks the kernel for a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=30.0, interval=0.05, what="condition"):
    """wait_for polls condition() until it returns a truthy value, or fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the condition may fail while the thing it waits for starts
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


class PgCluster:
    """PgCluster is one temporary PostgreSQL instance."""

    def __init__(self, settings=None, dbname="mongo_river_test"):
        self.base = tempfile.mkdtemp(prefix="mongo_river_pg_")
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = self.base
        self.logfile = os.path.join(self.base, "server.log")
        self.port = free_port()
        self.dbname = dbname
        self.settings = {
            "shared_preload_libraries": "'mongo_river,pg_cron'",
            "mongo_river.database": f"'{dbname}'",
            "mongo_river.naptime": "200",
            "cron.database_name": f"'{dbname}'",
            "cron.use_background_workers": "on",
            "max_worker_processes": "32",
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sockdir}'",
            "port": str(self.port),
            "fsync": "off",
            "log_line_prefix": "'%m [%p] %b '",
        }
        self.settings.update(settings or {})

    def init(self):
        """init creates the cluster and its test database (UTF8)."""
        subprocess.run([os.path.join(PG_BINDIR, "initdb"), "-D", self.datadir, "-E", "UTF8",
                        "--locale=C", "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as conf:
            for key, value in self.settings.items():
                conf.write(f"{key} = {value}\n")
        # The test database must exist before the launchers (ours, pg_cron's) look for it.
        self.start(extra=["-c", "shared_preload_libraries="])
        self.query(f'CREATE DATABASE "{self.dbname}"', dbname="postgres")
        self.stop()
        self.start()
        return self

    def start(self, extra=()):
        """start starts the server and waits until it accepts connections."""
        options = ["-o", " ".join(extra)] if extra else []
        env = dict(os.environ)
        # PG_LD_PRELOAD preloads a sanitizer runtime into the server only (scripts/sanitize.sh).
        if os.environ.get("PG_LD_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["PG_LD_PRELOAD"]
        subprocess.run([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                        "-w", "-t", "60", *options, "start"], check=True, capture_output=True, env=env)
        self.wait_ready()

    def stop(self, mode="fast"):
        """stop stops the server (mode fast or immediate)."""
        subprocess.run([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w",
                        "stop"], check=False, capture_output=True)

    def destroy(self):
        """destroy stops the server and removes its files, keeping the log if KEEP_TEST_DIRS is set."""
        self.stop("immediate")
        if not os.environ.get("KEEP_TEST_DIRS"):
            shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, dbname=None, user="postgres"):
        return f"host={self.sockdir} port={self.port} dbname={dbname or self.dbname} user={user}"

    def connect(self, dbname=None, user="postgres", timeout=60):
        """connect opens a psycopg2 connection (autocommit off). While the server restarts (crash
        recovery after a killed backend, which tests provoke), it retries until timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return psycopg2.connect(self.dsn(dbname, user))
            except psycopg2.OperationalError as e:
                transient = any(text in str(e) for text in (
                    "not yet accepting connections", "the database system is starting up",
                    "the database system is shutting down", "the database system is in recovery mode",
                    "Connection refused", "No such file or directory"))
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_ready(self, timeout=60):
        """wait_ready waits until the server accepts connections (e.g. after crash recovery)."""
        def ready():
            conn = psycopg2.connect(self.dsn("postgres"), connect_timeout=2)
            conn.close()
            return True
        wait_for(ready, timeout, 0.1, "PostgreSQL to accept connections")

    def query(self, sql, params=None, dbname=None, user="postgres"):
        """query runs one statement in autocommit mode and returns all rows (or None)."""
        conn = self.connect(dbname, user)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def scalar(self, sql, params=None, **kwargs):
        rows = self.query(sql, params, **kwargs)
        return rows[0][0] if rows else None

    def log(self):
        """log returns the server log so far."""
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def crashes(self):
        """crashes lists log lines where a process died of SIGABRT or SIGSEGV (bugs, never expected)."""
        return [line for line in self.log().splitlines()
                if re.search(r"terminated by signal (6|11)\b|^==\d+==ERROR: \w+Sanitizer|runtime error: ", line)]

    def postmaster_pid(self):
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def kill(self, pid, sig=signal.SIGKILL):
        os.kill(pid, sig)
