// state.hpp: what the worker writes to the catalog: position, phases, counters, rejects. Each call
// runs inside the caller's transaction, so it commits (or aborts) with the rows it describes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::catalog {

// SavePosition stores the river's stream position (Extended JSON) and the source time reached, if the
// river named river is still the one whose id is river_id; false (nothing written) when it is gone
// or was created again (another id): the caller must then roll back and stop acting for it.
[[nodiscard]] bool SavePosition(const std::string &river, const std::string &river_id, const std::string &position_json,
								uint64_t reached, bool caught_up);

// RiverIs tells whether river exists with the id river_id (a fresh snapshot of the catalog).
bool RiverIs(const std::string &river, const std::string &river_id);

// SaveCatchUp records how far a copy: false mapping's catch-up has read (its new cut) and whether it
// is done (catch_up cleared).
void SaveCatchUp(const std::string &river, const std::string &source, uint64_t cut, bool done);

// SetRiverPhase records the river's phase and last error (empty: cleared).
void SetRiverPhase(const std::string &river, const std::string &phase, const std::string &error);

// MappingProgress is one batch's effect on a mapping's counters.
struct MappingProgress {
	int64_t changes = 0;
	std::optional<int64_t> last_wall_ms; // wallTime of the last change, ms since the Unix epoch
};

// AddMappingProgress adds a batch's changes to a mapping's counters.
void AddMappingProgress(const std::string &river, const std::string &source, const MappingProgress &progress);

// SaveCopyProgress records a copy batch: the last copied {_id} (BSON bytes), the documents copied
// and the phase ('initial_copy' while copying, 'streaming' when done); cut (the copy's start), when
// given, becomes the mapping's cut (and ends a pending catch-up: the copy covers it). Only the copy
// the worker runs: started (its start, 0: none recorded) and previous (the position before this
// batch) must still be the catalog's; false, and nothing written, when they are not (a resync()
// or a map_collection again reset the copy meanwhile: this batch belongs to a copy that is over).
bool SaveCopyProgress(const std::string &river, const std::string &source, const std::string &last_id, int64_t copied,
					  const std::string &phase, std::optional<uint64_t> cut, TimestampTz started,
					  const std::string &previous);

// StartCopy records that a copy of a mapping starts from the beginning at started: docs_copied
// restarts at 0 and total (the source's estimated count, -1 unknown) is kept for copy_progress.
void StartCopy(const std::string &river, const std::string &source, int64_t total, TimestampTz started);

// SetMappingPhase records a mapping's phase and last error (empty: cleared).
void SetMappingPhase(const std::string &river, const std::string &source, const std::string &phase,
					 const std::string &error);

// NotifyPhase announces a phase change (source empty: the river's own) with NOTIFY mongo_river and
// a log line; it is sent when the transaction commits.
void NotifyPhase(const std::string &river, const std::string &source, const std::string &phase,
				 const std::string &error, bool live = true);

// NotifyEvent sends NOTIFY mongo_river about another event of a river (e.g. "oplog_margin").
void NotifyEvent(const std::string &river, const std::string &source, const std::string &event,
				 const std::string &detail);

// BeginResync marks every running mapping of river for a re-copy (phase 'resync', copy restarted)
// and forgets the keys seen by an earlier resync.
void BeginResync(const std::string &river);

// Reject is a change that could not be applied.
struct Reject {
	std::string source;
	std::string document_id;
	bool has_id = false; // document_id is an _id's text (even ""); else empty means none (NULL)
	std::string operation;
	std::optional<std::string> document_json; // relaxed Extended JSON, when jsonb can hold it
	std::string raw;                          // the BSON as received
	std::string error;
	bool replace_copy = false; // a resync's copy: replaces the reject a copy before made of the document
};

// AddReject records a reject and counts it. A resync's copy reject (replace_copy) of a document a copy
// before rejected replaces that reject (reason, document, time) and is not counted again: it returns
// false then.
bool AddReject(const std::string &river, const Reject &reject);

// CountReject counts a reject that is not recorded (a dry run's).
void CountReject(const std::string &river, const std::string &source);

// DropCopiedRejects deletes, at the end of a copy of source (a resync), the rejects of the copies
// before it that it did not reject again (their documents were copied, or are gone); returns how many.
uint64_t DropCopiedRejects(const std::string &river, const std::string &source);

} // namespace mongo_river::catalog
