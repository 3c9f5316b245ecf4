// oplog.cpp: tail local.oplog.rs and turn its entries into change events.
#include "mongo_river/mongo/oplog.hpp"

#include <cctype>
#include <chrono>
#include <set>

#include "mongo_river/mongo/diff.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/reply_check.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mongo_river::mongo {

namespace {

// EntryContext is what every event of one oplog entry (applyOps included) shares.
struct EntryContext {
	Timestamp ts;
	std::optional<int64_t> wall_ms;
	const bson_t *lsid = nullptr;
	std::optional<int64_t> txn_number;
	// in_apply_ops is set for the operations inside applyOps: only those belong to a transaction
	// (a plain CRUD entry with lsid and txnNumber is a retryable write, which change streams do not
	// mark either).
	bool in_apply_ops = false;
	int depth = 0; // applyOps nesting, bounded against hostile input
};

// SplitNs splits "db.coll" at its first dot (collection names may hold dots).
std::pair<std::string, std::string> SplitNs(const std::string &ns) {
	std::string::size_type dot = ns.find('.');
	if (dot == std::string::npos)
		return {ns, std::string()};
	return {ns.substr(0, dot), ns.substr(dot + 1)};
}

// Covered tells whether db.coll is one of namespaces (system collections never are).
bool Covered(const std::vector<Namespace> &namespaces, const std::string &db, const std::string &coll) {
	if (coll.rfind("system.", 0) == 0)
		return false;
	for (const Namespace &ns : namespaces) {
		if (ns.Covers(db, coll))
			return true;
	}
	return false;
}

// CoversDatabase tells whether any namespace lies in db.
bool CoversDatabase(const std::vector<Namespace> &namespaces, const std::string &db) {
	for (const Namespace &ns : namespaces) {
		if (ns.db == db)
			return true;
	}
	return false;
}

// OpFields are the fields of one operation (an entry, or an operation inside applyOps) that its
// events are made of, found in one pass over its keys (the first of a key given twice, as
// bson_iter_find). Views into the operation's bytes: they live as long as it does.
struct OpFields {
	std::string_view kind; // "op": "i", "u", "d", "c", "n"; empty when absent or not a string
	std::string_view ns;
	bson_iter_t o{};  // valid when has_o
	bson_iter_t o2{}; // valid when has_o2
	bool has_o = false;
	bool has_o2 = false;
	// The entry's own fields (unused inside applyOps).
	Timestamp ts;
	std::optional<int64_t> wall_ms;
	std::optional<int64_t> txn_number;
	bson_t lsid{}; // static view, valid when has_lsid
	bool has_lsid = false;
};

// StringField reads iter's value when it is a string, empty otherwise.
std::string_view StringField(const bson_iter_t *iter) {
	if (!BSON_ITER_HOLDS_UTF8(iter))
		return std::string_view();
	uint32_t len = 0;
	const char *s = bson_iter_utf8(iter, &len);
	return std::string_view(s, len);
}

// ReadOpFields fills *out from op's top-level fields.
void ReadOpFields(const bson_t *op, OpFields *out) {
	bson_iter_t iter;
	if (!op || !bson_iter_init(&iter, op))
		return;
	bool seen_kind = false, seen_ns = false, seen_ts = false, seen_wall = false, seen_txn = false, seen_lsid = false;
	while (bson_iter_next(&iter)) {
		const std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
		if (key == "op" && !seen_kind) {
			seen_kind = true;
			out->kind = StringField(&iter);
		} else if (key == "ns" && !seen_ns) {
			seen_ns = true;
			out->ns = StringField(&iter);
		} else if (key == "o" && !out->has_o) {
			out->has_o = true;
			out->o = iter;
		} else if (key == "o2" && !out->has_o2) {
			out->has_o2 = true;
			out->o2 = iter;
		} else if (key == "ts" && !seen_ts) {
			seen_ts = true;
			if (BSON_ITER_HOLDS_TIMESTAMP(&iter))
				bson_iter_timestamp(&iter, &out->ts.t, &out->ts.i);
		} else if (key == "wall" && !seen_wall) {
			seen_wall = true;
			if (BSON_ITER_HOLDS_DATE_TIME(&iter))
				out->wall_ms = bson_iter_date_time(&iter);
		} else if (key == "txnNumber" && !seen_txn) {
			seen_txn = true;
			if (BSON_ITER_HOLDS_INT(&iter))
				out->txn_number = bson_iter_as_int64(&iter);
		} else if (key == "lsid" && !seen_lsid) {
			seen_lsid = true;
			uint32_t len = 0;
			const uint8_t *data = nullptr;
			if (BSON_ITER_HOLDS_DOCUMENT(&iter))
				bson_iter_document(&iter, &len, &data);
			else if (BSON_ITER_HOLDS_ARRAY(&iter))
				bson_iter_array(&iter, &len, &data);
			out->has_lsid = data && bson_init_static(&out->lsid, data, len);
		}
	}
}

// SubDocument returns an owned copy of the document (or array) iter points at, nullptr when has is
// false or it holds another type.
Bson SubDocument(bool has, const bson_iter_t &iter) {
	return has ? BsonFromIter(&iter) : Bson();
}

// NewEvent returns an event of type op on db.coll carrying the entry's shared fields. It holds no
// copy of its entry: an insert's or a replacement's would hold its document twice (twice the
// reading and the memory); an update keeps its small entry (the diff), an unreadable one its bytes.
ChangeEvent NewEvent(OperationType op, const EntryContext &ctx, std::string db, std::string coll) {
	ChangeEvent event;
	event.op = op;
	event.db = std::move(db);
	event.coll = std::move(coll);
	event.cluster_time = ctx.ts;
	event.wall_time_ms = ctx.wall_ms;
	if (ctx.in_apply_ops && ctx.lsid && ctx.txn_number) {
		event.lsid = CopyBson(ctx.lsid);
		event.txn_number = ctx.txn_number;
	}
	return event;
}

// IdKey returns {_id: <doc's _id>}, nullptr when doc has none.
Bson IdKey(const bson_t *doc) {
	bson_iter_t iter;
	if (!doc || !bson_iter_init_find(&iter, doc, "_id"))
		return Bson();
	return WrapValue("_id", bson_iter_value(&iter));
}

// DescribeUpdate fills an update event from the entry's o: a $v:2 diff, or $v:1 modifiers.
void DescribeUpdate(const bson_t *o, ChangeEvent *event) {
	bson_iter_t iter;
	UpdateDescription desc;
	if (bson_iter_init_find(&iter, o, "diff") && BSON_ITER_HOLDS_DOCUMENT(&iter)) {
		Bson diff = BsonFromIter(&iter);
		desc = ParseDiff(diff.get());
	} else {
		desc = ParseModifierUpdate(o);
	}
	event->updated_fields = std::move(desc.updated_fields);
	event->removed_fields = std::move(desc.removed_fields);
	event->truncated_arrays = std::move(desc.truncated_arrays);
	event->exact_paths = desc.exact_paths;
}

// IsModifierUpdate tells whether an update entry's o describes changes ($v, $set...) rather
// than the whole new document.
bool IsModifierUpdate(const bson_t *o) {
	bson_iter_t iter;
	if (!bson_iter_init(&iter, o))
		return false;
	while (bson_iter_next(&iter)) {
		if (bson_iter_key(&iter)[0] == '$')
			return true;
	}
	return false;
}

void ConvertOp(const bson_t *op, const OpFields &fields, const EntryContext &ctx,
			   const std::vector<Namespace> &namespaces, OplogEntryEvents *out);

// ConvertCommand turns a command entry (op "c") into DDL events or, for applyOps, inner events.
void ConvertCommand(const bson_t *op, const bson_t *o, const std::string &db, const EntryContext &ctx,
					const std::vector<Namespace> &namespaces, OplogEntryEvents *out) {
	bson_iter_t iter;
	if (!o || !bson_iter_init(&iter, o) || !bson_iter_next(&iter))
		return;
	const std::string command = bson_iter_key(&iter);
	if (command == "applyOps") {
		bson_iter_t inner;
		EntryContext inner_ctx = ctx;
		inner_ctx.in_apply_ops = true;
		if (++inner_ctx.depth > 8)
			throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
							  "malformed oplog entry: applyOps nested too deeply", ToRelaxedJson(op));
		if (BSON_ITER_HOLDS_ARRAY(&iter) && bson_iter_recurse(&iter, &inner)) {
			while (bson_iter_next(&inner)) {
				if (!BSON_ITER_HOLDS_DOCUMENT(&inner))
					continue;
				uint32_t len = 0;
				const uint8_t *data = nullptr;
				bson_iter_document(&inner, &len, &data);
				bson_t inner_op;
				if (!bson_init_static(&inner_op, data, len))
					continue;
				OpFields inner_fields;
				ReadOpFields(&inner_op, &inner_fields);
				ConvertOp(&inner_op, inner_fields, inner_ctx, namespaces, out);
			}
		}
		bson_iter_t flag;
		const bool partial = bson_iter_init_find(&flag, o, "partialTxn") && bson_iter_as_bool(&flag);
		const bool prepare = bson_iter_init_find(&flag, o, "prepare") && bson_iter_as_bool(&flag);
		out->txn_step = partial || prepare ? TxnStep::kPending : TxnStep::kNone;
	} else if (command == "commitTransaction") {
		out->txn_step = TxnStep::kCommit;
	} else if (command == "abortTransaction") {
		out->txn_step = TxnStep::kAbort;
	} else if (command == "drop") {
		const std::string coll = FindString(o, "drop");
		if (Covered(namespaces, db, coll))
			out->events.push_back(NewEvent(OperationType::kDrop, ctx, db, coll));
	} else if (command == "renameCollection") {
		auto [from_db, from_coll] = SplitNs(FindString(o, "renameCollection"));
		auto [to_db, to_coll] = SplitNs(FindString(o, "to"));
		if (Covered(namespaces, from_db, from_coll) || Covered(namespaces, to_db, to_coll)) {
			ChangeEvent event = NewEvent(OperationType::kRename, ctx, from_db, from_coll);
			event.to_db = to_db;
			event.to_coll = to_coll;
			out->events.push_back(std::move(event));
		}
	} else if (command == "dropDatabase") {
		if (CoversDatabase(namespaces, db))
			out->events.push_back(NewEvent(OperationType::kDropDatabase, ctx, db, std::string()));
	}
}

