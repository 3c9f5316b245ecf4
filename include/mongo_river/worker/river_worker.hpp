// river_worker.hpp: the dynamic background worker that runs one river.
#pragma once

#include <string>

#include "mongo_river/pg/postgres.hpp"

struct BackgroundWorkerHandle;

namespace mongo_river::worker {

// WorkerArgs travel in bgw_extra from the launcher to a river worker.
struct WorkerArgs {
	Oid database;
	char river[NAMEDATALEN];
	char river_id[40]; // river.id (a uuid's text): the worker acts for this river only
};

// StartRiverWorker registers a dynamic worker for river (whose id is river_id), connecting as owner;
// returns its handle (nullptr when no slot is free).
::BackgroundWorkerHandle *StartRiverWorker(const char *river, Oid owner, const std::string &river_id);

// SyncOnce runs river in the calling backend until every change up to the source's current time is
// applied (or timeout_ms passes), committing per batch; returns the changes and documents applied.
// Call it with pg::ProcedureTransactions in effect.
int64 SyncOnce(const std::string &river, int64 timeout_ms);

} // namespace mongo_river::worker

extern "C" {
// mongo_river_worker_main is a river worker's entry point, called by the postmaster by name.
__attribute__((visibility("default"))) void mongo_river_worker_main(unsigned long arg);
}
