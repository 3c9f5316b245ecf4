"""Secrets, the hostile review: every break it found is a test here.

- CALL sync_once, retry_rejects and verify(repair => true) called by a superuser for an admin's
  river write the river's user tables as the river's owner: the owner's triggers never run with
  the superuser's rights;
- the catalog tables under status (progress, mapping_state, ...) and the workers' live state show an
  admin only the rivers it may see;
- a plain role cannot ask _may_see who owns which river;
- redaction reads a URI's password as libmongoc does (a '?' in it), hides the TLS key's password
  and authMechanismProperties, and never garbles error texts with a short password."""

import json
import os

import pytest

import fixtures
from pgcluster import wait_for
from river import wait_synced

# The source with a known user and the session helpers are the secrets suite's own.
from test_secrets import MAPPING, as_role, auth_peer, host_intact, ok  # noqa: F401 (auth_peer: a fixture)


@pytest.fixture(scope="module")
def sec(pg, auth_peer):
    fixtures.with_extension(pg)
    pg.query("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; "
             "GRANT mongo_river_admin TO alice, bob; GRANT CREATE ON SCHEMA public TO alice, bob")
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('alice_r', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_r', 'sec.a', 'alice_a', %s)",
               (json.dumps(MAPPING),)))
    wait_synced(pg, "alice_r")
    pg.postmaster = pg.postmaster_pid()
    return pg


ESCALATE = ("CREATE FUNCTION public.bob_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "BEGIN EXECUTE 'ALTER ROLE bob SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; "
            "RETURN NEW; END $$; "
            "CREATE TRIGGER t BEFORE INSERT OR UPDATE ON bob_e FOR EACH ROW EXECUTE FUNCTION public.bob_trg()")


def bob_is_superuser(pg):
    return pg.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'bob'")


def setup_bob(pg, auth_peer):
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob_t', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob_t', 'sec.e', 'bob_e', %s)", (json.dumps(MAPPING),)))
    ok(as_role(pg, "bob", ESCALATE))
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('bob_t')"))


def test_superuser_sync_once_runs_bobs_trigger_as_superuser(sec, auth_peer):
    pg = sec
    setup_bob(pg, auth_peer)
    auth_peer.client().sec.e.insert_one({"_id": "e1", "n": 1})
    pg.query("CALL mongo_river.sync_once('bob_t', '10 s')")  # a superuser (or its pg_cron job) helps bob
    assert pg.scalar("SELECT count(*) FROM bob_e") == 1
    escalated = bob_is_superuser(pg)
    pg.query("ALTER ROLE bob NOSUPERUSER")
    assert not escalated, "bob's trigger ran as the superuser who called sync_once: bob is now superuser"
    host_intact(pg, pg.postmaster)