// ConvertOp turns one operation (an entry, or an inner operation of applyOps) into events.
void ConvertOp(const bson_t *op, const OpFields &fields, const EntryContext &ctx,
			   const std::vector<Namespace> &namespaces, OplogEntryEvents *out) {
	const std::string_view kind = fields.kind;
	auto [db, coll] = SplitNs(std::string(fields.ns));
	Bson o = SubDocument(fields.has_o, fields.o);
	if (kind == "c") {
		ConvertCommand(op, o.get(), db, ctx, namespaces, out);
		return;
	}
	if ((kind != "i" && kind != "u" && kind != "d") || !Covered(namespaces, db, coll))
		return;
	if (!o)
		throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
						  "malformed oplog entry: no document in \"o\"", ToRelaxedJson(op));
	Bson o2 = SubDocument(fields.has_o2, fields.o2);
	if (kind == "i") {
		ChangeEvent event = NewEvent(OperationType::kInsert, ctx, db, coll);
		event.document_key = o2 ? std::move(o2) : IdKey(o.get());
		event.full_document = std::move(o);
		out->events.push_back(std::move(event));
	} else if (kind == "d") {
		ChangeEvent event = NewEvent(OperationType::kDelete, ctx, db, coll);
		event.document_key = std::move(o);
		out->events.push_back(std::move(event));
	} else if (IsModifierUpdate(o.get())) {
		ChangeEvent event = NewEvent(OperationType::kUpdate, ctx, db, coll);
		event.raw = CopyBson(op); // small: it holds the $v:2 diff as the server wrote it
		event.document_key = std::move(o2);
		DescribeUpdate(o.get(), &event);
		out->events.push_back(std::move(event));
	} else {
		ChangeEvent event = NewEvent(OperationType::kReplace, ctx, db, coll);
		event.document_key = o2 ? std::move(o2) : IdKey(o.get());
		event.full_document = std::move(o);
		out->events.push_back(std::move(event));
	}
}

