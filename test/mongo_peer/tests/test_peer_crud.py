"""CRUD commands, query language, cross-type ordering, cursors, update operators."""
import datetime

import bson
import pymongo
import pytest
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp
from pymongo.errors import BulkWriteError, OperationFailure, WriteError


def test_insert_generates_object_id_first(db):
    db.c.insert_one({"a": 1, "b": 2})
    raw = db.get_collection("c", codec_options=bson.CodecOptions(RawBSONDocument)).find_one()
    # [manual:core/document/#the-_id-field] a missing _id is generated as an ObjectId and
    # _id is always the first field ([server:src/mongo/db/ops/insert.cpp] fixDocumentForInsert).
    keys = list(bson.decode(raw.raw).keys())
    assert keys == ["_id", "a", "b"]
    assert isinstance(raw["_id"], ObjectId)


def test_insert_moves_id_first(db):
    db.command("insert", "c", documents=[bson.SON([("a", 1), ("_id", 5)])])
    # [server:src/mongo/db/ops/insert.cpp] fixDocumentForInsert appends _id first.
    assert list(db.c.find_one().keys()) == ["_id", "a"]


def test_duplicate_id_is_11000(db):
    db.c.insert_one({"_id": 1})
    with pytest.raises(WriteError) as e:
        db.c.insert_one({"_id": 1})
    # [manual:reference/command/insert/#output] writeErrors[{index, code, errmsg}];
    # [server:src/mongo/base/error_codes.yml] DuplicateKey = 11000.
    assert e.value.code == 11000
    det = e.value.details
    assert "E11000 duplicate key error" in det["errmsg"]
    assert det["keyPattern"] == {"_id": 1} and det["keyValue"] == {"_id": 1}


def test_ordered_and_unordered_batches(db):
    with pytest.raises(BulkWriteError) as e:
        db.c.insert_many([{"_id": 1}, {"_id": 1}, {"_id": 2}])
    # [manual:reference/command/insert/] ordered (default): stop at the first error.
    assert e.value.details["nInserted"] == 1
    assert e.value.details["writeErrors"][0]["index"] == 1
    db.c.drop()
    with pytest.raises(BulkWriteError) as e:
        db.c.insert_many([{"_id": 1}, {"_id": 1}, {"_id": 2}], ordered=False)
    # ordered: false: continue after errors.
    assert e.value.details["nInserted"] == 2


def _nested(levels):
    d = {"x": 1}
    for _ in range(levels):
        d = {"a": d}
    return d


def test_nesting_depth_limit(db):
    # [server:src/mongo/bson/bson_depth.h] stored documents may nest getMaxDepthForUserStorage()
    # = kDefaultMaxAllowableDepth (200) - kExtraSystemDepthLevels (20) = 180 levels (the
    # manual's limits page says 100, the server enforces 180:
    # [server:jstests/noPassthrough/v2_delta_oplog_entries.js] stores a 147-level object).
    # [server:src/mongo/db/ops/insert.cpp] validateDepth counts the top-level document as the
    # first level and fails with ErrorCodes::Overflow
    # ([server:src/mongo/base/error_codes.yml] Overflow = 15).
    db.c.insert_one({"_id": 147, "d": _nested(145)})
    db.c.insert_one({"_id": 180, "d": _nested(178)})
    arr = 1
    for _ in range(179):
        arr = [arr]
    db.c.insert_one({"_id": "arr", "d": arr})  # arrays count as levels too: 180
    assert db.c.find_one({"_id": 180}) == {"_id": 180, "d": _nested(178)}
    assert db.c.find_one({"_id": "arr"})["d"] == arr
    with pytest.raises(WriteError) as e:
        db.c.insert_one({"_id": 181, "d": _nested(179)})
    assert e.value.code == 15
    assert "cannot insert document because it exceeds 180 levels of nesting" in str(e.value)
    with pytest.raises(WriteError) as e:
        db.c.insert_one({"_id": "arr181", "d": [arr]})
    assert e.value.code == 15
    # An update result is checked by [server:src/mongo/db/update/storage_validation.cpp]
    # storageValid: Overflow, "Document exceeds maximum nesting depth of 180".
    db.c.update_one({"_id": 147}, {"$set": {"e": _nested(178)}})
    with pytest.raises(WriteError) as e:
        db.c.update_one({"_id": 147}, {"$set": {"e": _nested(179)}})
    assert e.value.code == 15
    assert "Document exceeds maximum nesting depth of 180" in str(e.value)
    assert db.c.find_one({"_id": 147})["e"] == _nested(178)
    # The same limits for large documents (the peer checks those by their tree, not their bytes).
    big = "x" * 100000
    db.c.insert_one({"_id": "big180", "s": big, "d": _nested(178)})
    with pytest.raises(WriteError) as e:
        db.c.insert_one({"_id": "big181", "s": big, "d": _nested(179)})
    assert e.value.code == 15
    with pytest.raises(WriteError) as e:
        db.c.update_one({"_id": "big180"}, {"$set": {"e": [_nested(178)]}})
    assert e.value.code == 15
    db.c.update_one({"_id": "big180"}, {"$set": {"n": 1}})
    assert db.c.find_one({"_id": "big180"})["n"] == 1


