// mongo_events_test.cpp: positions and resume tokens, change event parsing, the change stream
// $match, and oplog entries turned into change events (no server needed).
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/oplog.hpp"

namespace mongo_river::mongo {
namespace {

Bson J(const std::string &json) {
	return FromJson(json, "test JSON");
}

std::string Canon(const std::string &json) {
	return ToRelaxedJson(J(json).get());
}

// A resume token as mongod 6.0 writes it (the MongoDB manual's change events example).
const char *kToken =
	R"({"_data": "82635019A0000000012B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004"})";

TEST(DecodeResumeTokenTime, ReadsTheKeyStringTimestamp) {
	Timestamp ts;
	ASSERT_TRUE(DecodeResumeTokenTime(J(kToken).get(), &ts));
	EXPECT_EQ(ts.t, 0x635019A0u);
	EXPECT_EQ(ts.i, 1u);
	ASSERT_TRUE(
		DecodeResumeTokenTime(J(R"({"_data": "82000000050000000a"})").get(), &ts)); // lower case, high-water mark
	EXPECT_EQ(ts.t, 5u);
	EXPECT_EQ(ts.i, 10u);
}

TEST(DecodeResumeTokenTime, RejectsOtherForms) {
	Timestamp ts;
	EXPECT_FALSE(DecodeResumeTokenTime(J(R"({"_data": "8100"})").get(), &ts));
	EXPECT_FALSE(DecodeResumeTokenTime(J(R"({"_data": "83635019A000000001"})").get(), &ts));
	EXPECT_FALSE(DecodeResumeTokenTime(J(R"({"_data": "82635019A0000000zz"})").get(), &ts));
	EXPECT_FALSE(DecodeResumeTokenTime(J(R"({"_data": {"$binary": {"base64": "", "subType": "00"}}})").get(), &ts));
	EXPECT_FALSE(DecodeResumeTokenTime(J(R"({"x": 1})").get(), &ts));
	EXPECT_FALSE(DecodeResumeTokenTime(nullptr, &ts));
}

TEST(Position, JsonRoundTrip) {
	Position token = Position::ResumeAfter(J(kToken).get());
	Position back = Position::FromJson(token.ToJson());
	EXPECT_EQ(back.kind, Position::Kind::kResumeAfter);
	EXPECT_TRUE(bson_equal(back.token.get(), token.token.get()));
	EXPECT_EQ(back.ClusterTime(), (Timestamp{0x635019A0u, 1}));

	Position start_after = Position::FromJson(Position::StartAfter(J(kToken).get()).ToJson());
	EXPECT_EQ(start_after.kind, Position::Kind::kStartAfter);

	Position oplog = Position::FromJson(Position::OplogAfter(Timestamp{7, 3}).ToJson());
	EXPECT_EQ(oplog.kind, Position::Kind::kOplogAfter);
	EXPECT_EQ(oplog.time, (Timestamp{7, 3}));
	EXPECT_EQ(oplog.ClusterTime(), (Timestamp{7, 3}));

	Position at = Position::FromJson(Position::AtOperationTime(Timestamp{9, 0}).ToJson());
	EXPECT_EQ(at.kind, Position::Kind::kOperationTime);
	EXPECT_EQ(at.time, (Timestamp{9, 0}));
	EXPECT_EQ(Position::FromJson(Position::Now().ToJson()).kind, Position::Kind::kNow);
}

TEST(Position, OplogPositionKeepsHowFarItWasApplied) {
	Position p = Position::OplogAfter(Timestamp{5, 1});
	EXPECT_EQ(p.ToJson().find("appliedThrough"), std::string::npos) << "no watermark, none written";
	p.applied = Timestamp{9, 2};
	Position back = Position::FromJson(p.ToJson());
	EXPECT_EQ(back.kind, Position::Kind::kOplogAfter);
	EXPECT_EQ(back.time, (Timestamp{5, 1}));
	EXPECT_EQ(back.applied, (Timestamp{9, 2}));
	Position copy = back;
	EXPECT_EQ(copy.applied, (Timestamp{9, 2}));
	EXPECT_THROW(Position::FromJson(R"({"oplogAfter": {"$timestamp": {"t": 5, "i": 1}}, "appliedThrough": 9})"), Error);
	EXPECT_THROW(Position::FromJson(R"({"oplogAfter": {"$timestamp": {"t": 5, "i": 1}}, "x": 1})"), Error);
}

TEST(Position, CopiesOwnTheirToken) {
	Position a = Position::ResumeAfter(J(kToken).get());
	Position b = a;
	a.token.reset();
	ASSERT_NE(b.token, nullptr);
	EXPECT_EQ(b.ClusterTime().t, 0x635019A0u);
}

TEST(Position, RejectsMalformedText) {
	EXPECT_THROW(Position::FromJson("not json"), Error);
	EXPECT_THROW(Position::FromJson(R"({"oplogAfter": 5})"), Error);
	EXPECT_THROW(Position::FromJson(R"({"resumeAfter": {}})"), Error);
	EXPECT_THROW(Position::FromJson(R"({"sideways": 1})"), Error);
	EXPECT_THROW(Position::FromJson("{}"), Error);
}

TEST(Timestamp, OrdersByTimeThenIncrement) {
	EXPECT_LT((Timestamp{1, 5}), (Timestamp{2, 0}));
	EXPECT_LT((Timestamp{2, 0}), (Timestamp{2, 1}));
	EXPECT_EQ((Timestamp{2, 1}), (Timestamp{2, 1}));
	EXPECT_EQ((Timestamp{2, 1}).Before(), (Timestamp{2, 0}));
	EXPECT_EQ((Timestamp{2, 0}).Before(), (Timestamp{1, UINT32_MAX}));
	EXPECT_TRUE(Timestamp{}.Before().IsZero());
}

TEST(ParseChangeEvent, ReadsAnUpdateInATransaction) {
	ChangeEvent e = ParseChangeEvent(J(R"({"_id": {"_data": "8200000005000000012B"},
		"operationType": "update", "clusterTime": {"$timestamp": {"t": 5, "i": 1}},
		"wallTime": {"$date": {"$numberLong": "5000"}}, "ns": {"db": "shop", "coll": "orders"},
		"documentKey": {"_id": 7}, "updateDescription": {"updatedFields": {"a.b": 1},
		"removedFields": ["c", "d.e"], "truncatedArrays": [{"field": "arr", "newSize": 2}]},
		"lsid": {"id": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}},
		"txnNumber": {"$numberLong": "3"}})")
										 .get());
	EXPECT_EQ(e.op, OperationType::kUpdate);
	EXPECT_EQ(e.db, "shop");
	EXPECT_EQ(e.coll, "orders");
	EXPECT_EQ(ToRelaxedJson(e.document_key.get()), Canon(R"({"_id": 7})"));
	EXPECT_EQ(e.full_document, nullptr);
	EXPECT_EQ(ToRelaxedJson(e.updated_fields.get()), Canon(R"({"a.b": 1})"));
	EXPECT_EQ(e.removed_fields, (std::vector<std::string>{"c", "d.e"}));
	ASSERT_EQ(e.truncated_arrays.size(), 1u);
	EXPECT_EQ(e.truncated_arrays[0].field, "arr");
	EXPECT_EQ(e.truncated_arrays[0].new_size, 2);
	EXPECT_EQ(e.cluster_time, (Timestamp{5, 1}));
	EXPECT_EQ(e.wall_time_ms, 5000);
	EXPECT_TRUE(e.InTransaction());
	EXPECT_EQ(*e.txn_number, 3);
	EXPECT_NE(e.resume_token, nullptr);
	EXPECT_EQ(e.raw, nullptr) << "a readable event is not kept twice (its document would be)";
}

