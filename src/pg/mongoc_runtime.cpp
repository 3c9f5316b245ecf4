// mongoc_runtime.cpp: libmongoc initialisation and log routing for backends and workers.
#include <cstring>

#include <mongoc/mongoc.h>

#include "mongo_river/mongo/credentials.hpp"
#include "mongo_river/mongo/reader_thread.hpp"
#include "mongo_river/mongo/stream_guard.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/postgres.hpp"

extern "C" {
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
}

namespace mongo_river::pg {

namespace {

bool initialized = false;

bool InterruptPendingNow();

// LogToServer routes a libmongoc log line to elog; it runs on the main thread only: a copy's reader
// thread's lines are queued and handed on by the main thread (mongo/reader_thread.hpp).
void LogToServer(mongoc_log_level_t level, const char *domain, const char *message, void *) {
	int elevel;
	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
	case MONGOC_LOG_LEVEL_WARNING:
		elevel = LOG;
		break;
	case MONGOC_LOG_LEVEL_MESSAGE:
	case MONGOC_LOG_LEVEL_INFO:
		elevel = DEBUG1;
		break;
	default:
		elevel = DEBUG3;
		break;
	}
	// A stream failure or an unsent endSessions while this process is being stopped is the echo of
	// our own interruption (the interrupt check broke the read), not news for the server log.
	if (elevel == LOG && InterruptPendingNow() &&
		(strcmp(domain, "stream") == 0 || strstr(message, "endSessions") != nullptr))
		elevel = DEBUG1;
	ereport(elevel, (errmsg_internal("libmongoc %s: %s: %s", mongoc_log_level_str(level), domain, message)));
}

// InterruptPendingNow is the source connections' interrupt check (mongo::SetInterruptCheck): true
// when a worker's SIGTERM asked it to stop, or when CHECK_FOR_INTERRUPTS would now end the statement
// or the session (a query cancel, statement_timeout, pg_terminate_backend). It only reads flags: it
// runs inside libmongoc's reads.
bool InterruptPendingNow() {
	if (ShutdownRequestPending)
		return true;
	if (!InterruptPending || InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return false;
	return ProcDiePending || (QueryCancelPending && QueryCancelHoldoffCount == 0);
}

// CleanupMongoc ends libmongoc at process exit, once no reader thread (a copy reading ahead whose
// worker ended without unwinding) may still use it: each is asked to stop and given half a second; one
// still alive then (a connection being opened) keeps libmongoc, which the process's end frees.
void CleanupMongoc(int, Datum) {
	if (initialized && mongo::StopReaderThreads(500) == 0)
		mongoc_cleanup();
	initialized = false;
}

} // namespace

void EnsureMongocInitialized() {
	if (initialized)
		return;
	Assert(IsUnderPostmaster);
	mongoc_init();
	mongo::SetLogHandler(LogToServer, nullptr);
	mongo::SetInterruptCheck(InterruptPendingNow);
	initialized = true;
	on_proc_exit(CleanupMongoc, 0);
}

} // namespace mongo_river::pg
