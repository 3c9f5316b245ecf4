// copy.cpp: the initial copy's reader: a collection in _id order, resumable across _id types.
#include "mongo_river/mongo/copy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mongo_river::mongo {

namespace {

// The brackets of MongoDB's canonical type order (bsontypes.h canonicalizeBSONType).
enum Bracket : int {
	kMinKeyBracket = -1,
	kNullBracket = 5,
	kNumberBracket = 10,
	kStringBracket = 15,
	kObjectBracket = 20,
	kArrayBracket = 25,
	kBinaryBracket = 30,
	kOidBracket = 35,
	kBoolBracket = 40,
	kDateBracket = 45,
	kTimestampBracket = 47,
	kRegexBracket = 50,
	kDbPointerBracket = 55,
	kCodeBracket = 60,
	kCodeWScopeBracket = 65,
	kMaxKeyBracket = 100,
};

// OrBuilder appends the clauses {_id: {<op>: <value>}} of a $or array.
class OrBuilder {
public:
	// OrBuilder appends to array, an open $or array.
	explicit OrBuilder(bson_t *array) : array_(array) {}

	// Add appends {_id: {op: value}}, value written by append(doc, key).
	template <typename Append> void Add(const char *op, const Append &append) {
		std::string key = std::to_string(count_++);
		bson_t clause;
		bson_t cond;
		bson_append_document_begin(array_, key.c_str(), -1, &clause);
		bson_append_document_begin(&clause, "_id", -1, &cond);
		append(&cond, op);
		bson_append_document_end(&clause, &cond);
		bson_append_document_end(array_, &clause);
	}

	// Count returns how many clauses were appended.
	int Count() const { return count_; }

private:
	bson_t *array_;
	int count_ = 0;
};

// AddWholeBracket appends the clauses matching every _id of bracket (see copy.hpp).
void AddWholeBracket(OrBuilder *out, int bracket) {
	switch (bracket) {
	case kNullBracket:
		out->Add("$eq", [](bson_t *d, const char *k) { bson_append_null(d, k, -1); });
		break;
	case kNumberBracket:
		out->Add("$eq", [](bson_t *d, const char *k) {
			bson_append_double(d, k, -1, std::numeric_limits<double>::quiet_NaN());
		});
		out->Add("$gte", [](bson_t *d, const char *k) {
			bson_append_double(d, k, -1, -std::numeric_limits<double>::infinity());
		});
		break;
	case kStringBracket:
		out->Add("$gte", [](bson_t *d, const char *k) { bson_append_utf8(d, k, -1, "", 0); });
		break;
	case kObjectBracket:
		out->Add("$gte", [](bson_t *d, const char *k) {
			bson_t empty = BSON_INITIALIZER;
			bson_append_document(d, k, -1, &empty);
		});
		break;
	case kBinaryBracket:
		out->Add("$gte",
				 [](bson_t *d, const char *k) { bson_append_binary(d, k, -1, BSON_SUBTYPE_BINARY, nullptr, 0); });
		break;
	case kOidBracket:
		out->Add("$gte", [](bson_t *d, const char *k) {
			bson_oid_t zero;
			bson_oid_init_from_string(&zero, "000000000000000000000000");
			bson_append_oid(d, k, -1, &zero);
		});
		break;
	case kBoolBracket:
		out->Add("$gte", [](bson_t *d, const char *k) { bson_append_bool(d, k, -1, false); });
		break;
	case kDateBracket:
		out->Add("$gte", [](bson_t *d, const char *k) {
			bson_append_date_time(d, k, -1, std::numeric_limits<int64_t>::min());
		});
		break;
	case kTimestampBracket:
		out->Add("$gte", [](bson_t *d, const char *k) { bson_append_timestamp(d, k, -1, 0, 0); });
		break;
	case kDbPointerBracket:
	case kCodeBracket:
	case kCodeWScopeBracket:
	case kMaxKeyBracket: {
		const int32_t type = bracket == kDbPointerBracket ? BSON_TYPE_DBPOINTER
							 : bracket == kCodeBracket    ? BSON_TYPE_CODE
							 : bracket == kMaxKeyBracket  ? BSON_TYPE_MAXKEY
														  : BSON_TYPE_CODEWSCOPE;
		out->Add("$type", [type](bson_t *d, const char *k) { bson_append_int32(d, k, -1, type); });
		break;
	}
	default: // MinKey is never "later"; arrays and regexes cannot be _ids
		break;
	}
}

// IsNaN tells whether value is a double or Decimal128 NaN.
bool IsNaN(const bson_value_t *value) {
	if (value->value_type == BSON_TYPE_DOUBLE)
		return std::isnan(value->value.v_double);
	if (value->value_type == BSON_TYPE_DECIMAL128) {
		char text[BSON_DECIMAL128_STRING];
		bson_decimal128_to_string(&value->value.v_decimal128, text);
		return std::string(text) == "NaN";
	}
	return false;
}

// AddRestOfBracket appends the clause matching the _ids of last's bracket that sort after last.
void AddRestOfBracket(OrBuilder *out, const bson_value_t *last) {
	const int bracket = IdBracket(last->value_type);
	if (bracket == kMinKeyBracket || bracket == kNullBracket || bracket == kMaxKeyBracket)
		return; // one value per bracket
	if (IsNaN(last)) {
		out->Add("$gte", [](bson_t *d, const char *k) {
			bson_append_double(d, k, -1, -std::numeric_limits<double>::infinity());
		});
		return;
	}
	out->Add("$gt", [last](bson_t *d, const char *k) { bson_append_value(d, k, -1, last); });
}

// kBracketOrder lists every bracket that can hold an _id, in sort order.
const int kBracketOrder[] = {kMinKeyBracket,    kNullBracket, kNumberBracket,     kStringBracket, kObjectBracket,
							 kBinaryBracket,    kOidBracket,  kBoolBracket,       kDateBracket,   kTimestampBracket,
							 kDbPointerBracket, kCodeBracket, kCodeWScopeBracket, kMaxKeyBracket};

} // namespace

