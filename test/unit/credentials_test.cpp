// credentials_test.cpp: the checks made where passwords and URIs are handed to libmongoc.
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/credentials.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/mongo/uri.hpp"

using namespace mongo_river::mongo;

namespace {

bool Needs(const char *uri) {
	return MechanismNeedsPassword(ParseUri(uri).get());
}

TEST(MechanismNeedsPassword, DefaultScramPlainNeedOne) {
	EXPECT_TRUE(Needs("mongodb://root@h/?authSource=admin"));
	EXPECT_TRUE(Needs("mongodb://root@h/?authMechanism=SCRAM-SHA-256"));
	EXPECT_TRUE(Needs("mongodb://root@h/?authMechanism=SCRAM-SHA-1"));
	EXPECT_TRUE(Needs("mongodb://root@h/?authMechanism=PLAIN"));
	EXPECT_FALSE(Needs("mongodb://h/?replicaSet=rs0"));
	EXPECT_FALSE(Needs("mongodb://CN=x@h/?authMechanism=MONGODB-X509"));
	EXPECT_FALSE(Needs("mongodb://u@h/?authMechanism=GSSAPI"));
}

TEST(RequirePassword, RefusesMissingAndEmptyPasswords) {
	for (const char *uri : {"mongodb://root@h/?authSource=admin", "mongodb://root:@h/"}) {
		Uri parsed = ParseUri(uri);
		EXPECT_THROW(RequirePassword(parsed.get(), RedactUri(uri)), mongo_river::Error) << uri;
	}
	Uri ok = ParseUri("mongodb://root:pw@h/");
	EXPECT_NO_THROW(RequirePassword(ok.get(), "x"));
}

TEST(Source, NeverBuildsAClientWithoutPassword) {
	EXPECT_THROW(Source("mongodb://root@127.0.0.1:1/?replicaSet=rs0"), mongo_river::Error);
	EXPECT_THROW(Source("mongodb://127.0.0.1:1/", Credentials{std::string("root"), std::string(""), "test"}),
				 mongo_river::Error);
	EXPECT_NO_THROW(Source("mongodb://root@127.0.0.1:1/", Credentials{std::nullopt, std::string("pw"), "test"}));
}

TEST(UnknownUriOptions, NamesThem) {
	std::vector<std::string> unknown = UnknownUriOptions("mongodb://h/?replicaSet=rs0&bogusOption=1&w=1");
	ASSERT_EQ(unknown.size(), 1u);
	EXPECT_EQ(unknown[0], "bogusoption");
	EXPECT_TRUE(UnknownUriOptions("mongodb://h/?replicaSet=rs0&authSource=admin").empty());
	EXPECT_THROW(RequireKnownOptions("mongodb://u:pw@h/?bogusOption=1", "URI"), mongo_river::Error);
}

} // namespace