def test_int64_extreme_dates_in_a_filter(db):
    # Any int64 is a valid BSON date ([spec:bson] UTC datetime); a driver resuming a scan by _id
    # bracket sends Date(-2**63) as the lower bound of the date bracket. The answer is the
    # documents, not a closed connection.
    import struct
    db.c.insert_many([{"_id": "s"}, {"_id": datetime.datetime(1970, 1, 1)}])

    def element(kind, key, payload):
        return bytes([kind]) + key.encode() + b"\0" + payload

    def document(*elements):
        body = b"".join(elements)
        return struct.pack("<i", len(body) + 5) + body + b"\0"

    flt = document(element(0x03, "_id", document(
        element(0x09, "$gte", struct.pack("<q", -2**63)),
        element(0x09, "$lte", struct.pack("<q", 2**63 - 1)))))
    assert [d["_id"] for d in db.c.find(RawBSONDocument(flt))] == [datetime.datetime(1970, 1, 1)]


def test_id_filter_over_a_document_python_cannot_decode(db):
    # mongod stores a string with invalid UTF-8 (its default BSON validation does not check string
    # contents) and evaluates an _id filter over it; the peer's decoder refuses the document, so
    # for a filter on _id alone it matches on the _id element.
    import struct
    from bson.codec_options import CodecOptions
    bad = b"\xff\xfe"
    elements = b"\x02_id\x00" + struct.pack("<i", 2) + b"b\x00" + \
        b"\x02s\x00" + struct.pack("<i", len(bad) + 1) + bad + b"\x00"
    db.c.insert_many([RawBSONDocument(struct.pack("<i", len(elements) + 5) + elements + b"\x00"),
                      {"_id": "a"}])
    raw = db.c.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
    got = raw.find({"$or": [{"_id": {"$gt": "a"}}, {"_id": {"$type": "objectId"}}]}).sort("_id", 1)
    assert [bytes(d.raw)[-4:-2] for d in got] == [bad]


def test_array_id_refused(db):
    with pytest.raises(WriteError) as e:
        db.c.insert_one({"_id": [1, 2]})
    # [server:src/mongo/db/ops/insert.cpp] "can't use an array for _id" (BadValue = 2).
    assert e.value.code == 2


@pytest.fixture
def people(db):
    db.p.insert_many([
        {"_id": 1, "name": "ann", "age": 30, "tags": ["a", "b"], "addr": {"city": "x", "zip": 1}},
        {"_id": 2, "name": "bob", "age": 25, "tags": ["b"], "addr": {"city": "y"}},
        {"_id": 3, "name": "cy", "age": None, "items": [{"k": 1}, {"k": 5}]},
        {"_id": 4, "name": "di", "age": "forty"},
    ])
    return db.p


def _ids(cur):
    return [d["_id"] for d in cur]


