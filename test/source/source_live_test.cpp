// source_live_test.cpp: Source and CollectionScan against a live MongoDB (MONGO_URI).
#include <algorithm>
#include <set>

#include "live.hpp"
#include "mongo_river/mongo/copy.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mm = mongo_river::mongo;

namespace {

TEST(Source, PingCheckAndOperationTime) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	source.Ping();
	mm::ServerInfo info = source.Check();
	EXPECT_TRUE(!info.set_name.empty() || info.is_mongos);
	mm::Timestamp before = source.OperationTime();
	live::Writer writer(live::SourceUri());
	std::string db = live::UniqueDb("optime");
	writer.Insert(db, "c", R"({"_id": 1})");
	mm::Timestamp after = source.OperationTime();
	EXPECT_GT(after, before) << "a write must move the operation time forward";
	mm::Timestamp committed = source.CommittedTime();
	EXPECT_FALSE(committed.IsZero()) << "hello reports no lastWrite.majorityOpTime";
	EXPECT_LE(committed, source.OperationTime());
}

TEST(Source, MetadataSampleAndFindById) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer writer(live::SourceUri());
	std::string db = live::UniqueDb("meta");
	for (int k = 0; k < 20; ++k)
		writer.Insert(db, "people", R"({"_id": )" + std::to_string(k) + R"(, "name": "n)" + std::to_string(k) + "\"}");
	writer.Insert(db, "other", R"({"_id": "x"})");

	std::vector<std::string> dbs = source.ListDatabases();
	EXPECT_NE(std::find(dbs.begin(), dbs.end(), db), dbs.end());
	EXPECT_EQ(std::find(dbs.begin(), dbs.end(), "local"), dbs.end());
	std::vector<std::string> all = source.ListDatabases(true);
	EXPECT_NE(std::find(all.begin(), all.end(), "local"), all.end());

	std::vector<std::string> colls = source.ListCollections(db);
	std::sort(colls.begin(), colls.end());
	EXPECT_EQ(colls, (std::vector<std::string>{"other", "people"}));

	std::vector<live::Bson> sample = source.Sample(db, "people", 5);
	EXPECT_EQ(sample.size(), 5u);
	std::set<std::string> distinct;
	for (const live::Bson &d : sample)
		distinct.insert(mm::ToCanonicalJson(d.get()));
	EXPECT_EQ(distinct.size(), 5u);
	EXPECT_EQ(source.Sample(db, "people", 100).size(), 20u);

	bson_value_t id;
	id.value_type = BSON_TYPE_INT32;
	id.value.v_int32 = 7;
	live::Bson found = source.FindById(db, "people", &id);
	ASSERT_NE(found, nullptr);
	EXPECT_EQ(mm::FindString(found.get(), "name"), "n7");
	id.value.v_int32 = 70;
	EXPECT_EQ(source.FindById(db, "people", &id), nullptr);
}

TEST(Source, UnreachableHostIsA08ErrorWithoutPassword) {
	mm::Source source("mongodb://alice:Sekr1tPw@127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=300");
	try {
		source.Ping();
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Sqlstate().substr(0, 2), "08") << e.Sqlstate();
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kConnection);
		EXPECT_TRUE(e.Retryable());
		for (const std::string &text : {e.Message(), e.Detail(), e.Hint(), std::string(e.what())})
			EXPECT_EQ(text.find("Sekr1tPw"), std::string::npos) << text;
		EXPECT_NE(e.Message().find("alice:****@"), std::string::npos) << e.Message();
		EXPECT_FALSE(e.Detail().empty());
		EXPECT_FALSE(e.Hint().empty());
	}
}

TEST(Source, WrongPasswordIs28P01WithoutPassword) {
	std::string uri = live::Env("MONGO_BAD_PASSWORD_URI");
	if (uri.empty())
		GTEST_SKIP() << "MONGO_BAD_PASSWORD_URI is not set (peer only: mongo-peer --auth)";
	mm::Source source(uri);
	try {
		source.Ping();
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Sqlstate(), "28P01") << e.Message() << " / " << e.Detail();
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kAuthentication);
		EXPECT_EQ(e.Detail().find("wrongpw"), std::string::npos) << e.Detail();
		EXPECT_EQ(e.Message().find("wrongpw"), std::string::npos) << e.Message();
	}
}