TEST(ParseChangeEvent, ReadsRenameAndRejectsEventsWithoutToken) {
	ChangeEvent e = ParseChangeEvent(J(R"({"_id": {"_data": "82"}, "operationType": "rename",
		"ns": {"db": "a", "coll": "b"}, "to": {"db": "a", "coll": "c"}, "fullDocument": null})")
										 .get());
	EXPECT_EQ(e.op, OperationType::kRename);
	EXPECT_EQ(e.to_db, "a");
	EXPECT_EQ(e.to_coll, "c");
	EXPECT_EQ(e.full_document, nullptr);
	EXPECT_FALSE(e.InTransaction());
	EXPECT_THROW(ParseChangeEvent(J(R"({"operationType": "insert"})").get()), Error);
	EXPECT_THROW(ParseChangeEvent(J(R"({"_id": {"_data": "82"}})").get()), Error);
}

TEST(ChangeEvent, SameTransactionNeedsSameLsidAndNumber) {
	auto make = [](const char *lsid, int txn) {
		return ParseChangeEvent(
			J(std::string(
				  R"({"_id": {"_data": "82"}, "operationType": "insert", "ns": {"db": "d", "coll": "c"}, "lsid": )") +
			  lsid + R"(, "txnNumber": )" + std::to_string(txn) + "}")
				.get());
	};
	EXPECT_TRUE(make(R"({"id": 1})", 1).SameTransaction(make(R"({"id": 1})", 1)));
	EXPECT_FALSE(make(R"({"id": 1})", 1).SameTransaction(make(R"({"id": 1})", 2)));
	EXPECT_FALSE(make(R"({"id": 1})", 1).SameTransaction(make(R"({"id": 2})", 1)));
	ChangeEvent plain = ParseChangeEvent(
		J(R"({"_id": {"_data": "82"}, "operationType": "insert", "ns": {"db": "d", "coll": "c"}})").get());
	EXPECT_FALSE(plain.SameTransaction(plain));
}