@pytest.mark.parametrize("flt,expected", [
    # Each row: [manual:reference/operator/query/<op>/] semantics.
    ({"age": 30}, [1]),
    ({"age": {"$ne": 30}}, [2, 3, 4]),                  # $ne matches missing/other types too
    ({"age": {"$gt": 25}}, [1]),                        # type bracketing: "forty" excluded
    ({"age": {"$gte": 25}}, [1, 2]),
    ({"age": {"$lt": 30}}, [2]),
    ({"age": {"$lte": 30}}, [1, 2]),
    ({"age": {"$in": [25, "forty"]}}, [2, 4]),
    ({"age": {"$nin": [25, 30]}}, [3, 4]),
    ({"age": None}, [3]),                               # null matches null or missing
    ({"addr": {"$exists": False}}, [3, 4]),
    ({"addr.zip": {"$exists": True}}, [1]),
    ({"addr.city": "y"}, [2]),                          # dotted path into a sub-document
    ({"tags": "b"}, [1, 2]),                            # array element match
    ({"tags": ["b"]}, [2]),                             # whole-array equality
    ({"tags.1": "b"}, [1]),                             # numeric path component
    ({"items.k": 5}, [3]),                              # path through an array of documents
    ({"items.k": {"$gt": 4}}, [3]),
    ({"$and": [{"age": {"$gt": 20}}, {"name": "bob"}]}, [2]),
    ({"$or": [{"name": "ann"}, {"name": "di"}]}, [1, 4]),
    ({"$nor": [{"name": "ann"}, {"age": None}]}, [2, 4]),
    ({"age": {"$not": {"$gt": 25}}}, [2, 3, 4]),        # $not also matches missing/other types
    ({"name": {"$regex": "^[ab]"}}, [1, 2]),
])
def test_query_operators(people, flt, expected):
    assert sorted(_ids(people.find(flt))) == expected


def test_cross_type_sort_order(db):
    values = [MaxKey(), Regex("a"), Timestamp(1, 1), datetime.datetime(2020, 1, 1), True,
              ObjectId("000000000000000000000001"), b"bin", [5], {"a": 1}, "str", 3.5,
              Int64(2), 1, None, MinKey()]
    db.t.insert_many([{"_id": i, "v": v} for i, v in enumerate(values)])
    got = [d["_id"] for d in db.t.find().sort("v", 1)]
    # [manual:reference/bson-type-comparison-order/] MinKey < Null < Numbers < Symbol,String <
    # Object < Array < BinData < ObjectId < Boolean < Date < Timestamp < Regex < MaxKey.
    # An array sorts by its smallest element ascending, so [5] sorts among the numbers (after
    # 3.5) [manual:reference/method/cursor.sort/#ascending-descending-sort].
    # ids: 14 MinKey, 13 null, 12 1, 11 2, 10 3.5, 7 [5], 9 "str", 8 {a: 1}, 6 bin, 5 oid,
    # 4 true, 3 date, 2 timestamp, 1 regex, 0 MaxKey.
    assert got == [14, 13, 12, 11, 10, 7, 9, 8, 6, 5, 4, 3, 2, 1, 0]
    got = [d["_id"] for d in db.t.find({"_id": {"$ne": 7}}).sort("v", -1)]
    assert got == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]


def test_sort_projection_skip_limit(people):
    docs = list(people.find({"age": {"$type": "number"}}, {"name": 1, "_id": 0})
                .sort("age", -1))
    # [manual:reference/method/db.collection.find/#projection] inclusion with _id excluded.
    assert docs == [{"name": "ann"}, {"name": "bob"}]
    docs = list(people.find({}, {"addr": 0, "tags": 0, "items": 0}).sort("_id", 1).skip(1).limit(2))
    assert docs == [{"_id": 2, "name": "bob", "age": 25}, {"_id": 3, "name": "cy", "age": None}]
    docs = list(people.find({}, {"addr.city": 1}).sort("_id", 1).limit(1))
    assert docs == [{"_id": 1, "addr": {"city": "x"}}]  # dotted inclusion keeps the path


def test_batch_size_get_more_kill_cursors(db):
    db.c.insert_many([{"_id": i} for i in range(10)])
    r = db.command("find", "c", batchSize=3)
    # [manual:reference/command/find/] batchSize limits the first batch; id != 0 means more.
    assert len(r["cursor"]["firstBatch"]) == 3 and r["cursor"]["id"] != 0
    cid = r["cursor"]["id"]
    r = db.command("getMore", cid, collection="c", batchSize=4)
    # [manual:reference/command/getMore/] nextBatch.
    assert [d["_id"] for d in r["cursor"]["nextBatch"]] == [3, 4, 5, 6]
    r = db.command("killCursors", "c", cursors=[cid])
    # [manual:reference/command/killCursors/] cursorsKilled lists the ids.
    assert r["cursorsKilled"] == [cid]
    with pytest.raises(OperationFailure) as e:
        db.command("getMore", cid, collection="c")
    # [server:src/mongo/base/error_codes.yml] CursorNotFound = 43.
    assert e.value.code == 43
    r = db.command("find", "c", batchSize=2, singleBatch=True)
    # [manual:reference/command/find/] singleBatch closes the cursor after the first batch.
    assert r["cursor"]["id"] == 0 and len(r["cursor"]["firstBatch"]) == 2
    r = db.command("find", "c", limit=4)
    assert r["cursor"]["id"] == 0 and len(r["cursor"]["firstBatch"]) == 4


