"""Review 20: a refused reply during authentication must be reported as what it is.

README ("A malformed reply"): a reply that fails the check "fails like a lost connection … the error
(SQLSTATE 08P01) says what the MongoDB server sent ("the MongoDB server sent a malformed reply: …")
in last_error, and in verify or infer_mapping when they meet one". The existing hostile tests refuse
replies of the handshake (hello, speculative authentication) and of commands. Here the refused reply
answers a SCRAM command: saslStart (the source does not take speculative authentication: its hello
reply has no speculativeAuthenticate, as any server that does not support it) or saslContinue.
libmongoc reports every failure of its SCRAM conversation as MONGOC_ERROR_CLIENT /
MONGOC_ERROR_CLIENT_AUTHENTICATE (_mongoc_cluster_run_scram_command overwrites the domain of the
stream error), and errors.cpp consults the refused reply's reason only for stream and server-selection
errors: the error becomes 28P01 "MongoDB authentication failed", with the hint to check the user
name and password, which blames the user's credentials for a reply the river itself refused.

Controls (these held): SCRAM-SHA-1 and SCRAM-SHA-256, with and without speculative authentication,
authenticate through the check.
"""

import struct

import pytest

from pgcluster import wait_for
from hostile_lib import DocRewrite, URI_OPTIONS, drop_river, failing_infer, infer, proxied_river, session


def strip_speculative(name, doc):
    if "speculativeAuthenticate" in doc:
        del doc["speculativeAuthenticate"]
        return True
    return False


def no_speculation_and(change):
    """no_speculation_and strips speculativeAuthenticate from hello replies and applies change to the
    others."""
    def both(name, doc):
        return strip_speculative(name, doc) or change(name, doc)
    return both


def huge_sasl_start(name, doc):
    if name == "saslStart" and isinstance(doc.get("payload"), bytes) and b",i=" in doc["payload"]:
        doc["payload"] = doc["payload"].rpartition(b",i=")[0] + b",i=2000000000"
        return True
    return False


class FlagContinue:
    """FlagContinue sets the moreToCome flag bit of saslContinue's first reply once on (a reply the check
    refuses: "an OP_MSG with flag bits 0x2 set")."""

    def __init__(self, strip=False):
        self.on, self.fired, self.strip = False, 0, strip

    def __call__(self, name, reply):
        if self.on and self.strip and b"speculativeAuthenticate" in reply:
            return self._strip(reply)
        if self.on and name == "saslContinue":
            self.fired += 1
            return [("send", reply[:16] + struct.pack("<I", 2) + reply[20:])]
        return [("send", reply)]

    def _strip(self, reply):
        rewrite = DocRewrite(strip_speculative)
        rewrite.on = True
        return rewrite(None, reply)


def assert_blames_the_reply(failed, what, took):
    message = str(failed).strip()
    assert failed.pgcode == "08P01" and what in message, (
        f"a refused reply during authentication was reported as SQLSTATE {failed.pgcode} after {took:.1f} s: "
        f"{message}")


def test_refused_sasl_start_reply_is_08P01(river_pg, auth_source):
    """saslStart's reply asks for 2,000,000,000 iterations (refused by the check, at once); README
    promises 08P01 "… SCRAM challenge …", not 28P01 "authentication failed"."""
    pg, river = river_pg, "r20a_start"
    rewrite = DocRewrite(no_speculation_and(huge_sasl_start))
    proxy = proxied_river(pg, river, auth_source, rewrite)
    try:
        rewrite.on = True
        error, took = failing_infer(pg, river)
        assert "saslStart" in rewrite.names, f"no saslStart reply went through the proxy: {rewrite.names}"
        assert_blames_the_reply(error, "SCRAM challenge", took)
    finally:
        drop_river(pg, river, proxy)


@pytest.mark.parametrize("speculative", [True, False], ids=["speculative", "sasl_start"])
def test_refused_sasl_continue_reply_is_08P01(river_pg, auth_source, speculative):
    """saslContinue's reply has the moreToCome flag bit (refused by the check); README promises 08P01
    "… malformed reply …" in infer_mapping and in the worker's last_error."""
    pg, river = river_pg, f"r20a_cont_{'spec' if speculative else 'plain'}"
    policy = FlagContinue(strip=not speculative)
    proxy = proxied_river(pg, river, auth_source, policy)
    try:
        policy.on = True
        error, took = failing_infer(pg, river)
        assert policy.fired, "no saslContinue reply went through the proxy"
        assert_blames_the_reply(error, "malformed reply", took)
    finally:
        drop_river(pg, river, proxy)


def test_worker_last_error_names_the_refused_sasl_reply(river_pg, auth_source):
    """The worker meeting the same refused saslContinue reply: last_error must name the malformed
    reply, not an authentication failure."""
    pg, river = river_pg, "r20a_worker"
    policy = FlagContinue()
    proxy = proxied_river(pg, river, auth_source, policy)
    try:
        policy.on = True
        pg.query("SELECT mongo_river.start(%s)", (river,))
        error = wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = %s", (river,)),
                         30, 0.1, "the worker's error")
        assert policy.fired, "no saslContinue reply went through the proxy"
        assert "malformed reply" in error and "authentication failed" not in error, error
    finally:
        policy.on = False
        drop_river(pg, river, proxy)


@pytest.mark.parametrize("mechanism", ["", "SCRAM-SHA-1", "SCRAM-SHA-256"])
@pytest.mark.parametrize("speculative", [True, False], ids=["speculative", "sasl_start"])
def test_legitimate_logins_pass_the_check(river_pg, auth_source, mechanism, speculative):
    """Control (false refusals): every login a mongod allows goes through."""
    pg, river = river_pg, f"r20a_ok_{mechanism.replace('-', '').lower() or 'default'}_{int(speculative)}"
    rewrite = DocRewrite(strip_speculative)
    options = URI_OPTIONS + (f"&authMechanism={mechanism}" if mechanism else "")
    proxy = proxied_river(pg, river, auth_source, rewrite, uri_options=options)
    try:
        rewrite.on = not speculative
        conn = session(pg)
        try:
            mapping = infer(conn, river)
        finally:
            conn.close()
        assert mapping and mapping.get("pk"), mapping
        assert speculative or rewrite.fired, "the hello reply still offered speculative authentication"
    finally:
        drop_river(pg, river, proxy)
