"""Review of issue 15: "mongo_river.rivers lists every river with its password as ****, and every
message, status column and log line of ours shows URIs that way ... tlsCertificateKeyFilePassword and
authMechanismProperties are shown as **** too." Attack the redaction with URIs libmongoc accepts."""

import pytest

from test_secrets import as_role, auth_peer, sec  # noqa: F401

SECRET = "Zq9Secret"
URIS = [
    f"mongodb://root:{SECRET}@127.0.0.1:1/?replicaSet=rs0",
    f"mongodb://root:{SECRET}%40x@127.0.0.1:1/?replicaSet=rs0",
    f"mongodb://root:{SECRET}%3Ax@127.0.0.1:1/?replicaSet=rs0",
    f"mongodb://root:{SECRET}?x@127.0.0.1:1/?replicaSet=rs0",
    f"mongodb://root:{SECRET}%2Fx@127.0.0.1:1/?replicaSet=rs0",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&tlsCertificateKeyFilePassword={SECRET}",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&TLSCERTIFICATEKEYFILEPASSWORD={SECRET}",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&sslClientCertificateKeyPassword={SECRET}",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&authMechanismProperties=SERVICE_NAME:{SECRET}",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:{SECRET}",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&authmechanismproperties=AWS_SESSION_TOKEN:{SECRET}",
    f"mongodb://root:pw@127.0.0.1:1/?replicaSet=rs0&authMechanismProperties=AWS_SESSION_TOKEN%3A{SECRET}",
    f"mongodb://root:{SECRET}@127.0.0.1:1,127.0.0.1:2/?replicaSet=rs0",
    f"mongodb://root:{SECRET}@%2Ftmp%2Fmongodb-27017.sock/?replicaSet=rs0",
]


@pytest.mark.parametrize("uri", URIS)
def test_redaction(sec, uri):
    pg = sec
    name = f"red{URIS.index(uri)}"
    created = as_role(pg, "alice", "SELECT mongo_river.create_river(%s, %s)", (name, uri))
    if created[0] is not None:
        # refused: its own message must not echo the secret
        assert SECRET not in created[1], created
        redacted = pg.scalar("SELECT mongo_river.redact_uri(%s)", (uri,))
        assert SECRET not in (redacted or ""), f"redact_uri({uri}) = {redacted}"
        return
    pg.query("SELECT mongo_river.stop(%s)", (name,))
    code, rows = as_role(pg, "bob", "SELECT uri FROM mongo_river.rivers WHERE river = %s", (name,))
    pg.query("SELECT mongo_river.drop_river(%s)", (name,))
    assert SECRET not in repr(rows), f"bob reads {rows} for alice's {uri}"