def test_count_and_distinct(people):
    db = people.database
    # [manual:reference/command/count/] {n}; [manual:reference/command/distinct/] values,
    # array fields contribute each element.
    assert db.command("count", "p", query={"age": {"$gt": 0}})["n"] == 2
    assert db.command("count", "p")["n"] == 4
    assert sorted(db.command("distinct", "p", key="tags")["values"]) == ["a", "b"]


def test_aggregate_stages(people):
    r = list(people.aggregate([{"$match": {"age": {"$type": "number"}}},
                               {"$project": {"name": 1}}, {"$sort": {"name": -1}},
                               {"$skip": 0}, {"$limit": 5}]))
    # [manual:reference/operator/aggregation/] $match/$project/$sort/$skip/$limit.
    assert r == [{"_id": 2, "name": "bob"}, {"_id": 1, "name": "ann"}]
    assert list(people.aggregate([{"$count": "n"}])) == [{"n": 4}]
    g = list(people.aggregate([{"$group": {"_id": None, "total": {"$sum": "$age"},
                                           "n": {"$sum": 1}}}]))
    # [manual:reference/operator/aggregation/sum/] non-numeric values are ignored.
    assert g == [{"_id": None, "total": 55, "n": 4}]
    assert len(list(people.aggregate([{"$sample": {"size": 2}}]))) == 2


def _after(coll, update, doc, **kw):
    coll.delete_many({})
    coll.insert_one(doc)
    res = coll.update_one({"_id": doc["_id"]}, update, **kw)
    return res, coll.find_one({"_id": doc["_id"]})