// TransactionKey identifies the transaction an entry belongs to (lsid + txnNumber), "" if none.
std::string TransactionKey(const OpFields &fields) {
	if (!fields.txn_number)
		return std::string();
	return ToCanonicalJson(fields.has_lsid ? &fields.lsid : nullptr) + "/" + std::to_string(*fields.txn_number);
}

// RegexQuote escapes every character of s that is not alphanumeric, for a PCRE pattern.
std::string RegexQuote(const std::string &s) {
	std::string out;
	for (char c : s) {
		if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
			out += '\\';
		out += c;
	}
	return out;
}

// AppendNsClause appends {ns: {$in: values}} to the $or array.
void AppendNsIn(bson_t *array, int *count, const std::set<std::string> &values) {
	bson_t clause;
	bson_t cond;
	bson_t list;
	std::string key = std::to_string((*count)++);
	bson_append_document_begin(array, key.c_str(), -1, &clause);
	bson_append_document_begin(&clause, "ns", -1, &cond);
	bson_append_array_begin(&cond, "$in", -1, &list);
	int n = 0;
	for (const std::string &value : values) {
		std::string index = std::to_string(n++);
		bson_append_utf8(&list, index.c_str(), -1, value.c_str(), -1);
	}
	bson_append_array_end(&cond, &list);
	bson_append_document_end(&clause, &cond);
	bson_append_document_end(array, &clause);
}

} // namespace

