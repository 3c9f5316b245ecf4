// river_worker.cpp: one river's background worker: copy, then follow the stream, applying each batch
// with its position in one transaction.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
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
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/pg/transaction.hpp"
#include "mongo_river/settings.hpp"
#include "mongo_river/worker/live_status.hpp"
#include "mongo_river/worker/river_worker.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

namespace mongo_river::worker {

namespace {

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

// StopRiver ends the river with phase 'error' (on_error = 'stop', or an unrecoverable state).
class StopRiver : public Error {
public:
	using Error::Error;
};

// Mapped is one active mapping: its writer and its phase as the worker knows it.
struct Mapped {
	std::unique_ptr<apply::MappingWriter> writer;
	std::string phase;
};

// PendingWrite is a document's last change in the batch being applied: its converted rows, or a
// delete of its key. Only upsert-mode mappings reduce a batch this way: the final state of a row is
// its document's last change, so one multi-row statement per table applies the whole batch.
struct PendingWrite {
	bool is_delete = false;
	convert::ConvertedDocument document;
	convert::Value key;
};
using PendingWrites = std::map<std::string, std::map<std::string, PendingWrite>>; // source -> key text ->

// BatchEffect is what applying a batch did per mapping (source -> progress).
using BatchEffect = std::map<std::string, catalog::MappingProgress>;

// ShutdownRequested tells whether SIGTERM asked the worker to stop.
bool ShutdownRequested() {
	return ShutdownRequestPending;
}

// IdText returns the _id of document_key (or of a document) as rejects show it.
std::string IdText(const bson_t *doc) {
	bson_iter_t iter;
	if (doc && bson_iter_init_find(&iter, doc, "_id"))
		return convert::DocumentIdText(*bson_iter_value(&iter));
	return {};
}

// RawBytes returns a document's BSON bytes.
std::string RawBytes(const bson_t *doc) {
	return doc ? std::string(reinterpret_cast<const char *>(bson_get_data(doc)), doc->len) : std::string();
}

// Hex renders a 64-bit number as 16 hex digits (so that positions sort as text).
std::string Hex(uint64 value) {
	char buffer[17];
	snprintf(buffer, sizeof(buffer), "%016llx", (unsigned long long)value);
	return buffer;
}

// TokenData returns a change stream resume token's _data string (empty when it has none).
std::string TokenData(const bson_t *token) {
	bson_iter_t iter;
	if (token && bson_iter_init_find(&iter, token, "_data") && BSON_ITER_HOLDS_UTF8(&iter))
		return bson_iter_utf8(&iter, nullptr);
	return {};
}

class RiverWorker {
public:
	explicit RiverWorker(std::string name) : name_(std::move(name)) {}

	void Run();
	// RunOnce catches the river up to the source's current time (or until timeout_ms passes) in
	// the calling process and returns the number of changes and documents applied.
	int64 RunOnce(int64 timeout_ms);

private:
	void Load();
	void LoadWriters();
	void Disconnect();
	void Connect();
	mongo::Timestamp StartTime();
	void OpenReader();
	bool CopyStep();
	void StreamStep(bool copying);
	bool MaybeReload();
	void MaybeDiscover();
	void Wait(int ms);
	void RecordRiverPhase(const std::string &phase, const std::string &error);
	void StopWithError(const std::string &message);
	void StartResync(const std::string &reason);
	void SetPhase(const std::string &phase, const std::string &error);

	void ApplyBatch(const mongo::Batch &batch);
	void ReportBatch(const BatchEffect &effect, bool caught_up);
	void CheckOplogMargin();
	bool TryApplyBatch(const mongo::Batch &batch, bool isolate);
	void ApplyEvent(const mongo::ChangeEvent &event, bool isolate, BatchEffect *effect);
	void ApplyDocument(Mapped &mapped, const bson_t &doc, const apply::ChangeInfo &change, bool isolate);
	void HandleDdl(const mongo::ChangeEvent &event);
	std::string ChangePosition(const mongo::ChangeEvent &event, BatchEffect *effect);
	void RejectOrStop(const Mapped &mapped, const char *operation, const bson_t *doc, const bson_t *key,
					  const std::string &error);
	Mapped *Find(const std::string &db, const std::string &coll);
	bool CopyDocuments(Mapped &mapped, const std::vector<mongo::Bson> &docs, bool isolate);
	bool Batched(const Mapped &mapped, bool isolate) const;
	void FlushPending();