TEST(ChangeEvent, CrudEventWithoutNsIsMalformed) {
	EXPECT_THROW(ParseChangeEvent(J(R"({"_id": {"_data": "82"}, "operationType": "insert"})").get()),
				 mongo_river::Error);
	EXPECT_THROW(ParseChangeEvent(J(R"({"_id": {"_data": "82"}, "operationType": "delete", "ns": {"db": "d"}})").get()),
				 mongo_river::Error);
	EXPECT_NO_THROW(ParseChangeEvent(J(R"({"_id": {"_data": "82"}, "operationType": "invalidate"})").get()));
}

TEST(OplogEntry, ReadableEntryIsNotKeptTwice) {
	Bson entry = J(R"({"ts": {"$timestamp": {"t": 5, "i": 1}}, "op": "i", "ns": "d.c", "o": {"_id": 1, "x": "y"}})");
	OplogEntryEvents out = ConvertOplogEntry(entry.get(), {{"d", "c"}});
	ASSERT_EQ(out.events.size(), 1u);
	EXPECT_TRUE(out.events[0].unreadable.empty());
	ASSERT_TRUE(out.events[0].full_document);
	EXPECT_EQ(out.events[0].raw, nullptr) << "a readable entry is not kept twice (its document would be)";
}

TEST(OplogEntry, FieldsAreReadAsBsonIterFindWould) {
	// One pass reads every field: a key given twice counts by its first value, as with bson_iter_find.
	Bson entry = J(
		R"({"op": "i", "ns": "d.c", "op": "d", "ns": "x.y", "o": {"_id": 1, "x": "y"}, "o": 5,
		"o2": {"_id": 1}, "ts": {"$timestamp": {"t": 7, "i": 2}}, "ts": {"$timestamp": {"t": 9, "i": 9}},
		"wall": {"$date": 7000}, "lsid": {"id": 3}, "txnNumber": 4})");
	OplogEntryEvents out = ConvertOplogEntry(entry.get(), {{"d", "c"}});
	ASSERT_EQ(out.events.size(), 1u);
	const ChangeEvent &e = out.events[0];
	EXPECT_EQ(e.op, OperationType::kInsert);
	EXPECT_EQ(e.coll, "c");
	EXPECT_EQ(ToRelaxedJson(e.full_document.get()), Canon(R"({"_id": 1, "x": "y"})"));
	EXPECT_EQ(e.cluster_time, (Timestamp{7, 2}));
	EXPECT_EQ(e.wall_time_ms, 7000);
	EXPECT_FALSE(e.InTransaction()) << "a retryable write (lsid and txnNumber outside applyOps) is no transaction";
	// A string where a document belongs is no document.
	Bson bad = J(
		R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "i", "ns": "d.c", "o": "text", "ts": {"$timestamp": {"t": 8, "i": 1}}})");
	EXPECT_NE(ConvertOplogEntry(bad.get(), {{"d", "c"}}).events.at(0).unreadable.find("no document"),
			  std::string::npos);
}