def test_superuser_retry_rejects_runs_bobs_trigger_as_superuser(sec, auth_peer):
    pg = sec
    client = auth_peer.client()
    ok(as_role(pg, "bob", "SELECT mongo_river.start('bob_t')"))
    client.sec.e.insert_one({"_id": "e2", "n": 1, "ssn": "not a number"})
    wait_for(lambda: pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = 'bob_t'"), 30, 0.1, "the reject")
    client.sec.e.update_one({"_id": "e2"}, {"$set": {"ssn": 5}})
    ok(as_role(pg, "bob", "SELECT mongo_river.stop('bob_t')"))
    pg.query("ALTER ROLE bob NOSUPERUSER")
    assert pg.scalar("SELECT mongo_river.retry_rejects('bob_t')") >= 1
    escalated = bob_is_superuser(pg)
    pg.query("ALTER ROLE bob NOSUPERUSER")
    assert not escalated, "bob's trigger ran as the superuser who called retry_rejects: bob is now superuser"


def test_superuser_verify_repair_runs_bobs_trigger_as_superuser(sec, auth_peer):
    pg = sec
    auth_peer.client().sec.f.insert_one({"_id": "f1", "n": 1})
    ok(as_role(pg, "bob", "SELECT mongo_river.create_river('bob_v', %s)", (auth_peer.uri,)))
    ok(as_role(pg, "bob", "SELECT mongo_river.map_collection('bob_v', 'sec.f', 'bob_f', %s)", (json.dumps(MAPPING),)))
    wait_for(lambda: pg.scalar("SELECT count(*) FROM bob_f"), 30, 0.1, "the copy")
    ok(as_role(pg, "bob", ESCALATE.replace("bob_e", "bob_f").replace("bob_trg", "bob_trg_f").replace("TRIGGER t ", "TRIGGER tf ")))
    ok(as_role(pg, "bob", "ALTER TABLE bob_f DISABLE TRIGGER tf; DELETE FROM bob_f; ALTER TABLE bob_f ENABLE TRIGGER tf"))
    pg.query("ALTER ROLE bob NOSUPERUSER")
    rows = pg.query("SELECT * FROM mongo_river.verify('bob_v', repair => true)")  # a superuser checks bob's river
    assert rows and rows[0][3], rows
    escalated = bob_is_superuser(pg)
    pg.query("ALTER ROLE bob NOSUPERUSER")
    assert not escalated, "bob's trigger ran as the superuser who called verify(repair): bob is now superuser"


def test_bob_reads_alices_last_error_from_progress(sec, auth_peer):
    pg = sec
    client = auth_peer.client()
    client.sec.c.insert_one({"_id": "c1", "n": 1, "ssn": "SSN-123-45-6789"})
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('alice_s', %s, '{\"on_error\": \"stop\"}')",
               (auth_peer.uri,)))
    ok(as_role(pg, "alice", "SELECT mongo_river.map_collection('alice_s', 'sec.c', 'alice_c', %s)",
               (json.dumps(MAPPING),)))
    wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.progress WHERE river = 'alice_s' "
                               "AND last_error LIKE '%SSN-123%'"), 30, 0.1, "alice_s's error")
    # The status view, read as bob, shows nothing of alice's rivers ...
    assert ok(as_role(pg, "bob", "SELECT * FROM mongo_river.status WHERE river = 'alice_s'")) == []
    # ... but the table beneath it does.
    code, rows = as_role(pg, "bob", "SELECT river, last_error FROM mongo_river.progress WHERE river = 'alice_s'")
    assert code == "42501" or not rows, f"bob reads alice's last_error: {rows}"
    # alice still sees her river's error in status and in the tables; so does a superuser.
    assert "SSN-123" in str(ok(as_role(pg, "alice", "SELECT last_error FROM mongo_river.status WHERE river = 'alice_s'")))
    assert ok(as_role(pg, "alice", "SELECT last_error FROM mongo_river.progress WHERE river = 'alice_s'"))
    assert pg.scalar("SELECT count(*) FROM mongo_river.status WHERE river = 'alice_s'") >= 1
    host_intact(pg, pg.postmaster)


def test_bob_reads_alices_live_state(sec):
    pg = sec
    assert ok(as_role(pg, "bob", "SELECT * FROM mongo_river.status WHERE river = 'alice_r'")) == []
    code, rows = as_role(pg, "bob", "SELECT * FROM mongo_river_internal._live_status() WHERE river = 'alice_r'")
    assert code == "42501" or not rows, f"bob reads alice's live state: {rows}"
    assert ok(as_role(pg, "alice", "SELECT * FROM mongo_river.status WHERE river = 'alice_r'"))
    ok(as_role(pg, "alice", "SELECT * FROM mongo_river.copy_progress"))
    # bob's own reads of the catalog tables still work (the policies call _may_see as bob).
    ok(as_role(pg, "bob", "SELECT * FROM mongo_river.progress"))