	std::string name_;
	catalog::RiverRow river_;
	std::map<std::string, Mapped> mapped_; // by source "db.coll"
	std::unique_ptr<mongo::Source> source_;
	std::unique_ptr<mongo::ChangeStreamReader> stream_;
	std::unique_ptr<mongo::OplogReader> oplog_;
	mongo::Position position_;
	std::unique_ptr<mongo::CollectionScan> scan_;
	std::string scan_source_;
	mongo::Timestamp scan_started_;
	TimestampTz last_reload_check_ = 0;
	TimestampTz last_stream_read_ = 0;
	int backoff_ms_ = 0;
	int resyncs_ = 0;
	uint64 last_change_time_ = 0;
	std::string phase_;
	bool reopen_ = false;
	PendingWrites pending_;        // the batch's reduced writes (see PendingWrite)
	bool lookup_fallback_ = false; // reading the stream without updateLookup (large-event policy)
	bool discover_ = false;        // look for new collections in mapped databases now
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
	TimestampTz last_discovery_ = 0;
};

void RiverWorker::Load() {
	pg::Transaction txn;
	river_ = catalog::LoadRiver(name_);
	mapped_.clear();
	LoadWriters();
	txn.Commit();
	last_reload_check_ = GetCurrentTimestamp();
}

void RiverWorker::LoadWriters() {
	pg::SpiConnection spi; // SPI_prepare needs a connection; it ends before the transaction does
	for (const catalog::MappingRow &row : river_.mappings) {
		if (row.phase == "stopped" || row.phase == "error")
			continue;
		std::unique_ptr<apply::MappingWriter> writer;
		std::string failure;
		std::optional<pg::PgError> error = pg::TrySubtransaction([&] {
			try {
				writer = std::make_unique<apply::MappingWriter>(row);
			} catch (const Error &e) {
				failure = e.Message();
			}
		});
		if (error)
			failure = error->what();
		if (!failure.empty()) {
			ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": %s", name_.c_str(), row.source.c_str(),
								 failure.c_str())));
			catalog::SetMappingPhase(name_, row.source, "error", failure);
			continue;
		}
		mapped_[row.source] = Mapped{std::move(writer), row.phase};
		totals_[row.source] = {row.docs_copied, row.changes_applied};
		// Shared memory starts from the catalog (a resync() or a new mapping may have changed it).
		worker::LiveUpdate live;
		live.phase = row.phase;
		live.docs_copied = row.docs_copied;
		live.changes_applied = row.changes_applied;
		worker::ReportLive(name_, row.source, live);
	}
}

void RiverWorker::Disconnect() {
	scan_.reset();
	stream_.reset();
	oplog_.reset();
	source_.reset();
}

// StartTime returns where a copy's stream starts: the source's majority commit point, or its last
// operation time when the source does not report one (mongos).
mongo::Timestamp RiverWorker::StartTime() {
	mongo::Timestamp committed = source_->CommittedTime();
	return committed.IsZero() ? source_->OperationTime() : committed;
}

void RiverWorker::Connect() {
	std::string uri = river_.uri;
	source_ = std::make_unique<mongo::Source>(uri);
	source_->Check();
	if (river_.position_json.empty()) {
		// Record the start point before copying: every change after it is streamed, and the copy
		// reads documents later than it (applying a change twice is idempotent).
		// Every change up to now is in the copy (it reads later than now) or, with copy: false, not
		// wanted: stream what comes after now.
		// The majority commit point: no write at or before it can still be committing, so the copy
		// that follows sees every write the stream skips.
		mongo::Timestamp now = StartTime();
		position_ = mongo::Position::OplogAfter(now);
		pg::Transaction txn;
		catalog::SavePosition(name_, position_.ToJson(), now.AsUint64(), false);
		txn.Commit();
		river_.position_json = position_.ToJson();
	} else {
		position_ = mongo::Position::FromJson(river_.position_json);
	}
	OpenReader();
}