TEST(OplogEntry, EntryWithoutTimestampIsUnreadable) {
	// No ts (or one of another type): no time to move the position to (review 24: it moved to 0,0).
	for (const char *json :
		 {R"({"op": "i", "ns": "d.c", "o": {"_id": 1}})", R"({"ts": 5, "op": "i", "ns": "d.c", "o": {"_id": 1}})",
		  R"({"ts": {"$timestamp": {"t": 0, "i": 0}}, "op": "i", "ns": "d.c", "o": {"_id": 1}})"}) {
		OplogEntryEvents out = ConvertOplogEntry(J(json).get(), {{"d", "c"}});
		ASSERT_EQ(out.events.size(), 1u) << json;
		EXPECT_NE(out.events[0].unreadable.find("no timestamp"), std::string::npos) << json;
		EXPECT_TRUE(ConvertOplogEntry(J(json).get(), {{"d", "other"}}).events.empty()) << json;
	}
}

TEST(OplogEntry, UnreadableEntryOfAMappedNamespaceBecomesAnUnreadableEvent) {
	Bson entry = J(R"({"ts": {"$timestamp": {"t": 5, "i": 1}}, "op": "i", "ns": "d.c"})");
	OplogEntryEvents out = ConvertOplogEntry(entry.get(), {{"d", "c"}});
	ASSERT_EQ(out.events.size(), 1u);
	EXPECT_NE(out.events[0].unreadable.find("no document"), std::string::npos);
	EXPECT_EQ(out.events[0].db, "d");
	EXPECT_EQ(out.events[0].cluster_time.t, 5u);
	EXPECT_TRUE(bson_equal(out.events[0].raw.get(), entry.get()));
	EXPECT_TRUE(ConvertOplogEntry(entry.get(), {{"d", "other"}}).events.empty());
}

TEST(ChooseScope, NarrowestCoveringScope) {
	EXPECT_EQ(ChooseScope({{"a", "x"}}, StreamScope::kAuto), StreamScope::kCollection);
	EXPECT_EQ(ChooseScope({{"a", "x"}, {"a", "y"}}, StreamScope::kAuto), StreamScope::kDatabase);
	EXPECT_EQ(ChooseScope({{"a", ""}}, StreamScope::kAuto), StreamScope::kDatabase);
	EXPECT_EQ(ChooseScope({{"a", "x"}, {"b", "y"}}, StreamScope::kAuto), StreamScope::kCluster);
	EXPECT_EQ(ChooseScope({{"a", "x"}}, StreamScope::kCluster), StreamScope::kCluster);
}

