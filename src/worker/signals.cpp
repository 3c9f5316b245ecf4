// signals.cpp: backends finding, stopping and waking the launcher and river workers directly
// (stop() returns once the worker has exited; start() and alter_river() take effect at once).
#include "mongo_river/worker/signals.hpp"

#include <signal.h>

#include <cstring>

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"
}

namespace mongo_river::worker {

namespace {

constexpr const char *kWorkerType = "mongo_river worker";
constexpr const char *kLauncherType = "mongo_river launcher";

// kCancelAfterMs: a worker not gone this long after SIGTERM (which it honours between batches and
// reads of at most maxAwaitTimeMS) is waiting for something, most likely a lock: cancel it.
constexpr int kCancelAfterMs = 3000;

// kMaxWake bounds the processes one transaction wakes at its end (more are not needed: the
// launcher and a river's worker; a transaction touching many rivers wakes the launcher anyway).
constexpr int kMaxWake = 32;

// WakeList is what the transaction's end wakes: plain data, no destructor (it lives in a static).
struct WakeList {
	bool callback_registered;
	int count;
	pid_t pids[kMaxWake];
	bool hangup[kMaxWake]; // SIGHUP (a river worker) rather than its latch (the launcher)
};
WakeList wake_list;

// FindByType returns the pids of background workers of bgw_type type whose application name is
// appname (any when appname is null), in database (any when InvalidOid). Reads a fresh copy of
// the backends' status (the transaction's cached one may predate them).
std::vector<pid_t> FindByType(const char *type, const char *appname, Oid database) {
	std::vector<pid_t> pids;
	pg::Call([&] {
		pgstat_clear_backend_activity_snapshot();
		int count = pgstat_fetch_stat_numbackends();
		for (int i = 1; i <= count; i++) {
			LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
			if (!local)
				continue;
			PgBackendStatus *status = &local->backendStatus;
			if (status->st_backendType != B_BG_WORKER || status->st_procpid == MyProcPid ||
				(OidIsValid(database) && status->st_databaseid != database))
				continue;
			if (appname && strncmp(status->st_appname, appname, NAMEDATALEN) != 0)
				continue;
			const char *found = GetBackgroundWorkerTypeByPid(status->st_procpid);
			if (found && strcmp(found, type) == 0)
				pids.push_back(status->st_procpid);
		}
		pgstat_clear_backend_activity_snapshot();
	});
	return pids;
}

// Alive tells whether pid is still a backend of the cluster (in the process array).
bool Alive(pid_t pid) {
	return pg::Call([&] { return BackendPidGetProc(pid) != nullptr; });
}

// WakeAtEnd is the transaction callback: at commit or rollback it wakes what WakeAtTransactionEnd
// listed, then forgets the list.
void WakeAtEnd(XactEvent event, void *) {
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT)
		return;
	for (int i = 0; i < wake_list.count; i++) {
		PGPROC *proc = BackendPidGetProc(wake_list.pids[i]);
		if (!proc)
			continue;
		if (wake_list.hangup[i])
			(void)kill(wake_list.pids[i], SIGHUP);
		else
			SetLatch(&proc->procLatch);
	}
	wake_list.count = 0;
}

// AddWake lists pid for the transaction's end (once).
void AddWake(pid_t pid, bool hangup) {
	for (int i = 0; i < wake_list.count; i++)
		if (wake_list.pids[i] == pid)
			return;
	if (wake_list.count == kMaxWake)
		return;
	wake_list.pids[wake_list.count] = pid;
	wake_list.hangup[wake_list.count] = hangup;
	wake_list.count++;
}

} // namespace

std::vector<pid_t> FindRiverWorkers(const std::string &river) {
	if (river.empty())
		return FindByType(kWorkerType, nullptr, MyDatabaseId);
	// The worker's application name is "mongo_river <river>", clipped like pgstat_report_appname does.
	std::string appname = "mongo_river " + river;
	int length = pg::Call([&] { return pg_mbcliplen(appname.c_str(), int(appname.size()), NAMEDATALEN - 1); });
	appname.resize(size_t(length));
	return FindByType(kWorkerType, appname.c_str(), MyDatabaseId);
}

void StopProcesses(const std::vector<pid_t> &pids, const char *fn, const std::string &what, int timeout_ms) {
	if (pids.empty())
		return;
	for (pid_t pid : pids)
		if (Alive(pid))
			(void)kill(pid, SIGTERM);
	TimestampTz start = pg::Call([] { return GetCurrentTimestamp(); });
	TimestampTz last_cancel = start;
	while (true) {
		std::vector<pid_t> running;
		for (pid_t pid : pids)
			if (Alive(pid))
				running.push_back(pid);
		if (running.empty())
			return;
		TimestampTz now = pg::Call([] { return GetCurrentTimestamp(); });
		if (TimestampDifferenceExceeds(start, now, timeout_ms))
			throw Error("55006",
						std::string(fn) + ": " + what + " (pid " + std::to_string(running.front()) +
							") did not exit within " + std::to_string(timeout_ms / 1000) + " s",
						"It was sent SIGTERM, then cancelled every 0.5 s after 3 s.",
						"It may be waiting on the source or on a lock this transaction or another session holds; "
						"try again, or end it with pg_terminate_backend(" +
							std::to_string(running.front()) + ").");
		// Past kCancelAfterMs: cancel what it waits for (a lock this transaction holds, a query).
		if (TimestampDifferenceExceeds(start, now, kCancelAfterMs) &&
			TimestampDifferenceExceeds(last_cancel, now, 500)) {
			last_cancel = now;
			for (pid_t pid : running)
				(void)kill(pid, SIGINT);
		}
		pg::Call([] {
			(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		});
	}
}

void WakeAtTransactionEnd(const std::string &river) {
	std::vector<pid_t> launchers = FindByType(kLauncherType, nullptr, InvalidOid);
	std::vector<pid_t> workers = FindRiverWorkers(river);
	pg::Call([] {
		if (!wake_list.callback_registered) {
			RegisterXactCallback(WakeAtEnd, nullptr);
			wake_list.callback_registered = true;
		}
	});
	for (pid_t pid : launchers)
		AddWake(pid, false);
	for (pid_t pid : workers)
		AddWake(pid, true);
}

} // namespace mongo_river::worker
