// change_stream.cpp: the change stream reader: open at a position, batch events, never split a
// transaction, report the position to store.
#include "mongo_river/mongo/change_stream.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <utility>

#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/reply_check.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/mongo/stream_guard.hpp"

namespace mongo_river::mongo {

namespace {

// kMaxFailuresInRow is how many failed getMores in a row make the reader give up with a SourceError
// kConnection (so that the river shows the fault): the first one is resumed, the second is not.
constexpr int kMaxFailuresInRow = 2;

// kCursorNotFound is the server's CursorNotFound (43): resumable whatever the server's version.
constexpr int32_t kCursorNotFound = 43;

// kWireVersion44 is MongoDB 4.4's maxWireVersion: from it on, the server labels resumable change
// stream errors (ResumableChangeStreamError) and the label alone decides.
constexpr int32_t kWireVersion44 = 9;

// IsServerError tells whether error is one the server reported (a reply with ok: 0).
bool IsServerError(const bson_error_t &error) {
	return error.domain == MONGOC_ERROR_SERVER || error.domain == MONGOC_ERROR_QUERY ||
		   error.domain == MONGOC_ERROR_WRITE_CONCERN;
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

// ReplyDoc owns a bson_t that a driver call initializes (always, even on failure).
struct ChangeStreamReader::ReplyDoc {
	bson_t doc = BSON_INITIALIZER;
	ReplyDoc() = default;
	ReplyDoc(const ReplyDoc &) = delete;
	ReplyDoc &operator=(const ReplyDoc &) = delete;
	~ReplyDoc() { bson_destroy(&doc); }
};

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

ChangeStreamReader::ChangeStreamReader(Source &source, StreamOptions options, const Position &start)
	: source_(source), options_(std::move(options)) {
	try {
		Open(start);
	} catch (...) {
		KillCursor(); // the destructor does not run for a constructor that throws
		throw;
	}
}

ChangeStreamReader::~ChangeStreamReader() {
	KillCursor();
}

void ChangeStreamReader::Open(const Position &start) {
	if (options_.namespaces.empty())
		throw Error(sqlstate::kInvalidParameterValue, "a change stream needs at least one namespace");
	const Namespace &first = options_.namespaces.front();
	const StreamScope scope = ChooseScope(options_.namespaces, options_.scope);
	CheckScope(options_.namespaces, scope);
	name_ = first.db + (first.coll.empty() ? "" : "." + first.coll);
	cluster_ = scope == StreamScope::kCluster || scope == StreamScope::kAuto;
	db_ = cluster_ ? "admin" : first.db;
	coll_ = scope == StreamScope::kCollection ? first.coll : "";
	pipeline_ = BuildStreamPipeline(options_.namespaces);

	StartOption option = StartOption::kNone;
	skip_through_ = start.kind == Position::Kind::kOplogAfter ? start.applied : Timestamp();
	switch (start.kind) {
	case Position::Kind::kResumeAfter:
		option = StartOption::kResumeAfter;
		cached_token_ = CopyBson(start.token.get());
		break;
	case Position::Kind::kStartAfter:
		option = StartOption::kStartAfter;
		cached_token_ = CopyBson(start.token.get());
		start_after_ = true;
		break;
	case Position::Kind::kOperationTime:
		option = StartOption::kAtOperationTime;
		start_time_ = start.time;
		break;
	case Position::Kind::kOplogAfter:
		option = StartOption::kAtOperationTime;
		start_time_ = AfterOplogTime(start.time);
		break;
	case Position::Kind::kNow:
		break;
	}

	// "now" is pinned before opening, in case the server reports no high-water mark.
	Timestamp now;
	if (start.kind == Position::Kind::kNow) {
		now = source_.CommittedTime();
		if (now.IsZero())
			now = source_.OperationTime();
	}

	Reply failed;
	bson_error_t error;
	if (!Aggregate(option, cached_token_.get(), start_time_, &error, &failed))
		source_.Fail("cannot open the change stream of \"" + name_ + "\"", error, failed ? &failed->doc : nullptr);
	// Without a start option, a resume before any token is cached starts at the aggregate's
	// operationTime (change streams specification, "Resume Process").
	if (option == StartOption::kNone && !cached_token_)
		FindTimestamp(&reply_->doc, "operationTime", &start_time_);

	if (start.kind != Position::Kind::kNow) {
		position_ = start;
	} else if (cached_token_) {
		position_ = Position::ResumeAfter(cached_token_.get());
	} else {
		position_ = Position::AtOperationTime(now);
	}
	// Nothing is read yet: a start at T (inclusive time or token) has not seen the events at T.
	reached_ = position_.kind == Position::Kind::kOplogAfter ? position_.time : position_.ClusterTime().Before();
}

Bson ChangeStreamReader::CommandOpts() const {
	Bson opts = NewBson();
	BSON_APPEND_INT32(opts.get(), "serverId", static_cast<int32_t>(server_id_));
	bson_error_t ignored;
	if (session_)
		mongoc_client_session_append(session_.get(), opts.get(), &ignored);
	return opts;
}

bool ChangeStreamReader::Aggregate(StartOption option, const bson_t *token, Timestamp time, bson_error_t *error,
								   Reply *failed) {
	mongoc_client_t *client = source_.Handle();
	const mongoc_read_prefs_t *prefs = mongoc_client_get_read_prefs(client);
	// Server selection first, as the driver's watch does: the aggregate and every getMore of its
	// cursor go to the selected server.
	std::unique_ptr<mongoc_server_description_t, Deleter<mongoc_server_description_destroy>> server(
		mongoc_client_select_server(client, false, prefs, error));
	if (!server)
		return false;
	server_id_ = mongoc_server_description_id(server.get());
	bson_iter_t wire;
	const bson_t *hello = mongoc_server_description_hello_response(server.get());
	if (hello && bson_iter_init_find(&wire, hello, "maxWireVersion") && BSON_ITER_HOLDS_INT(&wire))
		max_wire_version_ = static_cast<int32_t>(bson_iter_as_int64(&wire));
	if (!session_) {
		// One session for the cursor's commands, not causally consistent (a causally consistent
		// session would add afterClusterTime to the aggregate), like the driver's implicit one.
		// Servers without sessions: none.
		std::unique_ptr<mongoc_session_opt_t, Deleter<mongoc_session_opts_destroy>> session_opts(
			mongoc_session_opts_new());
		mongoc_session_opts_set_causal_consistency(session_opts.get(), false);
		session_.reset(mongoc_client_start_session(client, session_opts.get(), nullptr));
	}

	Bson cmd = NewBson();
	if (coll_.empty())
		BSON_APPEND_INT32(cmd.get(), "aggregate", 1);
	else
		BSON_APPEND_UTF8(cmd.get(), "aggregate", coll_.c_str());
	bson_t stages;
	bson_t stage;
	bson_t spec;
	bson_append_array_begin(cmd.get(), "pipeline", -1, &stages);
	bson_append_document_begin(&stages, "0", -1, &stage);
	bson_append_document_begin(&stage, "$changeStream", -1, &spec);
	if (options_.update_lookup)
		BSON_APPEND_UTF8(&spec, "fullDocument", "updateLookup");
	switch (option) {
	case StartOption::kResumeAfter:
		BSON_APPEND_DOCUMENT(&spec, "resumeAfter", token);
		break;
	case StartOption::kStartAfter:
		BSON_APPEND_DOCUMENT(&spec, "startAfter", token);
		break;
	case StartOption::kAtOperationTime:
		BSON_APPEND_TIMESTAMP(&spec, "startAtOperationTime", time.t, time.i);
		break;
	case StartOption::kNone:
		break;
	}
	if (cluster_)
		BSON_APPEND_BOOL(&spec, "allChangesForCluster", true);
	bson_append_document_end(&stage, &spec);
	bson_append_document_end(&stages, &stage);
	int index = 1;
	bson_iter_t iter;
	bson_iter_t item;
	if (bson_iter_init_find(&iter, pipeline_.get(), "pipeline") && bson_iter_recurse(&iter, &item)) {
		while (bson_iter_next(&item)) {
			const std::string key = std::to_string(index++);
			bson_append_value(&stages, key.c_str(), -1, bson_iter_value(&item));
		}
	}
	bson_append_array_end(cmd.get(), &stages);
	bson_t cursor;
	bson_append_document_begin(cmd.get(), "cursor", -1, &cursor);
	// The first batch of a stream with no event read yet is one event (their size is unknown: a
	// backlog could fill a 16 MiB reply); a reopened stream's is what FittedBatchSize says.
	asked_ = FittedBatchSize();
	BSON_APPEND_INT32(&cursor, "batchSize", asked_);
	bson_append_document_end(cmd.get(), &cursor);

	Bson opts = CommandOpts();
	const mongoc_read_concern_t *read_concern = mongoc_client_get_read_concern(client);
	if (const char *level = read_concern ? mongoc_read_concern_get_level(read_concern) : nullptr) {
		bson_t rc;
		bson_append_document_begin(opts.get(), "readConcern", -1, &rc);
		BSON_APPEND_UTF8(&rc, "level", level);
		bson_append_document_end(opts.get(), &rc);
	}
	// mongoc_client_command_with_opts, not ..._read_command_...: no hidden retry of the aggregate
	// (a retry may go to another server than the one the getMores are pinned to).
	Reply reply = std::make_unique<ReplyDoc>();
	if (!mongoc_client_command_with_opts(client, db_.c_str(), cmd.get(), prefs, opts.get(), &reply->doc, error)) {
		connection_ok_ = IsServerError(*error);
		*failed = std::move(reply);
		return false;
	}
	connection_ok_ = true;
	LoadBatch(std::move(reply), "firstBatch");
	// The getMore's "collection": the cursor's namespace after its database ("$cmd.aggregate" for
	// database and cluster streams).
	const std::string ns = FindString(&reply_->doc, "cursor.ns");
	const std::string::size_type dot = ns.find('.');
	cursor_coll_ = dot != std::string::npos ? ns.substr(dot + 1) : (coll_.empty() ? "$cmd.aggregate" : coll_);
	return true;
}

void ChangeStreamReader::LoadBatch(Reply reply, const char *batch) {
	reply_ = std::move(reply);
	batch_left_ = false;
	batch_token_.reset();
	const bson_t *doc = &reply_->doc;
	bson_iter_t cursor;
	bson_iter_t field;
	if (!bson_iter_init_find(&cursor, doc, "cursor") || !BSON_ITER_HOLDS_DOCUMENT(&cursor) ||
		!bson_iter_recurse(&cursor, &field))
		throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
						  "cannot read the change stream of \"" + name_ + "\": a reply without a cursor",
						  ToRelaxedJson(doc));
	while (bson_iter_next(&field)) {
		const char *key = bson_iter_key(&field);
		if (std::strcmp(key, "id") == 0 && BSON_ITER_HOLDS_INT(&field))
			cursor_id_ = bson_iter_as_int64(&field);
		else if (std::strcmp(key, "postBatchResumeToken") == 0 && BSON_ITER_HOLDS_DOCUMENT(&field))
			batch_token_ = BsonFromIter(&field);
		else if (std::strcmp(key, batch) == 0 && BSON_ITER_HOLDS_ARRAY(&field)) {
			batch_left_ = bson_iter_recurse(&field, &batch_);
			bson_iter_array(&field, &batch_len_, &batch_data_);
			bson_iter_t count = batch_;
			size_t events = 0;
			while (bson_iter_next(&count))
				++events;
			if (events > 0) { // the size of the events fits the next getMore's batch size
				reply_events_ = events;
				reply_bytes_ = batch_len_;
			}
			reply_full_ = asked_ > 0 && events >= size_t(asked_);
		}
	}
	if (!batch_left_)
		throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
						  "cannot read the change stream of \"" + name_ + "\": a reply without " + batch,
						  "cursor " + std::to_string(cursor_id_));
	// Change streams specification: "If an empty batch was returned and a postBatchResumeToken was
	// included, cache it."
	if (BatchEmpty() && batch_token_)
		cached_token_ = CopyBson(batch_token_.get());
}

bool ChangeStreamReader::BatchEmpty() const {
	bson_iter_t peek = batch_;
	// A rest that is not valid BSON (err_off set) is not empty: NextInBatch reports it.
	return !batch_left_ || (!bson_iter_next(&peek) && peek.err_off == 0);
}

bool ChangeStreamReader::NextInBatch(ChangeEvent *out) {
	if (!batch_left_)
		return false;
	if (!bson_iter_next(&batch_)) {
		batch_left_ = false;
		if (batch_.err_off == 0)
			return false;
		// The rest of the batch is not valid BSON: nothing in it can be read, not even where its
		// events end. It becomes one unreadable event holding the whole batch as received; the
		// stream goes on after the batch's postBatchResumeToken.
		*out = ChangeEvent();
		out->unreadable = "the source sent a batch of the change stream of \"" + name_ +
						  "\" that is not valid BSON (from byte " + std::to_string(batch_.err_off) +
						  " of the batch on; cursor " + std::to_string(cursor_id_) + ")";
		if (batch_data_)
			out->raw = Bson(bson_new_from_data(batch_data_, batch_len_));
		if (!out->raw && batch_data_) {
			// bson_new_from_data refuses invalid BSON: keep the bytes in a binary field instead.
			out->raw = NewBson();
			bson_append_binary(out->raw.get(), "batch", -1, BSON_SUBTYPE_BINARY, batch_data_, batch_len_);
		}
		if (!cluster_) { // the stream's scope is all that is known of its namespace
			out->db = db_;
			out->coll = coll_;
		}
		if (batch_token_)
			cached_token_ = CopyBson(batch_token_.get());
		returned_any_ = true;
		failures_in_row_ = 0;
		return true;
	}
	uint32_t len = 0;
	const uint8_t *data = nullptr;
	bson_t doc;
	if (BSON_ITER_HOLDS_DOCUMENT(&batch_))
		bson_iter_document(&batch_, &len, &data);
	if (!data || !bson_init_static(&doc, data, len)) {
		*out = ChangeEvent();
		out->unreadable = std::string("malformed change event: element ") + bson_iter_key(&batch_) +
						  " of a batch of cursor " + std::to_string(cursor_id_) + " is not a document";
		out->raw = WrapValue("event", bson_iter_value(&batch_));
	} else {
		try {
			// The reply check left the batch's events to us (Frames::kCursorBatch), and we leave
			// their documents to ApplyDocument, which rejects a bad one as a document.
			std::string why;
			size_t used = 0;
			if (!CheckDocument(data, len, &used, &why, Frames::kEventDocuments))
				throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
								  "malformed change event: not valid BSON: " + why);
			*out = ParseChangeEvent(&doc);
		} catch (const SourceError &e) {
			if (e.Kind() != SourceErrorKind::kMalformed)
				throw;
			// Keep what can be read: the namespace (for the reject's source) and a readable token.
			*out = ChangeEvent();
			out->unreadable = e.Message();
			out->raw = CopyBson(&doc);
			out->db = FindString(&doc, "ns.db");
			out->coll = FindString(&doc, "ns.coll");
			if (out->db.empty() && !cluster_) { // the stream's scope is all that is known of it
				out->db = db_;
				out->coll = coll_;
			}
			bson_iter_t id;
			if (bson_iter_init_find(&id, &doc, "_id") && BSON_ITER_HOLDS_DOCUMENT(&id))
				out->resume_token = BsonFromIter(&id);
			bson_iter_t type;
			if (bson_iter_init_find(&type, &doc, "operationType") && BSON_ITER_HOLDS_UTF8(&type))
				out->op = ParseOperationType(bson_iter_utf8(&type, nullptr));
			// The document's key, when it can be read, names the document in the reject.
			bson_iter_t key;
			if (bson_iter_init_find(&key, &doc, "documentKey") && BSON_ITER_HOLDS_DOCUMENT(&key)) {
				Bson document_key = BsonFromIter(&key);
				bson_iter_t id;
				if (document_key && bson_iter_init_find(&id, document_key.get(), "_id"))
					out->document_key = std::move(document_key);
			}
		}
	}
	bson_iter_t peek = batch_;
	const bool last = !bson_iter_next(&peek) && peek.err_off == 0;
	// Change streams specification, "Updating the Cached Resume Token": the batch's
	// postBatchResumeToken after its last document, else the document's _id. The cached token is
	// used only once the batch is used up (a resume, a caught-up position), so with a
	// postBatchResumeToken the _ids in between need not be copied. An event whose _id cannot be read
	// leaves the cached token as it was (the next event's, or the batch's postBatchResumeToken, moves
	// past it).
	if (last && batch_token_)
		cached_token_ = CopyBson(batch_token_.get());
	else if (!batch_token_ && out->resume_token)
		cached_token_ = CopyBson(out->resume_token.get());
	returned_any_ = true;
	failures_in_row_ = 0;      // the (resumed) cursor works
	start_time_ = Timestamp{}; // a token is cached from now on
	return true;
}