namespace {

// ConvertEntry is ConvertOplogEntry for an entry whose fields were read.
OplogEntryEvents ConvertEntry(const bson_t *entry, const OpFields &fields, const std::vector<Namespace> &namespaces) {
	EntryContext ctx;
	ctx.ts = fields.ts;
	ctx.wall_ms = fields.wall_ms;
	ctx.txn_number = fields.txn_number;
	ctx.lsid = fields.has_lsid ? &fields.lsid : nullptr;
	OplogEntryEvents out;
	try {
		// The reply check left the batch's entries to us (Frames::kCursorBatch).
		std::string why;
		size_t used = 0;
		if (!CheckDocument(bson_get_data(entry), entry->len, &used, &why))
			throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
							  "malformed oplog entry: not valid BSON: " + why);
		ConvertOp(entry, fields, ctx, namespaces, &out);
		// Every entry has its time: one without is not where the position can move to (review 24:
		// it became 0,0 and a restart found it older than the oplog and resynced).
		if (fields.ts.IsZero() && (!out.events.empty() || out.txn_step != TxnStep::kNone))
			throw SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException,
							  "malformed oplog entry: no timestamp in \"ts\"");
	} catch (const SourceError &e) {
		if (e.Kind() != SourceErrorKind::kMalformed)
			throw;
		// An entry of a mapped namespace that cannot be read becomes one unreadable event (the apply
		// stage rejects it); the position moves past it with the entry's ts.
		auto [db, coll] = SplitNs(std::string(fields.ns));
		out = OplogEntryEvents();
		ChangeEvent event = NewEvent(OperationType::kOther, ctx, db, coll);
		event.raw = CopyBson(entry); // the reject keeps the entry's bytes
		event.lsid.reset();
		event.txn_number.reset();
		event.unreadable = e.Message();
		out.events.push_back(std::move(event));
		out.unreadable = true;
	}
	return out;
}

} // namespace

OplogEntryEvents ConvertOplogEntry(const bson_t *entry, const std::vector<Namespace> &namespaces) {
	OpFields fields;
	ReadOpFields(entry, &fields);
	return ConvertEntry(entry, fields, namespaces);
}

Bson BuildOplogFilter(const std::vector<Namespace> &namespaces, Timestamp ts, bool inclusive) {
	std::set<std::string> exact;
	std::set<std::string> commands = {"admin.$cmd"};
	std::set<std::string> whole_dbs;
	for (const Namespace &ns : namespaces) {
		commands.insert(ns.db + ".$cmd");
		if (ns.coll.empty())
			whole_dbs.insert(ns.db);
		else
			exact.insert(ns.db + "." + ns.coll);
	}
	Bson filter = NewBson();
	bson_t cond;
	bson_append_document_begin(filter.get(), "ts", -1, &cond);
	bson_append_timestamp(&cond, inclusive ? "$gte" : "$gt", -1, ts.t, ts.i);
	bson_append_document_end(filter.get(), &cond);
	bson_t clauses;
	int count = 0;
	bson_append_array_begin(filter.get(), "$or", -1, &clauses);
	if (!exact.empty())
		AppendNsIn(&clauses, &count, exact);
	for (const std::string &db : whole_dbs) {
		bson_t clause;
		std::string key = std::to_string(count++);
		bson_append_document_begin(&clauses, key.c_str(), -1, &clause);
		bson_append_regex(&clause, "ns", -1, ("^" + RegexQuote(db) + "\\.").c_str(), "");
		bson_append_document_end(&clauses, &clause);
	}
	AppendNsIn(&clauses, &count, commands);
	bson_t noop;
	std::string key = std::to_string(count++);
	bson_append_document_begin(&clauses, key.c_str(), -1, &noop);
	bson_append_utf8(&noop, "op", -1, "n", -1);
	bson_append_document_end(&clauses, &noop);
	bson_append_array_end(filter.get(), &clauses);
	return filter;
}

