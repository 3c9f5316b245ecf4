// copy_step.cpp: the initial copy (and resyncs) of a river's collections, one batch per transaction
// with the copy's progress.
#include "river_worker_internal.hpp"

namespace mongo_river::worker::internal {

bool RiverWorker::CopyDocuments(Mapped &mapped, const std::vector<mongo::Bson> &docs, bool isolate) {
	try {
		int64 copied = 0;
		pg::Transaction txn;
		std::string phase = scan_->Done() ? "streaming" : mapped.phase == "resync" ? "resync" : "initial_copy";
		{
			pg::SpiConnection spi;
			catalog::LockRiver(name_);
			RequireRiver();
			pending_.clear();
			txn_rejects_.clear();
			// An initial copy's documents go to copy_.rows (see CopyBatch); a resync's keys are
			// recorded as seen, so it goes through pending_. (The batch before ended in its guard.)
			copy_.repeats = 0;
			copy_.on = Batched(mapped, isolate) && mapped.phase != "resync";
			struct End { // the batch's copy state, also when a row's write throws (views into docs)
				CopyBatch &batch;
				~End() { batch.End(); }
			} end{copy_};
			copy_.docs.reserve(copy_.on ? docs.size() : 0);
			for (const mongo::Bson &doc : docs) {
				apply::ChangeInfo change{"copy", scan_started_.AsUint64(), std::nullopt, {}};
				if (mapped.writer->History()) // only a history row records where its version came from
					change.position =
						"copy:" + Hex(scan_started_.AsUint64()) + ":" + convert::DocumentIdText(doc.get());
				ApplyDocument(mapped, *doc, change, isolate);
			}
			if (copy_.on) {
				const std::vector<const convert::ConvertedDocument *> rows = copy_.Rows();
				if (!TryCopyRows(mapped, rows)) {
					UpsertLastOfEachKey(mapped, rows);
					for (std::string_view doc : copy_.docs)
						CountCopied(doc);
				}
			}
			FlushPending(mapped.phase != "resync");
			if (scan_->Done() && mapped.phase == "resync" && !river_.options.dry_run) {
				uint64 deleted = mapped.writer->DeleteUnseen(name_, scan_started_.AsUint64());
				ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": resync deleted %lu rows of "
									 "documents that no longer exist",
									 name_.c_str(), mapped.writer->Row().source.c_str(), (unsigned long)deleted)));
			}
			if (scan_->Done() && mapped.phase == "resync" && !river_.options.dry_run)
				catalog::DropCopiedRejects(name_, mapped.writer->Row().source);
			// Rejects apart, and a document the source returned twice counts once.
			copied = int64(docs.size()) - txn_rejects_[mapped.writer->Row().source] - copy_.repeats;
			if (!catalog::SaveCopyProgress(name_, mapped.writer->Row().source, RawBytes(scan_->LastId()), copied, phase,
										   scan_cut_, mapped.copy_started, mapped.copy_from))
				throw CopyReset();
			if (phase != mapped.phase)
				catalog::NotifyPhase(name_, mapped.writer->Row().source, phase, "", false); // live: committed
		}
		txn.Commit();
		if (phase != mapped.phase) {
			// status shows the new phase once its rows are visible (review 27's bench run: "streaming"
			// while the last batch was still committing, 40,000 of 50,000 rows there).
			worker::LiveUpdate live;
			live.phase = phase;
			worker::ReportLive(name_, mapped.writer->Row().source, live);
		}
		if (scan_->Done())
			copy_.Release(); // the copy is over: its rows' storage goes
		scan_cut_.reset();   // saved with the copy's first batch
		mapped.phase = phase;
		mapped.copied_id = mapped.copy_from = RawBytes(scan_->LastId());
		applied_ += int64(docs.size());
		ReportCopyRate(mapped.writer->Row().source, totals_[mapped.writer->Row().source].first += copied);
		return true;
	} catch (const pg::PgError &) {
		if (isolate)
			throw;
		return false;
	}
}

// kCopyRateMarkMs is how often the copy rate's window moves: the rate covers the last 5 to 10 s.
constexpr int kCopyRateMarkMs = 5000;

// ReportCopyRate publishes a copy's documents copied so far and its recent rate.
void RiverWorker::ReportCopyRate(const std::string &source, int64 copied) {
	TimestampTz now = GetCurrentTimestamp();
	if (TimestampDifferenceExceeds(copy_rate_.mark_time, now, kCopyRateMarkMs)) {
		copy_rate_.prev_time = copy_rate_.mark_time;
		copy_rate_.prev_docs = copy_rate_.mark_docs;
		copy_rate_.mark_time = now;
		copy_rate_.mark_docs = copied;
	}
	worker::LiveUpdate live;
	live.docs_copied = copied;
	double seconds = double(now - copy_rate_.prev_time) / USECS_PER_SEC;
	if (seconds >= 0.2)
		live.copy_rate = double(copied - copy_rate_.prev_docs) / seconds;
	worker::ReportLive(name_, source, live);
}

bool RiverWorker::CopyPending() const {
	return std::any_of(mapped_.begin(), mapped_.end(), [](const auto &entry) { return Copying(entry.second.phase); });
}