void RiverWorker::OpenReader() {
	stream_.reset();
	oplog_.reset();
	std::vector<mongo::Namespace> namespaces;
	for (const auto &[source, mapped] : mapped_)
		namespaces.push_back({mapped.writer->Row().db, mapped.writer->Row().coll});
	// A mapped database is followed whole, so that changes to collections that appear in it later
	// reveal them (libmongoc 1.23 cannot ask for the "create" events of showExpandedEvents).
	for (const std::string &db : river_.databases)
		namespaces.push_back({db, ""});
	reopen_ = false;
	if (namespaces.empty())
		return;
	if (river_.options.capture == "oplog") {
		mongo::OplogOptions options;
		options.namespaces = namespaces;
		options.update_lookup = true;
		oplog_ = std::make_unique<mongo::OplogReader>(*source_, options, position_);
	} else {
		mongo::StreamOptions options;
		options.namespaces = namespaces;
		options.update_lookup = !lookup_fallback_;
		stream_ = std::make_unique<mongo::ChangeStreamReader>(*source_, options, position_);
	}
}

Mapped *RiverWorker::Find(const std::string &db, const std::string &coll) {
	auto it = mapped_.find(db + "." + coll);
	return it == mapped_.end() ? nullptr : &it->second;
}

void RiverWorker::RecordRiverPhase(const std::string &phase, const std::string &error) {
	pg::Transaction txn;
	catalog::SetRiverPhase(name_, phase, error);
	txn.Commit();
}

void RiverWorker::SetPhase(const std::string &phase, const std::string &error) {
	if (phase == phase_ && error.empty())
		return;
	RecordRiverPhase(phase, error);
	phase_ = phase;
}

void RiverWorker::StartResync(const std::string &reason) {
	if (++resyncs_ > kMaxResyncs) {
		StopWithError(reason + "; the river was resynced " + std::to_string(kMaxResyncs) +
					  " times in a row and its copy still outlived the source's oplog window (give the source a "
					  "larger oplog, or map fewer or smaller collections per river)");
		river_.enabled = false;
		return;
	}
	ereport(LOG, (errmsg("mongo_river: river \"%s\": %s; resyncing its collections", name_.c_str(), reason.c_str())));
	Disconnect();
	source_ = std::make_unique<mongo::Source>(river_.uri);
	source_->Check();
	mongo::Timestamp now = StartTime();
	position_ = mongo::Position::OplogAfter(now);
	{
		pg::Transaction txn;
		catalog::BeginResync(name_);
		catalog::SavePosition(name_, position_.ToJson(), 0, false);
		catalog::SetRiverPhase(name_, "resync", reason);
		txn.Commit();
	}
	phase_ = "resync";
	Load();
	if (!river_.enabled)
		return;
	river_.position_json = position_.ToJson();
	OpenReader();
}

void RiverWorker::StopWithError(const std::string &message) {
	ereport(LOG, (errmsg("mongo_river: river \"%s\" stopped with an error: %s", name_.c_str(), message.c_str())));
	RecordRiverPhase("error", message);
}

void RiverWorker::RejectOrStop(const Mapped &mapped, const char *operation, const bson_t *doc, const bson_t *key,
							   const std::string &error) {
	const std::string &source = mapped.writer->Row().source;
	if (river_.options.on_error == "stop")
		throw StopRiver(sqlstate::kDatatypeMismatch,
						"collection \"" + source + "\", document " + IdText(doc ? doc : key) + ": " + error);
	catalog::Reject reject;
	reject.source = source;
	reject.document_id = IdText(doc ? doc : key);
	reject.operation = operation;
	if (doc) {
		try {
			reject.document_json = convert::DocumentJson(*doc);
		} catch (const Error &) {
			// jsonb cannot hold it (NUL characters, invalid UTF-8): raw keeps it.
		}
	}
	reject.raw = RawBytes(doc ? doc : key);
	reject.error = error;
	if (!river_.options.dry_run)
		catalog::AddReject(name_, reject);
	ereport(DEBUG1, (errmsg("mongo_river: river \"%s\": rejected %s of %s in \"%s\": %s", name_.c_str(), operation,
							reject.document_id.c_str(), source.c_str(), error.c_str())));
}