OplogReader::OplogReader(Source &source, OplogOptions options, const Position &start)
	: source_(source), options_(std::move(options)), assembler_(options_.namespaces), inclusive_(false) {
	if (options_.namespaces.empty())
		throw Error(sqlstate::kInvalidParameterValue, "an oplog reader needs at least one namespace");
	oplog_.reset(mongoc_client_get_collection(source_.Handle(), "local", "oplog.rs"));
	Timestamp from;
	switch (start.kind) {
	case Position::Kind::kNow:
		from = source_.CommittedTime();
		if (from.IsZero())
			from = Edge(true);
		break;
	case Position::Kind::kOplogAfter:
		from = start.time;
		break;
	case Position::Kind::kOperationTime:
		from = start.time;
		inclusive_ = true;
		break;
	case Position::Kind::kResumeAfter:
	case Position::Kind::kStartAfter:
		if (!DecodeResumeTokenTime(start.token.get(), &from))
			throw Error(sqlstate::kInvalidParameterValue, "cannot read the oplog from a change stream position",
						"The resume token " + ToRelaxedJson(start.token.get()) + " does not hold a cluster time.",
						"Resync the river, or switch it back to capture 'change_stream'.");
		inclusive_ = true;
		break;
	}
	position_ = start.kind == Position::Kind::kNow ? Position::OplogAfter(from) : start;
	assembler_.StartAt(from);
	if (start.kind == Position::Kind::kOplogAfter)
		skip_through_ = start.applied;
	if (start.kind != Position::Kind::kNow) {
		Timestamp oldest = Edge(false);
		if (!oldest.IsZero() && oldest > from)
			throw SourceError(
				SourceErrorKind::kHistoryLost, 286, sourcestate::kNotInPrerequisiteState,
				"cannot read the oplog: the stored position is no longer in the source's oplog",
				"position " + std::to_string(from.t) + "," + std::to_string(from.i) +
					" is older than the oldest oplog entry " + std::to_string(oldest.t) + "," +
					std::to_string(oldest.i),
				"The river must copy its collections again (resync); a larger oplog keeps history longer.");
	}
	cursor_from_ = from;
}

Timestamp OplogReader::Edge(bool newest) {
	Bson opts(BCON_NEW("sort", "{", "$natural", BCON_INT32(newest ? -1 : 1), "}", "limit", BCON_INT64(1), "projection",
					   "{", "ts", BCON_INT32(1), "}"));
	Bson filter = NewBson();
	Cursor cursor(mongoc_collection_find_with_opts(oplog_.get(), filter.get(), opts.get(), nullptr));
	const bson_t *doc = nullptr;
	Timestamp ts;
	if (mongoc_cursor_next(cursor.get(), &doc))
		FindTimestamp(doc, "ts", &ts);
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_cursor_error_document(cursor.get(), &error, &reply))
		source_.Fail("cannot read the oplog (local.oplog.rs)", error, reply);
	return ts;
}

void OplogReader::Open() {
	Bson filter = BuildOplogFilter(options_.namespaces, cursor_from_, inclusive_);
	// oplogReplay lets MongoDB 4.2 seek to the ts bound; 4.4+ does so on its own and ignores it.
	Bson opts(BCON_NEW("tailable", BCON_BOOL(true), "awaitData", BCON_BOOL(true), "oplogReplay", BCON_BOOL(true)));
	if (options_.max_await_ms > 0)
		BSON_APPEND_INT64(opts.get(), "maxAwaitTimeMS", options_.max_await_ms);
	// The first find asks for one entry (the server fills replies up to 16 MiB, and the entries'
	// size is not known yet); the getMores then ask for what fits (FitBatchSize). int64: what
	// mongoc_cursor_set_batch_size can overwrite (an int32 batchSize stays).
	BSON_APPEND_INT64(opts.get(), "batchSize", cursor_batch_);
	cursor_.reset(mongoc_collection_find_with_opts(oplog_.get(), filter.get(), opts.get(), nullptr));
}

