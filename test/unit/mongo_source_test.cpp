// mongo_source_test.cpp: what Source sets up before any I/O: default timeouts and appname (kept
// when the user's URI sets them), no wire compression, and error classification of driver failures.
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mongo_river::mongo {
namespace {

int32_t UriOption(const Source &source, const char *key) {
	return mongoc_uri_get_option_as_int32(mongoc_client_get_uri(source.Handle()), key, -1);
}

TEST(Source, AddsShortTimeoutsAndAppName) {
	mongoc_init();
	Source source("mongodb://alice:pw@127.0.0.1:1/?replicaSet=rs0");
	EXPECT_EQ(UriOption(source, MONGOC_URI_SERVERSELECTIONTIMEOUTMS), kDefaultServerSelectionTimeoutMs);
	EXPECT_EQ(UriOption(source, MONGOC_URI_CONNECTTIMEOUTMS), kDefaultConnectTimeoutMs);
	EXPECT_EQ(UriOption(source, MONGOC_URI_SOCKETTIMEOUTMS), kDefaultSocketTimeoutMs);
	EXPECT_STREQ(mongoc_uri_get_appname(mongoc_client_get_uri(source.Handle())), "mongo_river");
	EXPECT_EQ(source.RedactedUri(), "mongodb://alice:****@127.0.0.1:1/?replicaSet=rs0");
}

TEST(Source, KeepsTheUsersSettings) {
	mongoc_init();
	Source source("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=123&socketTimeoutMS=7&appname=mine");
	EXPECT_EQ(UriOption(source, MONGOC_URI_SERVERSELECTIONTIMEOUTMS), 123);
	EXPECT_EQ(UriOption(source, MONGOC_URI_SOCKETTIMEOUTMS), 7);
	EXPECT_EQ(UriOption(source, MONGOC_URI_CONNECTTIMEOUTMS), kDefaultConnectTimeoutMs);
	EXPECT_STREQ(mongoc_uri_get_appname(mongoc_client_get_uri(source.Handle())), "mine");
}

TEST(Source, TurnsWireCompressionOff) {
	// Replies are checked before libmongoc reads them (reply_check.hpp); a compressed one could not be.
	mongoc_init();
	Source source("mongodb://127.0.0.1:1/?compressors=zlib,snappy,zstd");
	const bson_t *compressors = mongoc_uri_get_compressors(mongoc_client_get_uri(source.Handle()));
	EXPECT_TRUE(bson_empty(compressors)) << bson_count_keys(compressors) << " compressors left";
}

TEST(Source, MalformedUriIs22023) {
	try {
		Source source("mongodb://alice:hunter2@");
		FAIL() << "expected an Error";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "22023");
		EXPECT_EQ(e.Message().find("hunter2"), std::string::npos);
	}
}

// Thrown returns the SourceError ThrowDriverError raises for a driver error.
SourceError Thrown(uint32_t domain, uint32_t code, const char *message, const char *reply_json = nullptr) {
	bson_error_t error;
	bson_set_error(&error, domain, code, "%s", message);
	Bson reply;
	if (reply_json) {
		bson_error_t parse;
		reply.reset(bson_new_from_json(reinterpret_cast<const uint8_t *>(reply_json), -1, &parse));
	}
	try {
		ThrowDriverError("cannot do it", error, reply.get(), "s3cret");
	} catch (const SourceError &e) {
		return e;
	}
	ADD_FAILURE() << "ThrowDriverError returned";
	return SourceError(SourceErrorKind::kServer, 0, "XX000", "none");
}

TEST(ThrowDriverError, Classifies) {
	SourceError selection = Thrown(MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE,
								   "No suitable servers found: connection refused");
	EXPECT_EQ(selection.Sqlstate(), "08001");
	EXPECT_TRUE(selection.Retryable());

	SourceError socket = Thrown(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "socket error");
	EXPECT_EQ(socket.Sqlstate(), "08006");
	EXPECT_EQ(socket.Kind(), SourceErrorKind::kConnection);

	SourceError auth = Thrown(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE, "Authentication failed: s3cret");
	EXPECT_EQ(auth.Sqlstate(), "28P01");
	EXPECT_EQ(auth.Detail().find("s3cret"), std::string::npos) << auth.Detail();
	EXPECT_NE(auth.Detail().find("****"), std::string::npos) << auth.Detail();

	EXPECT_EQ(Thrown(MONGOC_ERROR_SERVER, 286, "history lost").Kind(), SourceErrorKind::kHistoryLost);
	EXPECT_EQ(Thrown(MONGOC_ERROR_SERVER, 280, "cannot resume stream; the resume token was not found").Kind(),
			  SourceErrorKind::kHistoryLost);
	EXPECT_EQ(Thrown(MONGOC_ERROR_SERVER, 280, "some other fatal change stream error").Kind(),
			  SourceErrorKind::kServer);
	EXPECT_EQ(Thrown(MONGOC_ERROR_SERVER, 136, "CappedPositionLost").Kind(), SourceErrorKind::kHistoryLost);
	EXPECT_EQ(Thrown(MONGOC_ERROR_SERVER, 10107, "not primary").Kind(), SourceErrorKind::kConnection);
	EXPECT_EQ(
		Thrown(MONGOC_ERROR_SERVER, 1234, "labelled", R"({"errorLabels": ["ResumableChangeStreamError"]})").Kind(),
		SourceErrorKind::kConnection);
	EXPECT_EQ(Thrown(MONGOC_ERROR_SERVER, 13, "not authorized").Sqlstate(), "42501");

	SourceError other = Thrown(MONGOC_ERROR_SERVER, 2, "BadValue");
	EXPECT_EQ(other.Kind(), SourceErrorKind::kServer);
	EXPECT_EQ(other.ServerCode(), 2);
	EXPECT_NE(other.Detail().find("server error code 2"), std::string::npos);
	EXPECT_EQ(other.Message().rfind("cannot do it", 0), 0u);
}

} // namespace
} // namespace mongo_river::mongo
