// river_worker_internal.hpp: the river worker's state and steps, shared by its source files:
// river_worker.cpp (the loop: connect, read, reload, retry), apply_batch.cpp (a batch of changes into
// PostgreSQL with its position) and copy_step.cpp (the initial copy and resyncs). Private to src/worker.
#pragma once

#include <algorithm>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <string>
#include <vector>

#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/catalog/lock.hpp"
#include "mongo_river/catalog/river.hpp"
#include "mongo_river/catalog/state.hpp"
#include "mongo_river/convert/convert.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/copy.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/oplog.hpp"
#include "mongo_river/mongo/scan_ahead.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/mongo/stream_guard.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/pg/transaction.hpp"
#include "mongo_river/settings.hpp"
#include "mongo_river/worker/live_status.hpp"
#include "mongo_river/worker/river_worker.hpp"

extern "C" {
#include "access/xact.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

namespace mongo_river::worker::internal {

constexpr int kMinBackoffMs = 500;
// kBsonObjectTooLarge is MongoDB's error code for a document (or change event) over 16 MiB.
constexpr int32_t kBsonObjectTooLarge = 10334;
// kMaxResyncs bounds automatic resyncs in a row (each after the source's oplog lost the river's
// position) before the river stops with an error: a copy that outlives the oplog window never ends.
constexpr int kMaxResyncs = 3;
constexpr int kMaxBackoffMs = 30000;
// kCopyStreamWaitMs bounds how long a stream read may wait while a copy is in progress, and
// kCopyStreamIntervalMs how often the stream is read then: a stream read can block for the reader's
// maxAwaitTimeMS when the source is quiet, which must not slow the copy down.
constexpr int64_t kCopyStreamWaitMs = 10;
constexpr int kCopyStreamIntervalMs = 1000;
// kCopyStreamAwaitMs is the getMore maxAwaitTimeMS of a stream opened while a copy is in progress:
// the reader's usual wait for new events (500 ms) would otherwise idle the copy at every stream read
// of a quiet source. The stream is reopened with the usual wait once the copies are done.
constexpr int32_t kCopyStreamAwaitMs = 5;

// WallMs and CpuMs are the time and the worker's CPU time (user and system) in milliseconds, for the
// debug1 lines that say where a batch's time went.
inline double WallMs() {
	return double(GetCurrentTimestamp()) / 1000;
}
inline double CpuMs() {
	struct timespec now;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now); // the worker's own thread (not a copy's reader thread)
	return double(now.tv_sec) * 1000 + double(now.tv_nsec) / 1e6;
}
// kSilenceReportMs: a worker whose read has had no byte from the source for this long shows it in the
// status (phase retrying, last_error "no reply from the source for N s") until the read ends.
constexpr int64_t kSilenceReportMs = 10000;
// CopyReset: the copy a batch belongs to was reset meanwhile (resync() again, the collection mapped
// again): the batch is undone and the worker reloads.
struct CopyReset {};

// kCopyBatchFactor: a copy transaction holds up to this many times batch_size documents.
constexpr size_t kCopyBatchFactor = 10;

// ConnectSource opens the river's Source with its credentials (user mapping, password_file), read
// only now (river_worker.cpp).
std::unique_ptr<mongo::Source> ConnectSource(const catalog::RiverRow &river);

// StopRiver ends the river with phase 'error' (on_error = 'stop', or an unrecoverable state).
class StopRiver : public Error {
public:
	using Error::Error;
};

// RiverGone ends the worker quietly: its river was dropped, or dropped and created again under the
// same name (another id), so nothing it holds in memory belongs to the river of that name now.
class RiverGone : public Error {
public:
	using Error::Error;
};

// Mapped is one active mapping: its writer and its phase as the worker knows it.
struct Mapped {
	std::unique_ptr<apply::MappingWriter> writer;
	std::string phase;
	// cut: no change at or before this source time touches the mapping (see catalog::MappingRow);
	// nullopt while its copy has not started (the copy's start will be its cut: no DDL seen before
	// then applies to it).
	std::optional<uint64> cut;
	bool catch_up = false; // copy: false mapping still to be caught up to the river's position
	// copied_id: the last _id (BSON {"": id}) its copy committed in this worker's run: a copy whose
	// reader failed resumes there (Row() is the catalog as loaded, possibly before the copy began).
	std::string copied_id;
	// copy_started and copy_from: the start of the copy this worker runs and its position before the
	// next batch, as the catalog must still have them (catalog::SaveCopyProgress).
	TimestampTz copy_started = 0;
	std::string copy_from;
	// stream_changes counts the change events the stream applied to it in this worker's run (see
	// CopyStep: a copy does not write documents read before such a change).
	uint64 stream_changes = 0;
};

// CatchUpRun is the catch-up of one copy: false mapping in progress: its own reader's changes up to
// limit (the river's reached time) are applied to it alone, and its cut records how far it got.
struct CatchUpRun {
	std::string source;
	uint64 limit = 0;
};

// PendingWrite is a document's last change in the batch being applied: its converted rows, or a
// delete of its key. Only upsert-mode mappings reduce a batch this way: the final state of a row is
// its document's last change, so one multi-row statement per table applies the whole batch.
// An update applied from its update description is a patch: the root row's changed columns only
// (is_patch; columns), with the document's {_id} (id) to look it up should its row be missing. An
// update that needs its document is a lookup (is_lookup): the batch's documents are read with one
// query when it is written (FlushLookups).
struct PendingWrite {
	bool is_delete = false;
	convert::ConvertedDocument document;
	convert::Value key;
	bool is_patch = false;
	bool is_lookup = false;
	std::vector<std::pair<std::size_t, convert::Value>> columns;
	mongo::Bson id;
};
using PendingWrites = std::map<std::string, std::map<std::string, PendingWrite>>; // source -> key text ->

// CopyRate measures a copy's recent rate: documents copied since the previous mark (5 to 10 s ago).
struct CopyRate {
	TimestampTz prev_time = 0, mark_time = 0;
	int64 prev_docs = 0, mark_docs = 0;
};

// BatchEffect is what applying a batch did per mapping (source -> progress).
using BatchEffect = std::map<std::string, catalog::MappingProgress>;

// Copying tells whether a mapping in this phase is being copied.
inline bool Copying(const std::string &phase) {
	return phase == "pending" || phase == "initial_copy" || phase == "resync";
}

// ShutdownRequested tells whether SIGTERM asked the worker to stop.
inline bool ShutdownRequested() {
	return ShutdownRequestPending;
}

// CatchUpDone tells whether a catch-up batch ends the catch-up: the limit is reached, the source has
// nothing more, or the stream ended.
inline bool CatchUpDone(const mongo::Batch &batch, uint64 limit) {
	return batch.reached.AsUint64() >= limit || batch.caught_up || batch.invalidated;
}

// HasId tells whether document_key (or a document) has an _id (convert::DocumentIdText is "" both for none and "").
inline bool HasId(const bson_t *doc) {
	bson_iter_t iter;
	return doc && bson_iter_init_find(&iter, doc, "_id");
}

// RawBytes returns a document's BSON bytes.
inline std::string RawBytes(const bson_t *doc) {
	return doc ? std::string(reinterpret_cast<const char *>(bson_get_data(doc)), doc->len) : std::string();
}

// Hex renders a 64-bit number as 16 hex digits (so that positions sort as text).
inline std::string Hex(uint64 value) {
	char buffer[17];
	snprintf(buffer, sizeof(buffer), "%016llx", (unsigned long long)value);
	return buffer;
}

// TokenData returns a change stream resume token's _data string (empty when it has none).
inline std::string TokenData(const bson_t *token) {
	bson_iter_t iter;
	if (token && bson_iter_init_find(&iter, token, "_data") && BSON_ITER_HOLDS_UTF8(&iter))
		return bson_iter_utf8(&iter, nullptr);
	return {};
}

// CopyBatch is the state of one copy batch (CopyDocuments), cleared by End when the batch ends,
// also when one of its writes throws.
//   on: an initial copy's documents go to rows[0, used), converted in scan order, and docs holds
//   their BSON bytes. A scan in _id order returns each document once, so CopyRows takes them as they
//   are; a key that came twice (a broken source, or two _ids of one text) fails it, and then only
//   each key's last document is upserted (UpsertLastOfEachKey), as pending_ would have reduced them.
//   rows keep their storage from batch to batch (ConvertInto), short texts included: a new row
//   vector and new strings for each document were three to four mallocs per document and fresh
//   pages for every batch; Release gives it back once the copy is over.
//   ids: the _id elements (type and value bytes, inside the batch's documents) the batch wrote;
//   repeats: its documents whose _id came before in it (a source that returned a document twice).
//   docs_copied counts documents, each once: two documents that are one row (an _id string and the
//   ObjectId of its text under a text key) are two. A batch CopyRows took whole has no repeat (the
//   same _id twice is the same key twice, which the key's unique index refuses), so its documents
//   are not looked at (the set costs 7 % of a copy's CPU).
struct CopyBatch {
	bool on = false;
	std::vector<convert::ConvertedDocument> rows; // [0, used) are this batch's
	size_t used = 0;
	std::vector<std::string_view> docs;
	std::unordered_set<std::string_view> ids;
	int64 repeats = 0;

	// Slot returns storage for the batch's next row; Drop gives the last one back (rejected).
	convert::ConvertedDocument *Slot() {
		if (used == rows.size())
			rows.emplace_back();
		return &rows[used++];
	}
	void Drop() { --used; }
	// Rows returns the batch's rows, in scan order.
	std::vector<const convert::ConvertedDocument *> Rows() const {
		std::vector<const convert::ConvertedDocument *> out;
		out.reserve(used);
		for (size_t i = 0; i < used; ++i)
			out.push_back(&rows[i]);
		return out;
	}
	// End empties the batch. Its rows keep their storage and their short texts (keys, names: the next
	// batch's ConvertInto writes over them); anything longer goes, so that no large value is held
	// between batches (what stays is at most kShortText bytes a value, under the batch's own size).
	static constexpr size_t kShortText = 64;
	void End() {
		auto keep_short = [](convert::Value &value) {
			const convert::Text *text = std::get_if<convert::Text>(&value.v);
			if (!value.IsNull() && (!text || text->value.capacity() > kShortText))
				value = convert::Value();
		};
		for (size_t i = 0; i < used; ++i) {
			convert::ConvertedDocument &row = rows[i];
			keep_short(row.key);
			for (convert::Value &value : row.row)
				keep_short(value);
			row.errors.clear();
			for (convert::ChildRows &child : row.children)
				child.rows.clear();
		}
		on = false;
		used = 0;
		docs.clear();
		ids.clear();
	}
	void Release() {
		End();
		rows = {};
		docs = {};
		ids = {};
	}
};

class RiverWorker {
public:
	// RiverWorker runs river name; a non-empty id is the identity of the river it was started for
	// (the worker acts for no other river of that name).
	explicit RiverWorker(std::string name, std::string id = {}) : name_(std::move(name)), id_(std::move(id)) {}

	void Run();
	// RunOnce catches the river up to the source's current time (or until timeout_ms passes) in
	// the calling process and returns the number of changes and documents applied.
	int64 RunOnce(int64 timeout_ms);
	// Applied is how many changes and documents RunOnce applied so far; OnceCaughtUp whether it
	// reached the source's time at its start.
	int64 Applied() const { return applied_; }
	bool OnceCaughtUp() const { return once_caught_up_; }

private:
	void Load();
	void LoadWriters();
	void Disconnect();
	void Connect();
	mongo::Timestamp StartTime();
	void OpenReader();
	bool CopyStep();
	bool CopyPending() const;
	void StreamStep(bool copying);
	void KeepPositionCurrent();
	void CatchUpMappings();
	void CatchUp(Mapped &mapped);
	bool Touches(const Mapped &mapped, const mongo::ChangeEvent &event, bool ddl) const;
	void RequireRiver();
	bool MaybeReload();
	void MaybeDiscover();
	void Wait(int ms);
	void RecordRiverPhase(const std::string &phase, const std::string &error);
	void StopWithError(const std::string &message);
	void StartResync(const std::string &reason);
	void SetPhase(const std::string &phase, const std::string &error);
	// ReportSilence is the worker's mongo::WaitReporter (data: the worker): past kSilenceReportMs
	// without a byte from the source it shows the wait in the live status; EndSilence takes it back.
	static void ReportSilence(int64_t silent_ms, void *data);
	void EndSilence();

	void ApplyBatch(const mongo::Batch &batch);
	void ReportBatch(const BatchEffect &effect);
	void CheckOplogMargin();
	void ReportCopyRate(const std::string &source, int64 copied);
	void ReportPending(const mongo::Batch &batch, bool applied);
	bool TryApplyBatch(const mongo::Batch &batch, bool isolate);
	void ApplyEvent(const mongo::ChangeEvent &event, bool isolate, BatchEffect *effect);
	void ApplyDocument(Mapped &mapped, const bson_t &doc, const apply::ChangeInfo &change, bool isolate);
	// ApplyUpdate applies an update event without its document: from its update description when the
	// mapping allows it (update_plan.hpp), else by looking the document up (LookUpUpdate).
	void ApplyUpdate(Mapped &mapped, const mongo::ChangeEvent &event, const bson_value_t *id,
					 const apply::ChangeInfo &change, bool isolate);
	// LookUpUpdate applies an update event from the document as the source has it now (none when it
	// was deleted since: then history mode records a bare version, and the delete follows).
	void LookUpUpdate(Mapped &mapped, const mongo::ChangeEvent &event, const bson_value_t *id,
					  const apply::ChangeInfo &change, bool isolate);
	// LookUp reads the current document of a mapping by _id (counted in lookups_).
	mongo::Bson LookUp(const Mapped &mapped, const bson_value_t *id);
	// FlushLookups writes a mapping's pending patches in place, then reads with one query the
	// documents of its pending lookups and of the patches whose row is missing and upserts those
	// found; the keys of lookups whose document is gone go to deletes.
	void FlushLookups(Mapped &mapped, std::map<std::string, PendingWrite> &writes,
					  std::vector<convert::Value> *deletes);
	void HandleDdl(const mongo::ChangeEvent &event);
	std::string ChangePosition(const mongo::ChangeEvent &event, BatchEffect *effect);
	// RejectUnreadable rejects a change event the reader could not read (source: its namespace when
	// readable, else "*"; raw: the bytes as received), or stops the river (on_error 'stop').
	// KeepRejectedRow has a resync keep the row of a document it rejects (key: its converted key).
	void KeepRejectedRow(Mapped &mapped, const convert::Value &key);
	void RejectUnreadable(const mongo::ChangeEvent &event);
	void RejectOrStop(const Mapped &mapped, const char *operation, const bson_t *doc, const bson_t *key,
					  const std::string &error);
	Mapped *Find(const std::string &db, const std::string &coll);
	bool CopyDocuments(Mapped &mapped, const std::vector<mongo::Bson> &docs, bool isolate);
	bool Batched(const Mapped &mapped, bool isolate) const;
	void FlushPending(bool fresh = false);
	// TryCopyRows writes documents whose keys most likely have no rows yet (an initial copy) with
	// CopyRows in a subtransaction; false (nothing written) when the mapping cannot or a row refused.
	bool TryCopyRows(Mapped &mapped, const std::vector<const convert::ConvertedDocument *> &upserts);
	// UpsertLastOfEachKey upserts, of rows in scan order, each key's last document (the reduction
	// pending_ makes for a batch of changes).
	void UpsertLastOfEachKey(Mapped &mapped, const std::vector<const convert::ConvertedDocument *> &rows);
	// Copied notes a copy's document as written (see CopyBatch::ids); CountCopied does it for any.
	void Copied(const apply::ChangeInfo &change, const bson_t &doc);
	void CountCopied(std::string_view doc);

	std::string name_;
	std::string id_; // the river's identity (river.id), fixed at the first load
	catalog::RiverRow river_;
	std::map<std::string, Mapped> mapped_; // by source "db.coll"
	std::unique_ptr<mongo::Source> source_;
	std::unique_ptr<mongo::ChangeStreamReader> stream_;
	std::unique_ptr<mongo::OplogReader> oplog_;
	// position_ is the river's position last committed (kNow until Connect loads or sets one); a
	// reconnect resumes from it. river_.position_json stays what Load read from the catalog.
	mongo::Position position_;
	bool force_reload_ = false; // a copy was reset under it (CopyReset): reload at once
	std::unique_ptr<mongo::ScanAhead> scan_;
	std::string scan_source_;
	uint64 scan_stream_mark_ = 0; // the copied mapping's stream_changes when scan_ last read
	mongo::Timestamp scan_started_;
	std::optional<uint64> scan_cut_;        // a fresh copy's cut, saved with its first batch
	std::optional<CatchUpRun> catch_up_;    // set while a copy: false mapping is being caught up
	TimestampTz last_position_refresh_ = 0; // KeepPositionCurrent's last pass
	TimestampTz last_reload_check_ = 0;
	TimestampTz last_stream_read_ = 0;
	int backoff_ms_ = 0;
	int resyncs_ = 0;
	uint64 last_change_time_ = 0;
	std::string phase_;
	bool reopen_ = false;
	bool reader_for_copy_ = false; // the reader was opened with kCopyStreamAwaitMs
	PendingWrites pending_;        // the batch's reduced writes (see PendingWrite)
	CopyBatch copy_;               // the copy batch being written (CopyDocuments)
	bool lookup_fallback_ = false; // reading the stream without updateLookup (large-event policy)
	// update_diffs_: the reader was opened without lookups (mongo_river.apply_update_diffs): update
	// events are applied from their update descriptions where the mapping allows it, else looked up.
	bool update_diffs_ = false;
	// reader_lookups_: the reader's update events carry their documents (updateLookup, or the oplog
	// reader's find by _id): they are applied whole, as read. Otherwise ApplyUpdate applies them.
	bool reader_lookups_ = true;
	int64 diff_updates_ = 0; // in the current batch: updates applied from their descriptions
	int64 lookups_ = 0;      // in the current batch: documents looked up for updates
	bool discover_ = false;  // look for new collections in mapped databases now
	// Once-mode (sync_once): run until everything up to the source's time at the start is applied.
	bool once_ = false;
	TimestampTz once_deadline_ = 0;
	uint64 once_target_ = 0;
	uint64 reached_ = 0;
	int64 applied_ = 0;
	// Live totals per mapping (docs copied, changes applied), reported to shared memory.
	std::map<std::string, std::pair<int64, int64>> totals_;
	TimestampTz last_margin_check_ = 0;
	bool margin_low_ = false;
	// Rejects recorded in the current transaction, per source (not counted as copied or applied).
	std::map<std::string, int64> txn_rejects_;
	CopyRate copy_rate_;          // of the copy in progress (scan_source_)
	bool once_caught_up_ = false; // sync_once reached its target
	TimestampTz last_discovery_ = 0;
	int64_t silence_reported_s_ = 0; // seconds of silence the status shows (0: none)
};

} // namespace mongo_river::worker::internal