void RiverWorker::ApplyDocument(Mapped &mapped, const bson_t &doc, const apply::ChangeInfo &change, bool isolate) {
	const char *operation = change.operation.c_str();
	convert::ConvertedDocument converted = mapped.writer->Convert(doc);
	if (!converted.errors.empty()) {
		std::string message;
		for (const convert::ConversionError &error : converted.errors)
			message += (message.empty() ? "" : "; ") + error.Message();
		RejectOrStop(mapped, operation, &doc, nullptr, message);
		return;
	}
	if (river_.options.dry_run)
		return;
	if (Batched(mapped, isolate)) {
		std::string key = convert::ValueText(converted.key);
		pending_[mapped.writer->Row().source][key] = PendingWrite{false, std::move(converted), {}};
		return;
	}
	auto write = [&] {
		mapped.writer->Upsert(converted, change);
		if (mapped.phase == "resync")
			mapped.writer->RecordSeen(name_, converted.key);
	};
	if (!isolate) {
		write();
		return;
	}
	std::optional<pg::PgError> error = pg::TrySubtransaction(write);
	if (error)
		RejectOrStop(mapped, operation, &doc, nullptr, error->what());
}

void RiverWorker::HandleDdl(const mongo::ChangeEvent &event) {
	// DDL policy: the affected mappings stop (phase 'stopped', last_error says why); the rest go on.
	std::string what = std::string(mongo::OperationTypeName(event.op)) + " of " + event.db +
					   (event.coll.empty() ? "" : "." + event.coll);
	for (auto it = mapped_.begin(); it != mapped_.end();) {
		const catalog::MappingRow &row = it->second.writer->Row();
		bool affected = row.db == event.db && (event.coll.empty() || row.coll == event.coll);
		if (!affected) {
			++it;
			continue;
		}
		std::string message = "the source saw a " + what + "; this mapping stopped (map it again to resume)";
		catalog::SetMappingPhase(name_, row.source, "stopped", message);
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": %s", name_.c_str(), row.source.c_str(),
							 message.c_str())));
		it = mapped_.erase(it);
	}
	reopen_ = true;
}

// ChangePosition returns a text unique to a change that sorts in the source's order: the change
// stream's resume token, or for the oplog (whose events have none) the cluster time and the change's
// index among the batch's changes of that cluster time (a transaction's entries share one).
std::string RiverWorker::ChangePosition(const mongo::ChangeEvent &event, BatchEffect *effect) {
	std::string token = TokenData(event.resume_token.get());
	if (!token.empty())
		return token;
	uint64 time = event.cluster_time.AsUint64();
	auto &seq = (*effect)[std::string()].changes; // the unnamed entry counts per cluster time
	if (last_change_time_ != time) {
		last_change_time_ = time;
		seq = 0;
	}
	char suffix[16];
	snprintf(suffix, sizeof(suffix), "-%06lld", (long long)seq++);
	return "oplog:" + Hex(time) + suffix;
}

void RiverWorker::ApplyEvent(const mongo::ChangeEvent &event, bool isolate, BatchEffect *effect) {
	using Op = mongo::OperationType;
	if (event.op == Op::kDrop || event.op == Op::kRename || event.op == Op::kDropDatabase) {
		HandleDdl(event);
		return;
	}
	if (event.op == Op::kInvalidate) {
		reopen_ = true;
		return;
	}
	apply::ChangeInfo change;
	change.operation = mongo::OperationTypeName(event.op);
	change.cluster_time = event.cluster_time.AsUint64();
	change.wall_ms = event.wall_time_ms;
	change.position = ChangePosition(event, effect);
	Mapped *mapped = Find(event.db, event.coll);
	if (!mapped && std::find(river_.databases.begin(), river_.databases.end(), event.db) != river_.databases.end())
		discover_ = true; // a collection of a mapped database that is not mapped (yet)
	ereport(DEBUG2, (errmsg_internal("mongo_river: river \"%s\": %s on %s.%s%s%s", name_.c_str(),
									 mongo::OperationTypeName(event.op), event.db.c_str(), event.coll.c_str(),
									 event.full_document ? " with document" : "", mapped ? "" : " (not mapped)")));
	if (!mapped)
		return;
	catalog::MappingProgress &progress = (*effect)[mapped->writer->Row().source];
	progress.changes++;
	if (event.wall_time_ms)
		progress.last_wall_ms = event.wall_time_ms;
	switch (event.op) {
	case Op::kInsert:
	case Op::kReplace:
	case Op::kUpdate:
		// An update carries the document as it is now (updateLookup); none when it was deleted since,
		// in which case the delete event follows.
		if (event.full_document) {
			ApplyDocument(*mapped, *event.full_document, change, isolate);
		} else if (event.op == Op::kUpdate && lookup_fallback_) {
			bson_iter_t iter;
			if (event.document_key && bson_iter_init_find(&iter, event.document_key.get(), "_id")) {
				mongo::Bson current = source_->FindById(event.db, event.coll, bson_iter_value(&iter));
				if (current)
					ApplyDocument(*mapped, *current, change, isolate);
			}
		}
		break;
	case Op::kDelete: {
		bson_iter_t iter;
		if (!event.document_key || !bson_iter_init_find(&iter, event.document_key.get(), "_id"))
			break;
		convert::Value key;
		try {
			key = mapped->writer->KeyFromId(bson_iter_value(&iter));
		} catch (const convert::ConversionError &e) {
			RejectOrStop(*mapped, "delete", nullptr, event.document_key.get(), e.Message());
			break;
		}
		if (river_.options.dry_run)
			break;
		if (Batched(*mapped, isolate))
			pending_[mapped->writer->Row().source][convert::ValueText(key)] = PendingWrite{true, {}, key};
		else
			mapped->writer->Delete(key, change);
		break;
	}
	default:
		break;
	}
}