TEST(BuildStreamPipeline, MatchesNamespacesRenamesDropDatabaseAndInvalidate) {
	Bson p = BuildStreamPipeline({{"a", "x"}, {"b", ""}});
	EXPECT_EQ(ToRelaxedJson(p.get()), Canon(R"({"pipeline": [{"$match": {"$or": [
		{"ns.db": "a", "ns.coll": "x"}, {"to.db": "a", "to.coll": "x"}, {"ns.db": "b"}, {"to.db": "b"},
		{"operationType": "dropDatabase", "ns.db": "a"}, {"operationType": "dropDatabase", "ns.db": "b"},
		{"operationType": "invalidate"}]}}]})"));
}

const std::vector<Namespace> kShop = {{"shop", "orders"}};

TEST(ConvertOplogEntry, InsertUpdateReplaceDelete) {
	OplogEntryEvents ins = ConvertOplogEntry(J(R"({"ts": {"$timestamp": {"t": 10, "i": 1}}, "op": "i",
		"ns": "shop.orders", "o": {"_id": 1, "a": 1}, "wall": {"$date": {"$numberLong": "10000"}}})")
												 .get(),
											 kShop);
	ASSERT_EQ(ins.events.size(), 1u);
	EXPECT_EQ(ins.events[0].op, OperationType::kInsert);
	EXPECT_EQ(ToRelaxedJson(ins.events[0].document_key.get()), Canon(R"({"_id": 1})"));
	EXPECT_EQ(ToRelaxedJson(ins.events[0].full_document.get()), Canon(R"({"_id": 1, "a": 1})"));
	EXPECT_EQ(ins.events[0].cluster_time, (Timestamp{10, 1}));
	EXPECT_EQ(ins.events[0].wall_time_ms, 10000);
	EXPECT_EQ(ins.events[0].resume_token, nullptr);

	OplogEntryEvents upd =
		ConvertOplogEntry(J(R"({"ts": {"$timestamp": {"t": 10, "i": 2}}, "op": "u", "ns": "shop.orders",
			"o": {"$v": 2, "diff": {"u": {"a": 2}, "d": {"b": false}, "sarr": {"a": true, "l": 1}}}, "o2": {"_id": 1}})")
							  .get(),
						  kShop);
	ASSERT_EQ(upd.events.size(), 1u);
	EXPECT_EQ(upd.events[0].op, OperationType::kUpdate);
	EXPECT_EQ(ToRelaxedJson(upd.events[0].document_key.get()), Canon(R"({"_id": 1})"));
	EXPECT_EQ(ToRelaxedJson(upd.events[0].updated_fields.get()), Canon(R"({"a": 2})"));
	EXPECT_EQ(upd.events[0].removed_fields, (std::vector<std::string>{"b"}));
	ASSERT_EQ(upd.events[0].truncated_arrays.size(), 1u);
	EXPECT_EQ(upd.events[0].full_document, nullptr);

	OplogEntryEvents v1 =
		ConvertOplogEntry(J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "u", "ns": "shop.orders",
		"o": {"$v": 1, "$set": {"x.y": 3}}, "o2": {"_id": 1}})")
							  .get(),
						  kShop);
	ASSERT_EQ(v1.events.size(), 1u);
	EXPECT_EQ(ToRelaxedJson(v1.events[0].updated_fields.get()), Canon(R"({"x.y": 3})"));

	OplogEntryEvents rep = ConvertOplogEntry(
		J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "u", "ns": "shop.orders", "o": {"_id": 1, "z": 1}, "o2": {"_id": 1}})")
			.get(),
		kShop);
	ASSERT_EQ(rep.events.size(), 1u);
	EXPECT_EQ(rep.events[0].op, OperationType::kReplace);
	EXPECT_EQ(ToRelaxedJson(rep.events[0].full_document.get()), Canon(R"({"_id": 1, "z": 1})"));

	OplogEntryEvents del = ConvertOplogEntry(
		J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "d", "ns": "shop.orders", "o": {"_id": 1}})").get(), kShop);
	ASSERT_EQ(del.events.size(), 1u);
	EXPECT_EQ(del.events[0].op, OperationType::kDelete);
	EXPECT_EQ(ToRelaxedJson(del.events[0].document_key.get()), Canon(R"({"_id": 1})"));
}

