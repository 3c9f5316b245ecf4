// change_event.cpp: positions (with their text form), resume token decoding, change event parsing
// and event helpers.
#include "mongo_river/mongo/change_event.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/errors.hpp"

namespace mongo_river::mongo {

namespace {

// HexNibble returns the value of one hexadecimal digit, or -1.
int HexNibble(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

// KindKey returns the key under which ToJson stores a position of kind.
const char *KindKey(Position::Kind kind) {
	switch (kind) {
	case Position::Kind::kNow:
		return "now";
	case Position::Kind::kOperationTime:
		return "operationTime";
	case Position::Kind::kResumeAfter:
		return "resumeAfter";
	case Position::Kind::kStartAfter:
		return "startAfter";
	case Position::Kind::kOplogAfter:
		return "oplogAfter";
	}
	return "now";
}

// BadPosition returns the error for a stored position text that FromJson cannot read.
Error BadPosition(const std::string &json, const std::string &why) {
	return Error(sqlstate::kInvalidTextRepresentation, "invalid stream position", why + ": " + json,
				 "A position looks like {\"resumeAfter\": {...}} or {\"oplogAfter\": {\"$timestamp\": ...}}.");
}

// MalformedEvent returns the error for a change event we cannot read.
SourceError MalformedEvent(const std::string &why, const bson_t *doc) {
	return SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException, "malformed change event: " + why,
					   ToRelaxedJson(doc));
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

} // namespace

Position::Position(const Position &other)
	: kind(other.kind), token(CopyBson(other.token.get())), time(other.time), applied(other.applied) {}

Position &Position::operator=(const Position &other) {
	if (this != &other) {
		kind = other.kind;
		token = CopyBson(other.token.get());
		time = other.time;
		applied = other.applied;
	}
	return *this;
}

Position Position::AtOperationTime(Timestamp time) {
	Position p;
	p.kind = Kind::kOperationTime;
	p.time = time;
	return p;
}

Position Position::ResumeAfter(const bson_t *token) {
	Position p;
	p.kind = Kind::kResumeAfter;
	p.token = CopyBson(token);
	return p;
}

Position Position::StartAfter(const bson_t *token) {
	Position p;
	p.kind = Kind::kStartAfter;
	p.token = CopyBson(token);
	return p;
}

Position Position::OplogAfter(Timestamp time) {
	Position p;
	p.kind = Kind::kOplogAfter;
	p.time = time;
	return p;
}

Timestamp Position::ClusterTime() const {
	Timestamp decoded;
	if (token && DecodeResumeTokenTime(token.get(), &decoded))
		return decoded;
	return time;
}

std::string Position::ToJson() const {
	Bson doc = NewBson();
	switch (kind) {
	case Kind::kNow:
		BSON_APPEND_BOOL(doc.get(), KindKey(kind), true);
		break;
	case Kind::kOperationTime:
	case Kind::kOplogAfter:
		BSON_APPEND_TIMESTAMP(doc.get(), KindKey(kind), time.t, time.i);
		if (kind == Kind::kOplogAfter && applied > time)
			BSON_APPEND_TIMESTAMP(doc.get(), "appliedThrough", applied.t, applied.i);
		break;
	case Kind::kResumeAfter:
	case Kind::kStartAfter:
		if (token)
			BSON_APPEND_DOCUMENT(doc.get(), KindKey(kind), token.get());
		else
			BSON_APPEND_DOCUMENT(doc.get(), KindKey(kind), NewBson().get());
		break;
	}
	return ToCanonicalJson(doc.get());
}

Position Position::FromJson(const std::string &json) {
	Bson doc = mongo::FromJson(json, "stream position");
	bson_iter_t iter;
	if (!bson_iter_init(&iter, doc.get()) || !bson_iter_next(&iter))
		throw BadPosition(json, "empty position");
	const std::string key = bson_iter_key(&iter);
	if (key == "now")
		return Position::Now();
	if (key == "operationTime" || key == "oplogAfter") {
		if (!BSON_ITER_HOLDS_TIMESTAMP(&iter))
			throw BadPosition(json, key + " is not a timestamp");
		Timestamp ts;
		bson_iter_timestamp(&iter, &ts.t, &ts.i);
		if (key == "operationTime")
			return AtOperationTime(ts);
		Position position = OplogAfter(ts);
		if (bson_iter_next(&iter)) {
			if (std::string(bson_iter_key(&iter)) != "appliedThrough" || !BSON_ITER_HOLDS_TIMESTAMP(&iter))
				throw BadPosition(json, "oplogAfter is followed by something other than appliedThrough");
			bson_iter_timestamp(&iter, &position.applied.t, &position.applied.i);
		}
		return position;
	}
	if (key == "resumeAfter" || key == "startAfter") {
		Bson token = BsonFromIter(&iter);
		if (!token || !BSON_ITER_HOLDS_DOCUMENT(&iter) || bson_count_keys(token.get()) == 0)
			throw BadPosition(json, key + " is not a resume token document");
		return key == "resumeAfter" ? ResumeAfter(token.get()) : StartAfter(token.get());
	}
	throw BadPosition(json, "unknown position kind \"" + key + "\"");
}

bool DecodeResumeTokenTime(const bson_t *token, Timestamp *out) {
	bson_iter_t iter;
	if (!token || !bson_iter_init_find(&iter, token, "_data") || !BSON_ITER_HOLDS_UTF8(&iter))
		return false;
	uint32_t len = 0;
	const char *hex = bson_iter_utf8(&iter, &len);
	if (len < 18)
		return false;
	uint8_t bytes[9];
	for (int k = 0; k < 9; ++k) {
		int hi = HexNibble(hex[2 * k]);
		int lo = HexNibble(hex[2 * k + 1]);
		if (hi < 0 || lo < 0)
			return false;
		bytes[k] = static_cast<uint8_t>(hi << 4 | lo);
	}
	if (bytes[0] != 0x82)
		return false;
	uint64_t value = 0;
	for (int k = 1; k < 9; ++k)
		value = value << 8 | bytes[k];
	out->t = static_cast<uint32_t>(value >> 32);
	out->i = static_cast<uint32_t>(value & 0xffffffffu);
	return true;
}

const char *OperationTypeName(OperationType op) {
	switch (op) {
	case OperationType::kInsert:
		return "insert";
	case OperationType::kUpdate:
		return "update";
	case OperationType::kReplace:
		return "replace";
	case OperationType::kDelete:
		return "delete";
	case OperationType::kDrop:
		return "drop";
	case OperationType::kRename:
		return "rename";
	case OperationType::kDropDatabase:
		return "dropDatabase";
	case OperationType::kInvalidate:
		return "invalidate";
	case OperationType::kOther:
		return "other";
	}
	return "other";
}

OperationType ParseOperationType(const std::string &name) {
	static const OperationType kAll[] = {
		OperationType::kInsert, OperationType::kUpdate, OperationType::kReplace,      OperationType::kDelete,
		OperationType::kDrop,   OperationType::kRename, OperationType::kDropDatabase, OperationType::kInvalidate};
	for (OperationType op : kAll) {
		if (name == OperationTypeName(op))
			return op;
	}
	return OperationType::kOther;
}

bool ChangeEvent::SameTransaction(const ChangeEvent &other) const {
	return InTransaction() && other.InTransaction() && *txn_number == *other.txn_number &&
		   bson_equal(lsid.get(), other.lsid.get());
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
	const bool crud = event.op == OperationType::kInsert || event.op == OperationType::kUpdate ||
					  event.op == OperationType::kReplace || event.op == OperationType::kDelete;
	if (crud && (event.db.empty() || event.coll.empty()))
		throw MalformedEvent("no ns (database and collection)", doc);
	if (!event.txn_number)
		event.lsid.reset(); // an lsid alone (a retryable write) is not a transaction
	// No raw copy of a readable event: it would hold its document a second time (an 8 MiB document
	// twice); only an unreadable event keeps raw, for its reject.
	return event;
}

int32_t FitReplyCount(size_t count, size_t bytes, size_t at_most, int32_t configured) {
	size_t fit = 1;
	if (count > 0) {
		const size_t per_document = std::max<size_t>(1, bytes / count);
		fit = std::max<size_t>(1, std::min(kMaxBatchBytes / per_document, at_most));
	}
	if (configured > 0)
		fit = std::min(fit, size_t(configured));
	return int32_t(std::min<size_t>(fit, size_t(std::numeric_limits<int32_t>::max())));
}

} // namespace mongo_river::mongo
