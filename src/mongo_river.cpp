// mongo_river.cpp: module magic, _PG_init and the configuration parameters.
#include <climits>

#include "mongo_river/api/secrets.hpp"
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/settings.hpp"
#include "mongo_river/worker/launcher.hpp"
#include "mongo_river/worker/live_status.hpp"
#include "mongo_river/pg/postgres.hpp"
#include "mongo_river/pg/utility_hook.hpp"

extern "C" {
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace mongo_river {

char *setting_database = nullptr;
int setting_max_workers = 8;
int setting_naptime_ms = 1000;
int setting_max_collections = 1000;
int setting_oplog_margin_warning_s = 3600;
bool setting_apply_update_diffs = true;
bool setting_copy_builds_tuples = true;
bool setting_copy_reads_ahead = true;

void DefineSettings() {
	DefineCustomStringVariable("mongo_river.database", "Database in which the mongo_river launcher runs rivers.",
							   "The extension must be created in this database.", &setting_database, "postgres",
							   PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("mongo_river.max_workers", "Maximum number of river workers running at once.", nullptr,
							&setting_max_workers, 8, 1, 1024, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("mongo_river.naptime", "How often the launcher checks rivers for changes in their state.",
							nullptr, &setting_naptime_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
							nullptr, nullptr);
	DefineCustomIntVariable("mongo_river.max_collections",
							"Rivers plus mapped collections whose live state shared memory holds.",
							"Beyond it, mongo_river.status shows the state last written to the catalog.",
							&setting_max_collections, 1000, 16, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("mongo_river.oplog_margin_warning",
							"Warn (log and NOTIFY) when a river's position is closer than this to the oldest "
							"entry of its source's oplog.",
							nullptr, &setting_oplog_margin_warning_s, 3600, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr,
							nullptr, nullptr);
	DefineCustomBoolVariable("mongo_river.apply_update_diffs",
							 "Apply update events from their update descriptions where the mapping allows it.",
							 "Off: every update event is applied from the document as the source has it when "
							 "the change is read (change streams' updateLookup, a find by _id for the oplog).",
							 &setting_apply_update_diffs, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomBoolVariable("mongo_river.copy_builds_tuples",
							 "Initial copies insert rows as heap tuples built from the documents.",
							 "Off: they go through COPY FROM text, as before 0.3.0 (slower, same rows).",
							 &setting_copy_builds_tuples, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomBoolVariable("mongo_river.copy_reads_ahead",
							 "Workers' copies read the next batch from MongoDB while they write the last one.",
							 "It is read on a thread of the worker, with a connection of its own. Off: one "
							 "after the other, on one connection.",
							 &setting_copy_reads_ahead, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	MarkGUCPrefixReserved("mongo_river");
}

} // namespace mongo_river

// _PG_init defines the settings, installs the utility hook that guards DROP EXTENSION and, when
// loaded through shared_preload_libraries, registers the launcher. Nothing here touches libmongoc:
// this runs in the postmaster.
void _PG_init(void) {
	mongo_river::DefineSettings();
	mongo_river::api::InstallLogFilter();
	mongo_river::catalog::InstallOwnerUtilityHook();
	mongo_river::pg::InstallUtilityHook();
	if (process_shared_preload_libraries_in_progress) {
		mongo_river::worker::RequestLiveStatus();
		mongo_river::worker::RegisterLauncher();
	}
}