TEST(ConvertOplogEntry, RetryableWriteIsNotATransaction) {
	OplogEntryEvents ins =
		ConvertOplogEntry(J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "i", "ns": "shop.orders", "o": {"_id": 1},
		"lsid": {"id": 1}, "txnNumber": {"$numberLong": "7"}, "stmtId": 0})")
							  .get(),
						  kShop);
	ASSERT_EQ(ins.events.size(), 1u);
	EXPECT_FALSE(ins.events[0].InTransaction());
}

TEST(ConvertOplogEntry, SkipsOtherNamespacesAndNoops) {
	EXPECT_TRUE(
		ConvertOplogEntry(
			J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "i", "ns": "shop.other", "o": {"_id": 1}})").get(),
			kShop)
			.events.empty());
	EXPECT_TRUE(
		ConvertOplogEntry(
			J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "n", "ns": "", "o": {"msg": "periodic noop"}})").get(),
			kShop)
			.events.empty());
	EXPECT_TRUE(
		ConvertOplogEntry(
			J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "c", "ns": "shop.$cmd", "o": {"create": "orders"}})")
				.get(),
			kShop)
			.events.empty());
	EXPECT_TRUE(
		ConvertOplogEntry(
			J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "i", "ns": "shop.system.views", "o": {"_id": 1}})")
				.get(),
			{{"shop", ""}})
			.events.empty());
}

TEST(ConvertOplogEntry, DdlCommands) {
	OplogEntryEvents drop = ConvertOplogEntry(
		J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "c", "ns": "shop.$cmd", "o": {"drop": "orders"}})").get(),
		kShop);
	ASSERT_EQ(drop.events.size(), 1u);
	EXPECT_EQ(drop.events[0].op, OperationType::kDrop);
	EXPECT_EQ(drop.events[0].coll, "orders");

	OplogEntryEvents rename = ConvertOplogEntry(
		J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "c", "ns": "shop.$cmd", "o": {"renameCollection": "shop.orders", "to": "shop.old"}})")
			.get(),
		kShop);
	ASSERT_EQ(rename.events.size(), 1u);
	EXPECT_EQ(rename.events[0].op, OperationType::kRename);
	EXPECT_EQ(rename.events[0].to_coll, "old");

	OplogEntryEvents dropdb = ConvertOplogEntry(
		J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "c", "ns": "shop.$cmd", "o": {"dropDatabase": 1}})").get(),
		kShop);
	ASSERT_EQ(dropdb.events.size(), 1u);
	EXPECT_EQ(dropdb.events[0].op, OperationType::kDropDatabase);
	EXPECT_EQ(dropdb.events[0].db, "shop");
}

TEST(ConvertOplogEntry, ApplyOpsIsOneTransaction) {
	OplogEntryEvents txn =
		ConvertOplogEntry(J(R"({"ts": {"$timestamp": {"t": 20, "i": 1}}, "op": "c", "ns": "admin.$cmd",
		"lsid": {"id": 1}, "txnNumber": {"$numberLong": "4"},
		"o": {"applyOps": [{"op": "i", "ns": "shop.orders", "o": {"_id": 1}},
		                    {"op": "i", "ns": "shop.other", "o": {"_id": 2}},
		                    {"op": "d", "ns": "shop.orders", "o": {"_id": 3}}]}})")
							  .get(),
						  kShop);
	EXPECT_EQ(txn.txn_step, TxnStep::kNone);
	ASSERT_EQ(txn.events.size(), 2u);
	EXPECT_TRUE(txn.events[0].SameTransaction(txn.events[1]));
	EXPECT_EQ(txn.events[1].op, OperationType::kDelete);
	EXPECT_EQ(txn.events[1].cluster_time, (Timestamp{20, 1}));

	OplogEntryEvents partial = ConvertOplogEntry(
		J(R"({"ts": {"$timestamp": {"t": 1, "i": 1}}, "op": "c", "ns": "admin.$cmd", "lsid": {"id": 1},
		"txnNumber": 5, "o": {"applyOps": [{"op": "i", "ns": "shop.orders", "o": {"_id": 1}}], "partialTxn": true}})")
			.get(),
		kShop);
	EXPECT_EQ(partial.txn_step, TxnStep::kPending);
	EXPECT_EQ(partial.events.size(), 1u);
}

