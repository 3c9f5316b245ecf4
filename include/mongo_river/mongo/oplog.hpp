// oplog.hpp: follow a river's namespaces by tailing local.oplog.rs (capture 'oplog') (PG-free).
//
// The reader tails the oplog with a tailable awaitData find
//   {ts: {$gt: <position>}, $or: [{ns: {$in: [<namespaces>]}}, {ns: /^<whole db>\./},
//                                 {ns: {$in: ["<db>.$cmd", "admin.$cmd"]}}, {op: "n"}]}
// (oplogReplay for 4.2's ts seek; maxAwaitTimeMS short, default 500 ms, so NextBatch returns in
// time for the latch and SIGTERM)
// and turns entries into the same ChangeEvents a change stream gives:
//   i -> insert (fullDocument = o); u with $v:2 -> update (the diff parsed into updatedFields,
//   removedFields, truncatedArrays); u with $v:1 / $set / $unset -> update; any other u ->
//   replace (fullDocument = o); d -> delete; c drop / renameCollection / dropDatabase -> DDL events;
//   c applyOps -> its inner operations, all with the entry's ts, lsid and txnNumber (partialTxn
//   chains are gathered until their last entry, prepared transactions until commitTransaction,
//   dropped on abortTransaction); n (no-op) -> no event, but the position advances. While such a
//   transaction is open the stored position stays before its first entry, so after a restart the
//   entries read meanwhile are read (and their events delivered) again.
// Update events have no fullDocument unless update_lookup is set (then the document is read by
// _id after the batch, like the change stream's updateLookup). The position is kOplogAfter(ts of
// the last entry read). Errors are SourceErrors as in change_stream.hpp; the oplog having rolled
// past the start position is kHistoryLost (checked at open against the oldest entry, and
// CappedPositionLost while tailing). Needs read access to the local database.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "mongo_river/mongo/change_event.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

class Source;

// OplogOptions configures an OplogReader.
struct OplogOptions {
	std::vector<Namespace> namespaces;
	bool update_lookup = false;
	int32_t max_await_ms = 500;
	int32_t batch_size = 0;
};

// TxnStep is what an oplog entry does to a transaction spread over several entries.
enum class TxnStep {
	kNone,    // not part of one, or a transaction's last applyOps (completes it)
	kPending, // applyOps with partialTxn or prepare: its events wait for the transaction's end
	kCommit,  // commitTransaction of a prepared transaction: its events are applied now
	kAbort,   // abortTransaction: its waiting events are dropped
};

// OplogEntryEvents is what one oplog entry contributes: events (none for entries outside the
// namespaces, no-ops, index builds...) and its step in a multi-entry transaction.
struct OplogEntryEvents {
	std::vector<ChangeEvent> events;
	TxnStep txn_step = TxnStep::kNone;
	// unreadable: the entry could not be read; events holds its one unreadable event, and it takes
	// no part in any transaction (a commit without a ts commits nothing: review 25).
	bool unreadable = false;
};

// ConvertOplogEntry turns one oplog entry into change events of namespaces (see the file comment); an
// entry of a mapped namespace that cannot be read becomes one event with `unreadable` set.
OplogEntryEvents ConvertOplogEntry(const bson_t *entry, const std::vector<Namespace> &namespaces);

// BuildOplogFilter returns the find filter for entries after (inclusive: at or after) ts.
Bson BuildOplogFilter(const std::vector<Namespace> &namespaces, Timestamp ts, bool inclusive);