TEST(Source, StandaloneIsRefusedWithAHint) {
	std::string uri = live::Env("MONGO_STANDALONE_URI");
	if (uri.empty())
		GTEST_SKIP() << "MONGO_STANDALONE_URI is not set (peer only: mongo-peer --replset '')";
	mm::Source source(uri);
	try {
		source.Check();
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kNotReplicaSet);
		EXPECT_EQ(e.Sqlstate(), "55000");
		EXPECT_NE(e.Hint().find("--replSet"), std::string::npos) << e.Hint();
	}
}

// MixedIds inserts documents whose _ids span several BSON type brackets and returns their count.
int InsertMixedIds(live::Writer *writer, const std::string &db) {
	int n = 0;
	for (int k = 0; k < 25; ++k, ++n)
		writer->Insert(db, "mixed", R"({"_id": )" + std::to_string(k * 3 - 20) + R"(, "k": "int"})");
	writer->Insert(db, "mixed", R"({"_id": 2.5, "k": "double"})");
	writer->Insert(db, "mixed", R"({"_id": {"$numberLong": "1000000000000"}, "k": "long"})");
	n += 2;
	for (int k = 0; k < 20; ++k, ++n)
		writer->Insert(db, "mixed", R"({"_id": "s)" + std::to_string(k) + R"(", "k": "string"})");
	writer->Insert(db, "mixed", R"({"_id": "", "k": "empty string"})");
	++n;
	for (int k = 0; k < 20; ++k, ++n) {
		char hex[25];
		snprintf(hex, sizeof hex, "64%022x", k * 7919);
		writer->Insert(db, "mixed", std::string(R"({"_id": {"$oid": ")") + hex + R"("}, "k": "oid"})");
	}
	for (int k = 0; k < 8; ++k, ++n)
		writer->Insert(db, "mixed", R"({"_id": {"a": )" + std::to_string(k) + R"(, "b": "x"}, "k": "doc"})");
	writer->Insert(db, "mixed", R"({"_id": true, "k": "bool"})");
	writer->Insert(db, "mixed", R"({"_id": {"$date": {"$numberLong": "1700000000000"}}, "k": "date"})");
	writer->Insert(db, "mixed", R"({"_id": null, "k": "null"})");
	n += 3;
	return n;
}

TEST(CollectionScan, ReadsMixedIdsOnceAcrossEveryRestart) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer writer(live::SourceUri());
	std::string db = live::UniqueDb("scan");
	const int total = InsertMixedIds(&writer, db);

	// One uninterrupted scan gives the reference order.
	std::vector<std::string> reference;
	{
		mm::CollectionScan scan(source, db, "mixed", nullptr, 10);
		for (auto batch = scan.NextBatch(13); !batch.empty(); batch = scan.NextBatch(13))
			for (const live::Bson &d : batch)
				reference.push_back(mm::ToCanonicalJson(d.get()));
		EXPECT_TRUE(scan.Done());
	}
	ASSERT_EQ(static_cast<int>(reference.size()), total);

	// "Crash" after every batch of 4: a new scan resumes from the stored (JSON round-tripped) LastId.
	std::vector<std::string> resumed;
	std::string stored;
	for (int round = 0; round < 1000; ++round) {
		live::Bson last = stored.empty() ? live::Bson() : live::J(stored);
		mm::CollectionScan scan(source, db, "mixed", last.get(), 3);
		std::vector<live::Bson> batch = scan.NextBatch(4);
		if (batch.empty())
			break;
		for (const live::Bson &d : batch)
			resumed.push_back(mm::ToCanonicalJson(d.get()));
		stored = mm::ToCanonicalJson(scan.LastId());
	}
	EXPECT_EQ(resumed, reference) << "every document exactly once, in the same order";
	std::set<std::string> distinct(resumed.begin(), resumed.end());
	EXPECT_EQ(static_cast<int>(distinct.size()), total);
}

TEST(CollectionScan, EmptyAndMissingCollections) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	mm::CollectionScan scan(source, live::UniqueDb("none"), "nothing");
	EXPECT_TRUE(scan.NextBatch(10).empty());
	EXPECT_TRUE(scan.Done());
	EXPECT_EQ(scan.LastId(), nullptr);
}

} // namespace
