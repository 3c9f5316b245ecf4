// control.cpp: SQL-callable river control that needs C++: wait_for_sync, sync_once, and the
// helpers of stop, start and alter_river that stop or wake workers directly.
#include <memory>
#include <string>

#include "mongo_river/api/checks.hpp"
#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/catalog/lock.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/pg/transaction.hpp"
#include "mongo_river/worker/river_worker.hpp"
#include "mongo_river/worker/signals.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
}

namespace mongo_river::api {

namespace {

// SyncedUpTo tells whether the river has applied everything up to source time target and copied
// every mapped collection and caught up every copy: false one (a fresh snapshot each call). A river dropped meanwhile
// (by another session) is an error, never a read past the end of an empty result.
bool SyncedUpTo(const std::string &river, uint64 target) {
	pg::SpiConnection spi;
	uint64 rows =
		pg::SpiExecute("SELECT coalesce(p.reached, 0) >= $2 AND NOT EXISTS (SELECT 1 FROM mongo_river.mapping_state s"
					   " WHERE s.river = p.river AND (s.phase IN ('pending', 'initial_copy', 'resync') OR s.catch_up))"
					   " FROM mongo_river.progress p WHERE p.river = $1",
					   {{NAMEOID, pg::NameDatum(river)}, {INT8OID, Int64GetDatum(int64(target))}});
	if (rows == 0)
		throw Error(sqlstate::kUndefinedObject, "wait_for_sync: river \"" + river + "\" was dropped while waiting", {},
					"Another session ran drop_river; SELECT river FROM mongo_river.rivers lists the rivers.");
	return pg::SpiText(0, 1).value_or("f") == "t";
}

// kSyncPollMs is how often wait_for_sync looks at the river's progress: the time it may return late (a
// look is a few index probes, cheap next to the worker's batches).
constexpr int kSyncPollMs = 10;

// kStopTimeoutMs bounds how long stop() and sync_once wait for a river's worker to exit.
constexpr int kStopTimeoutMs = 10000;

} // namespace

} // namespace mongo_river::api

