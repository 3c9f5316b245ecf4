// sync_once.cpp: a river run once by a backend (CALL mongo_river.sync_once), recorded in
// mongo_river.sync_runs.
#include "river_worker_internal.hpp"

#include "mongo_river/catalog/identity.hpp"

namespace mongo_river::worker {

namespace {

// RecordSyncRun writes a sync_once run into mongo_river.sync_runs in its own transaction (pg_cron
// keeps only "CALL" as a procedure's result, and a NOTICE not at all).
void RecordSyncRun(const std::string &river, TimestampTz started, int64 applied, const char *outcome,
				   const std::string &error) {
	pg::Transaction txn;
	{
		// The role the call acts for: admins hold no DML on the catalog (sync_runs included).
		std::string run_by = GetUserNameFromId(catalog::CallerOid(), false);
		catalog::AsCatalogOwner as_catalog_owner;
		pg::SpiConnection spi;
		pg::SpiExecute(
			"INSERT INTO mongo_river.sync_runs (river, started_at, finished_at, applied, outcome, error, run_by)"
			" VALUES ($1, $2, clock_timestamp(), $3, $4, $5, $6)",
			{{NAMEOID, pg::NameDatum(river)},
			 {TIMESTAMPTZOID, TimestampTzGetDatum(started)},
			 {INT8OID, Int64GetDatum(applied)},
			 {TEXTOID, pg::TextDatum(outcome)},
			 {TEXTOID, error.empty() ? std::nullopt : std::optional<Datum>(pg::TextDatum(error))},
			 {NAMEOID, pg::NameDatum(run_by)}});
	}
	txn.Commit();
}

} // namespace

int64 SyncOnce(const std::string &river, int64 timeout_ms) {
	TimestampTz started = GetCurrentTimestamp();
	internal::RiverWorker worker(river);
	std::string failure;
	try {
		int64 applied = worker.RunOnce(timeout_ms);
		RecordSyncRun(river, started, applied, worker.OnceCaughtUp() ? "caught_up" : "timeout", "");
		return applied;
	} catch (const pg::PgError &error) {
		failure = error.what();
		RecordSyncRun(river, started, worker.Applied(), "error", failure);
		throw;
	} catch (const Error &error) {
		failure = error.Message();
		RecordSyncRun(river, started, worker.Applied(), "error", failure);
		throw;
	}
}

} // namespace mongo_river::worker
