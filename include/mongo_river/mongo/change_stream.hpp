// change_stream.hpp: follow a river's namespaces through a MongoDB change stream (PG-free).
//
// One stream per river, filtered server-side ($match on ns/to, so drop, rename, dropDatabase and
// invalidate events of the namespaces come through too). The stream is opened on the narrowest
// scope that covers the namespaces: one collection -> {aggregate: "<coll>"} on its database (its
// drop or rename invalidates the stream), one database -> {aggregate: 1} on it (dropDatabase
// invalidates it), several databases -> {aggregate: 1} on admin with allChangesForCluster. After
// an invalidate, Batch::invalidated is set and the caller reopens a reader from Batch::position
// (kStartAfter).
//
// The reader runs the change stream's cursor itself (aggregate, getMore, killCursors as plain
// commands, not libmongoc's watch helpers, whose mongoc_change_stream_next resumes without bound
// inside one call when every getMore fails): every getMore goes to the server that answered the
// aggregate, all of the cursor's commands carry one client session (not causally consistent, as
// the driver's implicit one), and the client's read concern is sent only when the URI sets one
// (readConcernLevel), as the driver's watch does. The resume token is cached as the change
// streams specification says (the last event's _id, or the batch's postBatchResumeToken at the
// end of a batch and on an empty batch).
//
// Blocking: every getMore waits at most max_await_ms (default 500 ms) for new events, so
// NextBatch returns within about max_ms + max_await_ms (plus, when the server is in trouble, one
// resume: the client's server selection, connect and socket timeouts) and the worker can check its
// latch and SIGTERM between batches. Transactions: the events of one MongoDB transaction (same
// lsid and txnNumber) are never split across batches; the reader keeps one event of look-ahead for
// that.
//
// Errors: a resumable getMore failure (network error or timeout, a server error labelled
// ResumableChangeStreamError, CursorNotFound, or for servers older than 4.4 a code IsResumableCode
// lists) is absorbed by one resume: killCursors (best effort), then a new aggregate from the cached
// token (resumeAfter; startAfter when the reader opened with startAfter and has returned no event
// yet; startAtOperationTime of the start when no token is cached). If the resumed stream fails
// again before a getMore succeeds or an event comes, NextBatch throws SourceError kConnection
// ("... keeps failing", both errors in the detail) instead of resuming again; a failing resume
// aggregate throws as classified. Other failures throw as classified by ThrowDriverError:
// kHistoryLost (ChangeStreamHistoryLost 286, resume token not found 280: resync), kConnection
// (network, failover: retry with backoff), anything else kServer with the server's code in the
// detail. After any error, destroy the reader (and, for kConnection, the Source) and open a new one
// from the position last stored: the reader's look-ahead event is not part of any stored position,
// so nothing is lost. The destructor kills the server cursor (best effort).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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
	int32_t max_await_ms = 500; // getMore's maxTimeMS (the change stream's maxAwaitTimeMS): the longest
								// one wait for new events blocks (0: the server's default, 1 s)
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
	// ~ChangeStreamReader kills the server cursor (best effort: errors are ignored, and nothing is
	// sent after a network error) and ends the reader's client session.
	~ChangeStreamReader();

	ChangeStreamReader(const ChangeStreamReader &) = delete;
	ChangeStreamReader &operator=(const ChangeStreamReader &) = delete;

	// NextBatch reads up to max_events events (or kMaxBatchBytes of them), waiting at most about
	// max_ms (+ one max_await_ms) for them; it ends early when the source has nothing more
	// (caught_up), or once it holds events and the server's batch is used up (another getMore would
	// wait for events the source does not have yet); it grows past these limits rather than split a
	// transaction, and ends with an invalidate event. An empty batch still carries a position that
	// advances with the source (the high-water mark).
	Batch NextBatch(size_t max_events, int64_t max_ms);

	// Invalidated tells whether the stream has ended with an invalidate event.
	bool Invalidated() const { return invalidated_; }
	// CurrentPosition returns the position after the last batch returned (the start before any).
	const Position &CurrentPosition() const { return position_; }

