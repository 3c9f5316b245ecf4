// launcher.cpp: the launcher background worker: one per cluster, serving mongo_river.database.
#include <optional>

#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/settings.hpp"
#include "mongo_river/worker/launcher.hpp"

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
#include "utils/guc.h"
#include "utils/snapmgr.h"
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
	while (!ShutdownRequestPending) {
		if (ConfigReloadPending)
			ReloadSettings();
		bool ready = ExtensionReady();
		if (ready != was_ready.value_or(!ready))
			ereport(LOG, (errmsg(ready ? "mongo_river launcher: extension found in database \"%s\""
									   : "mongo_river launcher: extension not created in database \"%s\", waiting",
								 setting_database)));
		was_ready = ready;
		pgstat_report_activity(STATE_IDLE, nullptr);
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, setting_naptime_ms,
						PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
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
