// catch_up.cpp: a river's timeline at its edges: each mapping's cut (no change at or before it
// touches the mapping), the catch-up of copy: false mappings declared while the river was ahead of
// their cut, the position of a river with nothing to read, and the river's identity.
#include "river_worker_internal.hpp"

namespace mongo_river::worker::internal {

// Touches tells whether event may change mapped: never at or before the mapping's cut, never DDL
// before its copy has started (the copy's start becomes the cut), nothing from the main reader while
// the mapping waits for its catch-up, and during a catch-up only that mapping's changes up to its limit.
bool RiverWorker::Touches(const Mapped &mapped, const mongo::ChangeEvent &event, bool ddl) const {
	uint64 time = event.cluster_time.AsUint64();
	if (catch_up_) {
		if (mapped.writer->Row().source != catch_up_->source || (time != 0 && time > catch_up_->limit))
			return false;
	} else if (mapped.catch_up) {
		return false;
	}
	if (!mapped.cut)
		return !ddl;
	return time == 0 || time > *mapped.cut;
}

// RequireRiver throws RiverGone unless the river of this name is still the one the worker runs.
void RiverWorker::RequireRiver() {
	if (!catalog::RiverIs(name_, id_))
		throw RiverGone(sqlstate::kUndefinedObject,
						"river \"" + name_ + "\" was dropped (or dropped and created again) while its worker ran");
}

// KeepPositionCurrent moves the position of a river that reads nothing (no mapping, no mapped
// database) to the source's current time once per naptime, so that wait_for_sync on it returns and
// a mapping added later does not start from an old position (where it would replay old events).
void RiverWorker::KeepPositionCurrent() {
	if (!source_ || !mapped_.empty() || !river_.databases.empty() || river_.options.dry_run)
		return;
	TimestampTz now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_position_refresh_, now, setting_naptime_ms))
		return;
	last_position_refresh_ = now;
	mongo::Timestamp time = StartTime();
	if (time.AsUint64() <= reached_)
		return;
	mongo::Position position = mongo::Position::OplogAfter(time);
	pg::Transaction txn;
	if (!catalog::SavePosition(name_, id_, position.ToJson(), time.AsUint64(), true))
		throw RiverGone(sqlstate::kUndefinedObject, "river \"" + name_ + "\" was dropped");
	txn.Commit();
	position_ = position;
	reached_ = time.AsUint64();
	worker::LiveUpdate live;
	live.caught_up = true;
	worker::ReportLive(name_, "", live);
}

void RiverWorker::CatchUpMappings() {
	std::vector<std::string> waiting;
	for (const auto &[source, mapped] : mapped_)
		if (mapped.catch_up)
			waiting.push_back(source);
	for (const std::string &source : waiting) {
		auto it = mapped_.find(source);
		if (it != mapped_.end() && it->second.catch_up)
			CatchUp(it->second);
	}
	if (!waiting.empty())
		OpenReader(); // the caught-up mappings join the river's reader
}

// CatchUp reads a copy: false mapping's changes from its cut up to the river's reached time with a
// reader of its own and applies them to it alone, each batch committed with the mapping's new cut;
// then the mapping joins the river's reader, which resumes after that time. A river still behind
// the cut needs no catch-up: its reader brings the mapping's changes after the cut.
void RiverWorker::CatchUp(Mapped &mapped) {
	const std::string source = mapped.writer->Row().source;
	uint64 cut = mapped.cut.value_or(0);
	uint64 limit = reached_;
	if (limit <= cut) {
		pg::Transaction txn;
		RequireRiver();
		if (!river_.options.dry_run)
			catalog::SaveCatchUp(name_, source, cut, true);
		txn.Commit();
		mapped.catch_up = false;
		return;
	}
	ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": reading the changes made since it was "
						 "mapped (copy: false) up to the river's position",
						 name_.c_str(), source.c_str())));
	mongo::Timestamp start{uint32_t(cut >> 32), uint32_t(cut & 0xffffffffu)};
	std::vector<mongo::Namespace> namespaces{{mapped.writer->Row().db, mapped.writer->Row().coll}};
	std::unique_ptr<mongo::ChangeStreamReader> stream;
	std::unique_ptr<mongo::OplogReader> oplog;
	if (river_.options.capture == "oplog") {
		mongo::OplogOptions options;
		options.namespaces = namespaces;
		options.update_lookup = true;
		oplog = std::make_unique<mongo::OplogReader>(*source_, options, mongo::Position::OplogAfter(start));
	} else {
		mongo::StreamOptions options;
		options.namespaces = namespaces;
		options.update_lookup = true;
		stream = std::make_unique<mongo::ChangeStreamReader>(*source_, options, mongo::Position::OplogAfter(start));
	}
	catch_up_ = CatchUpRun{source, limit};
	while (!ShutdownRequested() && catch_up_) {
		CHECK_FOR_INTERRUPTS();
		mongo::Batch batch = stream ? stream->NextBatch(size_t(river_.options.batch_size), river_.options.batch_ms)
									: oplog->NextBatch(size_t(river_.options.batch_size), river_.options.batch_ms);
		ApplyBatch(batch); // ends catch_up_ once the limit is reached (or the mapping stopped)
	}
	catch_up_.reset();
}

} // namespace mongo_river::worker::internal
