// live.hpp: helpers of the live source tests: the MongoDB under test (env MONGO_URI), a writer
// client, unique database names and event summaries for comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/change_event.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace live {

using mongo_river::mongo::Bson;

// Env returns the environment variable name, or "" when unset.
inline std::string Env(const char *name) {
	const char *v = std::getenv(name);
	return v ? std::string(v) : std::string();
}

// SourceUri returns MONGO_URI; the tests skip without it.
inline std::string SourceUri() {
	return Env("MONGO_URI");
}

#define REQUIRE_SOURCE()                                                                                               \
	do {                                                                                                               \
		if (live::SourceUri().empty())                                                                                 \
			GTEST_SKIP() << "MONGO_URI is not set";                                                                    \
	} while (0)

// J parses Extended JSON.
inline Bson J(const std::string &json) {
	return mongo_river::mongo::FromJson(json, "test JSON");
}

// UniqueDb returns a database name no other test run uses.
std::string UniqueDb(const std::string &name);

// Writer is a plain libmongoc client the tests write with.
class Writer {
public:
	explicit Writer(const std::string &uri);
	void Insert(const std::string &db, const std::string &coll, const std::string &doc_json);
	void Update(const std::string &db, const std::string &coll, const std::string &filter_json,
				const std::string &update_json);
	void Replace(const std::string &db, const std::string &coll, const std::string &filter_json,
				 const std::string &doc_json);
	void Delete(const std::string &db, const std::string &coll, const std::string &filter_json);
	void Drop(const std::string &db, const std::string &coll);
	// Transaction runs body's inserts (db, coll, doc_json triples) in one MongoDB transaction.
	void Transaction(const std::vector<std::vector<std::string>> &inserts);
	// All returns every document of db.coll in _id order.
	std::vector<Bson> All(const std::string &db, const std::string &coll);
	mongoc_client_t *Handle() { return client_.get(); }

private:
	mongo_river::mongo::Client client_;
};

// Summary returns one comparable line for an event: op, namespace, key, update description,
// document (insert/replace) and transaction membership.
std::string Summary(const mongo_river::mongo::ChangeEvent &e);

// ReadUntil calls next() for batches until a batch has reached `until` and caught up (or timeout_s
// passes), returning every event; batches (if not null) receives each batch's size.
std::vector<mongo_river::mongo::ChangeEvent> ReadUntil(const std::function<mongo_river::mongo::Batch()> &next,
													   mongo_river::mongo::Timestamp until, double timeout_s = 20,
													   std::vector<size_t> *batches = nullptr,
													   mongo_river::mongo::Position *last_position = nullptr);

} // namespace live