int IdBracket(bson_type_t type) {
	switch (type) {
	case BSON_TYPE_MINKEY:
		return kMinKeyBracket;
	case BSON_TYPE_EOD:
	case BSON_TYPE_UNDEFINED:
	case BSON_TYPE_NULL:
		return kNullBracket;
	case BSON_TYPE_DOUBLE:
	case BSON_TYPE_INT32:
	case BSON_TYPE_INT64:
	case BSON_TYPE_DECIMAL128:
		return kNumberBracket;
	case BSON_TYPE_UTF8:
	case BSON_TYPE_SYMBOL:
		return kStringBracket;
	case BSON_TYPE_DOCUMENT:
		return kObjectBracket;
	case BSON_TYPE_ARRAY:
		return kArrayBracket;
	case BSON_TYPE_BINARY:
		return kBinaryBracket;
	case BSON_TYPE_OID:
		return kOidBracket;
	case BSON_TYPE_BOOL:
		return kBoolBracket;
	case BSON_TYPE_DATE_TIME:
		return kDateBracket;
	case BSON_TYPE_TIMESTAMP:
		return kTimestampBracket;
	case BSON_TYPE_REGEX:
		return kRegexBracket;
	case BSON_TYPE_DBPOINTER:
		return kDbPointerBracket;
	case BSON_TYPE_CODE:
		return kCodeBracket;
	case BSON_TYPE_CODEWSCOPE:
		return kCodeWScopeBracket;
	case BSON_TYPE_MAXKEY:
		return kMaxKeyBracket;
	}
	return kMaxKeyBracket;
}

Bson BuildResumeFilter(const bson_value_t *last_id) {
	Bson filter = NewBson();
	if (!last_id)
		return filter;
	bson_t array;
	bson_append_array_begin(filter.get(), "$or", -1, &array);
	OrBuilder clauses(&array);
	AddRestOfBracket(&clauses, last_id);
	const int last_bracket = IdBracket(last_id->value_type);
	for (int bracket : kBracketOrder) {
		if (bracket > last_bracket)
			AddWholeBracket(&clauses, bracket);
	}
	bson_append_array_end(filter.get(), &array);
	if (clauses.Count() > 0)
		return filter;
	// Nothing sorts after last (MaxKey): a filter no document matches.
	Bson none = NewBson();
	bson_t cond;
	bson_t empty_list;
	bson_append_document_begin(none.get(), "_id", -1, &cond);
	bson_append_array_begin(&cond, "$in", -1, &empty_list);
	bson_append_array_end(&cond, &empty_list);
	bson_append_document_end(none.get(), &cond);
	return none;
}

CollectionScan::CollectionScan(Source &source, std::string db, std::string coll, const bson_t *resume_after,
							   int32_t batch_size)
	: source_(source), db_(std::move(db)), coll_(std::move(coll)), batch_size_(batch_size),
	  last_id_(CopyBson(resume_after)) {
	collection_.reset(mongoc_client_get_collection(source_.Handle(), db_.c_str(), coll_.c_str()));
}

void CollectionScan::Open() {
	bson_iter_t iter;
	const bson_value_t *last = nullptr;
	if (last_id_ && bson_iter_init_find(&iter, last_id_.get(), "_id"))
		last = bson_iter_value(&iter);
	Bson filter = BuildResumeFilter(last);
	// Majority reads: a document the copy sees can never be rolled back, just as every change the
	// stream delivers is majority-committed.
	Bson opts(BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "readConcern", "{", "level", "majority", "}"));
	// A scan's first find asks for one document: the server's replies hold up to 16 MiB (mongod) and
	// the size of the documents is not known yet; the getMores then ask for what fits (FitBatchSize),
	// and so does the find of a reopened cursor.
	if (cursor_batch_ <= 0)
		cursor_batch_ = 1;
	// int64: mongoc_cursor_set_batch_size overwrites only an int64 batchSize (an int32 one stays).
	BSON_APPEND_INT64(opts.get(), "batchSize", cursor_batch_);
	cursor_.reset(mongoc_collection_find_with_opts(collection_.get(), filter.get(), opts.get(), nullptr));
}