def test_carol_probes_rivers_and_owners(sec):
    pg = sec
    code, _ = as_role(pg, "carol", "SELECT * FROM mongo_river.rivers")
    assert code == "42501"
    code, rows = as_role(pg, "carol", "SELECT mongo_river_internal._may_see('alice_r', 'alice'), "
                                      "mongo_river_internal._may_see('nosuch', 'alice')")
    assert code == "42501", f"carol learns that alice owns river alice_r: {rows}"


SECRET = "Qq7SecretZ"


def test_password_with_question_mark(sec, auth_peer):
    pg = sec
    uri = f"mongodb://root:a?{SECRET}@127.0.0.1:{auth_peer.port}/?replicaSet=rs0"
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('qmark', %s)", (uri,)))
    shown = ok(as_role(pg, "bob", "SELECT uri FROM mongo_river.rivers WHERE river = 'qmark'"))
    wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.progress WHERE river = 'qmark'"), 30, 0.1,
             "the worker's connection error")
    logged = [line for line in pg.log().splitlines() if SECRET in line and "STATEMENT" not in line]
    ok(as_role(pg, "alice", "SELECT mongo_river.drop_river('qmark')"))
    assert SECRET not in repr(shown), f"bob sees alice's password in mongo_river.rivers: {shown}"
    assert not logged, logged[:3]
    host_intact(pg, pg.postmaster)


def test_tls_key_password_not_redacted(sec, auth_peer):
    pg = sec
    uri = f"mongodb://127.0.0.1:{auth_peer.port}/?replicaSet=rs0&tlsCertificateKeyFilePassword={SECRET}"
    assert SECRET not in ok(as_role(pg, "bob", "SELECT mongo_river.redact_uri(%s)", (uri,)))[0][0]
    # A failing statement with it goes to the log with its STATEMENT: line.
    as_role(pg, "alice", "SELECT mongo_river.create_river('tlspw', %s, '{\"batch_size\": 0}')", (uri,))
    logged = [line for line in pg.log().splitlines() if SECRET in line]
    assert not logged, logged[:3]


def test_short_password_mangles_and_reveals(sec):
    pg = sec
    # An unreachable host: the worker's error text goes through the redaction.
    ok(as_role(pg, "alice", "SELECT mongo_river.create_river('shortpw', 'mongodb://root:a@127.0.0.1:1/?replicaSet=rs0"
                            "&serverSelectionTimeoutMS=200')"))
    error = wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.progress WHERE river = 'shortpw'"), 30, 0.1,
                     "the worker's connection error")
    ok(as_role(pg, "alice", "SELECT mongo_river.drop_river('shortpw')"))
    assert "suit****ble" not in error and "F****iled" not in error, error


# A SECURITY DEFINER function acts with its owner's rights, never with its caller's: bob's function,
# called by alice, reaches nothing of alice's river; alice's function, called by carol (a plain role
# alice lets run it), manages alice's river as alice.
BOB_DEPUTY = {
    "drop_river": "SELECT mongo_river.drop_river('alice_r', true)",
    "stop": "SELECT mongo_river.stop('alice_r')",
    "wait_for_sync": "SELECT mongo_river.wait_for_sync('alice_r', '1 s')",
    "verify": "SELECT count(*) FROM mongo_river.verify('alice_r')",
    "retry_rejects": "SELECT mongo_river.retry_rejects('alice_r')",
    "infer_mapping": "SELECT mongo_river.infer_mapping('alice_r', 'sec.a')",
    "river_for_owner": "SELECT (mongo_river_internal._river_for_owner('x', 'alice_r')).owner",
}