@pytest.mark.parametrize("update,expected", [
    # [manual:reference/operator/update/<op>/] for each operator.
    ({"$set": {"a.b": 5, "n": 1}}, {"_id": 1, "a": {"b": 5, "c": 2}, "arr": [1, 2, 3], "x": 10, "n": 1}),
    ({"$unset": {"x": ""}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3]}),
    ({"$inc": {"x": 5, "a.c": -2}}, {"_id": 1, "a": {"b": 1, "c": 0}, "arr": [1, 2, 3], "x": 15}),
    ({"$mul": {"x": 2}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "x": 20}),
    ({"$min": {"x": 3}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "x": 3}),
    ({"$max": {"x": 30}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "x": 30}),
    ({"$rename": {"x": "y"}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "y": 10}),
    ({"$push": {"arr": 4}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3, 4], "x": 10}),
    ({"$push": {"arr": {"$each": [0, 9], "$position": 0, "$slice": 4}}},
     {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [0, 9, 1, 2], "x": 10}),
    ({"$push": {"arr": {"$each": [0], "$sort": -1}}},
     {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [3, 2, 1, 0], "x": 10}),
    ({"$pull": {"arr": {"$gte": 2}}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1], "x": 10}),
    ({"$addToSet": {"arr": {"$each": [3, 4]}}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3, 4], "x": 10}),
    ({"$pop": {"arr": -1}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [2, 3], "x": 10}),
    ({"$set": {"arr.1": 7, "arr.5": 8}}, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 7, 3, None, None, 8], "x": 10}),
])
def test_update_operators(db, update, expected):
    res, doc = _after(db.u, update, {"_id": 1, "a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "x": 10})
    assert res.modified_count == 1
    assert doc == expected


def test_current_date_and_set_on_insert(db):
    db.u.insert_one({"_id": 1})
    db.u.update_one({"_id": 1}, {"$currentDate": {"d": True}, "$setOnInsert": {"s": 1}})
    doc = db.u.find_one()
    # [manual:reference/operator/update/currentDate/] sets a Date; [manual:reference/operator/
    # update/setOnInsert/] has no effect unless the update inserts.
    assert isinstance(doc["d"], datetime.datetime) and "s" not in doc
    db.u.update_one({"_id": 2}, {"$setOnInsert": {"s": 1}, "$set": {"t": 2}}, upsert=True)
    assert db.u.find_one({"_id": 2}) == {"_id": 2, "s": 1, "t": 2}


def test_update_noop_and_errors(db):
    db.u.insert_one({"_id": 1, "x": 1, "s": "str"})
    res = db.u.update_one({"_id": 1}, {"$set": {"x": 1}})
    # [manual:reference/method/db.collection.updateOne/] nModified counts documents changed.
    assert (res.matched_count, res.modified_count) == (1, 0)
    with pytest.raises(WriteError) as e:
        db.u.update_one({"_id": 1}, {"$inc": {"s": 1}})
    assert e.value.code == 14  # [server:src/mongo/db/update/arithmetic_node.cpp] TypeMismatch
    with pytest.raises(WriteError) as e:
        db.u.update_one({"_id": 1}, {"$set": {"_id": 2}})
    assert e.value.code == 66  # [server:src/mongo/base/error_codes.yml] ImmutableField
    with pytest.raises(WriteError) as e:
        db.u.update_one({"_id": 1}, {"$set": {"x": 1}, "$inc": {"x": 1}})
    assert e.value.code == 40  # ConflictingUpdateOperators [server:error_codes.yml]


def test_replacement_upsert_multi_delete(db):
    db.u.insert_many([{"_id": i, "g": i % 2} for i in range(4)])
    res = db.u.replace_one({"_id": 1}, {"new": True})
    assert res.modified_count == 1 and db.u.find_one({"_id": 1}) == {"_id": 1, "new": True}
    res = db.u.update_many({"g": 0}, {"$set": {"m": 1}})
    # [manual:reference/command/update/] multi: true updates every match.
    assert res.modified_count == 2
    res = db.u.update_one({"k": "v"}, {"$set": {"z": 1}}, upsert=True)
    # [manual:reference/command/update/#upsert-behavior] the query's equality fields seed the
    # new document; upserted[{index, _id}] reports the generated _id.
    assert res.upserted_id is not None
    assert db.u.find_one({"_id": res.upserted_id}) == {"_id": res.upserted_id, "k": "v", "z": 1}
    # [manual:reference/command/delete/] limit 1 deletes one, limit 0 all matches.
    assert db.u.delete_one({"g": 0}).deleted_count == 1
    assert db.u.delete_many({}).deleted_count == 4


def test_find_and_modify(db):
    db.f.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])
    doc = db.f.find_one_and_update({"n": {"$gte": 1}}, {"$inc": {"n": 10}}, sort=[("n", -1)],
                                   return_document=pymongo.ReturnDocument.AFTER)
    # [manual:reference/command/findAndModify/] sort picks the document; new: true returns the
    # post-image; remove returns the removed document.
    assert doc == {"_id": 2, "n": 12}
    r = db.command("findAndModify", "f", query={"_id": 1}, remove=True)
    assert r["value"] == {"_id": 1, "n": 1} and r["lastErrorObject"]["n"] == 1
    r = db.command("findAndModify", "f", query={"_id": 9}, update={"$set": {"n": 0}},
                   upsert=True, new=True)
    assert r["lastErrorObject"]["updatedExisting"] is False
    assert r["lastErrorObject"]["upserted"] == 9 and r["value"] == {"_id": 9, "n": 0}


def test_coll_stats_count(db):
    db.c.insert_many([{"_id": i} for i in range(5)])
    r = list(db.c.aggregate([{"$collStats": {"count": {}}}]))
    # [manual:reference/operator/aggregation/collStats/] count: {} adds the document count.
    assert r[0]["count"] == 5 and r[0]["ns"] == "%s.c" % db.name
    # [manual:reference/method/db.collection.estimatedDocumentCount/]
    assert db.c.estimated_document_count() == 5


def test_get_more_reads_current_documents(db):
    db.c.insert_many([{"_id": i, "v": 0} for i in range(5)])
    r = db.command("find", "c", batchSize=2)
    cid = r["cursor"]["id"]
    db.c.update_one({"_id": 3}, {"$set": {"v": 1}})
    db.c.delete_one({"_id": 4})
    r = db.command("getMore", cid, collection="c")
    # [manual:core/read-isolation-consistency-recency/#cursor-snapshot] cursors are not isolated
    # from concurrent writes: later batches see documents as they are when read.
    assert r["cursor"]["nextBatch"] == [{"_id": 2, "v": 0}, {"_id": 3, "v": 1}]


