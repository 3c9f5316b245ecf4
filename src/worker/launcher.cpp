// launcher.cpp: the launcher background worker: one per cluster, serving mongo_river.database.
#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "mongo_river/catalog/river.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/transaction.hpp"
#include "mongo_river/worker/river_worker.hpp"
#include "mongo_river/settings.hpp"
#include "mongo_river/worker/launcher.hpp"
#include "mongo_river/worker/live_status.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace mongo_river::worker {

namespace {

// The launcher is restarted this many seconds after it exits with a non-zero code or crashes.
constexpr int kLauncherRestartSeconds = 5;

// ExtensionReady tells whether the extension exists in this database and can be used now.
bool ExtensionReady() {
	if (RecoveryInProgress())
		return false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	bool ready = OidIsValid(get_extension_oid("mongo_river", true));
	CommitTransactionCommand();
	return ready;
}

// kMaxRestartDelayMs caps the delay before a failed river worker is started again.
constexpr int kMaxRestartDelayMs = 60000;

// RiverSlot is the launcher's view of one river's worker.
struct RiverSlot {
	std::string id; // the river the worker runs (river.id): a river created again is another one
	BackgroundWorkerHandle *handle = nullptr;
	TimestampTz started_at = 0;
	TimestampTz next_start = 0;
	int failures = 0;
	Oid owner = InvalidOid; // the role the worker logged in as
	bool stopping = false;  // the launcher ended the worker (its owner changed or cannot log in): no failure
	std::string waiting;    // why it has no worker (said once in the log, and in status while it lasts)
};

// ReportWaiting says in mongo_river.status (last_error) and, once per wait and reason, in the log
// why a river has no worker: every slot of mongo_river.max_workers is taken, the server has no
// background worker slot left (max_worker_processes), or its owner cannot log in; an empty reason
// clears it. The status is written again on every pass: an exiting worker clears its river's
// live entries.
void ReportWaiting(const std::string &river, RiverSlot &slot, const std::string &reason) {
	if (reason.empty() && slot.waiting.empty())
		return;
	LiveUpdate live;
	live.as_worker = false;
	live.waiting = reason;
	ReportLive(river, "", live);
	if (!reason.empty() && reason != slot.waiting)
		ereport(LOG, (errmsg("mongo_river launcher: river \"%s\" %s", river.c_str(), reason.c_str())));
	slot.waiting = reason;
}

// OwnerProblem says why river's owner cannot run its worker (empty: it can). The worker logs in as
// the owner (BackgroundWorkerInitializeConnectionByOid), which fails with FATAL for a role that
// does not exist or has NOLOGIN; the launcher does not start it then.
std::string OwnerProblem(const catalog::LauncherEntry &river) {
	if (river.owner_name.empty())
		return "has no worker: its owner (role with OID " + std::to_string(river.owner) +
			   ") does not exist, it was dropped (from another database, where DROP ROLE cannot see the rivers); "
			   "a superuser can drop the river (mongo_river.drop_river)";
	if (!river.owner_can_login) {
		const char *name = pg::Call([&] { return quote_identifier(river.owner_name.c_str()); });
		return "has no worker: its owner \"" + river.owner_name +
			   "\" cannot log in (NOLOGIN) and the worker logs in as the owner; ALTER ROLE " + name +
			   " LOGIN lets it run again, REASSIGN OWNED BY " + name + " TO another role gives it away";
	}
	return {};
}

// StopSlot asks a river's worker to stop (SIGTERM) and forgets its handle.
void StopSlot(RiverSlot &slot) {
	if (slot.handle)
		TerminateBackgroundWorker(slot.handle);
	slot.handle = nullptr;
}

// RunningCount counts slots whose worker is starting or running.
int RunningCount(const std::map<std::string, RiverSlot> &slots) {
	int count = 0;
	for (const auto &[name, slot] : slots)
		if (slot.handle)
			count++;
	return count;
}

// Reconcile starts a worker for every runnable river that has none (within max_workers, with capped
// backoff after failures) and stops the workers of rivers that are gone, stopped or in error.
// Returns when the launcher should look again at the latest: the earliest delayed start.
TimestampTz Reconcile(std::map<std::string, RiverSlot> &slots) {
	std::vector<catalog::LauncherEntry> rivers;
	{
		pg::Transaction txn;
		rivers = catalog::ListRivers();
		txn.Commit();
	}
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_pass = 0;
	std::map<std::string, const catalog::LauncherEntry *> wanted;
	for (const catalog::LauncherEntry &river : rivers)
		wanted[river.name] = &river;
	for (auto it = slots.begin(); it != slots.end();) {
		auto found = wanted.find(it->first);
		// A river dropped and created again under the same name is another river: its slot starts over.
		if (found == wanted.end() || !found->second->runnable || found->second->id != it->second.id) {
			ReportWaiting(it->first, it->second, "");
			StopSlot(it->second);
			it = slots.erase(it);
		} else {
			++it;
		}
	}
	for (const catalog::LauncherEntry &river : rivers) {
		if (!river.runnable)
			continue;
		RiverSlot &slot = slots[river.name];
		slot.id = river.id;
		std::string owner_problem = OwnerProblem(river);
		// A worker whose owner cannot log in any more, or runs as the river's previous owner
		// (REASSIGN OWNED): end it; the next one starts (as the new owner) once it has exited.
		if (slot.handle && !slot.stopping && (!owner_problem.empty() || slot.owner != river.owner)) {
			TerminateBackgroundWorker(slot.handle);
			slot.stopping = true;
		}
		if (!owner_problem.empty())
			ReportWaiting(river.name, slot, owner_problem);
		if (slot.handle) {
			pid_t pid;
			if (GetBackgroundWorkerPid(slot.handle, &pid) != BGWH_STOPPED)
				continue;
			pfree(slot.handle);
			slot.handle = nullptr;
			if (slot.stopping) {
				slot.stopping = false;
				slot.failures = 0;
				slot.next_start = 0;
			} else {
				// The worker ended: quickly means it failed; back off before the next start.
				bool ran_long = TimestampDifferenceExceeds(slot.started_at, now, kMaxRestartDelayMs);
				slot.failures = ran_long ? 1 : slot.failures + 1;
				int delay = std::min(kMaxRestartDelayMs, 1000 << std::min(slot.failures, 6));
				slot.next_start = TimestampTzPlusMilliseconds(now, delay);
			}
		}
		if (!owner_problem.empty())
			continue;
		if (now < slot.next_start) {
			next_pass = next_pass ? std::min(next_pass, slot.next_start) : slot.next_start;
			continue;
		}
		if (RunningCount(slots) >= setting_max_workers) {
			ReportWaiting(
				river.name, slot,
				"waits for a worker slot: all mongo_river.max_workers = " + std::to_string(setting_max_workers) +
					" are taken (raise mongo_river.max_workers, and max_worker_processes with it)");
			continue;
		}
		slot.handle = StartRiverWorker(river.name.c_str(), river.owner, river.id);
		slot.started_at = now;
		slot.owner = river.owner;
		if (!slot.handle)
			ReportWaiting(river.name, slot,
						  "waits for a worker slot: the server has no background worker slot left "
						  "(max_worker_processes = " +
							  std::to_string(max_worker_processes) +
							  ", shared with the launcher, pg_cron and parallel query; raise it, within "
							  "mongo_river.max_workers = " +
							  std::to_string(setting_max_workers) + ")");
		else
			ReportWaiting(river.name, slot, "");
	}
	return next_pass;
}

// ReloadSettings re-reads the configuration after SIGHUP and says so in the log.
void ReloadSettings() {
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	ereport(LOG, (errmsg("mongo_river launcher reloaded its configuration (naptime = %d ms)", setting_naptime_ms)));
}

// RunLauncher is the launcher's main loop: it waits on its latch between passes, reloads the
// configuration on SIGHUP and returns when SIGTERM asks it to stop.
void RunLauncher() {
	BackgroundWorkerInitializeConnection(setting_database, nullptr, 0);
	ereport(LOG, (errmsg("mongo_river launcher started in database \"%s\"", setting_database)));
	pgstat_report_appname("mongo_river launcher");

	std::optional<bool> was_ready;
	std::map<std::string, RiverSlot> slots;
	while (!ShutdownRequestPending) {
		if (ConfigReloadPending)
			ReloadSettings();
		bool ready = ExtensionReady();
		if (ready != was_ready.value_or(!ready))
			ereport(LOG, (errmsg(ready ? "mongo_river launcher: extension found in database \"%s\""
									   : "mongo_river launcher: extension not created in database \"%s\", waiting",
								 setting_database)));
		was_ready = ready;
		int wait_ms = setting_naptime_ms;
		if (ready) {
			try {
				TimestampTz next_pass = Reconcile(slots);
				if (next_pass) {
					// A worker's delayed start comes before the next naptime: wake up for it.
					long secs;
					int usecs;
					TimestampDifference(GetCurrentTimestamp(), next_pass, &secs, &usecs);
					wait_ms = int(std::min<long>(wait_ms, secs * 1000 + usecs / 1000 + 1));
				}
			} catch (const pg::PgError &error) {
				// E.g. the extension was dropped between the check and the read (then quietly): try
				// again next pass.
				if (ExtensionReady())
					ereport(LOG, (errmsg("mongo_river launcher: could not read the rivers: %s", error.what())));
			}
		}
		pgstat_report_activity(STATE_IDLE, nullptr);
		// Backends set the latch at the end of a transaction that started, stopped or altered a
		// river (signals.cpp), so such changes take effect at once.
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	for (auto &[name, slot] : slots)
		StopSlot(slot);
	ereport(LOG, (errmsg("mongo_river launcher shutting down")));
}

} // namespace

void RegisterLauncher() {
	BackgroundWorker worker = {};
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = kLauncherRestartSeconds;
	strlcpy(worker.bgw_library_name, "mongo_river", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "mongo_river_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "mongo_river launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "mongo_river launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

} // namespace mongo_river::worker

// mongo_river_launcher_main installs the signal handlers and runs the launcher. It exits with
// code 1 so that the postmaster starts it again if it is terminated while the server keeps running.
void mongo_river_launcher_main(unsigned long) {
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	mongo_river::pg::Guard([] { mongo_river::worker::RunLauncher(); });
	proc_exit(1);
}
