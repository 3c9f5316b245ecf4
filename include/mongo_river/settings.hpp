// settings.hpp: the mongo_river.* configuration parameters (GUCs).
#pragma once

namespace mongo_river {

// DefineSettings registers every mongo_river.* GUC; called from _PG_init.
void DefineSettings();

// The current values, owned by PostgreSQL's GUC machinery.
extern char *setting_database;             // mongo_river.database: the database the launcher serves
extern int setting_max_workers;            // mongo_river.max_workers: cap on river workers
extern int setting_naptime_ms;             // mongo_river.naptime: launcher's check interval
extern int setting_max_collections;        // mongo_river.max_collections: live status entries
extern int setting_oplog_margin_warning_s; // mongo_river.oplog_margin_warning: warn below this margin
extern bool setting_copy_reads_ahead;      // mongo_river.copy_reads_ahead: copies read on a thread, one batch ahead
extern bool setting_apply_update_diffs;    // mongo_river.apply_update_diffs: updates from their diffs
// mongo_river.copy_builds_tuples: initial copies insert heap tuples (off: COPY FROM text)
extern bool setting_copy_builds_tuples;

} // namespace mongo_river