bool ChangeStreamReader::GetMore(bson_error_t *error, Reply *failed) {
	Bson cmd = NewBson();
	BSON_APPEND_INT64(cmd.get(), "getMore", cursor_id_);
	BSON_APPEND_UTF8(cmd.get(), "collection", cursor_coll_.c_str());
	asked_ = FittedBatchSize();
	BSON_APPEND_INT32(cmd.get(), "batchSize", asked_);
	// A batch in hand that goes on past a full reply does not wait for events the source has not
	// got: its events would wait too.
	if (continuing_ && reply_full_)
		BSON_APPEND_INT64(cmd.get(), "maxTimeMS", 1);
	else if (options_.max_await_ms > 0)
		BSON_APPEND_INT64(cmd.get(), "maxTimeMS", options_.max_await_ms);
	Bson opts = CommandOpts();
	mongoc_client_t *client = source_.Handle();
	reply_.reset(); // used up: free it before the next batch arrives
	Reply reply = std::make_unique<ReplyDoc>();
	if (!mongoc_client_command_with_opts(client, db_.c_str(), cmd.get(), mongoc_client_get_read_prefs(client),
										 opts.get(), &reply->doc, error)) {
		connection_ok_ = IsServerError(*error);
		*failed = std::move(reply);
		return false;
	}
	connection_ok_ = true;
	failures_in_row_ = 0;
	LoadBatch(std::move(reply), "nextBatch");
	return true;
}

