// change_stream.cpp: the change stream reader: open at a position, batch events, never split a
// transaction, report the position to store.
#include "mongo_river/mongo/change_stream.hpp"

#include <chrono>
#include <set>

#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mongo_river::mongo {

namespace {

// kMaxGetMoreFailuresInRow is how many failed getMore commands in a row (each followed by the driver's
// own resume) make the reader give up with a SourceError, so that the river shows the fault.
constexpr int kMaxGetMoreFailuresInRow = 3;

// MalformedEvent returns the error for a change event we cannot read.
SourceError MalformedEvent(const std::string &why, const bson_t *doc) {
	return SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException, "malformed change event: " + why,
					   ToRelaxedJson(doc));
}

// AppendClause appends {key1: v1[, key2: v2]} as the next element of the $or array.
void AppendClause(bson_t *array, int *count, const char *key1, const std::string &v1, const char *key2 = nullptr,
				  const std::string &v2 = {}) {
	bson_t clause;
	std::string index = std::to_string((*count)++);
	bson_append_document_begin(array, index.c_str(), -1, &clause);
	bson_append_utf8(&clause, key1, -1, v1.c_str(), -1);
	if (key2)
		bson_append_utf8(&clause, key2, -1, v2.c_str(), -1);
	bson_append_document_end(array, &clause);
}

// ReadUpdateDescription fills the event's updatedFields, removedFields and truncatedArrays.
void ReadUpdateDescription(const bson_iter_t *desc, ChangeEvent *event) {
	bson_iter_t iter;
	if (!bson_iter_recurse(desc, &iter))
		return;
	while (bson_iter_next(&iter)) {
		const std::string key = bson_iter_key(&iter);
		bson_iter_t item;
		if (key == "updatedFields") {
			event->updated_fields = BsonFromIter(&iter);
		} else if (key == "removedFields" && bson_iter_recurse(&iter, &item)) {
			while (bson_iter_next(&item)) {
				if (BSON_ITER_HOLDS_UTF8(&item))
					event->removed_fields.emplace_back(bson_iter_utf8(&item, nullptr));
			}
		} else if (key == "truncatedArrays" && bson_iter_recurse(&iter, &item)) {
			while (bson_iter_next(&item)) {
				Bson entry = BsonFromIter(&item);
				bson_iter_t size;
				TruncatedArray truncated{FindString(entry.get(), "field"), 0};
				if (entry && bson_iter_init_find(&size, entry.get(), "newSize") && BSON_ITER_HOLDS_NUMBER(&size))
					truncated.new_size = bson_iter_as_int64(&size);
				event->truncated_arrays.push_back(std::move(truncated));
			}
		}
	}
}

// ReadEventField stores one top-level field of a change event document into event.
void ReadEventField(bson_iter_t *iter, ChangeEvent *event) {
	const std::string key = bson_iter_key(iter);
	if (key == "_id") {
		event->resume_token = BsonFromIter(iter);
	} else if (key == "operationType" && BSON_ITER_HOLDS_UTF8(iter)) {
		event->op = ParseOperationType(bson_iter_utf8(iter, nullptr));
	} else if (key == "ns" || key == "to") {
		Bson ns = BsonFromIter(iter);
		(key == "ns" ? event->db : event->to_db) = FindString(ns.get(), "db");
		(key == "ns" ? event->coll : event->to_coll) = FindString(ns.get(), "coll");
	} else if (key == "documentKey") {
		event->document_key = BsonFromIter(iter);
	} else if (key == "fullDocument") {
		event->full_document = BsonFromIter(iter); // null (deleted since) stays nullptr
	} else if (key == "updateDescription") {
		ReadUpdateDescription(iter, event);
	} else if (key == "clusterTime" && BSON_ITER_HOLDS_TIMESTAMP(iter)) {
		bson_iter_timestamp(iter, &event->cluster_time.t, &event->cluster_time.i);
	} else if (key == "wallTime" && BSON_ITER_HOLDS_DATE_TIME(iter)) {
		event->wall_time_ms = bson_iter_date_time(iter);
	} else if (key == "lsid") {
		event->lsid = BsonFromIter(iter);
	} else if (key == "txnNumber" && BSON_ITER_HOLDS_INT(iter)) {
		event->txn_number = bson_iter_as_int64(iter);
	}
}

// AfterOplogTime returns the timestamp just after ts (startAtOperationTime is inclusive).
Timestamp AfterOplogTime(Timestamp ts) {
	return ts.i == UINT32_MAX ? Timestamp{ts.t + 1, 0} : Timestamp{ts.t, ts.i + 1};
}

// CheckScope refuses a scope too narrow for namespaces (Error 22023).
void CheckScope(const std::vector<Namespace> &namespaces, StreamScope scope) {
	std::set<std::string> dbs;
	for (const Namespace &ns : namespaces)
		dbs.insert(ns.db);
	const bool fits = scope == StreamScope::kCluster || scope == StreamScope::kAuto ||
					  (scope == StreamScope::kDatabase && dbs.size() == 1) ||
					  (scope == StreamScope::kCollection && namespaces.size() == 1 && !namespaces[0].coll.empty());
	if (!fits)
		throw Error(sqlstate::kInvalidParameterValue, "the change stream scope does not cover every namespace",
					std::to_string(namespaces.size()) + " namespaces in " + std::to_string(dbs.size()) + " databases");
}

} // namespace