void OplogReader::FitBatchSize() {
	if (!cursor_ || fit_entries_ == 0)
		return;
	const int32_t fit = FitReplyCount(fit_entries_, fit_bytes_, entries_read_, options_.batch_size);
	fit_entries_ = fit_bytes_ = 0;
	if (int64_t(fit) == cursor_batch_)
		return;
	cursor_batch_ = fit;
	mongoc_cursor_set_batch_size(cursor_.get(), uint32_t(fit));
}

const bson_t *OplogReader::NextEntry() {
	if (!cursor_)
		Open();
	const bson_t *doc = nullptr;
	if (mongoc_cursor_next(cursor_.get(), &doc)) {
		++entries_read_;
		++fit_entries_;
		fit_bytes_ += doc->len;
		if ((entries_read_ & (entries_read_ - 1)) == 0) // as the count doubles, and at each batch's end
			FitBatchSize();
		return doc;
	}
	bson_error_t error;
	const bson_t *reply = nullptr;
	if (mongoc_cursor_error_document(cursor_.get(), &error, &reply)) {
		Cursor failed = std::move(cursor_);
		source_.Fail("cannot read the oplog (local.oplog.rs)", error, reply);
	}
	if (!mongoc_cursor_more(cursor_.get()))
		cursor_.reset(); // a dead tailable cursor (e.g. nothing matched yet): reopen next time
	return nullptr;
}

OplogAssembler::OplogAssembler(std::vector<Namespace> namespaces) : namespaces_(std::move(namespaces)) {}

std::vector<ChangeEvent> OplogAssembler::Feed(const bson_t *entry) {
	going_back_ = false;
	std::vector<ChangeEvent> events = Assemble(entry);
	const Timestamp ts = last_ts_;
	const Timestamp was = newest_;
	if (newest_ < ts)
		newest_ = ts;
	if (!going_back_)
		return events;
	const std::string what = ts < was ? "the oplog entry's ts Timestamp(" + std::to_string(ts.t) + ", " +
											std::to_string(ts.i) + ") goes back"
									  : std::string("an entry of this transaction goes back");
	// Older than an entry read before: where its change belongs is unknown (an older one is in the
	// mapping's copy, so applying it could undo a later change; skipped, a change that is not there
	// is lost: review 25). Rejected with why, its document can be read again (retry_rejects).
	for (ChangeEvent &event : events) {
		if (!event.unreadable.empty())
			continue;
		event.unreadable = what + " (the reader was at Timestamp(" + std::to_string(was.t) + ", " +
						   std::to_string(was.i) + ")): the oplog is in ts order, this source is not";
		// The reject keeps what the change is about (its document, else its key: retry_rejects reads
		// it again), not the entry: one entry can hold thousands of a transaction's changes (review 27:
		// each reject held the whole entry).
		event.raw = CopyBson(event.full_document  ? event.full_document.get()
							 : event.document_key ? event.document_key.get()
												  : entry);
	}
	return events;
}

std::vector<ChangeEvent> OplogAssembler::Assemble(const bson_t *entry) {
	OpFields fields;
	ReadOpFields(entry, &fields);
	const Timestamp ts = last_ts_ = fields.ts;
	going_back_ = !ts.IsZero() && ts < newest_;
	OplogEntryEvents converted = ConvertEntry(entry, fields, namespaces_);
	std::vector<ChangeEvent> events;
	// Most entries are neither a step of a transaction nor read while one waits: they need no key
	// (a retryable write carries an lsid and a txnNumber too, and its key is Extended JSON).
	if ((converted.txn_step == TxnStep::kNone && pending_.empty()) || converted.unreadable)
		return std::move(converted.events);
	const std::string txn = TransactionKey(fields);
	auto waiting = pending_.find(txn);
	if (txn.empty() && converted.txn_step == TxnStep::kPending)
		converted.txn_step = TxnStep::kNone; // no session to wait on: deliver it as it is
	switch (converted.txn_step) {
	case TxnStep::kPending:
		if (going_back_)
			going_back_txns_.insert(txn); // its events, when it commits, go back too (review 27)
		for (ChangeEvent &event : converted.events)
			pending_[txn].push_back(std::move(event));
		pending_.emplace(txn, std::vector<ChangeEvent>()); // even with no event of ours
		return events;
	case TxnStep::kAbort:
		if (waiting != pending_.end())
			pending_.erase(waiting);
		going_back_txns_.erase(txn);
		return events;
	case TxnStep::kCommit:
	case TxnStep::kNone:
		if (!txn.empty() && waiting != pending_.end()) {
			events = std::move(waiting->second);
			pending_.erase(waiting);
			for (ChangeEvent &event : events)
				event.cluster_time = ts; // a transaction's events carry its commit time
			if (going_back_txns_.erase(txn))
				going_back_ = true; // an entry of it went back
		}
		break;
	}
	for (ChangeEvent &event : converted.events)
		events.push_back(std::move(event));
	return events;
}