int32_t ChangeStreamReader::FittedBatchSize() const {
	// Before any event: one (their size is unknown; a backlog could fill a 16 MiB reply). Then what
	// kMaxBatchBytes holds of events the size of the last batch's, at most twice that batch's events.
	return FitReplyCount(reply_events_, reply_bytes_, 2 * reply_events_, options_.batch_size);
}

bool ChangeStreamReader::IsResumable(const bson_error_t &error, const bson_t *reply) const {
	// Change streams specification, "Resumable Error": any error that is not a server error (a
	// network error, a timeout, no server to select), but not a failed authentication.
	if (!IsServerError(error))
		return error.domain != MONGOC_ERROR_CLIENT;
	const auto code = static_cast<int32_t>(error.code);
	if (code == kCursorNotFound || (reply && mongoc_error_has_label(reply, "ResumableChangeStreamError")))
		return true;
	return max_wire_version_ < kWireVersion44 && IsResumableCode(code);
}

void ChangeStreamReader::KillCursor() {
	if (cursor_id_ == 0)
		return;
	const int64_t id = cursor_id_;
	cursor_id_ = 0;
	// After a network error the connection is gone: reconnecting only to kill the cursor could
	// block for the connect timeout; the server reaps the idle cursor by itself.
	if (!connection_ok_)
		return;
	Bson cmd = NewBson();
	BSON_APPEND_UTF8(cmd.get(), "killCursors", cursor_coll_.c_str());
	bson_t cursors;
	bson_append_array_begin(cmd.get(), "cursors", -1, &cursors);
	BSON_APPEND_INT64(&cursors, "0", id);
	bson_append_array_end(cmd.get(), &cursors);
	Bson opts = CommandOpts();
	ReplyDoc reply;
	bson_error_t ignored;
	mongoc_client_t *client = source_.Handle();
	mongoc_client_command_with_opts(client, db_.c_str(), cmd.get(), mongoc_client_get_read_prefs(client), opts.get(),
									&reply.doc, &ignored);
}

