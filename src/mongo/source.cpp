// source.cpp: a river's connection to MongoDB: timeouts, health checks, metadata, lookups.
#include "mongo_river/mongo/source.hpp"

#include "mongo_river/mongo/credentials.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/stream_guard.hpp"
#include "mongo_river/mongo/uri.hpp"

namespace mongo_river::mongo {

namespace {

// Reply owns a stack bson_t that a driver call initializes (always, even on failure).
struct Reply {
	bson_t doc = BSON_INITIALIZER;
	Reply() = default;
	Reply(const Reply &) = delete;
	Reply &operator=(const Reply &) = delete;
	~Reply() { bson_destroy(&doc); }
};

// SetDefaultTimeout sets key to value_ms on uri unless the user's URI already sets it.
void SetDefaultTimeout(mongoc_uri_t *uri, const char *key, int32_t value_ms) {
	if (!mongoc_uri_has_option(uri, key))
		mongoc_uri_set_option_as_int32(uri, key, value_ms);
}

// IsSystemDatabase tells whether db is one of MongoDB's own databases.
bool IsSystemDatabase(const std::string &db) {
	return db == "admin" || db == "local" || db == "config";
}

} // namespace

Source::Source(const std::string &uri, const Credentials &credentials)
	: uri_(ParseUri(uri)), redacted_uri_(RedactUri(uri)) {
	// The boundary to libmongoc: no NULL or empty password reaches its SCRAM step (a segfault).
	ApplyCredentials(uri_.get(), credentials);
	RequirePassword(uri_.get(), redacted_uri_);
	if (const char *password = mongoc_uri_get_password(uri_.get()))
		password_ = password;
	SetDefaultTimeout(uri_.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS, kDefaultServerSelectionTimeoutMs);
	SetDefaultTimeout(uri_.get(), MONGOC_URI_CONNECTTIMEOUTMS, kDefaultConnectTimeoutMs);
	SetDefaultTimeout(uri_.get(), MONGOC_URI_SOCKETTIMEOUTMS, kDefaultSocketTimeoutMs);
	// Replies are checked before libmongoc reads them (reply_check.hpp); a compressed one cannot be.
	mongoc_uri_set_compressors(uri_.get(), nullptr);
	if (!mongoc_uri_get_appname(uri_.get()))
		mongoc_uri_set_appname(uri_.get(), kAppName);
	bson_error_t error;
	client_.reset(mongoc_client_new_from_uri_with_error(uri_.get(), &error));
	if (!client_)
		throw SourceError(SourceErrorKind::kServer, 0, sqlstate::kInvalidParameterValue,
						  "cannot use MongoDB URI \"" + redacted_uri_ + "\"", Scrub(error.message, password_));
	mongoc_client_set_error_api(client_.get(), MONGOC_ERROR_API_VERSION_2);
	GuardClient(client_.get());
}

std::string Source::Scrubbed(const std::string &text) const {
	return Scrub(text, password_);
}

void Source::Fail(const std::string &what, const bson_error_t &error, const bson_t *reply) const {
	ThrowDriverError(what, error, reply, password_, client_.get());
}

Timestamp Source::OldestOplogTime() {
	Bson cmd(BCON_NEW("find", BCON_UTF8("oplog.rs"), "sort", "{", "$natural", BCON_INT32(1), "}", "limit",
					  BCON_INT32(1), "projection", "{", "ts", BCON_INT32(1), "}"));
	Timestamp oldest;
	try {
		Bson reply = RunCommand("local", cmd.get(), "cannot read the oldest oplog entry");
		FindTimestamp(reply.get(), "cursor.firstBatch.0.ts", &oldest);
	} catch (const SourceError &) {
		// Not readable here (mongos, missing privilege): unknown.
	}
	return oldest;
}

namespace {

// FindNumber reads the number at dotted path in doc; fallback when it is absent or not a number.
double FindNumber(const bson_t *doc, const char *dotted_path, double fallback) {
	bson_iter_t iter, found;
	if (bson_iter_init(&iter, doc) && bson_iter_find_descendant(&iter, dotted_path, &found) &&
		BSON_ITER_HOLDS_NUMBER(&found))
		return bson_iter_as_double(&found);
	return fallback;
}

} // namespace

Source::OplogStats Source::ReadOplogStats() {
	OplogStats stats;
	try {
		Bson cmd(BCON_NEW("collStats", BCON_UTF8("oplog.rs")));
		Bson reply = RunCommand("local", cmd.get(), "cannot read the oplog's collStats");
		stats.size = FindNumber(reply.get(), "size", 0);
		stats.count = FindNumber(reply.get(), "count", 0);
		stats.max_size = FindNumber(reply.get(), "maxSize", 0);
		stats.max_count = FindNumber(reply.get(), "max", 0);
		stats.known = true;
	} catch (const SourceError &) {
		return stats; // not readable here (mongos, missing privilege): unknown
	}
	try {
		Bson cmd(BCON_NEW("serverStatus", BCON_INT32(1)));
		Bson reply = RunCommand("admin", cmd.get(), "cannot read serverStatus");
		stats.min_retention_hours = FindNumber(reply.get(), "oplogTruncation.oplogMinRetentionHours", 0);
	} catch (const SourceError &) {
		// No retention known: the size cap alone decides.
	}
	return stats;
}

int64_t Source::EstimatedCount(const std::string &db, const std::string &coll) {
	try {
		Bson cmd(BCON_NEW("count", BCON_UTF8(coll.c_str())));
		Bson reply = RunCommand(db, cmd.get(), "cannot count " + db + "." + coll);
		double n = FindNumber(reply.get(), "n", -1);
		return n < 0 ? -1 : int64_t(n);
	} catch (const SourceError &) {
		return -1;
	}
}

Bson Source::RunCommand(const std::string &db, const bson_t *cmd, const std::string &what) {
	Reply reply;
	bson_error_t error;
	if (!mongoc_client_command_simple(client_.get(), db.c_str(), cmd, nullptr, &reply.doc, &error))
		Fail(what, error, &reply.doc);
	return CopyBson(&reply.doc);
}

void Source::Ping() {
	Bson cmd = NewBson();
	BSON_APPEND_INT32(cmd.get(), "ping", 1);
	RunCommand("admin", cmd.get(), "cannot connect to MongoDB at \"" + redacted_uri_ + "\"");
}

Bson Source::Hello() {
	const std::string what = "cannot connect to MongoDB at \"" + redacted_uri_ + "\"";
	Bson cmd = NewBson();
	BSON_APPEND_INT32(cmd.get(), "hello", 1);
	try {
		return RunCommand("admin", cmd.get(), what);
	} catch (const SourceError &e) {
		if (e.ServerCode() != 59) // CommandNotFound: a server older than 4.4.2
			throw;
	}
	Bson legacy = NewBson();
	BSON_APPEND_INT32(legacy.get(), "isMaster", 1);
	return RunCommand("admin", legacy.get(), what);
}

ServerInfo Source::Check() {
	Bson hello = Hello();
	ServerInfo info;
	info.set_name = FindString(hello.get(), "setName");
	info.is_mongos = FindString(hello.get(), "msg") == "isdbgrid";
	bson_iter_t iter;
	if (bson_iter_init_find(&iter, hello.get(), "maxWireVersion") && BSON_ITER_HOLDS_INT(&iter))
		info.max_wire_version = static_cast<int32_t>(bson_iter_as_int64(&iter));
	if (info.set_name.empty() && !info.is_mongos)
		throw SourceError(SourceErrorKind::kNotReplicaSet, 0, sourcestate::kNotInPrerequisiteState,
						  "MongoDB at \"" + redacted_uri_ + "\" is a standalone server",
						  "Change streams and the oplog exist only on replica set members and mongos.",
						  "Run mongod with --replSet and rs.initiate() (a single-node replica set is enough), "
						  "or point the river at a replica set or mongos.");
	if (info.max_wire_version < 6)
		throw SourceError(SourceErrorKind::kNotReplicaSet, 0, sqlstate::kFeatureNotSupported,
						  "MongoDB at \"" + redacted_uri_ + "\" is too old for change streams",
						  "maxWireVersion " + std::to_string(info.max_wire_version) + " < 6 (MongoDB 3.6)",
						  "Use MongoDB 4.2 or later.");
	return info;
}

Timestamp Source::OperationTime() {
	Bson hello = Hello();
	Timestamp ts;
	if (FindTimestamp(hello.get(), "lastWrite.opTime.ts", &ts) || FindTimestamp(hello.get(), "operationTime", &ts) ||
		FindTimestamp(hello.get(), "$clusterTime.clusterTime", &ts))
		return ts;
	throw SourceError(SourceErrorKind::kNotReplicaSet, 0, sourcestate::kNotInPrerequisiteState,
					  "MongoDB at \"" + redacted_uri_ + "\" reports no operation time",
					  "hello's reply has neither lastWrite.opTime.ts, operationTime nor $clusterTime.",
					  "Point the river at a replica set member or mongos.");
}

Timestamp Source::CommittedTime() {
	Bson hello = Hello();
	Timestamp ts;
	FindTimestamp(hello.get(), "lastWrite.majorityOpTime.ts", &ts);
	return ts;
}

std::vector<std::string> Source::ListDatabases(bool include_system) {
	bson_error_t error;
	char **names = mongoc_client_get_database_names_with_opts(client_.get(), nullptr, &error);
	if (!names)
		Fail("cannot list the databases of \"" + redacted_uri_ + "\"", error);
	std::unique_ptr<char *, Deleter<bson_strfreev>> owned(names);
	std::vector<std::string> out;
	for (char **name = names; *name; ++name) {
		if (include_system || !IsSystemDatabase(*name))
			out.emplace_back(*name);
	}
	return out;
}

std::vector<std::string> Source::ListCollections(const std::string &db, bool include_system) {
	Database database(mongoc_client_get_database(client_.get(), db.c_str()));
	Cursor cursor(mongoc_database_find_collections_with_opts(database.get(), nullptr));
	std::vector<std::string> out;
	const bson_t *info = nullptr;
	while (mongoc_cursor_next(cursor.get(), &info)) {
		std::string name = FindString(info, "name");
		std::string type = FindString(info, "type");
		if (name.empty() || (!type.empty() && type != "collection"))
			continue;
		if (!include_system && name.rfind("system.", 0) == 0)
			continue;
		out.push_back(name);
	}
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_cursor_error_document(cursor.get(), &error, &reply))
		Fail("cannot list the collections of database \"" + db + "\"", error, reply);
	return out;
}