StreamScope ChooseScope(const std::vector<Namespace> &namespaces, StreamScope requested) {
	if (requested != StreamScope::kAuto)
		return requested;
	std::set<std::string> dbs;
	for (const Namespace &ns : namespaces)
		dbs.insert(ns.db);
	if (namespaces.size() == 1 && !namespaces[0].coll.empty())
		return StreamScope::kCollection;
	return dbs.size() == 1 ? StreamScope::kDatabase : StreamScope::kCluster;
}

Bson BuildStreamPipeline(const std::vector<Namespace> &namespaces) {
	Bson pipeline = NewBson();
	bson_t stages;
	bson_t stage;
	bson_t match;
	bson_t clauses;
	int count = 0;
	bson_append_array_begin(pipeline.get(), "pipeline", -1, &stages);
	bson_append_document_begin(&stages, "0", -1, &stage);
	bson_append_document_begin(&stage, "$match", -1, &match);
	bson_append_array_begin(&match, "$or", -1, &clauses);
	std::set<std::string> dbs;
	for (const Namespace &ns : namespaces) {
		dbs.insert(ns.db);
		if (ns.coll.empty()) {
			AppendClause(&clauses, &count, "ns.db", ns.db);
			AppendClause(&clauses, &count, "to.db", ns.db);
		} else {
			AppendClause(&clauses, &count, "ns.db", ns.db, "ns.coll", ns.coll);
			AppendClause(&clauses, &count, "to.db", ns.db, "to.coll", ns.coll);
		}
	}
	for (const std::string &db : dbs)
		AppendClause(&clauses, &count, "operationType", "dropDatabase", "ns.db", db);
	AppendClause(&clauses, &count, "operationType", "invalidate");
	bson_append_array_end(&match, &clauses);
	bson_append_document_end(&stage, &match);
	bson_append_document_end(&stages, &stage);
	bson_append_array_end(pipeline.get(), &stages);
	return pipeline;
}

ChangeEvent ParseChangeEvent(const bson_t *doc) {
	ChangeEvent event;
	bson_iter_t iter;
	if (!bson_iter_init(&iter, doc))
		throw MalformedEvent("not a valid BSON document", doc);
	bool has_type = false;
	while (bson_iter_next(&iter)) {
		has_type = has_type || std::string(bson_iter_key(&iter)) == "operationType";
		ReadEventField(&iter, &event);
	}
	if (!event.resume_token)
		throw MalformedEvent("no _id (resume token)", doc);
	if (!has_type)
		throw MalformedEvent("no operationType", doc);
	if (!event.txn_number)
		event.lsid.reset(); // an lsid alone (a retryable write) is not a transaction
	event.raw = CopyBson(doc);
	return event;
}

ChangeStreamReader::ChangeStreamReader(Source &source, StreamOptions options, const Position &start)
	: source_(source), options_(std::move(options)) {
	Open(start);
}

void ChangeStreamReader::Open(const Position &start) {
	if (options_.namespaces.empty())
		throw Error(sqlstate::kInvalidParameterValue, "a change stream needs at least one namespace");
	Bson opts = NewBson();
	switch (start.kind) {
	case Position::Kind::kResumeAfter:
		BSON_APPEND_DOCUMENT(opts.get(), "resumeAfter", start.token.get());
		break;
	case Position::Kind::kStartAfter:
		BSON_APPEND_DOCUMENT(opts.get(), "startAfter", start.token.get());
		break;
	case Position::Kind::kOperationTime:
		BSON_APPEND_TIMESTAMP(opts.get(), "startAtOperationTime", start.time.t, start.time.i);
		break;
	case Position::Kind::kOplogAfter: {
		Timestamp after = AfterOplogTime(start.time);
		BSON_APPEND_TIMESTAMP(opts.get(), "startAtOperationTime", after.t, after.i);
		break;
	}
	case Position::Kind::kNow:
		break;
	}
	if (options_.update_lookup)
		BSON_APPEND_UTF8(opts.get(), "fullDocument", "updateLookup");
	if (options_.max_await_ms > 0)
		BSON_APPEND_INT64(opts.get(), "maxAwaitTimeMS", options_.max_await_ms);
	if (options_.batch_size > 0)
		BSON_APPEND_INT32(opts.get(), "batchSize", options_.batch_size);

	// "now" is pinned before opening, in case the server reports no high-water mark.
	Timestamp now;
	if (start.kind == Position::Kind::kNow) {
		now = source_.CommittedTime();
		if (now.IsZero())
			now = source_.OperationTime();
	}

	Bson pipeline = BuildStreamPipeline(options_.namespaces);
	const Namespace &first = options_.namespaces.front();
	const StreamScope scope = ChooseScope(options_.namespaces, options_.scope);
	CheckScope(options_.namespaces, scope);
	switch (scope) {
	case StreamScope::kCollection:
		collection_.reset(mongoc_client_get_collection(source_.Handle(), first.db.c_str(), first.coll.c_str()));
		stream_.reset(mongoc_collection_watch(collection_.get(), pipeline.get(), opts.get()));
		break;
	case StreamScope::kDatabase:
		database_.reset(mongoc_client_get_database(source_.Handle(), first.db.c_str()));
		stream_.reset(mongoc_database_watch(database_.get(), pipeline.get(), opts.get()));
		break;
	case StreamScope::kAuto:
	case StreamScope::kCluster:
		stream_.reset(mongoc_client_watch(source_.Handle(), pipeline.get(), opts.get()));
		break;
	}
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_change_stream_error_document(stream_.get(), &error, &reply))
		source_.Fail("cannot open the change stream of \"" + first.db + (first.coll.empty() ? "" : "." + first.coll) +
						 "\"",
					 error, reply);

	if (start.kind != Position::Kind::kNow) {
		position_ = start;
	} else if (const bson_t *token = mongoc_change_stream_get_resume_token(stream_.get())) {
		position_ = Position::ResumeAfter(token);
	} else {
		position_ = Position::AtOperationTime(now);
	}
	// Nothing is read yet: a start at T (inclusive time or token) has not seen the events at T.
	reached_ = position_.kind == Position::Kind::kOplogAfter ? position_.time : position_.ClusterTime().Before();
}