private:
	// StartOption says which start option an aggregate sends.
	enum class StartOption { kNone, kResumeAfter, kStartAfter, kAtOperationTime };
	// ReplyDoc owns a command's reply (the events of a batch are read in place from it).
	struct ReplyDoc;
	using Reply = std::unique_ptr<ReplyDoc>;

	// Open opens the stream at start and sets position_.
	void Open(const Position &start);
	// Aggregate selects a server and runs the aggregate that opens the cursor from option (token
	// or time); on success it loads the first batch, else it sets error and failed (the server's
	// reply, if any) and returns false.
	bool Aggregate(StartOption option, const bson_t *token, Timestamp time, bson_error_t *error, Reply *failed);
	// GetMore asks the cursor's server for the next batch and loads it; false (error and failed
	// set) when the command failed.
	bool GetMore(bson_error_t *error, Reply *failed);
	// LoadBatch makes reply (batch: "firstBatch" or "nextBatch") the batch to read events from and
	// caches the postBatchResumeToken of an empty batch.
	void LoadBatch(Reply reply, const char *batch);
	// NextInBatch parses the batch's next event into out; false when the batch is used up. An event
	// it cannot read (not a document, no readable _id, operationType or ns) comes out as an
	// unreadable ChangeEvent, and so does the rest of a batch that is not valid BSON (the stream then
	// goes on after the batch's postBatchResumeToken).
	bool NextInBatch(ChangeEvent *out);
	// BatchEmpty tells whether the loaded batch has no event left to read.
	bool BatchEmpty() const;
	// FittedBatchSize is the batch size an aggregate or getMore asks for: what kMaxBatchBytes holds
	// of events the size of the last batch's (so that a reply holds a few large events, not 16 MiB
	// of them), at most twice that batch's events and at most the stream's batch size; 1 before any
	// event.
	int32_t FittedBatchSize() const;
	// IsResumable tells whether a failed getMore may be resumed (change streams specification).
	bool IsResumable(const bson_error_t &error, const bson_t *reply) const;
	// Recover handles a failed getMore (reply: the server's, may be null): it throws unless the
	// failure is resumable and the first in a row, else it kills the cursor and reopens the stream
	// from the cached resume token.
	void Recover(const bson_error_t &error, const bson_t *reply);
	// KillCursor sends killCursors for the open cursor (best effort) and forgets it.
	void KillCursor();
	// CommandOpts returns the options of a command on the cursor's server: serverId, sessionId.
	Bson CommandOpts() const;
	// Fetch returns the next event (the look-ahead one first); false when the server returned an
	// empty batch.
	bool Fetch(ChangeEvent *out);
	// Finish sets batch's position and reached time once its events are chosen.
	void Finish(Batch *batch);

	Source &source_;
	StreamOptions options_;
	std::string name_;       // "db" or "db.coll", for messages
	bool cluster_ = false;   // the cluster scope (allChangesForCluster)
	std::string db_;         // the database the aggregate runs on ("admin" for the cluster scope)
	std::string coll_;       // the collection of a collection-scope stream, else empty
	Bson pipeline_;          // BuildStreamPipeline's {pipeline: [...]}, appended after $changeStream
	Session session_;        // the session of every command on the cursor (nullptr if none)
	uint32_t server_id_ = 0; // the server that answered the aggregate: getMores go there
	int32_t max_wire_version_ = 0;
	int64_t cursor_id_ = 0;     // 0: no server cursor open
	std::string cursor_coll_;   // getMore's "collection": the cursor's ns after the database
	bool connection_ok_ = true; // false after a network error (no killCursors then)
	Reply reply_;               // the last aggregate/getMore reply: its batch is read in place
	bson_iter_t batch_{};       // the batch's event before the next one to read
	size_t reply_events_ = 0;   // the events and bytes of the last batch that had events
	size_t reply_bytes_ = 0;
	int32_t asked_ = 0; // the batch size the last aggregate or getMore asked for
	// reply_full_: the last reply held as many events as asked, so the source most likely has more
	// (a backlog): a batch goes on past it, with a getMore that does not wait (continuing_).
	bool reply_full_ = false;
	bool continuing_ = false;
	const uint8_t *batch_data_ = nullptr; // the batch array's bytes (inside reply_), for an unreadable rest
	uint32_t batch_len_ = 0;
	bool batch_left_ = false;   // whether batch_ may have more events
	Bson batch_token_;          // that batch's postBatchResumeToken (nullptr when absent)
	Bson cached_token_;         // the resume token to resume from (spec: "cached resume token")
	Timestamp start_time_;      // startAtOperationTime to resume from while no token is cached
	bool start_after_ = false;  // opened with startAfter
	bool returned_any_ = false; // an event has come from the server
	int failures_in_row_ = 0;   // failed getMores since the last one that succeeded
	std::string first_failure_; // what the first of them said (for the detail)
	std::optional<ChangeEvent> pending_;
	Position position_;
	Timestamp reached_;
	// skip_through_: a start's applied (an oplog reader's position while a prepared transaction
	// waited): its events up to there were applied then, and are skipped (review 25: a river
	// switched from capture oplog to change_stream recorded them twice).
	Timestamp skip_through_;
	bool invalidated_ = false;
};

} // namespace mongo_river::mongo