void OplogReader::Consume(const bson_t *entry, Batch *batch) {
	std::vector<ChangeEvent> events = assembler_.Feed(entry);
	// The reader moves forward only: an entry without a ts, or one older than the last, leaves the
	// cursor's bound and the position where they were (a source's oplog is in ts order).
	const Timestamp ts = assembler_.LastTimestamp();
	const bool forward = !ts.IsZero() && ts >= cursor_from_;
	if (forward) {
		cursor_from_ = ts;
		inclusive_ = false;
	}
	// Read again from before a transaction that waited (the start's applied): what was applied then
	// is not applied twice; the transaction's own events come with its end, after applied.
	if (!forward || ts > skip_through_) {
		if (options_.update_lookup)
			LookUp(&events);
		for (ChangeEvent &event : events)
			batch->events.push_back(std::move(event));
	}
	// While a transaction waits for its end, the stored position stays before its first entry, and
	// says how far the entries after it were applied.
	if (!forward)
		return;
	if (assembler_.Settled()) {
		position_ = Position::OplogAfter(ts);
		return;
	}
	// A start from a time or a token (inclusive: a river switched from a change stream) becomes the
	// same place as an oplogAfter, which can say what was applied (review 25: it could not, and a
	// restart applied the entries after a waiting prepare again).
	if (position_.kind != Position::Kind::kOplogAfter)
		position_ = Position::OplogAfter(position_.ClusterTime().Before());
	if (ts > position_.applied)
		position_.applied = ts;
}

void OplogReader::LookUp(std::vector<ChangeEvent> *events) {
	for (ChangeEvent &event : *events) {
		bson_iter_t id;
		if (event.op == OperationType::kUpdate && event.document_key &&
			bson_iter_init_find(&id, event.document_key.get(), "_id"))
			event.full_document = source_.FindById(event.db, event.coll, bson_iter_value(&id), false);
	}
}

Batch OplogReader::NextBatch(size_t max_events, int64_t max_ms) {
	Batch batch;
	// The majority commit point before reading: every entry up to it is visible (no holes), so once
	// the cursor reports nothing more, every matching entry up to it has been read, and a quiet
	// river moves forward over other collections' writes instead of waiting for the server's
	// periodic no-op. (The newest entry by a reverse scan would not do: a reverse cursor can see
	// past a hole that forward readers still wait on.)
	const Timestamp newest = source_.CommittedTime();
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
	size_t bytes = 0;
	while (batch.events.size() < max_events && bytes < kMaxBatchBytes && std::chrono::steady_clock::now() < deadline) {
		const bson_t *entry = NextEntry();
		if (!entry) {
			batch.caught_up = true;
			break;
		}
		const size_t before = batch.events.size();
		Consume(entry, &batch);
		for (size_t i = before; i < batch.events.size(); i++)
			bytes += EventBytes(batch.events[i]);
		// Read up to the commit point taken before the batch: every entry up to it is in hand, so the
		// batch ends caught up here, as a change stream's ends with the server's batch. Reading on
		// would send a getMore that waits max_await_ms for entries the source does not have yet,
		// holding back those in hand (and the position a waiting wait_for_sync needs).
		if (!newest.IsZero() && cursor_from_ >= newest && assembler_.Settled()) {
			batch.caught_up = true;
			break;
		}
	}
	if (batch.caught_up && assembler_.Settled() && newest > position_.ClusterTime()) {
		position_ = Position::OplogAfter(newest);
		if (newest >= cursor_from_) {
			cursor_from_ = newest;
			inclusive_ = false;
		}
	}
	FitBatchSize();
	batch.position = position_;
	// Until an entry is consumed, a start at T (inclusive time or token) has not seen the entries at T.
	batch.reached = position_.kind == Position::Kind::kOplogAfter ? position_.time : position_.ClusterTime().Before();
	return batch;
}

} // namespace mongo_river::mongo