bool ChangeStreamReader::Fetch(ChangeEvent *out) {
	if (pending_) {
		*out = std::move(*pending_);
		pending_.reset();
		return true;
	}
	const bson_t *doc = nullptr;
	const bool got = mongoc_change_stream_next(stream_.get(), &doc);
	if (got)
		*out = ParseChangeEvent(doc);
	bson_error_t error;
	const bson_t *reply = nullptr;
	const bool failed = !got && mongoc_change_stream_error_document(stream_.get(), &error, &reply);
	// libmongoc resumes the stream after each failed getMore (a new aggregate), within one call and
	// without telling, so a fault that persists is only seen through command monitoring: report it
	// (rather than creep along on what the resuming aggregates return, or blame what failed last).
	if (source_.GetMoreFailuresInRow() >= kMaxGetMoreFailuresInRow)
		throw SourceError(SourceErrorKind::kConnection, 0, sourcestate::kConnectionFailure,
						  "the change stream of \"" + options_.namespaces.front().db +
							  "\" keeps failing: " + std::to_string(source_.GetMoreFailuresInRow()) +
							  " getMore commands failed in a row (the driver resumed the stream after each)",
						  source_.LastGetMoreError());
	if (failed)
		source_.Fail("cannot read the change stream of \"" + options_.namespaces.front().db + "\"", error, reply);
	return got;
}

Batch ChangeStreamReader::NextBatch(size_t max_events, int64_t max_ms) {
	Batch batch;
	if (invalidated_) {
		batch.position = position_;
		batch.reached = reached_;
		batch.caught_up = true;
		batch.invalidated = true;
		return batch;
	}
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
	auto full = [&batch, max_events, deadline]() {
		return batch.events.size() >= max_events || std::chrono::steady_clock::now() >= deadline;
	};
	while (true) {
		if (!batch.events.empty() && full() && !batch.events.back().InTransaction())
			break;
		ChangeEvent event;
		if (!Fetch(&event)) {
			batch.caught_up = true;
			break;
		}
		if (!batch.events.empty() && full() && !batch.events.back().SameTransaction(event)) {
			pending_ = std::move(event);
			break;
		}
		const bool invalidate = event.op == OperationType::kInvalidate;
		batch.events.push_back(std::move(event));
		if (invalidate) {
			invalidated_ = batch.invalidated = true;
			break;
		}
	}
	Finish(&batch);
	return batch;
}

void ChangeStreamReader::Finish(Batch *batch) {
	const ChangeEvent *last = batch->events.empty() ? nullptr : &batch->events.back();
	if (batch->invalidated) {
		position_ = Position::StartAfter(last->resume_token.get());
	} else if (batch->caught_up && !pending_) {
		// Nothing read ahead: the stream's own token is the high-water mark of its last (empty) batch.
		if (const bson_t *token = mongoc_change_stream_get_resume_token(stream_.get()))
			position_ = Position::ResumeAfter(token);
		else if (last)
			position_ = Position::ResumeAfter(last->resume_token.get());
	} else if (last) {
		position_ = Position::ResumeAfter(last->resume_token.get());
	}
	Timestamp decoded = position_.ClusterTime();
	if (batch->caught_up && !pending_ && !decoded.IsZero()) {
		// A high-water-mark token at T says every event before T was returned; an event at T may
		// still come (a resume after the token delivers it), so only the instant before T is reached.
		decoded = decoded.Before();
	}
	if (last && last->cluster_time > decoded)
		decoded = last->cluster_time;
	if (decoded > reached_)
		reached_ = decoded;
	batch->position = position_;
	batch->reached = reached_;
}

} // namespace mongo_river::mongo
