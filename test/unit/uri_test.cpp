// uri_test.cpp: MongoDB URI parsing and password redaction.
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/uri.hpp"

namespace mongo_river::mongo {
namespace {

TEST(RedactUri, HidesPasswordOnly) {
	EXPECT_EQ(RedactUri("mongodb://alice:s3cret@h1:27017,h2/db?replicaSet=rs0"),
			  "mongodb://alice:****@h1:27017,h2/db?replicaSet=rs0");
	EXPECT_EQ(RedactUri("mongodb+srv://bob:p%40ss@cluster.example.net/"),
			  "mongodb+srv://bob:****@cluster.example.net/");
}

TEST(RedactUri, LeavesUrisWithoutPasswordAlone) {
	EXPECT_EQ(RedactUri("mongodb://h1:27017/?replicaSet=rs0"), "mongodb://h1:27017/?replicaSet=rs0");
	EXPECT_EQ(RedactUri("mongodb://alice@h1/"), "mongodb://alice@h1/");
	EXPECT_EQ(RedactUri("not a uri"), "not a uri");
}

TEST(ParseUri, AcceptsValidUri) {
	Uri uri = ParseUri("mongodb://127.0.0.1:27017/?replicaSet=rs0");
	ASSERT_NE(uri, nullptr);
	EXPECT_STREQ(mongoc_uri_get_replica_set(uri.get()), "rs0");
}

TEST(ParseUri, RejectsMalformedUriWithoutShowingPassword) {
	try {
		ParseUri("mongodb://alice:hunter2@");
		FAIL() << "expected an Error";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "22023");
		EXPECT_EQ(e.Message().find("hunter2"), std::string::npos) << e.Message();
		EXPECT_EQ(e.Detail().find("hunter2"), std::string::npos) << e.Detail();
		EXPECT_NE(e.Message().find("****"), std::string::npos) << e.Message();
	}
}

} // namespace
} // namespace mongo_river::mongo
