// change_event.hpp: what the source readers produce: change events, batches and stream positions
// (PG-free). ChangeStreamReader and OplogReader both turn the source's history into these, so the
// apply stage sees one shape whichever capture the river uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

// Namespace is one mapped source: a collection, or (coll empty) every collection of a database.
struct Namespace {
	std::string db;
	std::string coll;

	// Covers tells whether a change of event_db.event_coll belongs to this namespace.
	bool Covers(const std::string &event_db, const std::string &event_coll) const {
		return db == event_db && (coll.empty() || coll == event_coll);
	}
};

// Position is where a reader starts and what the caller stores after applying a batch, in the same
// PostgreSQL transaction. Kinds:
//   kNow            start with changes made after the reader opens (never stored: a batch always
//                   reports a concrete position);
//   kOperationTime  every change whose cluster time is >= time (inclusive: the copy's start point);
//   kResumeAfter    change stream: every change after the event (or high-water mark) token;
//   kStartAfter     change stream: like kResumeAfter, but the token is an invalidate event's;
//   kOplogAfter     oplog: every entry whose ts is > time.
// A change stream reader accepts kOplogAfter (as startAtOperationTime {t, i+1}) and an oplog reader
// accepts tokens (as ts >= the token's cluster time), so a river can switch capture mode.
struct Position {
	enum class Kind { kNow, kOperationTime, kResumeAfter, kStartAfter, kOplogAfter };

	Kind kind = Kind::kNow;
	Bson token;     // kResumeAfter / kStartAfter: the resume token document ({_data: "82..."})
	Timestamp time; // kOperationTime / kOplogAfter
	// applied (kOplogAfter, zero when none): the changes of entries up to this ts were applied. An
	// oplog reader reads from time, before a transaction that waits for its end (prepared), while it
	// applies later entries; a reader started here collects the transaction again but skips what
	// was applied (review 24: a restart applied them twice). Its JSON: "appliedThrough".
	Timestamp applied;

	// Position copies own a copy of the token (Bson is a unique_ptr).
	Position() = default;
	Position(const Position &other);
	Position &operator=(const Position &other);
	Position(Position &&) = default;
	Position &operator=(Position &&) = default;

	// Now, AtOperationTime, ResumeAfter, StartAfter and OplogAfter build a position of each kind
	// (the token is copied).
	static Position Now() { return Position(); }
	static Position AtOperationTime(Timestamp time);
	static Position ResumeAfter(const bson_t *token);
	static Position StartAfter(const bson_t *token);
	static Position OplogAfter(Timestamp time);

	// ClusterTime returns the source time this position stands at: time, or the cluster time decoded
	// from the token (zero when the token is not in mongod's format).
	Timestamp ClusterTime() const;

	// ToJson returns the position as canonical Extended JSON text, e.g.
	// {"resumeAfter": {"_data": "8263..."}} or {"oplogAfter": {"$timestamp": {"t": 1, "i": 2}}}; store
	// it in a text (or bytea) column: jsonb would reorder a token's keys.
	std::string ToJson() const;
	// FromJson parses what ToJson produced; malformed text raises Error 22P02.
	static Position FromJson(const std::string &json);
};

// DecodeResumeTokenTime returns the cluster time inside a resume token: mongod (4.2+) encodes the
// token as {_data: "<hex KeyString>"} whose first value is the event's Timestamp: byte 0x82
// (KeyString CType kTimestamp = 130) followed by the 8-byte big-endian (t << 32 | i). Returns false
// for any other form (e.g. 3.6's BinData tokens).
bool DecodeResumeTokenTime(const bson_t *token, Timestamp *out);

// OperationType is a change event's operationType.
enum class OperationType { kInsert, kUpdate, kReplace, kDelete, kDrop, kRename, kDropDatabase, kInvalidate, kOther };

// OperationTypeName returns the change stream spelling of op ("insert", "update", ...).
const char *OperationTypeName(OperationType op);

// ParseOperationType maps a change stream operationType string to the enum (kOther if unknown).
OperationType ParseOperationType(const std::string &name);