void CollectionScan::FitBatchSize(size_t docs, size_t bytes) {
	if (!cursor_ || docs == 0)
		return;
	// At most as many documents as the scan has read: the batch size at most doubles from one
	// getMore to the next (1, 1, 2, 4, ...), a few round trips more per scan.
	const int32_t fit = FitReplyCount(docs, bytes, std::max<size_t>(1, read_), batch_size_);
	if (int64_t(fit) == cursor_batch_)
		return;
	cursor_batch_ = fit;
	mongoc_cursor_set_batch_size(cursor_.get(), uint32_t(fit));
}

// kBorrowBytes: documents this large or larger are borrowed from the reply when they end a batch.
constexpr uint32_t kBorrowBytes = 64 * 1024;

Bson CollectionScan::Borrow(const bson_t *doc) {
	// bson_new_from_buffer makes a bson_t that reads *buf without owning it (bson_destroy frees the
	// bson_t only); buf and its length must outlive it: they are the scan's.
	borrowed_data_ = const_cast<uint8_t *>(bson_get_data(doc));
	borrowed_len_ = doc->len;
	Bson view(bson_new_from_buffer(&borrowed_data_, &borrowed_len_, nullptr, nullptr));
	return view ? std::move(view) : CopyBson(doc);
}

void CollectionScan::Remember(const bson_t *doc) {
	bson_iter_t iter;
	// A document without _id (it sorts first) is returned like the others, for the caller to reject;
	// the copy's resume point stays at the last _id.
	if (bson_iter_init_find(&iter, doc, "_id"))
		last_id_ = WrapValue("_id", bson_iter_value(&iter));
}

void CollectionScan::RememberLast(const std::vector<Bson> &docs) {
	// The last document with an _id, found from the end (only those without one, which sort first,
	// are skipped); LastId() is built once per batch, not per document.
	for (auto it = docs.rbegin(); it != docs.rend(); ++it) {
		bson_iter_t iter;
		if (bson_iter_init_find(&iter, it->get(), "_id")) {
			Remember(it->get());
			return;
		}
	}
}

std::vector<Bson> CollectionScan::NextBatch(size_t max_docs, size_t max_bytes) {
	std::vector<Bson> out;
	size_t bytes = 0;
	int reopened = 0;
	// The last document is borrowed from the cursor's reply until the cursor moves on: one that ends
	// the batch (a large one) is never copied.
	bool borrowed = false;
	while (!done_ && out.size() < max_docs && bytes < max_bytes) {
		if (!cursor_)
			Open();
		if (borrowed) {
			out.back() = CopyBson(out.back().get());
			borrowed = false;
		}
		const bson_t *doc = nullptr;
		if (mongoc_cursor_next(cursor_.get(), &doc)) {
			bytes += doc->len;
			++read_;
			// Small documents are copied at once (a borrowed one would be copied at the next read).
			borrowed = doc->len >= kBorrowBytes;
			out.push_back(borrowed ? Borrow(doc) : CopyBson(doc));
			reopened = 0;
			// The next getMore's size follows the documents seen: fitted at the first, then as
			// the count doubles (not at every document) and at the end of the batch.
			if ((out.size() & (out.size() - 1)) == 0)
				FitBatchSize(out.size(), bytes);
			continue;
		}
		RememberLast(out); // a reopened cursor starts after the documents read so far
		bson_error_t error;
		const bson_t *reply = nullptr;
		if (!mongoc_cursor_error_document(cursor_.get(), &error, &reply)) {
			done_ = true;
			break;
		}
		const std::string what = "cannot copy collection \"" + db_ + "." + coll_ + "\"";
		try {
			source_.Fail(what, error, reply);
		} catch (const SourceError &e) {
			const bool lost_cursor = e.ServerCode() == 43 || e.ServerCode() == 237; // CursorNotFound, CursorKilled
			if ((!e.Retryable() && !lost_cursor) || ++reopened > 3)
				throw;
		}
		cursor_.reset();
	}
	RememberLast(out);
	FitBatchSize(out.size(), bytes);
	last_borrowed_ = borrowed;
	return out;
}

void CollectionScan::RestartAfter(const bson_t *last_id) {
	cursor_.reset();
	last_id_ = CopyBson(last_id);
	done_ = false;
}

} // namespace mongo_river::mongo
