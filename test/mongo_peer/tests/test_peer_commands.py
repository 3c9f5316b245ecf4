"""Catalog commands: listDatabases, listCollections, create, drop, dropDatabase, renameCollection."""
import pymongo
import pytest


def test_list_collections_cursor_filter_uuid(db):
    db.create_collection("a")
    db.create_collection("b")
    r = db.command("listCollections", filter={"name": "a"})
    # [manual:reference/command/listCollections/] cursor form; each entry has name, type,
    # options, info {readOnly, uuid}, idIndex; filter applies to those fields.
    batch = r["cursor"]["firstBatch"]
    assert r["cursor"]["id"] == 0 and r["cursor"]["ns"] == "%s.$cmd.listCollections" % db.name
    assert [c["name"] for c in batch] == ["a"]
    assert batch[0]["type"] == "collection"
    uuid = batch[0]["info"]["uuid"]
    # UUIDs decode as bson Binary subtype 4 with pymongo's default (PYTHON_LEGACY would give
    # uuid.UUID; either way subtype 4 [spec:bson-binary-uuid/uuid.md]).
    assert getattr(uuid, "subtype", 4) == 4
    names = sorted(db.list_collection_names())
    assert names == ["a", "b"]


def test_create_existing_is_namespace_exists(db):
    db.create_collection("a")
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        db.command("create", "a")
    # [server:src/mongo/base/error_codes.yml] NamespaceExists = 48.
    assert e.value.code == 48


def test_drop_and_drop_database(client, db):
    db.c.insert_one({"x": 1})
    r = db.command("drop", "c")
    # [manual:reference/command/drop/] ok: 1, ns of the dropped collection.
    assert r["ok"] == 1 and r["ns"] == "%s.c" % db.name
    db.d.insert_one({"x": 1})
    assert db.name in client.list_database_names()
    r = db.command("dropDatabase")
    # [manual:reference/command/dropDatabase/] returns {dropped: <db>, ok: 1}.
    assert r["dropped"] == db.name
    assert db.name not in client.list_database_names()


def test_list_databases(client, db):
    db.c.insert_one({"x": 1})
    r = client.admin.command("listDatabases")
    # [manual:reference/command/listDatabases/] databases [{name, sizeOnDisk, empty}], totalSize.
    names = [d["name"] for d in r["databases"]]
    assert db.name in names and "admin" in names and "local" in names
    assert "totalSize" in r
    r = client.admin.command("listDatabases", nameOnly=True)
    assert all(set(d) == {"name"} for d in r["databases"])


def test_rename_collection(client, db):
    db.a.insert_many([{"_id": i} for i in range(3)])
    client.admin.command("renameCollection", "%s.a" % db.name, to="%s.b" % db.name)
    # [manual:reference/command/renameCollection/] documents move with the collection.
    assert db.b.count_documents({}) == 3 and "a" not in db.list_collection_names()
    db.c.insert_one({"_id": 1})
    with pytest.raises(pymongo.errors.OperationFailure) as e:
        client.admin.command("renameCollection", "%s.b" % db.name, to="%s.c" % db.name)
    # [server:src/mongo/base/error_codes.yml] NamespaceExists = 48 when the target exists
    # and dropTarget is false ([manual:reference/command/renameCollection/]).
    assert e.value.code == 48
    client.admin.command("renameCollection", "%s.b" % db.name, to="%s.c" % db.name,
                         dropTarget=True)
    assert db.c.count_documents({}) == 3


def test_end_sessions(client):
    with client.start_session() as s:
        lsid = s.session_id
    r = client.admin.command("endSessions", [lsid])
    # [manual:reference/command/endSessions/] ok: 1.
    assert r["ok"] == 1
