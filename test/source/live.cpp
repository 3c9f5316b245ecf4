// live.cpp: helpers of the live source tests (see live.hpp).
#include "live.hpp"

#include <chrono>
#include <unistd.h>

#include "mongo_river/mongo/errors.hpp"

namespace live {

namespace mm = mongo_river::mongo;

std::string UniqueDb(const std::string &name) {
	static int counter = 0;
	return "src_" + name + "_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
}

namespace {

// Check fails the test (by exception) when a driver call failed.
void Check(bool ok, const bson_error_t &error, const std::string &what) {
	if (!ok)
		throw std::runtime_error(what + ": " + error.message);
}

} // namespace

Writer::Writer(const std::string &uri) {
	bson_error_t error;
	mm::Uri parsed(mongoc_uri_new_with_error(uri.c_str(), &error));
	Check(parsed != nullptr, error, "uri");
	client_.reset(mongoc_client_new_from_uri(parsed.get()));
}

void Writer::Insert(const std::string &db, const std::string &coll, const std::string &doc_json) {
	mm::Collection c(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	bson_error_t error;
	Check(mongoc_collection_insert_one(c.get(), J(doc_json).get(), nullptr, nullptr, &error), error, "insert");
}

void Writer::Update(const std::string &db, const std::string &coll, const std::string &filter_json,
					const std::string &update_json) {
	mm::Collection c(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	bson_error_t error;
	Check(mongoc_collection_update_one(c.get(), J(filter_json).get(), J(update_json).get(), nullptr, nullptr, &error),
		  error, "update " + update_json);
}

void Writer::Replace(const std::string &db, const std::string &coll, const std::string &filter_json,
					 const std::string &doc_json) {
	mm::Collection c(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	bson_error_t error;
	Check(mongoc_collection_replace_one(c.get(), J(filter_json).get(), J(doc_json).get(), nullptr, nullptr, &error),
		  error, "replace");
}

void Writer::Delete(const std::string &db, const std::string &coll, const std::string &filter_json) {
	mm::Collection c(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	bson_error_t error;
	Check(mongoc_collection_delete_one(c.get(), J(filter_json).get(), nullptr, nullptr, &error), error, "delete");
}

void Writer::Drop(const std::string &db, const std::string &coll) {
	mm::Collection c(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	bson_error_t error;
	Check(mongoc_collection_drop(c.get(), &error), error, "drop");
}

void Writer::Transaction(const std::vector<std::vector<std::string>> &inserts) {
	bson_error_t error;
	mm::Session session(mongoc_client_start_session(client_.get(), nullptr, &error));
	Check(session != nullptr, error, "start session");
	Check(mongoc_client_session_start_transaction(session.get(), nullptr, &error), error, "start transaction");
	for (const std::vector<std::string> &op : inserts) {
		mm::Collection c(mongoc_client_get_collection(client_.get(), op[0].c_str(), op[1].c_str()));
		Bson opts = mm::NewBson();
		Check(mongoc_client_session_append(session.get(), opts.get(), &error), error, "session append");
		Check(mongoc_collection_insert_one(c.get(), J(op[2]).get(), opts.get(), nullptr, &error), error,
			  "insert in transaction");
	}
	bson_t reply;
	bool ok = mongoc_client_session_commit_transaction(session.get(), &reply, &error);
	bson_destroy(&reply);
	Check(ok, error, "commit");
}

std::vector<Bson> Writer::All(const std::string &db, const std::string &coll) {
	mm::Collection c(mongoc_client_get_collection(client_.get(), db.c_str(), coll.c_str()));
	Bson opts = J(R"({"sort": {"_id": 1}})");
	Bson filter = mm::NewBson();
	mm::Cursor cursor(mongoc_collection_find_with_opts(c.get(), filter.get(), opts.get(), nullptr));
	std::vector<Bson> out;
	const bson_t *doc = nullptr;
	while (mongoc_cursor_next(cursor.get(), &doc))
		out.push_back(mm::CopyBson(doc));
	bson_error_t error;
	Check(!mongoc_cursor_error(cursor.get(), &error), error, "find");
	return out;
}

std::string Summary(const mm::ChangeEvent &e) {
	std::string s = std::string(mm::OperationTypeName(e.op)) + " " + e.db + "." + e.coll;
	if (e.document_key)
		s += " key=" + mm::ToCanonicalJson(e.document_key.get());
	if (e.op == mm::OperationType::kUpdate) {
		s += " set=" + mm::ToCanonicalJson(e.updated_fields.get()) + " unset=";
		for (const std::string &f : e.removed_fields)
			s += f + ",";
		s += " truncated=";
		for (const mm::TruncatedArray &t : e.truncated_arrays)
			s += t.field + ":" + std::to_string(t.new_size) + ",";
	}
	if ((e.op == mm::OperationType::kInsert || e.op == mm::OperationType::kReplace) && e.full_document)
		s += " doc=" + mm::ToCanonicalJson(e.full_document.get());
	if (e.op == mm::OperationType::kRename)
		s += " to=" + e.to_db + "." + e.to_coll;
	if (e.InTransaction())
		s += " [txn " + std::to_string(*e.txn_number) + "]";
	return s;
}

std::vector<mm::ChangeEvent> ReadUntil(const std::function<mm::Batch()> &next, mm::Timestamp until, double timeout_s,
									   std::vector<size_t> *batches, mm::Position *last_position) {
	std::vector<mm::ChangeEvent> out;
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
	while (std::chrono::steady_clock::now() < deadline) {
		mm::Batch batch = next();
		if (batches && !batch.events.empty())
			batches->push_back(batch.events.size());
		for (mm::ChangeEvent &e : batch.events)
			out.push_back(std::move(e));
		if (last_position)
			*last_position = batch.position;
		if (batch.caught_up && batch.reached >= until)
			return out;
	}
	ADD_FAILURE() << "the reader did not reach " << until.t << "," << until.i << " within " << timeout_s << " s";
	return out;
}

} // namespace live