@pytest.mark.parametrize("flt,expected", [
    # [manual:reference/operator/query/<op>/] for each operator.
    ({"a": {"$size": 2}}, [1]),
    ({"a": {"$all": [1, 2]}}, [1]),
    ({"a": {"$elemMatch": {"$gt": 2, "$lt": 5}}}, [2]),
    ({"b": {"$elemMatch": {"x": 1, "y": 2}}}, [1]),
    ({"b.x": 1, "b.y": 2}, [1, 2]),            # without $elemMatch, elements may differ
    ({"c": {"$type": "string"}}, [2]),
    ({"c": {"$type": "number"}}, [1]),
    ({"c": {"$mod": [4, 3]}}, [1]),
    ({"c": {"$exists": True, "$ne": 7}}, [2]),
])
def test_array_and_type_operators(db, flt, expected):
    db.q.insert_many([
        {"_id": 1, "a": [1, 2], "b": [{"x": 1, "y": 2}], "c": 7},
        {"_id": 2, "a": [3, 4, 9], "b": [{"x": 1, "y": 1}, {"x": 2, "y": 2}], "c": "s"},
    ])
    assert sorted(d["_id"] for d in db.q.find(flt)) == expected


def test_projection_slice_and_count_skip_limit(db):
    db.c.insert_many([{"_id": i, "arr": list(range(5))} for i in range(6)])
    doc = db.c.find_one({"_id": 0}, {"arr": {"$slice": -2}})
    # [manual:reference/operator/projection/slice/] negative: the last n elements.
    assert doc == {"_id": 0, "arr": [3, 4]}
    # [manual:reference/command/count/] skip and limit apply to the count.
    assert db.command("count", "c", skip=2, limit=3)["n"] == 3
    assert db.command("count", "c", skip=5)["n"] == 1


def test_indexes_are_listed(db):
    db.c.insert_one({"_id": 1})
    db.c.create_index("x", name="x_1")
    # [manual:reference/command/listIndexes/] every collection has the _id_ index.
    names = sorted(i["name"] for i in db.c.list_indexes())
    assert names == ["_id_", "x_1"]
    db.c.drop_index("x_1")
    assert [i["name"] for i in db.c.list_indexes()] == ["_id_"]



def test_batches_stay_under_16mb(db):
    big = "x" * (1024 * 1024)
    db.c.insert_many([{"_id": i, "s": big} for i in range(20)])
    # [manual:reference/command/find/#mongodb-limit-BSON-Document-Size] a batch holds at most
    # 16 MiB of documents; the rest come with getMore.
    r = db.command("find", "c", batchSize=1000)
    assert 0 < len(r["cursor"]["firstBatch"]) < 20 and r["cursor"]["id"] != 0
    db.command("killCursors", "c", cursors=[r["cursor"]["id"]])
    r = db.command("aggregate", "c", pipeline=[{"$match": {}}], cursor={"batchSize": 1000})
    assert 0 < len(r["cursor"]["firstBatch"]) < 20 and r["cursor"]["id"] != 0
    db.command("killCursors", "c", cursors=[r["cursor"]["id"]])
    assert len(list(db.c.find({}, {"_id": 1}))) == 20


def test_expr_query(db):
    db.c.insert_many([{"_id": 1, "a": 1, "b": 2}, {"_id": 2, "a": 3, "b": 2}])
    # [manual:reference/operator/query/expr/] compares fields of the same document.
    assert [d["_id"] for d in db.c.find({"$expr": {"$gt": ["$a", "$b"]}})] == [2]


def test_find_hint_min_max_on_id_across_type_brackets(db):
    from bson.objectid import ObjectId
    oid = ObjectId()
    db.c.insert_many([{"_id": "b"}, {"_id": 3}, {"_id": oid}, {"_id": 1.5}, {"_id": "a"},
                      {"_id": None}])
    hint = [("_id", 1)]
    # [manual:reference/method/cursor.min/] min is an inclusive lower bound on the index keys,
    # [manual:reference/method/cursor.max/] max an exclusive upper bound, results in index order;
    # [manual:reference/bson-type-comparison-order/] null < numbers < strings < ObjectId.
    got = [d["_id"] for d in db.c.find().hint(hint).min([("_id", 2)])]
    assert got == [3, "a", "b", oid]
    got = [d["_id"] for d in db.c.find().hint(hint).min([("_id", 2)]).max([("_id", "b")])]
    assert got == [3, "a"]
    got = [d["_id"] for d in db.c.find({"_id": {"$ne": "a"}}).hint(hint).max([("_id", oid)])]
    assert got == [None, 1.5, 3, "b"]
    got = [d["_id"] for d in db.c.find().hint(hint).min([("_id", 3)]).limit(2)]
    assert got == [3, "a"]