// TruncatedArray is one entry of updateDescription.truncatedArrays: field (dotted) shrank to new_size.
struct TruncatedArray {
	std::string field;
	int64_t new_size = 0;
};

// ChangeEvent is one change of a mapped collection, in change stream terms.
struct ChangeEvent {
	OperationType op = OperationType::kOther;
	std::string db;
	std::string coll;                             // empty for dropDatabase and invalidate
	Bson document_key;                            // {_id: ...} (+ shard key fields) for insert/update/replace/delete
	Bson full_document;                           // insert/replace: the document; update: only with updateLookup
												  // (nullptr when the document was deleted since); else nullptr
	Bson updated_fields;                          // update: {"dotted.path": value, ...}
	std::vector<std::string> removed_fields;      // update: dotted paths
	std::vector<TruncatedArray> truncated_arrays; // update
	// exact_paths (update): splitting the dotted paths above at their dots gives their keys exactly (an
	// oplog update without dotted field names). A change stream's paths are never known to be exact:
	// "a.b" may be a field "a.b" (libmongoc 1.23 cannot ask for disambiguatedPaths).
	bool exact_paths = false;
	Timestamp cluster_time;              // the operation's (for a transaction: its commit's) cluster time
	std::optional<int64_t> wall_time_ms; // wallTime (ms since epoch) when the source gave it
	Bson lsid;                           // the transaction's session id, nullptr outside a transaction
	std::optional<int64_t> txn_number;   // the transaction's number
	std::string to_db;                   // rename: the new namespace
	std::string to_coll;
	Bson raw;          // unreadable events: the bytes as received; an oplog update's entry (its diff)
	Bson resume_token; // change stream: the event's _id; oplog: nullptr
	// unreadable, when not empty, says why the reader could not read this event: raw then holds the
	// bytes as received (an event document, or the rest of a server batch that is not valid BSON),
	// db/coll/op/resume_token whatever could be read of it. The apply stage rejects it (or stops).
	std::string unreadable;

	// InTransaction tells whether the event belongs to a MongoDB transaction.
	bool InTransaction() const { return lsid != nullptr && txn_number.has_value(); }
	// SameTransaction tells whether both events belong to one MongoDB transaction.
	bool SameTransaction(const ChangeEvent &other) const;
};

// kMaxBatchBytes bounds the BSON a batch of documents or events holds (readers end a batch early
// rather than grow past it), so that a worker's memory does not scale with batch_size x document size.
inline constexpr size_t kMaxBatchBytes = 4 * 1024 * 1024;

// FitReplyCount is how many documents (or events, or oplog entries) the next reply of a cursor asks
// for: what kMaxBatchBytes holds of the size seen (bytes / count), but at most at_most (the readers'
// growth bound: a few small documents say little of the next ones, and a tiny first document
// followed by 2 MiB ones made a getMore ask for 4 MiB / a few bytes, which the server filled to its
// 16 MiB), and at most configured when it is positive; 1 when nothing was seen; never above INT32_MAX.
int32_t FitReplyCount(size_t count, size_t bytes, size_t at_most, int32_t configured);

// EventBytes is the size of the documents an event carries (what counts toward kMaxBatchBytes).
inline size_t EventBytes(const ChangeEvent &event) {
	return (event.full_document ? event.full_document->len : 0) + (event.raw ? event.raw->len : 0);
}

// Batch is what NextBatch returns: apply events, then store position, in one PostgreSQL transaction.
struct Batch {
	std::vector<ChangeEvent> events;
	// position resumes right after this batch (the last event's token, the stream's high-water mark
	// when the source had nothing more, or the last oplog entry read); it moves forward on a quiet
	// source too, so store it even when events is empty.
	Position position;
	// reached is the source cluster time up to which everything has been read: compare it with
	// Source::OperationTime() to wait for "everything up to now applied". Zero when unknown.
	Timestamp reached;
	// caught_up is true when the batch ended because the source had nothing more right now.
	bool caught_up = false;
	// invalidated is true when the stream ended with an invalidate event (the last event): reopen a
	// reader from position (kStartAfter).
	bool invalidated = false;
};

} // namespace mongo_river::mongo
