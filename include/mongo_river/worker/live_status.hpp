// live_status.hpp: each river's and collection's live state in shared memory (phase, counters,
// last source time, worker pid, last error, oplog margin), so that mongo_river.status shows it
// without a catalog write per change. The catalog keeps what must survive a restart (positions,
// phases) and a copy of the counters, refreshed every few seconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::worker {

// RequestLiveStatus asks the postmaster for the shared memory (from _PG_init's shmem_request_hook).
void RequestLiveStatus();
// InitLiveStatus attaches to (and in the postmaster creates) the shared memory (shmem_startup_hook).
void InitLiveStatus();

// LiveUpdate is what a worker reports about a collection (source) or, with source empty, its river.
struct LiveUpdate {
	std::string phase;
	std::optional<int64> docs_copied; // totals, not increments
	std::optional<int64> changes_applied;
	std::optional<int64> last_source_ms; // wallTime of the last applied change, ms since 1970
	std::optional<bool> caught_up;
	std::optional<std::string> error;    // empty string clears it
	std::optional<int64> oplog_margin_s; // river: seconds between the position and the oldest entry
	// Copy progress (collection): when the copy began, the source's estimated count then (-1:
	// unknown) and the recent rate in documents per second.
	std::optional<TimestampTz> copy_started;
	std::optional<int64> copy_total;
	std::optional<double> copy_rate;
	// River: wallTime (ms) of the oldest change seen and not applied yet (0: none), and of the
	// newest change seen.
	std::optional<int64> oldest_pending_ms;
	std::optional<int64> newest_seen_ms;
	// River: why it has no worker yet (waiting for a worker slot); empty clears it.
	std::optional<std::string> waiting;
	// Report as this process's worker (false: the launcher reports about a river it cannot start).
	bool as_worker = true;
};

// ReportLive records an update for river/source with this process as its worker.
void ReportLive(const std::string &river, const std::string &source, const LiveUpdate &update);

// ForgetRiverLive marks river's entries as no longer run by a worker (its worker is exiting).
void ForgetRiverLive(const std::string &river);

} // namespace mongo_river::worker
