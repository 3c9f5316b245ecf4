// river_worker.cpp: one river's background worker: copy, then follow the stream, applying each batch
// with its position in one transaction.
#include "river_worker_internal.hpp"

#include <malloc.h>

#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/mongo/uri.hpp"

namespace mongo_river::worker {

namespace internal {

namespace {

// warned_unknown_options is set once this process warned about a river's unknown URI options.
bool warned_unknown_options = false;

} // namespace

// ConnectSource opens the river's Source with its credentials (user mapping, password_file), read
// only now. A river that cannot get them is retried like an authentication failure (a user mapping
// may be created meanwhile). A URI with options libmongoc does not support (declared before
// create_river refused them) keeps running, with one WARNING.
std::unique_ptr<mongo::Source> ConnectSource(const catalog::RiverRow &river) {
	catalog::Connection connection;
	try {
		pg::Transaction txn;
		connection = catalog::ResolveConnection(river.owner, river.uri, river.options.password_file);
		txn.Commit();
	} catch (const mongo::SourceError &) {
		throw;
	} catch (const Error &error) {
		throw mongo::SourceError(mongo::SourceErrorKind::kAuthentication, 0, error.Sqlstate(), error.Message(),
								 error.Detail(), error.Hint());
	} catch (const pg::PgError &error) {
		throw mongo::SourceError(mongo::SourceErrorKind::kAuthentication, 0, "28000",
								 std::string("cannot read the river's credentials: ") + error.what());
	}
	if (!warned_unknown_options) {
		warned_unknown_options = true;
		try {
			mongo::RequireKnownOptions(connection.uri, "MongoDB URI \"" + mongo::RedactUri(connection.uri) + "\"");
		} catch (const Error &error) {
			ereport(WARNING,
					(errmsg("mongo_river: river \"%s\": %s; ignored", river.name.c_str(), error.Message().c_str()),
					 errhint("alter_river refuses unknown options: correct the URI with it.")));
		}
	}
	return catalog::OpenSource(connection);
}

void RiverWorker::Load() {
	pg::Transaction txn;
	river_ = catalog::LoadRiver(name_);
	if (id_.empty())
		id_ = river_.id;
	else if (river_.id != id_)
		throw RiverGone(sqlstate::kUndefinedObject,
						"river \"" + name_ + "\" was dropped and created again while its worker ran");
	reached_ = std::max(reached_, river_.reached);
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
		if (Copying(row.phase) && row.copy_last_id.empty()) {
			// A copy from the start (a resync() or a new mapping): the previous copy's live counters
			// go at once, before anything below may wait for the table's lock.
			worker::LiveUpdate fresh;
			fresh.phase = row.phase;
			fresh.docs_copied = 0;
			fresh.copy_total = -1;
			fresh.copy_started = 0;
			fresh.copy_rate = -1;
			worker::ReportLive(name_, row.source, fresh);
		}
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
		Mapped &mapped = mapped_[row.source] = Mapped{std::move(writer), row.phase};
		// A copy that has not started yet gets its cut when it starts; any other mapping has one
		// (0 for mappings declared before cuts existed: every change touches them).
		if (row.phase != "pending" && !(Copying(row.phase) && row.copy_last_id.empty()))
			mapped.cut = row.cut;
		mapped.catch_up = row.catch_up && row.phase == "streaming";
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
	source_ = ConnectSource(river_);
	source_->Check();
	if (position_.kind != mongo::Position::Kind::kNow) {
		// A reconnect (after a source error, or a changed URI) resumes from the position last
		// committed: position_ moves with every batch applied (ApplyBatch). Resuming from the one the
		// worker loaded applied every change since then again (review 23).
	} else if (river_.position_json.empty()) {
		// Record the start point before copying: every change after it is streamed, and the copy
		// reads documents later than it (applying a change twice is idempotent).
		// Every change up to now is in the copy (it reads later than now) or, with copy: false, not
		// wanted: stream what comes after now.
		// The majority commit point: no write at or before it can still be committing, so the copy
		// that follows sees every write the stream skips.
		mongo::Timestamp now = StartTime();
		position_ = mongo::Position::OplogAfter(now);
		pg::Transaction txn;
		if (!catalog::SavePosition(name_, id_, position_.ToJson(), now.AsUint64(), false))
			throw RiverGone(sqlstate::kUndefinedObject, "river \"" + name_ + "\" was dropped");
		txn.Commit();
		reached_ = std::max(reached_, uint64(now.AsUint64()));
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
		if (!mapped.catch_up) // joins once caught up (CatchUp)
			namespaces.push_back({mapped.writer->Row().db, mapped.writer->Row().coll});
	// A mapped database is followed whole, so that changes to collections that appear in it later
	// reveal them (libmongoc 1.23 cannot ask for the "create" events of showExpandedEvents).
	for (const std::string &db : river_.databases)
		namespaces.push_back({db, ""});
	reopen_ = false;
	if (namespaces.empty())
		return;
	reader_for_copy_ = CopyPending();
	update_diffs_ = setting_apply_update_diffs;
	// Updates that need their documents are read with one query per batch (FlushLookups), which costs
	// the source less than updateLookup's lookup per event, except in history mode, where each one is
	// read on its own: a change stream keeps updateLookup when a history mapping needs every updated
	// document (a document column). An oplog reader would query per update itself: it never looks up.
	bool documents_needed = false;
	for (const auto &[source, mapped] : mapped_)
		documents_needed =
			documents_needed || (mapped.writer->History() && !mapped.writer->Converter().Mapping().document.empty());
	reader_lookups_ = !update_diffs_ || (river_.options.capture != "oplog" && documents_needed);
	if (river_.options.capture == "oplog") {
		mongo::OplogOptions options;
		options.namespaces = namespaces;
		options.update_lookup = reader_lookups_;
		if (reader_for_copy_)
			options.max_await_ms = kCopyStreamAwaitMs;
		oplog_ = std::make_unique<mongo::OplogReader>(*source_, options, position_);
	} else {
		mongo::StreamOptions options;
		options.namespaces = namespaces;
		options.update_lookup = !lookup_fallback_ && reader_lookups_;
		if (reader_for_copy_)
			options.max_await_ms = kCopyStreamAwaitMs;
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
	source_ = ConnectSource(river_);
	source_->Check();
	mongo::Timestamp now = StartTime();
	position_ = mongo::Position::OplogAfter(now);
	{
		pg::Transaction txn;
		catalog::BeginResync(name_);
		if (!catalog::SavePosition(name_, id_, position_.ToJson(), now.AsUint64(), false))
			throw RiverGone(sqlstate::kUndefinedObject, "river \"" + name_ + "\" was dropped");
		catalog::SetRiverPhase(name_, "resync", reason);
		txn.Commit();
	}
	phase_ = "resync";
	Load();
	if (!river_.enabled)
		return;
	OpenReader();
}

void RiverWorker::StopWithError(const std::string &message) {
	ereport(LOG, (errmsg("mongo_river: river \"%s\" stopped with an error: %s", name_.c_str(), message.c_str())));
	RecordRiverPhase("error", message);
}

// kMarginCheckIntervalMs is how often the oplog margin is measured.
constexpr int kMarginCheckIntervalMs = 10000;

// kOplogFullRatio: an oplog whose size reaches this share of its maxSize is at its cap (mongod
// truncates whole truncate markers, so a full oplog stays a little under maxSize).
constexpr double kOplogFullRatio = 0.9;

// OplogLosingHistory tells whether the source's oplog is dropping its oldest entries: at its size (or
// entry) cap, and older than oplogMinRetentionHours when that is set (mongod keeps entries younger
// than that beyond the cap). Unknown stats count as losing history: nothing says otherwise.
static bool OplogLosingHistory(const mongo::Source::OplogStats &stats, mongo::Timestamp oldest) {
	if (!stats.known)
		return true;
	bool at_cap = (stats.max_size > 0 && stats.size >= kOplogFullRatio * stats.max_size) ||
				  (stats.max_count > 0 && stats.count >= stats.max_count);
	if (!at_cap)
		return false;
	double age_hours = (double(time(nullptr)) - double(oldest.t)) / 3600.0;
	return stats.min_retention_hours <= 0 || age_hours >= stats.min_retention_hours;
}

// CheckOplogMargin measures how far the river's position is from the oldest entry the source's
// oplog still holds, publishes it, and warns (log + NOTIFY) when it falls below
// mongo_river.oplog_margin_warning while the oplog is really losing history (at its cap, and past
// oplogMinRetentionHours): past zero, the river has to resync. A young oplog below its cap loses
// nothing, however close its oldest entry is.
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
	bool low = margin < setting_oplog_margin_warning_s && OplogLosingHistory(source_->ReadOplogStats(), oldest);
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

void RiverWorker::StreamStep(bool copying) {
	if (!stream_ && !oplog_) {
		KeepPositionCurrent();
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
	const double read_start[2] = {WallMs(), CpuMs()};
	try {
		batch = stream_ ? stream_->NextBatch(max_events, max_ms) : oplog_->NextBatch(max_events, max_ms);
	} catch (const mongo::SourceError &error) {
		if (error.ServerCode() != kBsonObjectTooLarge || !stream_ || lookup_fallback_ || !reader_lookups_)
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
	const double apply_start[2] = {WallMs(), CpuMs()};
	ApplyBatch(batch);
	// Where a batch's time goes (log_min_messages = debug1): wall and the worker's CPU.
	if (!batch.events.empty())
		ereport(DEBUG1,
				(errmsg_internal("mongo_river: river \"%s\": %zu changes: read %.1f ms (CPU %.1f ms), "
								 "applied and committed %.1f ms (CPU %.1f ms)",
								 name_.c_str(), batch.events.size(), apply_start[0] - read_start[0],
								 apply_start[1] - read_start[1], WallMs() - apply_start[0], CpuMs() - apply_start[1])));
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
	if (!force_reload_ && !TimestampDifferenceExceeds(last_reload_check_, now, setting_naptime_ms))
		return false;
	last_reload_check_ = now;
	pg::Transaction txn;
	std::string digest = catalog::RiverDigest(name_);
	const std::vector<std::string> requested = catalog::RequestedResyncs(name_);
	txn.Commit();
	// A resync asked for again after one ended leaves the digest as the first request made it (its
	// count of requests is 1 both times: review 26, the second never ran): a requested collection the
	// worker holds in another phase is news too.
	const bool missed = std::any_of(requested.begin(), requested.end(), [&](const std::string &source) {
		auto it = mapped_.find(source);
		return it != mapped_.end() && it->second.phase != "resync";
	});
	if (digest == river_.digest && !missed && !force_reload_)
		return false;
	force_reload_ = false;
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
			catalog::AsCatalogOwner as_catalog_owner; // _discover checks the recorded caller: the owner
			pg::SpiExecute("SELECT mongo_river_internal._discover($1)", {{NAMEOID, pg::NameDatum(name_)}});
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

void RiverWorker::ReportSilence(int64_t silent_ms, void *data) {
	auto *self = static_cast<RiverWorker *>(data);
	const int64_t seconds = silent_ms / 1000;
	if (silent_ms < kSilenceReportMs || seconds == self->silence_reported_s_)
		return;
	self->silence_reported_s_ = seconds;
	try {
		worker::LiveUpdate live;
		live.phase = "retrying";
		live.error = "no reply from the source for " + std::to_string(seconds) + " s";
		worker::ReportLive(self->name_, "", live);
	} catch (...) {
		// Inside a libmongoc read nothing may be thrown; the next report tries again.
	}
}

void RiverWorker::EndSilence() {
	if (silence_reported_s_ == 0)
		return;
	silence_reported_s_ = 0;
	worker::LiveUpdate live;
	live.phase = phase_.empty() ? "streaming" : phase_;
	live.error = "";
	worker::ReportLive(name_, "", live);
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
	try {
		Load();
	} catch (const RiverGone &gone) {
		ereport(LOG, (errmsg("mongo_river: %s; this worker exits", gone.Message().c_str())));
		return;
	}
	if (!river_.enabled && !once_)
		return;
	// SilenceReporting installs ReportSilence for the worker's run (not for sync_once's backend).
	struct SilenceReporting {
		explicit SilenceReporting(RiverWorker *worker) { mongo::SetWaitReporter(ReportSilence, worker); }
		~SilenceReporting() { mongo::SetWaitReporter(nullptr, nullptr); }
	};
	std::optional<SilenceReporting> reporting;
	if (!once_)
		reporting.emplace(this);
	while (!ShutdownRequested()) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			// start() and alter_river() send SIGHUP too (signals.cpp): re-read the river at once.
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			last_reload_check_ = 0;
			if (setting_apply_update_diffs != update_diffs_)
				reopen_ = true; // the reader asks for lookups or not: open it again after this batch
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
			CatchUpMappings();
			bool copying = CopyStep();
			StreamStep(copying);
			EndSilence();
			CheckOplogMargin();
			backoff_ms_ = 0;
			if (!copying) {
				resyncs_ = 0;
				SetPhase("streaming", "");
			}
			once_caught_up_ = once_ && !copying && reached_ >= once_target_;
			if (once_ && (once_caught_up_ || GetCurrentTimestamp() >= once_deadline_))
				return;
		} catch (const RiverGone &gone) {
			catch_up_.reset();
			Disconnect();
			if (once_)
				throw;
			ereport(LOG, (errmsg("mongo_river: %s; this worker exits", gone.Message().c_str())));
			return;
		} catch (const StopRiver &stop) {
			Disconnect();
			StopWithError(stop.Message());
			if (once_)
				throw;
			return;
		} catch (const mongo::SourceError &error) {
			catch_up_.reset();
			Disconnect();
			if (error.Kind() == mongo::SourceErrorKind::kInterrupted && !once_)
				continue; // SIGTERM (the loop ends) or a cancel (CHECK_FOR_INTERRUPTS raises it)
			if (once_ && error.Kind() != mongo::SourceErrorKind::kHistoryLost)
				throw; // sync_once reports the problem to its caller (batches so far are committed)
			std::string message = error.Message() + (error.Detail().empty() ? "" : ": " + error.Detail());
			if (error.Kind() == mongo::SourceErrorKind::kHistoryLost) {
				try {
					StartResync(message);
				} catch (const mongo::SourceError &again) {
					Disconnect();
					if (again.Kind() == mongo::SourceErrorKind::kInterrupted)
						continue;
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
		} catch (const pg::PgError &) {
			// stop() cancels a worker that does not end on SIGTERM (waiting for a lock): the batch
			// rolled back and is read again next time; end as asked, without an error.
			if (!ShutdownRequested() || once_)
				throw;
			Disconnect();
			return;
		}
	}
}

} // namespace internal

BackgroundWorkerHandle *StartRiverWorker(const char *river, Oid owner, const std::string &river_id) {
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
	strlcpy(args.river_id, river_id.c_str(), sizeof(args.river_id));
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
	// One malloc arena for the process, the copy's reader thread included: with an arena of its own,
	// memory freed by one thread (an 8 MiB document's conversion) would not serve the other's next
	// allocation (the next reply), and a copy of large documents would hold one more of them.
	mallopt(M_ARENA_MAX, 1);
	// Allocations of 1 MiB or more (replies and documents of large documents) are mapped and given
	// back when freed. glibc's own threshold moves up to the largest block freed (up to 32 MiB) and
	// keeps twice that unreturned: after a copy of 8 MiB documents read on the reader thread, the
	// worker kept 16 MiB it no longer used.
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
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
	std::string river_id(args.river_id);
	mongo_river::pg::Guard([&] {
		// The worker acts for the river's owner (the role it logged in as) in every check it meets.
		mongo_river::catalog::CallerScope caller(GetUserId());
		mongo_river::worker::internal::RiverWorker(river, river_id).Run();
	});
	mongo_river::worker::ForgetRiverLive(river);
	ereport(LOG, (errmsg("mongo_river: worker for river \"%s\" stopped", args.river)));
	proc_exit(0);
}