std::string Entry(int t, const std::string &body) {
	return R"({"ts": {"$timestamp": {"t": )" + std::to_string(t) + R"(, "i": 1}}, )" + body + "}";
}

std::vector<std::string> Fed(OplogAssembler *a, const std::string &json) {
	std::vector<std::string> out;
	for (const ChangeEvent &e : a->Feed(J(json).get()))
		out.push_back(std::string(OperationTypeName(e.op)) + ":" + ToCanonicalJson(e.document_key.get()) + "@" +
					  std::to_string(e.cluster_time.t));
	return out;
}

const char *kSession = R"("lsid": {"id": 9}, "txnNumber": {"$numberLong": "2"}, "op": "c", "ns": "admin.$cmd")";

TEST(OplogAssembler, PartialTransactionWaitsForItsLastEntry) {
	OplogAssembler a(kShop);
	EXPECT_TRUE(Fed(&a, Entry(1, std::string(kSession) + R"(, "o": {"applyOps": [{"op": "i", "ns": "shop.orders",
		"o": {"_id": 1}}], "partialTxn": true})"))
					.empty());
	EXPECT_FALSE(a.Settled());
	EXPECT_EQ(Fed(&a, Entry(2, R"("op": "i", "ns": "shop.orders", "o": {"_id": 5})")).size(), 1u);
	EXPECT_FALSE(a.Settled());
	std::vector<std::string> done = Fed(&a, Entry(3, std::string(kSession) + R"(, "o": {"applyOps": [{"op": "d",
		"ns": "shop.orders", "o": {"_id": 2}}], "count": 2})"));
	EXPECT_EQ(done, (std::vector<std::string>{R"(insert:{ "_id" : { "$numberInt" : "1" } }@3)",
											  R"(delete:{ "_id" : { "$numberInt" : "2" } }@3)"}));
	EXPECT_TRUE(a.Settled());
}

TEST(OplogAssembler, RetryableWritesAroundAPartialTransactionKeepTheirPlace) {
	// Retryable writes carry an lsid and a txnNumber of their own: delivered at once, before, during
	// and after another session's transaction, which still waits for its last entry.
	OplogAssembler a(kShop);
	const std::string retryable =
		R"("lsid": {"id": 8}, "txnNumber": 1, "op": "i", "ns": "shop.orders", "o": {"_id": 4})";
	EXPECT_EQ(Fed(&a, Entry(1, retryable)).size(), 1u);
	EXPECT_TRUE(a.Settled());
	EXPECT_TRUE(Fed(&a, Entry(2, std::string(kSession) + R"(, "o": {"applyOps": [{"op": "i", "ns": "shop.orders",
		"o": {"_id": 1}}], "partialTxn": true})"))
					.empty());
	EXPECT_EQ(Fed(&a, Entry(3, retryable)),
			  (std::vector<std::string>{R"(insert:{ "_id" : { "$numberInt" : "4" } }@3)"}));
	EXPECT_FALSE(a.Settled());
	EXPECT_EQ(Fed(&a, Entry(4, std::string(kSession) + R"(, "o": {"applyOps": [], "count": 1})")),
			  (std::vector<std::string>{R"(insert:{ "_id" : { "$numberInt" : "1" } }@4)"}));
	EXPECT_TRUE(a.Settled());
	EXPECT_EQ(a.LastTimestamp(), (Timestamp{4, 1}));
}