void ChangeStreamReader::Recover(const bson_error_t &error, const bson_t *reply) {
	const std::string what = "cannot read the change stream of \"" + name_ + "\"";
	if (!IsResumable(error, reply) || InterruptRequested())
		source_.Fail(what, error, reply);
	const auto code = static_cast<int32_t>(error.code);
	std::string detail = source_.Scrubbed(error.message);
	if (IsServerError(error))
		detail += " (server error code " + std::to_string(code) + ")";
	if (++failures_in_row_ >= kMaxFailuresInRow)
		throw SourceError(SourceErrorKind::kConnection, IsServerError(error) ? code : 0,
						  sourcestate::kConnectionFailure,
						  "the change stream of \"" + name_ + "\" keeps failing: it failed again right after a resume",
						  "last error: " + detail + "; the one before the resume: " + first_failure_,
						  "The river retries; check the MongoDB server's health and the network.");
	first_failure_ = detail;
	// Resume once (change streams specification, "Resume Process"): kill the old cursor, then a new
	// aggregate from the cached token.
	KillCursor();
	StartOption option = StartOption::kNone;
	if (cached_token_)
		option = start_after_ && !returned_any_ ? StartOption::kStartAfter : StartOption::kResumeAfter;
	else if (!start_time_.IsZero())
		option = StartOption::kAtOperationTime;
	Reply failed;
	bson_error_t again;
	if (!Aggregate(option, cached_token_.get(), start_time_, &again, &failed))
		source_.Fail("cannot resume the change stream of \"" + name_ + "\" after a failed getMore", again,
					 failed ? &failed->doc : nullptr);
}

