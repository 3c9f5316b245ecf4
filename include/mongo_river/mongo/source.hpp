// source.hpp: one river's connection to its MongoDB (PG-free).
//
// A Source owns a single-threaded mongoc_client_t (never a pool: each Source is used by one thread,
// the worker's or a copy's reader thread, scan_ahead.hpp) built
// from the river's URI. Unless the URI sets them, these options are added so that a dead or slow
// server never blocks the worker past its latch and SIGTERM handling for long:
//   serverSelectionTimeoutMS = 5000   (how long to look for a usable server)
//   connectTimeoutMS         = 5000   (TCP + TLS + handshake of one connection)
//   socketTimeoutMS          = 30000  (one reply; longer than any maxAwaitTimeMS we send)
//   appname                  = "mongo_river" (shows in the server's logs and currentOp)
// The client uses libmongoc's error API version 2 (server errors in domain MONGOC_ERROR_SERVER).
// mongoc_init() must have run in this process (the worker does it after fork).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/credentials.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

inline constexpr int32_t kDefaultServerSelectionTimeoutMs = 5000;
inline constexpr int32_t kDefaultConnectTimeoutMs = 5000;
inline constexpr int32_t kDefaultSocketTimeoutMs = 30000;
inline constexpr const char *kAppName = "mongo_river";

// ServerInfo is what Check learns from the server's hello reply.
struct ServerInfo {
	std::string set_name; // replica set name; empty on mongos
	bool is_mongos = false;
	int32_t max_wire_version = 0;
};

class Source {
public:
	// Source parses uri (Error 22023 if malformed), applies credentials (a password_file's or a
	// user mapping's) and prepares the client; no I/O happens yet. A URI whose auth mechanism needs
	// a password and has none is refused here (Error 22023), before libmongoc sees it.
	explicit Source(const std::string &uri, const Credentials &credentials = {});

	Source(const Source &) = delete;
	Source &operator=(const Source &) = delete;

	// Handle returns the driver client, for the readers built on this source.
	mongoc_client_t *Handle() const { return client_.get(); }
	// RedactedUri returns the URI with its password replaced by "****", for messages.
	const std::string &RedactedUri() const { return redacted_uri_; }

	// Ping runs a ping round trip: SourceError 08001 when no server is reachable, 28P01 when
	// authentication fails; the detail holds the driver's message (never the password).
	void Ping();
	// Check pings and verifies the server can serve change streams: a replica set member or a
	// mongos (SourceError kNotReplicaSet, 55000, for a standalone mongod).
	ServerInfo Check();
	// OperationTime returns the source's latest operation time: hello's lastWrite.opTime.ts when
	// the server reports it (the last oplog entry), else the reply's operationTime, else
	// $clusterTime.clusterTime. Everything the source acknowledged before the call is at or before it.
	Timestamp OperationTime();
	// CommittedTime returns hello's lastWrite.majorityOpTime.ts: every oplog entry at or before it is
	// majority-committed and visible to readers, with no hole left by a concurrent write still
	// committing (which OperationTime may be beyond). Use it as the start point of an initial copy:
	// a stream from AtOperationTime(CommittedTime()) misses nothing the copy cannot see. Zero when
	// the server does not report it (mongos).
	Timestamp CommittedTime();

	// OldestOplogTime returns the ts of the oldest entry local.oplog.rs still holds (zero when it
	// cannot be read, e.g. on mongos): how far back a river's position may lie before history is lost.
	Timestamp OldestOplogTime();

	// OplogStats is what the source says of its oplog: collStats of local.oplog.rs (size and count,
	// with the caps maxSize in bytes and max in entries, 0 when none) and serverStatus's
	// oplogTruncation.oplogMinRetentionHours (0 when not set). known is false when it cannot be read.
	struct OplogStats {
		bool known = false;
		double size = 0, max_size = 0, count = 0, max_count = 0;
		double min_retention_hours = 0;
	};
	OplogStats ReadOplogStats();

	// EstimatedCount returns the number of documents of db.coll from the collection's metadata (the
	// count command without a query, as estimatedDocumentCount), -1 when it cannot be read.
	int64_t EstimatedCount(const std::string &db, const std::string &coll);

	// ListDatabases returns the database names; admin, local and config only with include_system.
	std::vector<std::string> ListDatabases(bool include_system = false);
	// ListCollections returns the collections of db (views and time series excluded); system.*
	// collections only with include_system.
	std::vector<std::string> ListCollections(const std::string &db, bool include_system = false);
	// Sample returns up to n random documents of db.coll ($sample), for schema inference.
	std::vector<Bson> Sample(const std::string &db, const std::string &coll, int64_t n);
	// FindById returns the current document of db.coll whose _id equals id, nullptr if there is
	// none (update lookups, verify, retries); majority reads only majority-committed data (what
	// a change stream delivers), otherwise the primary's latest (what an oplog tail sees).
	Bson FindById(const std::string &db, const std::string &coll, const bson_value_t *id, bool majority = true);
	// FindByIds calls each (with data) for every current document of db.coll whose _id is one of ids (a BSON
	// array), in any order, read with one query {_id: {$in: ids}}: the lookups of a batch of update
	// events (each document is valid only during its call: the driver holds one reply at a time).
	void FindByIds(const std::string &db, const std::string &coll, const bson_t *ids, bool majority,
				   void (*each)(const bson_t *doc, void *data), void *data);

	// RunCommand runs cmd on db against the primary and returns the reply; a failure throws a
	// SourceError whose message starts with what.
	Bson RunCommand(const std::string &db, const bson_t *cmd, const std::string &what);
	// Fail throws the SourceError for a failed driver call (what: the operation), scrubbing the
	// URI's password from the driver's message.
	[[noreturn]] void Fail(const std::string &what, const bson_error_t &error, const bson_t *reply = nullptr) const;

	// Scrubbed returns text (a driver or server message) with the URI's password replaced by "****".
	std::string Scrubbed(const std::string &text) const;

private:
	// Hello runs hello (isMaster on servers older than 4.4.2) and returns the reply.
	Bson Hello();

	Uri uri_;
	mongo::Client client_;
	std::string redacted_uri_;
	std::string password_;
};

} // namespace mongo_river::mongo