bool RiverWorker::TryApplyBatch(const mongo::Batch &batch, bool isolate) {
	try {
		BatchEffect txn_effect;
		pg::Transaction txn;
		{
			pg::SpiConnection spi;
			catalog::LockRiver(name_); // serialised with repairs (verify, retry_rejects)
			BatchEffect effect;
			pending_.clear();
			for (const mongo::ChangeEvent &event : batch.events)
				ApplyEvent(event, isolate, &effect);
			FlushPending();
			for (const auto &[source, progress] : effect)
				if (!source.empty())
					catalog::AddMappingProgress(name_, source, progress);
			if (!river_.options.dry_run)
				catalog::SavePosition(name_, batch.position.ToJson(), batch.reached.AsUint64(), batch.caught_up);
			txn_effect = std::move(effect);
		}
		txn.Commit();
		ReportBatch(txn_effect, batch.caught_up);
		return true;
	} catch (const pg::PgError &error) {
		if (isolate)
			throw;
		ereport(DEBUG1, (errmsg("mongo_river: river \"%s\": batch failed (%s); applying it change by change",
								name_.c_str(), error.what())));
		return false;
	}
}

// ReportBatch publishes a committed batch's effect in shared memory (mongo_river.status).
void RiverWorker::ReportBatch(const BatchEffect &effect, bool caught_up) {
	for (const auto &[source, progress] : effect) {
		if (source.empty())
			continue;
		worker::LiveUpdate live;
		live.changes_applied = totals_[source].second += progress.changes;
		live.last_source_ms = progress.last_wall_ms;
		worker::ReportLive(name_, source, live);
	}
	worker::LiveUpdate river;
	river.caught_up = caught_up;
	worker::ReportLive(name_, "", river);
}

// kMarginCheckIntervalMs is how often the oplog margin is measured.
constexpr int kMarginCheckIntervalMs = 10000;

// CheckOplogMargin measures how far the river's position is from the oldest entry the source's
// oplog still holds, publishes it, and warns (log + NOTIFY) when it falls below
// mongo_river.oplog_margin_warning: past zero, the river has to resync.
void RiverWorker::CheckOplogMargin() {
	TimestampTz now = GetCurrentTimestamp();
	if (!source_ || !TimestampDifferenceExceeds(last_margin_check_, now, kMarginCheckIntervalMs))
		return;
	last_margin_check_ = now;
	mongo::Timestamp oldest = source_->OldestOplogTime();
	mongo::Timestamp position = position_.ClusterTime();
	if (oldest.IsZero() || position.IsZero())
		return;
	int64 margin = int64(position.t) - int64(oldest.t);
	worker::LiveUpdate live;
	live.oplog_margin_s = margin;
	worker::ReportLive(name_, "", live);
	bool low = margin < setting_oplog_margin_warning_s;
	if (low && !margin_low_) {
		std::string detail =
			"the river's position is " + std::to_string(margin) +
			" s from the oldest oplog entry its source still has (mongo_river.oplog_margin_warning = " +
			std::to_string(setting_oplog_margin_warning_s) + " s)";
		ereport(WARNING, (errmsg("mongo_river: river \"%s\": %s", name_.c_str(), detail.c_str()),
						  errhint("Give the source a larger oplog, or keep the river running; past zero it resyncs.")));
		pg::Transaction txn;
		catalog::NotifyEvent(name_, "", "oplog_margin", detail);
		txn.Commit();
	}
	margin_low_ = low;
}