std::vector<Bson> Source::Sample(const std::string &db, const std::string &coll, int64_t n) {
	Collection collection(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	Bson pipeline(BCON_NEW("pipeline", "[", "{", "$sample", "{", "size", BCON_INT64(n), "}", "}", "]"));
	Cursor cursor(mongoc_collection_aggregate(collection.get(), MONGOC_QUERY_NONE, pipeline.get(), nullptr, nullptr));
	std::vector<Bson> out;
	const bson_t *doc = nullptr;
	while (mongoc_cursor_next(cursor.get(), &doc))
		out.push_back(CopyBson(doc));
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_cursor_error_document(cursor.get(), &error, &reply))
		Fail("cannot sample collection \"" + db + "." + coll + "\"", error, reply);
	return out;
}

Bson Source::FindById(const std::string &db, const std::string &coll, const bson_value_t *id, bool majority) {
	Collection collection(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	Bson filter = WrapValue("_id", id);
	Bson opts(BCON_NEW("limit", BCON_INT64(1), "singleBatch", BCON_BOOL(true), "readConcern", "{", "level",
					   majority ? "majority" : "local", "}"));
	Cursor cursor(mongoc_collection_find_with_opts(collection.get(), filter.get(), opts.get(), nullptr));
	const bson_t *doc = nullptr;
	Bson found;
	if (mongoc_cursor_next(cursor.get(), &doc))
		found = CopyBson(doc);
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_cursor_error_document(cursor.get(), &error, &reply))
		Fail("cannot read a document of \"" + db + "." + coll + "\"", error, reply);
	return found;
}

void Source::FindByIds(const std::string &db, const std::string &coll, const bson_t *ids, bool majority,
					   void (*each)(const bson_t *doc, void *data), void *data) {
	if (!ids || bson_empty(ids))
		return;
	Collection collection(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	Bson filter = NewBson();
	bson_t id_cond;
	bson_append_document_begin(filter.get(), "_id", -1, &id_cond);
	bson_append_array(&id_cond, "$in", -1, ids);
	bson_append_document_end(filter.get(), &id_cond);
	Bson opts(BCON_NEW("readConcern", "{", "level", majority ? "majority" : "local", "}"));
	Cursor cursor(mongoc_collection_find_with_opts(collection.get(), filter.get(), opts.get(), nullptr));
	const bson_t *doc = nullptr;
	while (mongoc_cursor_next(cursor.get(), &doc))
		each(doc, data);
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_cursor_error_document(cursor.get(), &error, &reply))
		Fail("cannot read documents of \"" + db + "." + coll + "\"", error, reply);
}

} // namespace mongo_river::mongo