// mongo_river_wait_for_sync(river name, timeout interval) asks the source for its current operation
// time, then waits until the river has applied every change up to it (true) or timeout passes (false).
MONGO_RIVER_FUNCTION(mongo_river_wait_for_sync) {
	using namespace mongo_river;
	return pg::Guard([&] {
		if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
			throw Error("22004", std::string("wait_for_sync: argument ") + (PG_ARGISNULL(0) ? "river" : "timeout") +
									 " must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		Interval *timeout = PG_GETARG_INTERVAL_P(1);
		int64 timeout_ms = (timeout->time + (int64(timeout->day) + int64(timeout->month) * 30) * USECS_PER_DAY) / 1000;
		pg::EnsureMongocInitialized();
		uint64 target;
		{
			api::RequireRiverOwner("wait_for_sync", river);                                            // secrets
			target = catalog::OpenSource(catalog::RiverConnection(river))->OperationTime().AsUint64(); // secrets
		}
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
		while (true) {
			if (api::SyncedUpTo(river, target))
				return BoolGetDatum(true);
			if (GetCurrentTimestamp() >= deadline)
				return BoolGetDatum(false);
			pg::Call([] {
				(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, api::kSyncPollMs,
								PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			});
		}
	});
}

// mongo_river_sync_once(river name, timeout interval, INOUT applied bigint) is the PROCEDURE
// sync_once: it catches a stopped river up to the source's current time in the calling backend,
// committing per batch (CALL it outside a transaction block, e.g. from pg_cron).
MONGO_RIVER_FUNCTION(mongo_river_sync_once) {
	using namespace mongo_river;
	return pg::Guard([&]() -> Datum {
		if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
			throw Error("22004", std::string("sync_once: argument ") + (PG_ARGISNULL(0) ? "river" : "timeout") +
									 " must not be NULL");
		// It commits each batch itself: only where a procedure may end transactions (CALL at top level
		// outside BEGIN ... COMMIT, a DO block, a procedure called so, without an EXCEPTION clause
		// around the CALL). Elsewhere its first commit (or a batch's rollback) would fail midway.
		const bool atomic =
			fcinfo->context && IsA(fcinfo->context, CallContext) && castNode(CallContext, fcinfo->context)->atomic;
		if (atomic || IsSubTransaction())
			throw Error(sqlstate::kInvalidTransactionTermination,
						"sync_once cannot run inside a transaction block, a function or an EXCEPTION block", {},
						"CALL mongo_river.sync_once at top level outside BEGIN ... COMMIT (as pg_cron does), or from "
						"a procedure or DO block without an EXCEPTION clause around the CALL: it commits each batch.");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		Interval *timeout = PG_GETARG_INTERVAL_P(1);
		int64 timeout_ms = (timeout->time + (int64(timeout->day) + int64(timeout->month) * 30) * USECS_PER_DAY) / 1000;
		Oid owner = InvalidOid;
		{
			pg::SpiConnection spi;
			api::RequireRiverOwner("sync_once", river);
		}
		catalog::SyncOnceLock run_lock(river);
		if (!run_lock.Held())
			throw Error("55P03", "sync_once: river \"" + river + "\" is being synced by another session", {},
						"Wait for that sync_once to end (pg_stat_activity shows it), or schedule runs further apart.");
		{
			pg::SpiConnection spi;
			if (pg::SpiExecute("SELECT r.enabled, r.owner::oid FROM mongo_river.river r WHERE r.river = $1",
							   {{NAMEOID, pg::NameDatum(river)}}) == 0)
				throw Error(sqlstate::kUndefinedObject, "sync_once: river \"" + river + "\" was dropped", {},
							"Another session ran drop_river; SELECT river FROM mongo_river.rivers lists the rivers.");
			bool enabled = pg::SpiText(0, 1).value_or("f") == "t";
			owner = DatumGetObjectId(*pg::SpiDatum(0, 2));
			// A stopped river's worker may still be exiting (the launcher stops it within naptime):
			// stop it here and wait for it, rather than refusing.
			if (!enabled)
				worker::StopProcesses(worker::FindRiverWorkers(river), "sync_once",
									  "the exiting worker of river \"" + river + "\"", api::kStopTimeoutMs);
			if (enabled || !worker::FindRiverWorkers(river).empty())
				throw Error("55006", "sync_once: river \"" + river + "\" is run by its worker", {},
							"sync_once is for stopped rivers: SELECT mongo_river.stop('" + river +
								"') first, and wait until its worker has exited.");
		}
		pg::EnsureMongocInitialized();
		int64 applied;
		{
			// The river's user tables are written as its owner, never as the caller (a superuser's
			// call must not run the owner's triggers with the superuser's rights).
			catalog::AsRole as_owner(owner);
			pg::ProcedureTransactions transactions;
			applied = worker::SyncOnce(river, timeout_ms);
		}
		return pg::Call([&] {
			TupleDesc tupdesc;
			if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
				elog(ERROR, "mongo_river: sync_once must return a record");
			tupdesc = BlessTupleDesc(tupdesc);
			Datum values[1] = {Int64GetDatum(applied)};
			bool nulls[1] = {false};
			return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
		});
	});
}

// mongo_river_stop_worker(river name) is stop()'s second half: it ends the river's worker at once
// (SIGTERM, then cancels; see StopProcesses) and returns when it has exited, so that status never
// says stopped while it runs and sync_once can follow. If the caller's transaction rolls back, the
// river stays enabled and the launcher starts its worker again (woken at the rollback).
MONGO_RIVER_FUNCTION(mongo_river_stop_worker) {
	using namespace mongo_river;
	return pg::Guard([&] {
		if (PG_ARGISNULL(0))
			throw Error("22004", "stop: argument river must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		api::RequireRiverOwner("stop", river);
		worker::WakeAtTransactionEnd(river);
		worker::StopProcesses(worker::FindRiverWorkers(river), "stop", "the worker of river \"" + river + "\"",
							  api::kStopTimeoutMs);
		PG_RETURN_VOID();
	});
}

// mongo_river_wake(river name) makes the end of the caller's transaction wake the launcher and
// the river's worker (start and alter_river take effect at once, not within naptime).
MONGO_RIVER_FUNCTION(mongo_river_wake) {
	using namespace mongo_river;
	return pg::Guard([&] {
		if (PG_ARGISNULL(0))
			throw Error("22004", "wake: argument river must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		api::RequireRiverOwner("wake", river);
		worker::WakeAtTransactionEnd(river);
		PG_RETURN_VOID();
	});
}
