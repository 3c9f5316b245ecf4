// uri_test.cpp: MongoDB URI parsing and password redaction.
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/errors.hpp"
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

TEST(RedactUri, PasswordWithQuestionMarkAsLibmongocReadsIt) {
	// libmongoc 1.23: the userinfo ends at the first '@' before the first '/'; '?' may be in it.
	EXPECT_EQ(RedactUri("mongodb://root:a?Qq7SecretZ@127.0.0.1:1/?replicaSet=rs0"),
			  "mongodb://root:****@127.0.0.1:1/?replicaSet=rs0");
	EXPECT_EQ(RedactUri("mongodb://root:a?b@h1"), "mongodb://root:****@h1");
	EXPECT_EQ(RedactUri("mongodb+srv://u:p?x@c.example.net/"), "mongodb+srv://u:****@c.example.net/");
	// libmongoc reads the password "a" and the host "b@h1".
	EXPECT_EQ(RedactUri("mongodb://root:a@b@h1/"), "mongodb://root:****@b@h1/");
	// An '@' in the options is not the userinfo's.
	EXPECT_EQ(RedactUri("mongodb://root:a%40b@h1/?authSource=x@y"), "mongodb://root:****@h1/?authSource=x@y");
	EXPECT_EQ(RedactUri("mongodb://h1/?authSource=x@y"), "mongodb://h1/?authSource=x@y");
	// libmongoc refuses a '/' in the password; its error still shows no password.
	EXPECT_EQ(RedactUri("mongodb://root:a/b@h1/"), "mongodb://root:****@h1/");
}

TEST(RedactUri, HidesSecretOptions) {
	EXPECT_EQ(RedactUri("mongodb://h1/?replicaSet=rs0&tlsCertificateKeyFilePassword=Qq7SecretZ&tls=true"),
			  "mongodb://h1/?replicaSet=rs0&tlsCertificateKeyFilePassword=****&tls=true");
	EXPECT_EQ(RedactUri("mongodb://h1/?TLSCERTIFICATEKEYFILEPASSWORD=x"),
			  "mongodb://h1/?TLSCERTIFICATEKEYFILEPASSWORD=****");
	EXPECT_EQ(RedactUri("mongodb://u:p@h1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok"),
			  "mongodb://u:****@h1/?authMechanism=MONGODB-AWS&authMechanismProperties=****");
	EXPECT_EQ(RedactUri("mongodb://u:a?sslClientCertificateKeyPassword=x@h1/?sslClientCertificateKeyPassword=y"),
			  "mongodb://u:****@h1/?sslClientCertificateKeyPassword=****");
}

TEST(Scrub, ShortSecretsAreNotReplaced) {
	EXPECT_EQ(Scrub("No suitable servers found", "a"), "No suitable servers found");
	EXPECT_EQ(Scrub("Failed: abc", "abc"), "Failed: abc");
	EXPECT_EQ(Scrub("auth failed for pw Qq7SecretZ", "Qq7SecretZ"), "auth failed for pw ****");
	EXPECT_EQ(Scrub("x", ""), "x");
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