@pytest.mark.parametrize("opts,code", [
    ({"min": {"_id": 1}}, 51173),
    ({"min": {"a": 1}, "hint": {"_id": 1}}, 51174),
    ({"min": {"_id": 1}, "max": {"a": 1}, "hint": {"_id": 1}}, 51176),
    ({"min": {"_id": 2}, "max": {"_id": 2}, "hint": {"_id": 1}}, 51175),
    ({"min": {"_id": 1}, "hint": {"$natural": 1}}, 2),
])
def test_find_min_max_errors(db, opts, code):
    db.c.insert_one({"_id": 1})
    # [server:jstests/core/minmax.js] min/max need a hint (51173), must match it (51174) and
    # each other (51176), max must be greater than min (51175), $natural gives BadValue.
    with pytest.raises(OperationFailure) as e:
        db.command(dict({"find": "c"}, **opts))
    assert e.value.code == code


def test_find_id_in_uses_the_id_index(db):
    # [manual:reference/operator/query/in/] {_id: {$in: [...]}} returns each matching document once,
    # in _id order (mongod scans the _id index); numbers match across types; missing ones are absent.
    db.c.insert_many([{"_id": i, "n": i} for i in range(2000)] + [{"_id": "s"}, {"_id": 2.5}])
    got = list(db.c.find({"_id": {"$in": [7, "s", 3.0, 7, 99999, 2.5, 1500]}}))
    assert got == [{"_id": 2.5}, {"_id": 3, "n": 3}, {"_id": 7, "n": 7}, {"_id": 1500, "n": 1500}, {"_id": "s"}]
    assert db.c.count_documents({"_id": {"$in": list(range(0, 4000, 2))}}) == 1000


def test_code_ids_are_code_not_strings(db):
    # [manual:reference/bson-type-comparison-order/] JavaScript code sorts after dates and regular
    # expressions, never among strings; a Code _id is its own key (review 24: pymongo's Code is a
    # str, and the peer ranked it as one: "unhashable type: 'Code'", an internal error).
    from bson.code import Code
    db.c.insert_many([{"_id": "x"}, {"_id": Code("x")}, {"_id": Code("y", {"a": 1})},
                      {"_id": datetime.datetime(2020, 1, 1)}])
    got = [d["_id"] for d in db.c.find().sort("_id", 1)]
    assert got[0] == "x" and not isinstance(got[0], Code)
    assert isinstance(got[1], datetime.datetime)
    assert isinstance(got[2], Code) and str(got[2]) == "x" and not got[2].scope
    assert isinstance(got[3], Code) and got[3].scope == {"a": 1}
    assert db.c.find_one({"_id": Code("x")})["_id"] == Code("x")
    assert db.c.delete_one({"_id": Code("x")}).deleted_count == 1
    assert db.c.count_documents({}) == 3