@pytest.mark.parametrize("name", sorted(BOB_DEPUTY))
def test_definer_function_does_not_borrow_its_callers_rights(sec, name):
    pg = sec
    fn = f"bob_deputy_{name}"
    ok(as_role(pg, "bob", f"CREATE FUNCTION public.{fn}() RETURNS void LANGUAGE plpgsql SECURITY DEFINER "
                          f"AS $$ BEGIN PERFORM ({BOB_DEPUTY[name]}); END $$"))
    enabled = pg.scalar("SELECT enabled FROM mongo_river.river WHERE river = 'alice_r'")
    code, detail = as_role(pg, "alice", f"SELECT public.{fn}()")
    # The same refusal bob meets when he calls it himself (42704 where he may not even see the river).
    direct, _ = as_role(pg, "bob", BOB_DEPUTY[name])
    assert code == direct and code in ("42501", "42704"), \
        f"bob's SECURITY DEFINER function, called by alice, ran {name} on her river: {code} {detail}"
    assert pg.scalar("SELECT to_regclass('alice_a') IS NOT NULL")
    assert pg.scalar("SELECT enabled FROM mongo_river.river WHERE river = 'alice_r'") == enabled


def test_definer_function_acts_as_its_owner(sec):
    pg = sec
    ok(as_role(pg, "alice", "CREATE FUNCTION public.alice_pause() RETURNS void LANGUAGE sql SECURITY DEFINER "
                            "AS $$ SELECT mongo_river.stop('alice_r'); SELECT mongo_river.start('alice_r') $$; "
                            "GRANT EXECUTE ON FUNCTION public.alice_pause() TO carol"))
    # carol is no admin: directly she may not; through alice's function she acts as alice.
    code, _ = as_role(pg, "carol", "SELECT mongo_river.stop('alice_r')")
    assert code == "42501"
    ok(as_role(pg, "carol", "SELECT public.alice_pause()"))
    assert pg.scalar("SELECT enabled FROM mongo_river.river WHERE river = 'alice_r'")


def test_internal_functions_are_not_entry_points(sec):
    """The implementations behind mongo_river's functions run as the catalog's owner: nobody calls
    them directly, not even a superuser (the checks would see the catalog's owner)."""
    pg = sec
    for role in ("bob", "postgres"):
        code, detail = as_role(pg, role, "SELECT mongo_river_internal.drop_river('alice_r', true)")
        assert code == "42501", (role, detail)
    assert pg.scalar("SELECT to_regclass('alice_a') IS NOT NULL")


def test_owner_cannot_point_a_password_file_at_another_host(sec, auth_peer):
    """A superuser gave alice's river a password_file: alice may not change where that password is
    sent (the URI's hosts, user or mechanism) — the file's password is the superuser's secret."""
    pg = sec
    path = os.path.join(pg.base, "deputy.pw")
    with open(path, "w") as f:
        f.write("pw\n")
    uri = f"mongodb://root@127.0.0.1:{auth_peer.port}/?replicaSet=rs0&authSource=admin"
    ok(as_role(pg, "postgres", "SELECT mongo_river.create_river('pwf_alice', %s, %s)",
               (uri, json.dumps({"password_file": path}))))
    ok(as_role(pg, "postgres", "ALTER TABLE mongo_river.river DISABLE TRIGGER USER; "
                               "UPDATE mongo_river.river SET owner = 'alice' WHERE river = 'pwf_alice'; "
                               "ALTER TABLE mongo_river.river ENABLE TRIGGER USER"))
    before = pg.query("SELECT uri, options FROM mongo_river.river WHERE river = 'pwf_alice'")
    evil = "mongodb://root@127.0.0.1:9/?replicaSet=rs0&authMechanism=PLAIN"
    code, detail = as_role(pg, "alice", "SELECT mongo_river.alter_river('pwf_alice', %s)", (evil,))
    assert code == "42501", detail
    # Nor its options: the river is a superuser's to alter.
    code, detail = as_role(pg, "alice", "SELECT mongo_river.alter_river('pwf_alice', options => '{\"batch_size\": 5}')")
    assert code == "42501", detail
    ok(as_role(pg, "postgres", "SELECT mongo_river.alter_river('pwf_alice', options => '{\"batch_size\": 50}')"))
    after = pg.query("SELECT uri, options->>'password_file' FROM mongo_river.river WHERE river = 'pwf_alice'")
    assert after[0][0] == before[0][0] and after[0][1] == path
    pg.query("SELECT mongo_river.drop_river('pwf_alice')")