// Batched tells whether a mapping's writes in this pass are collected for multi-row statements:
// in upsert mode, outside the change-by-change retry (isolate), and not in a dry run.
bool RiverWorker::Batched(const Mapped &mapped, bool isolate) const {
	return !isolate && !mapped.writer->History() && !river_.options.dry_run;
}

// FlushPending writes the batch's reduced changes: per mapping, the deleted keys with one
// statement, then the upserted documents with multi-row statements.
void RiverWorker::FlushPending() {
	for (auto &[source, writes] : pending_) {
		auto mapped = mapped_.find(source);
		if (mapped == mapped_.end())
			continue;
		std::vector<convert::Value> deletes;
		std::vector<const convert::ConvertedDocument *> upserts;
		std::vector<convert::Value> seen;
		for (auto &[key, write] : writes) {
			if (write.is_delete) {
				deletes.push_back(write.key);
			} else {
				upserts.push_back(&write.document);
				seen.push_back(write.document.key);
			}
		}
		apply::MappingWriter &writer = *mapped->second.writer;
		writer.DeleteBatch(deletes);
		writer.UpsertBatch(upserts);
		if (mapped->second.phase == "resync")
			writer.RecordSeenBatch(name_, seen);
	}
	pending_.clear();
}

void RiverWorker::ApplyBatch(const mongo::Batch &batch) {
	// Optimistic: the whole batch in one transaction. If PostgreSQL refuses a row (a constraint, a
	// type's input function), the batch is applied again change by change in subtransactions, so
	// that only the offending changes go to rejects.
	if (!TryApplyBatch(batch, false))
		TryApplyBatch(batch, true);
	position_ = batch.position;
	reached_ = std::max(reached_, uint64(batch.reached.AsUint64()));
	applied_ += int64(batch.events.size());
}

bool RiverWorker::CopyDocuments(Mapped &mapped, const std::vector<mongo::Bson> &docs, bool isolate) {
	try {
		pg::Transaction txn;
		std::string phase = scan_->Done() ? "streaming" : mapped.phase == "resync" ? "resync" : "initial_copy";
		{
			pg::SpiConnection spi;
			catalog::LockRiver(name_);
			pending_.clear();
			for (const mongo::Bson &doc : docs) {
				apply::ChangeInfo change{"copy", scan_started_.AsUint64(), std::nullopt, {}};
				change.position = "copy:" + Hex(scan_started_.AsUint64()) + ":" + IdText(doc.get());
				ApplyDocument(mapped, *doc, change, isolate);
			}
			FlushPending();
			if (scan_->Done() && mapped.phase == "resync" && !river_.options.dry_run) {
				uint64 deleted = mapped.writer->DeleteUnseen(name_, scan_started_.AsUint64());
				ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": resync deleted %lu rows of "
									 "documents that no longer exist",
									 name_.c_str(), mapped.writer->Row().source.c_str(), (unsigned long)deleted)));
			}
			catalog::SaveCopyProgress(name_, mapped.writer->Row().source, RawBytes(scan_->LastId()),
									  int64_t(docs.size()), phase);
			if (phase != mapped.phase)
				catalog::NotifyPhase(name_, mapped.writer->Row().source, phase, "");
		}
		txn.Commit();
		mapped.phase = phase;
		applied_ += int64(docs.size());
		worker::LiveUpdate live;
		live.docs_copied = totals_[mapped.writer->Row().source].first += int64(docs.size());
		worker::ReportLive(name_, mapped.writer->Row().source, live);
		return true;
	} catch (const pg::PgError &) {
		if (isolate)
			throw;
		return false;
	}
}