bool ChangeStreamReader::Fetch(ChangeEvent *out) {
	if (pending_) {
		*out = std::move(*pending_);
		pending_.reset();
		return true;
	}
	// Each round takes an event from the last batch, or runs one getMore: it returns, or it fails
	// and Recover resumes (once: a second failure in a row throws), so this loop is bounded.
	while (!NextInBatch(out)) {
		Reply failed;
		bson_error_t error;
		if (cursor_id_ == 0) {
			// The server closed the cursor without an invalidate: reopen it like after an error.
			bson_set_error(&error, MONGOC_ERROR_CURSOR, MONGOC_ERROR_CURSOR_INVALID_CURSOR,
						   "the server closed the change stream's cursor");
			Recover(error, nullptr);
		} else if (!GetMore(&error, &failed)) {
			Recover(error, failed ? &failed->doc : nullptr);
		} else if (BatchEmpty()) {
			return false; // nothing more right now
		}
	}
	return true;
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
	size_t bytes = 0;
	auto full = [&batch, &bytes, max_events, deadline]() {
		return batch.events.size() >= max_events || bytes >= kMaxBatchBytes ||
			   std::chrono::steady_clock::now() >= deadline;
	};
	while (true) {
		// A batch also ends with the server's batch unless that was full: the next getMore would wait
		// (up to max_await_ms) for events the source does not have yet, holding back those in hand.
		// After a full reply (a backlog, read with replies growing from one event) the batch goes on
		// with a getMore that does not wait, so the ramp's replies are one transaction, not ten.
		if (!batch.events.empty() && !batch.events.back().InTransaction() &&
			(full() || (!pending_ && BatchEmpty() && !reply_full_)))
			break;
		ChangeEvent event;
		continuing_ = !batch.events.empty();
		if (!Fetch(&event)) {
			batch.caught_up = true;
			break;
		}
		if (!skip_through_.IsZero() && event.unreadable.empty() && !event.cluster_time.IsZero()) {
			if (event.cluster_time <= skip_through_)
				continue; // applied before (see skip_through_); the position stays before it
			skip_through_ = Timestamp();
		}
		if (!batch.events.empty() && full() && !batch.events.back().SameTransaction(event)) {
			pending_ = std::move(event);
			break;
		}
		const bool invalidate = event.op == OperationType::kInvalidate;
		if (invalidate && !coll_.empty() && event.coll.empty()) {
			// A collection stream ends when its collection goes: the event names it, so that a
			// replacement no earlier event announced (renameCollection onto it) is seen too.
			event.db = db_;
			event.coll = coll_;
		}
		bytes += EventBytes(event);
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
	// last is the last event with a resume token (an unreadable event may have none).
	const ChangeEvent *last = nullptr;
	for (auto it = batch->events.rbegin(); it != batch->events.rend() && !last; ++it)
		if (it->resume_token)
			last = &*it;
	const bool ends_unreadable = !batch->events.empty() && !batch->events.back().resume_token;
	if (batch->invalidated && last) {
		position_ = Position::StartAfter(last->resume_token.get());
	} else if ((batch->caught_up || (ends_unreadable && BatchEmpty())) && !pending_) {
		// Nothing read ahead: the cached token is the high-water mark of the last server batch (past
		// an unreadable event that ended it).
		if (cached_token_)
			position_ = Position::ResumeAfter(cached_token_.get());
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