def test_id_order_across_inserts_deletes_and_transactions(client, db):
    """A find sorted by _id returns the _id index's order whatever the order of the writes:
    ascending inserts, inserts before the first key, deletes and re-inserts, a transaction's
    inserts and deletes; count without a query follows the same writes."""
    import random
    rng = random.Random(7)

    def rank(v):  # BSON order of the types used here: numbers < strings < ObjectId
        if isinstance(v, str):
            return (1, v)
        if isinstance(v, ObjectId):
            return (2, v.binary)
        return (0, v)

    ids = list(range(0, 200, 2))
    db.c.insert_many([{"_id": i} for i in ids])                       # in order
    more = [-5, 7.5, "b", "a", ObjectId(), 1000, 3]                   # before, between, other types
    for v in more:
        db.c.insert_one({"_id": v})
    ids += more
    gone = rng.sample(ids, 30)
    for v in gone:
        db.c.delete_one({"_id": v})
    ids = [v for v in ids if v not in gone]
    db.c.insert_one({"_id": gone[0]})                                 # a deleted key comes back
    ids.append(gone[0])
    with client.start_session() as s:
        with s.start_transaction():
            db.c.insert_one({"_id": 5000}, session=s)
            db.c.insert_one({"_id": 1}, session=s)
            db.c.delete_one({"_id": ids[0]}, session=s)
    ids = [v for v in ids[1:]] + [5000, 1]
    for v in (6000, 7000):                                            # ascending again
        db.c.insert_one({"_id": v})
    ids += [6000, 7000]
    want = sorted(ids, key=rank)
    assert [d["_id"] for d in db.c.find({}, batch_size=7).sort("_id", 1)] == want
    assert [d["_id"] for d in db.c.find({}).sort("_id", -1)] == want[::-1]
    assert [d["_id"] for d in db.c.find({}).sort("_id", 1).skip(3).limit(5)] == want[3:8]
    assert db.command("count", "c")["n"] == len(want)
    db.c.delete_many({})
    db.c.insert_many([{"_id": i} for i in (3, 2, 1)])
    assert [d["_id"] for d in db.c.find({}).sort("_id", 1)] == [1, 2, 3]


def test_growing_get_mores_give_what_a_read_would(db):
    """A cursor builds its next batch ahead at the size last asked for; a getMore asking for more
    gets those documents and then as many as a read of its size would give. Whatever the sizes
    asked (growing, shrinking, unbounded), each batch is the longest run of the documents as they
    are now, in _id order, within the count asked and the 16 MiB reply bound, with writes between
    getMores seen."""
    bound = 16 * 1024 * 1024 - 16 * 1024
    docs = [{"_id": i, "pad": "x" * (3 * 1024 * 1024 if 20 <= i < 27 else 10)} for i in range(60)]
    db.c.insert_many(docs)
    live = {d["_id"]: d for d in docs}

    def expected(after, asked):
        out, size = [], 0
        for k in sorted(k for k in live if k > after):
            n = len(bson.encode(live[k]))
            if (asked and len(out) >= asked) or (out and size + n > bound):
                break
            out.append(k)
            size += n
        return out

    reply = db.command({"find": "c", "sort": {"_id": 1}, "batchSize": 1})["cursor"]
    got = [d["_id"] for d in reply["firstBatch"]]
    assert got == [0]
    cid, last = reply["id"], 0
    # writes: to the second document after the last returned, which the batch built ahead holds
    steps = [(2, None), (4, None), (8, "delete"), (16, None), (3, "update"), (40, None), (1, None),
             (0, "delete"), (64, None), (64, None)]
    for asked, write in steps:
        target = min(k for k in live if k > last + 1)
        if write == "delete":
            db.c.delete_one({"_id": target})
            live.pop(target)
        elif write:
            db.c.update_one({"_id": target}, {"$set": {"pad": "y" * 20}})
            live[target]["pad"] = "y" * 20
        want = expected(last, asked)
        reply = db.command({"getMore": cid, "collection": "c", "batchSize": asked} if asked else
                           {"getMore": cid, "collection": "c"})["cursor"]
        batch = reply["nextBatch"]
        assert [d["_id"] for d in batch] == want, f"getMore of {asked} after {last}"
        assert all(d == live[d["_id"]] for d in batch)
        if batch:
            last = batch[-1]["_id"]
        if not reply["id"]:
            break
        cid = reply["id"]
    assert last == 59


def test_get_more_reads_documents_as_they_are_then(db):
    """Each getMore returns the documents as they are when it runs (mongod's cursors outside a
    snapshot), also when the peer built that batch ahead while the client read the last one: a
    document deleted in between is not returned, an updated one comes as updated."""
    db.c.insert_many([{"_id": i, "v": 0} for i in range(12)])
    cur = db.c.find({}, batch_size=3).sort("_id", 1)
    got = [next(cur) for _ in range(6)]                  # find + one getMore: the next batch is built
    db.c.delete_one({"_id": 7})
    db.c.update_one({"_id": 8}, {"$set": {"v": 1}})
    got += list(cur)
    assert [d["_id"] for d in got] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
    assert [d["v"] for d in got if d["_id"] == 8] == [1]
    cur = db.c.find({}, batch_size=4).sort("_id", 1)
    assert [d["_id"] for d in cur] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