bool RiverWorker::CopyStep() {
	auto it = std::find_if(mapped_.begin(), mapped_.end(), [](const auto &entry) {
		return entry.second.phase == "pending" || entry.second.phase == "initial_copy" ||
			   entry.second.phase == "resync";
	});
	if (it == mapped_.end())
		return false;
	Mapped &mapped = it->second;
	const catalog::MappingRow &row = mapped.writer->Row();
	if (!scan_ || scan_source_ != row.source) {
		mongo::Bson last;
		if (mapped.phase != "pending" && !row.copy_last_id.empty())
			last.reset(bson_new_from_data(reinterpret_cast<const uint8_t *>(row.copy_last_id.data()),
										  row.copy_last_id.size()));
		scan_ =
			std::make_unique<mongo::CollectionScan>(*source_, row.db, row.coll, last.get(), river_.options.batch_size);
		scan_source_ = row.source;
		scan_started_ = source_->OperationTime();
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": %s initial copy", name_.c_str(),
							 row.source.c_str(), last ? "resuming" : "starting")));
	}
	std::vector<mongo::Bson> docs = scan_->NextBatch(size_t(river_.options.batch_size));
	if (!CopyDocuments(mapped, docs, false))
		CopyDocuments(mapped, docs, true);
	if (scan_->Done()) {
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": initial copy done, streaming",
							 name_.c_str(), row.source.c_str())));
		scan_.reset();
		scan_source_.clear();
	}
	return true;
}

void RiverWorker::StreamStep(bool copying) {
	if (!stream_ && !oplog_) {
		Wait(copying ? 0 : setting_naptime_ms);
		return;
	}
	if (copying) {
		TimestampTz now = GetCurrentTimestamp();
		if (!TimestampDifferenceExceeds(last_stream_read_, now, kCopyStreamIntervalMs))
			return;
		last_stream_read_ = now;
	}
	int64_t max_ms = copying ? kCopyStreamWaitMs : river_.options.batch_ms;
	size_t max_events = size_t(river_.options.batch_size);
	mongo::Batch batch;
	try {
		batch = stream_ ? stream_->NextBatch(max_events, max_ms) : oplog_->NextBatch(max_events, max_ms);
	} catch (const mongo::SourceError &error) {
		if (error.ServerCode() != kBsonObjectTooLarge || !stream_ || lookup_fallback_)
			throw;
		// Large-event policy: an update whose event, with the looked-up document, exceeds 16 MiB
		// cannot be read. Read the stream without updateLookup until past it, looking each updated
		// document up separately (a document alone always fits).
		ereport(LOG, (errmsg("mongo_river: river \"%s\": a change event exceeds 16 MiB; reading without "
							 "updateLookup until past it",
							 name_.c_str())));
		lookup_fallback_ = true;
		OpenReader();
		return;
	}
	ApplyBatch(batch);
	if (lookup_fallback_ && !batch.events.empty()) {
		lookup_fallback_ = false; // past the large event: back to server-side lookups
		reopen_ = true;
	}
	if (batch.invalidated || reopen_) {
		if (batch.invalidated)
			position_ = batch.position;
		OpenReader();
	}
}

bool RiverWorker::MaybeReload() {
	TimestampTz now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_reload_check_, now, setting_naptime_ms))
		return false;
	last_reload_check_ = now;
	pg::Transaction txn;
	std::string digest = catalog::RiverDigest(name_);
	txn.Commit();
	if (digest == river_.digest)
		return false;
	if (digest.empty()) {
		river_.enabled = false; // the river was dropped: Run returns
		return true;
	}
	ereport(LOG, (errmsg("mongo_river: river \"%s\": declaration changed, reloading", name_.c_str())));
	std::string old_uri = river_.uri;
	Load();
	if (river_.uri != old_uri)
		Disconnect();
	else if (source_) {
		scan_.reset();
		OpenReader();
	}
	return true;
}

// kDiscoveryIntervalMs is how often mapped databases are listed for new collections (a collection
// that never receives a document is found this way; others are noticed by their first change).
constexpr int kDiscoveryIntervalMs = 10000;

void RiverWorker::MaybeDiscover() {
	if (river_.databases.empty())
		return;
	TimestampTz now = GetCurrentTimestamp();
	if (!discover_ && !TimestampDifferenceExceeds(last_discovery_, now, kDiscoveryIntervalMs))
		return;
	discover_ = false;
	last_discovery_ = now;
	uint64 mapped = 0;
	try {
		pg::Transaction txn;
		{
			pg::SpiConnection spi;
			pg::SpiExecute("SELECT mongo_river._discover($1)", {{NAMEOID, pg::NameDatum(name_)}});
			mapped = SPI_processed;
		}
		txn.Commit();
	} catch (const pg::PgError &error) {
		ereport(LOG, (errmsg("mongo_river: river \"%s\": could not look for new collections: %s", name_.c_str(),
							 error.what())));
		return;
	}
	if (mapped > 0)
		ereport(LOG, (errmsg("mongo_river: river \"%s\": mapped %lu new collection(s)", name_.c_str(),
							 (unsigned long)mapped)));
}

