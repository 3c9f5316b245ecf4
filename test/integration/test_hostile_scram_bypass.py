"""Review 20: SCRAM challenges whose iteration count the reply check reads differently from libmongoc.

README ("A malformed reply"): "a SCRAM challenge asking for more than 1,000,000 PBKDF2 iterations"
is refused, because libmongoc computes them "in one call nothing interrupts, so i=2000000000 held a
process, deaf to stop() and pg_terminate_backend, for many minutes"; the error is 08P01 and says so.

libmongoc 1.23 (mongoc-scram.c, _mongoc_scram_step2) splits the server-first message on commas,
keeps the LAST value of each of r, s, i, and reads i with bson_ascii_strtoll, which skips leading
whitespace and takes a '+' sign. The check (reply_content.cpp, IterationCount) takes the FIRST i= and gives
up ("libmongoc refuses it itself") on any non-digit. So these challenges pass the check and libmongoc
computes their count. Each test asks for 3,000,000 iterations (3x the bound: a few seconds of CPU, so
a bypass costs little here) through a proxy that rewrites every SCRAM payload (saslStart's reply and
the handshake's speculativeAuthenticate): the README promises an immediate 08P01 naming the SCRAM
challenge; a bypass shows as 28P01 "authentication failed" (the peer refuses the proof computed from
the altered count) after libmongoc spent the iterations. The last test shows the host-safety cost:
with a bypassing challenge of 8,000,000 iterations stop() waits for libmongoc's PBKDF2.
"""

import os
import time

import pytest

from pgcluster import wait_for
from hostile_lib import DocRewrite, drop_river, failing_infer, proxied_river

COUNT = 3_000_000


def with_i(payload, value):
    """with_i replaces the challenge's (last) i= attribute by i=value."""
    return payload.rpartition(b",i=")[0] + b",i=" + value


def first_attribute(payload, count):
    """first_attribute moves the count to the front: i=count,r=...,s=..."""
    rest = payload.rpartition(b",i=")[0]
    return b"i=%d," % count + rest


# Challenges libmongoc reads as COUNT iterations and the check does not.
BYPASSES = {
    "plus_sign": lambda p: with_i(p, b"+%d" % COUNT),
    "leading_space": lambda p: with_i(p, b" %d" % COUNT),
    "leading_tab": lambda p: with_i(p, b"\t%d" % COUNT),
    "repeated_last_wins": lambda p: p + b",i=%d" % COUNT,  # the server's own i= (10000/15000) first
}
# Challenges the check reads as libmongoc does (these held).
HELD = {
    "plain": lambda p: with_i(p, b"%d" % COUNT),
    "leading_zeros": lambda p: with_i(p, b"0000000%d" % COUNT),
    "first_attribute": lambda p: first_attribute(p, COUNT),
    "huge_digit_string": lambda p: with_i(p, b"9" * 400),
    # (the check stops reading digits once the count is past the bound, before the NUL)
    "nul_after_digits": lambda p: with_i(p, b"%d\x00" % COUNT),
}


def cpu_seconds(pid):
    """cpu_seconds is the user+system CPU time of process pid (/proc/pid/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload_changer(transform):
    def change(name, doc):
        hit = False
        for holder in (doc, doc.get("speculativeAuthenticate")):
            if isinstance(holder, dict) and isinstance(holder.get("payload"), bytes) and b",i=" in holder["payload"]:
                holder["payload"] = transform(holder["payload"])
                hit = True
        return hit
    return change


def refused_at_once(pg, river, auth_source, transform):
    rewrite = DocRewrite(payload_changer(transform))
    proxy = proxied_river(pg, river, auth_source, rewrite)
    try:
        rewrite.on = True
        error, took = failing_infer(pg, river)
        assert rewrite.fired, "no SCRAM challenge went through the proxy"
        assert error.pgcode == "08P01" and "SCRAM challenge" in str(error), (
            f"a challenge of {COUNT} iterations was not refused: SQLSTATE {error.pgcode} after "
            f"{took:.1f} s: {str(error).strip()}")
        assert took < 10, f"infer_mapping took {took:.1f} s"
    finally:
        drop_river(pg, river, proxy)


@pytest.mark.parametrize("variant", sorted(BYPASSES))
def test_a_count_libmongoc_reads_is_refused(river_pg, auth_source, variant):
    """README: a challenge above 1,000,000 iterations is refused with 08P01 naming it, whatever its
    spelling libmongoc accepts."""
    refused_at_once(river_pg, f"r20b_{variant}", auth_source, BYPASSES[variant])


@pytest.mark.parametrize("variant", sorted(HELD))
def test_held_spellings_are_refused(river_pg, auth_source, variant):
    refused_at_once(river_pg, f"r20h_{variant}", auth_source, HELD[variant])


def test_stop_is_prompt_while_a_bypassing_challenge_is_computed(river_pg, auth_source):
    """README ("A silent source"): stop() ends a worker "within about a second in every state
    (connecting, …)"; the iteration bound exists so that no challenge can hold a worker. With
    i=+8000000 (bypassing the check) the worker computes 8,000,000 PBKDF2 iterations and stop() waits."""
    pg, river = river_pg, "r20b_stop"
    rewrite = DocRewrite(payload_changer(lambda p: with_i(p, b"+8000000")))
    proxy = proxied_river(pg, river, auth_source, rewrite)
    try:
        rewrite.on = True
        pg.query("SELECT mongo_river.start(%s)", (river,))
        wait_for(lambda: rewrite.fired, 30, 0.01, "the worker's SCRAM challenge")
        pid = wait_for(lambda: pg.scalar("SELECT max(worker_pid) FROM mongo_river.status WHERE river = %s",
                                         (river,)), 10, 0.05, "the worker's pid")
        base = cpu_seconds(pid)
        # Either the challenge is refused (last_error says so), or the worker is inside its SCRAM step
        # (it has burnt half a second of CPU since the challenge).
        wait_for(lambda: cpu_seconds(pid) - base > 0.5 or "SCRAM challenge" in (pg.scalar(
            "SELECT last_error FROM mongo_river.status WHERE river = %s", (river,)) or ""),
            20, 0.05, "the challenge refused, or the worker computing it")
        started = time.monotonic()
        pg.query("SELECT mongo_river.stop(%s)", (river,))
        took = time.monotonic() - started
        error = pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = %s", (river,))
        assert took < 3, f"stop() took {took:.1f} s (the worker was computing the challenge); last_error {error!r}"
    finally:
        rewrite.on = False
        drop_river(pg, river, proxy)


def test_statement_timeout_is_prompt_while_a_bypassing_challenge_is_computed(river_pg, auth_source):
    """README ("A silent source"): infer_mapping and verify "answer pg_cancel_backend and
    statement_timeout as promptly (SQLSTATE 57014)"; the bound on iterations exists so that no
    challenge can hold a backend. With i=+8000000 and statement_timeout 1 s the backend computes the
    8,000,000 iterations first."""
    pg, river = river_pg, "r20b_timeout"
    rewrite = DocRewrite(payload_changer(lambda p: with_i(p, b"+8000000")))
    proxy = proxied_river(pg, river, auth_source, rewrite)
    try:
        rewrite.on = True
        error, took = failing_infer(pg, river, "1s")
        assert rewrite.fired, "no SCRAM challenge went through the proxy"
        assert took < 3, (f"statement_timeout 1 s answered after {took:.1f} s: SQLSTATE {error.pgcode}: "
                          f"{str(error).strip()}")
    finally:
        rewrite.on = False
        drop_river(pg, river, proxy)