bool RiverWorker::CopyStep() {
	auto it =
		std::find_if(mapped_.begin(), mapped_.end(), [](const auto &entry) { return Copying(entry.second.phase); });
	if (it == mapped_.end())
		return false;
	Mapped &mapped = it->second;
	const catalog::MappingRow &row = mapped.writer->Row();
	if (!scan_ || scan_source_ != row.source) {
		mongo::Bson last;
		const std::string &last_id = mapped.copied_id.empty() ? row.copy_last_id : mapped.copied_id;
		if (mapped.phase != "pending" && !last_id.empty())
			last.reset(bson_new_from_data(reinterpret_cast<const uint8_t *>(last_id.data()), last_id.size()));
		// A worker's copy reads on a thread of its own, one batch ahead of the writes
		// (mongo_river.copy_reads_ahead); sync_once's reads on its backend's one thread.
		const bool ahead = !once_ && setting_copy_reads_ahead;
		// The copy's first line comes before its work (the reader's connection, the source's count,
		// the catalog's start): the bench times a copy from it to "initial copy done".
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": %s initial copy%s", name_.c_str(),
							 row.source.c_str(), last ? "resuming" : "starting",
							 ahead ? " (reading ahead on a thread)" : "")));
		scan_ = std::make_unique<mongo::ScanAhead>(*source_, ahead ? ConnectSource(river_) : nullptr, row.db, row.coll,
												   last.get(), river_.options.batch_size * int32_t(kCopyBatchFactor));
		if (ahead && !scan_->Threaded())
			ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": no reader thread could be started: "
								 "the copy reads on the river's connection",
								 name_.c_str(), row.source.c_str())));
		// A fresh copy's start is the mapping's cut: the copy reads later than the majority commit
		// point, so no change at or before it can be missing from it, and no DDL before it applies.
		scan_cut_.reset();
		if (!last) {
			scan_cut_ = StartTime().AsUint64();
			mapped.cut = scan_cut_;
			mapped.catch_up = false;
		}
		scan_source_ = row.source;
		scan_stream_mark_ = mapped.stream_changes;
		scan_started_ = source_->OperationTime();
		TimestampTz started = GetCurrentTimestamp();
		copy_rate_ = CopyRate{started, started, 0, 0};
		worker::LiveUpdate live;
		live.copy_rate = -1;
		if (!last) {
			// A copy from the start: its counters restart, with the source's estimated count now.
			int64 total = source_->EstimatedCount(row.db, row.coll);
			pg::Transaction txn;
			catalog::StartCopy(name_, row.source, total, started);
			txn.Commit();
			totals_[row.source].first = 0;
			live.docs_copied = 0;
			live.copy_total = total;
			live.copy_started = started;
			mapped.copy_started = started;
		} else {
			copy_rate_.prev_docs = copy_rate_.mark_docs = totals_[row.source].first;
			if (!mapped.copy_started)
				mapped.copy_started = row.copy_started_at;
		}
		mapped.copy_from = last_id;
		worker::ReportLive(name_, row.source, live);
	}
	// The stream was read since the scan's last batch: the documents the cursor still holds (the
	// rest of a reply) can be older than a change it applied to them meanwhile; written now they
	// would undo it (an update reverted, a deleted document back). Read them afresh instead: every
	// change the stream applied is then in them, and later ones come after, through the stream.
	if (mapped.stream_changes != scan_stream_mark_)
		scan_->Restart();
	// A copy transaction takes up to kCopyBatchFactor x batch_size documents (at most kMaxBatchBytes
	// of BSON): copied rows go in through COPY, where a commit per few thousand rows would cost
	// more than the rows themselves.
	const double fetch_start[2] = {WallMs(), CpuMs()};
	std::vector<mongo::Bson> docs = scan_->NextBatch(size_t(river_.options.batch_size) * kCopyBatchFactor);
	scan_stream_mark_ = mapped.stream_changes;
	const double write_start[2] = {WallMs(), CpuMs()};
	try {
		if (!CopyDocuments(mapped, docs, false))
			CopyDocuments(mapped, docs, true);
	} catch (const CopyReset &) {
		// resync() again, or the collection mapped again, while this batch was written: written on,
		// the old copy's position would overwrite the new one's, and the new resync would then delete
		// the rows the old copy had passed (review 27). The batch is undone; the worker reloads.
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": the copy was reset while a batch "
							 "was written (resync, or mapped again): starting it again",
							 name_.c_str(), row.source.c_str())));
		scan_.reset();
		scan_source_.clear();
		force_reload_ = true;
		return true;
	}
	// Where a copy's time goes, batch by batch (log_min_messages = debug1): wall and the worker's CPU.
	ereport(DEBUG1, (errmsg("mongo_river: river \"%s\", collection \"%s\": copied %zu documents: read %.1f ms "
							"(CPU %.1f ms), written and committed %.1f ms (CPU %.1f ms)",
							name_.c_str(), row.source.c_str(), docs.size(), write_start[0] - fetch_start[0],
							write_start[1] - fetch_start[1], WallMs() - write_start[0], CpuMs() - write_start[1])));
	if (scan_->Done()) {
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": initial copy done, streaming",
							 name_.c_str(), row.source.c_str())));
		docs.clear(); // (before the scan whose reply its last document may be read from)
		docs.shrink_to_fit();
		scan_.reset();
		scan_source_.clear();
		if (reader_for_copy_ && !CopyPending())
			reopen_ = true; // back to the usual wait for new events
	}
	return true;
}

} // namespace mongo_river::worker::internal