TEST(OplogAssembler, PreparedTransactionCommitsOrAborts) {
	OplogAssembler a(kShop);
	const std::string prepare = std::string(kSession) + R"(, "o": {"applyOps": [{"op": "i", "ns": "shop.orders",
		"o": {"_id": 1}}], "prepare": true})";
	EXPECT_TRUE(Fed(&a, Entry(1, prepare)).empty());
	EXPECT_FALSE(a.Settled());
	EXPECT_EQ(Fed(&a, Entry(4, std::string(kSession) + R"(, "o": {"commitTransaction": 1,
		"commitTimestamp": {"$timestamp": {"t": 3, "i": 1}}})")),
			  (std::vector<std::string>{R"(insert:{ "_id" : { "$numberInt" : "1" } }@4)"}));
	EXPECT_TRUE(a.Settled());

	EXPECT_TRUE(Fed(&a, Entry(5, prepare)).empty());
	EXPECT_TRUE(Fed(&a, Entry(6, std::string(kSession) + R"(, "o": {"abortTransaction": 1})")).empty());
	EXPECT_TRUE(a.Settled());
}

TEST(OplogAssembler, UnreadableCommitCommitsNothing) {
	// A commitTransaction without a ts is unreadable: rejected, and the prepared transaction it names
	// stays waiting (review 25: it was rejected and applied both).
	OplogAssembler a(kShop);
	const std::string prepare = std::string(kSession) + R"(, "o": {"applyOps": [{"op": "i", "ns": "shop.orders",
		"o": {"_id": 1}}], "prepare": true})";
	EXPECT_TRUE(Fed(&a, Entry(1, prepare)).empty());
	std::vector<ChangeEvent> out = a.Feed(J(std::string("{") + kSession + R"(, "o": {"commitTransaction": 1}})").get());
	ASSERT_EQ(out.size(), 1u);
	EXPECT_NE(out[0].unreadable.find("no timestamp"), std::string::npos);
	EXPECT_FALSE(a.Settled()) << "the transaction still waits for a readable commit";
	EXPECT_EQ(Fed(&a, Entry(4, std::string(kSession) + R"(, "o": {"commitTransaction": 1})")),
			  (std::vector<std::string>{R"(insert:{ "_id" : { "$numberInt" : "1" } }@4)"}));
	EXPECT_TRUE(a.Settled());
}

TEST(OplogAssembler, PendingWithoutSessionIsDeliveredAtOnce) {
	OplogAssembler a(kShop);
	EXPECT_EQ(Fed(&a, Entry(1, R"("op": "c", "ns": "admin.$cmd", "o": {"applyOps": [{"op": "i", "ns": "shop.orders",
		"o": {"_id": 1}}], "partialTxn": true})"))
				  .size(),
			  1u);
	EXPECT_TRUE(a.Settled());
}

TEST(BuildOplogFilter, SelectsNamespacesCommandsAndNoops) {
	Bson f = BuildOplogFilter({{"shop", "orders"}, {"crm", ""}}, Timestamp{3, 4}, false);
	EXPECT_EQ(ToRelaxedJson(f.get()), Canon(R"({"ts": {"$gt": {"$timestamp": {"t": 3, "i": 4}}}, "$or": [
		{"ns": {"$in": ["shop.orders"]}}, {"ns": {"$regularExpression": {"pattern": "^crm\\.", "options": ""}}},
		{"ns": {"$in": ["admin.$cmd", "crm.$cmd", "shop.$cmd"]}}, {"op": "n"}]})"));
	Bson inclusive = BuildOplogFilter({{"shop", "orders"}}, Timestamp{3, 4}, true);
	EXPECT_NE(ToRelaxedJson(inclusive.get()).find("$gte"), std::string::npos);
}

} // namespace
} // namespace mongo_river::mongo
