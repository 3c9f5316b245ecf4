// utility_hook.cpp: the ProcessUtility_hook that guards DROP EXTENSION mongo_river. Without
// CASCADE (DROP_RESTRICT) it refuses while rivers exist, since dropping the extension silently
// removes their declarations and positions. With CASCADE (or when no river exists) it names the
// pg_cron jobs that call mongo_river functions, then ends every river worker of the database and
// waits for it (each logs one "stopped" line), so that no worker touches the catalog being dropped.
// The rivers' tables are not members of the extension: they are never dropped with it.
#include "mongo_river/pg/utility_hook.hpp"

#include <cstring>
#include <string>

#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/worker/signals.hpp"

extern "C" {
#include "commands/extension.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
}

namespace mongo_river::pg {

namespace {

constexpr const char *kExtension = "mongo_river";

// kStopTimeoutMs bounds the wait for the workers to exit before the extension is dropped.
constexpr int kStopTimeoutMs = 10000;

ProcessUtility_hook_type previous_hook = nullptr;

// DropsOurExtension tells whether parsetree is a DROP EXTENSION whose list names mongo_river and
// mongo_river exists in this database (with IF EXISTS it may not: then there is nothing to guard).
bool DropsOurExtension(Node *parsetree) {
	if (!parsetree || !IsA(parsetree, DropStmt))
		return false;
	auto *drop = reinterpret_cast<DropStmt *>(parsetree);
	if (drop->removeType != OBJECT_EXTENSION)
		return false;
	ListCell *cell;
	foreach (cell, drop->objects) {
		Node *name = static_cast<Node *>(lfirst(cell));
		if (IsA(name, String) && strcmp(strVal(name), kExtension) == 0)
			return OidIsValid(get_extension_oid(kExtension, true));
	}
	return false;
}

// NoticeCronJobs names the pg_cron jobs (if pg_cron is installed in this database) whose command
// calls a mongo_river function: they would fail from now on.
void NoticeCronJobs() {
	SpiExecute("SELECT to_regclass('cron.job') IS NOT NULL", {}, true);
	if (SpiText(0, 1).value_or("f") != "t")
		return;
	if (SpiExecute("SELECT string_agg(format('%s (jobid %s): %s', coalesce(jobname, '-'), jobid, command), '; '"
				   " ORDER BY jobid), string_agg(jobid::text, ', ' ORDER BY jobid)"
				   " FROM cron.job WHERE command ~* 'mongo_river\\s*\\.'",
				   {}, true) == 0)
		return;
	std::optional<std::string> jobs = SpiText(0, 1);
	if (!jobs)
		return;
	std::string ids = SpiText(0, 2).value_or("");
	Call([&] {
		ereport(NOTICE, (errmsg("DROP EXTENSION mongo_river: pg_cron jobs call mongo_river functions and will fail: %s",
								jobs->c_str()),
						 errhint("Remove them: SELECT cron.unschedule(jobid) FROM cron.job WHERE jobid IN (%s);",
								 ids.c_str())));
	});
}

// BeforeDrop runs before DROP EXTENSION mongo_river: refuses a RESTRICT drop while rivers exist,
// otherwise names the pg_cron jobs that call us and ends the river workers.
void BeforeDrop(DropBehavior behavior) {
	{
		SpiConnection spi;
		SpiExecute("SELECT to_regclass('mongo_river.river') IS NOT NULL", {}, true);
		if (SpiText(0, 1).value_or("f") == "t") {
			SpiExecute("SELECT count(*), string_agg(format('%I', river), ', ' ORDER BY river) FROM mongo_river.river",
					   {}, true);
			std::string count = SpiText(0, 1).value_or("0");
			if (behavior == DROP_RESTRICT && count != "0")
				throw Error("2BP01",
							"cannot drop extension mongo_river because " + count +
								" river(s) exist: " + SpiText(0, 2).value_or(""),
							"Dropping the extension removes the rivers' declarations, positions and rejects "
							"(their tables stay).",
							"Drop the rivers first (SELECT mongo_river.drop_river(river) FROM mongo_river.river), or "
							"use DROP EXTENSION mongo_river CASCADE.");
		}
		NoticeCronJobs();
	}
	worker::StopProcesses(worker::FindRiverWorkers(""), "DROP EXTENSION mongo_river", "a river worker", kStopTimeoutMs);
}

// UtilityHook is our ProcessUtility_hook: it guards DROP EXTENSION mongo_river, then runs the
// statement as the previous hook (or PostgreSQL) would.
void UtilityHook(PlannedStmt *pstmt, const char *query_string, bool read_only_tree, ProcessUtilityContext context,
				 ParamListInfo params, QueryEnvironment *query_env, DestReceiver *dest, QueryCompletion *qc) {
	if (DropsOurExtension(pstmt->utilityStmt)) {
		DropBehavior behavior = reinterpret_cast<DropStmt *>(pstmt->utilityStmt)->behavior;
		Guard([&] { BeforeDrop(behavior); });
	}
	if (previous_hook)
		previous_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
	else
		standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
}

} // namespace

void InstallUtilityHook() {
	previous_hook = ProcessUtility_hook;
	ProcessUtility_hook = UtilityHook;
}

} // namespace mongo_river::pg
