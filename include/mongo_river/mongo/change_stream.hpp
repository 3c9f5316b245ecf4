// change_stream.hpp: follow a river's namespaces through a MongoDB change stream (PG-free).
//
// One stream per river, filtered server-side ($match on ns/to, so drop, rename, dropDatabase and
// invalidate events of the namespaces come through too). The stream is opened on the narrowest
// scope that covers the namespaces: one collection -> mongoc_collection_watch (its drop or rename
// invalidates the stream), one database -> mongoc_database_watch (dropDatabase invalidates it),
// several databases -> mongoc_client_watch. After an invalidate, Batch::invalidated is set and
// the caller reopens a reader from Batch::position (kStartAfter).
//
// Blocking: every getMore waits at most max_await_ms (default 500 ms) for new events, so
// NextBatch returns within about max_ms + max_await_ms and the worker can check its latch and
// SIGTERM between batches. Transactions: the events of one MongoDB transaction (same lsid and
// txnNumber) are never split across batches; the reader keeps one event of look-ahead for that.
//
// Errors: SourceError with Kind() kHistoryLost (ChangeStreamHistoryLost 286, resume token not
// found 280: resync), kConnection (network, failover: retry with backoff; libmongoc already
// resumed once on its own), anything else kServer with the server's code in the detail. After any
// error, destroy the reader (and, for kConnection, the Source) and open a new one from the position
// last stored: the reader's look-ahead event is not part of any stored position, so nothing is lost.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mongo_river/mongo/change_event.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

class Source;

// StreamScope is the level a change stream is opened at.
enum class StreamScope { kAuto, kCollection, kDatabase, kCluster };

// StreamOptions configures a ChangeStreamReader.
struct StreamOptions {
	std::vector<Namespace> namespaces; // what to follow; at least one
	StreamScope scope = StreamScope::kAuto;
	bool update_lookup = false; // fullDocument: "updateLookup" (update events carry the current document)
	int32_t max_await_ms = 500; // getMore's maxAwaitTimeMS: the longest one wait for new events blocks
	int32_t batch_size = 0;     // the server's cursor batch size (0: the server's default)
};

// ChooseScope returns the scope to open for namespaces (kAuto resolved as described above).
StreamScope ChooseScope(const std::vector<Namespace> &namespaces, StreamScope requested);

// BuildStreamPipeline returns {pipeline: [{$match: ...}]} selecting the events of namespaces:
// CRUD/drop/rename events whose ns (or rename target "to") is covered, dropDatabase of their
// databases, and invalidate.
Bson BuildStreamPipeline(const std::vector<Namespace> &namespaces);

// ParseChangeEvent turns one change stream document into a ChangeEvent (Error 22000 when it lacks
// _id or operationType).
ChangeEvent ParseChangeEvent(const bson_t *doc);

class ChangeStreamReader {
public:
	// ChangeStreamReader opens the stream at start (see Position): kResumeAfter -> resumeAfter,
	// kStartAfter -> startAfter, kOperationTime -> startAtOperationTime, kOplogAfter ->
	// startAtOperationTime just after it, kNow -> no start option. Throws SourceError at once when
	// the server refuses (e.g. history lost).
	ChangeStreamReader(Source &source, StreamOptions options, const Position &start);

	ChangeStreamReader(const ChangeStreamReader &) = delete;
	ChangeStreamReader &operator=(const ChangeStreamReader &) = delete;

	// NextBatch reads up to max_events events, waiting at most about max_ms (+ one max_await_ms)
	// for them; it ends early when the source has nothing more (caught_up), grows past max_events
	// (or max_ms) rather than split a transaction, and ends with an invalidate event. An empty
	// batch still carries a position that advances with the source (the high-water mark).
	Batch NextBatch(size_t max_events, int64_t max_ms);

	// Invalidated tells whether the stream has ended with an invalidate event.
	bool Invalidated() const { return invalidated_; }
	// CurrentPosition returns the position after the last batch returned (the start before any).
	const Position &CurrentPosition() const { return position_; }

private:
	// Open opens the stream at start and sets position_.
	void Open(const Position &start);
	// Fetch returns the next event (the look-ahead one first); false when the server returned an
	// empty batch.
	bool Fetch(ChangeEvent *out);
	// Finish sets batch's position and reached time once its events are chosen.
	void Finish(Batch *batch);

	Source &source_;
	StreamOptions options_;
	mongo::Collection collection_;
	mongo::Database database_;
	ChangeStream stream_;
	std::optional<ChangeEvent> pending_;
	Position position_;
	Timestamp reached_;
	bool invalidated_ = false;
};

} // namespace mongo_river::mongo