// OplogAssembler turns oplog entries, fed in oplog order, into the events to deliver now: those of
// a transaction spread over several entries (partialTxn chains, prepared transactions) are held
// until its last entry or commitTransaction, dropped on abortTransaction. Server-free, so the
// transaction rules are unit-tested.
class OplogAssembler {
public:
	explicit OplogAssembler(std::vector<Namespace> namespaces);
	// Feed converts one entry and returns the events complete after it. An entry whose ts is older
	// than an entry fed before (the oplog is in ts order: only a broken source does that) cannot be
	// placed on the river's timeline: its events come back unreadable (rejected, not lost).
	std::vector<ChangeEvent> Feed(const bson_t *entry);
	// Settled tells whether no transaction is open: only then may the last entry's ts be stored.
	bool Settled() const { return pending_.empty(); }
	// LastTimestamp returns the ts of the entry fed last (zero when it had none).
	Timestamp LastTimestamp() const { return last_ts_; }
	// StartAt says where the reading starts: an entry older than from goes back too (review 27: the
	// first entry after a restart, or after a copy, going back was not noticed).
	void StartAt(Timestamp from) {
		if (newest_ < from)
			newest_ = from;
	}

private:
	// Assemble is Feed for an entry in order.
	std::vector<ChangeEvent> Assemble(const bson_t *entry);

	std::vector<Namespace> namespaces_;
	Timestamp last_ts_;
	Timestamp newest_;                                        // the newest ts fed
	bool going_back_ = false;                                 // the entry fed last (or its transaction) went back
	std::set<std::string> going_back_txns_;                   // open transactions with an entry that went back
	std::map<std::string, std::vector<ChangeEvent>> pending_; // by lsid + txnNumber
};

class OplogReader {
public:
	// OplogReader starts at start: kOplogAfter -> ts > time; kOperationTime -> ts >= time; a resume
	// token -> ts >= its decoded cluster time (Error 22023 if it cannot be decoded); kNow -> after
	// the majority commit point (Source::CommittedTime). Throws SourceError kHistoryLost if the
	// oplog no longer reaches back there.
	OplogReader(Source &source, OplogOptions options, const Position &start);

	OplogReader(const OplogReader &) = delete;
	OplogReader &operator=(const OplogReader &) = delete;

	// NextBatch returns the events of the next entries: at least max_events (an entry's events,
	// e.g. a transaction's, are never split) or what arrived within about max_ms (+ one
	// max_await_ms), ending early once the events hold kMaxBatchBytes of BSON; caught_up when the
	// oplog had nothing more.
	Batch NextBatch(size_t max_events, int64_t max_ms);

	// CurrentPosition returns the position after the last batch returned (the start before any).
	const Position &CurrentPosition() const { return position_; }

private:
	// Open starts the tailable cursor after position_ (inclusive_ for the first open).
	void Open();
	// Edge returns the ts of the oldest (newest when newest) oplog entry; zero if the oplog is empty.
	Timestamp Edge(bool newest);
	// NextEntry returns the next matching entry, a view into the cursor's reply valid until the next
	// call (Consume copies what its events keep); nullptr when the cursor returned an empty batch (or
	// died and will be reopened).
	const bson_t *NextEntry();
	// Consume adds one entry's events to batch and advances the position.
	void Consume(const bson_t *entry, Batch *batch);
	// LookUp fills the fullDocument of update events from the current documents.
	void LookUp(std::vector<ChangeEvent> *events);
	// FitBatchSize sets the batch size of the cursor's next getMore (FitReplyCount) to what
	// kMaxBatchBytes holds of entries the size of those read since the last fit, at most the entries
	// read so far (it at most doubles from one getMore to the next) and at most options_.batch_size.
	void FitBatchSize();

	Source &source_;
	OplogOptions options_;
	OplogAssembler assembler_;
	mongo::Collection oplog_;
	Cursor cursor_;
	Position position_;        // kOplogAfter(ts of the last entry fully consumed), or the start
	Timestamp cursor_from_;    // the next open reads entries after (inclusive_: at or after) this ts
	bool inclusive_;           // the next open uses $gte (a start from a time or token, before any entry)
	Timestamp skip_through_;   // the start's applied: events of entries up to it were applied already
	size_t entries_read_ = 0;  // by every cursor of this reader
	size_t fit_entries_ = 0;   // read since the last FitBatchSize
	size_t fit_bytes_ = 0;     // their BSON
	int64_t cursor_batch_ = 1; // the batch size the cursor asks for (1 before any entry: sizes unknown)
};

} // namespace mongo_river::mongo