void RiverWorker::Wait(int ms) {
	if (ms <= 0)
		return;
	(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

int64 RiverWorker::RunOnce(int64 timeout_ms) {
	once_ = true;
	once_deadline_ = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	Run();
	return applied_;
}

void RiverWorker::Run() {
	Load();
	if (!river_.enabled && !once_)
		return;
	while (!ShutdownRequested()) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		try {
			MaybeDiscover();
			MaybeReload();
			if (!river_.enabled && !once_)
				return;
			if (!source_) {
				Connect();
				if (once_ && once_target_ == 0)
					once_target_ = source_->OperationTime().AsUint64();
				SetPhase(phase_ == "resync" ? "resync" : "streaming", "");
			}
			bool copying = CopyStep();
			StreamStep(copying);
			CheckOplogMargin();
			backoff_ms_ = 0;
			if (!copying) {
				resyncs_ = 0;
				SetPhase("streaming", "");
			}
			if (once_ && ((!copying && reached_ >= once_target_) || GetCurrentTimestamp() >= once_deadline_))
				return;
		} catch (const StopRiver &stop) {
			Disconnect();
			StopWithError(stop.Message());
			if (once_)
				throw;
			return;
		} catch (const mongo::SourceError &error) {
			Disconnect();
			if (once_ && error.Kind() != mongo::SourceErrorKind::kHistoryLost)
				throw; // sync_once reports the problem to its caller (batches so far are committed)
			std::string message = error.Message() + (error.Detail().empty() ? "" : ": " + error.Detail());
			if (error.Kind() == mongo::SourceErrorKind::kHistoryLost) {
				try {
					StartResync(message);
				} catch (const mongo::SourceError &again) {
					Disconnect();
					SetPhase("retrying", again.Message());
					Wait(kMinBackoffMs);
				}
				continue;
			}
			backoff_ms_ = std::min(kMaxBackoffMs, std::max(kMinBackoffMs, backoff_ms_ * 2));
			ereport(LOG, (errmsg("mongo_river: river \"%s\": %s; retrying in %d ms", name_.c_str(), message.c_str(),
								 backoff_ms_)));
			SetPhase("retrying", message);
			Wait(backoff_ms_);
		}
	}
}

} // namespace

int64 SyncOnce(const std::string &river, int64 timeout_ms) {
	return RiverWorker(river).RunOnce(timeout_ms);
}

BackgroundWorkerHandle *StartRiverWorker(const char *river, Oid owner) {
	BackgroundWorker worker = {};
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "mongo_river", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "mongo_river_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "mongo_river worker for river %s", river);
	strlcpy(worker.bgw_type, "mongo_river worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(owner);
	worker.bgw_notify_pid = MyProcPid;
	WorkerArgs args = {};
	args.database = MyDatabaseId;
	strlcpy(args.river, river, NAMEDATALEN);
	static_assert(sizeof(WorkerArgs) <= BGW_EXTRALEN, "WorkerArgs must fit in bgw_extra");
	memcpy(worker.bgw_extra, &args, sizeof(args));
	BackgroundWorkerHandle *handle = nullptr;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return nullptr;
	return handle;
}

} // namespace mongo_river::worker

// mongo_river_worker_main connects to the launcher's database as the river's owner and runs the
// river until SIGTERM, the river's stop, or an error that stops it.
void mongo_river_worker_main(unsigned long arg) {
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	mongo_river::worker::WorkerArgs args;
	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	BackgroundWorkerInitializeConnectionByOid(args.database, DatumGetObjectId(Datum(arg)), 0);
	std::string river(args.river);
	char appname[NAMEDATALEN + 16];
	snprintf(appname, sizeof(appname), "mongo_river %s", args.river);
	pgstat_report_appname(appname);
	mongo_river::pg::EnsureMongocInitialized();
	ereport(LOG, (errmsg("mongo_river: worker for river \"%s\" started", args.river)));
	mongo_river::pg::Guard([&] { mongo_river::worker::RiverWorker(river).Run(); });
	mongo_river::worker::ForgetRiverLive(river);
	ereport(LOG, (errmsg("mongo_river: worker for river \"%s\" stopped", args.river)));
	proc_exit(0);
}
